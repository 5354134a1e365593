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
#include "pb_worker_metrics.h"
#include "pb_crash.h"
#include "pb_sock.h"
#include "pb_wire.h"

#define S_BACKOFF_MAX 5000              //  msecs between resends, at most
#define S_ACK_DELAY   20                //  msecs an ACKed key waits for a batch
#define S_HOLD_DELAY  200               //  msecs a held applied_seq waits
#define S_PREALLOC_BATCH 64             //  events of a batch written ahead after

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
    bool prescan;                       //  it is the start's quarantine scan
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
    int64_t ack_at;                     //  commit what the store holds by (mono ms)
    bool verbose;                       //  debug per message
    int exit_status;                    //  what the actor reports at the end
    pb_metrics_t *metrics;              //  /metrics and /health, or NULL (owned)
    pb_worker_progress_t progress;      //  what the snapshots report
    int64_t metrics_at;                 //  next snapshot (mono ms)
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
    if (self->store)
        self->batch_last = pb_worker_store_applied_seq (self->store);
}

static int s_outbox_pump (s_worker_t *self);

//  The store holds something uncommitted from now on: commit it by 'when'
//  at the latest (s_on_timers)
static void
s_hold_until (s_worker_t *self, int64_t when)
{
    if (!pb_worker_store_is_holding (self->store) || when < self->ack_at)
        self->ack_at = when;
}

//  Apply and commit what the batch holds, then send the new notifications
static int
s_batch_flush (s_worker_t *self)
{
    int rc = 0;
    if (self->batch_size) {
        if (!pb_worker_store_is_holding (self->store))
            self->ack_at = zclock_mono () + S_HOLD_DELAY;
        size_t count = self->batch_size;
        rc = pb_worker_store_apply (self->store, self->batch, count);
        s_batch_clear (self);
        if (rc == 0)
            s_outbox_pump (self);
        //  Live batches are small, and their commits are the ones the
        //  latency waits on; a catch-up's large ones would only pay twice
        if (rc == 0 && count <= S_PREALLOC_BATCH)
            rc = pb_worker_store_prealloc (self->store);
        if (rc)
            self->exit_status = rc;
    }
    return rc;
}

//  Take one logged event if it is the next one. Returns 0 (taken or
//  already applied), or 1 for a gap (the caller asks replay to fill it).
static int
s_batch_take (s_worker_t *self, const char *type, size_t type_len,
              const void *bytes, size_t size)
{
    if (self->batch_size == (size_t) self->cfg->batch_max
    &&  s_batch_flush (self))
        return -1;
    pb_worker_event_t *event = &self->batch [self->batch_size];
    uint64_t seq = pb_worker_event_read (event, self->cfg->rules, &self->limits,
                                         type, type_len, bytes, size);
    if (seq <= self->batch_last) {
        pb_envelope_destroy (&event->env);  //  Applied already (Clone pattern)
        return 0;
    }
    if (seq != self->batch_last + 1) {
        pb_envelope_destroy (&event->env);
        return 1;
    }
    if (!event->env && !event->skipped)
        zsys_warning ("pb_worker: cannot decode seq=%" PRIu64 ": %s", seq, event->error);
    self->batch_size++;
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

//  The catch-up, or at start the scan before it: the log is the record
//  of what this worker quarantined (EVENTS.md, "Every worker"), so its own
//  notify.<name>.quarantined after applied_seq (a store that lost its
//  progress: empty, restored, rolled back) say which events to quarantine
//  again rather than apply when they come (pb_worker_store_skip). A
//  notice always follows its cause, so the scan starts at applied_seq + 1
//  too; the journal filters it, so on a store that is up to date it costs
//  one round trip.
static void
s_replay_start (s_worker_t *self)
{
    uint8_t buf [PB_WIRE_REQUEST_MAX];
    size_t len = 0;
    uint64_t from = pb_worker_store_applied_seq (self->store) + 1;
    char prefix [160];
    snprintf (prefix, sizeof prefix, "notify.%s.quarantined", self->name);
    const char *prefixes [1] = { prefix };
    int rc = pb_wire_replay_encode (from, 0, self->prescan? prefixes: NULL,
                                    self->prescan? 1: 0, (uint32_t) self->cfg->credit,
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

//  Receive the next frame of a multipart message into 'frame' (reused):
//  false if there is none (the message ended, or the socket failed)
static bool
s_recv_more (void *handle, zmq_msg_t *frame)
{
    return zmq_msg_more (frame) && zmq_msg_recv (frame, handle, 0) != -1;
}

//  Receive the next message without waiting, into two reused frames.
//  Returns -1 if nothing is queued, 1 for a message of exactly two frames
//  [first][second], 0 for any other shape (read whole and dropped)
static int
s_recv_pair (void *handle, zmq_msg_t *first, zmq_msg_t *second)
{
    if (zmq_msg_recv (first, handle, ZMQ_DONTWAIT) == -1)
        return -1;
    bool pair = zmq_msg_more (first) && zmq_msg_recv (second, handle, 0) != -1;
    if (pair && zmq_msg_more (second)) {
        pair = false;
        while (s_recv_more (handle, second))
            ;
    }
    return pair? 1: 0;
}

//  Read with zmq_msg_recv into one reused frame rather than zmsg_recv: an
//  EVENTS message holds replay_batch events, and a zframe each (two
//  mallocs and frees) was a tenth of a catch-up's time.
static int
s_on_replay (s_worker_t *self)
{
    void *handle = zsock_resolve (self->replay);
    zmq_msg_t frame;
    zmq_msg_init (&frame);
    if (zmq_msg_recv (&frame, handle, ZMQ_DONTWAIT) == -1) {
        zmq_msg_close (&frame);
        return 0;
    }
    self->replay_heard = zclock_mono ();
    pb_wire_cmd_t command = pb_wire_command (zmq_msg_data (&frame), zmq_msg_size (&frame));
    int rc = 0;
    if (command == PB_WIRE_EVENTS && self->prescan) {
        while (s_recv_more (handle, &frame)) {
            pb_envelope_t *env = NULL;
            if (pb_envelope_decode (NULL, 0, zmq_msg_data (&frame), zmq_msg_size (&frame),
                                    PB_ENVELOPE_STORED, &self->limits, &env,
                                    NULL, 0) == PB_NAK_NONE)
                pb_worker_store_note_quarantine (self->store, env);
            pb_envelope_destroy (&env);
        }
        s_replay_credit (self);
    }
    else
    if (command == PB_WIRE_END && self->prescan) {
        self->prescan = false;
        if (pb_worker_store_skips (self->store))
            zsys_notice ("pb_worker: the log shows %zu events quarantined after "
                         "applied_seq=%" PRIu64 ": quarantined again when they come",
                         pb_worker_store_skips (self->store),
                         pb_worker_store_applied_seq (self->store));
        s_replay_start (self);
    }
    else
    if (command == PB_WIRE_EVENTS) {
        bool gap = false;
        while (!gap && rc >= 0 && s_recv_more (handle, &frame)) {
            rc = s_batch_take (self, NULL, 0, zmq_msg_data (&frame), zmq_msg_size (&frame));
            gap = rc == 1;
        }
        //  One transaction (one sync) may span several EVENTS messages:
        //  while the next one is already queued and the batch has room,
        //  the commit waits for it (s_batch_take commits a full batch)
        bool more = rc == 0 && !gap
                 && self->batch_size < (size_t) self->cfg->batch_max
                 && (zsock_events (self->replay) & ZMQ_POLLIN);
        if (rc >= 0 && !more)
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
        //  Events held for the next EVENTS are committed first
        if (s_recv_more (handle, &frame)
        &&  pb_wire_end_decode (zmq_msg_data (&frame), zmq_msg_size (&frame),
                                &end, NULL, 0) == 0
        &&  (rc = s_batch_flush (self)) == 0) {
            self->replaying = false;
            s_sub_poll (self, true);
            self->progress.caught_up |= end.head <= pb_worker_store_applied_seq (self->store);
            self->progress.head = end.head > self->progress.head? end.head: self->progress.head;
            self->progress.heard_at = zclock_mono ();
            if (end.head < pb_worker_store_applied_seq (self->store))
                zsys_error ("pb_worker: store is ahead of the log applied_seq=%"
                            PRIu64 " head=%" PRIu64 " (wrong journal or data_dir?)",
                            pb_worker_store_applied_seq (self->store), end.head);
            zsys_notice ("pb_worker: caught up applied_seq=%" PRIu64 " head=%" PRIu64,
                         pb_worker_store_applied_seq (self->store), end.head);
        }
    }
    else
    if (command == PB_WIRE_ERROR)
        zsys_warning ("pb_worker: replay refused the request");
    //  Whatever is left of the message (a gap stops early) is dropped
    while (s_recv_more (handle, &frame))
        ;
    zmq_msg_close (&frame);
    return rc < 0? -1: 0;
}

//  --------------------------------------------------------------------------
//  Fanout

static int
s_on_sub (s_worker_t *self)
{
    int rc = 0;
    bool gap = false;
    void *handle = zsock_resolve (self->sub);
    zmq_msg_t type, body;
    zmq_msg_init (&type);
    zmq_msg_init (&body);
    //  Drain what is queued, up to a batch, then commit once
    for (int n = 0; n < self->cfg->batch_max && !gap && rc >= 0; n++) {
        //  A fanout message is [type][envelope]; anything else is dropped
        int pair = s_recv_pair (handle, &type, &body);
        if (pair < 0)
            break;
        if (pair == 0)
            continue;
        if (zmq_msg_size (&type) == 13
        &&  memcmp (zmq_msg_data (&type), "sys.heartbeat", 13) == 0) {
            uint64_t head = 0;
            int64_t ts = 0;
            if (pb_wire_heartbeat_decode (zmq_msg_data (&body), zmq_msg_size (&body),
                                          &head, &ts, NULL, 0) == 0) {
                gap = head > self->batch_last;
                self->progress.head = head;
                self->progress.head_ts = ts;
                self->progress.heard_at = zclock_mono ();
            }
        }
        else {
            rc = s_batch_take (self, (const char *) zmq_msg_data (&type),
                               zmq_msg_size (&type), zmq_msg_data (&body),
                               zmq_msg_size (&body));
            gap = rc == 1;
        }
    }
    zmq_msg_close (&type);
    zmq_msg_close (&body);
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

//  Send the whole outbox again: after a silence, or 'unavailable'. The
//  ACKed keys are deleted first, so that only unanswered ones go again.
static int
s_outbox_rewind (s_worker_t *self, int64_t delay)
{
    int rc = 0;
    if (zchunk_size (self->acked) || pb_worker_store_outbox_acks_held (self->store)) {
        rc = pb_worker_store_outbox_ack (self->store, zchunk_data (self->acked),
                                         zchunk_size (self->acked) / PB_WORKER_KEY_SIZE);
        zchunk_set (self->acked, NULL, 0);
    }
    self->sent_any = false;
    self->inflight = 0;
    self->resend_at = zclock_mono () + delay;
    self->progress_at = self->resend_at;
    return rc;
}

static int
s_on_ingest (s_worker_t *self)
{
    int rc = 0;
    //  Reused frames, no zmsg and no ZMQ_EVENTS query per answer: a
    //  catch-up reads one answer for each notification it derives
    void *handle = zsock_resolve (self->ingest);
    zmq_msg_t cmd, body;
    zmq_msg_init (&cmd);
    zmq_msg_init (&body);
    for (int n = 0; n < self->cfg->window && rc == 0; n++) {
        int pair = s_recv_pair (handle, &cmd, &body);
        if (pair < 0)
            break;
        pb_wire_cmd_t command = pair
            ? pb_wire_command (zmq_msg_data (&cmd), zmq_msg_size (&cmd)): PB_WIRE_UNKNOWN;
        const void *data = zmq_msg_data (&body);
        size_t size = zmq_msg_size (&body);
        uint8_t key [PB_WORKER_KEY_SIZE];
        pb_wire_ack_t ack;
        pb_wire_nak_t nak;
        if (command == PB_WIRE_ACK
        &&  pb_wire_ack_decode (data, size, &ack, NULL, 0) == 0
        &&  pb_worker_store_key_of (self->store, ack.id, key)) {
            zchunk_extend (self->acked, key, sizeof key);
            self->inflight = self->inflight > 0? self->inflight - 1: 0;
            self->progress_at = zclock_mono ();
            self->backoff = 100;
            self->progress.acked++;
        }
        else
        if (command == PB_WIRE_NAK
        &&  pb_wire_nak_decode (data, size, &nak, NULL, 0) == 0) {
            self->inflight = self->inflight > 0? self->inflight - 1: 0;
            if (nak.code == PB_NAK_UNAVAILABLE) {
                self->progress.unavailable++;
                zsys_warning ("pb_worker: journal unavailable, resend in %" PRId64 " ms",
                              self->backoff);
                rc = s_outbox_rewind (self, self->backoff);
                self->backoff = self->backoff * 2 > S_BACKOFF_MAX
                              ? S_BACKOFF_MAX: self->backoff * 2;
            }
            else
            if (!nak.has_id || !pb_worker_store_key_of (self->store, nak.id, key)) {
                //  Cannot tell which: our envelopes always carry our ids,
                //  so send them all again, slowly, and say so
                zsys_warning ("pb_worker: refusal without a known id code=%s",
                              pb_nak_code (nak.code));
                rc = s_outbox_rewind (self, S_BACKOFF_MAX);
            }
            else {
                char reason [512];
                snprintf (reason, sizeof reason, "journal refused: %s: %s",
                          pb_nak_code (nak.code), nak.error);
                zsys_warning ("pb_worker: notification refused id=%s code=%s",
                              nak.id, pb_nak_code (nak.code));
                self->progress.refused++;
                rc = pb_worker_store_outbox_refuse (self->store, key, nak.id, reason);
                //  Its quarantine notice may sort before what was sent
                if (rc == 0)
                    rc = s_outbox_rewind (self, 0);
            }
        }
    }
    zmq_msg_close (&cmd);
    zmq_msg_close (&body);
    //  The deletions ride on the next batch's commit (one sync, not two,
    //  and an event that comes meanwhile does not wait behind a sync);
    //  the timers commit them alone if no batch comes soon
    if (rc == 0 && zchunk_size (self->acked)) {
        s_hold_until (self, zclock_mono () + S_ACK_DELAY);
        pb_worker_store_outbox_ack_later (self->store, zchunk_data (self->acked),
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
    pb_metrics_destroy (&self->metrics);
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
        pb_worker_store_set_prealloc (self->store, (uint64_t) cfg->prealloc);
        pb_worker_store_hold_skips (self->store);
        self->batch_last = pb_worker_store_applied_seq (self->store);
        //  Subscribe FIRST, then catch up (Clone pattern). No ZMTP
        //  heartbeats on the SUB: it is left unread during catch-up, and a
        //  heartbeat timeout on an engine stalled by a full pipe trips
        //  libzmq 4.3's "_input_stopped" assertion (zeromq/libzmq#3937,
        //  seen here under a flood). The journal's sys.heartbeat tells
        //  us what the ZMTP one would.
        //  CurveZMQ with the worker's own certificate when configured
        pb_sock_opts_t opts = PB_SOCK_OPTS_DEFAULTS;
        zcert_t *cert = NULL;
        char server_key [41];
        rc = pb_sock_client_curve (&opts, cfg->cert, cfg->server_key, self->name,
                                   &cert, server_key);
        pb_sock_opts_t sub_opts = opts;
        sub_opts.heartbeat_ivl = 0;
        sub_opts.heartbeat_timeout = 0;
        if (rc == 0) {
            self->sub = pb_sock_new (ZMQ_SUB, cfg->fanout, &sub_opts);
            if (self->sub)
                zsock_set_subscribe (self->sub, "");
            self->ingest = pb_sock_new (ZMQ_DEALER, cfg->ingest, &opts);
            self->replay = pb_sock_new (ZMQ_DEALER, cfg->replay, &opts);
            if (!self->sub || !self->ingest || !self->replay)
                rc = PB_EINVAL;
        }
        zcert_destroy (&cert);
    }
    self->progress.name = self->name;
    if (rc == 0 && *cfg->metrics)
        rc = pb_metrics_open (cfg->metrics, self->name, &self->metrics)? PB_EINVAL: 0;
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
    if (pb_worker_store_is_holding (self->store) && self->ack_at < wake)
        wake = self->ack_at;
    return wake > now? (long) (wake - now): 0;
}

//  Timers: a silent replay is asked again; an outbox without answers is
//  sent again (the journal deduplicates); a pause after 'unavailable' ends
static int
s_on_timers (s_worker_t *self)
{
    int64_t now = zclock_mono ();
    if (self->replaying && now - self->replay_heard >= self->cfg->replay_timeout_ms) {
        if (s_batch_flush (self))
            return -1;                  //  Events of a batch held for more
        s_replay_start (self);
    }
    int rc = 0;
    if (self->inflight && now - self->progress_at >= self->cfg->resend_ms)
        rc = s_outbox_rewind (self, 0);
    if (rc == 0 && pb_worker_store_is_holding (self->store) && now >= self->ack_at)
        rc = pb_worker_store_outbox_ack (self->store, NULL, 0);
    if (rc) {
        self->exit_status = rc;
        return -1;
    }
    if (self->metrics && now >= self->metrics_at) {
        self->progress.replaying = self->replaying;
        self->progress.inflight = self->inflight;
        rc = pb_worker_metrics_publish (self->metrics, self->store, &self->progress);
        self->metrics_at = now + 1000;
        if (rc) {
            self->exit_status = rc;
            return -1;
        }
    }
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
    //  Resend the outbox, then catch up (after the quarantine scan)
    rc = s_outbox_pump (self);
    self->prescan = true;
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
    if (self->exit_status == 0 && pb_worker_store_is_holding (self->store))
        pb_worker_store_outbox_ack (self->store, NULL, 0);
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
    char paths [17][80];
    const char *keys [17] = { "data_dir", "ingest", "fanout", "replay", "map_size",
                              "batch_max", "credit", "window", "resend_ms",
                              "replay_timeout_ms", "dump", "rebuild", "rebuild_to",
                              "metrics", "cert", "server_key", "prealloc" };
    for (int i = 0; i < 17; i++)
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
        { paths [16], PB_CONFIG_INT, "4M", 0, INT64_C (1) << 30,
          offsetof (pb_worker_cfg_t, prealloc),
          "bytes of the store's data file kept written ahead of its end (0: off)" },
        { paths [5], PB_CONFIG_INT, "4000", 1, 100000,
          offsetof (pb_worker_cfg_t, batch_max), "events per write transaction" },
        { paths [6], PB_CONFIG_INT, "4", 1, 1000,
          offsetof (pb_worker_cfg_t, credit), "replay batches in flight" },
        { paths [7], PB_CONFIG_INT, "16000", 1, 100000,
          offsetof (pb_worker_cfg_t, window), "notifications in flight to ingest" },
        { paths [8], PB_CONFIG_INT, "3000", 10, 3600000,
          offsetof (pb_worker_cfg_t, resend_ms), "resend the unACKed outbox after" },
        { paths [9], PB_CONFIG_INT, "5000", 10, 3600000,
          offsetof (pb_worker_cfg_t, replay_timeout_ms), "re-ask a silent replay after" },
        { paths [10], PB_CONFIG_STR, "", 0, 0,
          offsetof (pb_worker_cfg_t, dump), "print the store in DIR and exit" },
        { paths [11], PB_CONFIG_STR, "", 0, 0,
          offsetof (pb_worker_cfg_t, rebuild),
          "rebuild a store in DIR from the log, publishing nothing, and exit" },
        { paths [12], PB_CONFIG_INT, "0", 0, INT64_MAX,
          offsetof (pb_worker_cfg_t, rebuild_to), "rebuild through this seq (0: the head)" },
        { paths [13], PB_CONFIG_STR, "", 0, 0, offsetof (pb_worker_cfg_t, metrics),
          "HOST:PORT serving HTTP /metrics and /health; empty: off" },
        { paths [14], PB_CONFIG_STR, "", 0, 0, offsetof (pb_worker_cfg_t, cert),
          "CurveZMQ: this worker's certificate (public file; secret in FILE_secret)" },
        { paths [15], PB_CONFIG_STR, "", 0, 0, offsetof (pb_worker_cfg_t, server_key),
          "CurveZMQ: the journal's public key (Z85) or its certificate file" },
        { verbose_path, PB_CONFIG_BOOL, "false", 0, 0,
          offsetof (pb_worker_cfg_t, verbose), "debug log per message" },
        { NULL, 0, NULL, 0, 0, 0, NULL }
    };
    pb_worker_cfg_t cfg;
    memset (&cfg, 0, sizeof cfg);
    int rc = pb_config_load (table, &cfg, argc, argv, NULL, 0, NULL);
    if (rc == PB_CONFIG_HELP || rc == PB_CONFIG_CHECKED)
        return 0;
    if (rc)
        return 2;
    cfg.rules = rules;
    if (*cfg.dump) {
        zsys_set_logstream (stderr);    //  stdout carries the dump alone
        return pb_worker_dump (cfg.dump, stdout)? 1: 0;
    }
    if (*cfg.rebuild) {
        zsys_set_logstream (stderr);    //  stdout carries the result alone
        zsys_set_logident (n);
        return pb_worker_rebuild (&cfg)? 1: 0;
    }
    char ident [80];
    snprintf (ident, sizeof ident, "pb-%s", n);
    zsys_set_logident (ident);
    pb_config_log (table, &cfg);
    zactor_t *actor = zactor_new (pb_worker_actor, &cfg);
    //  Startup status, then the exit status. A signal interrupts the wait
    //  and also stops the actor, which then reports: wait for that report,
    //  so the actor has released its sockets before zactor_destroy (else
    //  the two race at exit and czmq aborts on a dangling pipe).
    int status = PB_EINTR;
    while (zsock_recv (actor, "i", &status) == -1 && zsys_interrupted)
        ;
    if (status == 0) {
        while (zsock_recv (actor, "i", &status) == -1)
            if (!zsys_interrupted) {
                status = PB_EIO;
                break;
            }
    }
    else
        zsys_error ("pb_worker: %s did not start: %s", n, pb_worker_strerror (status));
    zactor_destroy (&actor);
    return status == 0? 0: 1;
}

//  --------------------------------------------------------------------------
//  Selftest: the actor against a fake journal on inproc (sockets driven by
//  hand), through catch-up, ACK/NAK, a live gap, a poison event and a
//  heartbeat beyond applied_seq

static int
s_test_apply (pb_apply_t *ctx, const pb_envelope_t *event)
{
    char country [8], key [32];
    if (event->type_len != 13 || memcmp (event->type, "registry.ally", 13))
        return 0;
    if (!pb_apply_str (pb_msgpack_get (event->data, "country"), country, sizeof country))
        return pb_apply_poison (ctx, "no country");
    if (streq (country, "XXX") && !pb_apply_get (ctx, "seen/CUR", NULL))
        return pb_apply_poison (ctx, "XXX is poison until CUR is seen");
    snprintf (key, sizeof key, "seen/%s", country);
    int rc = pb_apply_put (ctx, key, "\xc3", 1);
    //  200 KB a country: the 1 MiB map fills up and must grow
    snprintf (key, sizeof key, "blob/%s", country);
    void *blob = zmalloc (200000);
    if (rc == 0)
        rc = pb_apply_put (ctx, key, blob, 200000);
    free (blob);
    msgpack_packer *pk = pb_apply_emit_begin (ctx, "test.seen");
    msgpack_pack_map (pk, 1);
    msgpack_pack_str (pk, 7);
    msgpack_pack_str_body (pk, "country", 7);
    msgpack_pack_str (pk, 3);
    msgpack_pack_str_body (pk, country, 3);
    return rc? rc: pb_apply_emit_end (ctx);
}

static zframe_t *
s_test_event (uint64_t seq, const char *country)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    char id [32];
    snprintf (id, sizeof id, "e%" PRIu64, seq);
    const char *text [] = { "id", id, "src", "t", "type", "registry.ally" };
    msgpack_pack_map (&pk, 6);
    for (int i = 0; i < 6; i++) {
        msgpack_pack_str (&pk, strlen (text [i]));
        msgpack_pack_str_body (&pk, text [i], strlen (text [i]));
    }
    const char *data [] = { "country", country, "name", "N", "joined", "1949-04-04" };
    msgpack_pack_str (&pk, 4);
    msgpack_pack_str_body (&pk, "data", 4);
    msgpack_pack_map (&pk, 3);
    for (int i = 0; i < 6; i++) {
        msgpack_pack_str (&pk, strlen (data [i]));
        msgpack_pack_str_body (&pk, data [i], strlen (data [i]));
    }
    msgpack_pack_str (&pk, 3);
    msgpack_pack_str_body (&pk, "seq", 3);
    msgpack_pack_uint64 (&pk, seq);
    msgpack_pack_str (&pk, 2);
    msgpack_pack_str_body (&pk, "ts", 2);
    msgpack_pack_int64 (&pk, 0);
    zframe_t *frame = zframe_new (buf.data, buf.size);
    msgpack_sbuffer_destroy (&buf);
    return frame;
}

//  ops.redrive {worker: wtest, seq: target} logged as 'seq'
static zframe_t *
s_test_redrive (uint64_t seq, uint64_t target)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    const char *text [] = { "id", "r", "src", "ops", "type", "ops.redrive",
                            "data", "worker", "wtest", "seq" };
    msgpack_pack_map (&pk, 6);
    for (int i = 0; i < 10; i++) {
        if (i == 7)
            msgpack_pack_map (&pk, 2);
        msgpack_pack_str (&pk, strlen (text [i]));
        msgpack_pack_str_body (&pk, text [i], strlen (text [i]));
    }
    msgpack_pack_uint64 (&pk, target);
    msgpack_pack_str (&pk, 3);
    msgpack_pack_str_body (&pk, "seq", 3);
    msgpack_pack_uint64 (&pk, seq);
    msgpack_pack_str (&pk, 2);
    msgpack_pack_str_body (&pk, "ts", 2);
    msgpack_pack_int64 (&pk, 0);
    zframe_t *frame = zframe_new (buf.data, buf.size);
    msgpack_sbuffer_destroy (&buf);
    return frame;
}

static void
s_test_publish (zsock_t *fanout, const char *type, zframe_t *event)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, type);
    zmsg_append (msg, &event);
    zmsg_send (&msg, fanout);
}

//  Expect a REPLAY from 'from' on the fake replay socket; answer with the
//  events from..to (country of seq i: countries [i - 1]) and END
static void
s_test_serve_replay (zsock_t *replay, uint64_t from, uint64_t to,
                     const char **countries)
{
    zmsg_t *msg = NULL;
    pb_wire_replay_t req;
    //  CREDIT messages of earlier replays may come first, and at start the
    //  scan for quarantine notices (prefixed): none here, END at once
    while (true) {
        msg = zmsg_recv (replay);
        assert (msg && zmsg_size (msg) == 3);
        zmsg_first (msg);
        zframe_t *cmd = zmsg_next (msg);
        zframe_t *body = zmsg_next (msg);
        if (zframe_streq (cmd, "REPLAY")) {
            assert (pb_wire_replay_decode (zframe_data (body), zframe_size (body),
                                           &req, NULL, 0) == 0);
            if (req.prefix_count == 0)
                break;
            assert (req.from == from);
            zmsg_t *end = zmsg_new ();
            zmsg_append (end, (zframe_t *[]) { zframe_dup (zmsg_first (msg)) });
            zmsg_addstr (end, "END");
            pb_wire_end_t e = { from - 1, from - 1, 0 };
            uint8_t buf [PB_WIRE_REPLY_MAX];
            size_t len;
            assert (pb_wire_end_encode (&e, buf, sizeof buf, &len) == 0);
            zmsg_addmem (end, buf, len);
            zmsg_send (&end, replay);
        }
        else
            assert (zframe_streq (cmd, "CREDIT"));
        zmsg_destroy (&msg);
    }
    assert (req.from == from);
    zframe_t *peer = zmsg_pop (msg);
    zmsg_destroy (&msg);
    zmsg_t *events = zmsg_new ();
    zmsg_append (events, &peer);
    zmsg_addstr (events, "EVENTS");
    for (uint64_t seq = from; seq <= to; seq++)
        zmsg_append (events, (zframe_t *[]) { s_test_event (seq, countries [seq - 1]) });
    zmsg_t *end = zmsg_new ();
    zmsg_append (end, (zframe_t *[]) { zframe_dup (zmsg_first (events)) });
    zmsg_addstr (end, "END");
    pb_wire_end_t e = { to, to, to - from + 1 };
    uint8_t buf [PB_WIRE_REPLY_MAX];
    size_t len;
    assert (pb_wire_end_encode (&e, buf, sizeof buf, &len) == 0);
    zmsg_addmem (end, buf, len);
    zmsg_send (&events, replay);
    zmsg_send (&end, replay);
}

//  Receive one notification on the fake ingest: returns its id (caller
//  frees) and its type in 'type', and keeps the peer in *peer_p
static char *
s_test_recv_note (zsock_t *ingest, char *type, size_t size, zframe_t **peer_p)
{
    zmsg_t *msg = zmsg_recv (ingest);
    assert (msg && zmsg_size (msg) == 3);
    zframe_destroy (peer_p);
    *peer_p = zmsg_pop (msg);
    char *t = zmsg_popstr (msg);
    snprintf (type, size, "%s", t);
    free (t);
    zframe_t *body = zmsg_pop (msg);
    msgpack_unpacked result;
    msgpack_unpacked_init (&result);
    assert (msgpack_unpack_next (&result, (const char *) zframe_data (body),
                                 zframe_size (body), NULL) == MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *id = pb_msgpack_get (&result.data, "id");
    assert (id && id->type == MSGPACK_OBJECT_STR);
    char *text = strndup (id->via.str.ptr, id->via.str.size);
    assert (!pb_msgpack_get (&result.data, "time"));
    msgpack_unpacked_destroy (&result);
    zframe_destroy (&body);
    zmsg_destroy (&msg);
    return text;
}

static void
s_test_answer (zsock_t *ingest, zframe_t *peer, const char *id, pb_nak_t nak)
{
    uint8_t buf [PB_WIRE_REPLY_MAX];
    size_t len;
    if (nak == PB_NAK_NONE)
        assert (pb_wire_ack_encode (id, strlen (id), 9, buf, sizeof buf, &len) == 0);
    else
        assert (pb_wire_nak_encode (id, strlen (id), nak, "data.x: test", buf,
                                    sizeof buf, &len) == 0);
    zmsg_t *msg = zmsg_new ();
    zmsg_append (msg, (zframe_t *[]) { zframe_dup (peer) });
    zmsg_addstr (msg, nak == PB_NAK_NONE? "ACK": "NAK");
    zmsg_addmem (msg, buf, len);
    zmsg_send (&msg, ingest);
}

static void
s_test_expect_note (zsock_t *ingest, zframe_t **peer_p, const char *want_id,
                    const char *want_type, pb_nak_t answer)
{
    char type [64];
    char *id = s_test_recv_note (ingest, type, sizeof type, peer_p);
    if (!streq (id, want_id) || !streq (type, want_type))
        printf ("\n   got %s %s, want %s %s", id, type, want_id, want_type);
    assert (streq (id, want_id) && streq (type, want_type));
    s_test_answer (ingest, *peer_p, id, answer);
    free (id);
}

static int
s_test_count_fn (const uint8_t *key, const char *type, const void *env,
                 size_t size, void *arg)
{
    (*(int *) arg)++;
    return 0;
}

void
pb_worker_test (bool verbose)
{
    printf (" * pb_worker: ");
    static const pb_rules_t rules = { .name = "wtest", .apply = s_test_apply };
    const char *countries [] = { "FRA", "DEU", "ITA", "XXX", "ESP", "PRT" };
    char dir [] = "/tmp/pb_worker_test_XXXXXX";
    assert (mkdtemp (dir));
    zsock_t *ingest = pb_sock_new (ZMQ_ROUTER, "@inproc://pb_worker_test_in", NULL);
    zsock_t *fanout = pb_sock_new (ZMQ_PUB, "@inproc://pb_worker_test_out", NULL);
    zsock_t *replay = pb_sock_new (ZMQ_ROUTER, "@inproc://pb_worker_test_rp", NULL);
    assert (ingest && fanout && replay);
    zsock_set_rcvtimeo (ingest, 5000);
    zsock_set_rcvtimeo (replay, 5000);
    pb_worker_cfg_t cfg = { .map_size = 1 << 20, .batch_max = 2, .credit = 4,
                            .window = 100, .resend_ms = 200,
                            .replay_timeout_ms = 3000, .verbose = verbose,
                            .rules = &rules };
    snprintf (cfg.data_dir, sizeof cfg.data_dir, "%s", dir);
    strcpy (cfg.ingest, "inproc://pb_worker_test_in");
    strcpy (cfg.fanout, "inproc://pb_worker_test_out");
    strcpy (cfg.replay, "inproc://pb_worker_test_rp");
    zactor_t *actor = zactor_new (pb_worker_actor, &cfg);
    int status = -1;
    assert (zsock_recv (actor, "i", &status) == 0 && status == 0);

    //  Catch-up: seq 1..2 by replay; one ACK, one 'unavailable' (resent)
    zframe_t *peer = NULL;
    s_test_serve_replay (replay, 1, 2, countries);
    s_test_expect_note (ingest, &peer, "wtest/1/0", "test.seen", PB_NAK_NONE);
    s_test_expect_note (ingest, &peer, "wtest/2/0", "test.seen", PB_NAK_UNAVAILABLE);
    s_test_expect_note (ingest, &peer, "wtest/2/0", "test.seen", PB_NAK_NONE);

    //  Live: seq 3, then 5 (a gap: 4..5 come by replay; 4 is poison)
    zclock_sleep (100);                 //  The SUB is polled after END
    zmsg_t *live = zmsg_new ();
    zmsg_addstr (live, "registry.ally");
    zmsg_append (live, (zframe_t *[]) { s_test_event (3, countries [2]) });
    zmsg_send (&live, fanout);
    s_test_expect_note (ingest, &peer, "wtest/3/0", "test.seen", PB_NAK_NONE);
    live = zmsg_new ();
    zmsg_addstr (live, "registry.ally");
    zmsg_append (live, (zframe_t *[]) { s_test_event (5, countries [4]) });
    zmsg_send (&live, fanout);
    s_test_serve_replay (replay, 4, 5, countries);
    s_test_expect_note (ingest, &peer, "wtest/4/0", "notify.wtest.quarantined", PB_NAK_NONE);
    //  The journal refuses ESP's notification: recorded, and announced
    s_test_expect_note (ingest, &peer, "wtest/5/0", "test.seen", PB_NAK_BAD_DATA);
    s_test_expect_note (ingest, &peer, "wtest/5/1000000", "notify.wtest.quarantined",
                        PB_NAK_NONE);

    //  A heartbeat beyond applied_seq is a gap too
    uint8_t buf [PB_WIRE_REPLY_MAX];
    size_t len;
    assert (pb_wire_heartbeat_encode (6, 0, buf, sizeof buf, &len) == 0);
    live = zmsg_new ();
    zmsg_addstr (live, "sys.heartbeat");
    zmsg_addmem (live, buf, len);
    zmsg_send (&live, fanout);
    s_test_serve_replay (replay, 6, 6, countries);
    s_test_expect_note (ingest, &peer, "wtest/6/0", "test.seen", PB_NAK_NONE);

    //  ops.redrive of seq 4: fails again (announced again, caused by the
    //  redrive), then, once CUR is seen, applies, caused by the redrive
    s_test_publish (fanout, "ops.redrive", s_test_redrive (7, 4));
    s_test_expect_note (ingest, &peer, "wtest/7/0", "notify.wtest.quarantined", PB_NAK_NONE);
    s_test_publish (fanout, "registry.ally", s_test_event (8, "CUR"));
    s_test_expect_note (ingest, &peer, "wtest/8/0", "test.seen", PB_NAK_NONE);
    s_test_publish (fanout, "ops.redrive", s_test_redrive (9, 4));
    s_test_expect_note (ingest, &peer, "wtest/9/0", "test.seen", PB_NAK_NONE);
    s_test_publish (fanout, "ops.redrive", s_test_redrive (10, 4));
    zclock_sleep (100);
    zactor_destroy (&actor);

    //  Every notification was ACKed: the ACKed keys held for a later
    //  commit were deleted (by a batch, the timer, or the clean stop)
    pb_worker_store_t *store = NULL;
    assert (pb_worker_store_open (dir, 1 << 20, &rules, &store) == 0);
    int entries = 0;
    assert (pb_worker_store_outbox_scan (store, NULL, s_test_count_fn, &entries) == 0);
    assert (entries == 0);
    uint8_t held [2 * PB_WORKER_KEY_SIZE] = { 0 };
    pb_worker_store_outbox_ack_later (store, held, 2);
    assert (pb_worker_store_outbox_acks_held (store) == 2);
    assert (pb_worker_store_outbox_ack (store, NULL, 0) == 0);
    assert (pb_worker_store_outbox_acks_held (store) == 0);
    pb_worker_store_destroy (&store);

    //  Skipped events alone are held, not committed: lost by a crash (a
    //  replay skips them again), written by the next ack commit
    char hold_dir [] = "/tmp/pb_worker_hold_XXXXXX";
    assert (mkdtemp (hold_dir));
    pb_worker_event_t skips [3];
    memset (skips, 0, sizeof skips);
    for (int k = 0; k < 3; k++) {
        skips [k].seq = (uint64_t) k + 1;
        skips [k].skipped = true;
    }
    assert (pb_worker_store_open (hold_dir, 1 << 20, &rules, &store) == 0);
    pb_worker_store_hold_skips (store);
    assert (pb_worker_store_apply (store, skips, 3) == 0);
    assert (pb_worker_store_applied_seq (store) == 3);
    assert (pb_worker_store_is_holding (store));
    pb_worker_store_destroy (&store);               //  As a kill would
    assert (pb_worker_store_open (hold_dir, 1 << 20, &rules, &store) == 0);
    assert (pb_worker_store_applied_seq (store) == 0);
    pb_worker_store_hold_skips (store);
    assert (pb_worker_store_apply (store, skips, 3) == 0);
    assert (pb_worker_store_outbox_ack (store, NULL, 0) == 0);
    assert (!pb_worker_store_is_holding (store));
    pb_worker_store_destroy (&store);
    assert (pb_worker_store_open (hold_dir, 1 << 20, &rules, &store) == 0);
    assert (pb_worker_store_applied_seq (store) == 3);
    pb_worker_store_destroy (&store);
    char hold_rm [64];
    snprintf (hold_rm, sizeof hold_rm, "rm -rf %s", hold_dir);
    assert (system (hold_rm) == 0);

    //  The canonical dump: applied_seq 6, five countries, two quarantines
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    assert (pb_worker_dump (dir, out) == 0);
    fclose (out);
    if (verbose)
        printf ("\n%s", text);
    assert (strstr (text, "meta applied_seq 000000000000000a\n"));
    assert (strstr (text, "state seen/XXX c3\n"));
    assert (strstr (text, "state seen/PRT c3\n"));
    assert (strstr (text, "state blob/PRT 0000"));     //  The map grew
    assert (!strstr (text, "quarantine 0000000000000004 "));
    assert (strstr (text, "quarantine nak/wtest/5/0 "));
    free (text);
    assert (pb_worker_dump ("/nonexistent/pb_worker", stderr) == PB_WORKER_STORE);

    //  A rebuild's store: what the log shows quarantined (seq 2, as an
    //  older rule refused it) is quarantined with the logged reason, not
    //  applied; nothing goes to the outbox; every key has its origin
    char rebuilt [] = "/tmp/pb_worker_rebuild_XXXXXX";
    assert (mkdtemp (rebuilt));
    assert (pb_worker_store_open (rebuilt, 1 << 20, &rules, &store) == 0);
    assert (pb_worker_store_rebuild_mode (store) == 0);
    pb_worker_store_skip (store, 2, "an older rule refused it");
    assert (pb_worker_store_skips (store) == 1);
    pb_worker_event_t events [3];
    memset (events, 0, sizeof events);
    pb_limits_t limits = PB_LIMITS_DEFAULTS;
    for (uint64_t seq = 1; seq <= 3; seq++) {
        zframe_t *frame = s_test_event (seq, countries [seq - 1]);
        assert (pb_envelope_decode (NULL, 0, zframe_data (frame), zframe_size (frame),
                                    PB_ENVELOPE_STORED, &limits, &events [seq - 1].env,
                                    NULL, 0) == PB_NAK_NONE);
        events [seq - 1].seq = seq;
        zframe_destroy (&frame);
    }
    assert (pb_worker_store_apply (store, events, 3) == 0);
    for (int i = 0; i < 3; i++)
        pb_envelope_destroy (&events [i].env);
    entries = 0;
    assert (pb_worker_store_outbox_scan (store, NULL, s_test_count_fn, &entries) == 0);
    assert (entries == 0);
    pb_worker_store_destroy (&store);
    out = open_memstream (&text, &size);
    assert (pb_worker_dump (rebuilt, out) == 0);
    fclose (out);
    assert (strstr (text, "state seen/FRA c3\n") && strstr (text, "state seen/ITA c3\n"));
    assert (!strstr (text, "state seen/DEU"));
    assert (strstr (text, "quarantine 0000000000000002 "));
    free (text);
    out = open_memstream (&text, &size);
    assert (pb_worker_dump_origin (rebuilt, out) == 0);
    fclose (out);
    assert (strstr (text, "state seen/FRA 1\n") && strstr (text, "state blob/ITA 3\n"));
    assert (strstr (text, "quarantine 0000000000000002 2\n"));
    free (text);
    assert (pb_worker_forget_origin (rebuilt) == 0);
    out = open_memstream (&text, &size);
    assert (pb_worker_dump_origin (rebuilt, out) == 0);
    fclose (out);
    assert (size == 0);
    free (text);
    size_t pending = 7;
    assert (pb_worker_pending (rebuilt, &pending) == 0 && pending == 0);
    assert (pb_worker_pending (dir, &pending) == 0 && pending == 0);
    char rm [128];
    snprintf (rm, sizeof rm, "rm -rf %s", rebuilt);
    assert (system (rm) == 0);

    //  A store that cannot open: the actor reports it and stops
    pb_worker_cfg_t bad = cfg;
    strcpy (bad.data_dir, "/proc/nonexistent/pb_worker");
    actor = zactor_new (pb_worker_actor, &bad);
    assert (zsock_recv (actor, "i", &status) == 0 && status == PB_WORKER_STORE);
    zactor_destroy (&actor);

    zframe_destroy (&peer);
    zsock_destroy (&ingest);
    zsock_destroy (&fanout);
    zsock_destroy (&replay);
    char cmd [128];
    snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
    assert (system (cmd) == 0);
    printf ("OK\n");
}
