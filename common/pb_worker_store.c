/*  =========================================================================
    pb_worker_store - the worker runtime's LMDB store

    Invariant 2 rests on one thing here: the rules' writes, applied_seq,
    the log time and the outbox of derived notifications of a batch are
    committed by ONE mdb_txn_commit. A poison event is found in one
    attempt and quarantined in the next, so it changes nothing else.
    =========================================================================
*/
#include <stdarg.h>

#include "pb_worker_store.h"
#include "pb_be64.h"
#include "pb_prealloc.h"
#include "pb_crash.h"
#include "pb_private.h"

#include <lmdb.h>

#define S_REASON_MAX  255
#define S_ENVELOPE_MAX 65536            //  PROTOCOL.md, Limits (default)
#define S_RETRIES      4                //  attempts of one batch
#define S_NAK_INDEX    1000000          //  index base of refusal notices
#define S_KEY_MAX      511              //  LMDB's default maximum key size

struct _pb_worker_store_t {
    MDB_env *env;                       //  the environment (owned)
    MDB_dbi state;                      //  rules' keys -> msgpack
    MDB_dbi meta;                       //  applied_seq, now
    MDB_dbi outbox;                     //  key -> type length, type, envelope
    MDB_dbi quarantine;                 //  seq (BE64) or nak/<id> -> {type, reason}
    MDB_dbi origin;                     //  rebuild only: db letter + key -> seq
    bool rebuild;                       //  a rebuild: no outbox, origins kept
    zhashx_t *skips;                    //  cause "%llu" -> logged reason (owned)
    size_t map_size;                    //  current map size
    const pb_rules_t *rules;            //  (borrowed, static)
    uint64_t applied_seq;               //  as committed
    uint64_t held_seq;                  //  applied, not yet committed: skips only
    bool hold_skips;                    //  hold batches of skipped events
    int64_t now;                        //  log time, as committed
    zchunk_t *acked;                    //  ACKed outbox keys to delete (owned)
    pb_prealloc_t prealloc;             //  the data file written ahead
    int prealloc_failures;              //  its I/O errors in a row
};

struct _pb_apply_t {
    pb_worker_store_t *store;           //  (borrowed)
    MDB_txn *txn;                       //  the event's transaction (borrowed)
    uint64_t seq;                       //  cause of what is emitted
    int64_t now;                        //  log time
    uint32_t emitted;                   //  index of the next notification
    uint32_t index_base;                //  0, or S_NAK_INDEX for refusals
    int store_rc;                       //  first store failure, sticky
    char reason [S_REASON_MAX + 1];     //  set by pb_apply_poison
    char emit_type [129];               //  type being emitted
    bool emitting;                      //  between emit_begin and emit_end
    msgpack_sbuffer put_buf;            //  put_begin's buffer (owned)
    msgpack_packer put_pk;
    msgpack_sbuffer emit_buf;           //  emit_begin's data buffer (owned)
    msgpack_packer emit_pk;
    msgpack_sbuffer env_buf;            //  the envelope being built (owned)
    msgpack_zone zone;                  //  pb_apply_load's objects (owned)
    pb_worker_gauge_fn *gauge_fn;       //  pb_apply_gauge's target, or NULL
    void *gauge_arg;                    //  its argument (borrowed)
};

//  The only place where MDB codes become pb_worker codes, and so the only
//  place a store failure is logged.
static int
s_translate (int mdb_rc, const char *what)
{
    if (mdb_rc == 0)
        return 0;
    if (mdb_rc == MDB_NOTFOUND)
        return PB_ENOTFOUND;            //  Expected by probes; not logged
    if (mdb_rc == MDB_MAP_FULL || mdb_rc == MDB_TXN_FULL) {
        zsys_debug ("pb_worker: %s: %s", what, mdb_strerror (mdb_rc));
        return PB_WORKER_FULL;          //  Cured by growing: not an error yet
    }
    zsys_error ("pb_worker: %s failed: %s", what, mdb_strerror (mdb_rc));
    if (mdb_rc == MDB_CORRUPTED || mdb_rc == MDB_PAGE_NOTFOUND
    ||  mdb_rc == MDB_PANIC || mdb_rc == MDB_INVALID
    ||  mdb_rc == MDB_VERSION_MISMATCH)
        return PB_WORKER_CORRUPT;
    return PB_WORKER_STORE;
}

static void
s_outbox_key (uint8_t *key, uint64_t cause, uint32_t index)
{
    pb_be64_put (key, cause);
    for (int i = 3; i >= 0; i--, index >>= 8)
        key [8 + i] = (uint8_t) index;
}

//  --------------------------------------------------------------------------
//  Opening

static int
s_read_meta (pb_worker_store_t *self)
{
    MDB_txn *txn = NULL;
    int rc = s_translate (mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn),
                          "meta read");
    if (rc)
        return rc;
    MDB_val key = { 11, "applied_seq" }, val;
    if (mdb_get (txn, self->meta, &key, &val) == 0 && val.mv_size == 8)
        self->applied_seq = pb_be64_get (val.mv_data);
    key = (MDB_val) { 3, "now" };
    if (mdb_get (txn, self->meta, &key, &val) == 0 && val.mv_size == 8)
        self->now = (int64_t) pb_be64_get (val.mv_data);
    mdb_txn_abort (txn);
    return 0;
}

int
pb_worker_store_open (const char *dir, size_t map_size,
                      const pb_rules_t *rules, pb_worker_store_t **store_p)
{
    assert (dir && rules && store_p);
    pb_worker_store_t *self = (pb_worker_store_t *) zmalloc (sizeof *self);
    self->rules = rules;
    self->map_size = map_size;
    self->acked = zchunk_new (NULL, 0);
    self->skips = zhashx_new ();
    zhashx_set_destructor (self->skips, (zhashx_destructor_fn *) zstr_free);
    zhashx_set_duplicator (self->skips, (zhashx_duplicator_fn *) strdup);
    MDB_txn *txn = NULL;
    int rc = 0;
    if (pb_private_dir (dir)) {         //  0700; logged there
        rc = PB_WORKER_STORE;
        goto cleanup;
    }
    rc = s_translate (mdb_env_create (&self->env), "env create");
    if (!rc)
        rc = s_translate (mdb_env_set_maxdbs (self->env, 5), "set maxdbs");
    if (!rc)
        rc = s_translate (mdb_env_set_mapsize (self->env, map_size), "set mapsize");
    if (!rc)
        //  MDB_NOMETASYNC: one sync per commit instead of two. A power cut
        //  may undo the last commit (LMDB keeps the store consistent), and
        //  that is safe here: the store is a function of the log, so the
        //  worker re-applies from the older applied_seq and re-derives the
        //  same notifications with the same ids, which the journal answers
        //  with their first seq (invariant 2 holds; the journal's own log
        //  keeps full sync, invariant 1).
        rc = s_translate (mdb_env_open (self->env, dir, MDB_NOMETASYNC, 0600),
                          "env open");
    if (!rc)
        rc = s_translate (mdb_txn_begin (self->env, NULL, 0, &txn), "open txn");
    if (!rc)
        rc = s_translate (mdb_dbi_open (txn, "state", MDB_CREATE, &self->state), "open state");
    if (!rc)
        rc = s_translate (mdb_dbi_open (txn, "meta", MDB_CREATE, &self->meta), "open meta");
    if (!rc)
        rc = s_translate (mdb_dbi_open (txn, "outbox", MDB_CREATE, &self->outbox), "open outbox");
    if (!rc)
        rc = s_translate (mdb_dbi_open (txn, "quarantine", MDB_CREATE, &self->quarantine),
                          "open quarantine");
    if (!rc) {
        rc = s_translate (mdb_txn_commit (txn), "open commit");
        txn = NULL;
    }
    if (!rc) {
        //  Another process may have grown the map: adopt its size
        MDB_envinfo info;
        mdb_env_info (self->env, &info);
        self->map_size = info.me_mapsize;
        rc = s_read_meta (self);
    }
cleanup:
    if (txn)
        mdb_txn_abort (txn);
    if (rc) {
        if (rc == PB_ENOTFOUND || rc == PB_WORKER_FULL)
            rc = PB_WORKER_STORE;
        pb_worker_store_destroy (&self);
    }
    else
        *store_p = self;
    return rc;
}

void
pb_worker_store_set_prealloc (pb_worker_store_t *self, uint64_t ahead)
{
    assert (self);
    pb_prealloc_init (&self->prealloc, "pb_worker", ahead);
}

//  A full disk only stops the writing ahead. An I/O error is the store's
//  disk failing, as a commit's would be: tried again (pb_prealloc waits
//  between tries), and the worker's failure only at the S_RETRIES-th in a
//  row, as a batch would be
int
pb_worker_store_prealloc (pb_worker_store_t *self)
{
    assert (self);
    int rc = pb_prealloc_run (&self->prealloc, self->env);
    //  (It returns 0 while it waits: its last try tells whether it failed)
    int last = self->prealloc.last_errno;
    if (last == 0 || pb_prealloc_full (last))
        self->prealloc_failures = 0;
    if (rc == 0 || pb_prealloc_full (rc))
        return 0;
    rc = s_translate (rc, "write ahead");
    return ++self->prealloc_failures < S_RETRIES? 0: rc;
}

void
pb_worker_store_destroy (pb_worker_store_t **self_p)
{
    assert (self_p);
    pb_worker_store_t *self = *self_p;
    if (self) {
        if (self->env)
            mdb_env_close (self->env);
        zchunk_destroy (&self->acked);
        zhashx_destroy (&self->skips);
        free (self);
        *self_p = NULL;
    }
}

uint64_t
pb_worker_store_applied_seq (pb_worker_store_t *self)
{
    return self->held_seq > self->applied_seq? self->held_seq: self->applied_seq;
}

void
pb_worker_store_hold_skips (pb_worker_store_t *self)
{
    assert (self);
    self->hold_skips = true;
}

bool
pb_worker_store_is_holding (pb_worker_store_t *self)
{
    assert (self);
    return zchunk_size (self->acked) > 0 || self->held_seq > self->applied_seq;
}

int64_t
pb_worker_store_now (pb_worker_store_t *self)
{
    return self->now;
}

//  --------------------------------------------------------------------------
//  pb_apply_t: what the rules see

static void
s_ctx_init (pb_apply_t *ctx, pb_worker_store_t *store, MDB_txn *txn,
            uint64_t seq, int64_t now)
{
    memset (ctx, 0, sizeof *ctx);
    ctx->store = store;
    ctx->txn = txn;
    ctx->seq = seq;
    ctx->now = now;
    msgpack_sbuffer_init (&ctx->put_buf);
    msgpack_packer_init (&ctx->put_pk, &ctx->put_buf, msgpack_sbuffer_write);
    msgpack_sbuffer_init (&ctx->emit_buf);
    msgpack_packer_init (&ctx->emit_pk, &ctx->emit_buf, msgpack_sbuffer_write);
    msgpack_sbuffer_init (&ctx->env_buf);
    msgpack_zone_init (&ctx->zone, 2048);
}

static void
s_ctx_fini (pb_apply_t *ctx)
{
    msgpack_sbuffer_destroy (&ctx->put_buf);
    msgpack_sbuffer_destroy (&ctx->emit_buf);
    msgpack_sbuffer_destroy (&ctx->env_buf);
    msgpack_zone_destroy (&ctx->zone);
}

static int
s_ctx_fail (pb_apply_t *ctx, int rc)
{
    if (rc && rc != PB_ENOTFOUND && ctx->store_rc == 0)
        ctx->store_rc = rc;
    return rc;
}

//  In a rebuild, remember that event 'seq' wrote or deleted 'key' of the
//  db named by 'db' ('s' state, 'q' quarantine), for pbctl rebuild to
//  name the event behind a difference
static int
s_origin (pb_worker_store_t *self, MDB_txn *txn, char db, const void *key,
          size_t key_size, uint64_t seq)
{
    if (!self->rebuild)
        return 0;
    uint8_t okey [S_KEY_MAX + 1];
    uint8_t value [8];
    if (key_size > S_KEY_MAX)
        return 0;
    okey [0] = (uint8_t) db;
    memcpy (okey + 1, key, key_size);
    pb_be64_put (value, seq);
    MDB_val k = { key_size + 1, okey }, v = { 8, value };
    return s_translate (mdb_put (txn, self->origin, &k, &v, 0), "origin put");
}

uint64_t
pb_apply_seq (pb_apply_t *ctx)
{
    assert (ctx);
    return ctx->seq;
}

int64_t
pb_apply_now (pb_apply_t *ctx)
{
    assert (ctx);
    return ctx->now;
}

const char *
pb_apply_name (pb_apply_t *ctx)
{
    assert (ctx);
    return ctx->store->rules->name;
}

const void *
pb_apply_get (pb_apply_t *ctx, const char *key, size_t *size_p)
{
    assert (ctx && key);
    MDB_val k = { strlen (key), (void *) key }, v;
    if (k.mv_size == 0 || k.mv_size > S_KEY_MAX)
        return NULL;                    //  Cannot be stored, so absent
    int rc = s_translate (mdb_get (ctx->txn, ctx->store->state, &k, &v), "get");
    if (rc) {
        s_ctx_fail (ctx, rc);
        return NULL;
    }
    if (size_p)
        *size_p = v.mv_size;
    return v.mv_data;
}

const msgpack_object *
pb_apply_load (pb_apply_t *ctx, const char *key)
{
    size_t size = 0;
    const void *bytes = pb_apply_get (ctx, key, &size);
    if (!bytes)
        return NULL;
    //  msgpack-c's objects point into the bytes they were unpacked from,
    //  and a put may rewrite an LMDB page in place: unpack a copy that
    //  lives in the event's zone
    msgpack_object *obj = (msgpack_object *)
        msgpack_zone_malloc (&ctx->zone, sizeof (msgpack_object));
    char *copy = (char *) msgpack_zone_malloc (&ctx->zone, size? size: 1);
    if (!obj || !copy)
        return NULL;
    memcpy (copy, bytes, size);
    size_t offset = 0;
    if (msgpack_unpack (copy, size, &offset, &ctx->zone, obj) != MSGPACK_UNPACK_SUCCESS)
        return NULL;
    return obj;
}

int
pb_apply_put (pb_apply_t *ctx, const char *key, const void *value, size_t size)
{
    assert (ctx && key && (value || size == 0));
    MDB_val k = { strlen (key), (void *) key }, v = { size, (void *) value };
    if (k.mv_size == 0 || k.mv_size > S_KEY_MAX)
        return pb_apply_poison (ctx, "state key empty or over 511 bytes");
    int rc = s_translate (mdb_put (ctx->txn, ctx->store->state, &k, &v, 0), "put");
    if (rc == 0)
        rc = s_origin (ctx->store, ctx->txn, 's', key, k.mv_size, ctx->seq);
    return s_ctx_fail (ctx, rc);
}

msgpack_packer *
pb_apply_put_begin (pb_apply_t *ctx)
{
    assert (ctx);
    msgpack_sbuffer_clear (&ctx->put_buf);
    return &ctx->put_pk;
}

int
pb_apply_put_end (pb_apply_t *ctx, const char *key)
{
    assert (ctx);
    return pb_apply_put (ctx, key, ctx->put_buf.data, ctx->put_buf.size);
}

int
pb_apply_del (pb_apply_t *ctx, const char *key)
{
    assert (ctx && key);
    MDB_val k = { strlen (key), (void *) key };
    if (k.mv_size == 0 || k.mv_size > S_KEY_MAX)
        return 0;                       //  Cannot be stored, so absent
    int rc = s_translate (mdb_del (ctx->txn, ctx->store->state, &k, NULL), "del");
    if (rc == 0)
        rc = s_origin (ctx->store, ctx->txn, 's', key, k.mv_size, ctx->seq);
    return rc == PB_ENOTFOUND? 0: s_ctx_fail (ctx, rc);
}

int
pb_apply_scan (pb_apply_t *ctx, const char *prefix, pb_apply_scan_fn *fn,
               void *arg)
{
    assert (ctx && prefix && fn);
    MDB_cursor *cursor = NULL;
    size_t prefix_len = strlen (prefix);
    int rc = s_translate (mdb_cursor_open (ctx->txn, ctx->store->state, &cursor),
                          "cursor open");
    if (rc)
        return s_ctx_fail (ctx, rc);
    MDB_val k = { prefix_len, (void *) prefix }, v;
    if (prefix_len > S_KEY_MAX) {
        mdb_cursor_close (cursor);
        return 0;                       //  No key can have it
    }
    int mrc = prefix_len? mdb_cursor_get (cursor, &k, &v, MDB_SET_RANGE)
                        : mdb_cursor_get (cursor, &k, &v, MDB_FIRST);
    while (mrc == 0) {
        if (k.mv_size < prefix_len || memcmp (k.mv_data, prefix, prefix_len))
            break;
        rc = fn ((const char *) k.mv_data, k.mv_size, v.mv_data, v.mv_size, arg);
        if (rc)
            break;
        mrc = mdb_cursor_get (cursor, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close (cursor);
    if (rc > 0)
        rc = 0;
    if (rc == 0 && mrc && mrc != MDB_NOTFOUND)
        rc = s_ctx_fail (ctx, s_translate (mrc, "cursor get"));
    return rc;
}

msgpack_packer *
pb_apply_emit_begin (pb_apply_t *ctx, const char *type)
{
    assert (ctx && type);
    assert (!ctx->emitting);
    assert (strlen (type) < sizeof ctx->emit_type);
    strcpy (ctx->emit_type, type);
    ctx->emitting = true;
    msgpack_sbuffer_clear (&ctx->emit_buf);
    return &ctx->emit_pk;
}

static void
s_pack_str (msgpack_packer *pk, const char *text)
{
    size_t len = strlen (text);
    msgpack_pack_str (pk, len);
    msgpack_pack_str_body (pk, text, len);
}

//  'value' in decimal, without padding, into 'buf'; returns buf
static const char *
s_decimal (char buf [21], uint64_t value)
{
    char digits [20];
    size_t count = 0;
    do {
        digits [count++] = (char) ('0' + value % 10);
        value /= 10;
    } while (value);
    for (size_t i = 0; i < count; i++)
        buf [i] = digits [count - 1 - i];
    buf [count] = 0;
    return buf;
}

//  The envelope of a notification: {id, src, type, cause, data}, no time,
//  keys in this order, so it is a pure function of the log (EVENTS.md,
//  "Every worker") and a resend is byte-identical.
int
pb_apply_emit_end (pb_apply_t *ctx)
{
    assert (ctx && ctx->emitting);
    ctx->emitting = false;
    const char *name = ctx->store->rules->name;
    uint32_t index = ctx->index_base + ctx->emitted;
    char id [160], seq_text [21], index_text [21];
    pb_apply_join (id, sizeof id, name, "/", s_decimal (seq_text, ctx->seq), "/",
                   s_decimal (index_text, index), NULL);
    size_t type_len = strlen (ctx->emit_type);
    msgpack_sbuffer_clear (&ctx->env_buf);
    msgpack_sbuffer_write (&ctx->env_buf, "\0\0", 2);  //  type length
    msgpack_sbuffer_write (&ctx->env_buf, ctx->emit_type, type_len);
    size_t header = ctx->env_buf.size;
    msgpack_packer pk;
    msgpack_packer_init (&pk, &ctx->env_buf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 5);
    s_pack_str (&pk, "id");
    s_pack_str (&pk, id);
    s_pack_str (&pk, "src");
    s_pack_str (&pk, name);
    s_pack_str (&pk, "type");
    s_pack_str (&pk, ctx->emit_type);
    s_pack_str (&pk, "cause");
    msgpack_pack_uint64 (&pk, ctx->seq);
    s_pack_str (&pk, "data");
    msgpack_sbuffer_write (&ctx->env_buf, ctx->emit_buf.data, ctx->emit_buf.size);
    if (ctx->env_buf.size - header > S_ENVELOPE_MAX)
        return pb_apply_poison (ctx, "notification over the envelope size limit");
    ctx->env_buf.data [0] = (char) (type_len >> 8);
    ctx->env_buf.data [1] = (char) (type_len & 0xff);
    if (ctx->store->rebuild) {
        ctx->emitted++;                 //  Nothing is published by a rebuild
        return 0;
    }
    uint8_t key_bytes [PB_WORKER_KEY_SIZE];
    s_outbox_key (key_bytes, ctx->seq, index);
    MDB_val k = { sizeof key_bytes, key_bytes };
    MDB_val v = { ctx->env_buf.size, ctx->env_buf.data };
    int rc = s_translate (mdb_put (ctx->txn, ctx->store->outbox, &k, &v, 0),
                          "outbox put");
    if (rc == 0)
        ctx->emitted++;
    return s_ctx_fail (ctx, rc);
}

int
pb_apply_poison (pb_apply_t *ctx, const char *reason)
{
    assert (ctx && reason);
    if (ctx->reason [0] == 0) {
        size_t len = strlen (reason);
        if (len > S_REASON_MAX)
            len = S_REASON_MAX;
        //  Cut at a UTF-8 boundary so the notification stays valid
        while (len > 0 && len < strlen (reason)
        &&    ((unsigned char) reason [len] & 0xC0) == 0x80)
            len--;
        memcpy (ctx->reason, reason, len);
        ctx->reason [len] = 0;
    }
    return PB_WORKER_POISON;
}

bool
pb_apply_str (const msgpack_object *obj, char *buf, size_t size)
{
    assert (buf && size > 0);
    buf [0] = 0;
    if (!obj || obj->type != MSGPACK_OBJECT_STR
    ||  obj->via.str.size >= size
    ||  memchr (obj->via.str.ptr, 0, obj->via.str.size))
        return false;
    memcpy (buf, obj->via.str.ptr, obj->via.str.size);
    buf [obj->via.str.size] = 0;
    return true;
}

//  --------------------------------------------------------------------------
//  Applying a batch

//  Record a quarantined event in 'txn' under 'qkey', keeping its stored
//  envelope ('event', may be NULL) for ops.redrive, and emit
//  notify.<name>.quarantined {seq, type, reason} caused by 'cause' (the
//  event itself, or the redrive that failed again)
static int
s_quarantine (pb_worker_store_t *self, MDB_txn *txn, uint64_t cause,
              uint64_t seq, int64_t now, const char *type, const char *reason,
              const uint8_t *qkey, size_t qkey_size, uint32_t index_base,
              const void *event, size_t event_size)
{
    pb_apply_t ctx;
    s_ctx_init (&ctx, self, txn, cause, now);
    ctx.index_base = index_base;
    msgpack_packer *pk = pb_apply_put_begin (&ctx);
    msgpack_pack_map (pk, event? 3: 2);
    s_pack_str (pk, "type");
    s_pack_str (pk, type);
    s_pack_str (pk, "reason");
    s_pack_str (pk, reason);
    if (event) {
        s_pack_str (pk, "event");
        msgpack_pack_bin (pk, event_size);
        msgpack_pack_bin_body (pk, event, event_size);
    }
    MDB_val k = { qkey_size, (void *) qkey };
    MDB_val v = { ctx.put_buf.size, ctx.put_buf.data };
    int rc = s_translate (mdb_put (txn, self->quarantine, &k, &v, 0),
                          "quarantine put");
    if (rc == 0)
        rc = s_origin (self, txn, 'q', qkey, qkey_size, cause);
    char qtype [160];
    snprintf (qtype, sizeof qtype, "notify.%s.quarantined", self->rules->name);
    if (rc == 0 && strcmp (type, qtype) != 0) {
        pk = pb_apply_emit_begin (&ctx, qtype);
        msgpack_pack_map (pk, 3);
        s_pack_str (pk, "seq");
        msgpack_pack_uint64 (pk, seq);
        s_pack_str (pk, "type");
        s_pack_str (pk, type);
        s_pack_str (pk, "reason");
        s_pack_str (pk, reason);
        rc = pb_apply_emit_end (&ctx);
    }
    zsys_warning ("pb_worker: quarantined seq=%" PRIu64 " type=%s reason=%s",
                  seq, type, reason);
    s_ctx_fini (&ctx);
    return rc == PB_WORKER_POISON? 0: rc;
}

static bool
s_is_store_code (int rc)
{
    return rc == PB_WORKER_FULL || rc == PB_WORKER_STORE
        || rc == PB_WORKER_CORRUPT;
}

//  Run the rules on 'env' in the batch transaction, as caused by 'cause'.
//  Returns 0, a store code, or PB_WORKER_POISON with 'reason' set (any
//  other code is a poison too). A poison leaves the transaction dirty:
//  the caller aborts the batch and applies it again without this event.
static int
s_run_rules (pb_worker_store_t *self, MDB_txn *txn, const pb_envelope_t *env,
             uint64_t cause, int64_t now, char *reason)
{
    pb_apply_t ctx;
    s_ctx_init (&ctx, self, txn, cause, now);
    int rc = self->rules->apply (&ctx, env);
    if (ctx.store_rc)
        rc = ctx.store_rc;
    if (rc && !s_is_store_code (rc) && rc != PB_WORKER_POISON)
        pb_apply_poison (&ctx, pb_worker_strerror (rc));
    if (rc == PB_WORKER_POISON && ctx.reason [0] == 0)
        pb_apply_poison (&ctx, "refused by the rules");
    if (rc && !s_is_store_code (rc))
        rc = PB_WORKER_POISON;
    pb_apply_join (reason, S_REASON_MAX + 1, ctx.reason, NULL);
    s_ctx_fini (&ctx);
    return rc;
}

//  Mark 'event' poisoned with 'reason', for the batch's next attempt
static int
s_mark_poisoned (pb_worker_event_t *event, const char *reason)
{
    event->poisoned = true;
    snprintf (event->error, sizeof event->error, "%s", reason);
    return PB_WORKER_POISON;
}

//  ops.redrive {worker, seq} for this worker: apply the quarantined event
//  kept under 'seq' again, as caused by the redrive (EVENTS.md, "Every
//  worker"). If it fails again it stays quarantined and is announced
//  again. A redrive of an event that is not quarantined changes nothing.
static int
s_redrive (pb_worker_store_t *self, MDB_txn *txn, pb_worker_event_t *redrive,
           int64_t now)
{
    const pb_envelope_t *env = redrive->env;
    const msgpack_object *worker = pb_msgpack_get (env->data, "worker");
    const msgpack_object *target = pb_msgpack_get (env->data, "seq");
    if (!pb_msgpack_str_eq (worker, self->rules->name)
    ||  !target || target->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return 0;
    uint8_t qkey [8];
    pb_be64_put (qkey, target->via.u64);
    MDB_val k = { 8, qkey }, v;
    int rc = s_translate (mdb_get (txn, self->quarantine, &k, &v), "quarantine get");
    if (rc)
        return rc == PB_ENOTFOUND? 0: rc;
    //  Copy the kept event out: the transaction's pages change below
    msgpack_unpacked record;
    msgpack_unpacked_init (&record);
    pb_envelope_t *event = NULL;
    char error [256] = "";
    if (msgpack_unpack_next (&record, v.mv_data, v.mv_size, NULL) == MSGPACK_UNPACK_SUCCESS) {
        const msgpack_object *bytes = pb_msgpack_get (&record.data, "event");
        pb_limits_t limits = PB_LIMITS_DEFAULTS;
        if (bytes && bytes->type == MSGPACK_OBJECT_BIN)
            pb_envelope_decode (NULL, 0, bytes->via.bin.ptr, bytes->via.bin.size,
                                PB_ENVELOPE_STORED, &limits, &event, error,
                                sizeof error);
    }
    msgpack_unpacked_destroy (&record);
    if (!event) {
        zsys_warning ("pb_worker: cannot redrive seq=%" PRIu64 ": event not kept",
                      target->via.u64);
        return 0;
    }
    if (redrive->poisoned) {
        //  It failed again in the last attempt: quarantined and announced
        //  again, caused by the redrive
        char type [129];
        snprintf (type, sizeof type, "%.*s", (int) event->type_len, event->type);
        rc = s_quarantine (self, txn, env->seq, event->seq, now, type,
                           redrive->error, qkey, 8, 0, event->bytes, event->size);
    }
    else {
        char reason [S_REASON_MAX + 1];
        rc = s_run_rules (self, txn, event, env->seq, now, reason);
        if (rc == PB_WORKER_POISON)
            rc = s_mark_poisoned (redrive, reason);
        else
        if (rc == 0) {
            zsys_notice ("pb_worker: redriven seq=%" PRIu64, event->seq);
            rc = s_translate (mdb_del (txn, self->quarantine, &k, NULL),
                              "quarantine del");
            if (rc == 0)
                rc = s_origin (self, txn, 'q', qkey, 8, env->seq);
        }
    }
    pb_envelope_destroy (&event);
    return rc;
}

//  The log is the record of the journal's refusals too: this worker's own
//  notice of a refused notification (notify.<name>.quarantined with id
//  "<name>/<cause>/<S_NAK_INDEX + i>") stores the "nak/<name>/<cause>/<i>"
//  record that pb_worker_store_outbox_refuse wrote when the NAK came, so
//  a store rebuilt from the log has it as the live one does (writing it
//  again on the live store changes nothing: same key, same value).
static int
s_nak_record (pb_worker_store_t *self, MDB_txn *txn, const pb_envelope_t *env)
{
    const char *name = self->rules->name;
    size_t name_len = strlen (name);
    char qtype [160];
    snprintf (qtype, sizeof qtype, "notify.%s.quarantined", name);
    if (!pb_apply_type_is (env, qtype) || env->src_len != name_len
    ||  memcmp (env->src, name, name_len) || env->id_len >= 160)
        return 0;
    char id [160];
    memcpy (id, env->id, env->id_len);
    id [env->id_len] = 0;
    uint8_t key [PB_WORKER_KEY_SIZE];
    if (!pb_worker_store_key_of (self, id, key))
        return 0;
    uint64_t cause = pb_be64_get (key);
    uint32_t index = (uint32_t) (key [8] << 24 | key [9] << 16 | key [10] << 8 | key [11]);
    char type [129], reason [4097];
    if (index < S_NAK_INDEX
    ||  !pb_apply_str (pb_msgpack_get (env->data, "type"), type, sizeof type)
    ||  !pb_apply_str (pb_msgpack_get (env->data, "reason"), reason, sizeof reason))
        return 0;
    char qkey [200];
    snprintf (qkey, sizeof qkey, "nak/%s/%" PRIu64 "/%" PRIu32, name, cause,
              index - S_NAK_INDEX);
    pb_apply_t ctx;
    s_ctx_init (&ctx, self, txn, env->seq, self->now);
    msgpack_packer *pk = pb_apply_put_begin (&ctx);
    msgpack_pack_map (pk, 2);
    s_pack_str (pk, "type");
    s_pack_str (pk, type);
    s_pack_str (pk, "reason");
    s_pack_str (pk, reason);
    MDB_val k = { strlen (qkey), qkey };
    MDB_val v = { ctx.put_buf.size, ctx.put_buf.data };
    int rc = s_translate (mdb_put (txn, self->quarantine, &k, &v, 0), "quarantine put");
    if (rc == 0)
        rc = s_origin (self, txn, 'q', qkey, strlen (qkey), env->seq);
    s_ctx_fini (&ctx);
    return rc;
}

//  Apply one event. sys.tick moves the log time first; ops.redrive is the
//  runtime's own; everything else goes to the rules. An event found to be
//  poison is marked (the batch is then applied again from the start) and,
//  in that next attempt, quarantined instead, keeping its bytes for a
//  redrive. So a poison event changes nothing but the quarantine, without
//  a nested transaction per event: LMDB allocates a 2 MiB dirty list for
//  each nested begin, which made catch-up 50 times slower under ASan.
static int
s_apply_one (pb_worker_store_t *self, MDB_txn *txn, pb_worker_event_t *event,
             int64_t *now_p)
{
    if (event->skipped)
        return 0;
    uint8_t qkey [8];
    pb_be64_put (qkey, event->seq);
    const pb_envelope_t *env = event->env;
    if (!env)
        return s_quarantine (self, txn, event->seq, event->seq, *now_p,
                             event->type, event->error, qkey, 8, 0, NULL, 0);
    if (env->type_len == 8 && memcmp (env->type, "sys.tick", 8) == 0) {
        const msgpack_object *now = pb_msgpack_get (env->data, "now");
        if (now && now->type == MSGPACK_OBJECT_POSITIVE_INTEGER
        &&  (int64_t) now->via.u64 > *now_p && now->via.u64 <= INT64_MAX)
            *now_p = (int64_t) now->via.u64;
    }
    if (env->type_len == 11 && memcmp (env->type, "ops.redrive", 11) == 0)
        return s_redrive (self, txn, event, *now_p);
    int rc = s_nak_record (self, txn, env);
    if (rc)
        return rc;
    if (event->poisoned)
        return s_quarantine (self, txn, event->seq, event->seq, *now_p,
                             event->type, event->error, qkey, 8, 0,
                             env->bytes, env->size);
    char reason [S_REASON_MAX + 1];
    rc = s_run_rules (self, txn, env, event->seq, *now_p, reason);
    return rc == PB_WORKER_POISON? s_mark_poisoned (event, reason): rc;
}

//  Delete ACKed outbox keys in 'txn'; a key already gone was ACKed twice
//  (a resend)
static int
s_outbox_del (pb_worker_store_t *self, MDB_txn *txn, const uint8_t *keys,
              size_t count)
{
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        MDB_val k = { PB_WORKER_KEY_SIZE, (void *) (keys + i * PB_WORKER_KEY_SIZE) };
        rc = s_translate (mdb_del (txn, self->outbox, &k, NULL), "outbox del");
        if (rc == PB_ENOTFOUND)
            rc = 0;
    }
    return rc;
}

//  True if every event of the batch past 'applied' is skipped: applying
//  them changes nothing but applied_seq
static bool
s_only_skips (const pb_worker_event_t *events, size_t count, uint64_t applied)
{
    for (size_t i = 0; i < count; i++)
        if (events [i].seq > applied && !events [i].skipped)
            return false;
    return true;
}

static int
s_try_batch (pb_worker_store_t *self, pb_worker_event_t *events, size_t count)
{
    MDB_txn *txn = NULL;
    uint64_t applied = pb_worker_store_applied_seq (self);
    int64_t now = self->now;
    //  A batch of skipped events alone is held, not committed: no sync for
    //  what changes no state. Losing it in a crash costs a replay of events
    //  that are skipped again (invariant 2); the next commit, or the
    //  runtime's timer (pb_worker_store_outbox_ack), writes the seq.
    if (self->hold_skips && s_only_skips (events, count, applied)) {
        for (size_t i = 0; i < count; i++)
            if (events [i].seq == applied + 1)
                applied = events [i].seq;
        self->held_seq = applied;
        return 0;
    }
    int rc = s_translate (mdb_txn_begin (self->env, NULL, 0, &txn), "batch txn");
    for (size_t i = 0; i < count && rc == 0; i++) {
        if (events [i].seq <= applied)
            continue;
        if (PB_NEVER (events [i].seq != applied + 1))
            break;                      //  The caller sends a gapless batch
        if (events [i].env) {
            size_t len = events [i].env->type_len;
            len = len < sizeof events [i].type? len: sizeof events [i].type - 1;
            memcpy (events [i].type, events [i].env->type, len);
            events [i].type [len] = 0;
        }
        rc = s_apply_one (self, txn, &events [i], &now);
        if (rc == 0)
            applied = events [i].seq;
    }
    if (rc == 0 && applied == self->applied_seq) {
        mdb_txn_abort (txn);
        return 0;                       //  Nothing new, nothing held
    }
    if (rc == 0)
        rc = s_outbox_del (self, txn, zchunk_data (self->acked),
                           zchunk_size (self->acked) / PB_WORKER_KEY_SIZE);
    uint8_t bytes [8];
    if (rc == 0) {
        pb_be64_put (bytes, applied);
        MDB_val k = { 11, "applied_seq" }, v = { 8, bytes };
        rc = s_translate (mdb_put (txn, self->meta, &k, &v, 0), "meta put");
    }
    if (rc == 0) {
        pb_be64_put (bytes, (uint64_t) now);
        MDB_val k = { 3, "now" }, v = { 8, bytes };
        rc = s_translate (mdb_put (txn, self->meta, &k, &v, 0), "meta put");
    }
    if (rc == 0) {
        PB_CRASH_POINT ("worker_before_commit");
        rc = s_translate (mdb_txn_commit (txn), "batch commit");
        txn = NULL;
    }
    if (txn)
        mdb_txn_abort (txn);
    if (rc == 0) {
        self->applied_seq = applied;
        self->held_seq = 0;
        self->now = now;
        zchunk_set (self->acked, NULL, 0);
        PB_CRASH_POINT ("worker_after_commit");
    }
    return rc;
}

//  Between two attempts of a store write ('what', for the log) that
//  failed with 'rc' (attempt counts from 0): a full map is grown (no
//  transaction may be open then, and none is), an I/O error gets a short
//  pause. Returns whether to try again: not after S_RETRIES attempts, nor
//  for a corrupt store, nor for a poison (the caller's own). Giving up on
//  a store failure is logged here; it is never a reason to quarantine
//  (EVENTS.md, "Every worker"): the runtime exits for its supervisor.
static bool
s_retry (pb_worker_store_t *self, int rc, int attempt, const char *what)
{
    if (rc == 0 || rc == PB_WORKER_POISON)
        return false;
    if ((rc != PB_WORKER_FULL && rc != PB_WORKER_STORE) || attempt + 1 >= S_RETRIES) {
        zsys_error ("pb_worker: %s failed after retries: %s", what,
                    pb_worker_strerror (rc));
        return false;
    }
    if (rc == PB_WORKER_FULL) {
        size_t bigger = self->map_size * 2;
        if (mdb_env_set_mapsize (self->env, bigger) == 0) {
            zsys_notice ("pb_worker: map grown map_size=%zu", bigger);
            self->map_size = bigger;
        }
    }
    else
        zclock_sleep (100 * (attempt + 1));
    return true;
}

//  A poison event marks itself and the batch is applied again (each
//  attempt marks one more, so at most 'count' of them). Store failures are
//  retried (s_retry), never quarantined.
int
pb_worker_store_apply (pb_worker_store_t *self, pb_worker_event_t *events,
                       size_t count)
{
    assert (self);
    int rc = 0;
    int failures = 0;
    size_t poisons = 0;
    //  Where the log shows an event quarantined by this worker, it is
    //  quarantined again with the logged reason, not applied
    for (size_t i = 0; i < count && zhashx_size (self->skips); i++) {
        char seq [24];
        snprintf (seq, sizeof seq, "%" PRIu64, events [i].seq);
        const char *reason = (const char *) zhashx_lookup (self->skips, seq);
        if (reason && events [i].seq > self->applied_seq && !events [i].poisoned)
            s_mark_poisoned (&events [i], reason);
    }
    while (true) {
        rc = s_try_batch (self, events, count);
        if (rc == PB_WORKER_POISON && poisons++ < count)
            continue;
        if (!s_retry (self, rc, failures++, "batch"))
            break;
    }
    if (rc == PB_WORKER_POISON) {
        zsys_error ("pb_worker: a batch kept failing as poison");
        rc = PB_WORKER_STORE;
    }
    return rc;
}

//  --------------------------------------------------------------------------
//  Outbox

int
pb_worker_store_outbox_scan (pb_worker_store_t *self, const uint8_t *after,
                             pb_worker_outbox_fn *fn, void *arg)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cursor = NULL;
    int rc = s_translate (mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn),
                          "outbox txn");
    if (rc == 0)
        rc = s_translate (mdb_cursor_open (txn, self->outbox, &cursor),
                          "outbox cursor");
    if (rc == 0) {
        MDB_val k = { PB_WORKER_KEY_SIZE, (void *) after }, v;
        int mrc = after? mdb_cursor_get (cursor, &k, &v, MDB_SET_RANGE)
                       : mdb_cursor_get (cursor, &k, &v, MDB_FIRST);
        if (mrc == 0 && after && memcmp (k.mv_data, after, PB_WORKER_KEY_SIZE) == 0)
            mrc = mdb_cursor_get (cursor, &k, &v, MDB_NEXT);
        while (mrc == 0 && rc == 0) {
            const uint8_t *p = v.mv_data;
            size_t type_len = v.mv_size >= 2? ((size_t) p [0] << 8 | p [1]): SIZE_MAX;
            if (k.mv_size != PB_WORKER_KEY_SIZE || type_len > 128
            ||  v.mv_size < 2 + type_len) {
                zsys_error ("pb_worker: outbox entry is malformed");
                rc = PB_WORKER_CORRUPT;
                break;
            }
            char type [129];
            memcpy (type, p + 2, type_len);
            type [type_len] = 0;
            rc = fn (k.mv_data, type, p + 2 + type_len, v.mv_size - 2 - type_len, arg);
            if (rc == 0)
                mrc = mdb_cursor_get (cursor, &k, &v, MDB_NEXT);
        }
        if (rc > 0)
            rc = 0;
        if (rc == 0 && mrc && mrc != MDB_NOTFOUND)
            rc = s_translate (mrc, "outbox next");
    }
    if (cursor)
        mdb_cursor_close (cursor);
    if (txn)
        mdb_txn_abort (txn);
    return rc;
}

//  Retried as a batch is (s_retry): this commit also writes a held
//  applied_seq, so it meets a failing disk as often as a batch does
int
pb_worker_store_outbox_ack (pb_worker_store_t *self, const uint8_t *keys,
                            size_t count)
{
    int rc = 0;
    for (int attempt = 0; ; attempt++) {
        MDB_txn *txn = NULL;
        rc = s_translate (mdb_txn_begin (self->env, NULL, 0, &txn), "ack txn");
        if (rc == 0)
            rc = s_outbox_del (self, txn, keys, count);
        if (rc == 0)
            rc = s_outbox_del (self, txn, zchunk_data (self->acked),
                               zchunk_size (self->acked) / PB_WORKER_KEY_SIZE);
        uint64_t held = self->held_seq;
        if (rc == 0 && held > self->applied_seq) {
            uint8_t bytes [8];
            pb_be64_put (bytes, held);
            MDB_val k = { 11, "applied_seq" }, v = { 8, bytes };
            rc = s_translate (mdb_put (txn, self->meta, &k, &v, 0), "meta put");
        }
        if (rc == 0) {
            rc = s_translate (mdb_txn_commit (txn), "ack commit");
            txn = NULL;
            if (rc == 0) {
                zchunk_set (self->acked, NULL, 0);
                if (held > self->applied_seq)
                    self->applied_seq = held;
                self->held_seq = 0;
            }
        }
        if (txn)
            mdb_txn_abort (txn);
        if (!s_retry (self, rc, attempt, "ack"))
            break;
    }
    return rc;
}

void
pb_worker_store_outbox_ack_later (pb_worker_store_t *self, const uint8_t *keys,
                                  size_t count)
{
    assert (self && (keys || count == 0));
    zchunk_extend (self->acked, keys, count * PB_WORKER_KEY_SIZE);
}

size_t
pb_worker_store_outbox_acks_held (pb_worker_store_t *self)
{
    assert (self);
    return zchunk_size (self->acked) / PB_WORKER_KEY_SIZE;
}

static int
s_refuse (pb_worker_store_t *self, const uint8_t *key, const char *id,
          const char *reason)
{
    MDB_txn *txn = NULL;
    int rc = s_translate (mdb_txn_begin (self->env, NULL, 0, &txn), "refuse txn");
    MDB_val k = { PB_WORKER_KEY_SIZE, (void *) key }, v;
    if (rc == 0)
        rc = s_translate (mdb_get (txn, self->outbox, &k, &v), "outbox get");
    if (rc == 0) {
        const uint8_t *p = v.mv_data;
        size_t type_len = v.mv_size >= 2? ((size_t) p [0] << 8 | p [1]): 0;
        char type [129] = "";
        if (type_len <= 128 && v.mv_size >= 2 + type_len) {
            memcpy (type, p + 2, type_len);
            type [type_len] = 0;
        }
        uint64_t cause = pb_be64_get (key);
        uint32_t index = (uint32_t) pb_be64_get (key + 4) & 0xffffffffu;
        char qkey [200];
        snprintf (qkey, sizeof qkey, "nak/%s", id);
        rc = s_translate (mdb_del (txn, self->outbox, &k, NULL), "outbox del");
        if (rc == 0)
            rc = s_quarantine (self, txn, cause, cause, self->now, type, reason,
                               (const uint8_t *) qkey, strlen (qkey),
                               S_NAK_INDEX + index, NULL, 0);
    }
    if (rc == 0) {
        rc = s_translate (mdb_txn_commit (txn), "refuse commit");
        txn = NULL;
    }
    if (txn)
        mdb_txn_abort (txn);
    return rc == PB_ENOTFOUND? 0: rc;
}

//  Retried as a batch is (s_retry)
int
pb_worker_store_outbox_refuse (pb_worker_store_t *self, const uint8_t *key,
                               const char *id, const char *reason)
{
    int rc = 0;
    for (int attempt = 0; ; attempt++) {
        rc = s_refuse (self, key, id, reason);
        if (!s_retry (self, rc, attempt, "refusal record"))
            break;
    }
    return rc;
}

bool
pb_worker_store_key_of (pb_worker_store_t *self, const char *id, uint8_t *key)
{
    const char *name = self->rules->name;
    size_t name_len = strlen (name);
    if (strncmp (id, name, name_len) || id [name_len] != '/')
        return false;
    const char *p = id + name_len + 1;
    char *end = NULL;
    if (*p < '0' || *p > '9')
        return false;
    errno = 0;
    unsigned long long cause = strtoull (p, &end, 10);
    if (errno || *end != '/' || end [1] < '0' || end [1] > '9')
        return false;
    unsigned long long index = strtoull (end + 1, &end, 10);
    if (errno || *end || index > UINT32_MAX)
        return false;
    s_outbox_key (key, cause, (uint32_t) index);
    return true;
}

//  --------------------------------------------------------------------------
//  Rebuild

int
pb_worker_store_rebuild_mode (pb_worker_store_t *self)
{
    assert (self);
    MDB_txn *txn = NULL;
    int rc = s_translate (mdb_txn_begin (self->env, NULL, 0, &txn), "origin txn");
    if (rc == 0)
        rc = s_translate (mdb_dbi_open (txn, "origin", MDB_CREATE, &self->origin),
                          "open origin");
    if (rc == 0) {
        rc = s_translate (mdb_txn_commit (txn), "origin commit");
        txn = NULL;
    }
    if (txn)
        mdb_txn_abort (txn);
    if (rc == 0)
        self->rebuild = true;
    return rc;
}

void
pb_worker_store_skip (pb_worker_store_t *self, uint64_t cause, const char *reason)
{
    assert (self && reason);
    char seq [24];
    snprintf (seq, sizeof seq, "%" PRIu64, cause);
    zhashx_update (self->skips, seq, (void *) reason);
}

bool
pb_worker_store_note_quarantine (pb_worker_store_t *self, const pb_envelope_t *env)
{
    assert (self && env);
    const char *name = self->rules->name;
    size_t name_len = strlen (name);
    char qtype [160], id [160], reason [S_REASON_MAX + 1];
    snprintf (qtype, sizeof qtype, "notify.%s.quarantined", name);
    if (!pb_apply_type_is (env, qtype) || !env->has_cause || env->src_len != name_len
    ||  memcmp (env->src, name, name_len) || env->id_len >= sizeof id)
        return false;
    memcpy (id, env->id, env->id_len);
    id [env->id_len] = 0;
    uint8_t key [PB_WORKER_KEY_SIZE];
    if (!pb_worker_store_key_of (self, id, key))
        return false;
    uint32_t index = (uint32_t) key [8] << 24 | (uint32_t) key [9] << 16
                   | (uint32_t) key [10] << 8 | key [11];
    //  The reason as the live worker kept it: at most S_REASON_MAX bytes
    if (index >= S_NAK_INDEX
    ||  !pb_apply_str (pb_msgpack_get (env->data, "reason"), reason, sizeof reason))
        return false;
    pb_worker_store_skip (self, env->cause, reason);
    return true;
}

size_t
pb_worker_store_skips (pb_worker_store_t *self)
{
    assert (self);
    return zhashx_size (self->skips);
}

//  --------------------------------------------------------------------------
//  Canonical dump

static void
s_dump_bytes (FILE *out, const uint8_t *p, size_t size, bool as_key)
{
    bool printable = as_key && size > 0;
    for (size_t i = 0; i < size && printable; i++)
        printable = p [i] > 0x20 && p [i] < 0x7f;
    if (printable)
        fwrite (p, 1, size, out);
    else
        for (size_t i = 0; i < size; i++)
            fprintf (out, "%02x", p [i]);
}

//  Print one database in key order; an absent database is empty
static int
s_dump_db (MDB_txn *txn, const char *name, FILE *out)
{
    MDB_dbi dbi;
    int mrc = mdb_dbi_open (txn, name, 0, &dbi);
    if (mrc == MDB_NOTFOUND)
        return 0;
    MDB_cursor *cursor = NULL;
    int rc = s_translate (mrc, "dump dbi");
    if (rc == 0)
        rc = s_translate (mdb_cursor_open (txn, dbi, &cursor), "dump cursor");
    if (rc)
        return rc;
    MDB_val k, v;
    mrc = mdb_cursor_get (cursor, &k, &v, MDB_FIRST);
    while (mrc == 0) {
        fprintf (out, "%s ", name);
        s_dump_bytes (out, k.mv_data, k.mv_size, true);
        fprintf (out, " ");
        s_dump_bytes (out, v.mv_data, v.mv_size, false);
        fprintf (out, "\n");
        mrc = mdb_cursor_get (cursor, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close (cursor);
    return mrc == MDB_NOTFOUND? 0: s_translate (mrc, "dump next");
}

//  Open the store in 'data_dir' read-only, for the dumps. Returns 0 and
//  sets *env_p and *txn_p, or PB_WORKER_STORE (logged).
static int
s_open_read (const char *data_dir, MDB_env **env_p, MDB_txn **txn_p)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    char path [PB_CONFIG_STR_MAX + 16];
    snprintf (path, sizeof path, "%s/data.mdb", data_dir);
    if (!zsys_file_exists (path)) {
        zsys_error ("pb_worker: no store at %s", data_dir);
        return PB_WORKER_STORE;
    }
    int rc = s_translate (mdb_env_create (&env), "dump env");
    if (rc == 0)
        rc = s_translate (mdb_env_set_maxdbs (env, 5), "dump maxdbs");
    if (rc == 0)
        rc = s_translate (mdb_env_open (env, data_dir, MDB_RDONLY, 0600), "dump open");
    if (rc == 0)
        rc = s_translate (mdb_txn_begin (env, NULL, MDB_RDONLY, &txn), "dump txn");
    if (rc) {
        if (env)
            mdb_env_close (env);
        return PB_WORKER_STORE;
    }
    *env_p = env;
    *txn_p = txn;
    return 0;
}

int
pb_worker_dump_origin (const char *data_dir, FILE *out)
{
    assert (data_dir && out);
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    int rc = s_open_read (data_dir, &env, &txn);
    if (rc)
        return rc;
    MDB_dbi dbi;
    MDB_cursor *cursor = NULL;
    int mrc = mdb_dbi_open (txn, "origin", 0, &dbi);
    if (mrc == 0)
        mrc = mdb_cursor_open (txn, dbi, &cursor);
    MDB_val k, v;
    if (mrc == 0)
        mrc = mdb_cursor_get (cursor, &k, &v, MDB_FIRST);
    while (mrc == 0) {
        const uint8_t *p = (const uint8_t *) k.mv_data;
        if (k.mv_size >= 2 && v.mv_size == 8) {
            fprintf (out, "%s ", p [0] == 's'? "state": "quarantine");
            s_dump_bytes (out, p + 1, k.mv_size - 1, true);
            fprintf (out, " %" PRIu64 "\n", pb_be64_get (v.mv_data));
        }
        mrc = mdb_cursor_get (cursor, &k, &v, MDB_NEXT);
    }
    if (cursor)
        mdb_cursor_close (cursor);
    rc = mrc == MDB_NOTFOUND? 0: s_translate (mrc, "origin read");
    mdb_txn_abort (txn);
    mdb_env_close (env);
    return rc? PB_WORKER_STORE: 0;
}

int
pb_worker_forget_origin (const char *data_dir)
{
    assert (data_dir);
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    int rc = s_translate (mdb_env_create (&env), "forget env");
    if (rc == 0)
        rc = s_translate (mdb_env_set_maxdbs (env, 5), "forget maxdbs");
    if (rc == 0)
        rc = s_translate (mdb_env_open (env, data_dir, 0, 0600), "forget open");
    if (rc == 0)
        rc = s_translate (mdb_txn_begin (env, NULL, 0, &txn), "forget txn");
    if (rc == 0) {
        int mrc = mdb_dbi_open (txn, "origin", 0, &dbi);
        if (mrc == 0)
            mrc = mdb_drop (txn, dbi, 1);
        rc = mrc == MDB_NOTFOUND? 0: s_translate (mrc, "forget drop");
    }
    if (rc == 0) {
        rc = s_translate (mdb_txn_commit (txn), "forget commit");
        txn = NULL;
    }
    if (txn)
        mdb_txn_abort (txn);
    if (env)
        mdb_env_close (env);
    return rc? PB_WORKER_STORE: 0;
}

int
pb_worker_pending (const char *data_dir, size_t *count_p)
{
    assert (data_dir && count_p);
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    int rc = s_open_read (data_dir, &env, &txn);
    if (rc)
        return rc;
    MDB_dbi dbi;
    MDB_stat stat;
    *count_p = 0;
    int mrc = mdb_dbi_open (txn, "outbox", 0, &dbi);
    if (mrc == 0 && (mrc = mdb_stat (txn, dbi, &stat)) == 0)
        *count_p = stat.ms_entries;
    if (mrc == MDB_NOTFOUND)
        mrc = 0;
    rc = s_translate (mrc, "outbox stat");
    mdb_txn_abort (txn);
    mdb_env_close (env);
    return rc? PB_WORKER_STORE: 0;
}

//  Read-only, so that a dump never creates or changes a store (an operator
//  may point it at the wrong directory, or at a live worker's store)
int
pb_worker_dump (const char *data_dir, FILE *out)
{
    assert (data_dir && out);
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    int rc = s_open_read (data_dir, &env, &txn);
    if (rc == 0)
        rc = s_dump_db (txn, "meta", out);
    if (rc == 0)
        rc = s_dump_db (txn, "state", out);
    if (rc == 0)
        rc = s_dump_db (txn, "quarantine", out);
    if (txn)
        mdb_txn_abort (txn);
    if (env)
        mdb_env_close (env);
    return rc? PB_WORKER_STORE: 0;
}

//  --------------------------------------------------------------------------

bool
pb_apply_type_is (const pb_envelope_t *event, const char *type)
{
    assert (event && type);
    return event->type_len == strlen (type)
        && memcmp (event->type, type, event->type_len) == 0;
}

//  --------------------------------------------------------------------------
//  Reading logged events

//  True if the rules have no rule for this type: the event is not decoded.
//  The runtime's own types are: sys.tick, ops.redrive, and this worker's
//  notify.<name>.quarantined (a refused notification's record, in the log)
static bool
s_skips (const pb_rules_t *rules, const char *type, size_t type_len)
{
    size_t name_len = strlen (rules->name);
    if (!rules->types || !type
    ||  (type_len == 8 && memcmp (type, "sys.tick", 8) == 0)
    ||  (type_len == 11 && memcmp (type, "ops.redrive", 11) == 0)
    ||  (type_len == name_len + 19 && memcmp (type, "notify.", 7) == 0
    &&   memcmp (type + 7, rules->name, name_len) == 0
    &&   memcmp (type + 7 + name_len, ".quarantined", 12) == 0))
        return false;
    for (const char *const *t = rules->types; *t; t++)
        if (strlen (*t) == type_len && memcmp (*t, type, type_len) == 0)
            return false;
    return true;
}

//  pb_envelope_peek_unless's stop: a type with a rule is decoded anyway
static bool
s_decodes (const char *type, size_t type_len, void *arg)
{
    return !s_skips ((const pb_rules_t *) arg, type, type_len);
}

uint64_t
pb_worker_event_read (pb_worker_event_t *event, const pb_rules_t *rules,
                      const pb_limits_t *limits, const char *type, size_t type_len,
                      const void *bytes, size_t size)
{
    assert (event && rules && limits);
    memset (event, 0, sizeof *event);
    uint64_t seq = 0;
    const char *peek_type = NULL;
    size_t peek_type_len = 0;
    //  Most of the log is not for this worker: peek, do not decode. With
    //  the fanout's type frame, an event for the rules is decoded without
    //  a peek first (the decoder checks the frame against the envelope);
    //  a skipped one must carry that same type. Without one (replay), the
    //  short peek at the type decides, and only what is skipped is walked
    //  on to its seq (a stored envelope ends with seq and ts).
    bool peeked = false;
    if (type)
        peeked = s_skips (rules, type, type_len)
              && pb_envelope_peek_seq (bytes, size, &seq, &peek_type, &peek_type_len);
    else
        peeked = pb_envelope_peek_unless (bytes, size, s_decodes, (void *) rules, &seq,
                                          &peek_type, &peek_type_len) == 0;
    if (peeked && peek_type
    &&  (!type || (type_len == peek_type_len && memcmp (type, peek_type, type_len) == 0))
    &&  s_skips (rules, peek_type, peek_type_len)) {
        event->skipped = true;
        event->seq = seq;
        return seq;
    }
    char error [200] = "";
    if (pb_envelope_decode (type, type_len, bytes, size, PB_ENVELOPE_STORED, limits,
                            &event->env, error, sizeof error) == PB_NAK_NONE) {
        event->seq = event->env->seq;
        return event->seq;
    }
    //  Undecodable (a newer catalogue, a bug): quarantined under the seq
    //  the bounded peek found, if any
    if (!peeked)
        peeked = pb_envelope_peek_seq (bytes, size, &seq, &peek_type, &peek_type_len);
    event->seq = peeked? seq: 0;
    const char *name = type? type: peek_type;
    size_t name_len = type? type_len: peek_type_len;
    snprintf (event->type, sizeof event->type, "%.*s",
              (int) (name_len > 128? 128: name_len), name? name: "");
    if (!event->type [0])
        strcpy (event->type, "?");
    snprintf (event->error, sizeof event->error, "undecodable: %s", error);
    return event->seq;
}

//  --------------------------------------------------------------------------

const char *
pb_apply_join (char *buf, size_t size, ...)
{
    assert (buf && size > 0);
    va_list parts;
    va_start (parts, size);
    size_t len = 0;
    const char *part;
    while ((part = va_arg (parts, const char *)) != NULL) {
        size_t part_len = strlen (part);
        if (part_len > size - 1 - len)
            part_len = size - 1 - len;
        memcpy (buf + len, part, part_len);
        len += part_len;
    }
    va_end (parts);
    buf [len] = 0;
    return buf;
}

//  --------------------------------------------------------------------------

const char *
pb_apply_digits (char buf [21], int64_t value)
{
    uint64_t v = value < 0? 0: (uint64_t) value;
    for (int i = 19; i >= 0; i--) {
        buf [i] = (char) ('0' + v % 10);
        v /= 10;
    }
    buf [20] = 0;
    return buf;
}

//  --------------------------------------------------------------------------

void
pb_apply_pack_str (msgpack_packer *pk, const char *text)
{
    assert (pk && text);
    size_t len = strlen (text);
    msgpack_pack_str (pk, len);
    msgpack_pack_str_body (pk, text, len);
}

//  --------------------------------------------------------------------------
//  Statistics and gauges (pbctl status, /metrics)

static int
s_stats (MDB_env *env, MDB_txn *txn, const char *dir, pb_worker_stats_t *stats)
{
    memset (stats, 0, sizeof *stats);
    MDB_envinfo info;
    MDB_stat env_stat;
    mdb_env_info (env, &info);
    mdb_env_stat (env, &env_stat);
    stats->map_bytes = info.me_mapsize;
    stats->used_bytes = (uint64_t) (info.me_last_pgno + 1) * env_stat.ms_psize;
    char path [PB_CONFIG_STR_MAX + 16];
    snprintf (path, sizeof path, "%s/data.mdb", dir);
    ssize_t file_size = zsys_file_size (path);
    stats->file_bytes = file_size > 0? (uint64_t) file_size: 0;
    const char *names [] = { "state", "quarantine", "outbox", "meta" };
    uint64_t *counts [] = { &stats->state_keys, &stats->quarantined, &stats->outbox, NULL };
    for (size_t i = 0; i < 4; i++) {
        MDB_dbi dbi;
        int mrc = mdb_dbi_open (txn, names [i], 0, &dbi);
        if (mrc == MDB_NOTFOUND)
            continue;                   //  An absent database is empty
        int rc = s_translate (mrc, "stats dbi");
        if (rc)
            return rc;
        MDB_stat st;
        if (counts [i] && mdb_stat (txn, dbi, &st) == 0)
            *counts [i] = st.ms_entries;
        MDB_val key = { 11, "applied_seq" }, val;
        if (!counts [i] && mdb_get (txn, dbi, &key, &val) == 0 && val.mv_size == 8)
            stats->applied_seq = pb_be64_get (val.mv_data);
        key = (MDB_val) { 3, "now" };
        if (!counts [i] && mdb_get (txn, dbi, &key, &val) == 0 && val.mv_size == 8)
            stats->now = (int64_t) pb_be64_get (val.mv_data);
    }
    return 0;
}

int
pb_worker_store_stats (pb_worker_store_t *self, pb_worker_stats_t *stats)
{
    assert (self && stats);
    MDB_txn *txn = NULL;
    int rc = s_translate (mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn), "stats txn");
    if (rc == 0) {
        const char *dir = NULL;
        mdb_env_get_path (self->env, &dir);
        rc = s_stats (self->env, txn, dir? dir: ".", stats);
        mdb_txn_abort (txn);
    }
    return rc;
}

//  Read-only, as pb_worker_dump: a status never creates or changes a store
int
pb_worker_stats (const char *data_dir, pb_worker_stats_t *stats)
{
    assert (data_dir && stats);
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    int rc = s_open_read (data_dir, &env, &txn);
    if (rc == 0) {
        rc = s_stats (env, txn, data_dir, stats);
        mdb_txn_abort (txn);
        mdb_env_close (env);
    }
    return rc? PB_WORKER_STORE: 0;
}

void
pb_apply_gauge (pb_apply_t *ctx, const char *name, const char *help, double value)
{
    assert (ctx && name && help);
    if (ctx->gauge_fn)
        ctx->gauge_fn (ctx->gauge_arg, name, help, value);
}

int
pb_worker_store_gauges (pb_worker_store_t *self, pb_worker_gauge_fn *fn, void *arg)
{
    assert (self && fn);
    if (!self->rules->gauges)
        return 0;
    MDB_txn *txn = NULL;
    int rc = s_translate (mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn), "gauges txn");
    if (rc)
        return rc;
    pb_apply_t ctx;
    s_ctx_init (&ctx, self, txn, self->applied_seq, self->now);
    ctx.gauge_fn = fn;
    ctx.gauge_arg = arg;
    rc = self->rules->gauges (&ctx);
    if (rc == 0)
        rc = ctx.store_rc;
    s_ctx_fini (&ctx);
    mdb_txn_abort (txn);
    return rc;
}
