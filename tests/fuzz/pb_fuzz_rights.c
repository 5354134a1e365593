/*  =========================================================================
    pb_fuzz_rights - the journal's rights file (services/journal/pb_rights.c)

    Input: the text of a rights file, as the journal reads it at start and
    at SIGHUP. Whatever the text, pb_rights_parse returns 0 or PB_EINVAL
    with a sentence; a file it accepts parses to the same rights again
    (reads_kept both ways), and every question asked of it (lookups by
    40-byte slices of the input, may_publish, may_subscribe, may_replay
    with slices of the input as src, type and prefix) answers without
    reading outside what it was given.
    =========================================================================
*/
#include "pb_fuzz.h"

#include <assert.h>
#include <czmq.h>
#include <string.h>

#include "pb_error.h"
#include "pb_rights.h"

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    zsys_init ();
    zsys_set_logstream (NULL);
    zsys_set_logsystem (false);
    zsys_handler_set (NULL);
    return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    const char *text = (const char *) data;
    char error [256] = "";
    pb_rights_t *rights = NULL;
    int rc = pb_rights_parse (text, size, &rights, error, sizeof error);
    assert (rc == 0 || rc == PB_EINVAL);
    assert (rc == 0? rights != NULL: rights == NULL && *error);
    if (rc == 0) {
        assert (pb_rights_size (rights) <= PB_RIGHTS_KEYS_MAX);
        pb_rights_t *again = NULL;
        rc = pb_rights_parse (text, size, &again, error, sizeof error);
        assert (rc == 0 && pb_rights_size (again) == pb_rights_size (rights));
        assert (pb_rights_reads_kept (rights, again) && pb_rights_reads_kept (again, rights));
        //  Every quoted 40-byte run of the input as a key; what it finds
        //  answers every question with slices of the input
        for (size_t at = 0; at + 41 < size; at++) {
            if (data [at] != '"')
                continue;
            char key [41];
            memcpy (key, data + at + 1, 40);
            key [40] = 0;
            const pb_rights_key_t *found = pb_rights_lookup (rights, key);
            if (!found)
                continue;
            assert (strlen (pb_rights_key_name (found)) >= 1);
            size_t rest = size - at;
            size_t len = rest < 32? rest: 32;
            const char *slice = text + at;
            pb_rights_may_publish (found, slice, len, slice, len);
            pb_rights_may_publish (found, NULL, 0, slice, len);
            pb_rights_may_subscribe (found, slice, len);
            pb_rights_may_subscribe (found, "", 0);
            pb_rights_may_replay (found, slice, len);
            pb_rights_may_import (found);
        }
        pb_rights_destroy (&again);
    }
    pb_rights_destroy (&rights);
    return 0;
}
