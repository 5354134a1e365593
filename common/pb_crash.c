/*  =========================================================================
    pb_crash - named crash points, a test-only build switch

    The hit counter for the armed point is kept in the environment variable
    PB_CRASH_HITS, so the module has no static state and a selftest can
    arm and disarm it.
    =========================================================================
*/
#include "pb_crash.h"

#include <assert.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Parse "name[:n]"; returns true if 'name' is the armed point and writes
//  the wanted hit count.
static bool
s_armed (const char *spec, const char *name, long *count)
{
    size_t name_len = strlen (name);
    if (strncmp (spec, name, name_len) != 0)
        return false;
    if (spec [name_len] == 0) {
        *count = 1;
        return true;
    }
    if (spec [name_len] != ':')
        return false;
    char *end = NULL;
    *count = strtol (spec + name_len + 1, &end, 10);
    return end && *end == 0 && *count > 0;
}

//  --------------------------------------------------------------------------

void
pb_crash_point (const char *name)
{
    assert (name);
    const char *spec = getenv ("PB_CRASH");
    long count = 0;
    if (!spec || !s_armed (spec, name, &count))
        return;
    const char *hits_text = getenv ("PB_CRASH_HITS");
    long hits = hits_text? atol (hits_text): 0;
    hits++;
    if (hits >= count)
        raise (SIGKILL);
    char buffer [32];
    snprintf (buffer, sizeof buffer, "%ld", hits);
    setenv ("PB_CRASH_HITS", buffer, 1);
}

//  --------------------------------------------------------------------------

void
pb_crash_test (bool verbose)
{
    printf (" * pb_crash: ");
    long count = 0;
    assert (s_armed ("after_commit", "after_commit", &count) && count == 1);
    assert (s_armed ("after_commit:7", "after_commit", &count) && count == 7);
    assert (!s_armed ("after_commit_x", "after_commit", &count));
    assert (!s_armed ("after_commit:x", "after_commit", &count));
    assert (!s_armed ("before", "after_commit", &count));
    //  An unarmed or other point returns; the armed one would kill us, so
    //  the test only proves counting up to one below the threshold.
    unsetenv ("PB_CRASH_HITS");
    setenv ("PB_CRASH", "pb_crash_selftest:3", 1);
    pb_crash_point ("other_point");
    pb_crash_point ("pb_crash_selftest");
    pb_crash_point ("pb_crash_selftest");
    assert (atol (getenv ("PB_CRASH_HITS")) == 2);
    unsetenv ("PB_CRASH");
    unsetenv ("PB_CRASH_HITS");
    printf ("OK\n");
}
