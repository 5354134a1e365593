/*  =========================================================================
    pb_cpe_state - the CPE worker's stored records (see pb_cpe_state.h)
    =========================================================================
*/
#include <inttypes.h>
#include <string.h>

#include "pb_cpe_state.h"

#define S_KEY_SIZE 160                  //  prefix + two codes + a seq

static void
s_pack_str_or_nil (msgpack_packer *pk, const char *text)
{
    if (*text)
        pb_apply_pack_str (pk, text);
    else
        msgpack_pack_nil (pk);
}

static void
s_pack_bool (msgpack_packer *pk, bool value)
{
    if (value)
        msgpack_pack_true (pk);
    else
        msgpack_pack_false (pk);
}

//  Copy a str, or nil as "", into buf
static bool
s_str_or_nil (const msgpack_object *obj, char *buf, size_t size)
{
    if (obj && obj->type == MSGPACK_OBJECT_NIL) {
        buf [0] = 0;
        return true;
    }
    return pb_apply_str (obj, buf, size);
}

static bool
s_is_array (const msgpack_object *obj, uint32_t size)
{
    return obj && obj->type == MSGPACK_OBJECT_ARRAY && obj->via.array.size == size;
}

//  Unpack one msgpack value of a raw scan value: a str into buf
static bool
s_raw_str (const void *value, size_t size, char *buf, size_t buf_size)
{
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    size_t offset = 0;
    bool ok = msgpack_unpack_next (&unpacked, (const char *) value, size, &offset)
              == MSGPACK_UNPACK_SUCCESS
           && pb_apply_str (&unpacked.data, buf, buf_size);
    msgpack_unpacked_destroy (&unpacked);
    return ok;
}

//  Scan state: the part of each key after a prefix, or each str value,
//  appended to a zlist of strings
typedef struct {
    zlist_t *list;                      //  borrowed, autofree
    size_t prefix_len;                  //  to cut from each key
    bool values;                        //  collect values, not keys
} s_collect_t;

static int
s_collect_fn (const char *key, size_t key_len, const void *value, size_t size,
              void *arg)
{
    s_collect_t *collect = (s_collect_t *) arg;
    char item [PB_CPE_CODE_SIZE];
    if (collect->values) {
        if (!s_raw_str (value, size, item, sizeof item))
            return PB_EINVAL;
    }
    else {
        size_t len = key_len - collect->prefix_len;
        if (key_len <= collect->prefix_len || len >= sizeof item)
            return PB_EINVAL;
        memcpy (item, key + collect->prefix_len, len);
        item [len] = 0;
    }
    zlist_append (collect->list, item);     //  autofree: the list copies it
    return 0;
}

static int
s_collect (pb_apply_t *ctx, const char *prefix, zlist_t *list, bool values,
           const char *what)
{
    s_collect_t collect = { list, strlen (prefix), values };
    int rc = pb_apply_scan (ctx, prefix, s_collect_fn, &collect);
    return rc == PB_EINVAL? pb_apply_poison (ctx, what): rc;
}

//  --------------------------------------------------------------------------
//  holder/<P>  [ally, decision, term_start, term_end, end_ms, noticed]

int
pb_cpe_state_holder_get (pb_apply_t *ctx, const char *partner,
                         pb_cpe_holder_t *holder)
{
    char key [S_KEY_SIZE];
    pb_apply_join (key, sizeof key, "holder/", partner, NULL);
    if (!pb_apply_get (ctx, key, NULL))
        return PB_ENOTFOUND;
    const msgpack_object *obj = pb_apply_load (ctx, key);
    if (!s_is_array (obj, 6))
        return pb_apply_poison (ctx, "cpe: stored holder unreadable");
    const msgpack_object *f = obj->via.array.ptr;
    if (!pb_apply_str (&f [0], holder->ally, sizeof holder->ally)
    ||  !pb_apply_str (&f [1], holder->decision, sizeof holder->decision)
    ||  !pb_apply_str (&f [2], holder->term_start, sizeof holder->term_start)
    ||  !pb_apply_str (&f [3], holder->term_end, sizeof holder->term_end)
    ||  (f [4].type != MSGPACK_OBJECT_POSITIVE_INTEGER
      && f [4].type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
    ||  f [5].type != MSGPACK_OBJECT_BOOLEAN)
        return pb_apply_poison (ctx, "cpe: stored holder unreadable");
    holder->end_ms = f [4].via.i64;     //  Same bits for either encoding
    holder->noticed = f [5].via.boolean;
    return 0;
}

int
pb_cpe_state_holder_put (pb_apply_t *ctx, const char *partner,
                         const pb_cpe_holder_t *holder)
{
    char key [S_KEY_SIZE];
    pb_apply_join (key, sizeof key, "holder/", partner, NULL);
    msgpack_packer *pk = pb_apply_put_begin (ctx);
    msgpack_pack_array (pk, 6);
    pb_apply_pack_str (pk, holder->ally);
    pb_apply_pack_str (pk, holder->decision);
    pb_apply_pack_str (pk, holder->term_start);
    pb_apply_pack_str (pk, holder->term_end);
    msgpack_pack_int64 (pk, holder->end_ms);
    s_pack_bool (pk, holder->noticed);
    return pb_apply_put_end (ctx, key);
}

int
pb_cpe_state_holder_del (pb_apply_t *ctx, const char *partner)
{
    char key [S_KEY_SIZE];
    pb_apply_join (key, sizeof key, "holder/", partner, NULL);
    return pb_apply_del (ctx, key);
}

int
pb_cpe_state_holders (pb_apply_t *ctx, zlist_t *partners)
{
    return s_collect (ctx, "holder/", partners, false,
                      "cpe: stored holder key unreadable");
}

//  --------------------------------------------------------------------------
//  proposal/<id>  [seq, partner|nil, ally|nil, state, used]

int
pb_cpe_state_proposal_get (pb_apply_t *ctx, const char *id,
                           pb_cpe_proposal_t *proposal)
{
    char key [S_KEY_SIZE];
    pb_apply_join (key, sizeof key, "proposal/", id, NULL);
    if (!pb_apply_get (ctx, key, NULL))
        return PB_ENOTFOUND;
    const msgpack_object *obj = pb_apply_load (ctx, key);
    if (!s_is_array (obj, 5))
        return pb_apply_poison (ctx, "cpe: stored proposal unreadable");
    const msgpack_object *f = obj->via.array.ptr;
    if (f [0].type != MSGPACK_OBJECT_POSITIVE_INTEGER
    ||  !s_str_or_nil (&f [1], proposal->partner, sizeof proposal->partner)
    ||  !s_str_or_nil (&f [2], proposal->ally, sizeof proposal->ally)
    ||  !pb_apply_str (&f [3], proposal->state, sizeof proposal->state)
    ||  f [4].type != MSGPACK_OBJECT_BOOLEAN)
        return pb_apply_poison (ctx, "cpe: stored proposal unreadable");
    proposal->seq = f [0].via.u64;
    proposal->is_assign = f [1].type == MSGPACK_OBJECT_STR;
    proposal->used = f [4].via.boolean;
    return 0;
}

int
pb_cpe_state_proposal_put (pb_apply_t *ctx, const char *id,
                           const pb_cpe_proposal_t *proposal)
{
    char key [S_KEY_SIZE];
    pb_apply_join (key, sizeof key, "proposal/", id, NULL);
    msgpack_packer *pk = pb_apply_put_begin (ctx);
    msgpack_pack_array (pk, 5);
    msgpack_pack_uint64 (pk, proposal->seq);
    s_pack_str_or_nil (pk, proposal->is_assign? proposal->partner: "");
    s_pack_str_or_nil (pk, proposal->is_assign? proposal->ally: "");
    pb_apply_pack_str (pk, proposal->state);
    s_pack_bool (pk, proposal->used);
    return pb_apply_put_end (ctx, key);
}

//  duplicate/<id>/<seq hex16>  nil

int
pb_cpe_state_duplicate_put (pb_apply_t *ctx, const char *id, uint64_t seq)
{
    char key [S_KEY_SIZE];
    snprintf (key, sizeof key, "duplicate/%s/%016" PRIx64, id, seq);
    msgpack_packer *pk = pb_apply_put_begin (ctx);
    msgpack_pack_nil (pk);
    return pb_apply_put_end (ctx, key);
}

bool
pb_cpe_state_is_duplicate (pb_apply_t *ctx, const char *id, uint64_t seq)
{
    char key [S_KEY_SIZE];
    snprintf (key, sizeof key, "duplicate/%s/%016" PRIx64, id, seq);
    return pb_apply_get (ctx, key, NULL) != NULL;
}

//  --------------------------------------------------------------------------
//  queue/<P>/<seq hex16>  [to, decision, effective, from|nil]
//  Fixed-width hex seqs sort as numbers: key order is log order.

int
pb_cpe_state_queue_put (pb_apply_t *ctx, uint64_t seq, const pb_cpe_handover_t *h)
{
    char key [S_KEY_SIZE];
    snprintf (key, sizeof key, "queue/%s/%016" PRIx64, h->partner, seq);
    msgpack_packer *pk = pb_apply_put_begin (ctx);
    msgpack_pack_array (pk, 4);
    pb_apply_pack_str (pk, h->to);
    pb_apply_pack_str (pk, h->decision);
    pb_apply_pack_str (pk, h->effective);
    s_pack_str_or_nil (pk, h->from);
    return pb_apply_put_end (ctx, key);
}

//  Stops at the first key under the prefix, keeping its seq part
static int
s_first_fn (const char *key, size_t key_len, const void *value, size_t size,
            void *arg)
{
    char *seq = (char *) arg;
    if (key_len < 16)
        return PB_EINVAL;
    memcpy (seq, key + key_len - 16, 16);
    seq [16] = 0;
    return 1;
}

int
pb_cpe_state_queue_first (pb_apply_t *ctx, const char *partner,
                          pb_cpe_handover_t *h, uint64_t *seq_p)
{
    char key [S_KEY_SIZE], seq [17] = "";
    pb_apply_join (key, sizeof key, "queue/", partner, "/", NULL);
    int rc = pb_apply_scan (ctx, key, s_first_fn, seq);
    if (rc == PB_EINVAL)
        return pb_apply_poison (ctx, "cpe: stored queue key unreadable");
    if (rc)
        return rc;
    if (!*seq)
        return PB_ENOTFOUND;
    char *end = NULL;
    *seq_p = strtoull (seq, &end, 16);
    snprintf (key, sizeof key, "queue/%s/%016" PRIx64, partner, *seq_p);
    const msgpack_object *obj = pb_apply_load (ctx, key);
    memset (h, 0, sizeof *h);
    pb_apply_join (h->partner, sizeof h->partner, partner, NULL);
    if (*end || !s_is_array (obj, 4)
    ||  !pb_apply_str (&obj->via.array.ptr [0], h->to, sizeof h->to)
    ||  !pb_apply_str (&obj->via.array.ptr [1], h->decision, sizeof h->decision)
    ||  !pb_apply_str (&obj->via.array.ptr [2], h->effective, sizeof h->effective)
    ||  !s_str_or_nil (&obj->via.array.ptr [3], h->from, sizeof h->from))
        return pb_apply_poison (ctx, "cpe: stored handover unreadable");
    return 0;
}

int
pb_cpe_state_queue_del (pb_apply_t *ctx, const char *partner, uint64_t seq)
{
    char key [S_KEY_SIZE];
    snprintf (key, sizeof key, "queue/%s/%016" PRIx64, partner, seq);
    return pb_apply_del (ctx, key);
}

//  --------------------------------------------------------------------------
//  volunteer/<P>/<seq hex16>  ally         (oldest first)
//  volunteer_by/<P>/<ally>    seq hex16    (the same, by ally)

int
pb_cpe_state_volunteer_add (pb_apply_t *ctx, const char *partner,
                            const char *ally, uint64_t seq)
{
    char key [S_KEY_SIZE], rank [17];
    pb_apply_join (key, sizeof key, "volunteer_by/", partner, "/", ally, NULL);
    if (pb_apply_get (ctx, key, NULL))
        return 0;                       //  Already standing: keeps its rank
    snprintf (rank, sizeof rank, "%016" PRIx64, seq);
    msgpack_packer *pk = pb_apply_put_begin (ctx);
    pb_apply_pack_str (pk, rank);
    int rc = pb_apply_put_end (ctx, key);
    if (rc)
        return rc;
    pb_apply_join (key, sizeof key, "volunteer/", partner, "/", rank, NULL);
    pk = pb_apply_put_begin (ctx);
    pb_apply_pack_str (pk, ally);
    return pb_apply_put_end (ctx, key);
}

int
pb_cpe_state_volunteers (pb_apply_t *ctx, const char *partner, zlist_t *allies)
{
    char prefix [S_KEY_SIZE];
    pb_apply_join (prefix, sizeof prefix, "volunteer/", partner, "/", NULL);
    return s_collect (ctx, prefix, allies, true,
                      "cpe: stored volunteer unreadable");
}

int
pb_cpe_state_volunteer_del (pb_apply_t *ctx, const char *partner,
                            const char *ally)
{
    char key [S_KEY_SIZE], rank [17];
    pb_apply_join (key, sizeof key, "volunteer_by/", partner, "/", ally, NULL);
    if (!pb_apply_str (pb_apply_load (ctx, key), rank, sizeof rank))
        return 0;                       //  Not standing
    int rc = pb_apply_del (ctx, key);
    if (rc)
        return rc;
    pb_apply_join (key, sizeof key, "volunteer/", partner, "/", rank, NULL);
    return pb_apply_del (ctx, key);
}

//  --------------------------------------------------------------------------
//  Selftest: a rules module that round-trips every record on each event,
//  applied by pb_worker_local (the store code the worker runs)

//  Runs 'call' and asserts its return code (no side effects in asserts)
#define S_EXPECT(call, expected) \
    do { \
        int rc_ = (call); \
        assert (rc_ == (expected)); \
    } while (0)

static int
s_test_apply (pb_apply_t *ctx, const pb_envelope_t *event)
{
    uint64_t seq = pb_apply_seq (ctx);
    pb_cpe_holder_t holder = { "FRA", "p-1", "2024-02-29", "2026-02-28",
                               INT64_C (1772236800000), false }, got_holder;
    S_EXPECT (pb_cpe_state_holder_get (ctx, "FIN", &got_holder), PB_ENOTFOUND);
    S_EXPECT (pb_cpe_state_holder_put (ctx, "FIN", &holder), 0);
    holder.end_ms = -86400000;          //  Before 1970: int64, not uint
    holder.noticed = true;
    S_EXPECT (pb_cpe_state_holder_put (ctx, "JPN", &holder), 0);
    S_EXPECT (pb_cpe_state_holder_get (ctx, "JPN", &got_holder), 0);
    assert (streq (got_holder.ally, "FRA") && streq (got_holder.decision, "p-1"));
    assert (streq (got_holder.term_start, "2024-02-29"));
    assert (streq (got_holder.term_end, "2026-02-28"));
    assert (got_holder.end_ms == -86400000 && got_holder.noticed);
    zlist_t *list = zlist_new ();
    zlist_autofree (list);
    S_EXPECT (pb_cpe_state_holders (ctx, list), 0);
    assert (zlist_size (list) == 2 && streq ((char *) zlist_first (list), "FIN"));
    S_EXPECT (pb_cpe_state_holder_del (ctx, "FIN"), 0);
    S_EXPECT (pb_cpe_state_holder_del (ctx, "JPN"), 0);
    zlist_purge (list);
    S_EXPECT (pb_cpe_state_holders (ctx, list), 0);
    assert (zlist_size (list) == 0);

    pb_cpe_proposal_t proposal = { seq, true, "FIN", "FRA", "open", false }, got;
    S_EXPECT (pb_cpe_state_proposal_put (ctx, "p-1", &proposal), 0);
    S_EXPECT (pb_cpe_state_proposal_get (ctx, "p-1", &got), 0);
    assert (got.seq == seq && got.is_assign && streq (got.partner, "FIN")
            && streq (got.ally, "FRA") && streq (got.state, "open") && !got.used);
    pb_cpe_proposal_t other = { seq, false, "", "", "adopted", true };
    S_EXPECT (pb_cpe_state_proposal_put (ctx, "p/2", &other), 0);
    S_EXPECT (pb_cpe_state_proposal_get (ctx, "p/2", &got), 0);
    assert (!got.is_assign && !*got.partner && got.used);
    S_EXPECT (pb_cpe_state_proposal_get (ctx, "p-3", &got), PB_ENOTFOUND);
    S_EXPECT (pb_cpe_state_duplicate_put (ctx, "p-1", 300), 0);
    assert (pb_cpe_state_is_duplicate (ctx, "p-1", 300));
    assert (!pb_cpe_state_is_duplicate (ctx, "p-1", 30));
    assert (!pb_cpe_state_is_duplicate (ctx, "p-", 300));

    //  Queue order is log order, past the digits of a decimal key
    pb_cpe_handover_t h = { "FIN", "FRA", "p-1", "2024-01-01", "" }, first;
    uint64_t first_seq = 0;
    S_EXPECT (pb_cpe_state_queue_put (ctx, 16, &h), 0);
    pb_apply_join (h.from, sizeof h.from, "DEU", NULL);
    S_EXPECT (pb_cpe_state_queue_put (ctx, 9, &h), 0);
    S_EXPECT (pb_cpe_state_queue_first (ctx, "FIN", &first, &first_seq), 0);
    assert (first_seq == 9 && streq (first.from, "DEU") && streq (first.to, "FRA"));
    S_EXPECT (pb_cpe_state_queue_del (ctx, "FIN", 9), 0);
    S_EXPECT (pb_cpe_state_queue_first (ctx, "FIN", &first, &first_seq), 0);
    assert (first_seq == 16 && !*first.from);
    S_EXPECT (pb_cpe_state_queue_del (ctx, "FIN", 16), 0);
    S_EXPECT (pb_cpe_state_queue_first (ctx, "FIN", &first, &first_seq), PB_ENOTFOUND);
    S_EXPECT (pb_cpe_state_queue_first (ctx, "FI", &first, &first_seq), PB_ENOTFOUND);

    //  Volunteers: oldest first, a repeat keeps its rank
    S_EXPECT (pb_cpe_state_volunteer_add (ctx, "FIN", "USA", 20), 0);
    S_EXPECT (pb_cpe_state_volunteer_add (ctx, "FIN", "DEU", 30), 0);
    S_EXPECT (pb_cpe_state_volunteer_add (ctx, "FIN", "USA", 40), 0);
    S_EXPECT (pb_cpe_state_volunteer_add (ctx, "FINX", "ITA", 10), 0);
    zlist_purge (list);
    S_EXPECT (pb_cpe_state_volunteers (ctx, "FIN", list), 0);
    assert (zlist_size (list) == 2);
    assert (streq ((char *) zlist_first (list), "USA"));
    S_EXPECT (pb_cpe_state_volunteer_del (ctx, "FIN", "USA"), 0);
    S_EXPECT (pb_cpe_state_volunteer_del (ctx, "FIN", "ITA"), 0);
    zlist_purge (list);
    S_EXPECT (pb_cpe_state_volunteers (ctx, "FIN", list), 0);
    assert (zlist_size (list) == 1);
    assert (streq ((char *) zlist_first (list), "DEU"));
    zlist_destroy (&list);
    return 0;
}

void
pb_cpe_state_test (bool verbose)
{
    printf (" * pb_cpe_state: ");
    char dir [] = "/tmp/pb_cpe_state_test_XXXXXX";
    char *made = mkdtemp (dir);
    assert (made);
    const pb_rules_t rules = { .name = "cpe", .apply = s_test_apply };
    pb_worker_local_t *w = NULL;
    int rc = pb_worker_local_open (dir, &rules, &w);
    assert (rc == 0);
    msgpack_packer *pk = pb_worker_local_begin (w, "journal", "sys.tick");
    msgpack_pack_map (pk, 1);
    pb_apply_pack_str (pk, "now");
    msgpack_pack_int64 (pk, 1000);
    rc = pb_worker_local_end (w);
    assert (rc == 0);
    assert (pb_worker_local_seq (w) == 1);
    char buf [256];
    bool found = pb_worker_local_take (w, buf, sizeof buf);
    assert (!found);                    //  Not quarantined: every assert held
    pb_worker_local_destroy (&w);
    zdir_t *tmp = zdir_new (dir, NULL);
    assert (tmp);
    zdir_remove (tmp, true);
    zdir_destroy (&tmp);
    printf ("OK\n");
}
