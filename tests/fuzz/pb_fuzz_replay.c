/*  =========================================================================
    pb_fuzz_replay - replay fuzz inputs through a target, without libFuzzer

    Usage: pb_fuzz_<target> FILE|DIR ...  Every regular file named (a
    directory: every file in it) is read and passed once to
    LLVMFuzzerTestOneInput. A crash (an assert, a sanitizer report) fails
    the run; otherwise it prints how many inputs were replayed and exits 0.
    This is how a crash found by libFuzzer stays a regression test: its
    input goes into tests/fuzz/corpus/<target>/ and ctest replays it in
    the normal and the sanitizer builds.
    =========================================================================
*/
#include "pb_fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

//  Weak: a target without a fixture does not define it
__attribute__ ((weak)) int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    return 0;
}

//  Read one file and run it; returns 0, or -1 if it cannot be read
static int
s_replay_file (const char *path)
{
    FILE *file = fopen (path, "rb");
    if (!file) {
        fprintf (stderr, "pb_fuzz_replay: cannot open %s\n", path);
        return -1;
    }
    int rc = 0;
    uint8_t *data = NULL;
    size_t size = 0, cap = 0;
    while (1) {
        if (size == cap) {
            cap = cap? cap * 2: 4096;
            uint8_t *more = (uint8_t *) realloc (data, cap);
            if (!more) {
                rc = -1;
                goto cleanup;
            }
            data = more;
        }
        size_t got = fread (data + size, 1, cap - size, file);
        if (got == 0)
            break;
        size += got;
    }
    if (ferror (file)) {
        fprintf (stderr, "pb_fuzz_replay: cannot read %s\n", path);
        rc = -1;
        goto cleanup;
    }
    //  A copy of exactly 'size' bytes, so ASan sees any read past the end
    uint8_t *exact = (uint8_t *) malloc (size? size: 1);
    if (!exact) {
        rc = -1;
        goto cleanup;
    }
    memcpy (exact, data, size);
    LLVMFuzzerTestOneInput (exact, size);
    free (exact);
cleanup:
    free (data);
    fclose (file);
    return rc;
}

//  Compare for qsort: replay a directory in name order, reproducibly
static int
s_compare (const void *a, const void *b)
{
    return strcmp (*(char *const *) a, *(char *const *) b);
}

//  Replay 'path' (a file or every file of a directory); count them
static int
s_replay (const char *path, size_t *count_p)
{
    struct stat st;
    if (stat (path, &st)) {
        fprintf (stderr, "pb_fuzz_replay: no such file or directory: %s\n", path);
        return -1;
    }
    if (!S_ISDIR (st.st_mode)) {
        (*count_p)++;
        return s_replay_file (path);
    }
    DIR *dir = opendir (path);
    if (!dir)
        return -1;
    char **names = NULL;
    size_t used = 0, cap = 0;
    int rc = 0;
    struct dirent *entry;
    while ((entry = readdir (dir)) != NULL) {
        if (entry->d_name [0] == '.')
            continue;
        if (used == cap) {
            cap = cap? cap * 2: 64;
            char **more = (char **) realloc (names, cap * sizeof *names);
            if (!more) {
                rc = -1;
                break;
            }
            names = more;
        }
        size_t len = strlen (path) + strlen (entry->d_name) + 2;
        names [used] = (char *) malloc (len);
        if (!names [used]) {
            rc = -1;
            break;
        }
        snprintf (names [used++], len, "%s/%s", path, entry->d_name);
    }
    closedir (dir);
    qsort (names, used, sizeof *names, s_compare);
    for (size_t i = 0; i < used; i++) {
        if (rc == 0 && stat (names [i], &st) == 0 && S_ISREG (st.st_mode)) {
            (*count_p)++;
            rc = s_replay_file (names [i]);
        }
        free (names [i]);
    }
    free (names);
    return rc;
}

int
main (int argc, char *argv [])
{
    LLVMFuzzerInitialize (&argc, &argv);
    size_t count = 0;
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++)
        rc = s_replay (argv [i], &count);
    if (rc == 0 && count == 0) {
        fprintf (stderr, "pb_fuzz_replay: no inputs given\n");
        rc = -1;
    }
    if (rc == 0)
        printf ("%s: %zu inputs replayed, no crash\n", argv [0], count);
    return rc? 1: 0;
}
