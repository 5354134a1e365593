/*  =========================================================================
    pb_envelope - the event envelope of PROTOCOL.md: bounded decoding,
    validation against the catalogue, and the stored form

    Decoding untrusted bytes happens in two stages so that a hostile message
    costs memory bounded by its own size (invariant 4):
      1. a pre-walk over the raw bytes (pb_msgpack_check) that bounds every
         declared length and count by the bytes that remain, the nesting
         depth, string lengths, and refuses ext types, invalid UTF-8,
         duplicate map keys and trailing bytes;
      2. only then unpacking into msgpack-c objects, in one block owned by
         the envelope and sized by the walk (pb_msgpack_unpack_checked).
    Validation follows PROTOCOL.md's NAK table in order; the first failing
    row wins and the error sentence names the offending field.

    An envelope is owned by one thread. It keeps its own copy of the bytes,
    and every pointer it hands out lives as long as the envelope.
    =========================================================================
*/
#ifndef PB_ENVELOPE_H_INCLUDED
#define PB_ENVELOPE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>

#include "pb_error.h"
#include "pb_nak.h"

//  Decoding limits (configurable in the journal; these are the defaults)
typedef struct {
    size_t max_size;            //  envelope size limit in bytes (64 KiB)
    uint32_t max_depth;         //  nesting depth of containers (32; at most
                                //  32, msgpack-c's own limit: see pb_msgpack.h)
    uint32_t max_container;     //  entries of one array or map (4096)
    uint32_t max_string;        //  bytes of one str or bin (65536)
} pb_limits_t;

#define PB_LIMITS_DEFAULTS { 65536, 32, 4096, 65536 }

//  Which envelope keys a decode accepts (PROTOCOL.md, The envelope):
//  producers may not set seq or ts; a stored event has both.
typedef enum {
    PB_ENVELOPE_INGEST,         //  from a producer: seq/ts refused
    PB_ENVELOPE_STORED          //  from the log, fanout or replay: seq/ts required
} pb_envelope_form_t;

//  A decoded envelope. Fields are read-only for users; string pointers are
//  NOT nul-terminated (use the _len), and live as long as the envelope.
typedef struct {
    const char *id;             //  idempotency key (borrowed from self)
    size_t id_len;
    const char *src;            //  producer name (borrowed from self)
    size_t src_len;
    const char *type;           //  event type (borrowed from self)
    size_t type_len;
    int type_index;             //  index in the catalogue (pb_catalogue.h)
    bool has_time;
    int64_t time;               //  producer's time, ms since epoch
    bool has_cause;
    uint64_t cause;             //  on notify.*: seq of the causing event
    uint64_t seq;               //  stored form only: position in the log
    int64_t ts;                 //  stored form only: append time, ms
    const msgpack_object *data; //  the data map (borrowed from self)
    const uint8_t *bytes;       //  the whole envelope as received (owned)
    size_t size;                //  its size
} pb_envelope_t;

//  Decode 'size' bytes of an envelope received with type frame 'type'
//  ('type_len' bytes), in 'form', checking PROTOCOL.md's rows too_large,
//  bad_msgpack, bad_envelope, type_mismatch and unknown_type, in that order.
//  The data map is NOT checked against its schema here: the journal checks
//  'unauthorized' first, then calls pb_envelope_validate_data.
//  Returns PB_NAK_NONE and sets *env_p to a new envelope the caller owns
//  (free with pb_envelope_destroy), or returns the NAK code, writes a
//  sentence naming the field at fault into 'error' (always nul-terminated,
//  truncated to error_size), and leaves *env_p untouched.
//  'type' may be NULL for the stored form (no type frame to compare).
pb_nak_t
    pb_envelope_decode (const char *type, size_t type_len,
                        const void *bytes, size_t size,
                        pb_envelope_form_t form, const pb_limits_t *limits,
                        pb_envelope_t **env_p, char *error, size_t error_size);

//  Check the data map against its type's schema from the catalogue
//  (required, optional and conditional fields, types, enumerations,
//  ranges, string and list limits). Returns PB_NAK_NONE, or PB_NAK_BAD_DATA
//  with a sentence naming the field (e.g. "data.action.partner: missing").
pb_nak_t
    pb_envelope_validate_data (const pb_envelope_t *self,
                               char *error, size_t error_size);

//  Encode the stored form: the received map with 'seq' and 'ts' added
//  (the producer's bytes are kept as they are, so the stored envelope is
//  the received one plus two keys). Returns 0 and sets *bytes_p/*size_p to
//  a buffer the caller owns (free ()); PB_ENOMEM; or PB_EINVAL if 'self'
//  was decoded in the stored form (it already has seq and ts). seq and ts
//  are packed in their smallest encoding, so the result is a function of
//  the received bytes, seq and ts alone.
int
    pb_envelope_encode_stored (const pb_envelope_t *self, uint64_t seq,
                               int64_t ts, uint8_t **bytes_p, size_t *size_p);

//  The producer's form of a stored envelope (the inverse of
//  pb_envelope_encode_stored, for an import): the map without its last
//  two pairs, which must be "seq" and "ts" exactly as encode_stored packs
//  them, under the smallest map header. Returns 0 and sets *bytes_p /
//  *size_p to a buffer the caller owns (free ()); PB_EINVAL if 'self' was
//  not decoded in the stored form or does not end that way; PB_ENOMEM.
int
    pb_envelope_unstore (const pb_envelope_t *self, uint8_t **bytes_p,
                         size_t *size_p);

//  The producer's pairs of an envelope decoded in the ingest form: the
//  bytes of its top-level map after the map header. Sets *offset_p (the
//  header's size) and *size_p; the pairs are self->bytes + *offset_p.
//  The input of the log's pairs hash (common/pb_chain.h).
void
    pb_envelope_pairs (const pb_envelope_t *self, size_t *offset_p, size_t *size_p);

//  Split bytes that claim the stored form (the producer's pairs under one
//  map header, then the "seq" and "ts" pairs) into those three parts:
//  true if they start with a map of at least two pairs whose first n - 2
//  pairs end within 'size'; then *header_p is the header's size and
//  *pairs_p the producer's pairs' (the last two pairs are the rest). A
//  raw walk bounded by 'size' that checks nothing else: for the log's
//  hash chain, whose rule hashes the parts (common/pb_chain.h).
bool
    pb_envelope_split_stored (const void *bytes, size_t size, size_t *header_p,
                              size_t *pairs_p);

//  The size of the map header that starts with byte 'first' (fixmap,
//  map 16, map 32: 1, 3 or 5), for bytes known to start with a map
size_t
    pb_envelope_map_header_size (uint8_t first);

//  The 'seq' and 'type' of a stored envelope, without decoding it: a
//  bounds-checked walk over the top-level map that allocates nothing and
//  validates nothing else, at a fraction of pb_envelope_decode's cost.
//  For workers that skip the types they have no rule for (most of the
//  log) and need only the seq to stay gapless, and for the seq of an
//  envelope that does not decode. True if the top level is a map with a
//  uint 'seq'; then *type_p points to its str 'type' in 'bytes' (borrowed;
//  NOT nul-terminated), or is NULL (length 0) if it has none. False for
//  anything else, including truncated bytes; nothing is set then.
bool
    pb_envelope_peek_seq (const void *bytes, size_t size, uint64_t *seq_p,
                          const char **type_p, size_t *type_len_p);

//  Whether the walk may stop at this type: the caller decodes what has it
typedef bool (pb_envelope_type_fn) (const char *type, size_t type_len, void *arg);

//  pb_envelope_peek_seq's walk, stopped at the first 'type' if 'enough'
//  says so (a stored envelope ends with seq and ts, so that spares the
//  walk over all the rest for what the caller decodes anyway). Returns 1
//  stopped at the type (*type_p, *type_len_p set; *seq_p not); 0 as
//  pb_envelope_peek_seq's true (*type_p NULL if there is no 'type'); -1 as
//  its false (nothing set).
int
    pb_envelope_peek_unless (const void *bytes, size_t size, pb_envelope_type_fn *enough,
                             void *arg, uint64_t *seq_p, const char **type_p,
                             size_t *type_len_p);

//  Find the 'id' of an envelope that pb_envelope_decode refused, for the
//  NAK's optional id (proto/README.md, Ingest): true if 'bytes' pass the
//  bounded pre-walk (so not for too_large or bad_msgpack), the top level is
//  a map, and its 'id' is a str of 1..128 bytes; then *id_p points into
//  'bytes' (borrowed: lives as long as they do; NOT nul-terminated) and
//  *id_len_p is its length. Otherwise false, and nothing is set.
bool
    pb_envelope_peek_id (const void *bytes, size_t size,
                         const pb_limits_t *limits,
                         const char **id_p, size_t *id_len_p);

//  Destroy the envelope and set *self_p to NULL; NULL-safe, idempotent.
void
    pb_envelope_destroy (pb_envelope_t **self_p);

//  Look up 'key' in a msgpack map object; NULL if absent or 'map' is not a
//  map. The result lives as long as the object it was found in.
const msgpack_object *
    pb_msgpack_get (const msgpack_object *map, const char *key);

//  True if 'obj' is a str equal to the nul-terminated 'text'
bool
    pb_msgpack_str_eq (const msgpack_object *obj, const char *text);

//  Self test of this module
void
    pb_envelope_test (bool verbose);

#endif
