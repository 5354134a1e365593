/*  =========================================================================
    pb_sock - the one place where partnerbus creates ZeroMQ sockets
    =========================================================================
*/
#include "pb_sock.h"

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
}

//  --------------------------------------------------------------------------

zsock_t *
pb_sock_new (int type, const char *endpoint, const pb_sock_opts_t *opts)
{
    assert (endpoint);
    pb_sock_opts_t defaults = PB_SOCK_OPTS_DEFAULTS;
    if (!opts)
        opts = &defaults;
    zsock_t *sock = zsock_new (type);
    if (!sock)
        return NULL;
    s_apply (sock, opts);
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
    printf ("OK\n");
}
