/*  =========================================================================
    pb_sock - the one place where partnerbus creates ZeroMQ sockets

    Every socket of the project is made here so that each one carries the
    same protections: a maximum message size (ZMQ_MAXMSGSIZE, well above
    the envelope limit so that an oversized envelope still reaches the
    journal and gets its too_large NAK, while a frame past it closes the
    connection as ZeroMQ does), ZMTP heartbeats so that a dead peer is
    noticed, linger bounded so that a process never hangs on exit, and
    CurveZMQ when a certificate is given: a server socket (curve_server
    NULL) then answers only clients that the process's ZAP handler accepts
    (the journal's, on inproc://zeromq.zap.01), a client socket talks only
    to the server whose public key it was given.
    =========================================================================
*/
#ifndef PB_SOCK_H_INCLUDED
#define PB_SOCK_H_INCLUDED

#include <czmq.h>

typedef struct {
    int64_t maxmsgsize;         //  ZMQ_MAXMSGSIZE in bytes (default 1 MiB)
    int heartbeat_ivl;          //  ZMQ_HEARTBEAT_IVL msecs (default 2000)
    int heartbeat_timeout;      //  ZMQ_HEARTBEAT_TIMEOUT msecs (default 10000)
    int linger;                 //  ZMQ_LINGER msecs (default 1000)
    int sndhwm;                 //  send high-water mark (default 100000)
    int rcvhwm;                 //  receive high-water mark (default 100000)
    zcert_t *curve_cert;        //  own certificate, CURVE on (borrowed); NULL: plain
    const char *curve_server;   //  with a cert: the server's public key (Z85,
                                //  borrowed), or NULL: this socket IS the server
    bool xpub_manual;           //  XPUB: subscriptions applied by the owner
} pb_sock_opts_t;

#define PB_SOCK_OPTS_DEFAULTS { 1048576, 2000, 10000, 1000, 100000, 100000, NULL, NULL, \
                                false }

//  The ZAP domain of every CURVE server socket
#define PB_SOCK_ZAP_DOMAIN "partnerbus"

//  Create a socket of ZeroMQ type 'type' (ZMQ_ROUTER, ZMQ_PUB, ...), with
//  'opts' applied (NULL: the defaults), then bind it if 'endpoint' starts
//  with '@' or connect it if it starts with '>' (czmq's convention; no
//  prefix means bind for ROUTER/PUB/XPUB, connect otherwise; NULL: neither,
//  for a caller that must attach a monitor first). Returns a
//  new socket the caller owns, or NULL if the endpoint could not be
//  bound or connected (logged once, with the endpoint and errno text).
zsock_t *
    pb_sock_new (int type, const char *endpoint, const pb_sock_opts_t *opts);

//  Load the certificate 'path' (public part) and 'path'_secret (secret
//  part, as zcert_save writes them). The secret file must be private to
//  the user (pb_private_file_ok) and hold a secret key. Returns 0 and sets
//  *cert_p (caller owns it), or PB_EINVAL after logging why, naming 'what'
//  (a config key) and the path, never the key.
int
    pb_sock_cert_load (const char *path, const char *what, zcert_t **cert_p);

//  Read a server's public key from 'text': a Z85 key of 40 characters, or
//  the path of a certificate's public file. Returns 0 and fills 'key' (41
//  bytes, nul-terminated), or PB_EINVAL after logging why, naming 'what'.
int
    pb_sock_server_key (const char *text, const char *what, char key [41]);

//  A client's CURVE options from a certificate file and the server's key
//  (a Z85 key or a certificate file): both empty means plain, one without
//  the other is an error. Sets opts->curve_cert to a new *cert_p (destroy
//  it once the sockets are made: they copy the keys) and opts->curve_server
//  to 'key'. Returns 0, or PB_EINVAL (logged, naming 'what', a config
//  section such as "nac").
int
    pb_sock_client_curve (pb_sock_opts_t *opts, const char *cert_path,
                          const char *server_key, const char *what,
                          zcert_t **cert_p, char key [41]);

//  Self test of this module
void
    pb_sock_test (bool verbose);

#endif
