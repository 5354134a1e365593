/*  =========================================================================
    pb_log - the journal's event log: one LMDB environment, one writer

    Durability rests on LMDB's default commit: data pages are written and
    synced, then the meta page is written and synced. A batch is either
    wholly in the log after pb_log_commit returns 0, or not at all.
    =========================================================================
*/
#include "pb_log.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "pb_be64.h"
#include "pb_chain.h"
#include "pb_crash.h"
#include "pb_envelope.h"
#include "pb_prealloc.h"
#include "pb_private.h"

struct _pb_log_t {
    char *path;                 //  data directory (owned)
    MDB_env *env;               //  the environment (owned)
    MDB_dbi log;                //  seq -> [type len][type][envelope][chain]
    MDB_dbi index;              //  (src, id) -> [seq][digest]
    MDB_dbi meta;               //  "now" -> log time
    MDB_txn *write;             //  the batch in hand, or NULL (owned)
    MDB_cursor *appender;       //  on log in the batch: stays at the end (owned)
    MDB_cursor *indexer;        //  on index in the batch (owned)
    MDB_txn *read;              //  reset read transaction, reused (owned)
    _Atomic uint64_t head;      //  last committed seq (read by a reader
                                //  thread while the writer commits)
    pthread_mutex_t map_lock;   //  held by pb_log_read and pb_log_grow:
                                //  the map never moves under a reader
    uint64_t next;              //  seq of the next append in the batch
    int64_t now;                //  committed log time
    int64_t pending_now;        //  log time the batch will commit
    uint64_t map_size;          //  current map size
    uint64_t map_max;           //  pb_log_grow's bound
    uint64_t nospc_count;       //  failed commits since the last success
    pb_prealloc_t prealloc;     //  the data file written ahead
    uint64_t batch_bytes;       //  keys and values put by the batch in hand
    uint8_t chain [PB_CHAIN_SIZE];          //  h(head), committed
    uint8_t pending_chain [PB_CHAIN_SIZE];  //  h(next - 1) in the batch
};

static void
    s_cursors_close (pb_log_t *self);

//  Bytes put by a batch after which the data file is written ahead
#define S_PREALLOC_BATCH (64 * 1024)

#define S_INDEX_KEY_MAX (1 + 64 + 128)
#define S_INDEX_VALUE_SIZE (8 + PB_LOG_DIGEST_SIZE)

//  The only place where MDB and errno codes become pb_log codes, and so
//  the only place a log failure is logged. A full map is expected (the
//  caller grows it) and a full disk is logged once per series.
//  The log's own layout checks failed (each logs what it found): a code
//  beside LMDB's, so that no LMDB text is printed for it
#define S_LAYOUT (MDB_LAST_ERRCODE + 100)

static int
s_translate (pb_log_t *self, int mdb_rc, const char *what)
{
    if (mdb_rc == 0)
        return 0;
    if (mdb_rc == S_LAYOUT)
        return PB_LOG_CORRUPT;
    if (mdb_rc == MDB_NOTFOUND)
        return PB_LOG_NOTFOUND;
    if (mdb_rc == MDB_KEYEXIST)
        return PB_LOG_EXISTS;
    if (mdb_rc == MDB_MAP_FULL)
        return PB_LOG_FULL;
    if (mdb_rc == ENOSPC) {
        if (self->nospc_count++ == 0)
            zsys_error ("pb_log: %s failed path=%s error=%s", what, self->path,
                        mdb_strerror (mdb_rc));
        return PB_LOG_NOSPC;
    }
    zsys_error ("pb_log: %s failed path=%s error=%s", what, self->path,
                mdb_strerror (mdb_rc));
    if (mdb_rc == MDB_CORRUPTED || mdb_rc == MDB_PAGE_NOTFOUND
    ||  mdb_rc == MDB_PANIC || mdb_rc == MDB_INVALID
    ||  mdb_rc == MDB_VERSION_MISMATCH)
        return PB_LOG_CORRUPT;
    return PB_LOG_IO;
}

//  The chain's anchor must be of this rule and name the last record and
//  its hash: a log written before the chain existed, under another rule,
//  or whose end was cut off, is not appended to (pbctl verify says more)
static int
s_check_anchor (pb_log_t *self, MDB_txn *txn)
{
    MDB_val key = { strlen (PB_CHAIN_ANCHOR_KEY), PB_CHAIN_ANCHOR_KEY }, value;
    int rc = mdb_get (txn, self->meta, &key, &value);
    if (rc == MDB_NOTFOUND) {
        zsys_error ("pb_log: the log has no hash chain anchor (written before "
                    "the chain existed, or altered) path=%s", self->path);
        return S_LAYOUT;
    }
    unsigned rule = 0;
    uint64_t head = 0;
    uint8_t hash [PB_CHAIN_SIZE];
    if (rc == 0 && !pb_chain_anchor_get (value.mv_data, value.mv_size, &rule, &head, hash)) {
        zsys_error ("pb_log: the hash chain anchor is malformed path=%s (run pbctl verify)",
                    self->path);
        rc = S_LAYOUT;
    }
    else
    if (rc == 0 && rule != PB_CHAIN_RULE) {
        zsys_error ("pb_log: the log's hash chain follows rule %u, this journal writes "
                    "rule %d: move its events with the pbctl export of the partnerbus "
                    "that wrote it, then pbctl import (README, Integrity) path=%s",
                    rule, PB_CHAIN_RULE, self->path);
        rc = S_LAYOUT;
    }
    else
    if (rc == 0 && (head != self->head || memcmp (hash, self->chain, PB_CHAIN_SIZE) != 0)) {
        zsys_error ("pb_log: the last record does not match the hash chain anchor "
                    "head=%" PRIu64 " path=%s (run pbctl verify)", self->head, self->path);
        rc = S_LAYOUT;
    }
    return rc;
}

//  Read head, log time and h(head) from a fresh write or read transaction
static int
s_load_state (pb_log_t *self, MDB_txn *txn)
{
    MDB_cursor *cursor = NULL;
    MDB_val key, value;
    int rc = mdb_cursor_open (txn, self->log, &cursor);
    if (rc == 0)
        rc = mdb_cursor_get (cursor, &key, &value, MDB_LAST);
    if (rc == 0 && key.mv_size == 8 && value.mv_size >= 2 + PB_CHAIN_SIZE) {
        self->head = pb_be64_get ((const uint8_t *) key.mv_data);
        memcpy (self->chain, (const uint8_t *) value.mv_data + value.mv_size
                             - PB_CHAIN_SIZE, PB_CHAIN_SIZE);
    }
    else
    if (rc == 0) {
        zsys_error ("pb_log: the log's last record is not laid out as this journal "
                    "writes one (key of %zu bytes, record of %zu) path=%s (run pbctl "
                    "verify)", key.mv_size, value.mv_size, self->path);
        rc = S_LAYOUT;
    }
    else
    if (rc == MDB_NOTFOUND) {
        self->head = 0;
        rc = 0;
    }
    if (cursor)
        mdb_cursor_close (cursor);
    if (rc == 0) {
        key.mv_data = "now";
        key.mv_size = 3;
        rc = mdb_get (txn, self->meta, &key, &value);
        if (rc == 0 && value.mv_size == 8)
            self->now = (int64_t) pb_be64_get ((const uint8_t *) value.mv_data);
        else
        if (rc == 0) {
            zsys_error ("pb_log: the log time (meta \"now\") is %zu bytes, not 8 "
                        "path=%s", value.mv_size, self->path);
            rc = S_LAYOUT;
        }
        else
        if (rc == MDB_NOTFOUND) {
            self->now = 0;
            rc = 0;
        }
    }
    if (rc == 0 && self->head > 0)
        rc = s_check_anchor (self, txn);
    self->next = self->head + 1;
    memcpy (self->pending_chain, self->chain, PB_CHAIN_SIZE);
    self->pending_now = self->now;
    return rc;
}

//  Open the environment and its databases; returns an MDB or errno code
static int
s_open_env (pb_log_t *self)
{
    MDB_txn *txn = NULL;
    int rc = mdb_env_create (&self->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs (self->env, 4);
    if (rc == 0)
        rc = mdb_env_set_mapsize (self->env, (size_t) self->map_size);
    //  MDB_NOTLS: the one reused read transaction is not tied to a thread
    //  slot, so it can sit reset while the writer works. No NOSYNC flags.
    unsigned int flags = MDB_NOTLS;
#if defined (PB_CRASHPOINTS)
    //  Test-only, in the build of crash points alone: the negative control
    //  of the power-cut test (tests/powercut/) turns syncing off, and that
    //  test must then see ACKed events lost, or it proves nothing
    if (getenv ("PB_TEST_LOG_NOSYNC")) {
        zsys_warning ("pb_log: PB_TEST_LOG_NOSYNC set: MDB_NOSYNC, an ACK is "
                      "NOT durable (test-only negative control) path=%s",
                      self->path);
        flags |= MDB_NOSYNC;
    }
#endif
    if (rc == 0)
        rc = mdb_env_open (self->env, self->path, flags, 0600);
    int dead = 0;
    if (rc == 0)
        rc = mdb_reader_check (self->env, &dead);
    if (rc == 0)
        rc = mdb_txn_begin (self->env, NULL, 0, &txn);
    if (rc == 0)
        rc = mdb_dbi_open (txn, "log", MDB_CREATE, &self->log);
    if (rc == 0)
        rc = mdb_dbi_open (txn, "index", MDB_CREATE, &self->index);
    if (rc == 0)
        rc = mdb_dbi_open (txn, "meta", MDB_CREATE, &self->meta);
    if (rc == 0)
        rc = s_load_state (self, txn);
    if (rc == 0) {
        rc = mdb_txn_commit (txn);
        txn = NULL;
    }
    if (txn)
        mdb_txn_abort (txn);
    MDB_envinfo info;
    if (rc == 0 && mdb_env_info (self->env, &info) == 0)
        self->map_size = info.me_mapsize;
    if (dead > 0)
        zsys_notice ("pb_log: cleared stale readers count=%d", dead);
    return rc;
}

//  --------------------------------------------------------------------------

int
pb_log_open (const char *path, uint64_t map_size, uint64_t map_max,
             pb_log_t **log_p)
{
    assert (path);
    assert (log_p);
    if (sodium_init () < 0)
        return PB_LOG_IO;
    pb_log_t *self = (pb_log_t *) zmalloc (sizeof (pb_log_t));
    assert (self);
    self->path = strdup (path);
    assert (self->path);
    self->map_size = map_size;
    self->map_max = map_max < map_size? map_size: map_max;
    pthread_mutex_init (&self->map_lock, NULL);
    int rc = 0;
    if (pb_private_dir (path))
        rc = PB_LOG_IO;                 //  0700; logged there
    if (rc == 0)
        rc = s_translate (self, s_open_env (self), "open");
    if (rc == PB_LOG_NOTFOUND || rc == PB_LOG_FULL || rc == PB_LOG_NOSPC) {
        zsys_error ("pb_log: open failed path=%s error=%s", path, pb_log_strerror (rc));
        rc = PB_LOG_IO;
    }
    if (rc == 0)
        *log_p = self;
    else
        pb_log_destroy (&self);
    return rc;
}

//  --------------------------------------------------------------------------

void
pb_log_destroy (pb_log_t **self_p)
{
    assert (self_p);
    pb_log_t *self = *self_p;
    if (self) {
        s_cursors_close (self);
        if (self->write)
            mdb_txn_abort (self->write);
        if (self->read)
            mdb_txn_abort (self->read);
        if (self->env)
            mdb_env_close (self->env);
        pthread_mutex_destroy (&self->map_lock);
        free (self->path);
        free (self);
        *self_p = NULL;
    }
}

//  --------------------------------------------------------------------------

uint64_t
pb_log_head (pb_log_t *self)
{
    assert (self);
    return self->head;
}

int64_t
pb_log_now (pb_log_t *self)
{
    assert (self);
    return self->now;
}

uint64_t
pb_log_used_bytes (pb_log_t *self)
{
    assert (self);
    return pb_prealloc_used (self->env);
}

uint64_t
pb_log_map_size (pb_log_t *self)
{
    assert (self);
    return self->map_size;
}

uint64_t
pb_log_next_seq (pb_log_t *self)
{
    assert (self);
    assert (self->write);
    return self->next;
}

//  --------------------------------------------------------------------------

int
pb_log_begin (pb_log_t *self)
{
    assert (self);
    assert (!self->write);
    self->next = self->head + 1;
    self->pending_now = self->now;
    self->batch_bytes = 0;
    memcpy (self->pending_chain, self->chain, PB_CHAIN_SIZE);
    //  One cursor per database for the whole batch: an append through a
    //  cursor already at the log's end skips the search from the root
    //  that every mdb_put makes, and an index put through a cursor
    //  searches its current leaf first
    int rc = mdb_txn_begin (self->env, NULL, 0, &self->write);
    if (rc == 0)
        rc = mdb_cursor_open (self->write, self->log, &self->appender);
    if (rc == 0)
        rc = mdb_cursor_open (self->write, self->index, &self->indexer);
    if (rc && self->write) {
        mdb_txn_abort (self->write);    //  Closes a cursor it has
        self->write = NULL;
    }
    if (rc) {
        self->appender = NULL;
        self->indexer = NULL;
    }
    return s_translate (self, rc, "begin");
}

//  The batch's cursors go before its transaction ends
static void
s_cursors_close (pb_log_t *self)
{
    if (self->appender)
        mdb_cursor_close (self->appender);
    if (self->indexer)
        mdb_cursor_close (self->indexer);
    self->appender = NULL;
    self->indexer = NULL;
}

//  --------------------------------------------------------------------------

static int
s_index_key (const pb_log_key_t *key, uint8_t *bytes, size_t *size_p)
{
    if (key->src_len == 0 || key->src_len > 64 || key->id_len == 0
    ||  key->id_len > 128)
        return PB_EINVAL;
    bytes [0] = (uint8_t) key->src_len;
    memcpy (bytes + 1, key->src, key->src_len);
    memcpy (bytes + 1 + key->src_len, key->id, key->id_len);
    *size_p = 1 + key->src_len + key->id_len;
    return 0;
}

int
pb_log_lookup (pb_log_t *self, const pb_log_key_t *key, uint64_t *seq_p,
               uint8_t digest [PB_LOG_DIGEST_SIZE])
{
    assert (self);
    assert (self->write);
    assert (key && seq_p && digest);
    uint8_t key_bytes [S_INDEX_KEY_MAX];
    MDB_val mkey, value;
    int rc = s_index_key (key, key_bytes, &mkey.mv_size);
    if (rc)
        return rc;
    mkey.mv_data = key_bytes;
    rc = mdb_get (self->write, self->index, &mkey, &value);
    if (rc == 0 && value.mv_size != S_INDEX_VALUE_SIZE)
        rc = MDB_CORRUPTED;
    if (rc == 0) {
        *seq_p = pb_be64_get ((const uint8_t *) value.mv_data);
        memcpy (digest, (const uint8_t *) value.mv_data + 8, PB_LOG_DIGEST_SIZE);
    }
    return s_translate (self, rc, "lookup");
}

//  --------------------------------------------------------------------------

int
pb_log_append (pb_log_t *self, const pb_log_key_t *key,
               const uint8_t digest [PB_LOG_DIGEST_SIZE],
               const char *type, size_t type_len,
               const void *bytes, size_t size, const pb_log_ahead_t *ahead,
               uint64_t *seq_p, uint8_t found [PB_LOG_DIGEST_SIZE])
{
    assert (self);
    assert (self->write);
    assert (key && digest && type && bytes && seq_p && found);
    uint8_t key_bytes [S_INDEX_KEY_MAX];
    MDB_val ikey;
    if (type_len == 0 || type_len > 255 || s_index_key (key, key_bytes, &ikey.mv_size))
        return PB_EINVAL;
    //  The hash made ahead if it follows this very log's previous hash at
    //  this seq; else the record is split now, before anything is written
    bool use_ahead = ahead && ahead->seq == self->next
                  && memcmp (ahead->prev, self->pending_chain, PB_CHAIN_SIZE) == 0;
    size_t header = 0, pairs = 0;
    if (!use_ahead && !pb_envelope_split_stored (bytes, size, &header, &pairs))
        return PB_EINVAL;
    ikey.mv_data = key_bytes;
    uint8_t seq_bytes [8];
    pb_be64_put (seq_bytes, self->next);

    //  The index first, with NOOVERWRITE: LMDB hands back the existing
    //  value when the key is there, so the idempotency check costs no
    //  second search
    uint8_t index_value [S_INDEX_VALUE_SIZE];
    memcpy (index_value, seq_bytes, 8);
    memcpy (index_value + 8, digest, PB_LOG_DIGEST_SIZE);
    MDB_val ivalue = { sizeof index_value, index_value };
    int rc = mdb_cursor_put (self->indexer, &ikey, &ivalue, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST) {
        if (ivalue.mv_size != S_INDEX_VALUE_SIZE)
            return s_translate (self, MDB_CORRUPTED, "append");
        *seq_p = pb_be64_get ((const uint8_t *) ivalue.mv_data);
        memcpy (found, (const uint8_t *) ivalue.mv_data + 8, PB_LOG_DIGEST_SIZE);
        return PB_LOG_EXISTS;
    }
    //  MDB_APPEND: seqs only grow, so LMDB fills pages left to right;
    //  MDB_RESERVE: write the value in place, without a staging copy
    MDB_val lkey = { 8, seq_bytes };
    size_t record_size = 1 + type_len + size;
    MDB_val lvalue = { record_size + PB_CHAIN_SIZE, NULL };
    if (rc == 0)
        rc = mdb_cursor_put (self->appender, &lkey, &lvalue, MDB_APPEND | MDB_RESERVE);
    if (rc == 0) {
        uint8_t *value = (uint8_t *) lvalue.mv_data;
        value [0] = (uint8_t) type_len;
        memcpy (value + 1, type, type_len);
        memcpy (value + 1 + type_len, bytes, size);
        //  The chain: made ahead, or hashed from the bytes just written,
        //  while they are in cache
        uint8_t *chain = value + record_size;
        if (use_ahead)
            memcpy (chain, ahead->chain, PB_CHAIN_SIZE);
        else {
            const uint8_t *stored = value + 1 + type_len;
            pb_chain_pairs_hash (stored + header, pairs, chain);
            pb_chain_next (self->pending_chain, self->next, type, type_len, stored,
                           size, pairs, chain, chain);
        }
        memcpy (self->pending_chain, value + record_size, PB_CHAIN_SIZE);
        self->next++;
        self->batch_bytes += 8 + lvalue.mv_size + ikey.mv_size + S_INDEX_VALUE_SIZE;
    }
    return s_translate (self, rc, "append");
}

//  --------------------------------------------------------------------------

void
pb_log_hash_ahead (uint64_t seq, const uint8_t prev [PB_CHAIN_SIZE],
                   const char *type, size_t type_len,
                   const void *bytes, size_t size, size_t pairs_size,
                   const uint8_t pairs_hash [PB_CHAIN_SIZE], pb_log_ahead_t *ahead)
{
    assert (prev && type && type_len <= 255 && bytes && ahead);
    ahead->seq = seq;
    memcpy (ahead->prev, prev, PB_CHAIN_SIZE);
    pb_chain_next (prev, seq, type, type_len, bytes, size, pairs_size, pairs_hash,
                   ahead->chain);
}

void
pb_log_chain (pb_log_t *self, uint8_t chain [PB_CHAIN_SIZE])
{
    assert (self);
    assert (!self->write);
    memcpy (chain, self->chain, PB_CHAIN_SIZE);
}

int
pb_log_set_now (pb_log_t *self, int64_t now)
{
    assert (self);
    assert (self->write);
    uint8_t now_bytes [8];
    pb_be64_put (now_bytes, (uint64_t) now);
    MDB_val key = { 3, "now" };
    MDB_val value = { 8, now_bytes };
    int rc = mdb_put (self->write, self->meta, &key, &value, 0);
    if (rc == 0)
        self->pending_now = now;
    return s_translate (self, rc, "set now");
}

//  --------------------------------------------------------------------------

//  LMDB reports a short write (the filesystem filled up in the middle of
//  writing the batch's pages) as EIO. The meta page is written only after
//  every data page, so such a batch is simply not committed, and the
//  environment stays usable: treat it as a full disk when the disk is
//  indeed nearly full (less free space than a few times what the batch
//  writes, pages and tree overhead included).
static bool
s_disk_full (pb_log_t *self)
{
    struct statvfs fs;
    if (statvfs (self->path, &fs))
        return false;
    uint64_t available = (uint64_t) fs.f_bavail * fs.f_frsize;
    return available < 4 * self->batch_bytes + 1024 * 1024;
}

//  Write ahead of the last page, after a commit. A full disk is no
//  failure (pb_prealloc logs it, tries again after a pause, and never
//  takes the last of the disk: LMDB meets it as it would without). Any
//  other error is the log's disk failing: PB_LOG_IO, as a failed commit
//  (the batch is durable, but nothing more is answered).
static int
s_prealloc (pb_log_t *self)
{
    int rc = pb_prealloc_run (&self->prealloc, self->env);
    return rc && !pb_prealloc_full (rc)? s_translate (self, rc, "write ahead"): 0;
}

int
pb_log_set_prealloc (pb_log_t *self, uint64_t ahead)
{
    assert (self);
    assert (!self->write);
    pb_prealloc_init (&self->prealloc, "pb_log", ahead);
    return s_prealloc (self);
}

int
pb_log_commit (pb_log_t *self)
{
    assert (self);
    assert (self->write);
    PB_CRASH_POINT ("before_commit");
    s_cursors_close (self);
    uint64_t batch_bytes = self->batch_bytes;
    //  The anchor, once per batch, in the batch's own transaction
    int rc = 0;
    if (self->next - 1 > self->head) {
        uint8_t anchor [PB_CHAIN_ANCHOR_SIZE];
        pb_chain_anchor_put (self->next - 1, self->pending_chain, anchor);
        MDB_val key = { strlen (PB_CHAIN_ANCHOR_KEY), PB_CHAIN_ANCHOR_KEY };
        MDB_val value = { sizeof anchor, anchor };
        rc = mdb_put (self->write, self->meta, &key, &value, 0);
    }
    if (rc == 0)
        rc = mdb_txn_commit (self->write);
    else
        mdb_txn_abort (self->write);
    self->write = NULL;                 //  Commit frees the txn even on failure
    if (rc == 0) {
        self->head = self->next - 1;
        self->now = self->pending_now;
        memcpy (self->chain, self->pending_chain, PB_CHAIN_SIZE);
        if (self->nospc_count)
            zsys_notice ("pb_log: commit succeeds again after failures=%" PRIu64,
                         self->nospc_count);
        self->nospc_count = 0;
    }
    else {
        self->next = self->head + 1;
        self->pending_now = self->now;
        if (rc == EIO && s_disk_full (self))
            rc = ENOSPC;
    }
    rc = s_translate (self, rc, "commit");
    //  After a small batch only: a large one's sync is mostly its data,
    //  and while they come one after the other, what the zeros cost
    //  (written twice over) would be taken from their throughput
    return rc? rc: batch_bytes <= S_PREALLOC_BATCH? s_prealloc (self): 0;
}

//  --------------------------------------------------------------------------

void
pb_log_abort (pb_log_t *self)
{
    assert (self);
    s_cursors_close (self);
    if (self->write) {
        mdb_txn_abort (self->write);
        self->write = NULL;
    }
    self->next = self->head + 1;
    self->pending_now = self->now;
}

//  --------------------------------------------------------------------------

int
pb_log_grow (pb_log_t *self)
{
    assert (self);
    assert (!self->write);              //  LMDB: no transaction may be active
    if (self->map_size >= self->map_max)
        return PB_LOG_AT_MAX;
    uint64_t size = self->map_size * 2;
    if (size > self->map_max)
        size = self->map_max;
    PB_CRASH_POINT ("map_grow");
    //  LMDB: no transaction may be active in the process, so no reader
    //  may be in pb_log_read meanwhile
    pthread_mutex_lock (&self->map_lock);
    int rc = mdb_env_set_mapsize (self->env, (size_t) size);
    if (rc == 0) {
        zsys_notice ("pb_log: map grown from=%" PRIu64 " to=%" PRIu64,
                     self->map_size, size);
        self->map_size = size;
    }
    pthread_mutex_unlock (&self->map_lock);
    return s_translate (self, rc, "grow map");
}

//  --------------------------------------------------------------------------

//  Start the read transaction: renew the reset one, or begin one. Another
//  process (the operator tool) may have grown the map: adopt its size.
static int
s_read_begin (pb_log_t *self)
{
    int rc = self->read? mdb_txn_renew (self->read)
                       : mdb_txn_begin (self->env, NULL, MDB_RDONLY, &self->read);
    if (rc == MDB_MAP_RESIZED) {
        if (self->read) {
            mdb_txn_abort (self->read);
            self->read = NULL;
        }
        rc = mdb_env_set_mapsize (self->env, 0);
        if (rc == 0)
            rc = mdb_txn_begin (self->env, NULL, MDB_RDONLY, &self->read);
        MDB_envinfo info;
        if (rc == 0 && mdb_env_info (self->env, &info) == 0)
            self->map_size = info.me_mapsize;
    }
    return rc;
}

int
pb_log_read (pb_log_t *self, uint64_t from, uint64_t to, size_t max_scan,
             pb_log_read_fn *fn, void *arg, uint64_t *next_p)
{
    assert (self);
    assert (fn && next_p);
    *next_p = from;
    uint64_t head = self->head;
    if (to > head)
        to = head;
    if (from > to || max_scan == 0)
        return 0;
    MDB_cursor *cursor = NULL;
    int fn_rc = 0;
    pthread_mutex_lock (&self->map_lock);
    int rc = s_read_begin (self);
    if (rc == 0)
        rc = mdb_cursor_open (self->read, self->log, &cursor);
    uint8_t seq_bytes [8];
    pb_be64_put (seq_bytes, from);
    MDB_val key = { 8, seq_bytes }, value;
    if (rc == 0)
        rc = mdb_cursor_get (cursor, &key, &value, MDB_SET_KEY);
    for (size_t scanned = 0; rc == 0 && scanned < max_scan; scanned++) {
        const uint8_t *bytes = (const uint8_t *) value.mv_data;
        pb_log_event_t event;
        event.seq = key.mv_size == 8? pb_be64_get ((const uint8_t *) key.mv_data): 0;
        if (event.seq != *next_p || value.mv_size < 2 + PB_CHAIN_SIZE
        ||  value.mv_size < 1 + (size_t) bytes [0] + PB_CHAIN_SIZE) {
            rc = MDB_CORRUPTED;         //  A gap or a short record
            break;
        }
        event.type_len = bytes [0];
        event.type = (const char *) bytes + 1;
        event.bytes = bytes + 1 + event.type_len;
        event.size = value.mv_size - 1 - event.type_len - PB_CHAIN_SIZE;
        fn_rc = fn (&event, arg);
        if (fn_rc)
            break;
        *next_p = event.seq + 1;
        if (event.seq >= to)
            break;
        rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT);
    }
    if (cursor)
        mdb_cursor_close (cursor);
    if (self->read)
        mdb_txn_reset (self->read);     //  Never hold a snapshot between calls
    pthread_mutex_unlock (&self->map_lock);
    if (rc == MDB_NOTFOUND)
        rc = MDB_CORRUPTED;             //  Below the head, every seq exists
    rc = s_translate (self, rc, "read");
    if (rc == 0 && fn_rc < 0)
        rc = fn_rc;
    return rc;
}

//  --------------------------------------------------------------------------

int
pb_log_reader_check (pb_log_t *self)
{
    assert (self);
    int dead = 0;
    int rc = s_translate (self, mdb_reader_check (self->env, &dead), "reader check");
    if (rc == 0 && dead > 0)
        zsys_notice ("pb_log: cleared stale readers count=%d", dead);
    return rc? rc: dead;
}

//  --------------------------------------------------------------------------

const char *
pb_log_strerror (int rc)
{
    switch (rc) {
#define XX(name, value, text) case value: return text;
        PB_LOG_ERRORS (XX)
#undef XX
        default:
            return pb_strerror (rc);
    }
}

//  --------------------------------------------------------------------------
//  Selftest

typedef struct {
    uint64_t count;             //  events taken
    uint64_t last;              //  last seq taken
    uint64_t stop_at;           //  refuse this seq (0: none)
} s_test_reader_t;

static int
s_test_read (const pb_log_event_t *event, void *arg)
{
    s_test_reader_t *reader = (s_test_reader_t *) arg;
    if (event->seq == reader->stop_at)
        return PB_LOG_STOP;
    assert (event->type_len == 8 && memcmp (event->type, "cpe.test", 8) == 0);
    assert (event->size == 400);
    assert (((const uint8_t *) event->bytes) [6] == (uint8_t) event->seq);
    reader->count++;
    reader->last = event->seq;
    return 0;
}

//  A reader thread beside the writer, as the journal's actor reads while
//  its committer commits and grows the map: every read is gapless from 1
//  to the head it saw, and the heads it sees never go back
typedef struct {
    pb_log_t *log;
    atomic_bool stop;
    uint64_t reads;             //  whole-log reads done
    uint64_t last_head;         //  the head of the last one
} s_test_beside_t;

static void *
s_test_beside (void *arg)
{
    s_test_beside_t *self = (s_test_beside_t *) arg;
    while (!atomic_load (&self->stop)) {
        s_test_reader_t reader = { 0, 0, 0 };
        uint64_t next = 0;
        int rc = pb_log_read (self->log, 1, UINT64_MAX, 1000000, s_test_read, &reader, &next);
        assert (rc == 0);
        assert (reader.count == next - 1 && next - 1 >= self->last_head);
        self->last_head = next - 1;
        self->reads++;
    }
    return NULL;
}

//  A stored envelope of 400 bytes for 'seq': {b: 'x...', seq: seq, ts: 0}
//  with the low byte of seq at byte 6 (the text's first). Returns the
//  size of the producer's pairs (after the one-byte map header).
static size_t
s_test_envelope (uint64_t seq, uint8_t envelope [400])
{
    size_t text = 400 - 23;
    memcpy (envelope, "\x83\xa1" "b" "\xda", 4);
    envelope [4] = (uint8_t) (text >> 8);
    envelope [5] = (uint8_t) text;
    memset (envelope + 6, 'x', text);
    envelope [6] = (uint8_t) seq;
    size_t n = 6 + text;
    memcpy (envelope + n, "\xa3" "seq" "\xcf", 5);
    n += 5;
    pb_be64_put (envelope + n, seq);
    n += 8;
    memcpy (envelope + n, "\xa2" "ts" "\x00", 4);
    assert (n + 4 == 400);
    return 5 + text;
}

//  Append 'count' events with ids from 'first', growing the map on
//  demand as the journal does. Returns the commit's code.
static int
s_test_append (pb_log_t *log, int first, int count)
{
    uint8_t envelope [400];
    int rc;
    do {
        //  Hashes made ahead, as the journal actor makes them: most right,
        //  some for another previous hash or seq, with a wrong chain that
        //  pb_chain_verify would catch if the log took it
        uint8_t prev [PB_CHAIN_SIZE];
        pb_log_chain (log, prev);
        rc = pb_log_begin (log);
        assert (rc == 0);
        for (int i = first; i < first + count && rc == 0; i++) {
            char id [32];
            snprintf (id, sizeof id, "e-%d", i);
            pb_log_key_t key = { "test", 4, id, strlen (id) };
            size_t pairs = s_test_envelope (pb_log_next_seq (log), envelope);
            uint8_t pairs_hash [PB_CHAIN_SIZE];
            pb_chain_pairs_hash (envelope + 1, pairs, pairs_hash);
            pb_log_ahead_t ahead, given;
            pb_log_hash_ahead (pb_log_next_seq (log), prev, "cpe.test", 8, envelope,
                               sizeof envelope, pairs, pairs_hash, &ahead);
            given = ahead;
            if (i % 7 == 3 || i % 7 == 5) {
                given.chain [0] ^= 1;
                if (i % 7 == 3)
                    given.prev [0] ^= 1;
                else
                    given.seq++;
            }
            memcpy (prev, ahead.chain, PB_CHAIN_SIZE);
            uint64_t seq = 0;
            uint8_t found [PB_LOG_DIGEST_SIZE];
            rc = pb_log_append (log, &key, pairs_hash, "cpe.test", 8, envelope, sizeof envelope,
                                i % 7 == 1? NULL: &given, &seq, found);
        }
        if (rc == 0)
            rc = pb_log_commit (log);
        else
            pb_log_abort (log);
        if (rc == PB_LOG_FULL) {
            int grow_rc = pb_log_grow (log);
            if (grow_rc)
                return grow_rc;
        }
    } while (rc == PB_LOG_FULL);
    return rc;
}

//  Write 'size' bytes as the anchor of the closed log in 'path'
static void
s_test_put_anchor (const char *path, const void *bytes, size_t size)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi meta;
    int rc = mdb_env_create (&env);
    assert (rc == 0);
    mdb_env_set_maxdbs (env, 4);
    rc = mdb_env_open (env, path, 0, 0600);
    assert (rc == 0);
    rc = mdb_txn_begin (env, NULL, 0, &txn);
    assert (rc == 0);
    rc = mdb_dbi_open (txn, "meta", 0, &meta);
    assert (rc == 0);
    MDB_val key = { strlen (PB_CHAIN_ANCHOR_KEY), PB_CHAIN_ANCHOR_KEY };
    MDB_val value = { size, (void *) bytes };
    rc = mdb_put (txn, meta, &key, &value, 0);
    assert (rc == 0);
    rc = mdb_txn_commit (txn);
    assert (rc == 0);
    mdb_env_close (env);
}

void
pb_log_test (bool verbose)
{
    printf (" * pb_log: ");
    char path [] = "/tmp/pb_log_test.XXXXXX";
    assert (mkdtemp (path));

    //  A tiny map, so that 3000 events of 400 bytes must grow it
    pb_log_t *log = NULL;
    int rc = pb_log_open (path, 256 * 1024, 16 * 1024 * 1024, &log);
    assert (rc == 0 && log);
    assert (pb_log_head (log) == 0 && pb_log_now (log) == 0);
    for (int batch = 0; batch < 30; batch++) {
        rc = s_test_append (log, batch * 100, 100);
        assert (rc == 0);
    }
    assert (pb_log_head (log) == 3000);
    assert (pb_log_map_size (log) > 256 * 1024);

    //  Lookup: present with its seq and digest, and absent
    rc = pb_log_begin (log);
    assert (rc == 0);
    pb_log_key_t key = { "test", 4, "e-41", 4 };
    uint64_t seq = 0;
    uint8_t digest [PB_LOG_DIGEST_SIZE], expected [PB_LOG_DIGEST_SIZE];
    rc = pb_log_lookup (log, &key, &seq, digest);
    assert (rc == 0 && seq == 42);
    uint8_t envelope [400], pairs_hash [PB_CHAIN_SIZE];
    size_t pairs = s_test_envelope (42, envelope);
    pb_chain_pairs_hash (envelope + 1, pairs, pairs_hash);
    memcpy (expected, pairs_hash, PB_LOG_DIGEST_SIZE);
    assert (memcmp (digest, expected, PB_LOG_DIGEST_SIZE) == 0);
    pb_log_key_t other = { "tes", 3, "te-41", 5 };     //  Same bytes, other split
    rc = pb_log_lookup (log, &other, &seq, digest);
    assert (rc == PB_LOG_NOTFOUND);
    pb_log_key_t bad = { "", 0, "x", 1 };
    assert (pb_log_lookup (log, &bad, &seq, digest) == PB_EINVAL);

    //  An aborted batch leaves head, log time and index as they were
    assert (pb_log_next_seq (log) == 3001);
    uint8_t found [PB_LOG_DIGEST_SIZE];
    rc = pb_log_append (log, &other, expected, "cpe.test", 8, envelope, sizeof envelope,
                        NULL, &seq, found);
    assert (rc == 0 && pb_log_next_seq (log) == 3002);
    //  Appending a key that is there writes nothing and names its seq
    rc = pb_log_append (log, &key, digest, "cpe.test", 8, envelope, sizeof envelope,
                        NULL, &seq, found);
    assert (rc == PB_LOG_EXISTS && seq == 42 && pb_log_next_seq (log) == 3002);
    assert (memcmp (found, expected, PB_LOG_DIGEST_SIZE) == 0);
    //  Bytes that are not in the stored form cannot be hashed here:
    //  refused, and nothing of them is written, index included
    pb_log_key_t third = { "test", 4, "not-stored", 10 };
    rc = pb_log_append (log, &third, expected, "cpe.test", 8, "\x91\x00", 2,
                        NULL, &seq, found);
    assert (rc == PB_EINVAL && pb_log_next_seq (log) == 3002);
    assert (pb_log_lookup (log, &third, &seq, digest) == PB_LOG_NOTFOUND);
    rc = pb_log_lookup (log, &other, &seq, digest);
    assert (rc == 0 && seq == 3001);    //  Visible inside its own batch
    rc = pb_log_set_now (log, 5000);
    assert (rc == 0);
    pb_log_abort (log);
    assert (pb_log_head (log) == 3000 && pb_log_now (log) == 0);
    rc = pb_log_begin (log);
    assert (rc == 0);
    rc = pb_log_lookup (log, &other, &seq, digest);
    assert (rc == PB_LOG_NOTFOUND);
    rc = pb_log_set_now (log, 7000);
    assert (rc == 0);
    rc = pb_log_commit (log);
    assert (rc == 0 && pb_log_now (log) == 7000);

    //  Reads: a range, a stop, the head cut, the scan bound
    s_test_reader_t reader = { 0, 0, 0 };
    uint64_t next = 0;
    rc = pb_log_read (log, 10, 19, 1000, s_test_read, &reader, &next);
    assert (rc == 0 && reader.count == 10 && reader.last == 19 && next == 20);
    reader = (s_test_reader_t) { 0, 0, 2990 };
    rc = pb_log_read (log, 2900, UINT64_MAX, 1000, s_test_read, &reader, &next);
    assert (rc == 0 && reader.count == 90 && next == 2990);
    reader = (s_test_reader_t) { 0, 0, 0 };
    rc = pb_log_read (log, 2990, UINT64_MAX, 1000, s_test_read, &reader, &next);
    assert (rc == 0 && reader.count == 11 && next == 3001);
    rc = pb_log_read (log, 3001, UINT64_MAX, 1000, s_test_read, &reader, &next);
    assert (rc == 0 && reader.count == 11 && next == 3001);
    reader = (s_test_reader_t) { 0, 0, 0 };
    rc = pb_log_read (log, 1, UINT64_MAX, 7, s_test_read, &reader, &next);
    assert (rc == 0 && reader.count == 7 && next == 8);
    assert (pb_log_reader_check (log) == 0);

    //  Reopen: everything committed is there
    pb_log_destroy (&log);
    pb_log_destroy (&log);
    assert (log == NULL);
    //  Every record is chained, and the anchor names the head (the log is
    //  closed: one process may not open an environment twice)
    pb_chain_report_t report;
    rc = pb_chain_verify (path, &report);
    assert (rc == 0 && report.status == PB_CHAIN_INTACT && report.head == 3000);
    rc = pb_log_open (path, 256 * 1024, 16 * 1024 * 1024, &log);
    assert (rc == 0);
    assert (pb_log_head (log) == 3000 && pb_log_now (log) == 7000);
    reader = (s_test_reader_t) { 0, 0, 0 };
    rc = pb_log_read (log, 1, UINT64_MAX, 10000, s_test_read, &reader, &next);
    assert (rc == 0 && reader.count == 3000 && next == 3001);

    //  At map_max, a batch that does not fit is refused and nothing of it
    //  is written; the log goes on serving reads. Meanwhile another thread
    //  reads the whole log again and again, across every growth of the map.
    s_test_beside_t beside = { log, false, 0, 0 };
    pthread_t thread;
    pthread_create (&thread, NULL, s_test_beside, &beside);
    int first = 3000;
    do {
        rc = s_test_append (log, first, 500);
        first += 500;
    } while (rc == 0);
    assert (rc == PB_LOG_AT_MAX);
    atomic_store (&beside.stop, true);
    pthread_join (thread, NULL);
    assert (beside.reads > 0 && beside.last_head >= 3000);
    uint64_t head = pb_log_head (log);
    assert (head % 500 == 0 && head >= 3000);
    reader = (s_test_reader_t) { 0, 0, 0 };
    rc = pb_log_read (log, head, head, 10, s_test_read, &reader, &next);
    assert (rc == 0 && reader.count == 1);
    uint8_t chain [PB_CHAIN_SIZE];
    pb_log_chain (log, chain);
    pb_log_destroy (&log);

    //  A log whose anchor is of chain rule 1 (no rule byte) is refused;
    //  this rule's anchor opens it again
    uint8_t anchor [PB_CHAIN_ANCHOR_SIZE];
    pb_chain_anchor_put (head, chain, anchor);
    s_test_put_anchor (path, anchor + 1, sizeof anchor - 1);
    assert (pb_log_open (path, 256 * 1024, 16 * 1024 * 1024, &log) == PB_LOG_CORRUPT);
    assert (log == NULL);
    s_test_put_anchor (path, anchor, sizeof anchor);
    rc = pb_log_open (path, 256 * 1024, 16 * 1024 * 1024, &log);
    assert (rc == 0 && pb_log_head (log) == head);
    pb_log_destroy (&log);

    char file [PATH_MAX];
    snprintf (file, sizeof file, "%s/data.mdb", path);
    zsys_file_delete (file);
    snprintf (file, sizeof file, "%s/lock.mdb", path);
    zsys_file_delete (file);
    zsys_dir_delete ("%s", path);
    printf ("OK\n");
}
