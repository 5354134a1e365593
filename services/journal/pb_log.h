/*  =========================================================================
    pb_log - the journal's event log: one LMDB environment, one writer

    Three named databases in the data directory:
      log    seq (8 bytes, big-endian) -> [type length: 1][type][stored
             envelope][chain: 32]; seqs start at 1 and have no gaps
             (invariant 3); chain is h(seq) of common/pb_chain.h for the
             bytes before it, computed ahead by the journal actor
             (pb_log_hash_ahead) or by pb_log_append
      index  [src length: 1][src][id] -> [seq: 8][digest: 16], the
             idempotency index, written in the same transaction as the
             event it names
      meta   "now" -> the log time (the now of the latest sys.tick, int64
             big-endian); absent before the first tick
             "chain" -> [rule: 1][head seq: 8][h(head): 32], the chain's
             anchor (common/pb_chain.h: a log of another rule is refused),
             rewritten by each commit that appends
    Writes happen in batches: pb_log_begin, any number of pb_log_lookup /
    pb_log_append / pb_log_set_now, then pb_log_commit (one commit, one
    sync: LMDB's default durability, never NOSYNC, NOMETASYNC or WRITEMAP)
    or pb_log_abort. Reads (pb_log_read) use one short read transaction per
    call, so a reader never holds a snapshot between calls and never blocks
    the writer.

    Used by one thread at a time: the journal actor, or its committer
    while that holds a batch (the log is handed over by message); except
    that one reader thread may call pb_log_read and pb_log_head while the
    writer holds a batch (LMDB readers never block the writer; the map is
    not grown while a read is in progress).
    =========================================================================
*/
#ifndef PB_LOG_H_INCLUDED
#define PB_LOG_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pb_chain.h"
#include "pb_error.h"

typedef struct _pb_log_t pb_log_t;

//  Error block -200..-299 (registered in common/pb_error.h)
#define PB_LOG_ERRORS(XX) \
    XX (PB_LOG_NOTFOUND, -200, "not in the log") \
    XX (PB_LOG_FULL,     -201, "log map is full") \
    XX (PB_LOG_NOSPC,    -202, "no space left on the log's disk") \
    XX (PB_LOG_IO,       -203, "log I/O error") \
    XX (PB_LOG_CORRUPT,  -204, "log is corrupt") \
    XX (PB_LOG_AT_MAX,   -205, "log map is at its maximum size") \
    XX (PB_LOG_EXISTS,   -206, "this (src, id) is already in the log")

typedef enum {
#define XX(name, value, text) name = value,
    PB_LOG_ERRORS (XX)
#undef XX
} pb_log_err_t;

//  The index's digest of an event: the first 16 bytes of its pairs hash
//  (pb_chain_pairs_hash of the producer's pairs, pb_envelope_pairs)
#define PB_LOG_DIGEST_SIZE 16

//  The idempotency key of an event: its (src, id)
typedef struct {
    const char *src;                    //  not nul-terminated (borrowed)
    size_t src_len;                     //  1..64
    const char *id;                     //  not nul-terminated (borrowed)
    size_t id_len;                      //  1..128
} pb_log_key_t;

//  One event as pb_log_read hands it out. Every pointer is valid only
//  during the callback (it points into the read transaction).
typedef struct {
    uint64_t seq;
    const char *type;                   //  not nul-terminated
    size_t type_len;
    const void *bytes;                  //  the stored envelope
    size_t size;
} pb_log_event_t;

//  pb_log_read's callback: return 0 to take the event and go on,
//  PB_LOG_STOP to stop before it (it is not consumed), or a negative code
//  to stop and have pb_log_read return that code.
#define PB_LOG_STOP 1
typedef int (pb_log_read_fn) (const pb_log_event_t *event, void *arg);

//  Open (creating if needed) the log in directory 'path' (created if
//  absent), with a map of at least 'map_size' bytes that pb_log_grow may
//  double up to 'map_max'. Clears stale reader slots (mdb_reader_check).
//  Returns 0 and sets *log_p, or PB_LOG_IO (logged with the cause) and
//  leaves *log_p alone; PB_LOG_CORRUPT if LMDB finds the file invalid.
int
    pb_log_open (const char *path, uint64_t map_size, uint64_t map_max,
                 pb_log_t **log_p);

//  Keep 'ahead' bytes of the data file written past LMDB's last page
//  (pb_prealloc: a commit then overwrites instead of appending, and its
//  sync commits no file system metadata); 0: off, the default. Runs once
//  now and after every commit of a small batch (64 KiB put at most; a
//  large one appends, as its sync is mostly its data), by the log's
//  writer: a full disk only pauses it, any other error is PB_LOG_IO (of
//  this call, or of the commit it follows, which is durable then but must
//  not be answered).
int
    pb_log_set_prealloc (pb_log_t *self, uint64_t ahead);

//  Close the log, aborting any open write batch; *self_p set to NULL.
//  NULL-safe, idempotent.
void
    pb_log_destroy (pb_log_t **self_p);

//  The last committed seq (0 for an empty log)
uint64_t
    pb_log_head (pb_log_t *self);

//  The committed log time (0 before the first tick)
int64_t
    pb_log_now (pb_log_t *self);

//  The current map size in bytes
uint64_t
    pb_log_map_size (pb_log_t *self);

//  Bytes of the data file that LMDB uses (the file is larger by what is
//  written ahead, pb_log_set_prealloc)
uint64_t
    pb_log_used_bytes (pb_log_t *self);

//  Begin a write batch. Returns 0, PB_LOG_IO or PB_LOG_CORRUPT (fatal).
int
    pb_log_begin (pb_log_t *self);

//  In a batch: the seq the next pb_log_append will get
uint64_t
    pb_log_next_seq (pb_log_t *self);

//  In a batch: look (src, id) up in the index, including what this batch
//  appended. Returns 0 and sets *seq_p and 'digest', PB_LOG_NOTFOUND, or
//  PB_LOG_CORRUPT / PB_LOG_IO.
int
    pb_log_lookup (pb_log_t *self, const pb_log_key_t *key, uint64_t *seq_p,
                   uint8_t digest [PB_LOG_DIGEST_SIZE]);

//  A record's chain hash computed ahead of its batch, by whoever built
//  the record (the journal actor, while the batch before it commits), for
//  the seq and previous hash it expected. pb_log_append takes it only if
//  both are what the log has then; otherwise it hashes the record itself.
typedef struct {
    uint64_t seq;                       //  the seq the record was built for
    uint8_t prev [PB_CHAIN_SIZE];       //  h(seq - 1) it was hashed after
    uint8_t chain [PB_CHAIN_SIZE];      //  h(seq)
} pb_log_ahead_t;

//  Fill 'ahead' for the record of 'type' and stored envelope 'bytes' at
//  'seq' after 'prev', whose producer's pairs take 'pairs_size' bytes
//  after its map header and hash to 'pairs_hash' (pb_chain_next). Touches
//  no log: any thread may call it.
void
    pb_log_hash_ahead (uint64_t seq, const uint8_t prev [PB_CHAIN_SIZE],
                       const char *type, size_t type_len,
                       const void *bytes, size_t size, size_t pairs_size,
                       const uint8_t pairs_hash [PB_CHAIN_SIZE],
                       pb_log_ahead_t *ahead);

//  Out of a batch: h(head), the committed chain's last hash (zeros for
//  an empty log)
void
    pb_log_chain (pb_log_t *self, uint8_t chain [PB_CHAIN_SIZE]);

//  In a batch: append the stored envelope 'bytes' of type 'type' at
//  pb_log_next_seq () and index it under 'key' with 'digest', unless the
//  index already has 'key' (this batch's appends included): then nothing
//  is written, *seq_p and 'found' get the indexed seq and digest, and the
//  call returns PB_LOG_EXISTS (one index search serves both the check and
//  the insert). The caller has built the stored envelope with that seq;
//  without a usable 'ahead', pb_log_append splits it and hashes it itself.
//  Returns 0; PB_LOG_EXISTS; PB_LOG_FULL (abort, pb_log_grow, and redo the
//  batch); PB_EINVAL (type over 255 bytes, key out of bounds, or, to be
//  hashed here, 'bytes' not in the stored form: nothing is written);
//  PB_LOG_IO / PB_LOG_CORRUPT.
int
    pb_log_append (pb_log_t *self, const pb_log_key_t *key,
                   const uint8_t digest [PB_LOG_DIGEST_SIZE],
                   const char *type, size_t type_len,
                   const void *bytes, size_t size, const pb_log_ahead_t *ahead,
                   uint64_t *seq_p, uint8_t found [PB_LOG_DIGEST_SIZE]);

//  In a batch: set the log time (on appending a sys.tick). Returns as
//  pb_log_append.
int
    pb_log_set_now (pb_log_t *self, int64_t now);

//  Commit the batch and sync it to disk; the batch ends either way.
//  Returns 0 (durable); PB_LOG_FULL (nothing written: grow and redo);
//  PB_LOG_NOSPC (nothing written: answer 'unavailable', try later);
//  PB_LOG_IO or PB_LOG_CORRUPT: fatal, the caller must ACK nothing of the
//  batch and exit (a failed sync is never retried in the same process).
int
    pb_log_commit (pb_log_t *self);

//  Abort the batch, if any: head and log time are as before it.
void
    pb_log_abort (pb_log_t *self);

//  Double the map size, up to map_max. Only between batches. Returns 0,
//  PB_LOG_AT_MAX (already at map_max), or PB_LOG_IO.
int
    pb_log_grow (pb_log_t *self);

//  Read committed events from seq 'from' to 'to' (inclusive, cut at the
//  head), at most 'max_scan' of them, in one read transaction, calling
//  'fn' for each. Sets *next_p to the first seq not consumed. Returns 0,
//  the callback's negative code, or PB_LOG_IO / PB_LOG_CORRUPT.
int
    pb_log_read (pb_log_t *self, uint64_t from, uint64_t to,
                 size_t max_scan, pb_log_read_fn *fn, void *arg,
                 uint64_t *next_p);

//  Clear stale reader slots left by dead processes. Returns how many were
//  cleared, or PB_LOG_IO.
int
    pb_log_reader_check (pb_log_t *self);

//  Name a code of this module, else pb_strerror's
const char *
    pb_log_strerror (int rc);

//  Self test of this module
void
    pb_log_test (bool verbose);

#endif
