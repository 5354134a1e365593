/*  =========================================================================
    pb_crash - named crash points, a test-only build switch

    A process built with PB_CRASHPOINTS and started with the environment
    variable PB_CRASH=<name>[:<n>] kills itself with SIGKILL the n-th time
    (default 1st) it reaches pb_crash_point ("<name>"). Crash tests use it
    to stop a service exactly inside a window that matters (after the
    commit, before the ACK, ...). Without PB_CRASHPOINTS the macro compiles
    to nothing. The point's state lives in the process environment, read
    once per name hit, so there is no mutable file-scope state.
    =========================================================================
*/
#ifndef PB_CRASH_H_INCLUDED
#define PB_CRASH_H_INCLUDED

#include <stdbool.h>

#if defined (PB_CRASHPOINTS)
#   define PB_CRASH_POINT(name) pb_crash_point (name)
#else
#   define PB_CRASH_POINT(name) ((void) 0)
#endif

//  If PB_CRASH names this point and its count is reached, log nothing and
//  raise SIGKILL (the process dies as under kill -9). Otherwise returns.
void
    pb_crash_point (const char *name);

//  Self test of this module
void
    pb_crash_test (bool verbose);

#endif
