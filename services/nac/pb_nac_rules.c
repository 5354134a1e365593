/*  =========================================================================
    pb_nac_rules - the Council: proposals, positions, meetings, silence

    Every rule of EVENTS.md "The Council". Each proposal is decided exactly
    once: only a proposal whose status is silence or open can become
    adopted or blocked, and those two are final. Checks come in the order
    EVENTS.md lists them: who (not_an_ally), then what (unknown_proposal,
    already_decided), then how (wrong_procedure). A proposal refused as
    invalid_action was never open: later positions and meetings on it get
    unknown_proposal, and its id stays used (duplicate_proposal).
    =========================================================================
*/
#include "pb_nac.h"
#include "pb_registry.h"

#define S_KEY_MAX 160
#define S_CODE_MAX 65                   //  ids and codes: 64 bytes + nul

static int s_gauges (pb_apply_t *ctx);

//  Every type pb_nac_apply has a rule for (the runtime skips the others)
static const char *const s_types [] = {
    PB_REGISTRY_TYPES, "nac.proposal", "nac.position", "nac.meeting", "sys.tick",
    "activity.registered", NULL
};

const pb_rules_t pb_nac_rules = { .name = "nac", .apply = pb_nac_apply, .gauges = s_gauges,
                                  .types = s_types };

typedef struct {
    char status [16];                   //  silence, open, adopted, blocked, invalid
    char procedure [16];                //  silence, meeting
    bool has_deadline;
    int64_t deadline;
    const msgpack_object *action;       //  (borrowed until end of event)
} s_proposal_t;

//  --------------------------------------------------------------------------
//  Stored proposals

static bool
s_proposal_load (pb_apply_t *ctx, const char *id, s_proposal_t *p)
{
    char key [S_KEY_MAX];
    pb_apply_join (key, sizeof key, "proposal/", id, NULL);
    const msgpack_object *obj = pb_apply_load (ctx, key);
    if (!obj || obj->type != MSGPACK_OBJECT_ARRAY || obj->via.array.size != 4)
        return false;
    const msgpack_object *f = obj->via.array.ptr;
    memset (p, 0, sizeof *p);
    if (!pb_apply_str (&f [0], p->status, sizeof p->status)
    ||  !pb_apply_str (&f [1], p->procedure, sizeof p->procedure))
        return false;
    if (f [2].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        p->has_deadline = true;
        p->deadline = (int64_t) f [2].via.u64;
    }
    p->action = &f [3];
    return true;
}

static int
s_proposal_store (pb_apply_t *ctx, const char *id, const s_proposal_t *p)
{
    char key [S_KEY_MAX];
    pb_apply_join (key, sizeof key, "proposal/", id, NULL);
    msgpack_packer *pk = pb_apply_put_begin (ctx);
    msgpack_pack_array (pk, 4);
    pb_apply_pack_str (pk, p->status);
    pb_apply_pack_str (pk, p->procedure);
    if (p->has_deadline)
        msgpack_pack_uint64 (pk, (uint64_t) p->deadline);
    else
        msgpack_pack_nil (pk);
    msgpack_pack_object (pk, *p->action);
    return pb_apply_put_end (ctx, key);
}

static void
s_silence_key (char *key, size_t size, int64_t deadline, const char *id)
{
    snprintf (key, size, "silence/%016" PRIx64 "/%s", (uint64_t) deadline, id);
}

static int
s_reject (pb_apply_t *ctx, const char *proposal, const char *reason)
{
    msgpack_packer *pk = pb_apply_emit_begin (ctx, "notify.nac.rejected");
    msgpack_pack_map (pk, 2);
    pb_apply_pack_str (pk, "proposal");
    pb_apply_pack_str (pk, proposal);
    pb_apply_pack_str (pk, "reason");
    pb_apply_pack_str (pk, reason);
    return pb_apply_emit_end (ctx);
}

//  --------------------------------------------------------------------------
//  Action validity (EVENTS.md, "Proposal action kinds", column "valid when")

static bool
s_all_registered (pb_apply_t *ctx, const msgpack_object *list)
{
    if (!list || list->type != MSGPACK_OBJECT_ARRAY)
        return false;
    for (uint32_t i = 0; i < list->via.array.size; i++) {
        char country [S_CODE_MAX];
        if (!pb_apply_str (&list->via.array.ptr [i], country, sizeof country)
        ||  !pb_registry_is_registered (ctx, country))
            return false;
    }
    return true;
}

static bool
s_activity_open (pb_apply_t *ctx, const msgpack_object *activity)
{
    char id [S_CODE_MAX], key [S_KEY_MAX];
    if (!pb_apply_str (activity, id, sizeof id))
        return false;
    pb_apply_join (key, sizeof key, "activity/", id, NULL);
    const msgpack_object *open = pb_apply_load (ctx, key);
    return open && open->type == MSGPACK_OBJECT_BOOLEAN && open->via.boolean;
}

static bool
s_action_valid (pb_apply_t *ctx, const msgpack_object *action)
{
    const msgpack_object *kind = pb_msgpack_get (action, "kind");
    char a [S_CODE_MAX], b [S_CODE_MAX];
    if (pb_msgpack_str_eq (kind, "cpe.assign"))
        return pb_apply_str (pb_msgpack_get (action, "partner"), a, sizeof a)
            && pb_apply_str (pb_msgpack_get (action, "ally"), b, sizeof b)
            && pb_registry_is_eligible (ctx, a)
            && pb_registry_is_ally (ctx, b);
    if (pb_msgpack_str_eq (kind, "activity.open"))
        return s_activity_open (ctx, pb_msgpack_get (action, "activity"))
            && s_all_registered (ctx, pb_msgpack_get (action, "partners"));
    if (pb_msgpack_str_eq (kind, "programme.open")) {
        pb_registry_partner_t partner;
        return pb_apply_str (pb_msgpack_get (action, "partner"), a, sizeof a)
            && pb_registry_partner (ctx, a, &partner) == 0
            && !partner.is_ally;
    }
    if (pb_msgpack_str_eq (kind, "consultation.convene"))
        return s_all_registered (ctx, pb_msgpack_get (action, "participants"));
    if (pb_msgpack_str_eq (kind, "activity.discard"))
        return s_activity_open (ctx, pb_msgpack_get (action, "activity"));
    if (pb_msgpack_str_eq (kind, "accession")) {
        pb_registry_partner_t partner;
        return pb_apply_str (pb_msgpack_get (action, "country"), a, sizeof a)
            && pb_registry_partner (ctx, a, &partner) == 0
            && !partner.is_ally;
    }
    return false;
}

//  --------------------------------------------------------------------------
//  Decisions

static int
s_adopt (pb_apply_t *ctx, const char *id, s_proposal_t *p)
{
    strcpy (p->status, "adopted");
    int rc = s_proposal_store (ctx, id, p);
    //  A discarded activity is closed for this worker's later checks
    const msgpack_object *kind = pb_msgpack_get (p->action, "kind");
    char activity [S_CODE_MAX], key [S_KEY_MAX];
    if (rc == 0 && pb_msgpack_str_eq (kind, "activity.discard")
    &&  pb_apply_str (pb_msgpack_get (p->action, "activity"), activity, sizeof activity)) {
        pb_apply_join (key, sizeof key, "activity/", activity, NULL);
        msgpack_packer *pk = pb_apply_put_begin (ctx);
        msgpack_pack_false (pk);
        rc = pb_apply_put_end (ctx, key);
    }
    if (rc == 0) {
        msgpack_packer *pk = pb_apply_emit_begin (ctx, "notify.nac.adopted");
        msgpack_pack_map (pk, 3);
        pb_apply_pack_str (pk, "proposal");
        pb_apply_pack_str (pk, id);
        pb_apply_pack_str (pk, "action");
        msgpack_pack_object (pk, *p->action);
        pb_apply_pack_str (pk, "adopted_at");
        msgpack_pack_int64 (pk, pb_apply_now (ctx));
        rc = pb_apply_emit_end (ctx);
    }
    return rc;
}

typedef struct {
    size_t prefix_len;                  //  "position/<id>/"
    char allies [64][4];                //  objectors, in key order
    size_t count;                       //  how many objectors
    size_t total;                       //  all of them, even past 64
} s_objectors_t;

static int
s_collect_objector (const char *key, size_t key_len, const void *value,
                    size_t size, void *arg)
{
    s_objectors_t *o = (s_objectors_t *) arg;
    //  Another proposal's id may extend this one's ("p" and "p/x"): an
    //  Ally code is 3 letters with no further '/'
    if (key_len != o->prefix_len + 3
    ||  memchr (key + o->prefix_len, '/', 3))
        return 0;
    if (size == 1 && *(const uint8_t *) value == 0xc3) {     //  msgpack true
        if (o->count < 64)
            memcpy (o->allies [o->count++], key + o->prefix_len, 3);
        o->total++;
    }
    return 0;
}

static int
s_objectors (pb_apply_t *ctx, const char *id, s_objectors_t *o)
{
    char prefix [S_KEY_MAX];
    pb_apply_join (prefix, sizeof prefix, "position/", id, "/", NULL);
    memset (o, 0, sizeof *o);
    o->prefix_len = strlen (prefix);
    return pb_apply_scan (ctx, prefix, s_collect_objector, o);
}

//  --------------------------------------------------------------------------
//  Events

static int
s_on_proposal (pb_apply_t *ctx, const msgpack_object *data)
{
    char id [S_CODE_MAX];
    s_proposal_t p;
    memset (&p, 0, sizeof p);
    const msgpack_object *deadline = pb_msgpack_get (data, "deadline");
    p.action = pb_msgpack_get (data, "action");
    if (!pb_apply_str (pb_msgpack_get (data, "proposal"), id, sizeof id)
    ||  !pb_apply_str (pb_msgpack_get (data, "procedure"), p.procedure, sizeof p.procedure)
    ||  !p.action || p.action->type != MSGPACK_OBJECT_MAP)
        return pb_apply_poison (ctx, "nac.proposal: proposal, procedure or action unreadable");
    s_proposal_t old;
    if (s_proposal_load (ctx, id, &old))
        return s_reject (ctx, id, "duplicate_proposal");
    bool silence = streq (p.procedure, "silence");
    if (silence) {
        if (!deadline || deadline->type != MSGPACK_OBJECT_POSITIVE_INTEGER
        ||  deadline->via.u64 > INT64_MAX)
            return pb_apply_poison (ctx, "nac.proposal: silence without a deadline");
        p.has_deadline = true;
        p.deadline = (int64_t) deadline->via.u64;
    }
    int rc = 0;
    if (!s_action_valid (ctx, p.action)) {
        strcpy (p.status, "invalid");
        rc = s_proposal_store (ctx, id, &p);
        return rc? rc: s_reject (ctx, id, "invalid_action");
    }
    strcpy (p.status, silence? "silence": "open");
    rc = s_proposal_store (ctx, id, &p);
    if (rc == 0 && silence) {
        char key [S_KEY_MAX];
        s_silence_key (key, sizeof key, p.deadline, id);
        rc = pb_apply_put (ctx, key, "\xc0", 1);
    }
    return rc;
}

static bool
s_is_decided (const s_proposal_t *p)
{
    return streq (p->status, "adopted") || streq (p->status, "blocked");
}

static int
s_on_position (pb_apply_t *ctx, const msgpack_object *data)
{
    char id [S_CODE_MAX], ally [S_CODE_MAX], key [S_KEY_MAX];
    const msgpack_object *position = pb_msgpack_get (data, "position");
    bool object = pb_msgpack_str_eq (position, "object");
    if (!pb_apply_str (pb_msgpack_get (data, "proposal"), id, sizeof id)
    ||  !pb_apply_str (pb_msgpack_get (data, "ally"), ally, sizeof ally)
    ||  !(object || pb_msgpack_str_eq (position, "concur")))
        return pb_apply_poison (ctx, "nac.position: proposal, ally or position unreadable");
    if (!pb_registry_is_ally (ctx, ally))
        return s_reject (ctx, id, "not_an_ally");
    s_proposal_t p;
    if (!s_proposal_load (ctx, id, &p) || streq (p.status, "invalid"))
        return s_reject (ctx, id, "unknown_proposal");
    if (s_is_decided (&p))
        return s_reject (ctx, id, "already_decided");
    pb_apply_join (key, sizeof key, "position/", id, "/", ally, NULL);
    int rc = pb_apply_put (ctx, key, object? "\xc3": "\xc2", 1);
    if (rc || !object || !streq (p.status, "silence"))
        return rc;
    //  An objection before the deadline's tick breaks silence: the matter
    //  goes back to the Council (meeting procedure from now on)
    s_silence_key (key, sizeof key, p.deadline, id);
    rc = pb_apply_del (ctx, key);
    strcpy (p.status, "open");
    if (rc == 0)
        rc = s_proposal_store (ctx, id, &p);
    if (rc == 0) {
        msgpack_packer *pk = pb_apply_emit_begin (ctx, "notify.nac.silence_broken");
        msgpack_pack_map (pk, 2);
        pb_apply_pack_str (pk, "proposal");
        pb_apply_pack_str (pk, id);
        pb_apply_pack_str (pk, "by");
        pb_apply_pack_str (pk, ally);
        rc = pb_apply_emit_end (ctx);
    }
    return rc;
}

static int
s_on_meeting (pb_apply_t *ctx, const msgpack_object *data)
{
    char id [S_CODE_MAX];
    const msgpack_object *outcome = pb_msgpack_get (data, "outcome");
    bool agreed = pb_msgpack_str_eq (outcome, "agreed");
    if (!pb_apply_str (pb_msgpack_get (data, "proposal"), id, sizeof id)
    ||  !(agreed || pb_msgpack_str_eq (outcome, "not_agreed")))
        return pb_apply_poison (ctx, "nac.meeting: proposal or outcome unreadable");
    s_proposal_t p;
    if (!s_proposal_load (ctx, id, &p) || streq (p.status, "invalid"))
        return s_reject (ctx, id, "unknown_proposal");
    if (s_is_decided (&p))
        return s_reject (ctx, id, "already_decided");
    if (streq (p.status, "silence"))
        return s_reject (ctx, id, "wrong_procedure");
    s_objectors_t o;
    int rc = s_objectors (ctx, id, &o);
    if (rc)
        return rc;
    if (o.total > 64)
        return pb_apply_poison (ctx, "nac.meeting: more than 64 objectors");
    if (agreed && o.count)
        return s_reject (ctx, id, "standing_objection");
    if (agreed)
        return s_adopt (ctx, id, &p);
    strcpy (p.status, "blocked");
    rc = s_proposal_store (ctx, id, &p);
    if (rc == 0) {
        msgpack_packer *pk = pb_apply_emit_begin (ctx, "notify.nac.blocked");
        msgpack_pack_map (pk, 2);
        pb_apply_pack_str (pk, "proposal");
        pb_apply_pack_str (pk, id);
        pb_apply_pack_str (pk, "by");
        msgpack_pack_array (pk, o.count);
        for (size_t i = 0; i < o.count; i++) {
            msgpack_pack_str (pk, 3);
            msgpack_pack_str_body (pk, o.allies [i], 3);
        }
        rc = pb_apply_emit_end (ctx);
    }
    return rc;
}

//  The silence deadlines that this tick reaches, in deadline order
typedef struct {
    int64_t now;                        //  the tick's now
    char ids [32][S_CODE_MAX];          //  proposals due (a bounded round)
    int64_t deadlines [32];
    size_t count;
} s_due_t;

static int
s_collect_due (const char *key, size_t key_len, const void *value, size_t size,
               void *arg)
{
    s_due_t *due = (s_due_t *) arg;
    //  "silence/" + 16 hex digits + "/" + id
    if (key_len < 8 + 16 + 2 || key_len - 25 >= S_CODE_MAX)
        return 0;
    char hex [17];
    memcpy (hex, key + 8, 16);
    hex [16] = 0;
    int64_t deadline = (int64_t) strtoull (hex, NULL, 16);
    if (deadline > due->now || due->count == 32)
        return 1;
    memcpy (due->ids [due->count], key + 25, key_len - 25);
    due->ids [due->count][key_len - 25] = 0;
    due->deadlines [due->count++] = deadline;
    return 0;
}

static int
s_on_tick (pb_apply_t *ctx)
{
    int rc = 0;
    s_due_t due;
    do {
        memset (&due, 0, sizeof due);
        due.now = pb_apply_now (ctx);
        rc = pb_apply_scan (ctx, "silence/", s_collect_due, &due);
        for (size_t i = 0; i < due.count && rc == 0; i++) {
            char key [S_KEY_MAX];
            s_silence_key (key, sizeof key, due.deadlines [i], due.ids [i]);
            rc = pb_apply_del (ctx, key);
            s_proposal_t p;
            if (rc == 0 && s_proposal_load (ctx, due.ids [i], &p)
            &&  streq (p.status, "silence"))
                rc = s_adopt (ctx, due.ids [i], &p);
        }
    } while (rc == 0 && due.count == 32);
    return rc;
}

static int
s_on_activity_registered (pb_apply_t *ctx, const msgpack_object *data)
{
    char id [S_CODE_MAX], key [S_KEY_MAX];
    if (!pb_apply_str (pb_msgpack_get (data, "activity"), id, sizeof id))
        return pb_apply_poison (ctx, "activity.registered: activity unreadable");
    pb_apply_join (key, sizeof key, "activity/", id, NULL);
    if (pb_apply_get (ctx, key, NULL))
        return 0;                       //  Known (open or closed) already
    return pb_apply_put (ctx, key, "\xc3", 1);
}

//  --------------------------------------------------------------------------

int
pb_nac_apply (pb_apply_t *ctx, const pb_envelope_t *event)
{
    pb_registry_change_t change;
    int rc = pb_registry_apply (ctx, event, &change);
    if (rc || change.kind != PB_REGISTRY_NONE)
        return rc;
    if (pb_apply_type_is (event, "nac.proposal"))
        return s_on_proposal (ctx, event->data);
    if (pb_apply_type_is (event, "nac.position"))
        return s_on_position (ctx, event->data);
    if (pb_apply_type_is (event, "nac.meeting"))
        return s_on_meeting (ctx, event->data);
    if (pb_apply_type_is (event, "sys.tick"))
        return s_on_tick (ctx);
    if (pb_apply_type_is (event, "activity.registered"))
        return s_on_activity_registered (ctx, event->data);
    return 0;
}

//  --------------------------------------------------------------------------
//  Business gauges for /metrics (read-only, outside any event): a
//  silence/ key exists exactly while its proposal is under silence

static int
s_count_fn (const char *key, size_t key_len, const void *value, size_t size, void *arg)
{
    (*(uint64_t *) arg)++;
    return 0;
}

static int
s_gauges (pb_apply_t *ctx)
{
    uint64_t silence = 0;
    int rc = pb_apply_scan (ctx, "silence/", s_count_fn, &silence);
    if (rc == 0)
        pb_apply_gauge (ctx, "pb_nac_proposals_silence",
                        "proposals under silence procedure", (double) silence);
    return rc;
}

//  --------------------------------------------------------------------------
//  Selftest: every Council rule through the real store code (no sockets;
//  tests/it/it_nac.py drives the same rules through a real journal)

static void
s_test_str (msgpack_packer *pk, const char *key, const char *value)
{
    pb_apply_pack_str (pk, key);
    pb_apply_pack_str (pk, value);
}

//  A proposal; 'deadline' 0 for the meeting procedure
static void
s_test_proposal (pb_worker_local_t *w, const char *id, const char *kind,
                 const char *k1, const char *v1, const char *k2, const char *v2,
                 int64_t deadline)
{
    msgpack_packer *pk = pb_worker_local_begin (w, "up", "nac.proposal");
    msgpack_pack_map (pk, deadline? 4: 3);
    s_test_str (pk, "proposal", id);
    pb_apply_pack_str (pk, "action");
    msgpack_pack_map (pk, 3);
    s_test_str (pk, "kind", kind);
    s_test_str (pk, k1, v1);
    s_test_str (pk, k2, v2);
    s_test_str (pk, "procedure", deadline? "silence": "meeting");
    if (deadline) {
        pb_apply_pack_str (pk, "deadline");
        msgpack_pack_int64 (pk, deadline);
    }
    assert (pb_worker_local_end (w) == 0);
}

static void
s_test_position (pb_worker_local_t *w, const char *id, const char *ally,
                 const char *position)
{
    msgpack_packer *pk = pb_worker_local_begin (w, "up", "nac.position");
    msgpack_pack_map (pk, 3);
    s_test_str (pk, "proposal", id);
    s_test_str (pk, "ally", ally);
    s_test_str (pk, "position", position);
    assert (pb_worker_local_end (w) == 0);
}

static void
s_test_meeting (pb_worker_local_t *w, const char *id, const char *outcome)
{
    msgpack_packer *pk = pb_worker_local_begin (w, "up", "nac.meeting");
    msgpack_pack_map (pk, 2);
    s_test_str (pk, "proposal", id);
    s_test_str (pk, "outcome", outcome);
    assert (pb_worker_local_end (w) == 0);
}

static void
s_test_tick (pb_worker_local_t *w, int64_t now)
{
    msgpack_packer *pk = pb_worker_local_begin (w, "journal", "sys.tick");
    msgpack_pack_map (pk, 1);
    pb_apply_pack_str (pk, "now");
    msgpack_pack_int64 (pk, now);
    assert (pb_worker_local_end (w) == 0);
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

void
pb_nac_test (bool verbose)
{
    printf (" * pb_nac: ");
    char dir [] = "/tmp/pb_nac_test_XXXXXX";
    assert (mkdtemp (dir));
    pb_worker_local_t *w = NULL;
    assert (pb_worker_local_open (dir, &pb_nac_rules, &w) == 0);
    pb_worker_local_ally (w, "FRA");
    pb_worker_local_ally (w, "DEU");
    pb_worker_local_ally (w, "USA");
    pb_worker_local_partner (w, "FIN", "EAPC", "active");
    pb_worker_local_partner (w, "RUS", "EAPC", "suspended");
    pb_worker_local_partner (w, "CHN", "DIALOGUE", "active");
    s_test_nothing (w);

    //  Validity and duplicates
    s_test_proposal (w, "p1", "cpe.assign", "partner", "FIN", "ally", "FRA", 0);
    s_test_nothing (w);
    s_test_proposal (w, "p1", "cpe.assign", "partner", "FIN", "ally", "FRA", 0);
    s_test_expect (w, "notify.nac.rejected", "\"duplicate_proposal\"", verbose);
    s_test_proposal (w, "p2", "cpe.assign", "partner", "RUS", "ally", "FRA", 0);
    s_test_expect (w, "notify.nac.rejected", "\"invalid_action\"", verbose);
    s_test_proposal (w, "p2b", "cpe.assign", "partner", "CHN", "ally", "FRA", 0);
    s_test_expect (w, "notify.nac.rejected", "\"invalid_action\"", verbose);
    s_test_proposal (w, "p2c", "cpe.assign", "partner", "FIN", "ally", "FIN", 0);
    s_test_expect (w, "notify.nac.rejected", "\"invalid_action\"", verbose);
    s_test_proposal (w, "p2", "cpe.assign", "partner", "FIN", "ally", "FRA", 0);
    s_test_expect (w, "notify.nac.rejected", "\"duplicate_proposal\"", verbose);
    s_test_position (w, "p2", "FRA", "concur");
    s_test_expect (w, "notify.nac.rejected", "\"unknown_proposal\"", verbose);

    //  Positions and the meeting procedure
    s_test_position (w, "p1", "FIN", "concur");
    s_test_expect (w, "notify.nac.rejected", "\"not_an_ally\"", verbose);
    s_test_position (w, "nope", "FRA", "concur");
    s_test_expect (w, "notify.nac.rejected", "\"unknown_proposal\"", verbose);
    s_test_meeting (w, "nope", "agreed");
    s_test_expect (w, "notify.nac.rejected", "\"unknown_proposal\"", verbose);
    s_test_position (w, "p1", "DEU", "object");
    s_test_nothing (w);
    s_test_meeting (w, "p1", "agreed");
    s_test_expect (w, "notify.nac.rejected", "\"standing_objection\"", verbose);
    s_test_position (w, "p1", "DEU", "concur");
    s_test_tick (w, 500);
    s_test_meeting (w, "p1", "agreed");
    s_test_expect (w, "notify.nac.adopted", "\"adopted_at\"=>500", verbose);
    s_test_meeting (w, "p1", "not_agreed");
    s_test_expect (w, "notify.nac.rejected", "\"already_decided\"", verbose);
    s_test_position (w, "p1", "USA", "object");
    s_test_expect (w, "notify.nac.rejected", "\"already_decided\"", verbose);

    //  not_agreed blocks, with the standing objectors (possibly none)
    s_test_proposal (w, "p6", "programme.open", "partner", "FIN", "programme", "IPAP", 0);
    s_test_position (w, "p6", "USA", "object");
    s_test_position (w, "p6", "DEU", "object");
    s_test_meeting (w, "p6", "not_agreed");
    s_test_expect (w, "notify.nac.blocked", "\"by\"=>[\"DEU\", \"USA\"]", verbose);
    s_test_proposal (w, "p7", "programme.open", "partner", "FIN", "programme", "PARP", 0);
    s_test_meeting (w, "p7", "not_agreed");
    s_test_expect (w, "notify.nac.blocked", "\"by\"=>[]", verbose);

    //  Silence: broken by an objection, then decided at a meeting
    s_test_proposal (w, "p3", "programme.open", "partner", "FIN", "programme", "IPAP", 1000);
    s_test_position (w, "p3", "USA", "object");
    s_test_expect (w, "notify.nac.silence_broken", "\"by\"=>\"USA\"", verbose);
    s_test_tick (w, 1500);
    s_test_nothing (w);
    s_test_meeting (w, "p3", "not_agreed");
    s_test_expect (w, "notify.nac.blocked", "[\"USA\"]", verbose);

    //  Silence kept: adopted by the first tick at or past the deadline
    s_test_proposal (w, "p4", "programme.open", "partner", "FIN", "programme", "PARP", 2000);
    s_test_proposal (w, "p4b", "programme.open", "partner", "FIN", "programme", "IPAP", 1999);
    s_test_meeting (w, "p4", "agreed");
    s_test_expect (w, "notify.nac.rejected", "\"wrong_procedure\"", verbose);
    s_test_position (w, "p4", "FRA", "concur");
    s_test_tick (w, 1998);
    s_test_nothing (w);
    s_test_tick (w, 2500);
    s_test_expect (w, "notify.nac.adopted", "\"proposal\"=>\"p4b\"", verbose);
    s_test_expect (w, "notify.nac.adopted", "\"adopted_at\"=>2500", verbose);
    s_test_tick (w, 3000);
    s_test_nothing (w);

    //  Accession: once its adoption is in the log, the country is an Ally
    s_test_proposal (w, "p5", "accession", "country", "FIN", "effective", "2023-04-04", 0);
    s_test_meeting (w, "p5", "agreed");
    s_test_expect (w, "notify.nac.adopted", "\"kind\"=>\"accession\"", verbose);
    msgpack_packer *pk = pb_worker_local_begin (w, "nac", "notify.nac.adopted");
    msgpack_pack_map (pk, 3);
    s_test_str (pk, "proposal", "p5");
    pb_apply_pack_str (pk, "action");
    msgpack_pack_map (pk, 3);
    s_test_str (pk, "kind", "accession");
    s_test_str (pk, "country", "FIN");
    s_test_str (pk, "effective", "2023-04-04");
    pb_apply_pack_str (pk, "adopted_at");
    msgpack_pack_int64 (pk, 3000);
    assert (pb_worker_local_end (w) == 0);
    s_test_proposal (w, "p8", "programme.open", "partner", "FIN", "programme", "IPAP", 0);
    s_test_expect (w, "notify.nac.rejected", "\"invalid_action\"", verbose);
    s_test_proposal (w, "p9", "cpe.assign", "partner", "FIN", "ally", "DEU", 0);
    s_test_expect (w, "notify.nac.rejected", "\"invalid_action\"", verbose);
    s_test_position (w, "p6", "FIN", "concur");
    s_test_expect (w, "notify.nac.rejected", "\"already_decided\"", verbose);

    //  Activities: open/discard need an open activity
    s_test_proposal (w, "a1", "activity.discard", "activity", "act1", "x", "y", 0);
    s_test_expect (w, "notify.nac.rejected", "\"invalid_action\"", verbose);
    pk = pb_worker_local_begin (w, "up", "activity.registered");
    msgpack_pack_map (pk, 5);
    s_test_str (pk, "activity", "act1");
    s_test_str (pk, "title", "t");
    s_test_str (pk, "area", "other");
    s_test_str (pk, "tool", "PCM");
    pb_apply_pack_str (pk, "partners");
    msgpack_pack_array (pk, 0);
    assert (pb_worker_local_end (w) == 0);
    s_test_proposal (w, "a2", "activity.discard", "activity", "act1", "x", "y", 0);
    s_test_meeting (w, "a2", "agreed");
    s_test_expect (w, "notify.nac.adopted", "\"activity.discard\"", verbose);
    s_test_proposal (w, "a3", "activity.discard", "activity", "act1", "x", "y", 0);
    s_test_expect (w, "notify.nac.rejected", "\"invalid_action\"", verbose);

    //  A poison event is quarantined and the worker goes on
    pk = pb_worker_local_begin (w, "up", "nac.proposal");
    msgpack_pack_map (pk, 3);
    s_test_str (pk, "proposal", "q1");
    pb_apply_pack_str (pk, "action");
    msgpack_pack_map (pk, 0);
    s_test_str (pk, "procedure", "silence");
    assert (pb_worker_local_end (w) == 0);
    s_test_expect (w, "notify.nac.quarantined", "\"type\"=>\"nac.proposal\"", verbose);
    s_test_meeting (w, "q1", "agreed");
    s_test_expect (w, "notify.nac.rejected", "\"unknown_proposal\"", verbose);
    s_test_nothing (w);

    pb_worker_local_destroy (&w);
    zsys_dir_delete ("%s", dir);
    char cmd [128];
    snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
    assert (system (cmd) == 0);
    printf ("OK\n");
}
