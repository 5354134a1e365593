/*  =========================================================================
    pb_nac - the Council worker's rules (EVENTS.md, "The Council")

    A rules module for the worker runtime (common/pb_worker.h): proposals,
    positions, meetings and the silence procedure, decided by consensus,
    each proposal exactly once. Publishes notify.nac.rejected, .adopted,
    .blocked and .silence_broken (and .quarantined, by the runtime).

    State keys (msgpack values, fixed field order):
        proposal/<id>            [status, procedure, deadline|nil, action]
                                 status: silence (unbroken), open, adopted,
                                 blocked, invalid (refused: not open, but
                                 the id is used)
        position/<id>/<ALLY>     true if the Ally's latest position objects
        silence/<deadline hex16>/<id>   nil: the silence deadlines in order
        activity/<id>            true if open, false once discarded
    plus the registry's reg/ keys. Runs on the worker's thread.
    =========================================================================
*/
#ifndef PB_NAC_H_INCLUDED
#define PB_NAC_H_INCLUDED

#include "pb_worker.h"

//  The rules module: pb_worker_main (&pb_nac_rules, argc, argv)
extern const pb_rules_t pb_nac_rules;

//  Apply one event of the log (the rules' entry point)
int
    pb_nac_apply (pb_apply_t *ctx, const pb_envelope_t *event);

//  Self test of this module
void
    pb_nac_test (bool verbose);

#endif
