/*  =========================================================================
    pb_ctl - pbctl, the operator's tool: its subcommands

    main.c dispatches "pbctl SUBCOMMAND ARGS..." to one of these. Each takes
    the arguments after the subcommand's name (argv [0] is the name),
    parses them itself (common options: pb_ctl_journal.h), prints its
    results on stdout and its diagnostics on stderr, and returns the
    process exit code: PB_CTL_EXIT_OK, _REFUSED, _USAGE or _UNREACHABLE.
    =========================================================================
*/
#ifndef PB_CTL_H_INCLUDED
#define PB_CTL_H_INCLUDED

#include "pb_ctl_journal.h"
#include "pb_ctl_json.h"

//  publish [FILE|-]: events from JSON lines, one result line per input
int
    pb_ctl_publish (int argc, char *argv []);

//  Publish the JSON lines of 'path' ("-" or NULL: stdin) to opts->ingest,
//  as 'pbctl publish' does; with 'quiet', no result lines are printed
//  (diagnostics still go to stderr). Sets *acked_p (if not NULL) to the
//  number of lines ACKed. Returns PB_CTL_EXIT_OK, _REFUSED (some line
//  NAKed or not JSON), _USAGE (file or endpoint unusable) or _UNREACHABLE.
int
    pb_ctl_publish_file (const pb_ctl_journal_opts_t *opts, const char *path,
                         bool keep_going, bool quiet, size_t *acked_p);

//  tick --now TIME: TICK on a manual-clock journal
int
    pb_ctl_tick (int argc, char *argv []);

//  status: the journal's head, log time and clock; workers' applied_seq
int
    pb_ctl_status (int argc, char *argv []);

//  replay: logged events to stdout, with credit flow control
int
    pb_ctl_replay (int argc, char *argv []);

//  tail PREFIX...: live events, with --from SEQ history first
int
    pb_ctl_tail (int argc, char *argv []);

//  state WORKER [KEY-PREFIX]: a worker's state keys, read-only
int
    pb_ctl_state (int argc, char *argv []);

//  up [--data-dir DIR]: run and supervise the journal and the workers
int
    pb_ctl_up (int argc, char *argv []);

//  keygen NAME [--dir DIR]: a CurveZMQ certificate for the rights file
int
    pb_ctl_keygen (int argc, char *argv []);

//  verify [--dir DIR]: walk the log's hash chain (read-only)
int
    pb_ctl_verify (int argc, char *argv []);

//  rebuild WORKER: rebuild from the log, compare with the live store, swap
int
    pb_ctl_rebuild (int argc, char *argv []);

//  export FILE [--resume]: the log to a portable file
int
    pb_ctl_export (int argc, char *argv []);

//  import FILE: an export into an empty or prefix journal, seq for seq
int
    pb_ctl_import (int argc, char *argv []);

//  trace SEQ: the causation chain, backward and forward
int
    pb_ctl_trace (int argc, char *argv []);

//  quarantine list | show SEQ | redrive SEQ --worker W
int
    pb_ctl_quarantine (int argc, char *argv []);

#endif
