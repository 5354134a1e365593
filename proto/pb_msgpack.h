/*  =========================================================================
    pb_msgpack - the bounded pre-walk over untrusted MessagePack bytes, and
    small readers over unpacked objects

    msgpack-c's C unpacker trusts the counts it reads: an array header
    0xdd ff ff ff ff makes it allocate ~96 GiB before it reads a single
    element. pb_msgpack_check walks the raw bytes first, without allocating
    anything in proportion to declared counts, and refuses anything that is
    not one well-formed, bounded value (PROTOCOL.md, bad_msgpack):
      - every str/bin length and every array/map count is bounded by the
        bytes that remain (an element takes at least one byte, a pair two);
      - nesting depth <= limits->max_depth (and <= PB_MSGPACK_DEPTH_MAX,
        msgpack-c's own stack), walked iteratively, so deep input cannot
        exhaust the C stack;
      - entries of one container <= limits->max_container, bytes of one str
        or bin <= limits->max_string;
      - no ext types (fixext, ext 8/16/32, so no timestamp either), no 0xc1;
      - every str (keys and values) is valid UTF-8: no overlong forms, no
        surrogates, nothing past U+10FFFF, no truncated sequence;
      - no duplicate keys in any map at any level (str keys compare by
        bytes, integer keys by value, other keys by their encoding);
      - no trailing bytes after the value.
    Once a message passed, msgpack_unpack can read it safely: its memory
    is then bounded by a small multiple of the message's size. Or, faster,
    pb_msgpack_unpack_checked builds the same objects into slots the
    caller sized from pb_msgpack_check_objects.

    Stateless; any thread.
    =========================================================================
*/
#ifndef PB_MSGPACK_H_INCLUDED
#define PB_MSGPACK_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>

#include "pb_envelope.h"

//  msgpack-c's unpacker holds at most this many open containers
//  (MSGPACK_EMBED_STACK_SIZE); a larger limits->max_depth is capped to it.
#define PB_MSGPACK_DEPTH_MAX 32

//  Walk 'size' bytes that must hold exactly one MessagePack value within
//  'limits' (max_size is NOT checked here: that is the caller's too_large).
//  Returns 0 if the value is well-formed and within bounds. Otherwise
//  writes a sentence naming what is wrong and at which byte into 'error'
//  (always nul-terminated, truncated to error_size; 'error' may be NULL)
//  and returns:
//      PB_PROTO_TRUNCATED  the bytes end before the value does, or a
//                          declared length/count exceeds the bytes left;
//      PB_PROTO_MALFORMED  anything else listed above;
//      PB_ENOMEM           never in practice: the walk's key stack grew
//                          past what malloc could give.
//  Allocates nothing unless a message has more than 128 keys in open maps
//  at once or is nested deeper than 32 (then one buffer, freed on return).
int
    pb_msgpack_check (const void *bytes, size_t size,
                      const pb_limits_t *limits,
                      char *error, size_t error_size);

//  As pb_msgpack_check, and on success also sets *objects_p to the number
//  of msgpack_object slots pb_msgpack_unpack_checked needs for the value's
//  containers (at most 'size': an entry takes a byte, a pair two).
int
    pb_msgpack_check_objects (const void *bytes, size_t size,
                              const pb_limits_t *limits, size_t *objects_p,
                              char *error, size_t error_size);

//  Unpack 'size' bytes that pb_msgpack_check_objects passed (the caller
//  guarantees it: anything else is a programmer error and asserts) into
//  *root, the children of its containers into the caller's 'slot_count'
//  slots (as many as pb_msgpack_check_objects said). Gives the objects
//  msgpack_unpack would, without a zone: str and bin point into 'bytes'
//  and the rest into 'slots', so they live as long as both do. One pass
//  that allocates nothing.
void
    pb_msgpack_unpack_checked (const void *bytes, size_t size,
                               msgpack_object *slots, size_t slot_count,
                               msgpack_object *root);

//  Read the one scalar (nil, bool, int or float) that 'bytes' start with
//  into *obj, as pb_msgpack_unpack_checked reads one. Returns how many
//  bytes it takes, or 0 if the 'size' bytes do not start with a whole
//  scalar. For readers of a known layout that walk the bytes themselves.
size_t
    pb_msgpack_read_scalar (const void *bytes, size_t size, msgpack_object *obj);

//  True if the 'len' bytes at 's' are valid UTF-8 (RFC 3629: no overlong
//  forms, no surrogates, nothing above U+10FFFF).
bool
    pb_msgpack_utf8_valid (const void *s, size_t len);

//  Read an integer encoded as either a MessagePack uint or int (Python
//  packs non-negative ints as uint). Returns true and sets *value if 'obj'
//  is an integer that fits int64_t; false otherwise.
bool
    pb_msgpack_int (const msgpack_object *obj, int64_t *value);

//  Read a non-negative integer (uint, or int >= 0). Returns true and sets
//  *value, or false if 'obj' is not such an integer.
bool
    pb_msgpack_uint (const msgpack_object *obj, uint64_t *value);

//  Copy 'len' bytes at 's' into 'dest' for an error sentence: bytes outside
//  printable ASCII become '?' (so the sentence stays valid UTF-8), and what
//  does not fit in dest_size - 4 is cut and marked "...". Always
//  nul-terminates (dest_size must be >= 8). Returns dest.
char *
    pb_msgpack_quote (char *dest, size_t dest_size, const char *s,
                      size_t len);

//  Pack a value written in a compact JSON-like notation into 'buffer' (for
//  tests and operators' tools): maps {k: v, ...} (keys may be any value),
//  arrays [a, b], strings in '...' or "..." (escapes \\ \' \" \n and
//  \xNN, which can write any byte), integers (packed as msgpack-c packs
//  them: uint when >= 0), numbers with '.' or 'e' (float64), true, false,
//  nil. Nesting is limited to PB_MSGPACK_DEPTH_MAX. Returns 0, or PB_EINVAL
//  if the text is not such a value (what was packed so far stays in
//  'buffer').
int
    pb_msgpack_pack_text (const char *text, msgpack_sbuffer *buffer);

//  Self test of this module
void
    pb_msgpack_test (bool verbose);

#endif
