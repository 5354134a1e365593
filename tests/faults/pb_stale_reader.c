/*  =========================================================================
    pb_stale_reader - test helper: take an LMDB reader slot and hold it

    Usage: pb_stale_reader DIR. Opens the LMDB environment in DIR
    read-only, begins a read transaction (which takes a slot in the
    environment's reader table), prints "reading <pid>" and waits to be
    killed. A kill -9 leaves the slot behind with a dead pid: the stale
    reader that pins old pages and can make the file grow a hundredfold,
    until someone calls mdb_reader_check (the journal does, at start and
    every reader_check_interval ms). Used by tests/faults/it_storage_faults.py.
    =========================================================================
*/
#include <lmdb.h>
#include <stdio.h>
#include <unistd.h>

int
main (int argc, char *argv [])
{
    if (argc != 2) {
        fprintf (stderr, "usage: pb_stale_reader DIR\n");
        return 2;
    }
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    int rc = mdb_env_create (&env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs (env, 8);
    if (rc == 0)
        rc = mdb_env_open (env, argv [1], MDB_RDONLY, 0600);
    if (rc == 0)
        rc = mdb_txn_begin (env, NULL, MDB_RDONLY, &txn);
    if (rc) {
        fprintf (stderr, "pb_stale_reader: %s: %s\n", argv [1], mdb_strerror (rc));
        return 1;
    }
    printf ("reading %d\n", (int) getpid ());
    fflush (stdout);
    while (1)
        pause ();
}
