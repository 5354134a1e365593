/*  =========================================================================
    pb_journal - the journal service: ingest, durable log, fanout, replay

    One actor owns everything: the ingest ROUTER, the fanout PUB, the
    replay/control ROUTER and the LMDB log (pb_log). Its zloop drains ingest
    in batches (group commit: one transaction, one sync per batch), ACKs or
    NAKs every message in arrival order only after the commit, then fans
    the appended events out in seq order. Replays are advanced one batch
    per session per loop turn from short read transactions, so they never
    stall ingest. The wire frames are proto/README.md's.
    =========================================================================
*/
#ifndef PB_JOURNAL_H_INCLUDED
#define PB_JOURNAL_H_INCLUDED

#include <czmq.h>

#include "pb_config.h"
#include "pb_error.h"

//  The journal's clock: wall-clock ms since the epoch. Tests supply their own.
typedef int64_t (pb_journal_clock_fn) (void *arg);

typedef struct {
    char data_dir [PB_CONFIG_STR_MAX];  //  the LMDB environment's directory
    char ingest [PB_CONFIG_STR_MAX];    //  ROUTER endpoint (bound)
    char fanout [PB_CONFIG_STR_MAX];    //  PUB endpoint (bound)
    char replay [PB_CONFIG_STR_MAX];    //  ROUTER endpoint (bound)
    char clock [PB_CONFIG_STR_MAX];     //  "auto" or "manual"
    char metrics [PB_CONFIG_STR_MAX];   //  HTTP HOST:PORT of /metrics, or ""
    int64_t map_size;                   //  initial LMDB map size, bytes
    int64_t map_max;                    //  the map grows up to this
    int64_t prealloc;                   //  bytes of the log written ahead
    int64_t batch_max;                  //  messages per group commit
    int64_t replay_batch;               //  events per EVENTS message
    int64_t replay_credit_max;          //  outstanding credit per replay
    int64_t replay_idle;                //  ms without credit before a drop
    int64_t replay_max;                 //  concurrent replays
    int64_t tick_interval;              //  ms between automatic ticks
    int64_t heartbeat_interval;         //  ms between heartbeats
    int64_t max_envelope;               //  envelope size limit, bytes
    int64_t max_depth;                  //  decoder nesting limit
    int64_t max_container;              //  decoder entries limit
    int64_t max_string;                 //  decoder str/bin limit
    int64_t max_msg_size;               //  ZMQ_MAXMSGSIZE of every socket
    int64_t reader_check_interval;      //  ms between mdb_reader_check
    bool verbose;                       //  debug logging per message
    bool security;                      //  CurveZMQ and rights
    char cert [PB_CONFIG_STR_MAX];      //  the journal's certificate file
    char rights [PB_CONFIG_STR_MAX];    //  the rights file
    pb_journal_clock_fn *clock_fn;      //  NULL: the wall clock (not in table)
    void *clock_arg;                    //  passed to clock_fn (borrowed)
} pb_journal_cfg_t;

//  Error block: the journal's own failures are pb_log's and common codes

//  The configuration table (journal/ section), terminated by a NULL path
extern const pb_config_entry_t pb_journal_cfg_table [];

//  Fill 'cfg' with the table's defaults, then the file of --config, then
//  the command line. Returns 0, PB_CONFIG_HELP (--help printed),
//  PB_CONFIG_CHECKED (--check-config: everything valid, printed), or a
//  PB_CONFIG_* error after printing it; also refuses a clock other than
//  auto or manual, and map_max below map_size (PB_CONFIG_BAD_VALUE).
int
    pb_journal_cfg_load (pb_journal_cfg_t *cfg, int argc, char *argv []);

//  The journal actor. 'args' is a pb_journal_cfg_t * that must outlive the
//  actor. After the zactor handshake it sends an int startup status (0 or
//  a code), and when it stops an int exit status (0 for $TERM or a signal,
//  a code for a fatal log error). Pipe commands: "$TERM", "VERBOSE",
//  "RELOAD" (re-read the rights file, as SIGHUP does).
void
    pb_journal_actor (zsock_t *pipe, void *args);

//  Name any code the journal returns
const char *
    pb_journal_strerror (int rc);

//  Self test of this module
void
    pb_journal_test (bool verbose);

#endif
