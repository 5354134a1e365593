/*  =========================================================================
    pb_sock - the one place where partnerbus creates ZeroMQ sockets

    Every socket of the project is made here so that each one carries the
    same protections: a maximum message size (ZMQ_MAXMSGSIZE, well above
    the envelope limit so that an oversized envelope still reaches the
    journal and gets its too_large NAK, while a frame past it closes the
    connection as ZeroMQ does), ZMTP heartbeats so that a dead peer is
    noticed, linger bounded so that a process never hangs on exit, and the
    hook where CurveZMQ is switched on (security work).
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
} pb_sock_opts_t;

#define PB_SOCK_OPTS_DEFAULTS { 1048576, 2000, 10000, 1000, 100000, 100000 }

//  Create a socket of ZeroMQ type 'type' (ZMQ_ROUTER, ZMQ_PUB, ...), with
//  'opts' applied (NULL: the defaults), then bind it if 'endpoint' starts
//  with '@' or connect it if it starts with '>' (czmq's convention; no
//  prefix means bind for ROUTER/PUB/XPUB, connect otherwise). Returns a
//  new socket the caller owns, or NULL if the endpoint could not be
//  bound or connected (logged once, with the endpoint and errno text).
zsock_t *
    pb_sock_new (int type, const char *endpoint, const pb_sock_opts_t *opts);

//  Self test of this module
void
    pb_sock_test (bool verbose);

#endif
