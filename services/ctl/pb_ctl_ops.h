/*  =========================================================================
    pb_ctl_ops - operators' actions logged as ops.* events, and what the
    operator subcommands share (rebuild, quarantine, import, replay --to)

    An action is logged AFTER it is done (a redrive is the exception: the
    ops.redrive event IS the action, and the worker applies it when it
    reads it from the log), with src "ops" and 'by', the user pbctl runs
    as (USER, else LOGNAME, else the password entry of the uid). Its id
    "<type>/<by>/<ms>-<pid>" is new for every action.
    =========================================================================
*/
#ifndef PB_CTL_OPS_H_INCLUDED
#define PB_CTL_OPS_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>

#include "pb_ctl_journal.h"

//  Who runs pbctl, cut to 64 bytes (an 'id' field). Into 'buf' (at least
//  65 bytes). Returns buf.
const char *
    pb_ctl_ops_user (char *buf, size_t size);

//  Publish an ops.<action> event with 'data' (borrowed; 'by' is added) on
//  the journal's ingest and wait for its ACK. Returns 0 and sets *seq_p;
//  PB_CTL_EXIT_UNREACHABLE (no answer); PB_CTL_EXIT_REFUSED (NAK: its
//  code and sentence go into 'error').
int
    pb_ctl_ops_log (const pb_ctl_journal_opts_t *opts, const char *type,
                    json_t *data, uint64_t *seq_p, char *error,
                    size_t error_size);

//  Find the binary of worker 'name' ("pb-<name>"): 'given' if not NULL,
//  else next to pbctl itself, else in the build tree's
//  ../<name>/pb-<name>, else PATH. Into 'buf'. Returns false when none is
//  executable.
bool
    pb_ctl_ops_worker_bin (const char *name, const char *given, char *buf,
                           size_t size);

//  True if 'name' is one of the workers (nac, cpe, activity)
bool
    pb_ctl_ops_is_worker (const char *name);

//  Self test of this module
void
    pb_ctl_ops_test (bool verbose);

#endif
