/*  =========================================================================
    pb_worker_store - the worker runtime's LMDB store (internal to pb_worker)

    The half of pb_worker that touches LMDB: the four databases, the batch
    transaction (applied again without a poison event), the pb_apply_t the
    rules see, the outbox and the canonical dump. pb_worker.c (sockets)
    is its only user; rules modules use pb_worker.h. Owned by the worker's
    thread.
    =========================================================================
*/
#ifndef PB_WORKER_STORE_H_INCLUDED
#define PB_WORKER_STORE_H_INCLUDED

#include "pb_worker.h"

typedef struct _pb_worker_store_t pb_worker_store_t;

#define PB_WORKER_KEY_SIZE 12           //  outbox key: cause BE64, index BE32

//  One event of a batch: a decoded envelope, or (env NULL) a logged event
//  this worker cannot decode, which is quarantined with 'error', or (env
//  NULL, 'skipped') one of a type the rules have no rule for, which only
//  advances applied_seq. The store
//  marks an event 'poisoned' when the rules refuse it (callers set it
//  false); it stays so if the batch is applied again.
typedef struct {
    pb_envelope_t *env;                 //  decoded event (owned by caller)
    uint64_t seq;                       //  its seq
    char type [129];                    //  its type frame (for env NULL)
    char error [256];                   //  why it cannot be applied
    bool poisoned;                      //  poison: quarantine it instead
    bool skipped;                       //  no rule for its type: seq only
} pb_worker_event_t;

//  Read one logged event into 'event' (cleared first) as every runtime
//  takes it, live or rebuilding: of a type 'rules' have no rule for, not
//  decoded ('skipped': its seq only); else decoded ('env', which the caller
//  owns); else undecodable, with the reason in 'error' (quarantined when
//  applied). 'type' is the fanout's type frame, or NULL (replay). Returns
//  the event's seq, or 0 if not even that can be read.
uint64_t
    pb_worker_event_read (pb_worker_event_t *event, const pb_rules_t *rules,
                          const pb_limits_t *limits, const char *type, size_t type_len,
                          const void *bytes, size_t size);

//  Open or create the store in 'dir'. Returns 0 and sets *store_p, or
//  PB_WORKER_STORE (logged) and leaves it alone.
int
    pb_worker_store_open (const char *dir, size_t map_size,
                          const pb_rules_t *rules, pb_worker_store_t **store_p);

void
    pb_worker_store_destroy (pb_worker_store_t **self_p);

//  The last seq applied (committed, or held: pb_worker_store_hold_skips),
//  and the log time, as committed
uint64_t
    pb_worker_store_applied_seq (pb_worker_store_t *self);
int64_t
    pb_worker_store_now (pb_worker_store_t *self);

//  Apply 'count' events whose seqs follow applied_seq without a gap (those
//  at or below applied_seq are skipped), in one write transaction with
//  applied_seq and the outbox, then commit. Store failures are retried
//  (the map grows when full); returns 0 or the final PB_WORKER_* code
//  (the caller exits).
int
    pb_worker_store_apply (pb_worker_store_t *self,
                           pb_worker_event_t *events, size_t count);

//  Call 'fn' for outbox entries with key after 'after' (NULL: from the
//  start), in key order, until fn returns non-zero. Returns 0, fn's
//  negative code, or a store code.
typedef int (pb_worker_outbox_fn) (const uint8_t *key, const char *type,
                                   const void *env, size_t size, void *arg);
int
    pb_worker_store_outbox_scan (pb_worker_store_t *self, const uint8_t *after,
                                 pb_worker_outbox_fn *fn, void *arg);

//  Delete 'count' ACKed outbox keys (PB_WORKER_KEY_SIZE bytes each,
//  packed), and those held by pb_worker_store_outbox_ack_later, in one
//  transaction that also commits a held applied_seq
//  (pb_worker_store_hold_skips)
int
    pb_worker_store_outbox_ack (pb_worker_store_t *self, const uint8_t *keys,
                                size_t count);

//  Hold 'count' ACKed outbox keys for deletion by the next committed
//  batch (pb_worker_store_apply) or pb_worker_store_outbox_ack: one sync
//  instead of two. Until then a resend of the outbox sends them again,
//  and the journal answers a duplicate with its first seq; a crash only
//  loses the deletion (the notifications are sent again).
void
    pb_worker_store_outbox_ack_later (pb_worker_store_t *self,
                                      const uint8_t *keys, size_t count);

//  From now on, a batch of skipped events alone (pb_worker_event_t
//  'skipped': types without a rule) is not committed: its seq is held, so
//  pb_worker_store_applied_seq counts it, and the next committed batch or
//  pb_worker_store_outbox_ack writes it. For the live runtime, where most
//  wakeups bring only events of other workers and a commit each would
//  mean a sync each; a rebuild commits everything.
void
    pb_worker_store_hold_skips (pb_worker_store_t *self);

//  True if ACKed keys or an applied_seq are held, not yet committed
bool
    pb_worker_store_is_holding (pb_worker_store_t *self);

//  Keep 'ahead' bytes of the store's data file written past LMDB's last
//  page (pb_prealloc: a commit then overwrites, and its sync commits no
//  file system metadata); 0, the default: off
void
    pb_worker_store_set_prealloc (pb_worker_store_t *self, uint64_t ahead);

//  Write ahead, between transactions (after the outbox went out, off the
//  latency of what it carries). A full disk only pauses it (logged once
//  per series). Returns 0, or PB_WORKER_STORE for an I/O error of the
//  store's disk, to be met as a failed commit is: the worker exits.
int
    pb_worker_store_prealloc (pb_worker_store_t *self);

//  How many ACKed keys are held for deletion
size_t
    pb_worker_store_outbox_acks_held (pb_worker_store_t *self);

//  The journal refused the notification at 'key' ('id'): record it in the
//  quarantine db under "nak/<id>", drop it from the outbox and emit
//  notify.<name>.quarantined for it (unless it is one itself).
int
    pb_worker_store_outbox_refuse (pb_worker_store_t *self, const uint8_t *key,
                                   const char *id, const char *reason);

//  Make this store a rebuild's (pbctl rebuild): notifications are derived
//  (so the rules run exactly as live) but never put in the outbox, and
//  every state or quarantine key written or deleted records the seq of
//  the event that did it in a fifth db, "origin" (pb_worker_dump_origin).
//  Returns 0 or a store code.
int
    pb_worker_store_rebuild_mode (pb_worker_store_t *self);

//  The log shows the event (or ops.redrive) at seq 'cause' quarantined by
//  this worker with 'reason' (copied): when it comes, it is quarantined
//  again with that reason instead of applied (EVENTS.md, "Every worker":
//  a rebuild skips what the log shows quarantined).
void
    pb_worker_store_skip (pb_worker_store_t *self, uint64_t cause,
                          const char *reason);

//  If 'env' is this worker's own notice of a quarantined event or of a
//  redrive that failed again (notify.<name>.quarantined from src <name>,
//  not the notice of a refused notification), pb_worker_store_skip its
//  cause with its reason, and return true; else false.
bool
    pb_worker_store_note_quarantine (pb_worker_store_t *self,
                                     const pb_envelope_t *env);

//  How many causes pb_worker_store_skip holds
size_t
    pb_worker_store_skips (pb_worker_store_t *self);

//  Statistics of the open store (pb_worker_stats_t). Returns 0 or a store
//  code.
int
    pb_worker_store_stats (pb_worker_store_t *self, pb_worker_stats_t *stats);

//  Run the rules' gauges function in a read transaction, calling 'fn' for
//  each gauge it reports. Returns 0 (also when the rules have none), or a
//  store code.
typedef void (pb_worker_gauge_fn) (void *arg, const char *name,
                                   const char *help, double value);
int
    pb_worker_store_gauges (pb_worker_store_t *self, pb_worker_gauge_fn *fn,
                            void *arg);

//  Parse a notification id "<name>/<cause>/<index>" into an outbox key.
//  Returns false if it is not one of this worker's ids.
bool
    pb_worker_store_key_of (pb_worker_store_t *self, const char *id,
                            uint8_t *key);

#endif
