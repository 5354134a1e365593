/*  =========================================================================
    pb_activity - the activities and feedback worker's rules (EVENTS.md,
    "Activities and feedback")

    A rules module for the worker runtime (common/pb_worker.h). Keeps each
    partnership activity (its partners, tool, area, open or closed) and its
    running feedback, and publishes:
        notify.activity.discard_candidate   mean relevance fell below the
                                            policy's threshold (on crossing)
        notify.activity.review_due          no feedback for a review period
        notify.activity.priority            the activity's priority score
        notify.activity.opened / discarded  adopted activity.open/discard
        notify.activity.rejected            feedback on an unknown or closed
                                            activity (also an adopted
                                            open/discard of one)
        notify.partner.access_changed       adopted programme.open
        notify.consultation.convened        adopted consultation.convene
    (and notify.activity.quarantined, by the runtime). Every outcome is a
    pure function of the log: time from sys.tick, thresholds and weights
    from registry.policy, feedback sums kept as exact integers.

    State keys (msgpack values with a fixed field order, see
    pb_activity_record.h for the activity record):
        act/<id>                   the activity record
        title/<id>                 its title (str), written once
        due/<ms %020d>/<id>        nil: the next review deadline of each
                                   open activity, in time order
        member/<C>/<id>            nil: open activity <id> has partner <C>
        partner/<C>                nil: <C> was ever registry.partner
                                   (who may be informed of a consultation)
        access/<C>                 [programme...]: programmes opened to <C>
                                   by the Council, apart from the
                                   registry's own 'programmes'
    plus the registry's reg/ keys. Runs on the worker's thread.
    =========================================================================
*/
#ifndef PB_ACTIVITY_H_INCLUDED
#define PB_ACTIVITY_H_INCLUDED

#include "pb_worker.h"

//  The rules module: pb_worker_main (&pb_activity_rules, argc, argv)
extern const pb_rules_t pb_activity_rules;

//  Apply one event of the log (the rules' entry point). Returns 0,
//  PB_WORKER_POISON (the event is quarantined) or a store code.
int
    pb_activity_apply (pb_apply_t *ctx, const pb_envelope_t *event);

//  Self test of this module
void
    pb_activity_test (bool verbose);

#endif
