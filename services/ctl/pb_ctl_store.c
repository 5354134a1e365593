/*  =========================================================================
    pb_ctl_store - read a worker's store, read-only, for pbctl
    =========================================================================
*/
#include "pb_ctl_store.h"
#include "pb_be64.h"
#include "pb_worker.h"

#include <lmdb.h>

static int
s_nibble (char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

//  One dump line "<db> <key> <hex>", cut in place
static int
s_line (char *line, pb_ctl_store_fn *fn, void *arg)
{
    char *key = strchr (line, ' ');
    char *hex = key? strchr (key + 1, ' '): NULL;
    if (!hex)
        return 0;                       //  not a dump line: skip it
    *key++ = 0;
    *hex++ = 0;
    size_t len = strlen (hex);
    uint8_t *value = (uint8_t *) zmalloc (len / 2 + 1);
    size_t size = 0;
    for (size_t i = 0; i + 1 < len; i += 2) {
        int high = s_nibble (hex [i]), low = s_nibble (hex [i + 1]);
        if (high < 0 || low < 0)
            break;
        value [size++] = (uint8_t) (high << 4 | low);
    }
    int rc = fn (line, key, value, size, arg);
    free (value);
    return rc;
}

int
pb_ctl_store_read (const char *dir, pb_ctl_store_fn *fn, void *arg)
{
    char *text = NULL;
    size_t text_size = 0;
    FILE *out = open_memstream (&text, &text_size);
    assert (out);
    int rc = pb_worker_dump (dir, out);
    fclose (out);
    if (rc)
        rc = -1;
    char *line = text;
    while (rc == 0 && line && *line) {
        char *end = strchr (line, '\n');
        if (end)
            *end = 0;
        rc = s_line (line, fn, arg);
        line = end? end + 1: NULL;
    }
    free (text);
    return rc;
}

typedef struct {
    uint64_t applied;
    int64_t now;
} s_progress_t;

static int
s_on_meta (const char *db, const char *key, const uint8_t *value, size_t size,
           void *arg)
{
    s_progress_t *progress = (s_progress_t *) arg;
    if (streq (db, "meta") && size == 8) {
        if (streq (key, "applied_seq"))
            progress->applied = pb_be64_get (value);
        else
        if (streq (key, "now"))
            progress->now = (int64_t) pb_be64_get (value);
    }
    return 0;
}

int
pb_ctl_store_progress (const char *dir, uint64_t *applied_p, int64_t *now_p)
{
    s_progress_t progress = { 0, 0 };
    int rc = pb_ctl_store_read (dir, s_on_meta, &progress);
    if (rc == 0) {
        *applied_p = progress.applied;
        *now_p = progress.now;
    }
    return rc;
}

//  --------------------------------------------------------------------------

int
pb_ctl_store_env (const char *dir, pb_ctl_store_env_t *info)
{
    assert (dir && info);
    memset (info, 0, sizeof *info);
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s/data.mdb", dir);
    ssize_t size = zsys_file_size (path);
    if (size < 0)
        return -1;                      //  Not there: do not let LMDB create it
    MDB_env *env = NULL;
    int rc = mdb_env_create (&env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs (env, 16);
    if (rc == 0)
        rc = mdb_env_open (env, dir, MDB_RDONLY, 0600);
    if (rc == 0) {
        MDB_envinfo env_info;
        MDB_stat env_stat;
        mdb_env_info (env, &env_info);
        mdb_env_stat (env, &env_stat);
        info->file_bytes = (uint64_t) size;
        info->map_bytes = env_info.me_mapsize;
        info->used_bytes = (uint64_t) (env_info.me_last_pgno + 1) * env_stat.ms_psize;
    }
    else
        fprintf (stderr, "pbctl: cannot read the LMDB environment in %s: %s\n", dir,
                 mdb_strerror (rc));
    if (env)
        mdb_env_close (env);
    return rc? -1: 0;
}

//  --------------------------------------------------------------------------
//  Self test: a missing store is refused and created nowhere (stores with
//  data are read by tests/it/it_pbctl.py, from real workers)

void
pb_ctl_store_test (bool verbose)
{
    printf (" * pb_ctl_store: ");
    char dir [] = "/tmp/pb_ctl_store.XXXXXX";
    assert (mkdtemp (dir));
    uint64_t applied = 7;
    int64_t now = 7;
    assert (pb_ctl_store_progress (dir, &applied, &now) == -1);
    assert (applied == 7 && now == 7);
    char path [64];
    snprintf (path, sizeof path, "%s/data.mdb", dir);
    assert (!zsys_file_exists (path));  //  read-only: nothing created
    pb_ctl_store_env_t info;
    assert (pb_ctl_store_env (dir, &info) == -1);
    assert (!zsys_file_exists (path));
    assert (rmdir (dir) == 0);
    printf ("OK\n");
}
