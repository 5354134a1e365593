/*  =========================================================================
    pb_chain - the journal log's hash chain: the rule, and the walk that
    checks it

    Every record of the journal's log (services/journal/pb_log.h),
    [type length: 1][type][stored envelope], ends with a 32-byte hash
    chained to the record before it. The stored envelope is one map: its
    header, the pairs its producer sent (P), then the "seq" and "ts" pairs
    the journal added (T) (proto/pb_envelope.h, pb_envelope_split_stored).

        h(0)   = 32 zero bytes
        d      = BLAKE2b-256 (P)
        h(seq) = BLAKE2b-256 (h(seq - 1) || seq as 8 bytes big-endian
                              || [type length][type] || map header
                              || d || T)

    so that a changed byte anywhere in a record, a record moved to another
    seq or a record taken out breaks the chain at that seq. The producer's
    pairs are hashed apart, once: d's first 16 bytes are also the digest
    under which the idempotency index keeps the event (id_conflict), so
    the journal hashes an event's ~200 bytes once, not twice, and chains
    about 100 bytes (one BLAKE2b block) instead of the whole record. The
    log's meta database keeps an anchor, "chain" -> [rule: 1][head seq: 8]
    [h(head): 32], written in the same transaction as the records, so that
    records taken off the end are named too. The rule is 2, this one;
    rule 1 (the whole record hashed, the index's digest of the whole
    envelope) is that of logs written before 2026-12, whose anchor has no
    rule byte: this build neither appends to them nor checks them (move
    their events with the pbctl export of the build that wrote them, and
    pbctl import, which hashes them under this rule). The chain is plain (not
    keyed): it proves that the log was not altered since the head hash an
    operator noted, not that whoever could write the files did not
    recompute it all (see README, Security).

    pb_chain_pairs_hash and pb_chain_next are the rule (used by the
    journal, one of each per appended event, no allocation);
    pb_chain_next_record applies it to a record as the log keeps it.
    pb_chain_verify walks a log directory read-only (MDB_RDONLY, short
    read transactions, so it can run beside a live journal) and names the
    first record that is altered or missing: pbctl verify.
    =========================================================================
*/
#ifndef PB_CHAIN_H_INCLUDED
#define PB_CHAIN_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PB_CHAIN_SIZE 32                //  BLAKE2b-256

//  Set 'out' to d, the hash of a stored envelope's producer's pairs
//  (pb_envelope_pairs of the envelope as it was ingested)
void
    pb_chain_pairs_hash (const void *pairs, size_t size, uint8_t out [PB_CHAIN_SIZE]);

//  Set 'out' to h(seq) from 'prev' = h(seq - 1), the record's 'type' and
//  'stored' envelope, of which the producer's pairs take 'pairs_size'
//  bytes after the map header and hash to 'pairs_hash' (d). 'out' may be
//  'prev' or 'pairs_hash'. Never fails.
void
    pb_chain_next (const uint8_t prev [PB_CHAIN_SIZE], uint64_t seq,
                   const char *type, size_t type_len,
                   const void *stored, size_t stored_size, size_t pairs_size,
                   const uint8_t pairs_hash [PB_CHAIN_SIZE],
                   uint8_t out [PB_CHAIN_SIZE]);

//  The same for a record as the log keeps it, 'size' bytes before its
//  hash: splits it and hashes its pairs. Returns 0, or PB_EINVAL if the
//  bytes are not [type length][type][a map of at least two pairs] (then
//  'out' is untouched). 'out' may be 'prev'.
int
    pb_chain_next_record (const uint8_t prev [PB_CHAIN_SIZE], uint64_t seq,
                          const void *record, size_t size,
                          uint8_t out [PB_CHAIN_SIZE]);

//  The anchor: the rule, the head seq, h(head)
#define PB_CHAIN_RULE 2
#define PB_CHAIN_ANCHOR_KEY "chain"
#define PB_CHAIN_ANCHOR_SIZE (1 + 8 + PB_CHAIN_SIZE)

//  Lay out the anchor of this rule for 'head' and its hash
void
    pb_chain_anchor_put (uint64_t head, const uint8_t hash [PB_CHAIN_SIZE],
                         uint8_t anchor [PB_CHAIN_ANCHOR_SIZE]);

//  Read an anchor of 'size' bytes: false if it is of no rule's layout;
//  else true with *rule_p (1 for rule 1's 40 bytes), *head_p and 'hash'
bool
    pb_chain_anchor_get (const void *anchor, size_t size, unsigned *rule_p,
                         uint64_t *head_p, uint8_t hash [PB_CHAIN_SIZE]);

//  What pb_chain_verify found
typedef enum {
    PB_CHAIN_INTACT,                    //  every record and the anchor agree
    PB_CHAIN_ALTERED,                   //  record 'seq' is not what was logged
    PB_CHAIN_MISSING,                   //  records 'seq'..'last' are absent
    PB_CHAIN_UNREADABLE                 //  no log there, LMDB refused it, or
                                        //  its anchor is of another rule
} pb_chain_status_t;

typedef struct {
    pb_chain_status_t status;
    uint64_t seq;                       //  ALTERED, MISSING: the first seq at fault
    uint64_t last;                      //  MISSING: the last absent seq
    uint64_t checked;                   //  records whose hash was recomputed
    uint64_t head;                      //  INTACT: the last seq
    uint8_t head_hash [PB_CHAIN_SIZE];  //  INTACT: h(head)
    char reason [256];                  //  a sentence on what was found
} pb_chain_report_t;

//  Walk the log in directory 'dir' from seq 1, read-only, and fill
//  *report. Returns 0 when the walk could be done (report->status says
//  how the log is), or PB_EIO when the log cannot be opened or read
//  (status UNREADABLE, reason set).
int
    pb_chain_verify (const char *dir, pb_chain_report_t *report);

//  Self test of this module
void
    pb_chain_test (bool verbose);

#endif
