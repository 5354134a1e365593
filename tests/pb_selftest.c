/*  =========================================================================
    pb_selftest - runs the module selftests listed in selftests.h

    Usage: pb_selftest [-v] [--test NAME]...   (no --test: run them all)
    =========================================================================
*/
#include "pb_selftests_decl.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;                   //  module name
    void (*test) (bool verbose);        //  its selftest
} pb_test_t;

#define PB_SELFTEST(name) { #name, name##_test },
static const pb_test_t s_tests [] = {
#include "selftests.h"
    { NULL, NULL }
};
#undef PB_SELFTEST

static const pb_test_t *
s_find (const char *name)
{
    for (const pb_test_t *t = s_tests; t->name; t++)
        if (strcmp (t->name, name) == 0)
            return t;
    return NULL;
}

int
main (int argc, char *argv [])
{
    bool verbose = false;
    int selected = 0;
    for (int i = 1; i < argc; i++)
        if (strcmp (argv [i], "-v") == 0)
            verbose = true;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--test") == 0 && i + 1 < argc) {
            const pb_test_t *t = s_find (argv [++i]);
            if (!t) {
                fprintf (stderr, "pb_selftest: no test named '%s'\n", argv [i]);
                return 2;
            }
            t->test (verbose);
            selected++;
        }
    }
    if (selected == 0)
        for (const pb_test_t *t = s_tests; t->name; t++)
            t->test (verbose);
    return 0;
}
