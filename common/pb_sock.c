/*  =========================================================================
    pb_sock - the one place where partnerbus creates ZeroMQ sockets
    =========================================================================
*/
#include "pb_sock.h"

#include "pb_error.h"
#include "pb_private.h"

#include <sodium.h>
#include <sys/stat.h>

static void
s_apply (zsock_t *sock, const pb_sock_opts_t *opts)
{
    //  Options that matter before connect/bind: the size limit and the
    //  high-water marks are read by each new pipe as it is created.
    zsock_set_maxmsgsize (sock, (int) opts->maxmsgsize);
    zsock_set_sndhwm (sock, opts->sndhwm);
    zsock_set_rcvhwm (sock, opts->rcvhwm);
    zsock_set_linger (sock, opts->linger);
    zsock_set_heartbeat_ivl (sock, opts->heartbeat_ivl);
    zsock_set_heartbeat_timeout (sock, opts->heartbeat_timeout);
    zsock_set_heartbeat_ttl (sock, opts->heartbeat_timeout);
    //  Before bind: a subscription that came in first would be applied
    if (opts->xpub_manual)
        zsock_set_xpub_manual (sock, 1);
    //  CURVE before bind/connect: the mechanism is chosen per connection
    //  at its handshake, from the options the socket has then
    if (opts->curve_cert) {
        zcert_apply (opts->curve_cert, sock);
        if (opts->curve_server)
            zsock_set_curve_serverkey (sock, opts->curve_server);
        else {
            zsock_set_curve_server (sock, 1);
            zsock_set_zap_domain (sock, PB_SOCK_ZAP_DOMAIN);
        }
    }
}

//  --------------------------------------------------------------------------

zsock_t *
pb_sock_new (int type, const char *endpoint, const pb_sock_opts_t *opts)
{
    pb_sock_opts_t defaults = PB_SOCK_OPTS_DEFAULTS;
    if (!opts)
        opts = &defaults;
    zsock_t *sock = zsock_new (type);
    if (!sock)
        return NULL;
    s_apply (sock, opts);
    if (!endpoint)
        return sock;                    //  The caller connects it later
    bool bind = type == ZMQ_ROUTER || type == ZMQ_PUB || type == ZMQ_XPUB;
    if (*endpoint == '@' || *endpoint == '>') {
        bind = *endpoint == '@';
        endpoint++;
    }
    int rc = bind? zsock_bind (sock, "%s", endpoint)
                 : zsock_connect (sock, "%s", endpoint);
    if (rc == -1) {
        zsys_error ("pb_sock: %s failed endpoint=%s error=%s",
                    bind? "bind": "connect", endpoint, zmq_strerror (zmq_errno ()));
        zsock_destroy (&sock);
    }
    return sock;
}

//  --------------------------------------------------------------------------

//  The Z85 value of 'name = "..."' on one line of a certificate, or false.
//  Our own reading, not zconfig's: on a syntax error zconfig prints the
//  line it could not parse, and in a secret file that line may hold the
//  secret key.
static bool
s_cert_value (const char *text, const char *name, uint8_t key [32])
{
    size_t len = strlen (name);
    for (const char *line = text; line && *line; line = strchr (line, '\n')) {
        if (*line == '\n')
            line++;
        while (*line == ' ' || *line == '\t')
            line++;
        if (strncmp (line, name, len))
            continue;
        const char *at = line + len;
        while (*at == ' ' || *at == '\t')
            at++;
        if (*at++ != '=')
            continue;
        while (*at == ' ' || *at == '\t')
            at++;
        char z85 [41];
        if (*at != '"' || strlen (at) < 42 || at [41] != '"')
            return false;
        memcpy (z85, at + 1, 40);
        z85 [40] = 0;
        return zmq_z85_decode (key, z85) != NULL;
    }
    return false;
}

int
pb_sock_cert_load (const char *path, const char *what, zcert_t **cert_p)
{
    assert (path && what && cert_p);
    char secret [PATH_MAX];
    if (!*path || snprintf (secret, sizeof secret, "%s_secret", path) >= (int) sizeof secret) {
        zsys_error ("pb_sock: %s: no certificate file given", what);
        return PB_EINVAL;
    }
    if (!pb_private_file_ok (secret, what))
        return PB_EINVAL;               //  Logged there
    char text [4096 + 1];
    FILE *file = fopen (secret, "r");
    size_t size = file? fread (text, 1, sizeof text - 1, file): 0;
    bool whole = file && feof (file);
    if (file)
        fclose (file);
    text [size] = 0;
    uint8_t public_key [32], secret_key [32], derived [32];
    bool ok = whole && strlen (text) == size
           && s_cert_value (text, "public-key", public_key)
           && s_cert_value (text, "secret-key", secret_key)
           && crypto_scalarmult_base (derived, secret_key) == 0
           && sodium_memcmp (derived, public_key, 32) == 0;
    sodium_memzero (text, sizeof text);
    if (!ok) {
        zsys_error ("pb_sock: %s: not a certificate with its secret key, or the keys do "
                    "not match path=%s (pbctl keygen makes them)", what, secret);
        sodium_memzero (secret_key, sizeof secret_key);
        return PB_EINVAL;
    }
    *cert_p = zcert_new_from (public_key, secret_key);
    sodium_memzero (secret_key, sizeof secret_key);
    assert (*cert_p);
    return 0;
}

//  --------------------------------------------------------------------------

int
pb_sock_server_key (const char *text, const char *what, char key [41])
{
    assert (text && what && key);
    uint8_t decoded [32];
    if (strlen (text) == 40 && zmq_z85_decode (decoded, text)) {
        strcpy (key, text);
        return 0;
    }
    zcert_t *cert = *text? zcert_load (text): NULL;
    if (!cert) {
        zsys_error ("pb_sock: %s: neither a Z85 public key (40 characters) nor a "
                    "certificate file", what);
        return PB_EINVAL;
    }
    strcpy (key, zcert_public_txt (cert));
    zcert_destroy (&cert);
    return 0;
}

//  --------------------------------------------------------------------------

int
pb_sock_client_curve (pb_sock_opts_t *opts, const char *cert_path,
                      const char *server_key, const char *what,
                      zcert_t **cert_p, char key [41])
{
    assert (opts && cert_path && server_key && what && cert_p && key);
    if (!*cert_path && !*server_key)
        return 0;
    if (!*cert_path || !*server_key) {
        zsys_error ("pb_sock: %s: cert and server_key go together (CurveZMQ)", what);
        return PB_EINVAL;
    }
    if (pb_sock_server_key (server_key, what, key)
    ||  pb_sock_cert_load (cert_path, what, cert_p))
        return PB_EINVAL;
    opts->curve_cert = *cert_p;
    opts->curve_server = key;
    return 0;
}

//  --------------------------------------------------------------------------

void
pb_sock_test (bool verbose)
{
    printf (" * pb_sock: ");
    zsock_t *server = pb_sock_new (ZMQ_ROUTER, "@inproc://pb_sock_test", NULL);
    assert (server);
    assert (zsock_maxmsgsize (server) == 1048576);
    pb_sock_opts_t opts = PB_SOCK_OPTS_DEFAULTS;
    opts.maxmsgsize = 4096;
    zsock_t *client = pb_sock_new (ZMQ_DEALER, "inproc://pb_sock_test", &opts);
    assert (client);
    assert (zsock_maxmsgsize (client) == 4096);
    zstr_send (client, "hello");
    zmsg_t *msg = zmsg_recv (server);
    assert (msg && zmsg_size (msg) == 2);
    zmsg_destroy (&msg);
    //  A second bind to the same endpoint fails cleanly
    zsock_t *twin = pb_sock_new (ZMQ_ROUTER, "@inproc://pb_sock_test", NULL);
    assert (twin == NULL);
    zsock_destroy (&client);
    zsock_destroy (&server);

    //  Certificates: the secret must be private; a server key is a Z85
    //  text or a certificate file; cert and server key go together
    char dir [] = "/tmp/pb_sock_test.XXXXXX";
    assert (mkdtemp (dir));
    char path [PATH_MAX], secret [PATH_MAX + 8];
    snprintf (path, sizeof path, "%s/a.cert", dir);
    snprintf (secret, sizeof secret, "%s_secret", path);
    zcert_t *cert = zcert_new ();
    assert (cert && zcert_save (cert, path) == 0);
    zcert_t *loaded = NULL;
    assert (chmod (secret, 0640) == 0);
    assert (pb_sock_cert_load (path, "test/cert", &loaded) == PB_EINVAL && !loaded);
    assert (chmod (secret, 0600) == 0);
    assert (pb_sock_cert_load (path, "test/cert", &loaded) == 0 && loaded);
    assert (zcert_eq (cert, loaded));
    zcert_destroy (&loaded);
    assert (pb_sock_cert_load (dir, "test/cert", &loaded) == PB_EINVAL);
    //  A secret file whose keys do not match, and one that is not ZPL
    char other_path [PATH_MAX], other_secret [PATH_MAX + 8];
    snprintf (other_path, sizeof other_path, "%s/b.cert", dir);
    snprintf (other_secret, sizeof other_secret, "%s_secret", other_path);
    zcert_t *stranger = zcert_new ();
    assert (stranger);
    FILE *garbage = fopen (other_secret, "w");
    assert (garbage);
    fprintf (garbage, "curve\n    public-key = \"%s\"\n    secret-key = \"%s\"\n",
             zcert_public_txt (cert), zcert_secret_txt (stranger));
    fclose (garbage);
    zcert_destroy (&stranger);
    assert (chmod (other_secret, 0600) == 0);
    assert (pb_sock_cert_load (other_path, "test/cert", &loaded) == PB_EINVAL);
    garbage = fopen (other_secret, "w");
    assert (garbage);
    fprintf (garbage, "curve\n    secret-key = \"%s\" broken\n", zcert_secret_txt (cert));
    fclose (garbage);
    assert (pb_sock_cert_load (other_path, "test/cert", &loaded) == PB_EINVAL);
    zsys_file_delete (other_secret);
    char key [41];
    assert (pb_sock_server_key (zcert_public_txt (cert), "test", key) == 0);
    assert (streq (key, zcert_public_txt (cert)));
    memset (key, 0, sizeof key);
    assert (pb_sock_server_key (path, "test", key) == 0);       //  The public file
    assert (streq (key, zcert_public_txt (cert)));
    assert (pb_sock_server_key ("not a key", "test", key) == PB_EINVAL);
    assert (pb_sock_server_key ("", "test", key) == PB_EINVAL);
    pb_sock_opts_t curve = PB_SOCK_OPTS_DEFAULTS;
    zcert_t *own = NULL;
    assert (pb_sock_client_curve (&curve, "", "", "test", &own, key) == 0);
    assert (!curve.curve_cert && !own);                         //  Plain
    assert (pb_sock_client_curve (&curve, path, "", "test", &own, key) == PB_EINVAL);
    assert (pb_sock_client_curve (&curve, path, zcert_public_txt (cert), "test",
                                  &own, key) == 0);
    assert (curve.curve_cert == own && curve.curve_server == key);
    zsock_t *curved = pb_sock_new (ZMQ_DEALER, NULL, &curve);   //  Not connected
    assert (curved && zsock_mechanism (curved) == ZMQ_CURVE);
    zsock_destroy (&curved);
    zcert_destroy (&own);
    zcert_destroy (&cert);
    zsys_file_delete (path);
    zsys_file_delete (secret);
    zsys_dir_delete (dir);
    printf ("OK\n");
}
