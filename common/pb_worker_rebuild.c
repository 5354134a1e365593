/*  =========================================================================
    pb_worker_rebuild - a worker's store rebuilt from the log, with no
    side effects (pb-<name> --rebuild DIR, run by pbctl rebuild)

    Part of pb_worker (see pb_worker.h, pb_worker_rebuild). One plain loop
    on the calling thread, over one DEALER on the journal's replay
    endpoint: no fanout, no ingest, so nothing derived here can reach the
    log. Two REPLAYs (credit flow control, one CREDIT per EVENTS batch):
      1. this worker's notify.<name>.quarantined of the whole log, server
         filtered: the causes the log shows quarantined (an event, or a
         redrive that failed again) are marked to be quarantined again;
      2. every event from seq 1 to the target, applied in batches by
         pb_worker_store_apply, the same transaction code as the live
         worker, on a store in rebuild mode (no outbox; origins kept).
    =========================================================================
*/
#include "pb_worker_store.h"
#include "pb_sock.h"
#include "pb_wire.h"

#include <unistd.h>

typedef struct {
    const pb_worker_cfg_t *cfg;         //  configuration (borrowed)
    pb_worker_store_t *store;           //  the store being rebuilt (owned)
    zsock_t *replay;                    //  DEALER to the journal (owned)
    pb_limits_t limits;                 //  envelope decoding limits
    pb_worker_event_t *batch;           //  events to apply (owned)
    size_t batch_size;                  //  how many are in batch
    uint64_t next;                      //  seq expected next
    uint64_t target;                    //  last seq to apply
    bool progress;                      //  stderr is a terminal
    int64_t shown;                      //  when progress was last shown
} s_rebuild_t;

typedef int (s_event_fn) (s_rebuild_t *self, const void *bytes, size_t size);

//  Wait for one message on the replay socket, up to replay_timeout_ms
static zmsg_t *
s_recv (s_rebuild_t *self)
{
    zpoller_t *poller = zpoller_new (self->replay, NULL);
    zmsg_t *msg = NULL;
    if (zpoller_wait (poller, (int) self->cfg->replay_timeout_ms) == self->replay)
        msg = zmsg_recv (self->replay);
    zpoller_destroy (&poller);
    return msg;
}

static int
s_send (s_rebuild_t *self, const char *command, const uint8_t *map, size_t size)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, command);
    if (map)
        zmsg_addmem (msg, map, size);
    return zmsg_send (&msg, self->replay) == 0? 0: PB_EIO;
}

//  Refusal or silence of the journal, said once
static int
s_refused (zmsg_t *msg, const char *what)
{
    if (!msg) {
        zsys_error ("pb_worker: rebuild: the journal did not answer %s", what);
        return PB_ETIMEDOUT;
    }
    zframe_t *body = zmsg_next (msg);
    pb_wire_error_t error;
    if (body && pb_wire_error_decode (zframe_data (body), zframe_size (body),
                                      &error, NULL, 0) == 0)
        zsys_error ("pb_worker: rebuild: %s refused: %s", what, error.error);
    else
        zsys_error ("pb_worker: rebuild: unexpected answer to %s", what);
    return PB_EPROTO;
}

//  One REPLAY from..to (prefix NULL: every type), 'fn' for every event
static int
s_replay (s_rebuild_t *self, uint64_t from, uint64_t to, const char *prefix,
          s_event_fn *fn)
{
    uint8_t map [PB_WIRE_REQUEST_MAX];
    size_t size = 0;
    const char *prefixes [1] = { prefix };
    int rc = pb_wire_replay_encode (from, to, prefix? prefixes: NULL, prefix? 1: 0,
                                    (uint32_t) self->cfg->credit, map, sizeof map, &size);
    if (rc == 0)
        rc = s_send (self, "REPLAY", map, size);
    while (rc == 0) {
        zmsg_t *msg = s_recv (self);
        zframe_t *command = msg? zmsg_first (msg): NULL;
        pb_wire_cmd_t cmd = command? pb_wire_command (zframe_data (command),
                                                      zframe_size (command))
                                   : PB_WIRE_UNKNOWN;
        if (cmd == PB_WIRE_EVENTS) {
            for (zframe_t *f = zmsg_next (msg); f && rc == 0; f = zmsg_next (msg))
                rc = fn (self, zframe_data (f), zframe_size (f));
            if (rc == 0 && pb_wire_credit_encode (1, map, sizeof map, &size) == 0)
                rc = s_send (self, "CREDIT", map, size);
        }
        else
        if (cmd == PB_WIRE_END) {
            zmsg_destroy (&msg);
            break;
        }
        else
            rc = s_refused (msg, "REPLAY");
        zmsg_destroy (&msg);
        if (zsys_interrupted)
            rc = PB_EINTR;
    }
    return rc;
}

//  Pass 1: a quarantine notice of this worker, for an event or a redrive
//  (not a refused notification: those are the nak/ records)
static int
s_on_notice (s_rebuild_t *self, const void *bytes, size_t size)
{
    pb_envelope_t *env = NULL;
    if (pb_envelope_decode (NULL, 0, bytes, size, PB_ENVELOPE_STORED,
                            &self->limits, &env, NULL, 0) != PB_NAK_NONE)
        return 0;                       //  Not readable: not ours to judge
    pb_worker_store_note_quarantine (self->store, env);
    pb_envelope_destroy (&env);
    return 0;
}

static int
s_flush (s_rebuild_t *self)
{
    int rc = 0;
    if (self->batch_size)
        rc = pb_worker_store_apply (self->store, self->batch, self->batch_size);
    for (size_t i = 0; i < self->batch_size; i++)
        pb_envelope_destroy (&self->batch [i].env);
    self->batch_size = 0;
    if (self->progress && zclock_mono () - self->shown > 200) {
        self->shown = zclock_mono ();
        fprintf (stderr, "\rrebuild %s: %" PRIu64 "/%" PRIu64 " events",
                 self->cfg->rules->name, pb_worker_store_applied_seq (self->store),
                 self->target);
    }
    return rc;
}

//  Pass 2: every event, in seq order, as the live worker takes them
static int
s_on_event (s_rebuild_t *self, const void *bytes, size_t size)
{
    pb_worker_event_t *event = &self->batch [self->batch_size];
    uint64_t seq = pb_worker_event_read (event, self->cfg->rules, &self->limits,
                                         NULL, 0, bytes, size);
    if (seq != self->next) {
        pb_envelope_destroy (&event->env);
        zsys_error ("pb_worker: rebuild: replay sent seq %" PRIu64 ", expected %"
                    PRIu64, seq, self->next);
        return PB_EPROTO;
    }
    self->batch_size++;
    self->next++;
    return self->batch_size == (size_t) self->cfg->batch_max? s_flush (self): 0;
}

int
pb_worker_rebuild (const pb_worker_cfg_t *cfg)
{
    assert (cfg && cfg->rules && *cfg->rebuild);
    s_rebuild_t self_ = { .cfg = cfg, .limits = PB_LIMITS_DEFAULTS, .next = 1,
                          .progress = isatty (2) };
    s_rebuild_t *self = &self_;
    int rc = pb_worker_store_open (cfg->rebuild, (size_t) cfg->map_size, cfg->rules,
                                   &self->store);
    if (rc == 0 && pb_worker_store_applied_seq (self->store) > 0) {
        zsys_error ("pb_worker: rebuild: %s is not an empty store", cfg->rebuild);
        rc = PB_EINVAL;
    }
    if (rc == 0)
        rc = pb_worker_store_rebuild_mode (self->store);
    if (rc == 0) {
        pb_sock_opts_t opts = PB_SOCK_OPTS_DEFAULTS;
        zcert_t *cert = NULL;
        char server_key [41];
        rc = pb_sock_client_curve (&opts, cfg->cert, cfg->server_key, cfg->rules->name,
                                   &cert, server_key);
        if (rc == 0)
            self->replay = pb_sock_new (ZMQ_DEALER, cfg->replay, &opts);
        zcert_destroy (&cert);
        if (!self->replay)
            rc = PB_EINVAL;
    }
    //  The head now: the rebuild goes through the target, the notices are
    //  read to the head (a notice may come long after its cause)
    pb_wire_status_t status = { 0 };
    if (rc == 0)
        rc = s_send (self, "STATUS", NULL, 0);
    if (rc == 0) {
        zmsg_t *msg = s_recv (self);
        zframe_t *command = msg? zmsg_first (msg): NULL;
        zframe_t *body = msg? zmsg_next (msg): NULL;
        if (!command || !zframe_streq (command, "STATUS") || !body
        ||  pb_wire_status_decode (zframe_data (body), zframe_size (body),
                                   &status, NULL, 0))
            rc = s_refused (msg, "STATUS");
        zmsg_destroy (&msg);
    }
    if (rc == 0) {
        self->target = cfg->rebuild_to? (uint64_t) cfg->rebuild_to: status.head;
        if (self->target > status.head) {
            zsys_error ("pb_worker: rebuild: through %" PRIu64 " is beyond the head %"
                        PRIu64, self->target, status.head);
            rc = PB_EPROTO;
        }
    }
    char prefix [160];
    snprintf (prefix, sizeof prefix, "notify.%s.quarantined", cfg->rules->name);
    if (rc == 0 && status.head > 0)
        rc = s_replay (self, 1, status.head, prefix, s_on_notice);
    if (rc == 0 && self->target > 0) {
        self->batch = (pb_worker_event_t *) zmalloc (sizeof (pb_worker_event_t)
                                                     * (size_t) cfg->batch_max);
        rc = s_replay (self, 1, self->target, NULL, s_on_event);
        if (rc == 0)
            rc = s_flush (self);
        for (size_t i = 0; i < self->batch_size; i++)
            pb_envelope_destroy (&self->batch [i].env);
    }
    if (rc == 0 && pb_worker_store_applied_seq (self->store) != self->target) {
        zsys_error ("pb_worker: rebuild: stopped at seq %" PRIu64 " of %" PRIu64,
                    pb_worker_store_applied_seq (self->store), self->target);
        rc = PB_EPROTO;
    }
    if (self->progress && self->target)
        fprintf (stderr, "\rrebuild %s: %" PRIu64 "/%" PRIu64 " events\n",
                 cfg->rules->name, self->store? pb_worker_store_applied_seq (self->store)
                                              : 0, self->target);
    if (rc == 0)
        printf ("rebuilt %s through=%" PRIu64 " head=%" PRIu64 " quarantined=%zu\n",
                cfg->rules->name, self->target, status.head,
                pb_worker_store_skips (self->store));
    free (self->batch);
    zsock_destroy (&self->replay);
    pb_worker_store_destroy (&self->store);
    return rc;
}
