/*  =========================================================================
    pb_registry - a worker's own projection of the reference data

    Stored forms (msgpack arrays, fields in a fixed order, so that a store
    rebuilt from the log is byte-identical):
        reg/ally/<C>     [name, joined]
        reg/partner/<C>  [name, frameworks, active, programmes, has_profile,
                          profile]        (bitmasks as uints)
        reg/policy       [discard_below (float64), discard_min_feedbacks,
                          [7 weights], expiry_notice_days]
    =========================================================================
*/
#include "pb_registry.h"

#include <math.h>

#define S_KEY_MAX 96

static const char *const s_frameworks [] = {
#define XX(name, text) text,
    PB_REGISTRY_FRAMEWORKS (XX)
#undef XX
};
static const char *const s_programmes [] = {
#define XX(name, text) text,
    PB_REGISTRY_PROGRAMMES (XX)
#undef XX
};
static const char *const s_considerations [] = {
#define XX(name, text) text,
    PB_REGISTRY_CONSIDERATIONS (XX)
#undef XX
};

const char *
pb_registry_framework_name (int bit)
{
    return bit >= 0 && bit < PB_FW_COUNT? s_frameworks [bit]: NULL;
}

const char *
pb_registry_programme_name (int bit)
{
    return bit >= 0 && bit < PB_PROG_COUNT? s_programmes [bit]: NULL;
}

const char *
pb_registry_consideration_name (pb_cons_t cons)
{
    return (int) cons >= 0 && cons < PB_CONS_COUNT? s_considerations [cons]: NULL;
}

//  --------------------------------------------------------------------------
//  Stored forms

static void
s_pack_str (msgpack_packer *pk, const char *text, size_t len)
{
    msgpack_pack_str (pk, len);
    msgpack_pack_str_body (pk, text, len);
}

static bool
s_is_uint (const msgpack_object *obj)
{
    return obj && obj->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
}

//  Read a stored partner; false if absent or not in the stored form
static bool
s_partner_load (pb_apply_t *ctx, const char *country, pb_registry_partner_t *p)
{
    char key [S_KEY_MAX];
    pb_apply_join (key, sizeof key, "reg/partner/", country, NULL);
    const msgpack_object *obj = pb_apply_load (ctx, key);
    if (!obj || obj->type != MSGPACK_OBJECT_ARRAY || obj->via.array.size != 6)
        return false;
    const msgpack_object *f = obj->via.array.ptr;
    if (f [0].type != MSGPACK_OBJECT_STR || !s_is_uint (&f [1])
    ||  f [2].type != MSGPACK_OBJECT_BOOLEAN || !s_is_uint (&f [3])
    ||  f [4].type != MSGPACK_OBJECT_BOOLEAN || !s_is_uint (&f [5]))
        return false;
    memset (p, 0, sizeof *p);
    pb_apply_join (p->country, sizeof p->country, country, NULL);
    p->name = f [0].via.str.ptr;
    p->name_len = f [0].via.str.size;
    p->frameworks = (unsigned) f [1].via.u64;
    p->active = f [2].via.boolean;
    p->programmes = (unsigned) f [3].via.u64;
    p->has_profile = f [4].via.boolean;
    p->profile = (unsigned) f [5].via.u64;
    p->is_ally = pb_registry_is_ally (ctx, country);
    return true;
}

static int
s_partner_store (pb_apply_t *ctx, const pb_registry_partner_t *p)
{
    char key [S_KEY_MAX];
    pb_apply_join (key, sizeof key, "reg/partner/", p->country, NULL);
    msgpack_packer *pk = pb_apply_put_begin (ctx);
    msgpack_pack_array (pk, 6);
    s_pack_str (pk, p->name, p->name_len);
    msgpack_pack_unsigned_int (pk, p->frameworks);
    if (p->active)
        msgpack_pack_true (pk);
    else
        msgpack_pack_false (pk);
    msgpack_pack_unsigned_int (pk, p->programmes);
    if (p->has_profile)
        msgpack_pack_true (pk);
    else
        msgpack_pack_false (pk);
    msgpack_pack_unsigned_int (pk, p->profile);
    return pb_apply_put_end (ctx, key);
}

static int
s_ally_store (pb_apply_t *ctx, const char *country, const char *name,
              size_t name_len, const char *joined, size_t joined_len)
{
    char key [S_KEY_MAX];
    pb_apply_join (key, sizeof key, "reg/ally/", country, NULL);
    msgpack_packer *pk = pb_apply_put_begin (ctx);
    msgpack_pack_array (pk, 2);
    s_pack_str (pk, name, name_len);
    s_pack_str (pk, joined, joined_len);
    return pb_apply_put_end (ctx, key);
}

//  Bits of the strings of 'list' found in 'names'; false if an item is not
//  a known string
static bool
s_bits (const msgpack_object *list, const char *const *names, int count,
        unsigned *bits_p)
{
    if (!list || list->type != MSGPACK_OBJECT_ARRAY)
        return false;
    unsigned bits = 0;
    for (uint32_t i = 0; i < list->via.array.size; i++) {
        int bit = 0;
        while (bit < count && !pb_msgpack_str_eq (&list->via.array.ptr [i], names [bit]))
            bit++;
        if (bit == count)
            return false;
        bits |= 1u << bit;
    }
    *bits_p = bits;
    return true;
}

//  --------------------------------------------------------------------------
//  Events

static int
s_apply_ally (pb_apply_t *ctx, const msgpack_object *data, pb_registry_change_t *ch)
{
    const msgpack_object *name = pb_msgpack_get (data, "name");
    const msgpack_object *joined = pb_msgpack_get (data, "joined");
    if (!pb_apply_str (pb_msgpack_get (data, "country"), ch->country, sizeof ch->country)
    ||  !name || name->type != MSGPACK_OBJECT_STR
    ||  !joined || joined->type != MSGPACK_OBJECT_STR)
        return pb_apply_poison (ctx, "registry.ally: country, name or joined unreadable");
    char key [S_KEY_MAX];
    pb_apply_join (key, sizeof key, "reg/ally/", ch->country, NULL);
    const msgpack_object *old = pb_apply_load (ctx, key);
    ch->is_new = !old && !pb_registry_is_registered (ctx, ch->country);
    ch->became_ally = !old;
    if (old && old->type == MSGPACK_OBJECT_ARRAY && old->via.array.size == 2
    &&  old->via.array.ptr [0].type == MSGPACK_OBJECT_STR
    &&  old->via.array.ptr [0].via.str.size == name->via.str.size
    &&  memcmp (old->via.array.ptr [0].via.str.ptr, name->via.str.ptr, name->via.str.size) == 0
    &&  old->via.array.ptr [1].type == MSGPACK_OBJECT_STR
    &&  old->via.array.ptr [1].via.str.size == joined->via.str.size
    &&  memcmp (old->via.array.ptr [1].via.str.ptr, joined->via.str.ptr, joined->via.str.size) == 0)
        return 0;                       //  Changes nothing
    ch->changed = true;
    ch->name_changed = true;
    return s_ally_store (ctx, ch->country, name->via.str.ptr, name->via.str.size,
                         joined->via.str.ptr, joined->via.str.size);
}

//  Upsert: the required fields replace, an omitted optional field keeps
//  its stored value (EVENTS.md, registry.partner)
static int
s_apply_partner (pb_apply_t *ctx, const msgpack_object *data, pb_registry_change_t *ch)
{
    const msgpack_object *name = pb_msgpack_get (data, "name");
    const msgpack_object *status = pb_msgpack_get (data, "status");
    const msgpack_object *programmes = pb_msgpack_get (data, "programmes");
    const msgpack_object *profile = pb_msgpack_get (data, "profile");
    pb_registry_partner_t next, old;
    memset (&next, 0, sizeof next);
    if (!pb_apply_str (pb_msgpack_get (data, "country"), ch->country, sizeof ch->country)
    ||  !name || name->type != MSGPACK_OBJECT_STR
    ||  !s_bits (pb_msgpack_get (data, "frameworks"), s_frameworks, PB_FW_COUNT,
                 &next.frameworks)
    ||  !(pb_msgpack_str_eq (status, "active") || pb_msgpack_str_eq (status, "suspended")))
        return pb_apply_poison (ctx, "registry.partner: a required field is unreadable");
    bool exists = s_partner_load (ctx, ch->country, &old);
    pb_apply_join (next.country, sizeof next.country, ch->country, NULL);
    next.name = name->via.str.ptr;
    next.name_len = name->via.str.size;
    next.active = pb_msgpack_str_eq (status, "active");
    next.programmes = exists? old.programmes: 0;
    next.has_profile = exists && old.has_profile;
    next.profile = exists? old.profile: 0;
    if (programmes
    &&  !s_bits (programmes, s_programmes, PB_PROG_COUNT, &next.programmes))
        return pb_apply_poison (ctx, "registry.partner: programmes unreadable");
    if (profile) {
        if (profile->type != MSGPACK_OBJECT_MAP)
            return pb_apply_poison (ctx, "registry.partner: profile is not a map");
        next.has_profile = true;
        next.profile = 0;
        for (int i = 0; i < PB_CONS_PRIORITY_AREA; i++) {
            const msgpack_object *flag = pb_msgpack_get (profile, s_considerations [i]);
            if (flag && flag->type == MSGPACK_OBJECT_BOOLEAN && flag->via.boolean)
                next.profile |= 1u << i;
        }
    }
    ch->is_new = !exists && !pb_registry_is_ally (ctx, ch->country);
    ch->old_frameworks = exists? old.frameworks: 0;
    ch->was_active = exists && old.active;
    ch->had_profile = exists && old.has_profile;
    ch->old_profile = exists? old.profile: 0;
    if (exists) {
        ch->name_changed = old.name_len != next.name_len
                        || memcmp (old.name, next.name, next.name_len) != 0;
        ch->status_changed = old.active != next.active;
        ch->frameworks_changed = old.frameworks != next.frameworks;
        ch->programmes_changed = old.programmes != next.programmes;
        ch->profile_changed = old.has_profile != next.has_profile
                           || old.profile != next.profile;
        ch->changed = ch->name_changed || ch->status_changed
                   || ch->frameworks_changed || ch->programmes_changed
                   || ch->profile_changed;
    }
    else {
        ch->changed = true;
        ch->frameworks_changed = true;
        ch->programmes_changed = next.programmes != 0;
        ch->profile_changed = next.has_profile;
    }
    return ch->changed? s_partner_store (ctx, &next): 0;
}

static int
s_policy_store (pb_apply_t *ctx, const pb_registry_policy_t *policy)
{
    msgpack_packer *pk = pb_apply_put_begin (ctx);
    msgpack_pack_array (pk, 4);
    msgpack_pack_double (pk, policy->discard_below);
    msgpack_pack_int64 (pk, policy->discard_min_feedbacks);
    msgpack_pack_array (pk, PB_CONS_COUNT);
    for (int i = 0; i < PB_CONS_COUNT; i++)
        msgpack_pack_int64 (pk, policy->weights [i]);
    msgpack_pack_int64 (pk, policy->expiry_notice_days);
    return pb_apply_put_end (ctx, "reg/policy");
}

static bool
s_int (const msgpack_object *obj, int64_t min, int64_t max, int64_t *value_p)
{
    if (obj && obj->type == MSGPACK_OBJECT_POSITIVE_INTEGER && obj->via.u64 <= (uint64_t) max
    &&  (int64_t) obj->via.u64 >= min) {
        *value_p = (int64_t) obj->via.u64;
        return true;
    }
    if (obj && obj->type == MSGPACK_OBJECT_NEGATIVE_INTEGER
    &&  obj->via.i64 >= min && obj->via.i64 <= max) {
        *value_p = obj->via.i64;
        return true;
    }
    return false;
}

static int
s_apply_policy (pb_apply_t *ctx, const msgpack_object *data, pb_registry_change_t *ch)
{
    pb_registry_policy_t old, next;
    pb_registry_policy (ctx, &old);
    next = old;
    const msgpack_object *below = pb_msgpack_get (data, "discard_below");
    const msgpack_object *min_fb = pb_msgpack_get (data, "discard_min_feedbacks");
    const msgpack_object *weights = pb_msgpack_get (data, "weights");
    const msgpack_object *days = pb_msgpack_get (data, "expiry_notice_days");
    if (below) {
        int64_t whole;
        if (below->type == MSGPACK_OBJECT_FLOAT64 || below->type == MSGPACK_OBJECT_FLOAT32)
            next.discard_below = below->via.f64;
        else
        if (s_int (below, 0, 5, &whole))
            next.discard_below = (double) whole;
        else
            return pb_apply_poison (ctx, "registry.policy: discard_below unreadable");
        if (!isfinite (next.discard_below))
            return pb_apply_poison (ctx, "registry.policy: discard_below not finite");
    }
    if (min_fb && !s_int (min_fb, 1, INT64_MAX, &next.discard_min_feedbacks))
        return pb_apply_poison (ctx, "registry.policy: discard_min_feedbacks unreadable");
    if (days && !s_int (days, 0, INT64_MAX, &next.expiry_notice_days))
        return pb_apply_poison (ctx, "registry.policy: expiry_notice_days unreadable");
    if (weights) {
        int64_t sum = 0;
        for (int i = 0; i < PB_CONS_COUNT; i++) {
            if (!s_int (pb_msgpack_get (weights, s_considerations [i]), 0, 100,
                        &next.weights [i]))
                return pb_apply_poison (ctx, "registry.policy: weights unreadable");
            sum += next.weights [i];
        }
        if (sum == 0)
            return pb_apply_poison (ctx, "registry.policy: weights all 0");
    }
    ch->old_policy = old;
    ch->changed = memcmp (&old, &next, sizeof old) != 0;
    return ch->changed? s_policy_store (ctx, &next): 0;
}

//  An adopted accession: the country is an Ally from this point of the log
//  on, joined = effective (EVENTS.md, "Every worker")
static int
s_apply_accession (pb_apply_t *ctx, const msgpack_object *action,
                   pb_registry_change_t *ch)
{
    const msgpack_object *effective = pb_msgpack_get (action, "effective");
    if (!pb_apply_str (pb_msgpack_get (action, "country"), ch->country, sizeof ch->country)
    ||  !effective || effective->type != MSGPACK_OBJECT_STR)
        return pb_apply_poison (ctx, "accession: country or effective unreadable");
    if (pb_registry_is_ally (ctx, ch->country))
        return 0;
    pb_registry_partner_t partner;
    const char *name = ch->country;
    size_t name_len = strlen (ch->country);
    if (s_partner_load (ctx, ch->country, &partner)) {
        name = partner.name;
        name_len = partner.name_len;
        ch->old_frameworks = partner.frameworks;
        ch->was_active = partner.active;
    }
    ch->changed = true;
    ch->became_ally = true;
    return s_ally_store (ctx, ch->country, name, name_len,
                         effective->via.str.ptr, effective->via.str.size);
}

//  --------------------------------------------------------------------------

int
pb_registry_apply (pb_apply_t *ctx, const pb_envelope_t *event,
                   pb_registry_change_t *change)
{
    assert (ctx && event && change);
    memset (change, 0, sizeof *change);
    const char *type = event->type;
    size_t len = event->type_len;
#define S_IS(text) (len == strlen (text) && memcmp (type, text, len) == 0)
    if (S_IS ("registry.ally")) {
        change->kind = PB_REGISTRY_ALLY;
        return s_apply_ally (ctx, event->data, change);
    }
    if (S_IS ("registry.partner")) {
        change->kind = PB_REGISTRY_PARTNER;
        return s_apply_partner (ctx, event->data, change);
    }
    if (S_IS ("registry.policy")) {
        change->kind = PB_REGISTRY_POLICY;
        return s_apply_policy (ctx, event->data, change);
    }
    if (S_IS ("notify.nac.adopted")) {
        const msgpack_object *action = pb_msgpack_get (event->data, "action");
        if (pb_msgpack_str_eq (pb_msgpack_get (action, "kind"), "accession")) {
            change->kind = PB_REGISTRY_ACCESSION;
            return s_apply_accession (ctx, action, change);
        }
    }
#undef S_IS
    return 0;
}

bool
pb_registry_is_ally (pb_apply_t *ctx, const char *country)
{
    char key [S_KEY_MAX];
    if (!country || strlen (country) > 64)
        return false;
    pb_apply_join (key, sizeof key, "reg/ally/", country, NULL);
    return pb_apply_get (ctx, key, NULL) != NULL;
}

bool
pb_registry_is_registered (pb_apply_t *ctx, const char *country)
{
    char key [S_KEY_MAX];
    if (!country || strlen (country) > 64)
        return false;
    pb_apply_join (key, sizeof key, "reg/partner/", country, NULL);
    return pb_registry_is_ally (ctx, country) || pb_apply_get (ctx, key, NULL);
}

int
pb_registry_partner (pb_apply_t *ctx, const char *country,
                     pb_registry_partner_t *partner)
{
    assert (partner);
    if (!country || strlen (country) > 64)
        return PB_ENOTFOUND;
    return s_partner_load (ctx, country, partner)? 0: PB_ENOTFOUND;
}

bool
pb_registry_is_eligible (pb_apply_t *ctx, const char *country)
{
    pb_registry_partner_t partner;
    return pb_registry_partner (ctx, country, &partner) == 0
        && partner.active && !partner.is_ally
        && !(partner.frameworks & PB_FW (PB_FW_DIALOGUE));
}

void
pb_registry_policy (pb_apply_t *ctx, pb_registry_policy_t *policy)
{
    assert (policy);
    memset (policy, 0, sizeof *policy);
    policy->discard_below = 2.5;
    policy->discard_min_feedbacks = 3;
    for (int i = 0; i < PB_CONS_COUNT; i++)
        policy->weights [i] = 1;
    policy->expiry_notice_days = 90;
    const msgpack_object *obj = pb_apply_load (ctx, "reg/policy");
    if (!obj || obj->type != MSGPACK_OBJECT_ARRAY || obj->via.array.size != 4)
        return;
    const msgpack_object *f = obj->via.array.ptr;
    if (f [0].type == MSGPACK_OBJECT_FLOAT64 || f [0].type == MSGPACK_OBJECT_FLOAT32)
        policy->discard_below = f [0].via.f64;
    s_int (&f [1], 1, INT64_MAX, &policy->discard_min_feedbacks);
    if (f [2].type == MSGPACK_OBJECT_ARRAY && f [2].via.array.size == PB_CONS_COUNT)
        for (int i = 0; i < PB_CONS_COUNT; i++)
            s_int (&f [2].via.array.ptr [i], 0, 100, &policy->weights [i]);
    s_int (&f [3], 0, INT64_MAX, &policy->expiry_notice_days);
}

//  --------------------------------------------------------------------------
//  Selftest: a rules module that reports each change and, on sys.tick,
//  the answers of the queries, through the real store code

static void
s_test_pack_kv (msgpack_packer *pk, const char *key, int64_t value)
{
    s_pack_str (pk, key, strlen (key));
    msgpack_pack_int64 (pk, value);
}

static int
s_test_apply (pb_apply_t *ctx, const pb_envelope_t *event)
{
    pb_registry_change_t ch;
    int rc = pb_registry_apply (ctx, event, &ch);
    if (rc)
        return rc;
    msgpack_packer *pk;
    if (ch.kind != PB_REGISTRY_NONE) {
        pk = pb_apply_emit_begin (ctx, "test.change");
        msgpack_pack_map (pk, 9);
        s_test_pack_kv (pk, "kind", ch.kind);
        s_test_pack_kv (pk, "changed", ch.changed);
        s_test_pack_kv (pk, "new", ch.is_new);
        s_test_pack_kv (pk, "status", ch.status_changed);
        s_test_pack_kv (pk, "fw", ch.frameworks_changed);
        s_test_pack_kv (pk, "prog", ch.programmes_changed);
        s_test_pack_kv (pk, "profile", ch.profile_changed);
        s_test_pack_kv (pk, "ally", ch.became_ally);
        s_test_pack_kv (pk, "oldfw", ch.old_frameworks);
        return pb_apply_emit_end (ctx);
    }
    if (event->type_len == 8 && memcmp (event->type, "sys.tick", 8) == 0) {
        pb_registry_partner_t p;
        pb_registry_policy_t pol;
        pb_registry_policy (ctx, &pol);
        bool found = pb_registry_partner (ctx, "FIN", &p) == 0;
        pk = pb_apply_emit_begin (ctx, "test.query");
        msgpack_pack_map (pk, 11);
        s_test_pack_kv (pk, "fin", found);
        s_test_pack_kv (pk, "fw", found? p.frameworks: 0);
        s_test_pack_kv (pk, "prog", found? p.programmes: 0);
        s_test_pack_kv (pk, "profile", found? p.profile: 0);
        s_test_pack_kv (pk, "active", found && p.active);
        s_test_pack_kv (pk, "ally", pb_registry_is_ally (ctx, "FIN"));
        s_test_pack_kv (pk, "eligible", pb_registry_is_eligible (ctx, "FIN"));
        s_test_pack_kv (pk, "fra", pb_registry_is_registered (ctx, "FRA"));
        s_test_pack_kv (pk, "below", (int64_t) (pol.discard_below * 10));
        s_test_pack_kv (pk, "w6", pol.weights [PB_CONS_PRIORITY_AREA]);
        s_test_pack_kv (pk, "days", pol.expiry_notice_days);
        return pb_apply_emit_end (ctx);
    }
    return 0;
}

static void
s_test_partner (pb_worker_local_t *w, const char *fw, const char *status,
                bool programmes, bool profile)
{
    msgpack_packer *pk = pb_worker_local_begin (w, "registry", "registry.partner");
    msgpack_pack_map (pk, 4 + programmes + profile);
    s_pack_str (pk, "country", 7);
    s_pack_str (pk, "FIN", 3);
    s_pack_str (pk, "name", 4);
    s_pack_str (pk, "Finland", 7);
    s_pack_str (pk, "frameworks", 10);
    msgpack_pack_array (pk, 1);
    s_pack_str (pk, fw, strlen (fw));
    s_pack_str (pk, "status", 6);
    s_pack_str (pk, status, strlen (status));
    if (programmes) {
        s_pack_str (pk, "programmes", 10);
        msgpack_pack_array (pk, 2);
        s_pack_str (pk, "IPAP", 4);
        s_pack_str (pk, "PARP", 4);
    }
    if (profile) {
        s_pack_str (pk, "profile", 7);
        msgpack_pack_map (pk, PB_CONS_PRIORITY_AREA);
        for (int i = 0; i < PB_CONS_PRIORITY_AREA; i++) {
            s_pack_str (pk, s_considerations [i], strlen (s_considerations [i]));
            if (i == 1)
                msgpack_pack_true (pk);
            else
                msgpack_pack_false (pk);
        }
    }
    assert (pb_worker_local_end (w) == 0);
}

static void
s_test_expect (pb_worker_local_t *w, const char *part, bool verbose)
{
    char buf [1024];
    bool found = pb_worker_local_take (w, buf, sizeof buf);
    if (verbose || !found || !strstr (buf, part))
        printf ("\n   got: %s (want %s)", found? buf: "(nothing)", part);
    assert (found && strstr (buf, part));
}

static void
s_test_tick (pb_worker_local_t *w, int64_t now)
{
    msgpack_packer *pk = pb_worker_local_begin (w, "journal", "sys.tick");
    msgpack_pack_map (pk, 1);
    s_pack_str (pk, "now", 3);
    msgpack_pack_int64 (pk, now);
    assert (pb_worker_local_end (w) == 0);
}

void
pb_registry_test (bool verbose)
{
    printf (" * pb_registry: ");
    static const pb_rules_t rules = { .name = "regtest", .apply = s_test_apply };
    char dir [] = "/tmp/pb_registry_test_XXXXXX";
    assert (mkdtemp (dir));
    pb_worker_local_t *w = NULL;
    assert (pb_worker_local_open (dir, &rules, &w) == 0);
    assert (streq (pb_registry_framework_name (PB_FW_MD_BIT), "MD"));
    assert (streq (pb_registry_programme_name (PB_PROG_PARP_BIT), "PARP"));
    assert (streq (pb_registry_consideration_name (PB_CONS_PRIORITY_AREA), "priority_area"));
    assert (pb_registry_framework_name (PB_FW_COUNT) == NULL);

    //  Defaults before anything
    s_test_tick (w, 1);
    s_test_expect (w, "\"fin\"=>0, \"fw\"=>0", verbose);
    //  (the defaults: 2.5, weights 1, 90 days)
    //  A new partner, then the same again (changes nothing), then upserts
    s_test_partner (w, "EAPC", "active", true, true);
    s_test_expect (w, "\"kind\"=>2, \"changed\"=>1, \"new\"=>1", verbose);
    s_test_partner (w, "EAPC", "active", false, false);
    s_test_expect (w, "\"changed\"=>0", verbose);
    s_test_tick (w, 2);
    s_test_expect (w, "\"fin\"=>1, \"fw\"=>1, \"prog\"=>6, \"profile\"=>2, "
                   "\"active\"=>1, \"ally\"=>0, \"eligible\"=>1, \"fra\"=>0, "
                   "\"below\"=>25, \"w6\"=>1, \"days\"=>90", verbose);
    s_test_partner (w, "EAPC", "suspended", false, false);
    s_test_expect (w, "\"changed\"=>1, \"new\"=>0, \"status\"=>1, \"fw\"=>0", verbose);
    s_test_partner (w, "DIALOGUE", "active", false, false);
    s_test_expect (w, "\"status\"=>1, \"fw\"=>1, \"prog\"=>0, \"profile\"=>0, "
                   "\"ally\"=>0, \"oldfw\"=>1", verbose);
    s_test_tick (w, 3);
    s_test_expect (w, "\"fw\"=>32, \"prog\"=>6, \"profile\"=>2, \"active\"=>1, "
                   "\"ally\"=>0, \"eligible\"=>0", verbose);

    //  An Ally; a policy (omitted fields keep their value)
    msgpack_packer *pk = pb_worker_local_begin (w, "registry", "registry.ally");
    msgpack_pack_map (pk, 3);
    s_pack_str (pk, "country", 7);
    s_pack_str (pk, "FRA", 3);
    s_pack_str (pk, "name", 4);
    s_pack_str (pk, "France", 6);
    s_pack_str (pk, "joined", 6);
    s_pack_str (pk, "1949-04-04", 10);
    assert (pb_worker_local_end (w) == 0);
    s_test_expect (w, "\"kind\"=>1, \"changed\"=>1, \"new\"=>1", verbose);
    pk = pb_worker_local_begin (w, "registry", "registry.policy");
    msgpack_pack_map (pk, 2);
    s_pack_str (pk, "discard_below", 13);
    msgpack_pack_double (pk, 3.0);
    s_pack_str (pk, "expiry_notice_days", 18);
    msgpack_pack_int (pk, 30);
    assert (pb_worker_local_end (w) == 0);
    s_test_expect (w, "\"kind\"=>3, \"changed\"=>1", verbose);
    pk = pb_worker_local_begin (w, "registry", "registry.policy");
    msgpack_pack_map (pk, 1);
    s_pack_str (pk, "expiry_notice_days", 18);
    msgpack_pack_int (pk, 30);
    assert (pb_worker_local_end (w) == 0);
    s_test_expect (w, "\"kind\"=>3, \"changed\"=>0", verbose);

    //  The accession, adopted: an Ally from then on
    pk = pb_worker_local_begin (w, "nac", "notify.nac.adopted");
    msgpack_pack_map (pk, 3);
    s_pack_str (pk, "proposal", 8);
    s_pack_str (pk, "acc", 3);
    s_pack_str (pk, "action", 6);
    msgpack_pack_map (pk, 3);
    s_pack_str (pk, "kind", 4);
    s_pack_str (pk, "accession", 9);
    s_pack_str (pk, "country", 7);
    s_pack_str (pk, "FIN", 3);
    s_pack_str (pk, "effective", 9);
    s_pack_str (pk, "2023-04-04", 10);
    s_pack_str (pk, "adopted_at", 10);
    msgpack_pack_int (pk, 3);
    assert (pb_worker_local_end (w) == 0);
    s_test_expect (w, "\"kind\"=>4, \"changed\"=>1, \"new\"=>0", verbose);
    s_test_tick (w, 4);
    s_test_expect (w, "\"ally\"=>1, \"eligible\"=>0, \"fra\"=>1, \"below\"=>30, "
                   "\"w6\"=>1, \"days\"=>30", verbose);
    char buf [256];
    assert (!pb_worker_local_take (w, buf, sizeof buf));
    pb_worker_local_destroy (&w);
    char cmd [128];
    snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
    assert (system (cmd) == 0);
    printf ("OK\n");
}
