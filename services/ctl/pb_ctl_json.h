/*  =========================================================================
    pb_ctl_json - JSON to MessagePack and back, faithfully (jansson)

    JSON in (pbctl publish): an integer stays an integer (packed in its
    smallest encoding, uint when >= 0, as msgpack-c does), a real stays a
    float64 (1.0 is a float, 1 an integer), a string stays a str, objects
    keep their key order, true/false/null become bool/nil. Integers outside
    int64 and duplicate keys are refused by the parser (JSON_REJECT_
    DUPLICATES), so nothing is silently changed.

    JSON out (replay, tail, state): map keys that are not str are written
    as their JSON text (an integer key 7 becomes "7"); a bin (or an ext) is
    written as a string of lower-case hex digits; a uint above INT64_MAX as
    a string of its decimal digits; a non-finite float as null. Bytes come
    from the journal or a worker store but are walked with the bounded
    pb_msgpack_check_objects first, as any input.
    =========================================================================
*/
#ifndef PB_CTL_JSON_H_INCLUDED
#define PB_CTL_JSON_H_INCLUDED

#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdio.h>

//  Pack a JSON value. Returns 0 (always, for what jansson can hold).
int
    pb_ctl_json_pack (const json_t *value, msgpack_packer *pk);

//  A new JSON value for a MessagePack object. Caller owns the result
//  (json_decref).
json_t *
    pb_ctl_json_from_object (const msgpack_object *obj);

//  A new JSON value for 'size' bytes of one MessagePack value, or NULL
//  with a sentence in 'error' if the bytes are not one bounded value.
//  Caller owns the result.
json_t *
    pb_ctl_json_from_bytes (const void *bytes, size_t size,
                            char *error, size_t error_size);

//  Write 'value' as one compact JSON line on 'out' and flush. Returns 0,
//  or -1 if it could not be written.
int
    pb_ctl_json_print (FILE *out, const json_t *value);

//  Self test of this module
void
    pb_ctl_json_test (bool verbose);

#endif
