/*  =========================================================================
    pb_fuzz_log_record - pb_log's reading of the records it finds on disk

    A log file is trusted less than it seems: a disk, a backup restored by
    hand or an operator's raw write can put anything under a seq. Input:
    [flags: 1 byte][record][0xC1 0xC1][record]... Each record is what
    pb_log.h lays out before the hash ([type length][type][envelope]); the
    target appends its hash chain (pb_chain_next_record; a record that
    does not split into the rule's parts gets 32 bytes of 0xA5, which
    pb_chain_verify must name) and writes the chain's
    anchor in meta, as pb_log_append and pb_log_commit do, so that fuzzed
    records get past pb_log_open's anchor check. Written with raw LMDB at
    seqs 1, 2, ... of a fresh environment. Flags: 1, the first key is 7
    bytes, not 8; 2, the seqs start at 2 (a gap); 4, the meta 'now' is 5
    bytes, not 8; 8, the records are written as given, no hash appended;
    16, no anchor; 32, the anchor's hash is off by one bit; 64, the
    anchor is of rule 1 (no rule byte), which open and verify refuse.
    Then the log is opened with pb_log_open and read from seq 1 with
    pb_log_read, every event it hands out is decoded and validated as a
    stored envelope (as replay and the workers do), and the chain is
    walked by pb_chain_verify (pbctl verify). Whatever the bytes, open,
    read and verify return a code, and what an event hands out lies within
    the record it was read from (LMDB's pages are an mmap that ASan cannot
    guard, so this is checked by hand, against our copy of the records).
    =========================================================================
*/
#include "pb_fuzz.h"

#include <assert.h>
#include <czmq.h>
#include <lmdb.h>
#include <string.h>
#include <unistd.h>

#include "pb_be64.h"
#include "pb_chain.h"
#include "pb_envelope.h"
#include "pb_log.h"

#define S_RECORDS_MAX 64

typedef struct {
    const uint8_t *record [S_RECORDS_MAX];  //  the input's records (borrowed)
    size_t record_size [S_RECORDS_MAX];     //  their sizes
    uint8_t *stored [S_RECORDS_MAX];        //  as written, hash included (owned)
    size_t stored_size [S_RECORDS_MAX];     //  their sizes
    uint64_t first_seq;                     //  the seq of record 0
    size_t count;                           //  records written
    uint64_t expected;                      //  the next seq pb_log_read gives
    bool unsplit;                           //  a record is not in the rule's form
} s_fixture_t;

//  The data directory, made once: libFuzzer's API leaves no other place
//  for a fixture than a static
static char s_dir [64];

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    zsys_init ();
    zsys_set_logstream (NULL);
    zsys_set_logsystem (false);
    zsys_handler_set (NULL);
    const char *base = getenv ("PB_FUZZ_TMP");
    snprintf (s_dir, sizeof s_dir, "%s/pb-fuzz-log.XXXXXX", base? base: "/tmp");
    assert (mkdtemp (s_dir));
    return 0;
}

//  Is 'needle' (size n) a sub-range of 'hay' (size h)?
static bool
s_within (const void *hay, size_t h, const void *needle, size_t n)
{
    if (n == 0)
        return true;
    return n <= h && memmem (hay, h, needle, n) != NULL;
}

static int
s_read (const pb_log_event_t *event, void *arg)
{
    s_fixture_t *fixture = (s_fixture_t *) arg;
    assert (event->seq == fixture->expected);
    assert (event->seq >= fixture->first_seq);
    size_t index = (size_t) (event->seq - fixture->first_seq);
    assert (index < fixture->count);
    const uint8_t *record = fixture->stored [index];
    size_t record_size = fixture->stored_size [index];
    assert (event->type_len + event->size <= record_size);
    assert (s_within (record, record_size, event->type, event->type_len));
    assert (s_within (record, record_size, event->bytes, event->size));
    fixture->expected++;

    //  Decode it from an exact copy, so ASan guards the decoder's reads
    uint8_t *copy = (uint8_t *) malloc (event->size? event->size: 1);
    assert (copy);
    memcpy (copy, event->bytes, event->size);
    pb_limits_t limits = PB_LIMITS_DEFAULTS;
    pb_envelope_t *env = NULL;
    char error [256];
    if (pb_envelope_decode (event->type, event->type_len, copy, event->size,
                            PB_ENVELOPE_STORED, &limits, &env, error,
                            sizeof error) == PB_NAK_NONE) {
        assert (env->type_len == event->type_len);
        pb_envelope_validate_data (env, error, sizeof error);
        pb_envelope_destroy (&env);
    }
    free (copy);
    return 0;
}

//  Write the records with raw LMDB, as pb_log lays them out
static void
s_write (s_fixture_t *fixture, uint8_t flags)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi log, meta;
    int rc = mdb_env_create (&env);
    assert (rc == 0);
    mdb_env_set_maxdbs (env, 4);
    mdb_env_set_mapsize (env, 4 * 1024 * 1024);
    rc = mdb_env_open (env, s_dir, MDB_NOSYNC, 0600);
    assert (rc == 0);
    rc = mdb_txn_begin (env, NULL, 0, &txn);
    assert (rc == 0);
    rc = mdb_dbi_open (txn, "log", MDB_CREATE, &log);
    assert (rc == 0);
    rc = mdb_dbi_open (txn, "meta", MDB_CREATE, &meta);
    assert (rc == 0);
    uint8_t chain [PB_CHAIN_SIZE] = { 0 };
    uint64_t last = 0;
    for (size_t i = 0; i < fixture->count; i++) {
        uint64_t seq = fixture->first_seq + i;
        uint8_t key_bytes [8];
        pb_be64_put (key_bytes, seq);
        MDB_val key = { (i == 0 && (flags & 1))? 7: 8, key_bytes };
        size_t size = fixture->record_size [i];
        uint8_t *value_bytes = (uint8_t *) malloc (size + PB_CHAIN_SIZE);
        assert (value_bytes);
        memcpy (value_bytes, fixture->record [i], size);
        bool unsplit = false;
        if (!(flags & 8)) {
            unsplit = pb_chain_next_record (chain, seq, value_bytes, size, chain) != 0;
            if (unsplit)
                memset (chain, 0xa5, PB_CHAIN_SIZE);
            memcpy (value_bytes + size, chain, PB_CHAIN_SIZE);
            size += PB_CHAIN_SIZE;
        }
        //  The target's own copy of what is stored, for s_read's checks
        fixture->stored [i] = value_bytes;
        fixture->stored_size [i] = size;
        MDB_val value = { size, value_bytes };
        rc = mdb_put (txn, log, &key, &value, 0);
        assert (rc == 0 || rc == MDB_BAD_VALSIZE);
        fixture->unsplit |= unsplit && rc == 0;
        last = seq;
    }
    if (!(flags & 16) && fixture->count) {
        uint8_t anchor [PB_CHAIN_ANCHOR_SIZE];
        pb_chain_anchor_put (last, chain, anchor);
        if (flags & 32)
            anchor [1 + 8] ^= 1;        //  The hash's first byte
        //  64: rule 1's anchor, without the rule byte
        MDB_val key = { strlen (PB_CHAIN_ANCHOR_KEY), PB_CHAIN_ANCHOR_KEY };
        MDB_val value = { (flags & 64)? sizeof anchor - 1: sizeof anchor,
                          (flags & 64)? anchor + 1: anchor };
        rc = mdb_put (txn, meta, &key, &value, 0);
        assert (rc == 0);
    }
    if (flags & 4) {
        MDB_val key = { 3, "now" }, value = { 5, "\x01\x02\x03\x04\x05" };
        rc = mdb_put (txn, meta, &key, &value, 0);
        assert (rc == 0);
    }
    rc = mdb_txn_commit (txn);
    assert (rc == 0);
    mdb_env_close (env);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    s_fixture_t fixture;
    memset (&fixture, 0, sizeof fixture);
    uint8_t flags = data [0];
    fixture.first_seq = (flags & 2)? 2: 1;
    fixture.expected = 1;
    //  Split the rest into records (an empty record is a valid value)
    const uint8_t *at = data + 1, *end = data + size;
    while (at <= end && fixture.count < S_RECORDS_MAX) {
        const uint8_t *sep = (const uint8_t *) memmem (at, (size_t) (end - at),
            PB_FUZZ_SEPARATOR, PB_FUZZ_SEPARATOR_SIZE);
        const uint8_t *stop = sep? sep: end;
        fixture.record [fixture.count] = at;
        fixture.record_size [fixture.count] = (size_t) (stop - at);
        fixture.count++;
        if (!sep)
            break;
        at = sep + PB_FUZZ_SEPARATOR_SIZE;
    }
    char path [96];
    snprintf (path, sizeof path, "%s/data.mdb", s_dir);
    unlink (path);
    snprintf (path, sizeof path, "%s/lock.mdb", s_dir);
    unlink (path);
    s_write (&fixture, flags);

    //  An anchor of rule 1 is refused by open and by verify, whatever else
    bool old_rule = (flags & 64) && !(flags & 16) && fixture.count;
    pb_log_t *log = NULL;
    int rc = pb_log_open (s_dir, 4 * 1024 * 1024, 8 * 1024 * 1024, &log);
    assert (!old_rule || rc != 0);
    if (rc == 0) {
        uint64_t head = pb_log_head (log);
        uint64_t next = 0;
        rc = pb_log_read (log, 1, UINT64_MAX, S_RECORDS_MAX + 1, s_read,
                          &fixture, &next);
        assert (next == fixture.expected);
        assert (rc != 0 || next == head + 1);
        pb_log_destroy (&log);
    }
    else
        assert (log == NULL);
    pb_chain_report_t report;
    rc = pb_chain_verify (s_dir, &report);
    assert (rc == 0 || report.status == PB_CHAIN_UNREADABLE);
    assert (!fixture.unsplit || report.status != PB_CHAIN_INTACT);
    assert (!old_rule || report.status == PB_CHAIN_UNREADABLE);
    assert (memchr (report.reason, 0, sizeof report.reason));
    for (size_t i = 0; i < fixture.count; i++)
        free (fixture.stored [i]);
    return 0;
}
