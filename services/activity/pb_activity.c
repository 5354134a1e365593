/*  =========================================================================
    pb_activity - the activities and feedback worker's rules

    Every rule of EVENTS.md "Activities and feedback" and "Every worker".
    Choices where EVENTS.md is silent (also listed in the report):
      - A second activity.registered for an id already used is refused as
        poison ("activity already registered"): it is quarantined with
        notify.activity.quarantined and changes nothing. Partners are added
        only by the Council (adopted activity.open), so a re-registration
        may not add or drop partners, nor reset the feedback.
      - A registry.policy that changes anything re-evaluates the discard
        condition and the priority score of every open activity: a
        condition that becomes true yields discard_candidate, one that
        becomes false re-arms it; a score that changes yields priority.
      - A closed (discarded) activity publishes nothing more: no
        review_due, no discard_candidate, no priority; feedback on it is
        rejected (closed).
      - An adopted activity.open or activity.discard whose activity is
        unknown or closed by then yields notify.activity.rejected with
        unknown_activity or closed, as feedback does, and changes nothing.
      - notify.activity.opened lists the partners the adoption actually
        added (those not already partners), in the action's order.
      - review_due fires on the first tick at or past last_feedback plus
        the review period; the next one is due one period later. A tick
        that jumps several periods yields one review_due and the next
        deadline is the first period boundary after that tick.
      - Several notifications of one event come in the order EVENTS.md
        lists them: discard_candidate, review_due, priority, opened,
        discarded, rejected, access_changed, convened (so an adopted
        activity.open yields priority, if the score changed, then opened);
        among activities, in key order (id, or deadline then id).
      - Every adopted programme.open yields access_changed, and the
        programme is kept under access/<C> (never erased by the registry).
      - convened.informed: partners ever registered that are active, not
        DIALOGUE, not Allies and not among the participants, sorted by
        code.
    =========================================================================
*/
#include "pb_activity.h"
#include "pb_activity_record.h"
#include "pb_msgpack.h"
#include "pb_registry.h"

#define S_KEY_MAX       160
#define S_INFORMED_MAX  256             //  the catalogue's bound on 'informed'
#define S_LIST_MAX      64              //  the catalogue's bound on lists

//  Every type pb_activity_apply has a rule for (the runtime skips the others)
static const char *const s_types [] = {
    PB_REGISTRY_TYPES, "activity.registered", "activity.feedback", "sys.tick", NULL
};

const pb_rules_t pb_activity_rules = { .name = "activity", .apply = pb_activity_apply,
                                       .types = s_types };

//  The programmes a proposal may open (programme.open), in stored order
static const char *const s_open_programmes [] = { "IPAP", "PARP", NULL };

//  --------------------------------------------------------------------------
//  Collecting keys: pb_apply_scan forbids writes inside the scan, so the
//  rules first collect what they will change, then change it.

typedef struct {
    size_t skip;                        //  prefix bytes to drop from a key
    int64_t until;                      //  due/ scans: stop past this time
    zlist_t *list;                      //  key suffixes (owned strings)
} s_collect_t;

static int
s_collect_fn (const char *key, size_t key_len, const void *value, size_t size,
              void *arg)
{
    s_collect_t *collect = (s_collect_t *) arg;
    if (key_len <= collect->skip)
        return 0;
    if (collect->until >= 0) {
        //  due/<20 digits>/<id>: stop at the first deadline past 'until'
        char digits [21];
        if (key_len < collect->skip + 22)
            return 0;
        memcpy (digits, key + collect->skip, 20);
        digits [20] = 0;
        if (strtoll (digits, NULL, 10) > collect->until)
            return 1;
    }
    char *suffix = strndup (key + collect->skip, key_len - collect->skip);
    assert (suffix);
    zlist_append (collect->list, suffix);
    return 0;
}

static void
s_list_destroy (zlist_t **list_p)
{
    if (*list_p) {
        char *item;
        while ((item = (char *) zlist_pop (*list_p)))
            free (item);
        zlist_destroy (list_p);
    }
}

//  Returns the suffixes of every state key under 'prefix' (a new list the
//  caller owns) or NULL on a store failure (kept by ctx).
static zlist_t *
s_collect (pb_apply_t *ctx, const char *prefix, int64_t until)
{
    s_collect_t collect = { strlen (prefix), until, zlist_new () };
    assert (collect.list);
    if (pb_apply_scan (ctx, prefix, s_collect_fn, &collect))
        s_list_destroy (&collect.list);
    return collect.list;
}

//  --------------------------------------------------------------------------
//  Notifications, each packed with the exact fields of its catalogue
//  schema (proto/pb_catalogue.def), so the journal accepts it

static int
s_emit_priority (pb_apply_t *ctx, const char *activity,
                 const pb_activity_score_t *score)
{
    msgpack_packer *pk = pb_apply_emit_begin (ctx, "notify.activity.priority");
    msgpack_pack_map (pk, 3);
    pb_apply_pack_str (pk, "activity");
    pb_apply_pack_str (pk, activity);
    pb_apply_pack_str (pk, "score");
    msgpack_pack_int64 (pk, score->score);
    pb_apply_pack_str (pk, "factors");
    msgpack_pack_map (pk, PB_CONS_COUNT);
    for (int i = 0; i < PB_CONS_COUNT; i++) {
        pb_apply_pack_str (pk, pb_registry_consideration_name ((pb_cons_t) i));
        msgpack_pack_double (pk, (double) score->counts [i] / (double) score->n);
    }
    return pb_apply_emit_end (ctx);
}

static int
s_emit_candidate (pb_apply_t *ctx, const pb_activity_record_t *rec)
{
    msgpack_packer *pk = pb_apply_emit_begin (ctx,
                                              "notify.activity.discard_candidate");
    msgpack_pack_map (pk, 3);
    pb_apply_pack_str (pk, "activity");
    pb_apply_pack_str (pk, rec->id);
    pb_apply_pack_str (pk, "mean_relevance");
    msgpack_pack_double (pk, (double) rec->relevance_sum / (double) rec->feedbacks);
    pb_apply_pack_str (pk, "feedbacks");
    msgpack_pack_uint64 (pk, rec->feedbacks);
    return pb_apply_emit_end (ctx);
}

static int
s_emit_two (pb_apply_t *ctx, const char *type, const char *key1,
            const char *value1, const char *key2, const char *value2)
{
    msgpack_packer *pk = pb_apply_emit_begin (ctx, type);
    msgpack_pack_map (pk, 2);
    pb_apply_pack_str (pk, key1);
    pb_apply_pack_str (pk, value1);
    pb_apply_pack_str (pk, key2);
    pb_apply_pack_str (pk, value2);
    return pb_apply_emit_end (ctx);
}

static int
s_emit_rejected (pb_apply_t *ctx, const char *activity, const char *reason)
{
    return s_emit_two (ctx, "notify.activity.rejected",
                       "activity", activity, "reason", reason);
}

//  Load an open activity for a rule that needs one. Returns 0 with *rec
//  filled; 1 after publishing rejected (unknown_activity or closed); or
//  an error code.
static int
s_load_open (pb_apply_t *ctx, const char *id, pb_activity_record_t *rec)
{
    int rc = pb_activity_record_load (ctx, id, rec);
    if (rc == PB_ENOTFOUND)
        rc = s_emit_rejected (ctx, id, "unknown_activity");
    else
    if (rc == 0 && !rec->open)
        rc = s_emit_rejected (ctx, id, "closed");
    else
        return rc;
    return rc? rc: 1;
}

//  Recompute the score of each activity listed (ids), store and publish
//  it where it changed. Closed activities are left alone.
static int
s_rescore (pb_apply_t *ctx, zlist_t *ids)
{
    pb_registry_policy_t policy;
    pb_registry_policy (ctx, &policy);
    //  The loop writes no registry record: each partner is read once
    pb_activity_partners_t cache;
    memset (&cache, 0, sizeof cache);
    int rc = 0;
    for (const char *id = (const char *) zlist_first (ids); id && rc == 0;
         id = (const char *) zlist_next (ids)) {
        pb_activity_record_t rec;
        pb_activity_score_t score;
        rc = pb_activity_record_load (ctx, id, &rec);
        if (PB_NEVER (rc == PB_ENOTFOUND)) {
            rc = 0;                     //  An index key without its record
            continue;
        }
        if (rc || !rec.open)
            continue;
        rc = pb_activity_record_score (ctx, &rec, &policy, &cache, &score);
        if (rc || score.score == rec.score)
            continue;
        rec.score = score.score;
        rc = pb_activity_record_store (ctx, &rec);
        if (rc == 0)
            rc = s_emit_priority (ctx, id, &score);
    }
    return rc;
}

//  --------------------------------------------------------------------------
//  Registry: a partner (or Ally) changed, or the policy did

//  Only where the country's counting or profile moved (a suspension, a
//  name or a programme moves no score: the rescore would find every score
//  as it was)
static int
s_on_country (pb_apply_t *ctx, const pb_registry_change_t *change)
{
    if (!pb_activity_record_inputs_changed (ctx, change))
        return 0;
    char prefix [S_KEY_MAX];
    pb_apply_join (prefix, sizeof prefix, "member/", change->country, "/", NULL);
    zlist_t *ids = s_collect (ctx, prefix, -1);
    int rc = ids? s_rescore (ctx, ids): PB_WORKER_STORE;
    s_list_destroy (&ids);
    return rc;
}

//  The discard condition of every open activity first, then the scores:
//  discard_candidate comes before priority in EVENTS.md. Each pass only
//  where its part of the policy moved ('old': before the event); a
//  change of expiry_notice_days alone is the CPE worker's
static int
s_on_policy (pb_apply_t *ctx, const pb_registry_policy_t *old)
{
    pb_registry_policy_t policy;
    pb_registry_policy (ctx, &policy);
    bool discard = policy.discard_below != old->discard_below
                || policy.discard_min_feedbacks != old->discard_min_feedbacks;
    bool weights = memcmp (policy.weights, old->weights, sizeof policy.weights) != 0;
    if (!discard && !weights)
        return 0;
    zlist_t *ids = s_collect (ctx, "act/", -1);
    int rc = ids? 0: PB_WORKER_STORE;
    for (const char *id = ids && discard? (const char *) zlist_first (ids): NULL;
         id && rc == 0; id = (const char *) zlist_next (ids)) {
        pb_activity_record_t rec;
        rc = pb_activity_record_load (ctx, id, &rec);
        if (rc || !rec.open)
            continue;
        bool candidate = pb_activity_record_is_candidate (&rec, &policy);
        if (candidate == rec.candidate)
            continue;
        rec.candidate = candidate;
        rc = pb_activity_record_store (ctx, &rec);
        if (rc == 0 && candidate)
            rc = s_emit_candidate (ctx, &rec);
    }
    if (rc == 0 && weights)
        rc = s_rescore (ctx, ids);
    s_list_destroy (&ids);
    return rc;
}

//  --------------------------------------------------------------------------
//  activity.registered

static int
s_on_registered (pb_apply_t *ctx, const msgpack_object *data)
{
    pb_activity_record_t rec;
    memset (&rec, 0, sizeof rec);
    const msgpack_object *title = pb_msgpack_get (data, "title");
    const msgpack_object *partners = pb_msgpack_get (data, "partners");
    const msgpack_object *days = pb_msgpack_get (data, "review_every_days");
    if (!pb_apply_str (pb_msgpack_get (data, "activity"), rec.id, sizeof rec.id)
    ||  !pb_apply_str (pb_msgpack_get (data, "area"), rec.area, sizeof rec.area)
    ||  !pb_apply_str (pb_msgpack_get (data, "tool"), rec.tool, sizeof rec.tool)
    ||  !title || title->type != MSGPACK_OBJECT_STR
    ||  !partners || partners->type != MSGPACK_OBJECT_ARRAY)
        return pb_apply_poison (ctx, "activity.registered: a field is unreadable");
    rec.review_every_days = 365;
    if (days && (!pb_msgpack_int (days, &rec.review_every_days)
             ||  rec.review_every_days < 1 || rec.review_every_days > 3650))
        return pb_apply_poison (ctx, "activity.registered: review_every_days out of range");
    char key [S_KEY_MAX];
    pb_apply_join (key, sizeof key, "act/", rec.id, NULL);
    if (pb_apply_get (ctx, key, NULL))
        return pb_apply_poison (ctx, "activity already registered");

    //  The title is written once, apart from the record that every
    //  feedback rewrites
    pb_apply_join (key, sizeof key, "title/", rec.id, NULL);
    msgpack_packer *pk = pb_apply_put_begin (ctx);
    msgpack_pack_str (pk, title->via.str.size);
    msgpack_pack_str_body (pk, title->via.str.ptr, title->via.str.size);
    int rc = pb_apply_put_end (ctx, key);
    for (uint32_t i = 0; i < partners->via.array.size && rc == 0; i++) {
        char country [4];
        bool added;
        if (!pb_apply_str (&partners->via.array.ptr [i], country, sizeof country))
            return pb_apply_poison (ctx, "activity.registered: partner unreadable");
        rc = pb_activity_record_add_partner (ctx, &rec, country, &added);
    }
    rec.open = true;
    rec.last_feedback = pb_apply_now (ctx);
    rec.review_due = -1;
    if (rc == 0)
        rc = pb_activity_record_set_due (ctx, &rec, pb_activity_record_after_days (
                                         rec.last_feedback, rec.review_every_days));
    pb_registry_policy_t policy;
    pb_registry_policy (ctx, &policy);
    pb_activity_score_t score;
    if (rc == 0)
        rc = pb_activity_record_score (ctx, &rec, &policy, NULL, &score);
    if (rc == 0) {
        rec.score = score.score;
        rc = pb_activity_record_store (ctx, &rec);
    }
    if (rc == 0)
        rc = s_emit_priority (ctx, rec.id, &score);
    return rc;
}

//  --------------------------------------------------------------------------
//  activity.feedback

static int
s_on_feedback (pb_apply_t *ctx, const msgpack_object *data)
{
    char id [PB_ACTIVITY_ID_MAX];
    int64_t relevance, effectiveness;
    if (!pb_apply_str (pb_msgpack_get (data, "activity"), id, sizeof id)
    ||  !pb_msgpack_int (pb_msgpack_get (data, "relevance"), &relevance)
    ||  !pb_msgpack_int (pb_msgpack_get (data, "effectiveness"), &effectiveness)
    ||  relevance < 1 || relevance > 5 || effectiveness < 1 || effectiveness > 5)
        return pb_apply_poison (ctx, "activity.feedback: a field is unreadable");
    pb_activity_record_t rec;
    int rc = s_load_open (ctx, id, &rec);
    if (rc)
        return rc > 0? 0: rc;
    rec.feedbacks++;
    rec.relevance_sum += (uint64_t) relevance;
    rec.effectiveness_sum += (uint64_t) effectiveness;
    rec.last_feedback = pb_apply_now (ctx);
    rc = pb_activity_record_set_due (ctx, &rec, pb_activity_record_after_days (
                                     rec.last_feedback, rec.review_every_days));
    pb_registry_policy_t policy;
    pb_registry_policy (ctx, &policy);
    bool candidate = pb_activity_record_is_candidate (&rec, &policy);
    bool crossed = candidate && !rec.candidate;
    rec.candidate = candidate;
    if (rc == 0)
        rc = pb_activity_record_store (ctx, &rec);
    if (rc == 0 && crossed)
        rc = s_emit_candidate (ctx, &rec);
    return rc;
}

//  --------------------------------------------------------------------------
//  sys.tick: every open activity whose review deadline has come

static int
s_review (pb_apply_t *ctx, const char *id, int64_t now)
{
    pb_activity_record_t rec;
    int rc = pb_activity_record_load (ctx, id, &rec);
    if (PB_NEVER (rc == PB_ENOTFOUND))
        return 0;                       //  An index key without its record
    if (rc || PB_NEVER (!rec.open))
        return rc;
    msgpack_packer *pk = pb_apply_emit_begin (ctx, "notify.activity.review_due");
    msgpack_pack_map (pk, 2);
    pb_apply_pack_str (pk, "activity");
    pb_apply_pack_str (pk, id);
    pb_apply_pack_str (pk, "last_feedback");
    msgpack_pack_int64 (pk, rec.last_feedback);
    rc = pb_apply_emit_end (ctx);
    //  Once per period: the next deadline is the first period boundary
    //  (counted from the last feedback) after this tick
    int64_t period_ms = rec.review_every_days * PB_ACTIVITY_DAY_MS;
    int64_t periods = (now - rec.review_due) / period_ms + 1;
    int64_t next = pb_activity_record_after_days (rec.review_due,
                                                  periods * rec.review_every_days);
    if (rc == 0)
        rc = pb_activity_record_set_due (ctx, &rec, next);
    if (rc == 0)
        rc = pb_activity_record_store (ctx, &rec);
    return rc;
}

static int
s_on_tick (pb_apply_t *ctx)
{
    int64_t now = pb_apply_now (ctx);
    zlist_t *due = s_collect (ctx, "due/", now);
    int rc = due? 0: PB_WORKER_STORE;
    //  Each entry is "<20 digits>/<id>"
    for (const char *entry = due? (const char *) zlist_first (due): NULL;
         entry && rc == 0; entry = (const char *) zlist_next (due))
        rc = s_review (ctx, entry + 21, now);
    s_list_destroy (&due);
    return rc;
}

//  --------------------------------------------------------------------------
//  Adopted proposals (notify.nac.adopted)

static int
s_adopted_open (pb_apply_t *ctx, const msgpack_object *action)
{
    char id [PB_ACTIVITY_ID_MAX];
    const msgpack_object *partners = pb_msgpack_get (action, "partners");
    if (!pb_apply_str (pb_msgpack_get (action, "activity"), id, sizeof id)
    ||  !partners || partners->type != MSGPACK_OBJECT_ARRAY
    ||  partners->via.array.size > S_LIST_MAX)
        return pb_apply_poison (ctx, "activity.open: a field is unreadable");
    pb_activity_record_t rec;
    int rc = s_load_open (ctx, id, &rec);
    if (rc)
        return rc > 0? 0: rc;
    char added [S_LIST_MAX][4];
    size_t added_count = 0;
    for (uint32_t i = 0; i < partners->via.array.size && rc == 0; i++) {
        bool is_new;
        if (!pb_apply_str (&partners->via.array.ptr [i],
                           added [added_count], sizeof added [added_count]))
            return pb_apply_poison (ctx, "activity.open: partner unreadable");
        rc = pb_activity_record_add_partner (ctx, &rec, added [added_count], &is_new);
        if (is_new)
            added_count++;
    }
    pb_registry_policy_t policy;
    pb_registry_policy (ctx, &policy);
    pb_activity_score_t score;
    if (rc == 0)
        rc = pb_activity_record_score (ctx, &rec, &policy, NULL, &score);
    bool rescored = rc == 0 && score.score != rec.score;
    if (rescored)
        rec.score = score.score;
    if (rc == 0)
        rc = pb_activity_record_store (ctx, &rec);
    if (rc == 0 && rescored)
        rc = s_emit_priority (ctx, id, &score);
    if (rc == 0) {
        msgpack_packer *pk = pb_apply_emit_begin (ctx, "notify.activity.opened");
        msgpack_pack_map (pk, 2);
        pb_apply_pack_str (pk, "activity");
        pb_apply_pack_str (pk, id);
        pb_apply_pack_str (pk, "partners");
        msgpack_pack_array (pk, added_count);
        for (size_t i = 0; i < added_count; i++)
            pb_apply_pack_str (pk, added [i]);
        rc = pb_apply_emit_end (ctx);
    }
    return rc;
}

static int
s_adopted_discard (pb_apply_t *ctx, const char *proposal,
                   const msgpack_object *action)
{
    char id [PB_ACTIVITY_ID_MAX];
    if (!pb_apply_str (pb_msgpack_get (action, "activity"), id, sizeof id))
        return pb_apply_poison (ctx, "activity.discard: activity unreadable");
    pb_activity_record_t rec;
    int rc = s_load_open (ctx, id, &rec);
    if (rc)
        return rc > 0? 0: rc;
    rec.open = false;
    rc = pb_activity_record_set_due (ctx, &rec, -1);
    //  A closed activity is never scored again: its member/ keys go, so
    //  that a partner's rescore reads the open activities alone (a store
    //  of an earlier version may keep some: a rescore skips them)
    for (size_t i = 0; i < rec.partner_count && rc == 0; i++) {
        char key [S_KEY_MAX];
        pb_apply_join (key, sizeof key, "member/", rec.partners [i], "/", id, NULL);
        rc = pb_apply_del (ctx, key);
    }
    if (rc == 0)
        rc = pb_activity_record_store (ctx, &rec);
    if (rc == 0)
        rc = s_emit_two (ctx, "notify.activity.discarded",
                         "activity", id, "proposal", proposal);
    return rc;
}

//  access/<C> holds the programmes the Council opened to <C>, in the
//  order of s_open_programmes; the registry's 'programmes' never touch it
static int
s_adopted_programme (pb_apply_t *ctx, const char *proposal,
                     const msgpack_object *action)
{
    char partner [4], programme [8];
    if (!pb_apply_str (pb_msgpack_get (action, "partner"), partner, sizeof partner)
    ||  !pb_apply_str (pb_msgpack_get (action, "programme"), programme, sizeof programme))
        return pb_apply_poison (ctx, "programme.open: a field is unreadable");
    char key [S_KEY_MAX];
    pb_apply_join (key, sizeof key, "access/", partner, NULL);
    bool held [2] = { false, false };
    bool known = false;
    const msgpack_object *old = pb_apply_load (ctx, key);
    for (int i = 0; s_open_programmes [i]; i++) {
        known |= streq (programme, s_open_programmes [i]);
        held [i] = streq (programme, s_open_programmes [i]);
        for (uint32_t j = 0; old && old->type == MSGPACK_OBJECT_ARRAY
                             && j < old->via.array.size; j++)
            held [i] |= pb_msgpack_str_eq (&old->via.array.ptr [j],
                                           s_open_programmes [i]);
    }
    if (!known)
        return pb_apply_poison (ctx, "programme.open: programme not IPAP or PARP");
    msgpack_packer *pk = pb_apply_put_begin (ctx);
    msgpack_pack_array (pk, (size_t) held [0] + (size_t) held [1]);
    for (int i = 0; s_open_programmes [i]; i++)
        if (held [i])
            pb_apply_pack_str (pk, s_open_programmes [i]);
    int rc = pb_apply_put_end (ctx, key);
    if (rc == 0) {
        pk = pb_apply_emit_begin (ctx, "notify.partner.access_changed");
        msgpack_pack_map (pk, 3);
        pb_apply_pack_str (pk, "partner");
        pb_apply_pack_str (pk, partner);
        pb_apply_pack_str (pk, "programme");
        pb_apply_pack_str (pk, programme);
        pb_apply_pack_str (pk, "proposal");
        pb_apply_pack_str (pk, proposal);
        rc = pb_apply_emit_end (ctx);
    }
    return rc;
}

static bool
s_takes_part (const msgpack_object *participants, const char *country)
{
    for (uint32_t i = 0; i < participants->via.array.size; i++)
        if (pb_msgpack_str_eq (&participants->via.array.ptr [i], country))
            return true;
    return false;
}

static int
s_adopted_convene (pb_apply_t *ctx, const msgpack_object *action)
{
    const msgpack_object *subject = pb_msgpack_get (action, "subject");
    const msgpack_object *participants = pb_msgpack_get (action, "participants");
    if (!subject || subject->type != MSGPACK_OBJECT_STR
    ||  !participants || participants->type != MSGPACK_OBJECT_ARRAY
    ||  participants->via.array.size < 1 || participants->via.array.size > S_LIST_MAX)
        return pb_apply_poison (ctx, "consultation.convene: a field is unreadable");
    //  partner/<C> keys come in code order: 'informed' is sorted
    zlist_t *partners = s_collect (ctx, "partner/", -1);
    if (!partners)
        return PB_WORKER_STORE;
    zlist_t *informed = zlist_new ();
    assert (informed);
    for (const char *country = (const char *) zlist_first (partners); country;
         country = (const char *) zlist_next (partners))
        if (pb_registry_is_eligible (ctx, country)
        &&  !s_takes_part (participants, country))
            zlist_append (informed, (void *) country);
    int rc = 0;
    if (zlist_size (informed) > S_INFORMED_MAX)
        rc = pb_apply_poison (ctx, "consultation.convene: too many partners to inform");
    else {
        msgpack_packer *pk = pb_apply_emit_begin (ctx, "notify.consultation.convened");
        msgpack_pack_map (pk, 3);
        pb_apply_pack_str (pk, "subject");
        msgpack_pack_object (pk, *subject);
        pb_apply_pack_str (pk, "participants");
        msgpack_pack_object (pk, *participants);
        pb_apply_pack_str (pk, "informed");
        msgpack_pack_array (pk, zlist_size (informed));
        for (const char *country = (const char *) zlist_first (informed); country;
             country = (const char *) zlist_next (informed))
            pb_apply_pack_str (pk, country);
        rc = pb_apply_emit_end (ctx);
    }
    zlist_destroy (&informed);          //  Borrowed the strings of partners
    s_list_destroy (&partners);
    return rc;
}

static int
s_on_adopted (pb_apply_t *ctx, const msgpack_object *data)
{
    char proposal [PB_ACTIVITY_ID_MAX];
    const msgpack_object *action = pb_msgpack_get (data, "action");
    const msgpack_object *kind = pb_msgpack_get (action, "kind");
    if (!pb_apply_str (pb_msgpack_get (data, "proposal"), proposal, sizeof proposal)
    ||  !action || action->type != MSGPACK_OBJECT_MAP)
        return pb_apply_poison (ctx, "notify.nac.adopted: proposal or action unreadable");
    if (pb_msgpack_str_eq (kind, "activity.open"))
        return s_adopted_open (ctx, action);
    if (pb_msgpack_str_eq (kind, "activity.discard"))
        return s_adopted_discard (ctx, proposal, action);
    if (pb_msgpack_str_eq (kind, "programme.open"))
        return s_adopted_programme (ctx, proposal, action);
    if (pb_msgpack_str_eq (kind, "consultation.convene"))
        return s_adopted_convene (ctx, action);
    return 0;                           //  cpe.assign: not ours
}

//  --------------------------------------------------------------------------
//  The rules' entry point. The registry goes first (EVENTS.md, "Every
//  worker"): its change decides which scores to recompute. An upsert that
//  changes nothing yields nothing.

int
pb_activity_apply (pb_apply_t *ctx, const pb_envelope_t *event)
{
    assert (ctx && event);
    pb_registry_change_t change;
    int rc = pb_registry_apply (ctx, event, &change);
    if (rc)
        return rc;
    if (change.kind == PB_REGISTRY_POLICY)
        return change.changed? s_on_policy (ctx, &change.old_policy): 0;
    if (change.kind != PB_REGISTRY_NONE) {
        if (!change.changed)
            return 0;
        if (change.kind == PB_REGISTRY_PARTNER) {
            char key [S_KEY_MAX];
            pb_apply_join (key, sizeof key, "partner/", change.country, NULL);
            rc = pb_apply_put (ctx, key, NULL, 0);
        }
        return rc? rc: s_on_country (ctx, &change);
    }
    if (pb_apply_type_is (event, "activity.registered"))
        return s_on_registered (ctx, event->data);
    if (pb_apply_type_is (event, "activity.feedback"))
        return s_on_feedback (ctx, event->data);
    if (pb_apply_type_is (event, "sys.tick"))
        return s_on_tick (ctx);
    if (pb_apply_type_is (event, "notify.nac.adopted"))
        return s_on_adopted (ctx, event->data);
    return 0;
}

//  --------------------------------------------------------------------------
//  Self test: the rules on a local store (no sockets), event by event

static void
s_test_str (msgpack_packer *pk, const char *key, const char *value)
{
    pb_apply_pack_str (pk, key);
    pb_apply_pack_str (pk, value);
}

//  A comma-separated list of codes as a msgpack array
static void
s_test_list (msgpack_packer *pk, const char *csv)
{
    size_t count = *csv? 1: 0;
    for (const char *p = csv; *p; p++)
        count += *p == ',';
    msgpack_pack_array (pk, count);
    for (const char *p = csv; *p; p += *p == ','? 1: 0) {
        size_t len = strcspn (p, ",");
        msgpack_pack_str (pk, len);
        msgpack_pack_str_body (pk, p, len);
        p += len;
    }
}

//  Apply the event packed since pb_worker_local_begin
static void
s_test_end (pb_worker_local_t *w)
{
    int rc = pb_worker_local_end (w);
    assert (rc == 0);
    (void) rc;
}

//  'profile': bit i = consideration i
static void
s_test_partner (pb_worker_local_t *w, const char *country, const char *framework,
                const char *status, unsigned profile)
{
    msgpack_packer *pk = pb_worker_local_begin (w, "up", "registry.partner");
    msgpack_pack_map (pk, 5);
    s_test_str (pk, "country", country);
    s_test_str (pk, "name", country);
    pb_apply_pack_str (pk, "frameworks");
    s_test_list (pk, framework);
    s_test_str (pk, "status", status);
    pb_apply_pack_str (pk, "profile");
    msgpack_pack_map (pk, PB_CONS_PRIORITY_AREA);
    for (int i = 0; i < PB_CONS_PRIORITY_AREA; i++) {
        pb_apply_pack_str (pk, pb_registry_consideration_name ((pb_cons_t) i));
        if (profile & (1u << i))
            msgpack_pack_true (pk);
        else
            msgpack_pack_false (pk);
    }
    s_test_end (w);
}

static void
s_test_register (pb_worker_local_t *w, const char *id, const char *area,
                 const char *partners, int64_t days)
{
    msgpack_packer *pk = pb_worker_local_begin (w, "up", "activity.registered");
    msgpack_pack_map (pk, 6);
    s_test_str (pk, "activity", id);
    s_test_str (pk, "title", "Staff training");
    s_test_str (pk, "area", area);
    s_test_str (pk, "tool", "PCM");
    pb_apply_pack_str (pk, "partners");
    s_test_list (pk, partners);
    pb_apply_pack_str (pk, "review_every_days");
    msgpack_pack_int64 (pk, days);
    s_test_end (w);
}

static void
s_test_feedback (pb_worker_local_t *w, const char *id, int relevance)
{
    msgpack_packer *pk = pb_worker_local_begin (w, "up", "activity.feedback");
    msgpack_pack_map (pk, 4);
    s_test_str (pk, "activity", id);
    s_test_str (pk, "from", "UKR");
    pb_apply_pack_str (pk, "relevance");
    msgpack_pack_int (pk, relevance);
    pb_apply_pack_str (pk, "effectiveness");
    msgpack_pack_int (pk, 4);
    s_test_end (w);
}

static void
s_test_tick (pb_worker_local_t *w, int64_t now)
{
    msgpack_packer *pk = pb_worker_local_begin (w, "journal", "sys.tick");
    msgpack_pack_map (pk, 1);
    pb_apply_pack_str (pk, "now");
    msgpack_pack_int64 (pk, now);
    s_test_end (w);
}

//  'weights' NULL: leave them; else the seven weights
static void
s_test_policy (pb_worker_local_t *w, double below, const int *weights)
{
    msgpack_packer *pk = pb_worker_local_begin (w, "up", "registry.policy");
    msgpack_pack_map (pk, weights? 2: 1);
    pb_apply_pack_str (pk, "discard_below");
    msgpack_pack_double (pk, below);
    if (weights) {
        pb_apply_pack_str (pk, "weights");
        msgpack_pack_map (pk, PB_CONS_COUNT);
        for (int i = 0; i < PB_CONS_COUNT; i++) {
            pb_apply_pack_str (pk, pb_registry_consideration_name ((pb_cons_t) i));
            msgpack_pack_int (pk, weights [i]);
        }
    }
    s_test_end (w);
}

//  An adopted action with one or two fields; a field whose value starts
//  with '[' is a list of codes
static void
s_test_adopted (pb_worker_local_t *w, const char *proposal, const char *kind,
                const char *k1, const char *v1, const char *k2, const char *v2)
{
    msgpack_packer *pk = pb_worker_local_begin (w, "nac", "notify.nac.adopted");
    msgpack_pack_map (pk, 3);
    s_test_str (pk, "proposal", proposal);
    pb_apply_pack_str (pk, "action");
    msgpack_pack_map (pk, k2? 3: 2);
    s_test_str (pk, "kind", kind);
    const char *keys [2] = { k1, k2 }, *values [2] = { v1, v2 };
    for (int i = 0; i < 2 && keys [i]; i++) {
        pb_apply_pack_str (pk, keys [i]);
        if (values [i][0] == '[')
            s_test_list (pk, values [i] + 1);
        else
            pb_apply_pack_str (pk, values [i]);
    }
    pb_apply_pack_str (pk, "adopted_at");
    msgpack_pack_int64 (pk, 1000);
    s_test_end (w);
}

//  Assert that the next notification has 'type' and contains 'part'
static void
s_test_expect (pb_worker_local_t *w, const char *type, const char *part,
               bool verbose)
{
    char buf [2048];
    bool found = pb_worker_local_take (w, buf, sizeof buf);
    if (verbose || !found || strncmp (buf, type, strlen (type)) || !strstr (buf, part))
        printf ("\n   got: %s (want %s %s)", found? buf: "(nothing)", type, part);
    assert (found);
    assert (strncmp (buf, type, strlen (type)) == 0);
    assert (strstr (buf, part));
}

static void
s_test_nothing (pb_worker_local_t *w)
{
    char buf [2048];
    bool found = pb_worker_local_take (w, buf, sizeof buf);
    if (found)
        printf ("\n   unexpected: %s", buf);
    assert (!found);
}

#define S_ASP   (1u << PB_CONS_ASPIRES_MEMBERSHIP)
#define S_VAL   (1u << PB_CONS_SHARES_VALUES)
#define S_OPS   (1u << PB_CONS_SUPPORTS_OPERATIONS)
#define S_ALL   0x3Fu
#define S_DAY   PB_ACTIVITY_DAY_MS

void
pb_activity_test (bool verbose)
{
    printf (" * pb_activity: ");
    char dir [] = "/tmp/pb_activity_test_XXXXXX";
    char *made = mkdtemp (dir);
    assert (made);
    pb_worker_local_t *w = NULL;
    int rc = pb_worker_local_open (dir, &pb_activity_rules, &w);
    assert (rc == 0 && w);
    pb_worker_local_ally (w, "FRA");
    s_test_partner (w, "UKR", "EAPC", "active", S_ASP | S_VAL | S_OPS);
    s_test_partner (w, "GEO", "EAPC", "active", S_ASP | S_VAL);
    s_test_partner (w, "CHN", "DIALOGUE", "active", S_ALL);
    s_test_partner (w, "FIN", "EAPC", "active", S_ALL);
    s_test_partner (w, "JPN", "PATG", "active", 0);
    s_test_partner (w, "RUS", "EAPC", "suspended", S_ALL);
    s_test_nothing (w);
    s_test_tick (w, 1000);

    //  Priority at registration: only UKR counts (CHN is DIALOGUE, FRA an
    //  Ally); weights 1: (200 * (3 + 1) + 7) div 14 = 57
    s_test_register (w, "A1", "operations", "UKR,CHN,FRA", 10);
    s_test_expect (w, "notify.activity.priority", "\"score\"=>57", verbose);

    //  discard_candidate on crossing only, and again after false -> true
    s_test_feedback (w, "A1", 2);
    s_test_feedback (w, "A1", 2);
    s_test_nothing (w);
    s_test_feedback (w, "A1", 2);
    s_test_expect (w, "notify.activity.discard_candidate", "\"feedbacks\"=>3", verbose);
    s_test_feedback (w, "A1", 2);
    s_test_nothing (w);
    s_test_feedback (w, "A1", 5);               //  13/5 = 2.6: false
    s_test_nothing (w);
    s_test_feedback (w, "A1", 1);               //  14/6: true again
    s_test_expect (w, "notify.activity.discard_candidate", "\"feedbacks\"=>6", verbose);
    s_test_policy (w, 2.0, NULL);               //  false by policy
    s_test_nothing (w);
    s_test_policy (w, 3.0, NULL);               //  true by policy
    s_test_expect (w, "notify.activity.discard_candidate", "\"feedbacks\"=>6", verbose);
    s_test_policy (w, 3.0, NULL);               //  changes nothing
    s_test_nothing (w);

    //  review_due: once per period, the next one a period later
    s_test_tick (w, 1000 + 10 * S_DAY - 1);
    s_test_nothing (w);
    s_test_tick (w, 1000 + 10 * S_DAY);
    s_test_expect (w, "notify.activity.review_due", "\"last_feedback\"=>1000", verbose);
    s_test_tick (w, 1000 + 15 * S_DAY);
    s_test_nothing (w);
    s_test_tick (w, 1000 + 20 * S_DAY);
    s_test_expect (w, "notify.activity.review_due", "\"last_feedback\"=>1000", verbose);
    int64_t now = 1000 + 20 * S_DAY;

    //  Adopted activity.open: UKR, GEO, JPN count; c = 2,2,1,0,0,0,3:
    //  (200 * 8 + 21) div 42 = 38; priority first, then opened
    s_test_adopted (w, "P1", "activity.open", "activity", "A1", "partners", "[GEO,JPN,UKR");
    s_test_expect (w, "notify.activity.priority", "\"score\"=>38", verbose);
    s_test_expect (w, "notify.activity.opened", "\"partners\"=>[\"GEO\", \"JPN\"]", verbose);
    s_test_nothing (w);

    //  A profile upsert changes the score; the same upsert again, nothing
    s_test_partner (w, "GEO", "EAPC", "active", S_ASP | S_VAL | S_OPS);
    s_test_expect (w, "notify.activity.priority", "\"score\"=>43", verbose);
    s_test_partner (w, "GEO", "EAPC", "active", S_ASP | S_VAL | S_OPS);
    s_test_nothing (w);

    //  Weights 3,1,0,0,0,0,2 (W 6), c = 2,2,2,0,0,0,3:
    //  (200 * (6 + 2 + 6) + 18) div 36 = 78
    int weights [PB_CONS_COUNT] = { 3, 1, 0, 0, 0, 0, 2 };
    s_test_policy (w, 3.0, weights);
    s_test_expect (w, "notify.activity.priority", "\"score\"=>78", verbose);

    //  An accession takes the partner out of the average: FIN alone, area
    //  other: (200 * 4 + 6) div 12 = 67, then nothing counts: 0
    s_test_register (w, "A2", "other", "FIN", 365);
    s_test_expect (w, "notify.activity.priority", "\"score\"=>67", verbose);
    s_test_adopted (w, "P2", "accession", "country", "FIN", "effective", "2023-04-04");
    s_test_expect (w, "notify.activity.priority", "\"score\"=>0", verbose);
    s_test_nothing (w);

    //  Discarded: feedback after it is rejected; unknown activity too
    s_test_adopted (w, "P3", "activity.discard", "activity", "A1", NULL, NULL);
    s_test_expect (w, "notify.activity.discarded", "\"proposal\"=>\"P3\"", verbose);
    s_test_feedback (w, "A1", 5);
    s_test_expect (w, "notify.activity.rejected", "\"closed\"", verbose);
    s_test_feedback (w, "A9", 5);
    s_test_expect (w, "notify.activity.rejected", "\"unknown_activity\"", verbose);
    s_test_adopted (w, "P4", "activity.open", "activity", "A1", "partners", "[GEO");
    s_test_expect (w, "notify.activity.rejected", "\"closed\"", verbose);
    s_test_tick (w, now + 100 * S_DAY);         //  A1 closed, A2 not due
    s_test_nothing (w);

    //  Programme access and a consultation
    s_test_adopted (w, "P5", "programme.open", "partner", "GEO", "programme", "IPAP");
    s_test_expect (w, "notify.partner.access_changed", "\"programme\"=>\"IPAP\"", verbose);
    s_test_adopted (w, "P6", "consultation.convene", "subject", "Black Sea",
                    "participants", "[UKR");
    s_test_expect (w, "notify.consultation.convened",
                   "\"informed\"=>[\"GEO\", \"JPN\"]", verbose);

    //  A partner's change rescores only where the score reads it: MAR,
    //  listed before it is registered, counts once it is (GEO and MAR,
    //  c = 1,1,2: (200 * 4 + 12) div 24 = 33); a suspension moves nothing;
    //  the DIALOGUE framework takes MAR out again (GEO alone: 67)
    s_test_register (w, "A3", "other", "GEO,MAR", 365);
    s_test_expect (w, "notify.activity.priority", "\"score\"=>67", verbose);
    s_test_partner (w, "MAR", "ICI", "active", S_OPS);
    s_test_expect (w, "notify.activity.priority", "\"score\"=>33", verbose);
    s_test_partner (w, "MAR", "ICI", "suspended", S_OPS);
    s_test_nothing (w);
    s_test_partner (w, "MAR", "ICI,DIALOGUE", "suspended", S_OPS);
    s_test_expect (w, "notify.activity.priority", "\"score\"=>67", verbose);
    s_test_nothing (w);

    //  A second registration of an id is quarantined and changes nothing
    s_test_register (w, "A2", "operations", "UKR", 30);
    s_test_expect (w, "notify.activity.quarantined", "already registered", verbose);
    s_test_nothing (w);
    s_test_tick (w, now + 400 * S_DAY);         //  A2: 365 days, not 30
    s_test_expect (w, "notify.activity.review_due", "\"activity\"=>\"A2\"", verbose);

    pb_worker_local_destroy (&w);
    pb_worker_local_destroy (&w);
    assert (w == NULL);
    zdir_t *tmp = zdir_new (dir, NULL);
    assert (tmp);
    zdir_remove (tmp, true);            //  The LMDB files and the dir
    zdir_destroy (&tmp);
    assert (!zsys_file_exists (dir));
    (void) made;
    printf ("OK\n");
}
