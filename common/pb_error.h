/*  =========================================================================
    pb_error - the project's error codes and their one strerror

    A fallible function returns int: 0 for success, a negative code for
    failure. Codes are unique across the project. Common codes live here
    (-1..-99); each module owns a block of 100, registered below, and
    declares its codes with an X-macro (name, value, text).

    Blocks:
        -1   .. -99     common (this file)
        -100 .. -199    proto: pb_envelope, pb_wire (see proto/pb_envelope.h)
        -200 .. -299    pb_log (the journal's LMDB log)
        -300 .. -399    pb_config
        -400 .. -499    pb_worker (worker runtime and store)

    This header is plain C11 and depends on nothing, so that proto/ can use
    it without czmq.
    =========================================================================
*/
#ifndef PB_ERROR_H_INCLUDED
#define PB_ERROR_H_INCLUDED

#include <stdbool.h>

#define PB_ERRORS(XX) \
    XX (PB_OK,        0,  "success") \
    XX (PB_ENOMEM,   -1,  "out of memory") \
    XX (PB_EINVAL,   -2,  "invalid argument") \
    XX (PB_EIO,      -3,  "I/O error") \
    XX (PB_EINTR,    -4,  "interrupted") \
    XX (PB_ENOTFOUND,-5,  "not found") \
    XX (PB_ENOSPC,   -6,  "no space left") \
    XX (PB_ETIMEDOUT,-7,  "timed out") \
    XX (PB_EPROTO,   -8,  "protocol error") \
    XX (PB_ECORRUPT, -9,  "corrupt data") \
    XX (PB_EAGAIN,   -10, "try again")

//  proto/ (pb_envelope, pb_wire): failures that are not NAKs. A NAK is
//  wire-visible and lives in proto/pb_nak.h instead.
#define PB_PROTO_ERRORS(XX) \
    XX (PB_PROTO_TRUNCATED, -100, "message is truncated") \
    XX (PB_PROTO_MALFORMED, -101, "message is malformed") \
    XX (PB_PROTO_TOO_LARGE, -102, "message is over the size limit")

//  Every module of common/ adds its block here, so that pb_strerror names
//  every code of common/ and proto/ from one place.
#define PB_ALL_ERRORS(XX) \
    PB_ERRORS (XX) \
    PB_PROTO_ERRORS (XX)

typedef enum {
#define XX(name, value, text) name = value,
    PB_ALL_ERRORS (XX)
#undef XX
} pb_error_t;

//  Return a static, human-readable text for any project code. Never NULL;
//  unknown codes give "unknown error".
const char *
    pb_strerror (int rc);

//  Self test of this module
void
    pb_error_test (bool verbose);

//  Defensive branch on external data that "cannot happen": asserts in test
//  builds (PB_CRASHPOINTS), otherwise evaluates to the condition so that
//  the caller takes the recoverable path (SQLite's NEVER).
#if defined (PB_CRASHPOINTS)
#   include <assert.h>
#   define PB_NEVER(cond) ((cond)? (assert (!#cond), 1): 0)
#else
#   define PB_NEVER(cond) (cond)
#endif

#endif
