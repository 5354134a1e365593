/*  =========================================================================
    pb_prealloc - an LMDB data file kept written ahead of its last page

    A sync of a file that grew since the last one also commits the file
    system's own journal (the new size, the newly allocated blocks): on
    ext4 here an fdatasync after an append takes about twice as long as
    one after an overwrite of blocks already written, and every such
    commit is one more flush that the other processes' syncs queue
    behind. LMDB appends at the end of its data file, so each of its
    commits is such an append. Keeping the file written (with zeros)
    some way past LMDB's last page makes its commits overwrites.

    Zeros, not fallocate: a fallocated extent is "unwritten" until its
    first write, and that first write is a change of metadata again.

    Safe because it runs under LMDB's writer lock (an empty write
    transaction), so no writer writes a page meanwhile, past a last page
    that is the committed one; and a reader never reads past its
    snapshot's. A copy
    (mdb_env_copy) stops at the last page. A failure (a full disk) leaves
    the file as it was, with some zeros more past the end, and is tried
    again only after a pause: ENOSPC is then LMDB's to meet, as before.
    =========================================================================
*/
#ifndef PB_PREALLOC_H_INCLUDED
#define PB_PREALLOC_H_INCLUDED

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *name;                   //  for the log (borrowed, static)
    uint64_t ahead;                     //  bytes kept written past the last page
    int64_t retry_at;                   //  after a failure: not before (mono ms)
    uint64_t written;                   //  zero bytes written since start
    int last_errno;                     //  of the last failure, or 0
    uint64_t size_floor;                //  the data file is at least this long
} pb_prealloc_t;

//  Keep 'ahead' bytes written past the last page (0: off) of the store
//  'name' (for the log: a full disk is logged once per series)
void
    pb_prealloc_init (pb_prealloc_t *self, const char *name, uint64_t ahead);

//  Between transactions, by the environment's writer: if half a MiB or
//  more is missing of 'ahead' past LMDB's last page, write zeros towards
//  it, a MiB at most (never past the map size, never with less than twice
//  that free on the disk), and sync them, under LMDB's writer lock. Returns 0 (written, or nothing
//  to do), or the errno of a failure, with the file cut back to where it
//  ended: ENOSPC or EDQUOT are the disk's, and nothing is lost (tried
//  again after a pause); any other is an I/O error of the store's own
//  disk, for the caller to treat as it treats a failed commit.
int
    pb_prealloc_run (pb_prealloc_t *self, MDB_env *env);

//  Whether a pb_prealloc_run code is the disk being full (not an I/O error)
bool
    pb_prealloc_full (int rc);

//  Bytes of the data file that LMDB uses: (last page + 1) * page size
uint64_t
    pb_prealloc_used (MDB_env *env);

void
    pb_prealloc_test (bool verbose);

#endif
