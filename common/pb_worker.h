/*  =========================================================================
    pb_worker - the worker runtime: exactly-once application of the log

    A worker is this runtime plus a rules module (pb_rules_t). The runtime
    owns one LMDB environment per worker (its data_dir; no worker ever
    reads another's store) with four databases:
      state       the rules' keys ("proposal/p1", "reg/ally/FRA") to
                  msgpack values
      meta        applied_seq and the log time (now of the latest sys.tick)
      outbox      notifications derived but not yet ACKed by the journal
      quarantine  seq -> {type, reason, event} of events the rules refused
                  (event: the stored envelope, for ops.redrive), and
                  "nak/<id>" -> {type, reason} of notifications the journal
                  refused
    A batch of events is applied in ONE write transaction that also stores
    applied_seq and the outbox (invariant 2). A poison event changes
    nothing but the quarantine: the batch is applied again without it.
    After the commit the outbox goes to ingest; ACKed entries are deleted
    in a later transaction. A notification's envelope is {id, src, type,
    cause, data} with id "<worker>/<cause>/<index>": a pure function of the
    log, so a resend after a crash is byte-identical and deduplicated.

    On start the runtime subscribes to the whole fanout first, resends the
    outbox, catches up by REPLAY from applied_seq + 1 (credit flow
    control), then follows the fanout, dropping what it already applied; a
    seq jump or a heartbeat head beyond applied_seq is filled by replay.

    The actor and everything it creates belong to the actor's thread. The
    rules are called on that thread only, inside the batch transaction.
    =========================================================================
*/
#ifndef PB_WORKER_H_INCLUDED
#define PB_WORKER_H_INCLUDED

#include <czmq.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "pb_config.h"
#include "pb_envelope.h"

//  Error block -400..-499 (registered in common/pb_error.h)
#define PB_WORKER_ERRORS(XX) \
    XX (PB_WORKER_POISON,  -400, "event cannot be applied (quarantined)") \
    XX (PB_WORKER_FULL,    -401, "worker store map is full") \
    XX (PB_WORKER_STORE,   -402, "worker store I/O error") \
    XX (PB_WORKER_CORRUPT, -403, "worker store is corrupt")

typedef enum {
#define XX(name, value, text) name = value,
    PB_WORKER_ERRORS (XX)
#undef XX
} pb_worker_err_t;

//  The text of a code of this block, else pb_strerror (rc)
const char *
    pb_worker_strerror (int rc);

//  What the rules see of the batch transaction while one event applies
typedef struct _pb_apply_t pb_apply_t;

//  A rules module. 'name' is the worker's name: its notifications' src,
//  the first part of their ids, its config section and the type
//  notify.<name>.quarantined. 'apply' is called once per event of the log
//  (sys.tick too, after the runtime stored the log time), in seq order,
//  and skips the types it has no rule for (return 0). The runtime keeps
//  ops.redrive {worker, seq} for itself: it applies the quarantined event
//  'seq' again, with pb_apply_seq () the redrive's seq.
//  It returns 0 (applied), pb_apply_poison (...) for an event that would
//  fail again the same way (rolled back and quarantined), or passes on a
//  store code from a pb_apply_* call (the batch is retried, then the
//  worker exits for its supervisor).
//  'gauges' (optional, NULL for none) reports the rules' business gauges
//  for /metrics with pb_apply_gauge, once per snapshot, in a READ-ONLY
//  transaction outside any event (get, load and scan work; put, del and
//  emit fail). It returns 0 or a store code.
//  'types' lists every type 'apply' has a rule for (NULL-terminated; NULL:
//  all): the runtime does not decode the others, it only peeks their seq
//  (pb_envelope_peek_seq) and counts them applied, which is most of the
//  log for every worker. sys.tick and ops.redrive are always decoded.
typedef struct {
    const char *name;                   //  "nac" (borrowed, static)
    int (*apply) (pb_apply_t *ctx, const pb_envelope_t *event);
    int (*gauges) (pb_apply_t *ctx);
    const char *const *types;           //  types with a rule (borrowed, static)
} pb_rules_t;

//  Configuration, one section per worker ("nac/data_dir", ...)
typedef struct {
    char data_dir [PB_CONFIG_STR_MAX];  //  LMDB directory, created if absent
    char ingest [PB_CONFIG_STR_MAX];    //  journal ingest (DEALER connects)
    char fanout [PB_CONFIG_STR_MAX];    //  journal fanout (SUB connects)
    char replay [PB_CONFIG_STR_MAX];    //  journal replay (DEALER connects)
    int64_t map_size;                   //  initial LMDB map size, bytes
    int64_t prealloc;                   //  bytes of the store written ahead
    int64_t batch_max;                  //  events per write transaction
    int64_t credit;                     //  replay batches in flight
    int64_t window;                     //  notifications in flight
    int64_t resend_ms;                  //  resend unACKed outbox after
    int64_t replay_timeout_ms;          //  re-ask a silent replay after
    char dump [PB_CONFIG_STR_MAX];      //  pb-<name> --dump DIR: print, exit
    char rebuild [PB_CONFIG_STR_MAX];   //  pb-<name> --rebuild DIR: rebuild, exit
    int64_t rebuild_to;                 //  ... through this seq (0: the head)
    char metrics [PB_CONFIG_STR_MAX];   //  HTTP HOST:PORT of /metrics, or ""
    char cert [PB_CONFIG_STR_MAX];      //  CurveZMQ: own certificate ("": plain)
    char server_key [PB_CONFIG_STR_MAX];//  CurveZMQ: the journal's key or cert file
    bool verbose;                       //  debug log per message
    const pb_rules_t *rules;            //  the rules (borrowed, static)
} pb_worker_cfg_t;

//  --------------------------------------------------------------------------
//  The service

//  The worker actor: zactor_new (pb_worker_actor, cfg), with 'cfg'
//  borrowed for the actor's life. After the handshake it sends an int
//  startup status (0, or a code: store cannot open, endpoint refused), and
//  an int exit status when it stops ($TERM, interrupt: 0; a store failure
//  that retries did not cure: PB_WORKER_*). Pipe commands: $TERM, VERBOSE.
void
    pb_worker_actor (zsock_t *pipe, void *args);

//  The whole main () of a worker: loads the "<rules->name>/..." config from
//  the command line and --config FILE (defaults: data_dir ./var/<name>,
//  journal endpoints tcp://127.0.0.1:7701/7702/7703), runs --dump DIR if
//  given, else the actor until SIGINT/SIGTERM. Returns the process exit
//  code: 0, 1 for a store failure, 2 for bad configuration.
int
    pb_worker_main (const pb_rules_t *rules, int argc, char *argv []);

//  Print the canonical dump of the store in 'data_dir' to 'out': every key
//  of meta (applied_seq, now), state and quarantine, in key order, one line
//  each: "<db> <key> <value hex>" (printable keys as text, others as hex).
//  The outbox (transport state) is left out. Two stores with the same dump
//  are the same. Returns 0, PB_WORKER_STORE (cannot open; logged).
int
    pb_worker_dump (const char *data_dir, FILE *out);

//  Print the origins a rebuild recorded in the store in 'data_dir' (see
//  pb_worker_rebuild): "<db> <key> <seq>" lines, db state or quarantine,
//  the key spelled as pb_worker_dump spells it, seq the last event that
//  wrote or deleted it. Nothing for a store that is not a rebuild's.
//  Returns 0, PB_WORKER_STORE.
int
    pb_worker_dump_origin (const char *data_dir, FILE *out);

//  Drop the origins of a rebuilt store in 'data_dir' (before it replaces
//  a live one: the live worker does not keep them). Returns 0,
//  PB_WORKER_STORE.
int
    pb_worker_forget_origin (const char *data_dir);

//  How many notifications wait in the outbox of the store in 'data_dir'
//  (read-only). Returns 0 and sets *count_p, or PB_WORKER_STORE.
int
    pb_worker_pending (const char *data_dir, size_t *count_p);

//  Rebuild the store cfg->rebuild (new or empty) from the journal's log
//  at cfg->replay, with no side effects: nothing is sent to ingest and no
//  notification is kept for sending. First every notify.<name>.quarantined
//  of this worker in the whole log is read, so that an event the log shows
//  quarantined is quarantined again (with the logged reason) rather than
//  applied, and an ops.redrive applies it where the log has it; then the
//  events 1..cfg->rebuild_to (0: the head at start) are applied in batches
//  of cfg->batch_max, recording the origin of every key. Progress goes to
//  stderr when it is a terminal; one result line to stdout: "rebuilt
//  <name> through=<seq> head=<head> quarantined=<n>". Returns 0,
//  PB_ETIMEDOUT (the journal did not answer within replay_timeout_ms),
//  PB_EPROTO (refused: rebuild_to beyond the head, an ERROR), PB_EINVAL
//  (the store is not empty), or a store code.
int
    pb_worker_rebuild (const pb_worker_cfg_t *cfg);

//  What a store holds, for pbctl status and /metrics
typedef struct {
    uint64_t applied_seq;               //  last seq applied
    int64_t now;                        //  log time of the last sys.tick applied
    uint64_t state_keys;                //  entries of state
    uint64_t quarantined;               //  entries of quarantine (events, refusals)
    uint64_t outbox;                    //  notifications not yet ACKed
    uint64_t file_bytes;                //  size of data.mdb
    uint64_t map_bytes;                 //  LMDB map size
    uint64_t used_bytes;                //  pages in use (up to the last page)
} pb_worker_stats_t;

//  Read the statistics of the store in 'data_dir', read-only (a running
//  worker's store too). Returns 0, or PB_WORKER_STORE (no store there,
//  or unreadable; logged).
int
    pb_worker_stats (const char *data_dir, pb_worker_stats_t *stats);

//  --------------------------------------------------------------------------
//  The rules' view (pb_apply_t). Every call works inside the batch's write
//  transaction; a poison return undoes everything of the current event
//  (the batch is applied again with the event quarantined instead), so
//  rules never need to clean up before returning it.
//  A store failure inside any call is also remembered by ctx, so the
//  runtime treats the event as a store failure whatever apply returns.

//  Seq of the event being applied (the cause of what it emits)
uint64_t
    pb_apply_seq (pb_apply_t *ctx);

//  Log time: now of the latest sys.tick applied (0 before the first).
//  For a sys.tick event, already its own now.
int64_t
    pb_apply_now (pb_apply_t *ctx);

//  The worker's name ("nac")
const char *
    pb_apply_name (pb_apply_t *ctx);

//  Raw value of state key 'key' (a nul-terminated string) or NULL if
//  absent (or on a store failure). Borrowed: valid until the next put/del
//  or the end of the event.
const void *
    pb_apply_get (pb_apply_t *ctx, const char *key, size_t *size_p);

//  The value of 'key' unpacked as msgpack, or NULL if absent or not one
//  msgpack value. Borrowed: lives until the end of the event.
const msgpack_object *
    pb_apply_load (pb_apply_t *ctx, const char *key);

//  Store 'size' bytes under 'key' (1..511 bytes, LMDB's key limit).
//  Returns 0, PB_WORKER_POISON (a key out of that range: return it),
//  PB_WORKER_FULL, PB_WORKER_STORE, PB_WORKER_CORRUPT.
int
    pb_apply_put (pb_apply_t *ctx, const char *key, const void *value,
                  size_t size);

//  Build a value with a packer, then store it under 'key':
//      msgpack_packer *pk = pb_apply_put_begin (ctx);
//      msgpack_pack_map (pk, 2); ...
//      rc = pb_apply_put_end (ctx, "proposal/p1");
//  The packer is borrowed until put_end. put_end returns like pb_apply_put.
msgpack_packer *
    pb_apply_put_begin (pb_apply_t *ctx);
int
    pb_apply_put_end (pb_apply_t *ctx, const char *key);

//  Delete 'key'; absent is fine. Returns 0 or a store code as put.
int
    pb_apply_del (pb_apply_t *ctx, const char *key);

//  Call 'fn' for every state key starting with 'prefix', in key order,
//  with the key (not nul-terminated) and raw value, borrowed for the call.
//  'fn' returns 0 to go on, 1 to stop, a negative code to stop and fail.
//  'fn' must not put or del. Returns 0, fn's negative code, or a store
//  code.
typedef int (pb_apply_scan_fn) (const char *key, size_t key_len,
                                const void *value, size_t size, void *arg);
int
    pb_apply_scan (pb_apply_t *ctx, const char *prefix,
                   pb_apply_scan_fn *fn, void *arg);

//  Emit a notification of type 'type' ("notify.nac.adopted"): pack its
//  data map with the packer, then call emit_end. The runtime wraps it in
//  {id, src, type, cause, data} and puts it in the outbox. Notifications
//  of one event are numbered in emission order. emit_end returns 0,
//  PB_WORKER_POISON if the envelope would pass the 64 KiB limit (return
//  it from apply), or a store code.
msgpack_packer *
    pb_apply_emit_begin (pb_apply_t *ctx, const char *type);
int
    pb_apply_emit_end (pb_apply_t *ctx);

//  Refuse the current event for a reason that would recur: returns
//  PB_WORKER_POISON for apply to return. 'reason' is copied (cut to 255
//  bytes) into the quarantine record and notify.<name>.quarantined.
int
    pb_apply_poison (pb_apply_t *ctx, const char *reason);

//  Copy a msgpack str into 'buf' (nul-terminated). Returns false, with
//  buf "", if 'obj' is NULL, not a str, holds a nul, or needs more than
//  size - 1 bytes.
bool
    pb_apply_str (const msgpack_object *obj, char *buf, size_t size);

//  From a rules' gauges function: report gauge 'name' (a Prometheus
//  metric name, the rules' constant) with its one-line 'help'
void
    pb_apply_gauge (pb_apply_t *ctx, const char *name, const char *help,
                    double value);

//  True if the event's type is exactly 'type' (nul-terminated)
bool
    pb_apply_type_is (const pb_envelope_t *event, const char *type);

//  Pack the nul-terminated 'text' as a msgpack str
void
    pb_apply_pack_str (msgpack_packer *pk, const char *text);

//  Join strings: the nul-terminated strings after 'size', up to a NULL,
//  copied one after the other into 'buf' (size bytes), truncated as
//  snprintf would. Returns buf. For store keys and string copies on the
//  hot path: rules build several keys per event, and snprintf's format
//  parsing was a sixth of a worker's time.
const char *
    pb_apply_join (char *buf, size_t size, ...) __attribute__ ((sentinel));

//  'value' (>= 0) as 20 zero-padded decimal digits into 'buf', so that
//  keys sort as their numbers do ("due/00000001700000000000/..."). Returns
//  buf. A negative value is written as 0.
const char *
    pb_apply_digits (char buf [21], int64_t value);

//  --------------------------------------------------------------------------
//  Local application, without sockets: selftests of rules modules, and
//  rebuilding a store from events at hand. The same store code as the
//  actor (batch transaction, quarantine, outbox); one owner thread.
typedef struct _pb_worker_local_t pb_worker_local_t;

//  Open the store in 'data_dir' for 'rules'. Returns 0 and sets *self_p,
//  or PB_WORKER_STORE (logged) and leaves it alone.
int
    pb_worker_local_open (const char *data_dir, const pb_rules_t *rules,
                          pb_worker_local_t **self_p);

//  Close; NULL-safe, idempotent, nullifies *self_p
void
    pb_worker_local_destroy (pb_worker_local_t **self_p);

//  Log an event of 'type' from 'src' as seq applied_seq + 1: pack its data
//  map with the packer (borrowed until end), then pb_worker_local_end
//  applies it in its own batch. A poison event is quarantined as live.
//  end returns 0, or a store code; PB_EINVAL if the envelope is refused
//  by the decoder (an unknown type, a bad envelope).
msgpack_packer *
    pb_worker_local_begin (pb_worker_local_t *self, const char *src,
                           const char *type);
int
    pb_worker_local_end (pb_worker_local_t *self);

//  Fixtures for rules selftests, each applied at once (asserts it was):
//  registry.ally of 'country' (joined 1949-04-04), and registry.partner of
//  'country' in the comma-separated 'frameworks' with 'status' and no
//  profile.
void
    pb_worker_local_ally (pb_worker_local_t *self, const char *country);
void
    pb_worker_local_partner (pb_worker_local_t *self, const char *country,
                             const char *frameworks, const char *status);

//  Take the oldest notification out of the outbox, printed into 'buf' as
//  "<type> <data>" (msgpack_object_print_buffer, e.g. notify.nac.rejected
//  {"proposal"=>"p1", "reason"=>"invalid_action"}). Returns false when the
//  outbox is empty.
bool
    pb_worker_local_take (pb_worker_local_t *self, char *buf, size_t size);

//  Applied seq of the local store
uint64_t
    pb_worker_local_seq (pb_worker_local_t *self);

//  Self test of this module
void
    pb_worker_test (bool verbose);

#endif
