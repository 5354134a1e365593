/*  =========================================================================
    pb_prealloc - an LMDB data file kept written ahead of its last page

    See pb_prealloc.h for why. One run writes at most S_STEP bytes in
    S_CHUNK pieces from a static zero buffer, then one fdatasync.
    =========================================================================
*/
#include "pb_prealloc.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

//  Bytes of one pwrite: one page. The page cache keeps a range in the
//  folios that first wrote it, and a large write makes large ones (seen
//  on Linux 6.18, ext4): zeros written 256 KiB at a time made folios that
//  LMDB's 4 KiB page writes then dirtied whole, so every commit sent up
//  to 256 KiB a page to the disk and its sync waited for all of it (the
//  kernel's write_bytes of the journal was 8 times what it wrote through
//  its write calls; workers_bench prints the ratio). Written a page at a
//  time, the range is held in pages, and a commit writes back what it
//  changed.
#define S_CHUNK      4096
#define S_RETRY_MSEC 1000               //  pause after a failure

//  Bytes one run writes at most: its cost (the writes and their sync,
//  about 1.5 ms a MiB here) stays bounded, and after LMDB itself went
//  past what was written ahead (a large batch) the file catches up over
//  a few runs
#define S_STEP (1024 * 1024)

static const uint8_t s_zeros [S_CHUNK];

static int64_t
s_mono_msec (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
pb_prealloc_init (pb_prealloc_t *self, const char *name, uint64_t ahead)
{
    assert (self);
    assert (name);
    memset (self, 0, sizeof *self);
    self->name = name;
    self->ahead = ahead;
}

//  Bytes of the pages in use: through LMDB's last page
static uint64_t
s_used (const MDB_envinfo *info, const MDB_stat *stat)
{
    return ((uint64_t) info->me_last_pgno + 1) * stat->ms_psize;
}

uint64_t
pb_prealloc_used (MDB_env *env)
{
    MDB_envinfo info;
    MDB_stat stat;
    if (mdb_env_info (env, &info) || mdb_env_stat (env, &stat))
        return 0;
    return s_used (&info, &stat);
}

//  Whether a file of 'size' bytes is short of 'target' by half a step
static bool
s_short (uint64_t size, uint64_t target, uint64_t step)
{
    return size < target && (target - size) * 2 >= step;
}

//  Where a run should write, [*from_p, *to_p); false if nowhere
static bool
s_wanted (pb_prealloc_t *self, MDB_env *env, mdb_filehandle_t fd,
          uint64_t *from_p, uint64_t *to_p)
{
    MDB_envinfo info;
    MDB_stat stat;
    if (mdb_env_info (env, &info) || mdb_env_stat (env, &stat))
        return false;
    uint64_t target = s_used (&info, &stat) + self->ahead;
    if (target > (uint64_t) info.me_mapsize)
        target = (uint64_t) info.me_mapsize;
    //  Half a step missing at least (or half of a smaller 'ahead'). The
    //  file never shrinks under LMDB, so a size it had answers most runs
    //  without asking the kernel
    uint64_t step = self->ahead < S_STEP? self->ahead: S_STEP;
    uint64_t size = self->size_floor;
    if (s_short (size, target, step)) {
        struct stat st;
        if (fstat (fd, &st))
            return false;
        size = self->size_floor = (uint64_t) st.st_size;
    }
    if (!s_short (size, target, step))
        return false;
    *from_p = size;
    *to_p = target - size > S_STEP? size + S_STEP: target;
    return true;
}

int
pb_prealloc_run (pb_prealloc_t *self, MDB_env *env)
{
    assert (self);
    assert (env);
    if (self->ahead == 0 || (self->retry_at && s_mono_msec () < self->retry_at))
        return 0;
    mdb_filehandle_t fd;
    uint64_t from, to;
    if (mdb_env_get_fd (env, &fd) || !s_wanted (self, env, fd, &from, &to))
        return 0;                       //  Most runs: enough is written ahead
    //  Under LMDB's writer lock (an empty write transaction): no writer, in
    //  this process or another, writes a page meanwhile, and the last page
    //  is the committed one
    //  (If LMDB refuses one, it is the next real transaction's to meet.)
    MDB_txn *txn;
    int rc = 0;
    if (mdb_txn_begin (env, NULL, 0, &txn))
        return 0;
    if (!s_wanted (self, env, fd, &from, &to)) {
        mdb_txn_abort (txn);
        return 0;
    }
    //  Never the last of the disk: with less than twice the need free,
    //  nothing is written, and LMDB meets a full disk as without this
    struct statvfs vfs;
    if (fstatvfs (fd, &vfs) == 0
    &&  (uint64_t) vfs.f_bavail * vfs.f_frsize < 2 * (to - from)) {
        mdb_txn_abort (txn);
        return 0;
    }
    uint64_t at = from;
    while (at < to && rc == 0) {
        size_t n = to - at < S_CHUNK? (size_t) (to - at): S_CHUNK;
        ssize_t done = pwrite (fd, s_zeros, n, (off_t) at);
        if (done > 0)
            at += (uint64_t) done;
        else
            rc = done < 0 && errno? errno: EIO;
    }
    if (rc == 0 && fdatasync (fd))
        rc = errno? errno: EIO;
    if (rc == 0) {
        self->written += at - from;
        self->size_floor = at;
    }
    else {
        self->size_floor = 0;           //  Asked again next time
        if (ftruncate (fd, (off_t) from))
            rc = errno? errno: EIO;     //  The file ends where it did, or
    }                                   //  the disk is in trouble
    mdb_txn_abort (txn);
    if (pb_prealloc_full (rc) && !self->last_errno)
        zsys_warning ("%s: disk full, the data file is not written ahead", self->name);
    else
    if (rc == 0 && self->last_errno)
        zsys_notice ("%s: the data file is written ahead again", self->name);
    self->last_errno = rc;
    self->retry_at = rc? s_mono_msec () + S_RETRY_MSEC: 0;
    return rc;
}

bool
pb_prealloc_full (int rc)
{
    return rc == ENOSPC || rc == EDQUOT;
}

//  --------------------------------------------------------------------------
//  Selftest

void
pb_prealloc_test (bool verbose)
{
    printf (" * pb_prealloc: ");
    char dir [] = "/tmp/pb_prealloc_test.XXXXXX";
    assert (mkdtemp (dir));
    MDB_env *env;
    assert (mdb_env_create (&env) == 0);
    assert (mdb_env_set_mapsize (env, 4 << 20) == 0);
    assert (mdb_env_open (env, dir, 0, 0600) == 0);
    char path [64];
    snprintf (path, sizeof path, "%s/data.mdb", dir);
    struct stat st;

    //  Off: nothing is written
    pb_prealloc_t pre;
    pb_prealloc_init (&pre, "pb_prealloc test", 0);
    assert (pb_prealloc_run (&pre, env) == 0);
    assert (pre.written == 0);

    //  Values appended commit by commit: the file stays 'ahead' past the
    //  last page (never past the map), every value reads back, and a
    //  reopen sees them all
    pb_prealloc_init (&pre, "pb_prealloc test", 1 << 20);
    MDB_dbi dbi = 0;
    char value [3000];
    for (uint32_t i = 0; i < 600; i++) {
        MDB_txn *txn;
        assert (mdb_txn_begin (env, NULL, 0, &txn) == 0);
        if (i == 0)
            assert (mdb_dbi_open (txn, NULL, 0, &dbi) == 0);
        memset (value, 'a' + i % 26, sizeof value);
        uint8_t key [4] = { (uint8_t) (i >> 24), (uint8_t) (i >> 16), (uint8_t) (i >> 8), (uint8_t) i };
        MDB_val k = { sizeof key, key }, v = { sizeof value, value };
        int rc = mdb_put (txn, dbi, &k, &v, MDB_APPEND);
        if (rc == MDB_MAP_FULL) {       //  The map is the bound of 'ahead'
            mdb_txn_abort (txn);
            break;
        }
        assert (rc == 0);
        assert (mdb_txn_commit (txn) == 0);
        assert (pb_prealloc_run (&pre, env) == 0);
        assert (stat (path, &st) == 0);
        uint64_t used = pb_prealloc_used (env);
        assert ((uint64_t) st.st_size >= used);
        assert ((uint64_t) st.st_size <= 4 << 20);
        assert ((uint64_t) st.st_size >= used + (1 << 19) || (uint64_t) st.st_size == 4 << 20);
    }
    assert (pre.written >= 1 << 20);
    uint64_t used = pb_prealloc_used (env);
    mdb_env_close (env);
    assert (mdb_env_create (&env) == 0);
    assert (mdb_env_open (env, dir, MDB_RDONLY, 0600) == 0);
    assert (pb_prealloc_used (env) == used);
    MDB_txn *txn;
    assert (mdb_txn_begin (env, NULL, MDB_RDONLY, &txn) == 0);
    MDB_cursor *cursor;
    assert (mdb_cursor_open (txn, dbi, &cursor) == 0);
    MDB_val k, v;
    uint32_t count = 0;
    while (mdb_cursor_get (cursor, &k, &v, count? MDB_NEXT: MDB_FIRST) == 0) {
        assert (v.mv_size == sizeof value);
        char expected = (char) ('a' + count % 26);
        assert (((char *) v.mv_data) [0] == expected);
        assert (((char *) v.mv_data) [sizeof value - 1] == expected);
        count++;
    }
    assert (count > 100);
    mdb_cursor_close (cursor);
    mdb_txn_abort (txn);
    mdb_env_close (env);
    if (verbose)
        printf ("(%u values, %llu zero bytes) ", count, (unsigned long long) pre.written);
    char rm [96];
    snprintf (rm, sizeof rm, "rm -rf %s", dir);
    assert (system (rm) == 0);
    printf ("OK\n");
}
