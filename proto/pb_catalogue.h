/*  =========================================================================
    pb_catalogue - the event types of EVENTS.md and the schema of their data

    Everything here is generated from ONE list, proto/pb_catalogue.def: the
    types, who owns each one, and the fields of each type's data map (and
    of each proposal action kind). The validators below and the reference
    table of proto/README.md (printed by pb_catalogue_doc) both come from
    that list; no type has validation code of its own.

    Type indexes are 0 .. pb_catalogue_count () - 1, stable for a build
    (the order of pb_catalogue.def), never stored or sent on the wire.

    Read-only const tables: any thread.
    =========================================================================
*/
#ifndef PB_CATALOGUE_H_INCLUDED
#define PB_CATALOGUE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <msgpack.h>

#include "pb_nak.h"

//  Index of the type named by 'len' bytes at 'name' (no nul needed), or -1
//  if the catalogue has no such type.
int
    pb_catalogue_lookup (const char *name, size_t len);

//  Number of types in the catalogue
int
    pb_catalogue_count (void);

//  Name of type 'index' ("nac.proposal"); static storage. 'index' must be
//  valid (asserted).
const char *
    pb_catalogue_name (int index);

//  The src that alone may publish type 'index': "journal" (sys.*), "ops"
//  (ops.*), "nac", "cpe" or "activity" (their notify.*); NULL for upstream
//  types, which any producer may publish. Static storage.
const char *
    pb_catalogue_owner (int index);

//  True if type 'index' is a notification (its name begins "notify."): its
//  envelope must carry 'cause'.
bool
    pb_catalogue_is_notification (int index);

//  Check 'data' (an unpacked object that pb_msgpack_check has passed, so
//  its strings are valid UTF-8 and its maps have no duplicate keys)
//  against the schema of type 'index'. Returns PB_NAK_NONE, or
//  PB_NAK_BAD_DATA with a sentence naming the field at fault written into
//  'error' (always nul-terminated, truncated to error_size; 'error' may be
//  NULL), e.g.
//  "data.action.partner: missing" or "data.relevance: 7 is out of range
//  1..5". The first fault found wins: unknown keys in map order, then the
//  schema's fields in their order.
pb_nak_t
    pb_catalogue_validate (int index, const msgpack_object *data,
                           char *error, size_t error_size);

//  Print the reference table (Markdown) of every type and action kind, as
//  it stands between the catalogue markers of proto/README.md. Returns 0,
//  or PB_EIO if writing to 'out' failed.
int
    pb_catalogue_print (FILE *out);

//  Self test of this module
void
    pb_catalogue_test (bool verbose);

#endif
