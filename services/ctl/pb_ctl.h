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

#endif
