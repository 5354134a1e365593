/*  =========================================================================
    pb_chain - the journal log's hash chain: the rule, and the walk that
    checks it

    The walk reads the log in slices of S_SLICE records, one short read
    transaction each, so that a long verify never pins a snapshot that
    keeps the live journal from reusing pages. Each slice starts at the
    key after the last record the one before checked, with the hash it
    ended on, so that every key of the log is seen, those that are not
    seqs too.
    =========================================================================
*/
#include "pb_chain.h"

#include <assert.h>
#include <czmq.h>
#include <lmdb.h>
#include <sodium.h>
#include <string.h>

#include "pb_be64.h"
#include "pb_envelope.h"
#include "pb_error.h"

#define S_SLICE 10000                   //  records per read transaction

//  --------------------------------------------------------------------------

void
pb_chain_pairs_hash (const void *pairs, size_t size, uint8_t out [PB_CHAIN_SIZE])
{
    assert (pairs || size == 0);
    crypto_generichash (out, PB_CHAIN_SIZE, (const unsigned char *) pairs, size, NULL, 0);
}

void
pb_chain_next (const uint8_t prev [PB_CHAIN_SIZE], uint64_t seq,
               const char *type, size_t type_len,
               const void *stored, size_t stored_size, size_t pairs_size,
               const uint8_t pairs_hash [PB_CHAIN_SIZE], uint8_t out [PB_CHAIN_SIZE])
{
    assert (prev && pairs_hash && out);
    assert (type || type_len == 0);
    assert (type_len <= 255);
    assert (stored && stored_size > 0);
    const uint8_t *bytes = (const uint8_t *) stored;
    size_t header = pb_envelope_map_header_size (bytes [0]);
    assert (header + pairs_size <= stored_size);
    //  Everything but the tail in one buffer: about 100 bytes, so that the
    //  whole input is one BLAKE2b block for a short type
    uint8_t head [PB_CHAIN_SIZE + 8 + 1 + 255 + 5 + PB_CHAIN_SIZE];
    size_t n = 0;
    memcpy (head, prev, PB_CHAIN_SIZE);
    n += PB_CHAIN_SIZE;
    pb_be64_put (head + n, seq);
    n += 8;
    head [n++] = (uint8_t) type_len;
    if (type_len)
        memcpy (head + n, type, type_len);
    n += type_len;
    memcpy (head + n, bytes, header);
    n += header;
    memcpy (head + n, pairs_hash, PB_CHAIN_SIZE);
    n += PB_CHAIN_SIZE;
    crypto_generichash_state state;
    crypto_generichash_init (&state, NULL, 0, PB_CHAIN_SIZE);
    crypto_generichash_update (&state, head, n);
    size_t tail = stored_size - header - pairs_size;
    if (tail)
        crypto_generichash_update (&state, bytes + header + pairs_size, tail);
    crypto_generichash_final (&state, out, PB_CHAIN_SIZE);
}

int
pb_chain_next_record (const uint8_t prev [PB_CHAIN_SIZE], uint64_t seq,
                      const void *record, size_t size, uint8_t out [PB_CHAIN_SIZE])
{
    assert (record || size == 0);
    const uint8_t *bytes = (const uint8_t *) record;
    if (size < 2 || size - 1 <= bytes [0])
        return PB_EINVAL;               //  No room for a type and an envelope
    size_t type_len = bytes [0];
    const uint8_t *stored = bytes + 1 + type_len;
    size_t stored_size = size - 1 - type_len;
    size_t header, pairs;
    if (!pb_envelope_split_stored (stored, stored_size, &header, &pairs))
        return PB_EINVAL;
    uint8_t pairs_hash [PB_CHAIN_SIZE];
    pb_chain_pairs_hash (stored + header, pairs, pairs_hash);
    pb_chain_next (prev, seq, (const char *) bytes + 1, type_len, stored, stored_size,
                   pairs, pairs_hash, out);
    return 0;
}

void
pb_chain_anchor_put (uint64_t head, const uint8_t hash [PB_CHAIN_SIZE],
                     uint8_t anchor [PB_CHAIN_ANCHOR_SIZE])
{
    anchor [0] = PB_CHAIN_RULE;
    pb_be64_put (anchor + 1, head);
    memcpy (anchor + 9, hash, PB_CHAIN_SIZE);
}

bool
pb_chain_anchor_get (const void *anchor, size_t size, unsigned *rule_p,
                     uint64_t *head_p, uint8_t hash [PB_CHAIN_SIZE])
{
    assert (rule_p && head_p && hash);
    const uint8_t *bytes = (const uint8_t *) anchor;
    size_t at = 0;
    if (size == 8 + PB_CHAIN_SIZE)
        *rule_p = 1;                    //  Rule 1 had no rule byte
    else
    if (size == PB_CHAIN_ANCHOR_SIZE && bytes [0] >= 2) {
        *rule_p = bytes [0];
        at = 1;
    }
    else
        return false;
    *head_p = pb_be64_get (bytes + at);
    memcpy (hash, bytes + at + 8, PB_CHAIN_SIZE);
    return true;
}

//  --------------------------------------------------------------------------
//  The walk

typedef struct {
    MDB_env *env;                       //  read-only environment (owned)
    MDB_dbi log;                        //  seq -> record
    MDB_dbi meta;                       //  "chain" -> anchor
    uint64_t next;                      //  the seq expected next
    uint8_t prev [PB_CHAIN_SIZE];       //  h(next - 1)
    bool done;                          //  the end of the log was reached
} s_walk_t;

static void
s_found (pb_chain_report_t *report, pb_chain_status_t status, uint64_t seq,
         uint64_t last, const char *reason)
{
    report->status = status;
    report->seq = seq;
    report->last = last;
    snprintf (report->reason, sizeof report->reason, "%s", reason);
}

//  One record at the cursor: is it the next seq, and is its hash right?
//  Returns true to go on.
static bool
s_check_record (s_walk_t *walk, const MDB_val *key, const MDB_val *value,
                pb_chain_report_t *report)
{
    uint64_t seq = key->mv_size == 8? pb_be64_get ((const uint8_t *) key->mv_data): 0;
    if (seq == 0 || seq < walk->next) {
        s_found (report, PB_CHAIN_ALTERED, walk->next, 0,
                 "a key of the log is not a seq");
        return false;
    }
    if (seq > walk->next) {
        s_found (report, PB_CHAIN_MISSING, walk->next, seq - 1,
                 "records absent from the log");
        return false;
    }
    const uint8_t *bytes = (const uint8_t *) value->mv_data;
    if (value->mv_size < 2 + PB_CHAIN_SIZE
    ||  value->mv_size < 1 + (size_t) bytes [0] + PB_CHAIN_SIZE) {
        s_found (report, PB_CHAIN_ALTERED, seq, 0, "record shorter than its layout");
        return false;
    }
    size_t size = value->mv_size - PB_CHAIN_SIZE;
    uint8_t hash [PB_CHAIN_SIZE];
    if (pb_chain_next_record (walk->prev, seq, bytes, size, hash)) {
        s_found (report, PB_CHAIN_ALTERED, seq, 0,
                 "record's envelope is not a map of at least two pairs");
        return false;
    }
    report->checked++;
    if (sodium_memcmp (hash, bytes + size, PB_CHAIN_SIZE) != 0) {
        s_found (report, PB_CHAIN_ALTERED, seq, 0,
                 "record does not hash to its chain value");
        return false;
    }
    memcpy (walk->prev, hash, PB_CHAIN_SIZE);
    walk->next = seq + 1;
    return true;
}

//  At the end of the log, in the same transaction: the anchor must name
//  the last record and its hash
static void
s_check_anchor (s_walk_t *walk, MDB_txn *txn, pb_chain_report_t *report)
{
    uint64_t last = walk->next - 1;
    MDB_val key = { strlen (PB_CHAIN_ANCHOR_KEY), PB_CHAIN_ANCHOR_KEY }, value;
    int rc = mdb_get (txn, walk->meta, &key, &value);
    if (rc == MDB_NOTFOUND && last == 0) {
        report->status = PB_CHAIN_INTACT;       //  An empty log
        return;
    }
    unsigned rule = 0;
    uint64_t head = 0;
    uint8_t hash [PB_CHAIN_SIZE];
    if (rc || !pb_chain_anchor_get (value.mv_data, value.mv_size, &rule, &head, hash)
    ||  rule != PB_CHAIN_RULE) {
        s_found (report, PB_CHAIN_ALTERED, last, 0,
                 "the chain anchor (meta \"chain\") is absent or malformed");
        return;
    }
    if (head > last)
        s_found (report, PB_CHAIN_MISSING, last + 1, head,
                 "records absent from the end of the log");
    else
    if (head < last)
        s_found (report, PB_CHAIN_ALTERED, head + 1, 0,
                 "records beyond the anchored head");
    else
    if (sodium_memcmp (hash, walk->prev, PB_CHAIN_SIZE) != 0)
        s_found (report, PB_CHAIN_ALTERED, last, 0,
                 "the anchor's hash differs from the last record's");
    else {
        report->status = PB_CHAIN_INTACT;
        report->head = last;
        memcpy (report->head_hash, walk->prev, PB_CHAIN_SIZE);
    }
}

//  Before the walk: a log whose anchor names another rule is not checked
//  under this one (every record would seem altered). Returns an MDB code;
//  sets walk->done with the report's reason if so.
static int
s_check_rule (s_walk_t *walk, pb_chain_report_t *report)
{
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin (walk->env, NULL, MDB_RDONLY, &txn);
    MDB_val key = { strlen (PB_CHAIN_ANCHOR_KEY), PB_CHAIN_ANCHOR_KEY }, value;
    if (rc == 0)
        rc = mdb_get (txn, walk->meta, &key, &value);
    unsigned rule = 0;
    uint64_t head = 0;
    uint8_t hash [PB_CHAIN_SIZE];
    if (rc == 0 && pb_chain_anchor_get (value.mv_data, value.mv_size, &rule, &head, hash)
    &&  rule != PB_CHAIN_RULE) {
        snprintf (report->reason, sizeof report->reason,
                  "the log's hash chain follows rule %u%s; this pbctl checks rule %d "
                  "only", rule, rule == 1? " (a partnerbus from before 2026-12)": "",
                  PB_CHAIN_RULE);
        walk->done = true;
    }
    if (txn)
        mdb_txn_abort (txn);
    return rc == MDB_NOTFOUND? 0: rc;   //  No anchor: the walk names it
}

//  One slice: up to S_SLICE records in one read transaction. Returns an
//  MDB code; sets walk->done at the end of the log or at a finding.
static int
s_slice (s_walk_t *walk, pb_chain_report_t *report)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cursor = NULL;
    int rc = mdb_txn_begin (walk->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0)
        rc = mdb_cursor_open (txn, walk->log, &cursor);
    //  Every key of the log is looked at, those that are not seqs too: the
    //  first slice starts at the first key, each next one at the key after
    //  the last record checked, found again by its key (records are never
    //  taken out, so its absence is a finding)
    uint64_t last = walk->next - 1;
    uint8_t seq_bytes [8];
    pb_be64_put (seq_bytes, last);
    MDB_val key = { 8, seq_bytes }, value;
    if (rc == 0 && last == 0)
        rc = mdb_cursor_get (cursor, &key, &value, MDB_FIRST);
    else
    if (rc == 0) {
        rc = mdb_cursor_get (cursor, &key, &value, MDB_SET_KEY);
        if (rc == 0)
            rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT);
        else
        if (rc == MDB_NOTFOUND) {
            s_found (report, PB_CHAIN_MISSING, last, last,
                     "a record checked a moment ago is gone from the log");
            walk->done = true;
            rc = 0;
        }
    }
    for (int n = 0; rc == 0 && !walk->done && n < S_SLICE; n++) {
        if (!s_check_record (walk, &key, &value, report)) {
            walk->done = true;
            break;
        }
        rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT);
    }
    if (rc == MDB_NOTFOUND && !walk->done) {
        s_check_anchor (walk, txn, report);
        walk->done = true;
        rc = 0;
    }
    if (cursor)
        mdb_cursor_close (cursor);
    if (txn)
        mdb_txn_abort (txn);
    return rc;
}

static int
s_walk_open (s_walk_t *walk, const char *dir)
{
    MDB_txn *txn = NULL;
    int rc = mdb_env_create (&walk->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs (walk->env, 4);
    //  Map size 0: LMDB takes the size the file already has
    if (rc == 0)
        rc = mdb_env_open (walk->env, dir, MDB_RDONLY | MDB_NOTLS, 0600);
    if (rc == 0)
        rc = mdb_txn_begin (walk->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0)
        rc = mdb_dbi_open (txn, "log", 0, &walk->log);
    if (rc == 0)
        rc = mdb_dbi_open (txn, "meta", 0, &walk->meta);
    //  Commit, not abort: an aborted transaction closes the handles it opened
    if (rc == 0)
        rc = mdb_txn_commit (txn);
    else
    if (txn)
        mdb_txn_abort (txn);
    return rc;
}

//  --------------------------------------------------------------------------

int
pb_chain_verify (const char *dir, pb_chain_report_t *report)
{
    assert (dir);
    assert (report);
    memset (report, 0, sizeof *report);
    report->status = PB_CHAIN_UNREADABLE;
    if (sodium_init () < 0) {
        snprintf (report->reason, sizeof report->reason, "libsodium cannot start");
        return PB_EIO;
    }
    s_walk_t walk;
    memset (&walk, 0, sizeof walk);
    walk.next = 1;
    int rc = s_walk_open (&walk, dir);
    if (rc == 0)
        rc = s_check_rule (&walk, report);
    bool other_rule = walk.done;
    while (rc == 0 && !walk.done)
        rc = s_slice (&walk, report);
    if (rc) {
        snprintf (report->reason, sizeof report->reason, "cannot read the log in %s: %s",
                  dir, mdb_strerror (rc));
        report->status = PB_CHAIN_UNREADABLE;
    }
    if (other_rule)
        rc = PB_EIO;                    //  Status UNREADABLE, reason set
    if (walk.env)
        mdb_env_close (walk.env);
    return rc? PB_EIO: 0;
}

//  --------------------------------------------------------------------------
//  Selftest: a log written with raw LMDB calls in pb_log's layout, then
//  changed behind its back the way an intruder with the files would

static MDB_env *
s_test_env (const char *path)
{
    MDB_env *env = NULL;
    int rc = mdb_env_create (&env);
    assert (rc == 0);
    rc = mdb_env_set_maxdbs (env, 4);
    assert (rc == 0);
    rc = mdb_env_set_mapsize (env, 64 * 1024 * 1024);
    assert (rc == 0);
    rc = mdb_env_open (env, path, MDB_NOSYNC, 0600);        //  A test: speed
    assert (rc == 0);
    return env;
}

//  A record of type "cpe.test" whose stored envelope is {body: 'body',
//  seq: seq, ts: 0}, as the journal lays one out: byte 9 is the map
//  header, 10..14 the key "body", 15 the value's header and 16.. its text
static size_t
s_test_record (uint64_t seq, const char *body, uint8_t *record)
{
    size_t len = strlen (body);
    assert (len < 32 && seq <= 0xffff);
    size_t n = 0;
    record [n++] = 8;
    memcpy (record + n, "cpe.test", 8);
    n += 8;
    record [n++] = 0x83;
    memcpy (record + n, "\xa4" "body", 5);
    n += 5;
    record [n++] = (uint8_t) (0xa0 | len);
    memcpy (record + n, body, len);
    n += len;
    memcpy (record + n, "\xa3" "seq" "\xcd", 5);
    n += 5;
    record [n++] = (uint8_t) (seq >> 8);
    record [n++] = (uint8_t) seq;
    memcpy (record + n, "\xa2" "ts" "\x00", 4);
    return n + 4;
}

static void
s_test_put (MDB_env *env, uint64_t seq, const char *body, uint8_t prev [PB_CHAIN_SIZE])
{
    MDB_txn *txn = NULL;
    MDB_dbi log, meta;
    int rc = mdb_txn_begin (env, NULL, 0, &txn);
    assert (rc == 0);
    rc = mdb_dbi_open (txn, "log", MDB_CREATE, &log);
    assert (rc == 0);
    rc = mdb_dbi_open (txn, "meta", MDB_CREATE, &meta);
    assert (rc == 0);
    uint8_t record [256];
    size_t size = s_test_record (seq, body, record);
    int rc_hash = pb_chain_next_record (prev, seq, record, size, record + size);
    assert (rc_hash == 0);
    memcpy (prev, record + size, PB_CHAIN_SIZE);
    uint8_t key_bytes [8], anchor [PB_CHAIN_ANCHOR_SIZE];
    pb_be64_put (key_bytes, seq);
    pb_chain_anchor_put (seq, prev, anchor);
    MDB_val key = { 8, key_bytes }, value = { size + PB_CHAIN_SIZE, record };
    rc = mdb_put (txn, log, &key, &value, 0);
    assert (rc == 0);
    MDB_val akey = { strlen (PB_CHAIN_ANCHOR_KEY), PB_CHAIN_ANCHOR_KEY };
    MDB_val avalue = { sizeof anchor, anchor };
    rc = mdb_put (txn, meta, &akey, &avalue, 0);
    assert (rc == 0);
    rc = mdb_txn_commit (txn);
    assert (rc == 0);
}

//  What s_test_change does to a record, besides flipping one byte
#define S_TEST_DELETE -1                //  take it out
#define S_TEST_PUT    -2                //  put 'value' there

//  Flip one byte of the record under 'key_bytes' in database 'db' at
//  'offset', or do what S_TEST_DELETE or S_TEST_PUT say. Its own
//  environment, closed after: LMDB forbids one process to have the same
//  environment open twice, and pb_chain_verify opens its own.
static void
s_test_change (const char *path, const char *db, const void *key_bytes, size_t key_size,
               int offset, const void *value_bytes, size_t value_size)
{
    MDB_env *env = s_test_env (path);
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    int rc = mdb_txn_begin (env, NULL, 0, &txn);
    assert (rc == 0);
    rc = mdb_dbi_open (txn, db, 0, &dbi);
    assert (rc == 0);
    MDB_val key = { key_size, (void *) key_bytes };
    MDB_val value = { value_size, (void *) value_bytes };
    uint8_t copy [512];
    if (offset == S_TEST_DELETE)
        rc = mdb_del (txn, dbi, &key, NULL);
    else
    if (offset == S_TEST_PUT)
        rc = mdb_put (txn, dbi, &key, &value, 0);
    else {
        rc = mdb_get (txn, dbi, &key, &value);
        assert (rc == 0);
        assert (value.mv_size <= sizeof copy && (size_t) offset < value.mv_size);
        memcpy (copy, value.mv_data, value.mv_size);
        copy [offset] ^= 0x01;
        value.mv_data = copy;
        rc = mdb_put (txn, dbi, &key, &value, 0);
    }
    assert (rc == 0);
    rc = mdb_txn_commit (txn);
    assert (rc == 0);
    mdb_env_close (env);
}

//  s_test_change on record 'seq'
static void
s_test_tamper (const char *path, uint64_t seq, int offset)
{
    uint8_t key_bytes [8];
    pb_be64_put (key_bytes, seq);
    s_test_change (path, "log", key_bytes, sizeof key_bytes, offset, NULL, 0);
}

//  Write 'size' bytes as the log's anchor
static void
s_test_anchor (const char *path, const void *bytes, size_t size)
{
    s_test_change (path, "meta", PB_CHAIN_ANCHOR_KEY, strlen (PB_CHAIN_ANCHOR_KEY),
                   S_TEST_PUT, bytes, size);
}

//  A log of 'count' records in 'path'; returns h(count) in 'prev'
static void
s_test_log (const char *path, uint64_t count, uint8_t prev [PB_CHAIN_SIZE])
{
    MDB_env *env = s_test_env (path);
    memset (prev, 0, PB_CHAIN_SIZE);
    for (uint64_t seq = 1; seq <= count; seq++)
        s_test_put (env, seq, seq % 2? "odd event": "even event", prev);
    mdb_env_close (env);
}

void
pb_chain_test (bool verbose)
{
    printf (" * pb_chain: ");
    //  The rule: each hash depends on the previous one, the seq and the
    //  bytes; the record's form gives what its parts give
    uint8_t zero [PB_CHAIN_SIZE] = { 0 }, a [PB_CHAIN_SIZE], b [PB_CHAIN_SIZE];
    uint8_t record [256];
    size_t size = s_test_record (1, "an event", record);
    assert (pb_chain_next_record (zero, 1, record, size, a) == 0);
    assert (pb_chain_next_record (zero, 2, record, size, b) == 0);
    assert (memcmp (a, b, PB_CHAIN_SIZE) != 0);
    assert (pb_chain_next_record (a, 2, record, size, b) == 0);
    assert (pb_chain_next_record (a, 2, record, size, a) == 0);     //  out may be prev
    assert (memcmp (a, b, PB_CHAIN_SIZE) == 0);
    //  Parts: type at 1, header at 9, the producer's pairs 10..25, tail after
    uint8_t pairs_hash [PB_CHAIN_SIZE], parts [PB_CHAIN_SIZE];
    size_t header = 0, pairs = 0;
    assert (pb_envelope_split_stored (record + 9, size - 9, &header, &pairs));
    assert (header == 1 && pairs == 5 + 1 + 8);
    pb_chain_pairs_hash (record + 10, pairs, pairs_hash);
    pb_chain_next (zero, 1, "cpe.test", 8, record + 9, size - 9, pairs, pairs_hash, parts);
    assert (pb_chain_next_record (zero, 1, record, size, a) == 0);
    assert (memcmp (parts, a, PB_CHAIN_SIZE) == 0);
    //  A byte changed in each part changes the hash
    size_t at [] = { 3, 9, 12, 18, size - 1 };
    for (size_t i = 0; i < sizeof at / sizeof at [0]; i++) {
        record [at [i]] ^= 0x01;
        assert (pb_chain_next_record (zero, 1, record, size, b) == 0);
        assert (memcmp (a, b, PB_CHAIN_SIZE) != 0);
        record [at [i]] ^= 0x01;
    }
    //  Not a record: too short for its type, an envelope that is not a
    //  map, a map of one pair, pairs cut short
    assert (pb_chain_next_record (zero, 1, record, 9, b) == PB_EINVAL);
    assert (pb_chain_next_record (zero, 1, "\x01" "x" "\x91\x00", 4, b) == PB_EINVAL);
    assert (pb_chain_next_record (zero, 1, "\x01" "x" "\x81\x00\x00", 5, b) == PB_EINVAL);
    assert (pb_chain_next_record (zero, 1, record, size - 12, b) == PB_EINVAL);
    assert (pb_chain_next_record (zero, 1, "\x01" "x" "\x82\x00\x00\x01\x01", 7, b) == 0);

    char path [] = "/tmp/pb_chain_test.XXXXXX";
    assert (mkdtemp (path));
    pb_chain_report_t report;
    assert (pb_chain_verify (path, &report) == PB_EIO);       //  No log yet
    assert (report.status == PB_CHAIN_UNREADABLE);

    uint8_t prev [PB_CHAIN_SIZE];
    s_test_log (path, 25000, prev);                         //  Three slices
    int rc = pb_chain_verify (path, &report);
    assert (rc == 0 && report.status == PB_CHAIN_INTACT);
    assert (report.head == 25000 && report.checked == 25000);
    assert (memcmp (report.head_hash, prev, PB_CHAIN_SIZE) == 0);

    //  One flipped byte, in the envelope's pairs, its tail or the stored hash
    s_test_tamper (path, 12345, 12);
    rc = pb_chain_verify (path, &report);
    assert (rc == 0 && report.status == PB_CHAIN_ALTERED && report.seq == 12345);
    s_test_tamper (path, 12345, 12);                        //  Flipped back
    rc = pb_chain_verify (path, &report);
    assert (rc == 0 && report.status == PB_CHAIN_INTACT);
    //  Seq 20001's record is 36 bytes: its text at 16..24, ts at 35, then
    //  its hash
    int offsets [] = { 9 + 10 + 3, 35, 36 + 5 };
    for (int i = 0; i < 3; i++) {
        s_test_tamper (path, 20001, offsets [i]);
        rc = pb_chain_verify (path, &report);
        assert (rc == 0 && report.status == PB_CHAIN_ALTERED && report.seq == 20001);
        s_test_tamper (path, 20001, offsets [i]);
    }
    rc = pb_chain_verify (path, &report);
    assert (rc == 0 && report.status == PB_CHAIN_INTACT);

    //  A key that is not a seq, sorted before seq 1 and between the
    //  slices' records 10000 and 10001: named where the walk meets it
    const uint8_t before [7] = { 0 };
    uint8_t between [9] = { 0, 0, 0, 0, 0, 0, 0x27, 0x10, 0 };    //  10000, then 0
    s_test_change (path, "log", before, sizeof before, S_TEST_PUT, "junk", 4);
    rc = pb_chain_verify (path, &report);
    assert (rc == 0 && report.status == PB_CHAIN_ALTERED && report.seq == 1);
    s_test_change (path, "log", before, sizeof before, S_TEST_DELETE, NULL, 0);
    s_test_change (path, "log", between, sizeof between, S_TEST_PUT, "junk", 4);
    rc = pb_chain_verify (path, &report);
    assert (rc == 0 && report.status == PB_CHAIN_ALTERED && report.seq == 10001);
    s_test_change (path, "log", between, sizeof between, S_TEST_DELETE, NULL, 0);
    rc = pb_chain_verify (path, &report);
    assert (rc == 0 && report.status == PB_CHAIN_INTACT);

    //  A record taken out, and the last one taken out
    s_test_tamper (path, 10001, S_TEST_DELETE);
    rc = pb_chain_verify (path, &report);
    assert (rc == 0 && report.status == PB_CHAIN_MISSING);
    assert (report.seq == 10001 && report.last == 10001);
    if (verbose)
        printf ("\n   %s seq=%" PRIu64 "\n", report.reason, report.seq);

    char other [] = "/tmp/pb_chain_test.XXXXXX";
    assert (mkdtemp (other));
    s_test_log (other, 10, prev);
    s_test_tamper (other, 10, S_TEST_DELETE);
    rc = pb_chain_verify (other, &report);
    assert (rc == 0 && report.status == PB_CHAIN_MISSING);
    assert (report.seq == 10 && report.last == 10);

    //  The anchor: this rule's round trip; rule 1's 40 bytes, which the
    //  walk does not check under this rule; no rule's layout
    uint8_t anchor [PB_CHAIN_ANCHOR_SIZE], hash [PB_CHAIN_SIZE];
    unsigned rule = 0;
    uint64_t head = 0;
    pb_chain_anchor_put (77, prev, anchor);
    assert (pb_chain_anchor_get (anchor, sizeof anchor, &rule, &head, hash));
    assert (rule == PB_CHAIN_RULE && head == 77 && memcmp (hash, prev, PB_CHAIN_SIZE) == 0);
    assert (pb_chain_anchor_get (anchor + 1, sizeof anchor - 1, &rule, &head, hash));
    assert (rule == 1 && head == 77);
    assert (!pb_chain_anchor_get (anchor, sizeof anchor - 2, &rule, &head, hash));
    anchor [0] = 1;                     //  Rule 1 never had the byte
    assert (!pb_chain_anchor_get (anchor, sizeof anchor, &rule, &head, hash));
    s_test_anchor (other, anchor + 1, sizeof anchor - 1);
    rc = pb_chain_verify (other, &report);
    assert (rc == PB_EIO && report.status == PB_CHAIN_UNREADABLE);
    assert (strstr (report.reason, "rule 1"));
    s_test_anchor (other, anchor, 3);
    rc = pb_chain_verify (other, &report);
    assert (rc == 0 && report.status == PB_CHAIN_ALTERED);
    assert (strstr (report.reason, "anchor"));

    const char *dirs [] = { path, other };
    for (int d = 0; d < 2; d++) {
        char file [PATH_MAX];
        snprintf (file, sizeof file, "%s/data.mdb", dirs [d]);
        zsys_file_delete (file);
        snprintf (file, sizeof file, "%s/lock.mdb", dirs [d]);
        zsys_file_delete (file);
        zsys_dir_delete ("%s", dirs [d]);
    }
    printf ("OK\n");
}
