/*  =========================================================================
    pb_journal_internal - the actor's state, shared by its source files

    Not a public header: only pb_journal.c (lifecycle, ingest, commit,
    fanout, ticks) and pb_journal_replay.c (replay and control) include it.
    Everything here is owned by the actor's thread, except that while
    'in_flight' the committer thread holds the log and the 'flight' batch
    (and sets 'map_at_max'): see pb_journal.c.
    =========================================================================
*/
#ifndef PB_JOURNAL_INTERNAL_H_INCLUDED
#define PB_JOURNAL_INTERNAL_H_INCLUDED

#include "pb_journal.h"
#include "pb_log.h"
#include "pb_metrics.h"
#include "pb_envelope.h"
#include "pb_nak.h"
#include "pb_wire.h"
#include "pb_rights.h"

#define PB_JOURNAL_ERROR_MAX 256        //  an error sentence

//  Where a batch entry came from, and so where its answer goes
typedef enum {
    PB_JOURNAL_FROM_INGEST,             //  a producer: ACK/NAK on ingest
    PB_JOURNAL_FROM_TICK,               //  the tick timer: no answer
    PB_JOURNAL_FROM_CONTROL,            //  TICK on replay: TICKED/ERROR
    PB_JOURNAL_FROM_IMPORT              //  IMPORT on replay: IMPORTED/ERROR
} pb_journal_origin_t;

//  What the batch did with an entry
typedef enum {
    PB_JOURNAL_REFUSED,                 //  NAK 'nak' (decided before the txn)
    PB_JOURNAL_APPENDED,                //  new in this batch at 'seq'
    PB_JOURNAL_DUPLICATE,               //  same envelope already at 'seq'
    PB_JOURNAL_CONFLICT                 //  (src, id) taken by another envelope
} pb_journal_result_t;

//  One message of a batch. The array of them is allocated once at start
//  and reused, so ingest does not allocate per message beyond what
//  decoding needs.
typedef struct {
    pb_journal_origin_t origin;         //  who asked
    zmq_msg_t identity;                 //  routing id of the asker (owned)
    zmq_msg_t type;                     //  type frame (owned)
    zmq_msg_t body;                     //  envelope frame (owned)
    int frames;                         //  frames after the identity
    pb_envelope_t *envelope;            //  decoded, or NULL (owned)
    uint8_t pairs_hash [PB_CHAIN_SIZE]; //  of the producer's pairs: the
                                        //  index's digest (its first
                                        //  PB_LOG_DIGEST_SIZE bytes) and
                                        //  the chain's d (pb_chain.h)
    size_t pairs_size;                  //  the size of those pairs
    pb_journal_result_t result;         //  set by admission and the txn
    pb_nak_t nak;                       //  PB_JOURNAL_REFUSED: why
    char *error;                        //  its sentence (owned, fixed size)
    char nak_id [PB_WIRE_ID_MAX];       //  id for a NAK without envelope
    size_t nak_id_len;                  //  0: none readable
    uint64_t seq;                       //  APPENDED or DUPLICATE: where
    uint8_t *stored;                    //  APPENDED: stored envelope (owned)
    size_t stored_size;
    int64_t ts;                         //  its ts, once 'stored' is built
    pb_log_ahead_t ahead;               //  its chain hash made by the actor;
                                        //  ahead.seq 0: none, stored is
                                        //  built by the committer
    int64_t tick_now;                   //  FROM_TICK/CONTROL: the now
    //  FROM_IMPORT: the event as the other log stored it; 'type' and
    //  'body' hold its producer's form, admitted as any other
    uint64_t import_seq;                //  its seq there (and here)
    int64_t import_ts;                  //  its ts there (kept)
    bool import_tick;                   //  a sys.tick: sets the log time
    uint8_t *imported;                  //  its stored bytes (owned)
    size_t imported_size;
} pb_journal_entry_t;

typedef struct _pb_journal_session_t pb_journal_session_t;

typedef struct {
    const pb_journal_cfg_t *cfg;        //  read-only configuration (borrowed)
    zsock_t *pipe;                      //  actor pipe (borrowed)
    zloop_t *loop;                      //  the reactor (owned)
    zsock_t *ingest;                    //  ROUTER (owned)
    zsock_t *fanout;                    //  PUB (owned)
    zsock_t *replay;                    //  ROUTER (owned)
    void *ingest_handle;                //  raw libzmq handles (borrowed)
    void *fanout_handle;
    void *replay_handle;
    pb_log_t *log;                      //  the event log (owned)
    pb_limits_t limits;                 //  decoder limits from cfg
    const char *owners [8];             //  srcs that own types (static strings)
    size_t owner_lens [8];
    int owner_count;
    bool manual;                        //  clock mode
    bool verbose;                       //  per-message debug
    int exit_rc;                        //  what the actor reports on exit
    pb_journal_entry_t *buffers [2];    //  batch_max + 1 entries each (owned)
    pb_journal_entry_t *entries;        //  the buffer being filled (borrowed)
    size_t entry_count;                 //  entries in the batch in hand
    zactor_t *committer;                //  commits one batch at a time (owned)
    bool in_flight;                     //  the committer holds 'flight' and the log
    pb_journal_entry_t *flight;         //  the other buffer, while in flight (borrowed)
    size_t flight_count;                //  its entries
    //  Records built ahead (s_build_ahead): while a batch commits, the
    //  actor builds the next one's stored envelopes and chain hashes for
    //  the seqs it expects them to get
    bool flight_ahead;                  //  'flight' was built ahead, up to:
    uint64_t ahead_next;                //  the seq after its last record
    uint8_t ahead_chain [PB_CHAIN_SIZE];//  h(ahead_next - 1)
    int64_t now_ahead;                  //  log time once the ticks in hand
                                        //  and in flight are in the log
    uint64_t entries_from;              //  'entries' was built from this seq
    uint8_t entries_prev [PB_CHAIN_SIZE];   //  after this hash
    //  Replay
    zlistx_t *sessions;                 //  of pb_journal_session_t (owned)
    int pump_timer;                     //  zero-delay timer id, or -1
    //  Statistics, logged once a second (never per message)
    uint64_t naks [PB_NAK_COUNT];       //  refusals by code since the log
    uint64_t errors [PB_WIRE_REFUSAL_COUNT];
    uint64_t appended;                  //  events appended since start
    uint64_t duplicates;                //  resends acknowledged
    uint64_t batches;                   //  commits since start
    uint64_t messages;                  //  batch entries since start
    uint64_t stats_turns;               //  s_on_stats calls, for the info line
    uint64_t replays_dropped;           //  idle or unreachable, since log
    //  Metrics (pb_journal_metrics.c): totals since start, actor's thread
    pb_metrics_t *metrics;              //  /metrics and /health, or NULL (owned)
    uint64_t naks_total [PB_NAK_COUNT]; //  refusals by code
    uint64_t errors_total [PB_WIRE_REFUSAL_COUNT];
    uint64_t ingest_messages;           //  answered on ingest
    uint64_t replay_events;             //  sent by replay
    uint64_t replay_batches;            //  EVENTS messages sent
    uint64_t replays_dropped_total;     //  idle or unreachable
    pb_histogram_t batch_sizes;         //  entries per commit
    pb_histogram_t commit_seconds;      //  txn + sync of a batch that appended
    int64_t commit_usecs;               //  the last batch's commit, from its answer
    int log_failed;                     //  the fatal log code, once one came:
                                        //  the log's owner's (s_commit)
    bool tick_skipped;                  //  the wall clock is behind log time
    bool map_at_max;                    //  refusing: the map is at map_max
    //  Security (pb_journal_security.c): all NULL or zero when it is off
    zcert_t *cert;                      //  the journal's certificate (owned)
    pb_rights_t *rights;                //  the rights in force (owned)
    zsock_t *zap;                       //  ZAP handler, REP (owned)
    int sighup_fd;                      //  signalfd of SIGHUP, or -1 (owned)
    uint64_t reloads;                   //  successful rights reloads
    uint64_t refused_handshakes;        //  since the last stats line
    char refused_key [41];              //  the last key refused (public, Z85)
    uint64_t refused_subscriptions;     //  since the last stats line
    char refused_subscriber [65];       //  name of the last key refused one
    uint64_t refused_messages;          //  ingest NAKs for rights, since the stats line
    char refused_sender [65];           //  name of the last key refused one
    uint64_t refused_handshakes_total;  //  since start, for /metrics
    uint64_t refused_subscriptions_total;
} pb_journal_t;

#define PB_JOURNAL_STATS_INTERVAL 1000  //  ms between aggregated warnings

//  Admit, store, answer and fan out the entry_count entries in hand, then
//  reset them (an earlier batch still in flight is answered first).
//  Returns 0, or -1 after a fatal log error (nothing of the batch
//  answered, self->exit_rc set).
int
    pb_journal_batch_run (pb_journal_t *self);

//  Wait for the batch the committer holds, if any, then answer it and fan
//  it out, and do the same for the ticks in hand: afterwards the log is
//  the actor's again. Every handler that reads the log calls this first. Returns 0, or -1 after a fatal log
//  error (self->exit_rc set; the loop must stop).
int
    pb_journal_settle (pb_journal_t *self);

//  Timers (pb_journal_timers.c), zloop handlers
int
    pb_journal_on_tick (zloop_t *loop, int timer_id, void *arg);
int
    pb_journal_on_heartbeat (zloop_t *loop, int timer_id, void *arg);
int
    pb_journal_on_reader_check (zloop_t *loop, int timer_id, void *arg);
int
    pb_journal_on_stats (zloop_t *loop, int timer_id, void *arg);

//  The clock of the configuration, or the wall clock
int64_t
    pb_journal_clock (pb_journal_t *self);

//  Append a sys.tick with 'now' through the commit path: it joins the
//  batch in hand, and is answered and fanned out after its commit, without
//  the actor waiting for it. For a control TICK, 'identity' (borrowed)
//  names the replay client that gets TICKED or ERROR. Returns 0 (or 'unavailable' answered), or -1 after a fatal log
//  error (self->exit_rc set; the loop must stop).
int
    pb_journal_tick (pb_journal_t *self, int64_t now, zmq_msg_t *identity);

//  Admit the tick just built at entries [entry_count] into the batch in
//  hand, and dispatch it if the committer is free.
void
    pb_journal_tick_enqueue (pb_journal_t *self);

//  Metrics (pb_journal_metrics.c): open the server of journal/metrics
//  (none if empty; returns 0 or PB_EIO, logged), close it; count a
//  finished batch; once a second, add the per-second NAK counts to the
//  totals and publish a snapshot
int
    pb_journal_metrics_open (pb_journal_t *self);
void
    pb_journal_metrics_close (pb_journal_t *self);
void
    pb_journal_metrics_batch (pb_journal_t *self, const pb_journal_entry_t *entries,
                              size_t count, bool appended);
void
    pb_journal_metrics_publish (pb_journal_t *self);

//  IMPORT (proto/README.md): append the stored events of 'msg' (the
//  frames after the IMPORT map, borrowed) with their own seq and ts, all
//  or none, and answer IMPORTED or ERROR to 'identity'. 'after' is the
//  head the importer saw: it must be the log's head. Returns 0, or -1
//  after a fatal log error.
int
    pb_journal_import (pb_journal_t *self, zframe_t *identity, uint64_t after,
                       zmsg_t *msg);

//  Security (pb_journal_security.c). With journal/security off each of
//  these does nothing (admit: PB_NAK_NONE, sender: NULL).
//  Before any bind: the certificate, the rights, the ZAP handler, SIGHUP.
//  Returns 0, PB_EINVAL or PB_EIO (logged).
int
    pb_journal_security_open (pb_journal_t *self);
//  After the binds, before serving: a stranger's key must be refused on
//  every endpoint. Returns 0, or PB_EIO (logged: the journal must not serve).
int
    pb_journal_security_probe (pb_journal_t *self);
//  Register the ZAP, subscription and SIGHUP readers on the loop
void
    pb_journal_security_attach (pb_journal_t *self);
void
    pb_journal_security_close (pb_journal_t *self);
//  Re-read the rights file (SIGHUP, RELOAD); on failure keep those in force
void
    pb_journal_security_reload (pb_journal_t *self);
//  The ingest check of the sender's key ('frame' is a frame it sent)
pb_nak_t
    pb_journal_security_admit (pb_journal_t *self, zmq_msg_t *frame,
                               const pb_envelope_t *env, char *error);
//  The key that sent 'frame' on the replay socket, or NULL (unknown key,
//  or security off: check self->rights)
const pb_rights_key_t *
    pb_journal_security_sender (pb_journal_t *self, zframe_t *frame);
//  Aggregated warnings, from the stats timer
void
    pb_journal_security_stats (pb_journal_t *self);

//  Replay and control (pb_journal_replay.c)
int
    pb_journal_replay_start (pb_journal_t *self);
void
    pb_journal_replay_stop (pb_journal_t *self);
int
    pb_journal_on_replay (zloop_t *loop, zsock_t *reader, void *arg);
void
    pb_journal_replay_expire (pb_journal_t *self);
//  Send ERROR {code, error} to 'identity' on the replay socket
void
    pb_journal_send_error (pb_journal_t *self, const void *identity,
                           size_t identity_size, pb_wire_refusal_t code,
                           const char *error);
//  Send [identity][command][map] on the replay socket
void
    pb_journal_send_reply (pb_journal_t *self, const void *identity,
                           size_t identity_size, pb_wire_cmd_t command,
                           const uint8_t *map, size_t map_size);

#endif
