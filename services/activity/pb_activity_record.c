/*  =========================================================================
    pb_activity_record - one stored activity, its indexes, and the two
    computations on it (priority score, discard condition)

    See pb_activity_record.h. Nothing here reads a clock or a float that
    did not come from the log: the score is integer arithmetic, and the
    discard condition compares the exact rational mean with the policy's
    threshold, so the same log always yields the same decisions.
    =========================================================================
*/
#include <math.h>

#include "pb_activity_record.h"
#include "pb_msgpack.h"

#define S_KEY_MAX 160

//  The priority areas of policy paragraph 5 ("other" is paragraph 6)
static const char *const s_priority_areas [] = {
    "political_consultation", "operations", "defence_reform",
    "interoperability", "counter_terrorism", "counter_proliferation",
    "emerging_security_challenges", "civil_emergency_planning", NULL
};

//  --------------------------------------------------------------------------
//  Reading the stored map

static bool
s_get_u64 (const msgpack_object *map, const char *key, uint64_t *value)
{
    const msgpack_object *obj = pb_msgpack_get (map, key);
    return obj && pb_msgpack_uint (obj, value);
}

static bool
s_get_i64 (const msgpack_object *map, const char *key, int64_t *value)
{
    const msgpack_object *obj = pb_msgpack_get (map, key);
    return obj && pb_msgpack_int (obj, value);
}

//  --------------------------------------------------------------------------
//  The fast read of a record as pb_activity_record_store writes it: its
//  twelve keys in their order, strings of ASCII without NUL, scalars
//  read by pb_msgpack_read_scalar. It reads with a bound
//  at every step and gives up (false) at the first thing it does not
//  expect; the general read below decides then. What it accepts, the
//  general read reads the same (a policy change loads every activity:
//  this read is most of a rescore).

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} s_cursor_t;

static bool
s_take (s_cursor_t *c, size_t n, const uint8_t **bytes)
{
    if ((size_t) (c->end - c->p) < n)
        return false;
    *bytes = c->p;
    c->p += n;
    return true;
}

//  A str of ASCII without NUL, shorter than 'size', copied with its NUL
static bool
s_fast_str (s_cursor_t *c, char *buf, size_t size)
{
    const uint8_t *b;
    if (!s_take (c, 1, &b))
        return false;
    size_t len;
    if (b [0] >= 0xa0 && b [0] <= 0xbf)
        len = b [0] & 0x1f;
    else
    if (b [0] == 0xd9) {
        const uint8_t *n;
        if (!s_take (c, 1, &n))
            return false;
        len = n [0];
    }
    else
        return false;
    const uint8_t *text;
    if (len >= size || !s_take (c, len, &text))
        return false;
    for (size_t i = 0; i < len; i++)
        if (text [i] == 0 || text [i] >= 0x80)
            return false;
    memcpy (buf, text, len);
    buf [len] = 0;
    return true;
}

//  The key 'name' (a fixstr)
static bool
s_fast_key (s_cursor_t *c, const char *name)
{
    size_t len = strlen (name);
    const uint8_t *b;
    return len <= 31 && s_take (c, 1 + len, &b)
        && b [0] == (0xa0 | len) && memcmp (b + 1, name, len) == 0;
}

//  A scalar, read as the general read reads it (so both accept the same)
static bool
s_fast_scalar (s_cursor_t *c, msgpack_object *obj)
{
    size_t used = pb_msgpack_read_scalar (c->p, (size_t) (c->end - c->p), obj);
    c->p += used;
    return used > 0;
}

static bool
s_fast_u64 (s_cursor_t *c, uint64_t *value)
{
    msgpack_object obj;
    return s_fast_scalar (c, &obj) && pb_msgpack_uint (&obj, value);
}

static bool
s_fast_i64 (s_cursor_t *c, int64_t *value)
{
    msgpack_object obj;
    return s_fast_scalar (c, &obj) && pb_msgpack_int (&obj, value);
}

static bool
s_fast_bool (s_cursor_t *c, bool *value)
{
    msgpack_object obj;
    if (!s_fast_scalar (c, &obj) || obj.type != MSGPACK_OBJECT_BOOLEAN)
        return false;
    *value = obj.via.boolean;
    return true;
}

static bool
s_fast_load (const void *bytes, size_t size, pb_activity_record_t *rec)
{
    memset (rec, 0, sizeof *rec);
    s_cursor_t c = { (const uint8_t *) bytes, (const uint8_t *) bytes + size };
    const uint8_t *b;
    if (!s_take (&c, 1, &b) || b [0] != 0x8c)
        return false;
    if (!s_fast_key (&c, "area") || !s_fast_str (&c, rec->area, sizeof rec->area)
    ||  !s_fast_key (&c, "tool") || !s_fast_str (&c, rec->tool, sizeof rec->tool)
    ||  !s_fast_key (&c, "review_every_days") || !s_fast_i64 (&c, &rec->review_every_days)
    ||  !s_fast_key (&c, "open") || !s_fast_bool (&c, &rec->open)
    ||  !s_fast_key (&c, "partners") || !s_take (&c, 1, &b))
        return false;
    size_t count;
    if (b [0] >= 0x90 && b [0] <= 0x9f)
        count = b [0] & 0x0f;
    else
    if (b [0] == 0xdc) {
        const uint8_t *n;
        if (!s_take (&c, 2, &n))
            return false;
        count = (size_t) n [0] << 8 | n [1];
    }
    else
        return false;
    if (count > PB_ACTIVITY_PARTNERS_MAX)
        return false;
    rec->partner_count = count;
    for (size_t i = 0; i < count; i++)
        if (!s_fast_str (&c, rec->partners [i], sizeof rec->partners [i]))
            return false;
    return s_fast_key (&c, "feedbacks") && s_fast_u64 (&c, &rec->feedbacks)
        && s_fast_key (&c, "relevance_sum") && s_fast_u64 (&c, &rec->relevance_sum)
        && s_fast_key (&c, "effectiveness_sum") && s_fast_u64 (&c, &rec->effectiveness_sum)
        && s_fast_key (&c, "last_feedback") && s_fast_i64 (&c, &rec->last_feedback)
        && s_fast_key (&c, "review_due") && s_fast_i64 (&c, &rec->review_due)
        && s_fast_key (&c, "candidate") && s_fast_bool (&c, &rec->candidate)
        && s_fast_key (&c, "score") && s_fast_i64 (&c, &rec->score)
        && c.p == c.end;
}

static bool
s_get_bool (const msgpack_object *map, const char *key, bool *value)
{
    const msgpack_object *obj = pb_msgpack_get (map, key);
    if (!obj || obj->type != MSGPACK_OBJECT_BOOLEAN)
        return false;
    *value = obj->via.boolean;
    return true;
}

static bool
s_get_partners (const msgpack_object *map, pb_activity_record_t *rec)
{
    const msgpack_object *list = pb_msgpack_get (map, "partners");
    if (!list || list->type != MSGPACK_OBJECT_ARRAY
    ||  list->via.array.size > PB_ACTIVITY_PARTNERS_MAX)
        return false;
    rec->partner_count = list->via.array.size;
    for (size_t i = 0; i < rec->partner_count; i++)
        if (!pb_apply_str (&list->via.array.ptr [i], rec->partners [i],
                           sizeof rec->partners [i]))
            return false;
    return true;
}

//  --------------------------------------------------------------------------
//  Load the record; every string is copied into *rec before anything else
//  touches the store, because the bytes are LMDB's and a put may rewrite
//  their page. Decoded into slots on the stack, not with pb_apply_load:
//  that keeps each loaded object in the event's zone until the event ends,
//  and a policy change loads every activity in one event (the zone grew to
//  megabytes with the number of activities, and malloc kept them).

//  A record: the map, its 12 pairs, up to PB_ACTIVITY_PARTNERS_MAX partners
#define S_RECORD_SLOTS (1 + 24 + PB_ACTIVITY_PARTNERS_MAX)

//  The general read: any record the bounded decoder reads, keys in any
//  order. False if it cannot be read as a record.
static bool
s_general_load (const void *bytes, size_t size, pb_activity_record_t *rec)
{
    //  Bounded like untrusted input: a damaged record is poison, not a crash
    const pb_limits_t limits = { 1048576, 8, 1024, 65536 };
    msgpack_object slots [S_RECORD_SLOTS], root;
    size_t slot_count = 0;
    const msgpack_object *map = NULL;
    if (pb_msgpack_check_objects (bytes, size, &limits, &slot_count, NULL, 0) == 0
    &&  slot_count <= S_RECORD_SLOTS) {
        pb_msgpack_unpack_checked (bytes, size, slots, slot_count, &root);
        map = &root;
    }
    memset (rec, 0, sizeof *rec);
    return map && map->type == MSGPACK_OBJECT_MAP
        && pb_apply_str (pb_msgpack_get (map, "area"), rec->area, sizeof rec->area)
        && pb_apply_str (pb_msgpack_get (map, "tool"), rec->tool, sizeof rec->tool)
        && s_get_i64 (map, "review_every_days", &rec->review_every_days)
        && s_get_bool (map, "open", &rec->open)
        && s_get_partners (map, rec)
        && s_get_u64 (map, "feedbacks", &rec->feedbacks)
        && s_get_u64 (map, "relevance_sum", &rec->relevance_sum)
        && s_get_u64 (map, "effectiveness_sum", &rec->effectiveness_sum)
        && s_get_i64 (map, "last_feedback", &rec->last_feedback)
        && s_get_i64 (map, "review_due", &rec->review_due)
        && s_get_bool (map, "candidate", &rec->candidate)
        && s_get_i64 (map, "score", &rec->score);
}

int
pb_activity_record_load (pb_apply_t *ctx, const char *id,
                         pb_activity_record_t *rec)
{
    assert (ctx && id && rec);
    char key [S_KEY_MAX];
    pb_apply_join (key, sizeof key, "act/", id, NULL);
    size_t size = 0;
    const void *bytes = pb_apply_get (ctx, key, &size);
    if (!bytes)
        return PB_ENOTFOUND;            //  (a store failure is kept by ctx)
    if (!s_fast_load (bytes, size, rec) && !s_general_load (bytes, size, rec))
        return pb_apply_poison (ctx, "stored activity record is unreadable");
    pb_apply_join (rec->id, sizeof rec->id, id, NULL);
    return 0;
}

//  --------------------------------------------------------------------------
//  Store the record, keys in the one fixed order (see the header)

//  The record's one fixed order of keys (s_fast_load reads it back)
static void
s_pack_record (msgpack_packer *pk, const pb_activity_record_t *rec)
{
    msgpack_pack_map (pk, 12);
    pb_apply_pack_str (pk, "area");
    pb_apply_pack_str (pk, rec->area);
    pb_apply_pack_str (pk, "tool");
    pb_apply_pack_str (pk, rec->tool);
    pb_apply_pack_str (pk, "review_every_days");
    msgpack_pack_int64 (pk, rec->review_every_days);
    pb_apply_pack_str (pk, "open");
    if (rec->open)
        msgpack_pack_true (pk);
    else
        msgpack_pack_false (pk);
    pb_apply_pack_str (pk, "partners");
    msgpack_pack_array (pk, rec->partner_count);
    for (size_t i = 0; i < rec->partner_count; i++)
        pb_apply_pack_str (pk, rec->partners [i]);
    pb_apply_pack_str (pk, "feedbacks");
    msgpack_pack_uint64 (pk, rec->feedbacks);
    pb_apply_pack_str (pk, "relevance_sum");
    msgpack_pack_uint64 (pk, rec->relevance_sum);
    pb_apply_pack_str (pk, "effectiveness_sum");
    msgpack_pack_uint64 (pk, rec->effectiveness_sum);
    pb_apply_pack_str (pk, "last_feedback");
    msgpack_pack_int64 (pk, rec->last_feedback);
    pb_apply_pack_str (pk, "review_due");
    msgpack_pack_int64 (pk, rec->review_due);
    pb_apply_pack_str (pk, "candidate");
    if (rec->candidate)
        msgpack_pack_true (pk);
    else
        msgpack_pack_false (pk);
    pb_apply_pack_str (pk, "score");
    msgpack_pack_int64 (pk, rec->score);
}

int
pb_activity_record_store (pb_apply_t *ctx, const pb_activity_record_t *rec)
{
    assert (ctx && rec);
    char key [S_KEY_MAX];
    pb_apply_join (key, sizeof key, "act/", rec->id, NULL);
    s_pack_record (pb_apply_put_begin (ctx), rec);
    return pb_apply_put_end (ctx, key);
}

//  --------------------------------------------------------------------------

bool
pb_activity_record_has_partner (const pb_activity_record_t *rec,
                                const char *country)
{
    assert (rec && country);
    for (size_t i = 0; i < rec->partner_count; i++)
        if (streq (rec->partners [i], country))
            return true;
    return false;
}

//  --------------------------------------------------------------------------
//  The catalogue guarantees a COUNTRY is three letters A-Z; a stored code
//  of another shape would break the member/ keys, so it is refused here.

int
pb_activity_record_add_partner (pb_apply_t *ctx, pb_activity_record_t *rec,
                                const char *country, bool *added)
{
    assert (ctx && rec && country && added);
    *added = false;
    if (strlen (country) != 3
    ||  strspn (country, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != 3)
        return pb_apply_poison (ctx, "partner is not an ISO alpha-3 code");
    if (pb_activity_record_has_partner (rec, country))
        return 0;
    if (rec->partner_count == PB_ACTIVITY_PARTNERS_MAX)
        return pb_apply_poison (ctx, "activity has too many partners");
    memcpy (rec->partners [rec->partner_count++], country, 4);
    *added = true;
    char key [S_KEY_MAX];
    pb_apply_join (key, sizeof key, "member/", country, "/", rec->id, NULL);
    return pb_apply_put (ctx, key, NULL, 0);
}

//  --------------------------------------------------------------------------
//  The due/ key exists exactly when review_due >= 0; zero-padded decimal
//  so that key order is time order.

int
pb_activity_record_set_due (pb_apply_t *ctx, pb_activity_record_t *rec,
                            int64_t due)
{
    assert (ctx && rec);
    char key [S_KEY_MAX];
    char digits [21];
    int rc = 0;
    if (rec->review_due >= 0) {
        pb_apply_join (key, sizeof key, "due/",
                      pb_apply_digits (digits, rec->review_due), "/", rec->id, NULL);
        rc = pb_apply_del (ctx, key);
    }
    rec->review_due = due < 0? -1: due;
    if (rc == 0 && due >= 0) {
        pb_apply_join (key, sizeof key, "due/", pb_apply_digits (digits, due), "/",
                      rec->id, NULL);
        rc = pb_apply_put (ctx, key, NULL, 0);
    }
    return rc;
}

int64_t
pb_activity_record_after_days (int64_t from, int64_t days)
{
    if (days <= 0)
        return from;
    if (days > INT64_MAX / PB_ACTIVITY_DAY_MS)
        return INT64_MAX;
    int64_t span = days * PB_ACTIVITY_DAY_MS;
    return from > INT64_MAX - span? INT64_MAX: from + span;
}

//  --------------------------------------------------------------------------
//  Priority score

bool
pb_activity_record_is_priority_area (const char *area)
{
    assert (area);
    for (size_t i = 0; s_priority_areas [i]; i++)
        if (streq (area, s_priority_areas [i]))
            return true;
    return false;
}

int64_t
pb_activity_record_formula (const int64_t counts [PB_CONS_COUNT], int64_t n,
                            const int64_t weights [PB_CONS_COUNT])
{
    if (n < 1 || n > PB_ACTIVITY_PARTNERS_MAX)
        return -1;
    int64_t total = 0;                  //  W
    int64_t weighted = 0;               //  sum (w_i * c_i)
    for (int i = 0; i < PB_CONS_COUNT; i++) {
        if (weights [i] < 0 || weights [i] > 100
        ||  counts [i] < 0 || counts [i] > n)
            return -1;
        total += weights [i];
        weighted += weights [i] * counts [i];
    }
    if (total == 0)
        return -1;
    //  100 times the weighted mean, halves rounded up (EVENTS.md)
    return (200 * weighted + n * total) / (2 * n * total);
}

//  Counted: registered partners (registry.partner) that are not DIALOGUE
//  and not Allies. Suspension does not matter here: EVENTS.md excludes
//  only DIALOGUE countries and Allies from the average.

//  The rule itself, for a registered partner: not DIALOGUE, not an Ally
static bool
s_counts (unsigned frameworks, bool is_ally)
{
    return !(frameworks & PB_FW (PB_FW_DIALOGUE)) && !is_ally;
}

//  Whether the partner counts, and its profile bits: from 'cache' (may be
//  NULL) or the registry (remembered while the cache has room)
static bool
s_partner_counted (pb_apply_t *ctx, const char *country,
                   pb_activity_partners_t *cache, unsigned *profile)
{
    for (size_t i = 0; cache && i < cache->count; i++)
        if (memcmp (cache->entry [i].country, country, 4) == 0) {
            *profile = cache->entry [i].profile;
            return cache->entry [i].counted;
        }
    pb_registry_partner_t partner;
    //  (partner.is_ally is read in this transaction by pb_registry_partner)
    bool counted = pb_registry_partner (ctx, country, &partner) == 0
                && s_counts (partner.frameworks, partner.is_ally);
    *profile = counted && partner.has_profile? partner.profile: 0;
    if (cache && cache->count < PB_ACTIVITY_CACHE_MAX && strlen (country) == 3) {
        memcpy (cache->entry [cache->count].country, country, 4);
        cache->entry [cache->count].counted = counted;
        cache->entry [cache->count].profile = *profile;
        cache->count++;
    }
    return counted;
}

int
pb_activity_record_score (pb_apply_t *ctx, const pb_activity_record_t *rec,
                          const pb_registry_policy_t *policy,
                          pb_activity_partners_t *cache,
                          pb_activity_score_t *score)
{
    assert (ctx && rec && policy && score);
    memset (score, 0, sizeof *score);
    int64_t counted = 0;
    for (size_t i = 0; i < rec->partner_count; i++) {
        unsigned profile = 0;
        if (!s_partner_counted (ctx, rec->partners [i], cache, &profile))
            continue;
        counted++;
        for (int cons = 0; cons < PB_CONS_PRIORITY_AREA; cons++)
            if (profile & (1u << cons))
                score->counts [cons]++;
    }
    score->n = counted? counted: 1;
    score->counts [PB_CONS_PRIORITY_AREA] =
        pb_activity_record_is_priority_area (rec->area)? score->n: 0;
    score->score = pb_activity_record_formula (score->counts, score->n,
                                               policy->weights);
    if (score->score < 0)
        return pb_apply_poison (ctx, "policy weights out of range or all 0");
    return 0;
}

bool
pb_activity_record_inputs_changed (pb_apply_t *ctx,
                                   const pb_registry_change_t *change)
{
    assert (ctx && change);
    if (change->kind != PB_REGISTRY_PARTNER)
        return change->became_ally;     //  An Ally's name or date: nothing
    unsigned profile = 0;
    bool counted = s_partner_counted (ctx, change->country, NULL, &profile);
    //  The event changes no Ally status: an Ally was not counted before
    //  either (nor a country that had no partner record)
    bool was_counted = !change->is_new
                    && s_counts (change->old_frameworks,
                                 pb_registry_is_ally (ctx, change->country));
    unsigned old_profile = was_counted && change->had_profile? change->old_profile: 0;
    return counted != was_counted || profile != old_profile;
}

//  --------------------------------------------------------------------------
//  Discard condition, exactly. For below >= 1 (every threshold that a mean
//  of relevances 1..5 can fall under), below = bi + F / 2^52 with integers
//  bi and F (a double >= 1 has no bits under 2^-52), and the mean is
//  q + r / count, so the comparison is one of integers (128-bit products).

static void
s_mul (uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo)
{
    uint64_t a0 = a & 0xFFFFFFFFu, a1 = a >> 32;
    uint64_t b0 = b & 0xFFFFFFFFu, b1 = b >> 32;
    uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    uint64_t mid = (p00 >> 32) + (p01 & 0xFFFFFFFFu) + (p10 & 0xFFFFFFFFu);
    *lo = (mid << 32) | (p00 & 0xFFFFFFFFu);
    *hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}

//  a * b < c * d, exactly
static bool
s_product_less (uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    uint64_t hi1, lo1, hi2, lo2;
    s_mul (a, b, &hi1, &lo1);
    s_mul (c, d, &hi2, &lo2);
    return hi1 < hi2 || (hi1 == hi2 && lo1 < lo2);
}

bool
pb_activity_record_mean_below (uint64_t sum, uint64_t count, double below)
{
    if (count == 0 || isnan (below))
        return false;
    if (below < 1.0)                    //  Never for relevances 1..5
        return (double) sum < below * (double) count;
    if (below >= 18446744073709551616.0)    //  2^64: above any mean
        return true;
    double whole = floor (below);
    uint64_t bi = (uint64_t) whole;
    uint64_t frac = (uint64_t) ldexp (below - whole, 52);    //  exact
    uint64_t q = sum / count, r = sum % count;
    if (q != bi)
        return q < bi;
    return s_product_less (r, (uint64_t) 1 << 52, frac, count);
}

bool
pb_activity_record_is_candidate (const pb_activity_record_t *rec,
                                 const pb_registry_policy_t *policy)
{
    assert (rec && policy);
    return policy->discard_min_feedbacks >= 0
        && rec->feedbacks >= (uint64_t) policy->discard_min_feedbacks
        && pb_activity_record_mean_below (rec->relevance_sum, rec->feedbacks,
                                          policy->discard_below);
}

//  --------------------------------------------------------------------------
//  Self test: the pure computations (the stored side is exercised through
//  the rules in pb_activity_test)

void
pb_activity_record_test (bool verbose)
{
    printf (" * pb_activity_record: ");

    //  Score: all weights 1, no partners, priority area -> 1/7 -> 14.28 -> 14
    int64_t ones [PB_CONS_COUNT] = { 1, 1, 1, 1, 1, 1, 1 };
    int64_t counts [PB_CONS_COUNT] = { 0, 0, 0, 0, 0, 0, 1 };
    assert (pb_activity_record_formula (counts, 1, ones) == 14);
    //  Halves round up: weights 1 on two considerations, one held: 50
    int64_t two [PB_CONS_COUNT] = { 1, 1, 0, 0, 0, 0, 0 };
    int64_t half [PB_CONS_COUNT] = { 1, 0, 0, 0, 0, 0, 0 };
    assert (pb_activity_record_formula (half, 1, two) == 50);
    //  1/8 = 12.5 -> 13 (n = 8, one partner with the only weighted one)
    int64_t first [PB_CONS_COUNT] = { 1, 0, 0, 0, 0, 0, 0 };
    assert (pb_activity_record_formula (half, 8, first) == 13);
    //  Weights 3,1,0,0,0,0,2 (W 6); n 3; c 2,3,0,0,0,0,3:
    //  (200 * (6 + 3 + 6) + 18) div 36 = 3018 div 36 = 83
    int64_t w [PB_CONS_COUNT] = { 3, 1, 0, 0, 0, 0, 2 };
    int64_t c [PB_CONS_COUNT] = { 2, 3, 0, 0, 0, 0, 3 };
    assert (pb_activity_record_formula (c, 3, w) == 83);
    //  Refused inputs
    int64_t zero [PB_CONS_COUNT] = { 0 };
    assert (pb_activity_record_formula (counts, 1, zero) == -1);
    assert (pb_activity_record_formula (counts, 0, ones) == -1);
    int64_t big [PB_CONS_COUNT] = { 0, 0, 0, 0, 0, 0, 2 };
    assert (pb_activity_record_formula (big, 1, ones) == -1);

    assert (pb_activity_record_is_priority_area ("operations"));
    assert (pb_activity_record_is_priority_area ("civil_emergency_planning"));
    assert (!pb_activity_record_is_priority_area ("other"));

    //  Exact means
    assert (pb_activity_record_mean_below (4, 2, 2.5));         //  2 < 2.5
    assert (!pb_activity_record_mean_below (5, 2, 2.5));        //  2.5
    assert (!pb_activity_record_mean_below (6, 2, 2.5));
    assert (!pb_activity_record_mean_below (0, 0, 2.5));
    //  7/3 is just under the double nearest to it: a rounded division
    //  would call them equal
    assert (pb_activity_record_mean_below (7, 3, 7.0 / 3.0));
    assert (!pb_activity_record_mean_below (7, 3, 2.0));
    assert (pb_activity_record_mean_below (7, 3, 3.0));
    assert (!pb_activity_record_mean_below (3, 3, 1.0));
    assert (!pb_activity_record_mean_below (3, 3, 0.5));
    assert (!pb_activity_record_mean_below (3, 3, NAN));
    assert (pb_activity_record_mean_below (5, 1, 5.5));
    //  Huge counts keep exact
    uint64_t n = (uint64_t) 1 << 40;
    assert (pb_activity_record_mean_below (5 * n - 1, n, 5.0));
    assert (!pb_activity_record_mean_below (5 * n, n, 5.0));

    pb_activity_record_t rec;
    memset (&rec, 0, sizeof rec);
    pb_registry_policy_t policy;
    memset (&policy, 0, sizeof policy);
    policy.discard_below = 2.5;
    policy.discard_min_feedbacks = 3;
    rec.feedbacks = 2;
    rec.relevance_sum = 2;
    assert (!pb_activity_record_is_candidate (&rec, &policy));
    rec.feedbacks = 3;
    rec.relevance_sum = 7;
    assert (pb_activity_record_is_candidate (&rec, &policy));
    rec.relevance_sum = 8;
    assert (!pb_activity_record_is_candidate (&rec, &policy));

    //  The fast read takes what the store writes and reads it as the
    //  general read does; it gives anything else to the general read
    pb_activity_record_t cases [3];
    memset (cases, 0, sizeof cases);
    strcpy (cases [0].area, "operations");
    strcpy (cases [0].tool, "PCM");
    cases [0].review_every_days = 365;
    cases [0].open = true;
    cases [1] = cases [0];
    cases [1].partner_count = PB_ACTIVITY_PARTNERS_MAX;
    for (size_t i = 0; i < PB_ACTIVITY_PARTNERS_MAX; i++)
        snprintf (cases [1].partners [i], 4, "P%02zu", i % 100);
    cases [1].feedbacks = UINT64_MAX;
    cases [1].relevance_sum = 70000;
    cases [1].effectiveness_sum = 300;
    cases [1].last_feedback = INT64_MIN;
    cases [1].review_due = -200;
    cases [1].candidate = true;
    cases [1].score = 100;
    cases [2] = cases [0];
    cases [2].last_feedback = INT64_MAX;
    cases [2].review_due = -5;
    cases [2].score = -129;
    for (int k = 0; k < 3; k++) {
        msgpack_sbuffer buffer;
        msgpack_sbuffer_init (&buffer);
        msgpack_packer pk;
        msgpack_packer_init (&pk, &buffer, msgpack_sbuffer_write);
        s_pack_record (&pk, &cases [k]);
        pb_activity_record_t fast, general;
        memset (&fast, 0, sizeof fast);
        assert (s_fast_load (buffer.data, buffer.size, &fast));
        assert (s_general_load (buffer.data, buffer.size, &general));
        assert (memcmp (&fast, &general, sizeof fast) == 0);
        assert (memcmp (&fast, &cases [k], sizeof fast) == 0);
        //  Every cut is refused by both; a trailing byte by the fast read
        for (size_t cut = 0; cut < buffer.size; cut++) {
            pb_activity_record_t part;
            memset (&part, 0, sizeof part);
            assert (!s_fast_load (buffer.data, cut, &part));
            assert (!s_general_load (buffer.data, cut, &part));
        }
        msgpack_sbuffer_write (&buffer, "\xc0", 1);
        assert (!s_fast_load (buffer.data, buffer.size, &fast));
        msgpack_sbuffer_destroy (&buffer);
    }
    //  Keys in another order, a non-ASCII area: the general read only
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buffer, msgpack_sbuffer_write);
    s_pack_record (&pk, &cases [0]);
    ((char *) buffer.data) [2] = 'A';      //  "area" -> "Area"
    pb_activity_record_t other;
    assert (!s_fast_load (buffer.data, buffer.size, &other));
    assert (!s_general_load (buffer.data, buffer.size, &other));   //  no "area"
    msgpack_sbuffer_destroy (&buffer);

    assert (pb_activity_record_after_days (0, 1) == PB_ACTIVITY_DAY_MS);
    assert (pb_activity_record_after_days (INT64_MAX - 5, 1) == INT64_MAX);
    assert (pb_activity_record_after_days (7, 0) == 7);
    if (verbose)
        printf ("(score and mean checks) ");
    printf ("OK\n");
}
