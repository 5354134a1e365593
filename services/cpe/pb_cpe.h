/*  =========================================================================
    pb_cpe - the Contact Point Embassy worker's rules (EVENTS.md, "Contact
    Point Embassies" and "Every worker")

    A rules module for the worker runtime (common/pb_worker.h). Every
    active, non-DIALOGUE partner has at most one CPE: one Ally's embassy
    for two years from the handover's effective date. Checks cpe.handover
    (waiting, per partner and in log order, for the Council's decision),
    tracks terms on sys.tick, and ends them on term end, accession and
    suspension. Publishes notify.cpe.assigned, .term_expiring, .ended,
    .vacant and .rejected (and .quarantined, by the runtime).

    State keys (msgpack arrays, fixed field order, so that a store rebuilt
    by replay is byte-identical):
        holder/<P>                [ally, decision, term_start, term_end,
                                   end_ms, noticed]: the CPE of partner P;
                                   dates "YYYY-MM-DD", end_ms the log time
                                   of term_end's UTC midnight, noticed true
                                   once term_expiring went out
        proposal/<id>             [seq, partner|nil, ally|nil, state, used]:
                                   the FIRST nac.proposal of id (seq: its
                                   seq; partner and ally for a cpe.assign,
                                   else nil); state "open", "adopted",
                                   "blocked" or "invalid" (the Council
                                   worker refused it as invalid_action);
                                   used: a handover was assigned with it
        duplicate/<id>/<seq hex16>  nil: a later nac.proposal of the id
                                   (its invalid_action refusal, if any, is
                                   not about the first)
        queue/<P>/<seq hex16>     [to, decision, effective, from|nil]: the
                                   handovers of P not yet complete, in log
                                   order; the first one waits for its
                                   decision, the others wait behind it
        volunteer/<P>/<seq hex16> ally: standing volunteers, oldest first
        volunteer_by/<P>/<ally>   seq hex16: the same, by ally
    plus the registry's reg/ keys. Runs on the worker's thread.

    Choices where EVENTS.md is silent:
      - A waiting handover is checked again from check 1 when its decision
        arrives, against the state at that point of the log: with nothing
        else happening to the partner, that is exactly the outcome it would
        have had arriving after the decision; if the partner was suspended
        meanwhile it is refused not_eligible instead of assigned.
      - A decision is "used" once a handover naming it is assigned; a
        handover refused for another reason (not_current_holder) leaves it
        usable by a corrected handover.
      - A volunteer stands from its cpe.volunteer until that Ally is
        assigned the partner's CPE; repeating it keeps its seniority; one
        who is not an Ally when the partner falls vacant is passed over.
      - vacant.since: the log time when the partner became eligible
        (registration, re-activation), or the term_end's midnight when a
        term ran out (0 for a term that ended before 1970).
      - No vacant after an end by suspension (not active) or accession
        (an Ally now). A registry.ally for a partner country that holds a
        CPE ends it as an accession does.
      - A partner that becomes DIALOGUE keeps its CPE to the end of the
        term (EVENTS.md gives no reason for that end); no vacant after.
      - term_expiring.days_left: whole days from the tick to term_end's
        midnight, rounded up (so exactly expiry_notice_days on the tick at
        the notice point), 0 once past.
      - A term may start in the past: the next tick gives its notice and
        its end if they are due. A handover whose term would end after
        9999-12-31 (not a catalogue DATE) is quarantined on arrival.
    =========================================================================
*/
#ifndef PB_CPE_H_INCLUDED
#define PB_CPE_H_INCLUDED

#include "pb_worker.h"
#include "pb_cpe_date.h"

//  The rules module: pb_worker_main (&pb_cpe_rules, argc, argv)
extern const pb_rules_t pb_cpe_rules;

//  Apply one event of the log (the rules' entry point). Returns 0,
//  PB_WORKER_POISON (via pb_apply_poison: an unreadable field, a term_end
//  past year 9999, an unreadable stored value) or a store code.
int
    pb_cpe_apply (pb_apply_t *ctx, const pb_envelope_t *event);

//  Self test of this module (the rules on a local store)
void
    pb_cpe_test (bool verbose);

#endif
