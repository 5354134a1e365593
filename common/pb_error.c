/*  =========================================================================
    pb_error - the project's error codes and their one strerror
    =========================================================================
*/
#include "pb_error.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

//  --------------------------------------------------------------------------

const char *
pb_strerror (int rc)
{
    switch (rc) {
#define XX(name, value, text) case value: return text;
        PB_ALL_ERRORS (XX)
#undef XX
        default:
            return "unknown error";
    }
}

//  --------------------------------------------------------------------------

void
pb_error_test (bool verbose)
{
    printf (" * pb_error: ");
    assert (strcmp (pb_strerror (0), "success") == 0);
    assert (strcmp (pb_strerror (PB_ENOMEM), "out of memory") == 0);
    assert (strcmp (pb_strerror (PB_PROTO_TOO_LARGE),
                    "message is over the size limit") == 0);
    assert (strcmp (pb_strerror (-99999), "unknown error") == 0);
    printf ("OK\n");
}
