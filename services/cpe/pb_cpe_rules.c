/*  =========================================================================
    pb_cpe_rules - the Contact Point Embassy rules (see pb_cpe.h)

    Every outcome is a function of the log: time is pb_apply_now (the
    latest sys.tick), thresholds come from the registry's policy, and the
    Council's decisions are the notify.nac.* events as they land in the
    log. Layers, low first: notifications, handover checks, then one
    handler per event type; the stored records are pb_cpe_state's.
    =========================================================================
*/
#include <inttypes.h>
#include <string.h>

#include "pb_cpe.h"
#include "pb_cpe_state.h"
#include "pb_registry.h"

#define S_CODE_SIZE PB_CPE_CODE_SIZE

//  Read a handover from the event's data map; false if a field is
//  unreadable (the journal's schema makes that a bug or a hostile log)
static bool
s_handover_read (const msgpack_object *data, pb_cpe_handover_t *h)
{
    memset (h, 0, sizeof *h);
    const msgpack_object *from = pb_msgpack_get (data, "from");
    return pb_apply_str (pb_msgpack_get (data, "partner"), h->partner, sizeof h->partner)
        && pb_apply_str (pb_msgpack_get (data, "to"), h->to, sizeof h->to)
        && pb_apply_str (pb_msgpack_get (data, "decision"), h->decision, sizeof h->decision)
        && pb_apply_str (pb_msgpack_get (data, "effective"), h->effective,
                         sizeof h->effective)
        && (!from || pb_apply_str (from, h->from, sizeof h->from));
}

//  The oldest standing volunteer for 'partner' into 'candidate' ("" if
//  none): the oldest whose volunteer is an Ally now (pb_cpe.h). Returns
//  0, PB_WORKER_POISON or a store code.
static int
s_candidate (pb_apply_t *ctx, const char *partner, char *candidate, size_t size)
{
    zlist_t *allies = zlist_new ();
    zlist_autofree (allies);
    int rc = pb_cpe_state_volunteers (ctx, partner, allies);
    candidate [0] = 0;
    for (const char *ally = (const char *) zlist_first (allies);
         rc == 0 && ally && !*candidate;
         ally = (const char *) zlist_next (allies))
        if (pb_registry_is_ally (ctx, ally))
            pb_apply_join (candidate, size, ally, NULL);
    zlist_destroy (&allies);
    return rc;
}

//  --------------------------------------------------------------------------
//  Notifications, each in its catalogue shape (proto/pb_catalogue.def)

static int
s_emit_assigned (pb_apply_t *ctx, const char *partner, const pb_cpe_holder_t *holder,
                 const char *previous)
{
    msgpack_packer *pk = pb_apply_emit_begin (ctx, "notify.cpe.assigned");
    msgpack_pack_map (pk, *previous? 5: 4);
    pb_apply_pack_str (pk, "partner");
    pb_apply_pack_str (pk, partner);
    pb_apply_pack_str (pk, "ally");
    pb_apply_pack_str (pk, holder->ally);
    if (*previous) {
        pb_apply_pack_str (pk, "previous");
        pb_apply_pack_str (pk, previous);
    }
    pb_apply_pack_str (pk, "term_start");
    pb_apply_pack_str (pk, holder->term_start);
    pb_apply_pack_str (pk, "term_end");
    pb_apply_pack_str (pk, holder->term_end);
    return pb_apply_emit_end (ctx);
}

static int
s_emit_term_expiring (pb_apply_t *ctx, const char *partner,
                      const pb_cpe_holder_t *holder, int64_t days_left)
{
    msgpack_packer *pk = pb_apply_emit_begin (ctx, "notify.cpe.term_expiring");
    msgpack_pack_map (pk, 4);
    pb_apply_pack_str (pk, "partner");
    pb_apply_pack_str (pk, partner);
    pb_apply_pack_str (pk, "ally");
    pb_apply_pack_str (pk, holder->ally);
    pb_apply_pack_str (pk, "term_end");
    pb_apply_pack_str (pk, holder->term_end);
    pb_apply_pack_str (pk, "days_left");
    msgpack_pack_int64 (pk, days_left);
    return pb_apply_emit_end (ctx);
}

static int
s_emit_ended (pb_apply_t *ctx, const char *partner, const char *ally,
              const char *reason)
{
    msgpack_packer *pk = pb_apply_emit_begin (ctx, "notify.cpe.ended");
    msgpack_pack_map (pk, 3);
    pb_apply_pack_str (pk, "partner");
    pb_apply_pack_str (pk, partner);
    pb_apply_pack_str (pk, "ally");
    pb_apply_pack_str (pk, ally);
    pb_apply_pack_str (pk, "reason");
    pb_apply_pack_str (pk, reason);
    return pb_apply_emit_end (ctx);
}

//  Vacant since 'since' (clamped to the epoch: the schema's TIME is >= 0),
//  naming the oldest standing volunteer if any
static int
s_emit_vacant (pb_apply_t *ctx, const char *partner, int64_t since)
{
    char candidate [S_CODE_SIZE];
    int rc = s_candidate (ctx, partner, candidate, sizeof candidate);
    if (rc)
        return rc;
    msgpack_packer *pk = pb_apply_emit_begin (ctx, "notify.cpe.vacant");
    msgpack_pack_map (pk, *candidate? 3: 2);
    pb_apply_pack_str (pk, "partner");
    pb_apply_pack_str (pk, partner);
    pb_apply_pack_str (pk, "since");
    msgpack_pack_int64 (pk, since > 0? since: 0);
    if (*candidate) {
        pb_apply_pack_str (pk, "candidate");
        pb_apply_pack_str (pk, candidate);
    }
    return pb_apply_emit_end (ctx);
}

static int
s_emit_rejected (pb_apply_t *ctx, const char *partner, const char *reason)
{
    msgpack_packer *pk = pb_apply_emit_begin (ctx, "notify.cpe.rejected");
    msgpack_pack_map (pk, 2);
    pb_apply_pack_str (pk, "partner");
    pb_apply_pack_str (pk, partner);
    pb_apply_pack_str (pk, "reason");
    pb_apply_pack_str (pk, reason);
    return pb_apply_emit_end (ctx);
}

//  --------------------------------------------------------------------------
//  Handover checks (EVENTS.md, the numbered list)

//  The outcome of one handover's checks at this point of the log
typedef enum { S_WAIT, S_DONE } s_outcome_t;

//  Term of a handover from its effective date. Returns 0, or
//  PB_WORKER_POISON for a date the rules cannot handle (a term_end past
//  9999-12-31 cannot be written as a catalogue DATE).
static int
s_term (pb_apply_t *ctx, const pb_cpe_handover_t *h, pb_cpe_holder_t *holder)
{
    int64_t start;
    if (pb_cpe_date_parse (h->effective, strlen (h->effective), &start))
        return pb_apply_poison (ctx, "cpe.handover: effective is not a date");
    int64_t end = pb_cpe_date_years_after (start, 2);
    if (pb_cpe_date_format (end, holder->term_end, sizeof holder->term_end))
        return pb_apply_poison (ctx, "cpe.handover: term would end after 9999-12-31");
    pb_apply_join (holder->term_start, sizeof holder->term_start, h->effective, NULL);
    holder->end_ms = pb_cpe_date_ms (end);
    holder->noticed = false;
    return 0;
}

//  Check 4: the decision names the first nac.proposal of its id, a
//  cpe.assign for this partner and Ally, not refused as invalid_action,
//  not used yet
static bool
s_decision_matches (const pb_cpe_handover_t *h, const pb_cpe_proposal_t *proposal)
{
    return proposal->is_assign
        && streq (proposal->partner, h->partner)
        && streq (proposal->ally, h->to)
        && !streq (proposal->state, "invalid")
        && !proposal->used;
}

//  The holder takes office (or renews): record, use up the decision and
//  the Ally's offer, announce
static int
s_assign (pb_apply_t *ctx, const pb_cpe_handover_t *h, pb_cpe_proposal_t *proposal)
{
    pb_cpe_holder_t old, next;
    memset (&next, 0, sizeof next);
    int rc = pb_cpe_state_holder_get (ctx, h->partner, &old);
    if (rc && rc != PB_ENOTFOUND)
        return rc;
    const char *previous = rc == 0? old.ally: "";
    rc = s_term (ctx, h, &next);
    if (rc)
        return rc;
    pb_apply_join (next.ally, sizeof next.ally, h->to, NULL);
    pb_apply_join (next.decision, sizeof next.decision, h->decision, NULL);
    proposal->used = true;
    rc = pb_cpe_state_holder_put (ctx, h->partner, &next);
    if (rc == 0)
        rc = pb_cpe_state_proposal_put (ctx, h->decision, proposal);
    if (rc == 0)
        rc = pb_cpe_state_volunteer_del (ctx, h->partner, h->to);
    if (rc == 0)
        rc = s_emit_assigned (ctx, h->partner, &next, previous);
    return rc;
}

//  Run checks 1..6 on 'h' against the state now. Sets *outcome to S_WAIT
//  (the decision is not decided yet: nothing emitted) or S_DONE (rejected
//  or assigned, and announced). Returns 0, PB_WORKER_POISON or a store
//  code.
static int
s_handover_check (pb_apply_t *ctx, const pb_cpe_handover_t *h, s_outcome_t *outcome)
{
    *outcome = S_DONE;
    if (!pb_registry_is_registered (ctx, h->partner))
        return s_emit_rejected (ctx, h->partner, "unknown_partner");
    if (!pb_registry_is_eligible (ctx, h->partner))
        return s_emit_rejected (ctx, h->partner, "not_eligible");
    if (!pb_registry_is_ally (ctx, h->to))
        return s_emit_rejected (ctx, h->partner, "not_an_ally");
    pb_cpe_proposal_t proposal;
    int rc = pb_cpe_state_proposal_get (ctx, h->decision, &proposal);
    if (rc == PB_ENOTFOUND || (rc == 0 && !s_decision_matches (h, &proposal)))
        return s_emit_rejected (ctx, h->partner, "decision_mismatch");
    if (rc)
        return rc;
    if (streq (proposal.state, "blocked"))
        return s_emit_rejected (ctx, h->partner, "decision_blocked");
    if (streq (proposal.state, "open")) {
        *outcome = S_WAIT;
        return 0;
    }
    if (*h->from) {
        pb_cpe_holder_t holder;
        rc = pb_cpe_state_holder_get (ctx, h->partner, &holder);
        if (rc && rc != PB_ENOTFOUND)
            return rc;
        if (rc == PB_ENOTFOUND || !streq (holder.ally, h->from))
            return s_emit_rejected (ctx, h->partner, "not_current_holder");
    }
    return s_assign (ctx, h, &proposal);
}

//  Complete what can be completed of partner's queue, in log order, and
//  stop at the first handover that still waits. With 'decision' given,
//  only if the head waits on that decision (the checks go on when ITS
//  decision arrives, EVENTS.md check 5).
static int
s_queue_drain (pb_apply_t *ctx, const char *partner, const char *decision)
{
    pb_cpe_handover_t h;
    uint64_t seq;
    for (int i = 0; ; i++) {
        int rc = pb_cpe_state_queue_first (ctx, partner, &h, &seq);
        if (rc == PB_ENOTFOUND)
            return 0;
        if (rc)
            return rc;
        if (i == 0 && decision && !streq (h.decision, decision))
            return 0;
        s_outcome_t outcome;
        rc = s_handover_check (ctx, &h, &outcome);
        if (rc || outcome == S_WAIT)
            return rc;
        rc = pb_cpe_state_queue_del (ctx, partner, seq);
        if (rc)
            return rc;
    }
}

//  --------------------------------------------------------------------------
//  Event handlers

//  A handover joins its partner's queue; alone there, it is checked at
//  once (and stays only if it waits for its decision)
static int
s_on_handover (pb_apply_t *ctx, const pb_envelope_t *event)
{
    pb_cpe_handover_t h;
    if (!s_handover_read (event->data, &h))
        return pb_apply_poison (ctx, "cpe.handover: a field is unreadable");
    pb_cpe_holder_t probe;              //  Refuse a bad date on arrival,
    int rc = s_term (ctx, &h, &probe);  //  not when its decision lands
    if (rc)
        return rc;
    pb_cpe_handover_t head;
    uint64_t head_seq;
    rc = pb_cpe_state_queue_first (ctx, h.partner, &head, &head_seq);
    if (rc && rc != PB_ENOTFOUND)
        return rc;
    bool alone = rc == PB_ENOTFOUND;
    rc = pb_cpe_state_queue_put (ctx, pb_apply_seq (ctx), &h);
    if (rc == 0 && alone)
        rc = s_queue_drain (ctx, h.partner, NULL);
    return rc;
}

//  Remember the first nac.proposal of each id, whatever its kind: a later
//  one with the same id is a duplicate the Council refuses
static int
s_on_proposal (pb_apply_t *ctx, const pb_envelope_t *event)
{
    char id [S_CODE_SIZE];
    if (!pb_apply_str (pb_msgpack_get (event->data, "proposal"), id, sizeof id))
        return pb_apply_poison (ctx, "nac.proposal: proposal is unreadable");
    pb_cpe_proposal_t proposal;
    int rc = pb_cpe_state_proposal_get (ctx, id, &proposal);
    if (rc == 0)
        return pb_cpe_state_duplicate_put (ctx, id, pb_apply_seq (ctx));
    if (rc != PB_ENOTFOUND)
        return rc;
    memset (&proposal, 0, sizeof proposal);
    const msgpack_object *action = pb_msgpack_get (event->data, "action");
    proposal.seq = pb_apply_seq (ctx);
    proposal.is_assign = pb_msgpack_str_eq (pb_msgpack_get (action, "kind"),
                                            "cpe.assign");
    if (proposal.is_assign
    &&  (!pb_apply_str (pb_msgpack_get (action, "partner"), proposal.partner,
                        sizeof proposal.partner)
      || !pb_apply_str (pb_msgpack_get (action, "ally"), proposal.ally,
                        sizeof proposal.ally)
      || !*proposal.partner || !*proposal.ally))
        return pb_apply_poison (ctx, "nac.proposal: cpe.assign fields unreadable");
    snprintf (proposal.state, sizeof proposal.state, "open");
    return pb_cpe_state_proposal_put (ctx, id, &proposal);
}

//  The Council worker decided (adopted, blocked) or refused (invalid_action)
//  a proposal: record it, then let a handover waiting on it go on.
//  An invalid_action refusal whose cause is a later duplicate of the id is
//  not about the first proposal (a Council worker may check validity
//  before uniqueness); any other cause is: the first proposal itself, or
//  the ops.redrive that re-applied it.
static int
s_on_decision (pb_apply_t *ctx, const pb_envelope_t *event, const char *state)
{
    char id [S_CODE_SIZE];
    if (!pb_apply_str (pb_msgpack_get (event->data, "proposal"), id, sizeof id))
        return pb_apply_poison (ctx, "notify.nac: proposal is unreadable");
    pb_cpe_proposal_t proposal;
    int rc = pb_cpe_state_proposal_get (ctx, id, &proposal);
    if (rc == PB_ENOTFOUND)
        return 0;                       //  Not a proposal we saw
    if (rc)
        return rc;
    if (!streq (proposal.state, "open"))
        return 0;                       //  Decided exactly once
    if (streq (state, "invalid") && event->has_cause
    &&  pb_cpe_state_is_duplicate (ctx, id, event->cause))
        return 0;
    pb_apply_join (proposal.state, sizeof proposal.state, state, NULL);
    rc = pb_cpe_state_proposal_put (ctx, id, &proposal);
    if (rc == 0 && proposal.is_assign)
        rc = s_queue_drain (ctx, proposal.partner, id);
    return rc;
}

static int
s_on_volunteer (pb_apply_t *ctx, const pb_envelope_t *event)
{
    char ally [S_CODE_SIZE], partner [S_CODE_SIZE];
    if (!pb_apply_str (pb_msgpack_get (event->data, "ally"), ally, sizeof ally)
    ||  !pb_apply_str (pb_msgpack_get (event->data, "partner"), partner,
                       sizeof partner))
        return pb_apply_poison (ctx, "cpe.volunteer: a field is unreadable");
    return pb_cpe_state_volunteer_add (ctx, partner, ally, pb_apply_seq (ctx));
}

//  A partner's registry change: suspension ends its CPE; becoming
//  eligible (registration, re-activation) without a CPE makes it vacant
static int
s_on_partner (pb_apply_t *ctx, const pb_registry_change_t *ch)
{
    if (!ch->changed)
        return 0;                       //  An upsert that changes nothing
    pb_cpe_holder_t holder;
    int rc = pb_cpe_state_holder_get (ctx, ch->country, &holder);
    if (rc && rc != PB_ENOTFOUND)
        return rc;
    bool held = rc == 0;
    pb_registry_partner_t partner;
    if (pb_registry_partner (ctx, ch->country, &partner))
        return 0;
    if (held && ch->status_changed && !partner.active) {
        rc = pb_cpe_state_holder_del (ctx, ch->country);
        if (rc == 0)
            rc = s_emit_ended (ctx, ch->country, holder.ally, "suspended");
        return rc;
    }
    bool was_eligible = !ch->is_new && ch->was_active
                     && !(ch->old_frameworks & PB_FW (PB_FW_DIALOGUE))
                     && !partner.is_ally;
    if (!held && !was_eligible && pb_registry_is_eligible (ctx, ch->country))
        return s_emit_vacant (ctx, ch->country, pb_apply_now (ctx));
    return 0;
}

//  The country joined the Alliance: its CPE, if any, ends
static int
s_on_became_ally (pb_apply_t *ctx, const pb_registry_change_t *ch)
{
    pb_cpe_holder_t holder;
    int rc = pb_cpe_state_holder_get (ctx, ch->country, &holder);
    if (rc == PB_ENOTFOUND)
        return 0;
    if (rc == 0)
        rc = pb_cpe_state_holder_del (ctx, ch->country);
    if (rc == 0)
        rc = s_emit_ended (ctx, ch->country, holder.ally, "accession");
    return rc;
}

//  What a tick does to one holder
typedef struct {
    char partner [S_CODE_SIZE];
    int64_t end_ms;                     //  when its term ended
    bool ended;                         //  ended on this tick
} s_due_t;

static int
s_tick_notice (pb_apply_t *ctx, s_due_t *due, int64_t now, int64_t notice_ms)
{
    pb_cpe_holder_t holder;
    int rc = pb_cpe_state_holder_get (ctx, due->partner, &holder);
    if (rc || holder.noticed || now < holder.end_ms - notice_ms)
        return rc;
    int64_t left = holder.end_ms - now;
    int64_t days_left = left > 0? (left + PB_CPE_DATE_DAY_MS - 1) / PB_CPE_DATE_DAY_MS: 0;
    holder.noticed = true;
    rc = pb_cpe_state_holder_put (ctx, due->partner, &holder);
    if (rc == 0)
        rc = s_emit_term_expiring (ctx, due->partner, &holder, days_left);
    return rc;
}

static int
s_tick_end (pb_apply_t *ctx, s_due_t *due, int64_t now)
{
    pb_cpe_holder_t holder;
    int rc = pb_cpe_state_holder_get (ctx, due->partner, &holder);
    if (rc || now < holder.end_ms)
        return rc;
    due->ended = true;
    due->end_ms = holder.end_ms;
    rc = pb_cpe_state_holder_del (ctx, due->partner);
    if (rc == 0)
        rc = s_emit_ended (ctx, due->partner, holder.ally, "term_ended");
    return rc;
}

//  A tick: the notices, then the ends, then the vacancies they leave, each
//  over the holders in key order (a rule's notifications go out in
//  EVENTS.md's order: notice first when one tick passes both)
static int
s_on_tick (pb_apply_t *ctx)
{
    pb_registry_policy_t policy;
    pb_registry_policy (ctx, &policy);
    int64_t now = pb_apply_now (ctx);
    int64_t notice_ms = policy.expiry_notice_days * PB_CPE_DATE_DAY_MS;
    zlist_t *partners = zlist_new ();
    zlist_autofree (partners);
    int rc = pb_cpe_state_holders (ctx, partners);
    size_t count = zlist_size (partners);
    s_due_t *dues = (s_due_t *) zmalloc ((count + 1) * sizeof (s_due_t));
    size_t i = 0;
    for (const char *partner = (const char *) zlist_first (partners);
         partner; partner = (const char *) zlist_next (partners), i++)
        pb_apply_join (dues [i].partner, sizeof dues [i].partner, partner, NULL);
    for (i = 0; i < count && rc == 0; i++)
        rc = s_tick_notice (ctx, &dues [i], now, notice_ms);
    for (i = 0; i < count && rc == 0; i++)
        rc = s_tick_end (ctx, &dues [i], now);
    for (i = 0; i < count && rc == 0; i++)
        if (dues [i].ended && pb_registry_is_eligible (ctx, dues [i].partner))
            rc = s_emit_vacant (ctx, dues [i].partner, dues [i].end_ms);
    free (dues);
    zlist_destroy (&partners);
    return rc;
}

//  --------------------------------------------------------------------------

int
pb_cpe_apply (pb_apply_t *ctx, const pb_envelope_t *event)
{
    pb_registry_change_t ch;
    int rc = pb_registry_apply (ctx, event, &ch);
    if (rc)
        return rc;
    if (ch.kind == PB_REGISTRY_PARTNER)
        return s_on_partner (ctx, &ch);
    if ((ch.kind == PB_REGISTRY_ALLY || ch.kind == PB_REGISTRY_ACCESSION)
    &&  ch.became_ally)
        rc = s_on_became_ally (ctx, &ch);
    if (rc)
        return rc;
    if (pb_apply_type_is (event, "sys.tick"))
        return s_on_tick (ctx);
    if (pb_apply_type_is (event, "cpe.handover"))
        return s_on_handover (ctx, event);
    if (pb_apply_type_is (event, "cpe.volunteer"))
        return s_on_volunteer (ctx, event);
    if (pb_apply_type_is (event, "nac.proposal"))
        return s_on_proposal (ctx, event);
    if (pb_apply_type_is (event, "notify.nac.adopted"))
        return s_on_decision (ctx, event, "adopted");
    if (pb_apply_type_is (event, "notify.nac.blocked"))
        return s_on_decision (ctx, event, "blocked");
    if (pb_apply_type_is (event, "notify.nac.rejected")
    &&  pb_msgpack_str_eq (pb_msgpack_get (event->data, "reason"), "invalid_action"))
        return s_on_decision (ctx, event, "invalid");
    return 0;
}

//  --------------------------------------------------------------------------
//  Business gauges for /metrics (read-only, outside any event)

static int
s_count_fn (const char *key, size_t key_len, const void *value, size_t size, void *arg)
{
    (*(uint64_t *) arg)++;
    return 0;
}

//  An eligible partner (pb_registry_is_eligible: active, not DIALOGUE
//  only, not an Ally) with no holder/<P> record
static int
s_without_cpe_fn (const char *key, size_t key_len, const void *value, size_t size,
                  void *arg)
{
    pb_apply_t *ctx = ((void **) arg) [0];
    uint64_t *count = ((void **) arg) [1];
    char partner [S_CODE_SIZE];
    size_t prefix = strlen ("reg/partner/");
    if (key_len <= prefix || key_len - prefix >= sizeof partner)
        return 0;
    memcpy (partner, key + prefix, key_len - prefix);
    partner [key_len - prefix] = 0;
    char holder [S_CODE_SIZE + 8];
    snprintf (holder, sizeof holder, "holder/%s", partner);
    if (pb_registry_is_eligible (ctx, partner) && !pb_apply_get (ctx, holder, NULL))
        (*count)++;
    return 0;
}

static int
s_gauges (pb_apply_t *ctx)
{
    uint64_t waiting = 0, without = 0;
    void *args [2] = { ctx, &without };
    int rc = pb_apply_scan (ctx, "queue/", s_count_fn, &waiting);
    if (rc == 0)
        rc = pb_apply_scan (ctx, "reg/partner/", s_without_cpe_fn, args);
    if (rc == 0) {
        pb_apply_gauge (ctx, "pb_cpe_handovers_waiting",
                        "handovers waiting for the Council's decision or their date",
                        (double) waiting);
        pb_apply_gauge (ctx, "pb_cpe_partners_without_cpe",
                        "eligible partners with no Contact Point Embassy", (double) without);
    }
    return rc;
}

//  Every type pb_cpe_apply has a rule for (the runtime skips the others)
static const char *const s_types [] = {
    PB_REGISTRY_TYPES, "sys.tick", "cpe.handover", "cpe.volunteer", "nac.proposal",
    "notify.nac.blocked", "notify.nac.rejected", NULL
};

const pb_rules_t pb_cpe_rules = { .name = "cpe", .apply = pb_cpe_apply, .gauges = s_gauges,
                                  .types = s_types };

//  --------------------------------------------------------------------------
//  Selftest: the rules on a local store (pb_worker_local), no sockets. The
//  black-box test with real processes is tests/it/it_cpe.py.

static void
s_test_str (msgpack_packer *pk, const char *key, const char *value)
{
    pb_apply_pack_str (pk, key);
    pb_apply_pack_str (pk, value);
}

static void
s_test_end (pb_worker_local_t *w)
{
    int rc = pb_worker_local_end (w);
    assert (rc == 0);
}

static void
s_test_policy (pb_worker_local_t *w, int64_t notice_days)
{
    msgpack_packer *pk = pb_worker_local_begin (w, "registry", "registry.policy");
    msgpack_pack_map (pk, 1);
    pb_apply_pack_str (pk, "expiry_notice_days");
    msgpack_pack_int64 (pk, notice_days);
    s_test_end (w);
}

static void
s_test_action (msgpack_packer *pk, const char *kind, const char *f1,
               const char *v1, const char *f2, const char *v2)
{
    pb_apply_pack_str (pk, "action");
    msgpack_pack_map (pk, 3);
    s_test_str (pk, "kind", kind);
    s_test_str (pk, f1, v1);
    s_test_str (pk, f2, v2);
}

static void
s_test_proposal (pb_worker_local_t *w, const char *id, const char *partner,
                 const char *ally)
{
    msgpack_packer *pk = pb_worker_local_begin (w, "it", "nac.proposal");
    msgpack_pack_map (pk, 3);
    s_test_str (pk, "proposal", id);
    s_test_action (pk, "cpe.assign", "partner", partner, "ally", ally);
    s_test_str (pk, "procedure", "meeting");
    s_test_end (w);
}

//  notify.nac.adopted of a cpe.assign, or of an accession when 'ally' is
//  a date
static void
s_test_adopted (pb_worker_local_t *w, const char *id, const char *partner,
                const char *ally)
{
    msgpack_packer *pk = pb_worker_local_begin (w, "nac", "notify.nac.adopted");
    msgpack_pack_map (pk, 3);
    s_test_str (pk, "proposal", id);
    if (strchr (ally, '-'))
        s_test_action (pk, "accession", "country", partner, "effective", ally);
    else
        s_test_action (pk, "cpe.assign", "partner", partner, "ally", ally);
    pb_apply_pack_str (pk, "adopted_at");
    msgpack_pack_int64 (pk, 0);
    s_test_end (w);
}

static void
s_test_nac (pb_worker_local_t *w, const char *type, const char *id,
            const char *reason)
{
    msgpack_packer *pk = pb_worker_local_begin (w, "nac", type);
    msgpack_pack_map (pk, 2);
    s_test_str (pk, "proposal", id);
    if (reason)
        s_test_str (pk, "reason", reason);
    else {
        pb_apply_pack_str (pk, "by");
        msgpack_pack_array (pk, 0);
    }
    s_test_end (w);
}

static void
s_test_handover (pb_worker_local_t *w, const char *partner, const char *to,
                 const char *decision, const char *effective, const char *from)
{
    msgpack_packer *pk = pb_worker_local_begin (w, "it", "cpe.handover");
    msgpack_pack_map (pk, from? 5: 4);
    s_test_str (pk, "partner", partner);
    s_test_str (pk, "to", to);
    s_test_str (pk, "decision", decision);
    s_test_str (pk, "effective", effective);
    if (from)
        s_test_str (pk, "from", from);
    s_test_end (w);
}

static void
s_test_volunteer (pb_worker_local_t *w, const char *ally, const char *partner)
{
    msgpack_packer *pk = pb_worker_local_begin (w, "it", "cpe.volunteer");
    msgpack_pack_map (pk, 2);
    s_test_str (pk, "ally", ally);
    s_test_str (pk, "partner", partner);
    s_test_end (w);
}

static void
s_test_tick (pb_worker_local_t *w, const char *date, int64_t plus_ms)
{
    int64_t days = 0;
    int rc = pb_cpe_date_parse (date, strlen (date), &days);
    assert (rc == 0);
    msgpack_packer *pk = pb_worker_local_begin (w, "journal", "sys.tick");
    msgpack_pack_map (pk, 1);
    pb_apply_pack_str (pk, "now");
    msgpack_pack_int64 (pk, pb_cpe_date_ms (days) + plus_ms);
    s_test_end (w);
}

//  The next notification is exactly 'expected' ("<type> <data>")
static void
s_test_expect (pb_worker_local_t *w, const char *expected)
{
    char buf [1024];
    bool found = pb_worker_local_take (w, buf, sizeof buf);
    if (!found || strcmp (buf, expected))
        printf ("\n   got:  %s\n   want: %s\n", found? buf: "(nothing)", expected);
    fflush (stdout);
    assert (found && strcmp (buf, expected) == 0);
}

static void
s_test_nothing (pb_worker_local_t *w)
{
    char buf [1024];
    bool found = pb_worker_local_take (w, buf, sizeof buf);
    if (found)
        printf ("\n   unexpected: %s\n", buf);
    assert (!found);
}

#define S_REJECTED(p, r) \
    "notify.cpe.rejected {\"partner\"=>\"" p "\", \"reason\"=>\"" r "\"}"

void
pb_cpe_test (bool verbose)
{
    printf (" * pb_cpe: ");
    char dir [] = "/tmp/pb_cpe_test_XXXXXX";
    char *made = mkdtemp (dir);
    assert (made);
    pb_worker_local_t *w = NULL;
    int rc = pb_worker_local_open (dir, &pb_cpe_rules, &w);
    assert (rc == 0);

    //  Registration: the eligible fall vacant, the others do not; an
    //  upsert that changes nothing yields nothing
    pb_worker_local_ally (w, "FRA");
    pb_worker_local_ally (w, "DEU");
    s_test_volunteer (w, "SWE", "FIN");     //  Not an Ally: passed over
    s_test_volunteer (w, "USA", "FIN");
    s_test_volunteer (w, "DEU", "FIN");
    s_test_volunteer (w, "USA", "FIN");     //  Again: keeps its rank
    pb_worker_local_partner (w, "FIN", "EAPC", "active");
    s_test_expect (w, "notify.cpe.vacant {\"partner\"=>\"FIN\", \"since\"=>0, "
                      "\"candidate\"=>\"DEU\"}");
    pb_worker_local_ally (w, "USA");
    pb_worker_local_partner (w, "FIN", "EAPC", "active");
    pb_worker_local_partner (w, "RUS", "EAPC", "suspended");
    pb_worker_local_partner (w, "CHN", "DIALOGUE", "active");
    s_test_tick (w, "2024-01-01", 0);
    pb_worker_local_partner (w, "JPN", "PATG", "active");
    s_test_expect (w, "notify.cpe.vacant {\"partner\"=>\"JPN\", "
                      "\"since\"=>1704067200000}");
    s_test_nothing (w);

    //  Checks 1..4, first failure wins
    s_test_handover (w, "XXX", "FRA", "p0", "2024-01-01", NULL);
    s_test_expect (w, S_REJECTED ("XXX", "unknown_partner"));
    s_test_handover (w, "CHN", "FRA", "p0", "2024-01-01", NULL);
    s_test_expect (w, S_REJECTED ("CHN", "not_eligible"));
    s_test_handover (w, "RUS", "FRA", "p0", "2024-01-01", NULL);
    s_test_expect (w, S_REJECTED ("RUS", "not_eligible"));
    s_test_handover (w, "FIN", "SWE", "p0", "2024-01-01", NULL);
    s_test_expect (w, S_REJECTED ("FIN", "not_an_ally"));
    s_test_handover (w, "FIN", "FRA", "p0", "2024-01-01", NULL);
    s_test_expect (w, S_REJECTED ("FIN", "decision_mismatch"));
    s_test_proposal (w, "pj", "JPN", "FRA");
    s_test_handover (w, "FIN", "FRA", "pj", "2024-01-01", NULL);
    s_test_expect (w, S_REJECTED ("FIN", "decision_mismatch"));

    //  A handover before its decision waits, and holds back the next one
    //  of the same partner; another partner's goes on meanwhile
    s_test_proposal (w, "p1", "FIN", "FRA");
    s_test_handover (w, "FIN", "FRA", "p1", "2024-02-29", NULL);
    s_test_handover (w, "FIN", "FRA", "p1", "2024-03-01", NULL);
    s_test_adopted (w, "pj", "JPN", "FRA");
    s_test_handover (w, "JPN", "FRA", "pj", "2024-01-01", NULL);
    s_test_expect (w, "notify.cpe.assigned {\"partner\"=>\"JPN\", \"ally\"=>\"FRA\", "
                      "\"term_start\"=>\"2024-01-01\", \"term_end\"=>\"2026-01-01\"}");
    s_test_nothing (w);
    s_test_adopted (w, "p1", "FIN", "FRA");
    s_test_expect (w, "notify.cpe.assigned {\"partner\"=>\"FIN\", \"ally\"=>\"FRA\", "
                      "\"term_start\"=>\"2024-02-29\", \"term_end\"=>\"2026-02-28\"}");
    s_test_expect (w, S_REJECTED ("FIN", "decision_mismatch"));     //  Used

    //  Blocked; then from: not the holder, then the holder
    s_test_proposal (w, "p2", "FIN", "DEU");
    s_test_nac (w, "notify.nac.blocked", "p2", NULL);
    s_test_handover (w, "FIN", "DEU", "p2", "2025-01-01", NULL);
    s_test_expect (w, S_REJECTED ("FIN", "decision_blocked"));
    s_test_proposal (w, "p3", "FIN", "DEU");
    s_test_adopted (w, "p3", "FIN", "DEU");
    s_test_handover (w, "FIN", "DEU", "p3", "2025-01-01", "USA");
    s_test_expect (w, S_REJECTED ("FIN", "not_current_holder"));
    s_test_handover (w, "FIN", "DEU", "p3", "2025-01-01", "FRA");
    s_test_expect (w, "notify.cpe.assigned {\"partner\"=>\"FIN\", \"ally\"=>\"DEU\", "
                      "\"previous\"=>\"FRA\", \"term_start\"=>\"2025-01-01\", "
                      "\"term_end\"=>\"2027-01-01\"}");

    //  invalid_action counts only from the first proposal's refusal; a
    //  handover waiting on it is then a mismatch
    s_test_proposal (w, "p4", "JPN", "DEU");
    s_test_nac (w, "notify.nac.rejected", "p4", "invalid_action");
    s_test_handover (w, "JPN", "DEU", "p4", "2025-01-01", NULL);
    s_test_expect (w, S_REJECTED ("JPN", "decision_mismatch"));
    //  (the refusal's cause here is the handover, as a redrive's would be
    //  some other event than the proposal: it still counts)
    s_test_proposal (w, "p4b", "JPN", "DEU");
    s_test_handover (w, "JPN", "DEU", "p4b", "2025-01-01", NULL);
    s_test_nothing (w);
    s_test_nac (w, "notify.nac.rejected", "p4b", "invalid_action");
    s_test_expect (w, S_REJECTED ("JPN", "decision_mismatch"));
    s_test_proposal (w, "p5", "JPN", "DEU");
    s_test_handover (w, "JPN", "DEU", "p5", "2025-01-01", NULL);
    s_test_proposal (w, "p5", "JPN", "DEU");        //  A duplicate...
    s_test_nac (w, "notify.nac.rejected", "p5", "invalid_action");
    s_test_nothing (w);                             //  ...refused: not p5
    s_test_nac (w, "notify.nac.rejected", "p5", "duplicate_proposal");
    s_test_nothing (w);
    s_test_adopted (w, "p5", "JPN", "DEU");
    s_test_expect (w, "notify.cpe.assigned {\"partner\"=>\"JPN\", \"ally\"=>\"DEU\", "
                      "\"previous\"=>\"FRA\", \"term_start\"=>\"2025-01-01\", "
                      "\"term_end\"=>\"2027-01-01\"}");

    //  Terms: the notice at the policy's days before term_end, once; the
    //  end, then the vacancy naming the oldest standing volunteer (DEU took
    //  FIN's CPE, so USA). JPN's runs out in the same tick.
    s_test_policy (w, 100);
    s_test_tick (w, "2026-09-23", 0);               //  100 days before
    s_test_expect (w, "notify.cpe.term_expiring {\"partner\"=>\"FIN\", "
                      "\"ally\"=>\"DEU\", \"term_end\"=>\"2027-01-01\", \"days_left\"=>100}");
    s_test_expect (w, "notify.cpe.term_expiring {\"partner\"=>\"JPN\", "
                      "\"ally\"=>\"DEU\", \"term_end\"=>\"2027-01-01\", \"days_left\"=>100}");
    s_test_tick (w, "2026-09-24", 1);
    s_test_tick (w, "2026-12-31", 86399999);
    s_test_nothing (w);
    s_test_tick (w, "2027-01-01", 0);
    s_test_expect (w, "notify.cpe.ended {\"partner\"=>\"FIN\", \"ally\"=>\"DEU\", "
                      "\"reason\"=>\"term_ended\"}");
    s_test_expect (w, "notify.cpe.ended {\"partner\"=>\"JPN\", \"ally\"=>\"DEU\", "
                      "\"reason\"=>\"term_ended\"}");
    s_test_expect (w, "notify.cpe.vacant {\"partner\"=>\"FIN\", "
                      "\"since\"=>1798761600000, \"candidate\"=>\"USA\"}");
    s_test_expect (w, "notify.cpe.vacant {\"partner\"=>\"JPN\", "
                      "\"since\"=>1798761600000}");

    //  One tick past both notice and end: both, notice first; renewal by
    //  a handover to the holder itself
    s_test_proposal (w, "p6", "FIN", "USA");
    s_test_adopted (w, "p6", "FIN", "USA");
    s_test_handover (w, "FIN", "USA", "p6", "2025-01-01", NULL);
    s_test_expect (w, "notify.cpe.assigned {\"partner\"=>\"FIN\", \"ally\"=>\"USA\", "
                      "\"term_start\"=>\"2025-01-01\", \"term_end\"=>\"2027-01-01\"}");
    s_test_tick (w, "2027-01-02", 0);
    s_test_expect (w, "notify.cpe.term_expiring {\"partner\"=>\"FIN\", "
                      "\"ally\"=>\"USA\", \"term_end\"=>\"2027-01-01\", \"days_left\"=>0}");
    s_test_expect (w, "notify.cpe.ended {\"partner\"=>\"FIN\", \"ally\"=>\"USA\", "
                      "\"reason\"=>\"term_ended\"}");
    s_test_expect (w, "notify.cpe.vacant {\"partner\"=>\"FIN\", "
                      "\"since\"=>1798761600000}");
    s_test_proposal (w, "p7", "FIN", "FRA");
    s_test_adopted (w, "p7", "FIN", "FRA");
    s_test_handover (w, "FIN", "FRA", "p7", "2027-01-01", NULL);
    s_test_expect (w, "notify.cpe.assigned {\"partner\"=>\"FIN\", \"ally\"=>\"FRA\", "
                      "\"term_start\"=>\"2027-01-01\", \"term_end\"=>\"2029-01-01\"}");
    s_test_proposal (w, "p8", "FIN", "FRA");
    s_test_adopted (w, "p8", "FIN", "FRA");
    s_test_handover (w, "FIN", "FRA", "p8", "2027-06-01", "FRA");
    s_test_expect (w, "notify.cpe.assigned {\"partner\"=>\"FIN\", \"ally\"=>\"FRA\", "
                      "\"previous\"=>\"FRA\", \"term_start\"=>\"2027-06-01\", "
                      "\"term_end\"=>\"2029-06-01\"}");

    //  Suspension ends it without a vacancy; re-activation is a vacancy
    pb_worker_local_partner (w, "FIN", "EAPC", "suspended");
    s_test_expect (w, "notify.cpe.ended {\"partner\"=>\"FIN\", \"ally\"=>\"FRA\", "
                      "\"reason\"=>\"suspended\"}");
    s_test_tick (w, "2027-07-01", 0);
    pb_worker_local_partner (w, "FIN", "EAPC", "active");
    s_test_expect (w, "notify.cpe.vacant {\"partner\"=>\"FIN\", "
                      "\"since\"=>1814400000000}");

    //  Accession ends it, no vacancy, and the country is no host any more
    s_test_proposal (w, "p9", "FIN", "FRA");
    s_test_adopted (w, "p9", "FIN", "FRA");
    s_test_handover (w, "FIN", "FRA", "p9", "2027-07-01", NULL);
    s_test_expect (w, "notify.cpe.assigned {\"partner\"=>\"FIN\", \"ally\"=>\"FRA\", "
                      "\"term_start\"=>\"2027-07-01\", \"term_end\"=>\"2029-07-01\"}");
    s_test_adopted (w, "acc", "FIN", "2027-08-01");
    s_test_expect (w, "notify.cpe.ended {\"partner\"=>\"FIN\", \"ally\"=>\"FRA\", "
                      "\"reason\"=>\"accession\"}");
    s_test_tick (w, "2030-01-01", 0);
    s_test_nothing (w);
    s_test_proposal (w, "p10", "JPN", "FIN");
    s_test_adopted (w, "p10", "JPN", "FIN");
    s_test_handover (w, "JPN", "FIN", "p10", "2030-01-01", NULL);
    s_test_expect (w, "notify.cpe.assigned {\"partner\"=>\"JPN\", \"ally\"=>\"FIN\", "
                      "\"term_start\"=>\"2030-01-01\", \"term_end\"=>\"2032-01-01\"}");

    //  A date the rules cannot handle is quarantined
    s_test_handover (w, "JPN", "FIN", "p10", "9998-06-01", NULL);
    char buf [1024];
    bool found = pb_worker_local_take (w, buf, sizeof buf);
    assert (found && strncmp (buf, "notify.cpe.quarantined", 22) == 0);
    assert (strstr (buf, "9999-12-31"));
    s_test_nothing (w);
    if (verbose)
        printf ("(applied %" PRIu64 ") ", pb_worker_local_seq (w));

    pb_worker_local_destroy (&w);
    zdir_t *tmp = zdir_new (dir, NULL);
    assert (tmp);
    zdir_remove (tmp, true);
    zdir_destroy (&tmp);
    printf ("OK\n");
}
