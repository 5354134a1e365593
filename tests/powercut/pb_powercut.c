/*  =========================================================================
    pb_powercut - test-only LD_PRELOAD shim: what a power cut would lose

    A kill -9 loses what a process held in memory; a power cut also loses
    what the kernel had not yet written to the disk. This shim records,
    for every file under $PB_POWERCUT_DIR, the writes made since that
    file's last fsync/fdatasync, in an undo log ($PB_POWERCUT_LOG): before
    each such write it appends the region's current bytes (and the file's
    size), so that after a kill -9 the harness (powercut.py) can put back
    all of those regions, or a random subset of their 512-byte sectors, as
    a disk that lost its cache would have them, before the next start.

    Counted as synced at once: writes through a descriptor opened with
    O_DSYNC or O_SYNC (LMDB writes its meta page so, unless MDB_NOSYNC or
    MDB_NOMETASYNC). A successful fsync or fdatasync marks every earlier
    write of that file as synced (a record 'S' in the undo log). Caught:
    write, pwrite, pwrite64, writev, pwritev, pwritev64, pwritev2 and
    ftruncate. Not caught: stores into a MAP_SHARED mapping (MDB_WRITEMAP,
    which neither the journal nor the workers use: the shim refuses msync
    loudly so a change of that is seen), and directory entries (the tests
    cut only after the files exist).

    Undo log records, little-endian, each appended with one write(2) before
    the data write it describes (so a kill between the two only restores
    bytes that were never changed):
      'W' u32 path_len, path, u64 offset, u64 len, u64 size_before,
          u64 saved, saved bytes (the region's bytes within size_before)
      'S' u32 path_len, path (after the sync returned 0)
      'T' u32 path_len, path, u64 size_before, u64 new_size (ftruncate)

    A preload shim has no object to hang state on: its state is one static
    struct, guarded by a mutex (the journal writes from its committer).
    Test-only: never installed, built only under tests/.
    =========================================================================
*/
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define S_FD_MAX 4096

typedef struct {
    char *path;                         //  file under the watched dir (owned)
    bool dsync;                         //  opened O_DSYNC/O_SYNC: writes are synced
} s_fd_t;

typedef struct {
    pthread_mutex_t lock;               //  guards everything below
    bool ready;                         //  the environment was read
    char dir [PATH_MAX];                //  watched directory, absolute, no trailing /
    size_t dir_len;
    int log_fd;                         //  the undo log, O_APPEND (-1: off)
    s_fd_t fds [S_FD_MAX];              //  watched descriptors
    ssize_t (*real_write) (int, const void *, size_t);
    ssize_t (*real_pwrite) (int, const void *, size_t, off_t);
    ssize_t (*real_pwrite64) (int, const void *, size_t, off_t);
    ssize_t (*real_writev) (int, const struct iovec *, int);
    ssize_t (*real_pwritev) (int, const struct iovec *, int, off_t);
    ssize_t (*real_pwritev64) (int, const struct iovec *, int, off_t);
    ssize_t (*real_pwritev2) (int, const struct iovec *, int, off_t, int);
    int (*real_open) (const char *, int, ...);
    int (*real_open64) (const char *, int, ...);
    int (*real_openat) (int, const char *, int, ...);
    int (*real_openat64) (int, const char *, int, ...);
    int (*real_close) (int);
    int (*real_fsync) (int);
    int (*real_fdatasync) (int);
    int (*real_ftruncate) (int, off_t);
    int (*real_msync) (void *, size_t, int);
} s_shim_t;

static s_shim_t s_shim = { .lock = PTHREAD_MUTEX_INITIALIZER, .log_fd = -1 };

static void
s_init_locked (void)
{
    if (s_shim.ready)
        return;
    s_shim.real_write = dlsym (RTLD_NEXT, "write");
    s_shim.real_pwrite = dlsym (RTLD_NEXT, "pwrite");
    s_shim.real_pwrite64 = dlsym (RTLD_NEXT, "pwrite64");
    s_shim.real_writev = dlsym (RTLD_NEXT, "writev");
    s_shim.real_pwritev = dlsym (RTLD_NEXT, "pwritev");
    s_shim.real_pwritev64 = dlsym (RTLD_NEXT, "pwritev64");
    s_shim.real_pwritev2 = dlsym (RTLD_NEXT, "pwritev2");
    s_shim.real_open = dlsym (RTLD_NEXT, "open");
    s_shim.real_open64 = dlsym (RTLD_NEXT, "open64");
    s_shim.real_openat = dlsym (RTLD_NEXT, "openat");
    s_shim.real_openat64 = dlsym (RTLD_NEXT, "openat64");
    s_shim.real_close = dlsym (RTLD_NEXT, "close");
    s_shim.real_fsync = dlsym (RTLD_NEXT, "fsync");
    s_shim.real_fdatasync = dlsym (RTLD_NEXT, "fdatasync");
    s_shim.real_ftruncate = dlsym (RTLD_NEXT, "ftruncate");
    s_shim.real_msync = dlsym (RTLD_NEXT, "msync");
    const char *dir = getenv ("PB_POWERCUT_DIR");
    const char *log = getenv ("PB_POWERCUT_LOG");
    if (dir && log && realpath (dir, s_shim.dir)) {
        s_shim.dir_len = strlen (s_shim.dir);
        s_shim.log_fd = s_shim.real_open (log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (s_shim.log_fd < 0)
            fprintf (stderr, "pb_powercut: cannot open %s: %s\n", log, strerror (errno));
    }
    else
    if (dir && log)
        //  The dir does not exist yet: retried at the next open
        return;
    s_shim.ready = true;
}

//  Is 'path' (absolute, resolved) under the watched dir?
static bool
s_watched (const char *path)
{
    return s_shim.log_fd >= 0 && strncmp (path, s_shim.dir, s_shim.dir_len) == 0
        && (path [s_shim.dir_len] == '/' || path [s_shim.dir_len] == 0);
}

//  After a successful open: remember the fd if its file is watched
static void
s_track (int fd, int flags)
{
    if (fd < 0 || fd >= S_FD_MAX)
        return;
    pthread_mutex_lock (&s_shim.lock);
    s_init_locked ();
    free (s_shim.fds [fd].path);
    s_shim.fds [fd].path = NULL;
    char link [64], path [PATH_MAX];
    snprintf (link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink (link, path, sizeof path - 1);
    if (len > 0) {
        path [len] = 0;
        if (s_watched (path)) {
            s_shim.fds [fd].path = strdup (path);
            s_shim.fds [fd].dsync = (flags & O_DSYNC) || (flags & O_SYNC) == O_SYNC;
        }
    }
    pthread_mutex_unlock (&s_shim.lock);
}

//  Append one record to the undo log, whole, or die: a record lost would
//  make the harness restore the wrong bytes and blame the journal
static void
s_log (const void *bytes, size_t size)
{
    const uint8_t *at = (const uint8_t *) bytes;
    while (size) {
        ssize_t n = s_shim.real_write (s_shim.log_fd, at, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf (stderr, "pb_powercut: undo log write failed: %s\n", strerror (errno));
            abort ();
        }
        at += n;
        size -= (size_t) n;
    }
}

//  Record the current bytes of [offset, offset+len) of fd's file. Called
//  with the lock held, before the data write.
static void
s_save (int fd, uint64_t offset, uint64_t len)
{
    const char *path = s_shim.fds [fd].path;
    struct stat st;
    if (fstat (fd, &st))
        return;
    uint64_t size = (uint64_t) st.st_size;
    uint64_t saved = offset < size? (len < size - offset? len: size - offset): 0;
    uint32_t path_len = (uint32_t) strlen (path);
    size_t head = 1 + 4 + path_len + 8 * 4;
    uint8_t *record = (uint8_t *) malloc (head + saved);
    if (!record)
        abort ();
    uint8_t *p = record;
    *p++ = 'W';
    memcpy (p, &path_len, 4); p += 4;
    memcpy (p, path, path_len); p += path_len;
    memcpy (p, &offset, 8); p += 8;
    memcpy (p, &len, 8); p += 8;
    memcpy (p, &size, 8); p += 8;
    memcpy (p, &saved, 8); p += 8;
    uint64_t got = 0;
    while (got < saved) {
        ssize_t n = pread (fd, p + got, saved - got, (off_t) (offset + got));
        if (n <= 0)
            break;
        got += (uint64_t) n;
    }
    if (got < saved) {                  //  Shorter than fstat said: keep what was read
        saved = got;
        memcpy (record + 1 + 4 + path_len + 24, &saved, 8);
    }
    s_log (record, head + saved);
    free (record);
}

//  Before a write of 'len' bytes at 'offset' (-1: the fd's position)
static bool
s_before_write (int fd, off_t offset, size_t len)
{
    if (fd < 0 || fd >= S_FD_MAX || len == 0)
        return false;
    pthread_mutex_lock (&s_shim.lock);
    if (!s_shim.fds [fd].path || s_shim.fds [fd].dsync) {
        pthread_mutex_unlock (&s_shim.lock);
        return false;
    }
    if (offset < 0)
        offset = lseek (fd, 0, SEEK_CUR);
    if (offset >= 0)
        s_save (fd, (uint64_t) offset, len);
    return true;                        //  Locked: s_after_write unlocks
}

static void
s_after_write (bool locked)
{
    if (locked)
        pthread_mutex_unlock (&s_shim.lock);
}

static size_t
s_iov_len (const struct iovec *iov, int count)
{
    size_t len = 0;
    for (int i = 0; i < count; i++)
        len += iov [i].iov_len;
    return len;
}

static void
s_synced (int fd)
{
    if (fd < 0 || fd >= S_FD_MAX)
        return;
    pthread_mutex_lock (&s_shim.lock);
    const char *path = s_shim.fds [fd].path;
    if (path) {
        uint32_t path_len = (uint32_t) strlen (path);
        uint8_t record [1 + 4 + PATH_MAX];
        record [0] = 'S';
        memcpy (record + 1, &path_len, 4);
        memcpy (record + 5, path, path_len);
        s_log (record, 5 + path_len);
    }
    pthread_mutex_unlock (&s_shim.lock);
}

#define S_INIT() do { \
        if (!s_shim.ready) { \
            pthread_mutex_lock (&s_shim.lock); \
            s_init_locked (); \
            pthread_mutex_unlock (&s_shim.lock); \
        } \
    } while (0)

//  --------------------------------------------------------------------------
//  The interposed calls

static mode_t
s_mode (int flags, va_list ap)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE? (mode_t) va_arg (ap, int): 0;
}

int
open (const char *path, int flags, ...)
{
    S_INIT ();
    va_list ap;
    va_start (ap, flags);
    mode_t mode = s_mode (flags, ap);
    va_end (ap);
    int fd = s_shim.real_open (path, flags, mode);
    s_track (fd, flags);
    return fd;
}

int
open64 (const char *path, int flags, ...)
{
    S_INIT ();
    va_list ap;
    va_start (ap, flags);
    mode_t mode = s_mode (flags, ap);
    va_end (ap);
    int fd = s_shim.real_open64 (path, flags, mode);
    s_track (fd, flags);
    return fd;
}

int
openat (int dirfd, const char *path, int flags, ...)
{
    S_INIT ();
    va_list ap;
    va_start (ap, flags);
    mode_t mode = s_mode (flags, ap);
    va_end (ap);
    int fd = s_shim.real_openat (dirfd, path, flags, mode);
    s_track (fd, flags);
    return fd;
}

int
openat64 (int dirfd, const char *path, int flags, ...)
{
    S_INIT ();
    va_list ap;
    va_start (ap, flags);
    mode_t mode = s_mode (flags, ap);
    va_end (ap);
    int fd = s_shim.real_openat64 (dirfd, path, flags, mode);
    s_track (fd, flags);
    return fd;
}

int
close (int fd)
{
    S_INIT ();
    if (fd >= 0 && fd < S_FD_MAX) {
        pthread_mutex_lock (&s_shim.lock);
        free (s_shim.fds [fd].path);
        s_shim.fds [fd].path = NULL;
        pthread_mutex_unlock (&s_shim.lock);
    }
    return s_shim.real_close (fd);
}

ssize_t
write (int fd, const void *buf, size_t len)
{
    S_INIT ();
    bool locked = s_before_write (fd, -1, len);
    ssize_t rc = s_shim.real_write (fd, buf, len);
    s_after_write (locked);
    return rc;
}

ssize_t
pwrite (int fd, const void *buf, size_t len, off_t offset)
{
    S_INIT ();
    bool locked = s_before_write (fd, offset, len);
    ssize_t rc = s_shim.real_pwrite (fd, buf, len, offset);
    s_after_write (locked);
    return rc;
}

ssize_t
pwrite64 (int fd, const void *buf, size_t len, off_t offset)
{
    S_INIT ();
    bool locked = s_before_write (fd, offset, len);
    ssize_t rc = s_shim.real_pwrite64 (fd, buf, len, offset);
    s_after_write (locked);
    return rc;
}

ssize_t
writev (int fd, const struct iovec *iov, int count)
{
    S_INIT ();
    bool locked = s_before_write (fd, -1, s_iov_len (iov, count));
    ssize_t rc = s_shim.real_writev (fd, iov, count);
    s_after_write (locked);
    return rc;
}

ssize_t
pwritev (int fd, const struct iovec *iov, int count, off_t offset)
{
    S_INIT ();
    bool locked = s_before_write (fd, offset, s_iov_len (iov, count));
    ssize_t rc = s_shim.real_pwritev (fd, iov, count, offset);
    s_after_write (locked);
    return rc;
}

ssize_t
pwritev64 (int fd, const struct iovec *iov, int count, off_t offset)
{
    S_INIT ();
    bool locked = s_before_write (fd, offset, s_iov_len (iov, count));
    ssize_t rc = s_shim.real_pwritev64 (fd, iov, count, offset);
    s_after_write (locked);
    return rc;
}

ssize_t
pwritev2 (int fd, const struct iovec *iov, int count, off_t offset, int flags)
{
    S_INIT ();
    bool locked = s_before_write (fd, offset, s_iov_len (iov, count));
    ssize_t rc = s_shim.real_pwritev2 (fd, iov, count, offset, flags);
    s_after_write (locked);
    //  RWF_DSYNC / RWF_SYNC make this one write synced
    if (rc >= 0 && locked && (flags & (RWF_DSYNC | RWF_SYNC)))
        s_synced (fd);
    return rc;
}

int
ftruncate (int fd, off_t length)
{
    S_INIT ();
    if (fd >= 0 && fd < S_FD_MAX) {
        pthread_mutex_lock (&s_shim.lock);
        const char *path = s_shim.fds [fd].path;
        struct stat st;
        if (path && fstat (fd, &st) == 0) {
            //  A shrink loses bytes: save them first, as a write would
            if ((uint64_t) length < (uint64_t) st.st_size)
                s_save (fd, (uint64_t) length, (uint64_t) st.st_size - (uint64_t) length);
            uint32_t path_len = (uint32_t) strlen (path);
            uint8_t record [1 + 4 + PATH_MAX + 16];
            uint64_t before = (uint64_t) st.st_size, after = (uint64_t) length;
            record [0] = 'T';
            memcpy (record + 1, &path_len, 4);
            memcpy (record + 5, path, path_len);
            memcpy (record + 5 + path_len, &before, 8);
            memcpy (record + 13 + path_len, &after, 8);
            s_log (record, 21 + path_len);
        }
        pthread_mutex_unlock (&s_shim.lock);
    }
    return s_shim.real_ftruncate (fd, length);
}

int
fsync (int fd)
{
    S_INIT ();
    int rc = s_shim.real_fsync (fd);
    if (rc == 0)
        s_synced (fd);
    return rc;
}

int
fdatasync (int fd)
{
    S_INIT ();
    int rc = s_shim.real_fdatasync (fd);
    if (rc == 0)
        s_synced (fd);
    return rc;
}

int
msync (void *addr, size_t len, int flags)
{
    S_INIT ();
    if (s_shim.log_fd >= 0) {
        fprintf (stderr, "pb_powercut: msync called: writes through a shared "
                 "mapping (MDB_WRITEMAP?) are not recorded, the test would be void\n");
        abort ();
    }
    return s_shim.real_msync (addr, len, flags);
}
