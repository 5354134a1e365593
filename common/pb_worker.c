/*  =========================================================================
    pb_worker - the worker runtime: sockets, catch-up and the outbox

    The transport half of the runtime (pb_worker_store.c is the LMDB
    half). Follows the Clone pattern (zguide, chapter 5): SUB to "" first,
    catch up by REPLAY from applied_seq + 1, then read the fanout and drop
    what was already applied. While catching up the SUB socket is not read
    (it is taken out of the poller), so ZeroMQ keeps the live messages for
    us; if its high-water mark drops some, the seq jump sends us back to
    replay. Nothing is ever applied out of order: an event is taken only
    when its seq is applied_seq + 1.
    =========================================================================
*/
#include "pb_worker_store.h"
#include "pb_crash.h"
#include "pb_sock.h"
#include "pb_wire.h"

#define S_BACKOFF_MAX 5000              //  msecs between resends, at most

typedef struct {
    zsock_t *pipe;                      //  actor pipe (borrowed)
    const pb_worker_cfg_t *cfg;         //  configuration (borrowed)
    const char *name;                   //  rules' name (borrowed)
    pb_worker_store_t *store;           //  the LMDB store (owned)
    zsock_t *sub;                       //  fanout SUB (owned)
    zsock_t *ingest;                    //  ingest DEALER (owned)
    zsock_t *replay;                    //  replay DEALER (owned)
    zpoller_t *poller;                  //  pipe, ingest, replay, [sub] (owned)
    bool sub_polled;                    //  sub is in the poller (live)
    bool replaying;                     //  a REPLAY is in progress
    int64_t replay_heard;               //  when replay last spoke (mono ms)
    pb_limits_t limits;                 //  envelope decoding limits
    pb_worker_event_t *batch;           //  events of one wakeup (owned)
    size_t batch_size;                  //  how many are in batch
    uint64_t batch_last;                //  seq of the last one taken
    uint8_t sent_key [PB_WORKER_KEY_SIZE];  //  last outbox key sent
    bool sent_any;                      //  sent_key is set
    int64_t inflight;                   //  notifications sent, not answered
    int64_t progress_at;                //  last send or ACK (mono ms)
    int64_t resend_at;                  //  no sending before (mono ms)
    int64_t backoff;                    //  next 'unavailable' pause, msecs
    zchunk_t *acked;                    //  ACKed outbox keys to delete
    bool verbose;                       //  debug per message
    int exit_status;                    //  what the actor reports at the end
} s_worker_t;

const char *
pb_worker_strerror (int rc)
{
#define XX(name, value, text) if (rc == value) return text;
    PB_WORKER_ERRORS (XX)
#undef XX
    return pb_strerror (rc);
}

//  Send two frames without blocking (ZeroMQ queues a multipart message
//  whole once its first frame is accepted). Returns 0, or -1 if the pipe
//  is full; the caller's timers send again.
static int
s_send2 (zsock_t *sock, const void *a, size_t a_size, const void *b, size_t b_size)
{
    void *handle = zsock_resolve (sock);
    if (zmq_send (handle, a, a_size, ZMQ_DONTWAIT | ZMQ_SNDMORE) == -1)
        return -1;
    return zmq_send (handle, b, b_size, ZMQ_DONTWAIT) == -1? -1: 0;
}

//  --------------------------------------------------------------------------
//  Batch of events of one wakeup

static void
s_batch_clear (s_worker_t *self)
{
    for (size_t i = 0; i < self->batch_size; i++)
        pb_envelope_destroy (&self->batch [i].env);
    self->batch_size = 0;
    self->batch_last = pb_worker_store_applied_seq (self->store);
}

static int s_outbox_pump (s_worker_t *self);

//  Apply and commit what the batch holds, then send the new notifications
static int
s_batch_flush (s_worker_t *self)
{
    int rc = 0;
    if (self->batch_size) {
        rc = pb_worker_store_apply (self->store, self->batch, self->batch_size);
        s_batch_clear (self);
        if (rc)
            self->exit_status = rc;
        else
            s_outbox_pump (self);
    }
    return rc;
}

//  Seq of a logged envelope this worker cannot decode (a newer catalogue,
//  a bug): read with msgpack-c, bounded by the socket's maxmsgsize. 0 if
//  there is none.
static uint64_t
s_peek_seq (const void *bytes, size_t size)
{
    msgpack_unpacked result;
    msgpack_unpacked_init (&result);
    uint64_t seq = 0;
    if (msgpack_unpack_next (&result, bytes, size, NULL) == MSGPACK_UNPACK_SUCCESS) {
        const msgpack_object *obj = pb_msgpack_get (&result.data, "seq");
        if (obj && obj->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            seq = obj->via.u64;
    }
    msgpack_unpacked_destroy (&result);
    return seq;
}

//  Take one logged event if it is the next one. Returns 0 (taken or
//  already applied), or 1 for a gap (the caller asks replay to fill it).
static int
s_batch_take (s_worker_t *self, const char *type, size_t type_len,
              const void *bytes, size_t size)
{
    char error [256] = "";
    pb_envelope_t *env = NULL;
    uint64_t seq;
    if (pb_envelope_decode (type, type_len, bytes, size, PB_ENVELOPE_STORED,
                            &self->limits, &env, error, sizeof error) == PB_NAK_NONE)
        seq = env->seq;
    else
        seq = s_peek_seq (bytes, size);
    if (seq <= self->batch_last) {
        pb_envelope_destroy (&env);     //  Applied already (Clone pattern)
        return 0;
    }
    if (seq != self->batch_last + 1) {
        pb_envelope_destroy (&env);
        return 1;
    }
    if (self->batch_size == (size_t) self->cfg->batch_max
    &&  s_batch_flush (self)) {
        pb_envelope_destroy (&env);
        return -1;
    }
    pb_worker_event_t *event = &self->batch [self->batch_size++];
    memset (event, 0, sizeof *event);
    event->env = env;
    event->seq = seq;
    if (!env) {
        zsys_warning ("pb_worker: cannot decode seq=%" PRIu64 ": %s", seq, error);
        snprintf (event->type, sizeof event->type, "%.*s",
                  (int) (type_len > 128? 128: type_len), type? type: "");
        if (!event->type [0])
            strcpy (event->type, "?");
        snprintf (event->error, sizeof event->error, "undecodable: %.200s", error);
    }
    self->batch_last = seq;
    return 0;
}

//  --------------------------------------------------------------------------
//  Replay (catch-up and gap filling)

static void
s_sub_poll (s_worker_t *self, bool on)
{
    if (on && !self->sub_polled)
        zpoller_add (self->poller, self->sub);
    else
    if (!on && self->sub_polled)
        zpoller_remove (self->poller, self->sub);
    self->sub_polled = on;
}

static void
s_replay_start (s_worker_t *self)
{
    uint8_t buf [PB_WIRE_REQUEST_MAX];
    size_t len = 0;
    uint64_t from = pb_worker_store_applied_seq (self->store) + 1;
    int rc = pb_wire_replay_encode (from, 0, NULL, 0, (uint32_t) self->cfg->credit,
                                    buf, sizeof buf, &len);
    assert (rc == 0);
    //  Non-blocking: with the journal away the request waits in the pipe
    //  or is asked again after replay_timeout_ms
    s_send2 (self->replay, "REPLAY", 6, buf, len);
    if (!self->replaying)
        zsys_info ("pb_worker: catching up from=%" PRIu64, from);
    self->replaying = true;
    self->replay_heard = zclock_mono ();
    s_sub_poll (self, false);
}

static void
s_replay_credit (s_worker_t *self)
{
    uint8_t buf [PB_WIRE_REPLY_MAX];
    size_t len = 0;
    if (pb_wire_credit_encode (1, buf, sizeof buf, &len) == 0)
        s_send2 (self->replay, "CREDIT", 6, buf, len);
}

static int
s_on_replay (s_worker_t *self)
{
    zmsg_t *msg = zmsg_recv (self->replay);
    if (!msg)
        return 0;
    self->replay_heard = zclock_mono ();
    zframe_t *cmd = zmsg_first (msg);
    pb_wire_cmd_t command = pb_wire_command (zframe_data (cmd), zframe_size (cmd));
    int rc = 0;
    if (command == PB_WIRE_EVENTS) {
        bool gap = false;
        for (zframe_t *f = zmsg_next (msg); f && !gap && rc >= 0; f = zmsg_next (msg)) {
            rc = s_batch_take (self, NULL, 0, zframe_data (f), zframe_size (f));
            gap = rc == 1;
        }
        if (rc >= 0)
            rc = s_batch_flush (self);
        if (rc == 0 && gap)
            s_replay_start (self);      //  Not ours: ask again from here
        else
        if (rc == 0) {
            PB_CRASH_POINT ("worker_mid_catchup");
            s_replay_credit (self);
        }
    }
    else
    if (command == PB_WIRE_END) {
        pb_wire_end_t end;
        zframe_t *body = zmsg_next (msg);
        if (body && pb_wire_end_decode (zframe_data (body), zframe_size (body),
                                        &end, NULL, 0) == 0) {
            self->replaying = false;
            s_sub_poll (self, true);
            zsys_notice ("pb_worker: caught up applied_seq=%" PRIu64 " head=%" PRIu64,
                         pb_worker_store_applied_seq (self->store), end.head);
        }
    }
    else
    if (command == PB_WIRE_ERROR)
        zsys_warning ("pb_worker: replay refused the request");
    zmsg_destroy (&msg);
    return rc < 0? -1: 0;
}

//  --------------------------------------------------------------------------
//  Fanout

static int
s_on_sub (s_worker_t *self)
{
    int rc = 0;
    bool gap = false;
    //  Drain what is queued, up to a batch, then commit once
    for (int n = 0; n < self->cfg->batch_max && !gap && rc >= 0; n++) {
        zmsg_t *msg = NULL;
        if (n > 0 && !(zsock_events (self->sub) & ZMQ_POLLIN))
            break;
        msg = zmsg_recv (self->sub);
        if (!msg)
            break;
        zframe_t *type = zmsg_first (msg);
        zframe_t *body = zmsg_next (msg);
        if (zmsg_size (msg) == 2 && zframe_streq (type, "sys.heartbeat")) {
            uint64_t head = 0;
            int64_t ts = 0;
            if (pb_wire_heartbeat_decode (zframe_data (body), zframe_size (body),
                                          &head, &ts, NULL, 0) == 0
            &&  head > self->batch_last)
                gap = true;
        }
        else
        if (zmsg_size (msg) == 2) {
            rc = s_batch_take (self, (const char *) zframe_data (type),
                               zframe_size (type), zframe_data (body),
                               zframe_size (body));
            gap = rc == 1;
        }
        zmsg_destroy (&msg);
    }
    if (rc >= 0)
        rc = s_batch_flush (self);
    if (rc == 0 && gap)
        s_replay_start (self);
    return rc < 0? -1: 0;
}

//  --------------------------------------------------------------------------
//  Outbox: pipelined sends to ingest, ACKs deleted in a later transaction

static int
s_outbox_send_one (const uint8_t *key, const char *type, const void *env,
                   size_t size, void *arg)
{
    s_worker_t *self = (s_worker_t *) arg;
    if (self->inflight >= self->cfg->window)
        return 1;
    if (s_send2 (self->ingest, type, strlen (type), env, size))
        return 1;                       //  Pipe full: the timers send again
    memcpy (self->sent_key, key, PB_WORKER_KEY_SIZE);
    self->sent_any = true;
    self->inflight++;
    self->progress_at = zclock_mono ();
    return 0;
}

static int
s_outbox_pump (s_worker_t *self)
{
    if (zclock_mono () < self->resend_at)
        return 0;
    int rc = pb_worker_store_outbox_scan (self->store,
                                          self->sent_any? self->sent_key: NULL,
                                          s_outbox_send_one, self);
    if (rc)
        self->exit_status = rc;
    return rc;
}

//  Send the whole outbox again: after a silence, or 'unavailable'
static void
s_outbox_rewind (s_worker_t *self, int64_t delay)
{
    self->sent_any = false;
    self->inflight = 0;
    self->resend_at = zclock_mono () + delay;
    self->progress_at = self->resend_at;
}

static int
s_on_ingest (s_worker_t *self)
{
    int rc = 0;
    for (int n = 0; n < self->cfg->window && rc == 0; n++) {
        if (n > 0 && !(zsock_events (self->ingest) & ZMQ_POLLIN))
            break;
        zmsg_t *msg = zmsg_recv (self->ingest);
        if (!msg)
            break;
        zframe_t *cmd = zmsg_first (msg);
        zframe_t *body = zmsg_next (msg);
        pb_wire_cmd_t command = zmsg_size (msg) == 2
            ? pb_wire_command (zframe_data (cmd), zframe_size (cmd)): PB_WIRE_UNKNOWN;
        uint8_t key [PB_WORKER_KEY_SIZE];
        pb_wire_ack_t ack;
        pb_wire_nak_t nak;
        if (command == PB_WIRE_ACK
        &&  pb_wire_ack_decode (zframe_data (body), zframe_size (body), &ack, NULL, 0) == 0
        &&  pb_worker_store_key_of (self->store, ack.id, key)) {
            zchunk_extend (self->acked, key, sizeof key);
            self->inflight = self->inflight > 0? self->inflight - 1: 0;
            self->progress_at = zclock_mono ();
            self->backoff = 100;
        }
        else
        if (command == PB_WIRE_NAK
        &&  pb_wire_nak_decode (zframe_data (body), zframe_size (body), &nak, NULL, 0) == 0) {
            self->inflight = self->inflight > 0? self->inflight - 1: 0;
            if (nak.code == PB_NAK_UNAVAILABLE) {
                zsys_warning ("pb_worker: journal unavailable, resend in %" PRId64 " ms",
                              self->backoff);
                s_outbox_rewind (self, self->backoff);
                self->backoff = self->backoff * 2 > S_BACKOFF_MAX
                              ? S_BACKOFF_MAX: self->backoff * 2;
            }
            else
            if (nak.has_id && pb_worker_store_key_of (self->store, nak.id, key)) {
                char reason [512];
                snprintf (reason, sizeof reason, "journal refused: %s: %s",
                          pb_nak_code (nak.code), nak.error);
                zsys_warning ("pb_worker: notification refused id=%s code=%s",
                              nak.id, pb_nak_code (nak.code));
                rc = pb_worker_store_outbox_refuse (self->store, key, nak.id, reason);
                //  Its quarantine notice may sort before what was sent
                s_outbox_rewind (self, 0);
            }
        }
        zmsg_destroy (&msg);
    }
    if (rc == 0 && zchunk_size (self->acked)) {
        rc = pb_worker_store_outbox_ack (self->store, zchunk_data (self->acked),
                                         zchunk_size (self->acked) / PB_WORKER_KEY_SIZE);
        zchunk_set (self->acked, NULL, 0);
    }
    if (rc == 0)
        rc = s_outbox_pump (self);
    if (rc)
        self->exit_status = rc;
    return rc? -1: 0;
}

//  --------------------------------------------------------------------------
//  The actor

static int
s_on_pipe (s_worker_t *self)
{
    zmsg_t *msg = zmsg_recv (self->pipe);
    if (!msg)
        return -1;
    char *command = zmsg_popstr (msg);
    int rc = 0;
    if (command && streq (command, "$TERM"))
        rc = -1;
    else
    if (command && streq (command, "VERBOSE"))
        self->verbose = true;
    free (command);
    zmsg_destroy (&msg);
    return rc;
}

static void
s_worker_destroy (s_worker_t **self_p)
{
    s_worker_t *self = *self_p;
    if (!self)
        return;
    if (self->batch) {
        s_batch_clear (self);
        free (self->batch);
    }
    zpoller_destroy (&self->poller);
    zsock_destroy (&self->sub);
    zsock_destroy (&self->ingest);
    zsock_destroy (&self->replay);
    zchunk_destroy (&self->acked);
    pb_worker_store_destroy (&self->store);
    free (self);
    *self_p = NULL;
}

static int
s_worker_open (const pb_worker_cfg_t *cfg, zsock_t *pipe, s_worker_t **self_p)
{
    s_worker_t *self = (s_worker_t *) zmalloc (sizeof *self);
    self->pipe = pipe;
    self->cfg = cfg;
    self->name = cfg->rules->name;
    self->verbose = cfg->verbose;
    self->limits = (pb_limits_t) PB_LIMITS_DEFAULTS;
    self->backoff = 100;
    self->acked = zchunk_new (NULL, 0);
    self->batch = (pb_worker_event_t *) zmalloc (sizeof (pb_worker_event_t)
                                                 * (size_t) cfg->batch_max);
    int rc = pb_worker_store_open (cfg->data_dir, (size_t) cfg->map_size,
                                   cfg->rules, &self->store);
    if (rc == 0) {
        self->batch_last = pb_worker_store_applied_seq (self->store);
        //  Subscribe FIRST, then catch up (Clone pattern)
        self->sub = pb_sock_new (ZMQ_SUB, cfg->fanout, NULL);
        if (self->sub)
            zsock_set_subscribe (self->sub, "");
        self->ingest = pb_sock_new (ZMQ_DEALER, cfg->ingest, NULL);
        self->replay = pb_sock_new (ZMQ_DEALER, cfg->replay, NULL);
        if (!self->sub || !self->ingest || !self->replay)
            rc = PB_EINVAL;
    }
    if (rc == 0)
        self->poller = zpoller_new (pipe, self->ingest, self->replay, NULL);
    if (rc)
        s_worker_destroy (&self);
    else
        *self_p = self;
    return rc;
}

static long
s_timeout (s_worker_t *self)
{
    int64_t now = zclock_mono ();
    int64_t wake = now + 1000;
    if (self->replaying && self->replay_heard + self->cfg->replay_timeout_ms < wake)
        wake = self->replay_heard + self->cfg->replay_timeout_ms;
    if (self->resend_at > now && self->resend_at < wake)
        wake = self->resend_at;
    if (self->inflight && self->progress_at + self->cfg->resend_ms < wake)
        wake = self->progress_at + self->cfg->resend_ms;
    return wake > now? (long) (wake - now): 0;
}

//  Timers: a silent replay is asked again; an outbox without answers is
//  sent again (the journal deduplicates); a pause after 'unavailable' ends
static int
s_on_timers (s_worker_t *self)
{
    int64_t now = zclock_mono ();
    if (self->replaying && now - self->replay_heard >= self->cfg->replay_timeout_ms)
        s_replay_start (self);
    if (self->inflight && now - self->progress_at >= self->cfg->resend_ms)
        s_outbox_rewind (self, 0);
    if (!self->inflight && now >= self->resend_at)
        return s_outbox_pump (self);
    return 0;
}

void
pb_worker_actor (zsock_t *pipe, void *args)
{
    const pb_worker_cfg_t *cfg = (const pb_worker_cfg_t *) args;
    assert (cfg && cfg->rules && cfg->rules->name && cfg->rules->apply);
    s_worker_t *self = NULL;
    int rc = s_worker_open (cfg, pipe, &self);
    zsock_signal (pipe, 0);
    zsock_send (pipe, "i", rc);
    if (rc)
        return;
    zsys_notice ("pb_worker: %s started applied_seq=%" PRIu64 " data_dir=%s",
                 self->name, pb_worker_store_applied_seq (self->store), cfg->data_dir);
    //  Resend the outbox, then catch up
    rc = s_outbox_pump (self);
    if (rc == 0)
        s_replay_start (self);
    while (rc == 0) {
        zsock_t *which = (zsock_t *) zpoller_wait (self->poller, s_timeout (self));
        if (which == pipe)
            rc = s_on_pipe (self);
        else
        if (which == self->ingest)
            rc = s_on_ingest (self);
        else
        if (which == self->replay)
            rc = s_on_replay (self);
        else
        if (which == self->sub)
            rc = s_on_sub (self);
        else
        if (zpoller_terminated (self->poller))
            rc = -1;
        if (rc == 0)
            rc = s_on_timers (self) ? -1: 0;
    }
    int status = self->exit_status;
    zsys_notice ("pb_worker: %s stopping applied_seq=%" PRIu64 " status=%d",
                 self->name, pb_worker_store_applied_seq (self->store), status);
    s_worker_destroy (&self);
    zsock_send (pipe, "i", status);
}

//  --------------------------------------------------------------------------
//  main () of every worker

int
pb_worker_main (const pb_rules_t *rules, int argc, char *argv [])
{
    assert (rules && rules->name);
    const char *n = rules->name;
    char paths [11][80];
    const char *keys [11] = { "data_dir", "ingest", "fanout", "replay", "map_size",
                              "batch_max", "credit", "window", "resend_ms",
                              "replay_timeout_ms", "dump" };
    for (int i = 0; i < 11; i++)
        snprintf (paths [i], sizeof paths [i], "%s/%s", n, keys [i]);
    char data_dir [80], verbose_path [80];
    snprintf (data_dir, sizeof data_dir, "./var/%s", n);
    snprintf (verbose_path, sizeof verbose_path, "%s/verbose", n);
    const pb_config_entry_t table [] = {
        { paths [0], PB_CONFIG_STR, data_dir, 0, 0,
          offsetof (pb_worker_cfg_t, data_dir), "LMDB directory of the store" },
        { paths [1], PB_CONFIG_STR, "tcp://127.0.0.1:7701", 0, 0,
          offsetof (pb_worker_cfg_t, ingest), "journal ingest endpoint" },
        { paths [2], PB_CONFIG_STR, "tcp://127.0.0.1:7702", 0, 0,
          offsetof (pb_worker_cfg_t, fanout), "journal fanout endpoint" },
        { paths [3], PB_CONFIG_STR, "tcp://127.0.0.1:7703", 0, 0,
          offsetof (pb_worker_cfg_t, replay), "journal replay endpoint" },
        { paths [4], PB_CONFIG_INT, "64M", 1 << 20, INT64_C (1) << 40,
          offsetof (pb_worker_cfg_t, map_size), "initial LMDB map size (grows)" },
        { paths [5], PB_CONFIG_INT, "500", 1, 100000,
          offsetof (pb_worker_cfg_t, batch_max), "events per write transaction" },
        { paths [6], PB_CONFIG_INT, "4", 1, 1000,
          offsetof (pb_worker_cfg_t, credit), "replay batches in flight" },
        { paths [7], PB_CONFIG_INT, "1000", 1, 100000,
          offsetof (pb_worker_cfg_t, window), "notifications in flight to ingest" },
        { paths [8], PB_CONFIG_INT, "3000", 10, 3600000,
          offsetof (pb_worker_cfg_t, resend_ms), "resend the unACKed outbox after" },
        { paths [9], PB_CONFIG_INT, "5000", 10, 3600000,
          offsetof (pb_worker_cfg_t, replay_timeout_ms), "re-ask a silent replay after" },
        { paths [10], PB_CONFIG_STR, "", 0, 0,
          offsetof (pb_worker_cfg_t, dump), "print the store in DIR and exit" },
        { verbose_path, PB_CONFIG_BOOL, "false", 0, 0,
          offsetof (pb_worker_cfg_t, verbose), "debug log per message" },
        { NULL, 0, NULL, 0, 0, 0, NULL }
    };
    pb_worker_cfg_t cfg;
    memset (&cfg, 0, sizeof cfg);
    int rc = pb_config_load (table, &cfg, argc, argv, NULL, 0, NULL);
    if (rc == PB_CONFIG_HELP)
        return 0;
    if (rc)
        return 2;
    cfg.rules = rules;
    if (*cfg.dump)
        return pb_worker_dump (cfg.dump, stdout)? 1: 0;
    char ident [80];
    snprintf (ident, sizeof ident, "pb-%s", n);
    zsys_set_logident (ident);
    pb_config_log (table, &cfg);
    zactor_t *actor = zactor_new (pb_worker_actor, &cfg);
    int status = -1;
    if (zsock_recv (actor, "i", &status) == 0 && status == 0) {
        //  Blocks until the actor stops by itself or a signal arrives
        if (zsock_recv (actor, "i", &status) != 0)
            status = 0;
    }
    else
        zsys_error ("pb_worker: %s did not start: %s", n, pb_worker_strerror (status));
    zactor_destroy (&actor);
    return status == 0? 0: 1;
}

//  --------------------------------------------------------------------------
//  Selftest

void
pb_worker_test (bool verbose)
{
    printf (" * pb_worker: ");
    printf ("OK\n");
}
