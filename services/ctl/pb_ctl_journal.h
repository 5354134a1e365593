/*  =========================================================================
    pb_ctl_journal - pbctl's connection to the journal: the options every
    subcommand shares, sockets, replies with a timeout, STATUS

    Every subcommand of pbctl parses its own arguments, but the endpoints
    (--ingest --fanout --replay), --json, --timeout and --help mean the same
    everywhere and are parsed here. Sockets come from pb_sock_new (the one
    socket factory); a reply that does not come within the timeout is how
    pbctl learns that the journal is unreachable (a ZeroMQ connect never
    fails by itself). Single-threaded: pbctl is one plain process.
    =========================================================================
*/
#ifndef PB_CTL_JOURNAL_H_INCLUDED
#define PB_CTL_JOURNAL_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "pb_wire.h"

//  Exit codes of every subcommand (pbctl --help lists them)
#define PB_CTL_EXIT_OK          0       //  done, everything accepted
#define PB_CTL_EXIT_REFUSED     1       //  some input refused / difference
#define PB_CTL_EXIT_USAGE       2       //  bad command line
#define PB_CTL_EXIT_UNREACHABLE 3       //  journal unreachable / timeout

#define PB_CTL_ENDPOINT_MAX     256

typedef struct {
    char ingest [PB_CTL_ENDPOINT_MAX];  //  journal ingest (ROUTER)
    char fanout [PB_CTL_ENDPOINT_MAX];  //  journal fanout (PUB)
    char replay [PB_CTL_ENDPOINT_MAX];  //  journal replay and control
    bool json;                          //  JSON lines instead of text
    bool help;                          //  --help / -h was given
    int timeout_ms;                     //  wait for a reply at most this
    char cert [PB_CTL_ENDPOINT_MAX];    //  own certificate file: CURVE on ("": off)
    char server_key [PB_CTL_ENDPOINT_MAX];  //  journal's public key, or its cert file
} pb_ctl_journal_opts_t;

//  The options' help text, for each subcommand's --help
#define PB_CTL_JOURNAL_OPTS_HELP \
    "  --ingest EP      journal ingest endpoint (tcp://127.0.0.1:7701)\n" \
    "  --fanout EP      journal fanout endpoint (tcp://127.0.0.1:7702)\n" \
    "  --replay EP      journal replay/control endpoint (tcp://127.0.0.1:7703)\n" \
    "  --timeout SECS   wait for the journal at most SECS (default 5)\n" \
    "  --cert FILE      CurveZMQ: this operator's certificate (pbctl keygen;\n" \
    "                   default $PBCTL_CERT); with --server-key KEY|FILE, the\n" \
    "                   journal's public key or certificate ($PBCTL_SERVER_KEY)\n" \
    "  --json           JSON lines for scripts (default: text for people)\n" \
    "  -h, --help       this help\n" \
    "Exit codes: 0 ok; 1 some input refused or difference found; 2 usage\n" \
    "error; 3 journal unreachable or timeout.\n"

//  Set the defaults (cert and server_key from $PBCTL_CERT, $PBCTL_SERVER_KEY)
void
    pb_ctl_journal_opts_init (pb_ctl_journal_opts_t *opts);

//  Try to read the common option at argv [*index_p]. Returns 1 and moves
//  *index_p past it (and its value) if it was one; 0 if it is not a
//  common option (nothing moved); PB_CTL_EXIT_USAGE if its value is
//  missing or wrong (said on stderr).
int
    pb_ctl_journal_opts_parse (pb_ctl_journal_opts_t *opts, int argc,
                               char *argv [], int *index_p);

//  Parse a non-negative decimal integer that fills the whole of 'text'.
//  Returns true and sets *value_p, or false.
bool
    pb_ctl_journal_parse_u64 (const char *text, uint64_t *value_p);

//  Parse TIME as ms since the epoch, a date YYYY-MM-DD or a date and time
//  YYYY-MM-DDTHH:MM:SSZ (UTC); dates must be real calendar dates. Returns
//  true and sets *ms_p, or false.
bool
    pb_ctl_journal_parse_time (const char *text, int64_t *ms_p);

//  The first seq whose ts (the journal's append time) is at or after 'ms',
//  found by bisection over single-event replays (ts follows the journal's
//  wall clock, so it does not go back while that clock does not), or the
//  head + 1 if there is none. Returns 0 and sets *seq_p, or an exit code
//  with the sentence in 'error'.
int
    pb_ctl_journal_seq_at (zsock_t *replay, int64_t ms, int timeout_ms,
                           uint64_t *seq_p, char *error, size_t error_size);

//  A new socket of 'type' connected to 'endpoint' (ZMQ_DEALER, ZMQ_SUB),
//  with CurveZMQ when opts->cert is set, or NULL (the reason was logged:
//  a certificate that cannot be read, a missing server key). Caller owns it.
zsock_t *
    pb_ctl_journal_connect (const pb_ctl_journal_opts_t *opts, int type,
                            const char *endpoint);

//  Wait up to 'timeout_ms' for a message on 'sock'. Returns a message the
//  caller owns, or NULL on timeout or interrupt (SIGINT, SIGTERM).
zmsg_t *
    pb_ctl_journal_recv (zsock_t *sock, int timeout_ms);

//  Send a command frame and, if 'map' is not NULL, one frame of 'size'
//  bytes. Returns 0, or -1 if the message could not be queued.
int
    pb_ctl_journal_send (zsock_t *sock, const char *command,
                         const void *map, size_t size);

//  Ask STATUS on a replay DEALER. Returns 0 and fills *status;
//  PB_CTL_EXIT_UNREACHABLE on timeout; PB_CTL_EXIT_REFUSED when the reply
//  is not a readable STATUS (the sentence goes into 'error').
int
    pb_ctl_journal_status (zsock_t *replay, int timeout_ms,
                           pb_wire_status_t *status,
                           char *error, size_t error_size);

//  Called for each replayed event ('size' bytes of a stored envelope,
//  borrowed for the call). Return 0 to go on.
typedef int (pb_ctl_journal_event_fn) (const void *bytes, size_t size, void *arg);

//  Run one REPLAY {from, to (0: to the head), prefixes} on a replay DEALER
//  with credit flow control (CREDIT 1 after each EVENTS batch), calling
//  'fn' for each event in seq order, and fill *end from END. Returns 0;
//  PB_CTL_EXIT_UNREACHABLE if the journal stops answering for timeout_ms
//  (the socket then may still receive the old request's batches: destroy
//  it); PB_CTL_EXIT_REFUSED on ERROR (its sentence in 'error') or when fn
//  returned non-zero (the replay is CANCELled).
int
    pb_ctl_journal_replay (zsock_t *replay, uint64_t from, uint64_t to,
                           const char *const *prefixes, size_t prefix_count,
                           int timeout_ms, pb_ctl_journal_event_fn *fn,
                           void *arg, pb_wire_end_t *end,
                           char *error, size_t error_size);

//  Format 'ms' since the epoch as "YYYY-MM-DDTHH:MM:SS.mmmZ" in 'buf'
//  (at least 32 bytes). Returns buf.
const char *
    pb_ctl_journal_iso (int64_t ms, char *buf, size_t size);

//  Self test of this module
void
    pb_ctl_journal_test (bool verbose);

#endif
