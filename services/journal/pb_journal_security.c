/*  =========================================================================
    pb_journal_security - CurveZMQ, the ZAP handler and rights per key

    With journal/security on, every endpoint is a CURVE server
    (common/pb_sock) and this file is the journal's ZAP handler: a REP
    socket on inproc://zeromq.zap.01, in the journal's own loop, answers
    each handshake from the rights in force. It is ours rather than czmq's
    zauth for two reasons: czmq 4.2.1's zauth answers with an empty user
    id, and the user id is how each message names its sender; and the
    rights then live in one thread, the actor's, with nothing shared. The
    user id is the client's public key (Z85), so a key removed from the
    rights file is refused on connections already open: ingest checks the
    sender of every message (zmq_msg_gets "User-Id"), replay of every
    command and batch, and fanout applies a subscription only if the
    subscriber's rights cover it (XPUB_MANUAL). A reload that takes a
    subscribe right away rebinds the fanout, since libzmq cannot drop one
    peer of an XPUB: every subscriber reconnects through the handshake, and
    those still allowed fill the gap from replay as after any restart.

    libzmq 4.3.4 accepts every CURVE client when no ZAP handler answers,
    so the handler is bound before any endpoint, and before serving the
    journal connects to each endpoint with a fresh random key and refuses
    to start unless that handshake fails with an authentication error
    (seen through a socket monitor, not by waiting).

    Nothing secret is logged: public keys and names only.
    =========================================================================
*/
#include "pb_journal_internal.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>

#include "pb_msgpack.h"
#include "pb_private.h"
#include "pb_sock.h"

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define S_PROBE_TIMEOUT 5000            //  ms for the three probes
#define S_DRAIN_MAX 256                 //  subscriptions handled per wakeup

//  The rights file, refused if others may change it: whoever can write it
//  grants themselves every right
static int
s_rights_load (const char *path, pb_rights_t **rights_p)
{
    struct stat st;
    if (stat (path, &st) == 0 && (st.st_mode & 022)) {
        zsys_error ("journal: rights file may be changed by others path=%s mode=%03o "
                    "(chmod go-w it)", path, (unsigned) (st.st_mode & 0777));
        return PB_EINVAL;
    }
    char error [512];
    int rc = pb_rights_load (path, rights_p, error, sizeof error);
    if (rc)
        zsys_error ("journal: %s", error);
    return rc;
}

//  --------------------------------------------------------------------------
//  The ZAP handler (rfc.zeromq.org/spec:27)

static void
s_zap_answer (pb_journal_t *self)
{
    zmsg_t *request = zmsg_recv (self->zap);
    if (!request)
        return;
    //  version, request id, domain, address, routing id, mechanism, credentials
    zframe_t *version = zmsg_pop (request);
    zframe_t *sequence = zmsg_pop (request);
    zframe_t *frames [4] = { NULL };
    for (int i = 0; i < 4; i++)
        frames [i] = zmsg_pop (request);
    zframe_t *mechanism = frames [3];
    zframe_t *credentials = zmsg_pop (request);
    char key [41] = "";
    const char *status = "400";
    const char *text = "unknown key";
    if (mechanism && zframe_streq (mechanism, "CURVE") && credentials
    &&  zframe_size (credentials) == 32) {
        zmq_z85_encode (key, zframe_data (credentials), 32);
        if (pb_rights_lookup (self->rights, key)) {
            status = "200";
            text = "OK";
        }
    }
    else
        text = "CURVE only";
    if (*status == '4') {
        self->refused_handshakes++;
        snprintf (self->refused_key, sizeof self->refused_key, "%s", key);
    }
    zmsg_t *reply = zmsg_new ();
    zmsg_addstr (reply, "1.0");
    if (sequence)
        zmsg_append (reply, &sequence);
    else
        zmsg_addstr (reply, "");
    zmsg_addstr (reply, status);
    zmsg_addstr (reply, text);
    zmsg_addstr (reply, *status == '2'? key: "");   //  The User-Id of each message
    zmsg_addmem (reply, NULL, 0);                  //  No metadata
    zmsg_send (&reply, self->zap);
    zframe_destroy (&version);
    zframe_destroy (&sequence);
    for (int i = 0; i < 4; i++)
        zframe_destroy (&frames [i]);
    zframe_destroy (&credentials);
    zmsg_destroy (&request);
}

static int
s_on_zap (zloop_t *loop, zsock_t *reader, void *arg)
{
    s_zap_answer ((pb_journal_t *) arg);
    return 0;
}

//  --------------------------------------------------------------------------

int
pb_journal_security_open (pb_journal_t *self)
{
    self->sighup_fd = -1;
    if (!self->cfg->security)
        return 0;
    int rc = pb_sock_cert_load (self->cfg->cert, "journal/cert", &self->cert);
    if (rc == 0)
        rc = s_rights_load (self->cfg->rights, &self->rights);
    bool zap = true;
#if defined (PB_CRASHPOINTS)
    //  Test builds: start without the ZAP handler, the very mistake the
    //  probe exists to catch (tests/it/it_security.py, negative control)
    zap = !getenv ("PB_TEST_NO_ZAP");
#endif
    if (rc == 0 && zap) {
        self->zap = pb_sock_new (ZMQ_REP, "@" S_ZAP_ENDPOINT, NULL);
        if (!self->zap) {
            zsys_error ("journal: cannot serve ZAP (another handler in this process?)");
            rc = PB_EIO;
        }
    }
    if (rc == 0) {
        //  SIGHUP is blocked in every thread (pb-journal's main does it
        //  before any thread starts), so it arrives only here
        sigset_t set;
        sigemptyset (&set);
        sigaddset (&set, SIGHUP);
        self->sighup_fd = signalfd (-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
        if (self->sighup_fd == -1) {
            zsys_error ("journal: signalfd failed error=%s", strerror (errno));
            rc = PB_EIO;
        }
    }
    if (rc == 0)
        zsys_notice ("journal: security on cert=%s public_key=%s rights=%s keys=%zu",
                     self->cfg->cert, zcert_public_txt (self->cert), self->cfg->rights,
                     pb_rights_size (self->rights));
    return rc;
}

void
pb_journal_security_close (pb_journal_t *self)
{
    zsock_destroy (&self->zap);
    pb_rights_destroy (&self->rights);
    zcert_destroy (&self->cert);
    if (self->sighup_fd != -1)
        close (self->sighup_fd);
    self->sighup_fd = -1;
}

//  --------------------------------------------------------------------------
//  The probe: a stranger's key on each endpoint, answered by our handler

typedef struct {
    zsock_t *client;                    //  DEALER or SUB with a random key (owned)
    zsock_t *monitor;                   //  PAIR receiving its events (owned)
    const char *name;                   //  endpoint name (static)
    int outcome;                        //  0 pending, 1 refused, -1 accepted or odd
} s_probe_t;

static int
s_probe_open (pb_journal_t *self, s_probe_t *probe, int index, zcert_t *stranger,
              int type, const char *endpoint)
{
    pb_sock_opts_t opts = PB_SOCK_OPTS_DEFAULTS;
    opts.curve_cert = stranger;
    opts.curve_server = zcert_public_txt (self->cert);
    opts.linger = 0;
    probe->client = pb_sock_new (type, NULL, &opts);
    char name [128];
    snprintf (name, sizeof name, "inproc://pb-journal-probe-%p-%d", (void *) self, index);
    int events = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
               | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
    int rc = probe->client? zmq_socket_monitor (zsock_resolve (probe->client), name, events): -1;
    char spec [160];
    snprintf (spec, sizeof spec, ">%s", name);
    if (rc == 0)
        probe->monitor = pb_sock_new (ZMQ_PAIR, spec, NULL);
    //  Only now connect: the monitor sees the whole handshake
    if (probe->monitor && endpoint)
        rc = zsock_connect (probe->client, "%s", endpoint);
    return probe->monitor && rc == 0? 0: PB_EIO;
}

//  One monitor event: [event: 2][value: 4][endpoint]
static void
s_probe_event (s_probe_t *probe)
{
    zmsg_t *msg = zmsg_recv (probe->monitor);
    zframe_t *frame = msg? zmsg_first (msg): NULL;
    if (frame && zframe_size (frame) == 6) {
        uint16_t event;
        memcpy (&event, zframe_data (frame), 2);
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
            probe->outcome = 1;
        else {
            probe->outcome = -1;
            zsys_error ("journal: security check failed: a random key %s on %s",
                        event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED? "was accepted"
                        : "failed without an authentication refusal", probe->name);
        }
    }
    zmsg_destroy (&msg);
}

int
pb_journal_security_probe (pb_journal_t *self)
{
    if (!self->cfg->security)
        return 0;
    zcert_t *stranger = zcert_new ();
    assert (stranger);
    s_probe_t probes [3] = {
        { NULL, NULL, "ingest", 0 }, { NULL, NULL, "replay", 0 }, { NULL, NULL, "fanout", 0 }
    };
    zsock_t *servers [3] = { self->ingest, self->replay, self->fanout };
    int types [3] = { ZMQ_DEALER, ZMQ_DEALER, ZMQ_SUB };
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = s_probe_open (self, &probes [i], i, stranger, types [i],
                           zsock_endpoint (servers [i]));
    zpoller_t *poller = NULL;
    if (rc == 0) {
        poller = zpoller_new (probes [0].monitor, probes [1].monitor,
                              probes [2].monitor, NULL);
        assert (poller);
        if (self->zap)
            zpoller_add (poller, self->zap);
    }
    int64_t deadline = zclock_mono () + S_PROBE_TIMEOUT;
    int refused = 0;
    while (rc == 0 && refused < 3 && zclock_mono () < deadline) {
        void *ready = zpoller_wait (poller, (int) (deadline - zclock_mono ()));
        if (ready && ready == self->zap)
            s_zap_answer (self);
        for (int i = 0; i < 3 && ready; i++)
            if (ready == probes [i].monitor) {
                s_probe_event (&probes [i]);
                if (probes [i].outcome < 0)
                    rc = PB_EIO;
                refused += probes [i].outcome > 0;
            }
        if (!ready && zpoller_terminated (poller))
            rc = PB_EINTR;
    }
    if (rc == 0 && refused < 3) {
        zsys_error ("journal: security check failed: a random key was not refused in "
                    "%d ms on every endpoint", S_PROBE_TIMEOUT);
        rc = PB_EIO;
    }
    if (rc == 0)
        zsys_notice ("journal: security check passed: a random key is refused on "
                     "ingest, replay and fanout");
    zpoller_destroy (&poller);
    for (int i = 0; i < 3; i++) {
        if (probes [i].client)
            zmq_socket_monitor (zsock_resolve (probes [i].client), NULL, 0);
        zsock_destroy (&probes [i].monitor);
        zsock_destroy (&probes [i].client);
    }
    zcert_destroy (&stranger);
    self->refused_handshakes = 0;       //  Ours, not a client's
    return rc;
}

//  --------------------------------------------------------------------------
//  Fanout: a subscription is applied only within the subscriber's rights

static int
s_on_subscription (zloop_t *loop, zsock_t *reader, void *arg)
{
    pb_journal_t *self = (pb_journal_t *) arg;
    void *socket = zsock_resolve (self->fanout);
    for (int i = 0; i < S_DRAIN_MAX; i++) {
        zmq_msg_t msg;
        zmq_msg_init (&msg);
        if (zmq_msg_recv (&msg, socket, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (&msg);
            break;
        }
        const char *data = (const char *) zmq_msg_data (&msg);
        size_t size = zmq_msg_size (&msg);
        const char *user = zmq_msg_gets (&msg, "User-Id");
        const pb_rights_key_t *key = pb_rights_lookup (self->rights, user);
        //  XPUB_MANUAL: the option applies to the pipe the message came
        //  from. An unsubscription without metadata is libzmq's own, for a
        //  pipe that has gone (and taken its subscriptions with it): there
        //  is no pipe to apply it to, so it is not applied to another one.
        if (size >= 1 && data [0] == 0 && user)
            zmq_setsockopt (socket, ZMQ_UNSUBSCRIBE, data + 1, size - 1);
        else
        if (size >= 1 && data [0] == 0)
            ;                           //  A closed pipe's: nothing to do
        else
        if (size >= 1 && data [0] == 1 && key
        &&  pb_rights_may_subscribe (key, data + 1, size - 1))
            zmq_setsockopt (socket, ZMQ_SUBSCRIBE, data + 1, size - 1);
        else
        if (size >= 1 && data [0] == 1) {
            self->refused_subscriptions++;
            snprintf (self->refused_subscriber, sizeof self->refused_subscriber, "%s",
                      key? pb_rights_key_name (key): "(removed key)");
        }
        zmq_msg_close (&msg);
    }
    return 0;
}

//  A new fanout socket: every subscriber reconnects and is authenticated
//  again. The old listener is closed by libzmq's I/O thread, so the port
//  may still be taken for a moment.
static void
s_fanout_rebind (pb_journal_t *self)
{
    zloop_reader_end (self->loop, self->fanout);
    zsock_destroy (&self->fanout);
    pb_sock_opts_t opts = PB_SOCK_OPTS_DEFAULTS;
    opts.maxmsgsize = self->cfg->max_msg_size;
    opts.curve_cert = self->cert;
    opts.xpub_manual = true;
    for (int attempt = 0; attempt < 50 && !self->fanout; attempt++) {
        if (attempt)
            zclock_sleep (20);
        self->fanout = pb_sock_new (ZMQ_XPUB, self->cfg->fanout, &opts);
    }
    if (!self->fanout) {
        zsys_error ("journal: cannot bind the fanout again endpoint=%s, stopping",
                    self->cfg->fanout);
        self->exit_rc = PB_EIO;         //  The caller stops the loop: restart us
        return;
    }
    self->fanout_handle = zsock_resolve (self->fanout);
    zloop_reader (self->loop, self->fanout, s_on_subscription, self);
}

//  --------------------------------------------------------------------------

static int
s_on_sighup (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    pb_journal_t *self = (pb_journal_t *) arg;
    struct signalfd_siginfo info;
    bool any = false;
    while (read (self->sighup_fd, &info, sizeof info) == (ssize_t) sizeof info)
        any = true;
    if (any)
        pb_journal_security_reload (self);
    return self->fanout? 0: -1;
}

void
pb_journal_security_attach (pb_journal_t *self)
{
    if (!self->cfg->security)
        return;
    if (self->zap)
        zloop_reader (self->loop, self->zap, s_on_zap, self);
    zloop_reader (self->loop, self->fanout, s_on_subscription, self);
    zmq_pollitem_t item = { NULL, self->sighup_fd, ZMQ_POLLIN, 0 };
    zloop_poller (self->loop, &item, s_on_sighup, self);
}

//  --------------------------------------------------------------------------

void
pb_journal_security_reload (pb_journal_t *self)
{
    if (!self->cfg->security) {
        zsys_warning ("journal: rights reload asked, but journal/security is off");
        return;
    }
    pb_rights_t *fresh = NULL;
    if (s_rights_load (self->cfg->rights, &fresh)) {
        zsys_error ("journal: rights reload failed, the rights in force are kept "
                    "keys=%zu", pb_rights_size (self->rights));
        return;
    }
    bool kept = pb_rights_reads_kept (self->rights, fresh);
    pb_rights_destroy (&self->rights);
    self->rights = fresh;
    self->reloads++;
    if (!kept)
        s_fanout_rebind (self);
    zsys_notice ("journal: rights reloaded keys=%zu reloads=%" PRIu64 " fanout=%s",
                 pb_rights_size (self->rights), self->reloads,
                 kept? "kept": self->fanout? "rebound": "lost");
}

//  --------------------------------------------------------------------------

static pb_nak_t
s_admit_key (const pb_rights_key_t *key, const pb_envelope_t *env, char *error)
{
    if (!key) {
        snprintf (error, PB_JOURNAL_ERROR_MAX,
                  "key: not in the rights file any more (revoked)");
        return PB_NAK_UNAUTHORIZED;
    }
    if (!pb_rights_may_publish (key, NULL, 0, env->type, env->type_len)) {
        snprintf (error, PB_JOURNAL_ERROR_MAX, "type: %.*s is outside the publish "
                  "rights of key '%s'", (int) env->type_len, env->type,
                  pb_rights_key_name (key));
        return PB_NAK_UNAUTHORIZED;
    }
    if (!pb_rights_may_publish (key, env->src, env->src_len, env->type, env->type_len)) {
        char quoted [80];
        pb_msgpack_quote (quoted, sizeof quoted, env->src, env->src_len);
        snprintf (error, PB_JOURNAL_ERROR_MAX, "src: '%s' is not a src of key '%s'",
                  quoted, pb_rights_key_name (key));
        return PB_NAK_UNAUTHORIZED;
    }
    return PB_NAK_NONE;
}

pb_nak_t
pb_journal_security_admit (pb_journal_t *self, zmq_msg_t *frame,
                           const pb_envelope_t *env, char *error)
{
    if (!self->rights)
        return PB_NAK_NONE;
    const pb_rights_key_t *key = pb_rights_lookup (self->rights,
                                                   zmq_msg_gets (frame, "User-Id"));
    pb_nak_t nak = s_admit_key (key, env, error);
    if (nak != PB_NAK_NONE) {
        //  Counted for the aggregated warning, never logged one by one
        self->refused_messages++;
        snprintf (self->refused_sender, sizeof self->refused_sender, "%s",
                  key? pb_rights_key_name (key): "(removed key)");
    }
    return nak;
}

const pb_rights_key_t *
pb_journal_security_sender (pb_journal_t *self, zframe_t *frame)
{
    if (!self->rights)
        return NULL;
    return pb_rights_lookup (self->rights, zframe_meta (frame, "User-Id"));
}

void
pb_journal_security_stats (pb_journal_t *self)
{
    if (self->refused_handshakes)
        zsys_warning ("journal: handshakes refused in the last second count=%" PRIu64
                      " last_key=%s", self->refused_handshakes,
                      *self->refused_key? self->refused_key: "(not CURVE)");
    if (self->refused_messages)
        zsys_warning ("journal: messages refused by rights in the last second count=%"
                      PRIu64 " last_key=%s", self->refused_messages, self->refused_sender);
    if (self->refused_subscriptions)
        zsys_warning ("journal: subscriptions refused in the last second count=%" PRIu64
                      " last_key=%s", self->refused_subscriptions, self->refused_subscriber);
    self->refused_handshakes_total += self->refused_handshakes;
    self->refused_subscriptions_total += self->refused_subscriptions;
    self->refused_handshakes = 0;
    self->refused_subscriptions = 0;
    self->refused_messages = 0;
}
