/*  =========================================================================
    pb_ctl_store - read a worker's store, read-only, for pbctl

    Goes through pb_worker_dump (common/pb_worker.h), which opens the LMDB
    environment with MDB_RDONLY, so pbctl never creates or changes a store
    and never re-implements its layout: every (db, key, value) of meta,
    state and quarantine is handed to a callback, the value as bytes.
    =========================================================================
*/
#ifndef PB_CTL_STORE_H_INCLUDED
#define PB_CTL_STORE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Called for each entry; 'db' and 'key' are nul-terminated (a key that is
//  not printable is given in hex, as pb_worker_dump prints it), 'value' is
//  'size' bytes. All borrowed for the call. Return 0 to go on.
typedef int (pb_ctl_store_fn) (const char *db, const char *key,
                               const uint8_t *value, size_t size, void *arg);

//  Read the store in 'dir'. Returns 0, fn's non-zero return, or -1 if
//  there is no readable store there (said on stderr).
int
    pb_ctl_store_read (const char *dir, pb_ctl_store_fn *fn, void *arg);

//  The applied_seq and log time of the store in 'dir'. Returns 0, or -1.
int
    pb_ctl_store_progress (const char *dir, uint64_t *applied_p, int64_t *now_p);

//  An LMDB environment's size, as the journal's log: data file, map, pages
//  in use
typedef struct {
    uint64_t file_bytes;                //  size of data.mdb
    uint64_t map_bytes;                 //  map size
    uint64_t used_bytes;                //  pages up to the last one in use
} pb_ctl_store_env_t;

//  Read the sizes of the LMDB environment in 'dir', read-only (a running
//  journal's too). Returns 0, or -1 if there is none (nothing created).
int
    pb_ctl_store_env (const char *dir, pb_ctl_store_env_t *env);

//  Self test of this module
void
    pb_ctl_store_test (bool verbose);

#endif
