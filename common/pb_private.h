/*  =========================================================================
    pb_private - files and directories private to the service user

    The log, the worker stores and the key files hold what partnerbus
    must keep to itself: directories are created 0700 and LMDB files 0600
    (mdb_env_open's mode), whatever the umask. A directory that already
    exists is left as the operator made it, with a warning when others can
    read it. A secret key file that others can read is refused, as ssh
    refuses such a private key. No state: plain functions.
    =========================================================================
*/
#ifndef PB_PRIVATE_H_INCLUDED
#define PB_PRIVATE_H_INCLUDED

#include <stdbool.h>

//  Create directory 'path' and any missing parent, each 0700. Returns 0
//  (also when it exists: a warning is logged if group or others have any
//  access to it), or PB_EIO (logged with the path and errno text).
int
    pb_private_dir (const char *path);

//  True if 'path' is a regular file that neither group nor others may
//  read or write. Otherwise false, and the reason is logged at error
//  level, naming 'what' ("journal/cert") and the path, never the content.
bool
    pb_private_file_ok (const char *path, const char *what);

//  Self test of this module
void
    pb_private_test (bool verbose);

#endif
