/*  =========================================================================
    pb_envelope - the event envelope of PROTOCOL.md: bounded decoding,
    validation against the catalogue, and the stored form

    One allocation holds the envelope, its unpacked objects and its copy of
    the bytes: the pre-walk counts the object slots the value needs, and
    pb_msgpack_unpack_checked fills them with every str pointing into the
    copy. So decoding allocates once per envelope, not per field, and a
    decoded envelope is freed in one call.
    =========================================================================
*/
#include "pb_envelope.h"
#include "pb_msgpack.h"
#include "pb_catalogue.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_ID_MAX   128                  //  PROTOCOL.md, The envelope
#define S_SRC_MAX  64

//  The envelope as allocated: public part first, so the pointer users hold
//  is also the block's; the copy of the message follows the slots
typedef struct {
    pb_envelope_t pub;                  //  what users read
    msgpack_object root;                //  the top-level map
    msgpack_object slots [];            //  its containers' objects (owned)
} s_block_t;

static pb_nak_t
s_nak (pb_nak_t nak, char *error, size_t error_size, const char *format, ...)
{
    if (error && error_size) {
        va_list args;
        va_start (args, format);
        vsnprintf (error, error_size, format, args);
        va_end (args);
    }
    return nak;
}

//  The envelope's keys, and what each one must be
typedef enum {
    S_KEY_ID, S_KEY_SRC, S_KEY_TYPE, S_KEY_TIME, S_KEY_DATA, S_KEY_SEQ,
    S_KEY_TS, S_KEY_CAUSE, S_KEY_COUNT
} s_key_t;

static const char *const s_key_names [S_KEY_COUNT] = {
    "id", "src", "type", "time", "data", "seq", "ts", "cause"
};

static const uint32_t s_key_lens [S_KEY_COUNT] = { 2, 3, 4, 4, 4, 3, 2, 5 };

//  'key' is a str
static int
s_key_of (const msgpack_object *key)
{
    for (int k = 0; k < S_KEY_COUNT; k++)
        if (key->via.str.size == s_key_lens [k]
        &&  memcmp (key->via.str.ptr, s_key_names [k], s_key_lens [k]) == 0)
            return k;
    return -1;
}

static pb_nak_t
s_check_str (const msgpack_object *v, const char *name, size_t min, size_t max,
             char *error, size_t error_size)
{
    if (!v)
        return s_nak (PB_NAK_BAD_ENVELOPE, error, error_size,
                      "envelope.%s: missing", name);
    if (v->type != MSGPACK_OBJECT_STR)
        return s_nak (PB_NAK_BAD_ENVELOPE, error, error_size,
                      "envelope.%s: not a string", name);
    if (v->via.str.size < min || v->via.str.size > max)
        return s_nak (PB_NAK_BAD_ENVELOPE, error, error_size,
                      "envelope.%s: %u bytes, out of range %zu..%zu", name,
                      v->via.str.size, min, max);
    return PB_NAK_NONE;
}

//  PROTOCOL.md's bad_envelope row, key by key in the table's order
static pb_nak_t
s_check_keys (pb_envelope_t *env, const msgpack_object *root,
              pb_envelope_form_t form, char *error, size_t error_size)
{
    const msgpack_object *v [S_KEY_COUNT] = { NULL };
    for (uint32_t i = 0; i < root->via.map.size; i++) {
        const msgpack_object *key = &root->via.map.ptr [i].key;
        if (key->type != MSGPACK_OBJECT_STR)
            return s_nak (PB_NAK_BAD_ENVELOPE, error, error_size,
                          "envelope: a key is not a string");
        int k = s_key_of (key);
        if (k < 0) {
            char quoted [40];
            return s_nak (PB_NAK_BAD_ENVELOPE, error, error_size,
                          "envelope.%s: unknown key",
                          pb_msgpack_quote (quoted, sizeof quoted,
                                            key->via.str.ptr, key->via.str.size));
        }
        v [k] = &root->via.map.ptr [i].val;
    }
    pb_nak_t nak = s_check_str (v [S_KEY_ID], "id", 1, S_ID_MAX, error, error_size);
    if (!nak)
        nak = s_check_str (v [S_KEY_SRC], "src", 1, S_SRC_MAX, error, error_size);
    if (!nak)
        nak = s_check_str (v [S_KEY_TYPE], "type", 0, SIZE_MAX, error, error_size);
    if (nak)
        return nak;
    env->id = v [S_KEY_ID]->via.str.ptr;
    env->id_len = v [S_KEY_ID]->via.str.size;
    env->src = v [S_KEY_SRC]->via.str.ptr;
    env->src_len = v [S_KEY_SRC]->via.str.size;
    env->type = v [S_KEY_TYPE]->via.str.ptr;
    env->type_len = v [S_KEY_TYPE]->via.str.size;

    env->has_time = v [S_KEY_TIME] != NULL;
    if (env->has_time && !pb_msgpack_int (v [S_KEY_TIME], &env->time))
        return s_nak (PB_NAK_BAD_ENVELOPE, error, error_size,
                      "envelope.time: not an integer (ms since the epoch)");
    if (!v [S_KEY_DATA])
        return s_nak (PB_NAK_BAD_ENVELOPE, error, error_size,
                      "envelope.data: missing");
    if (v [S_KEY_DATA]->type != MSGPACK_OBJECT_MAP)
        return s_nak (PB_NAK_BAD_ENVELOPE, error, error_size,
                      "envelope.data: not a map");
    env->data = v [S_KEY_DATA];

    for (int k = S_KEY_SEQ; k <= S_KEY_TS; k++) {
        if (form == PB_ENVELOPE_INGEST && v [k])
            return s_nak (PB_NAK_BAD_ENVELOPE, error, error_size,
                          "envelope.%s: set by the journal", s_key_names [k]);
        if (form == PB_ENVELOPE_STORED && !v [k])
            return s_nak (PB_NAK_BAD_ENVELOPE, error, error_size,
                          "envelope.%s: missing", s_key_names [k]);
    }
    if (form == PB_ENVELOPE_STORED) {
        if (!pb_msgpack_uint (v [S_KEY_SEQ], &env->seq) || env->seq == 0)
            return s_nak (PB_NAK_BAD_ENVELOPE, error, error_size,
                          "envelope.seq: not a uint >= 1");
        if (!pb_msgpack_int (v [S_KEY_TS], &env->ts))
            return s_nak (PB_NAK_BAD_ENVELOPE, error, error_size,
                          "envelope.ts: not an integer");
    }
    //  By the type's name, not the catalogue: bad_envelope comes before
    //  unknown_type in the table
    bool notify = env->type_len >= 7 && memcmp (env->type, "notify.", 7) == 0;
    env->has_cause = v [S_KEY_CAUSE] != NULL;
    if (notify && !env->has_cause)
        return s_nak (PB_NAK_BAD_ENVELOPE, error, error_size,
                      "envelope.cause: missing (required on notify.*)");
    if (!notify && env->has_cause)
        return s_nak (PB_NAK_BAD_ENVELOPE, error, error_size,
                      "envelope.cause: allowed only on notify.*");
    if (env->has_cause && !pb_msgpack_uint (v [S_KEY_CAUSE], &env->cause))
        return s_nak (PB_NAK_BAD_ENVELOPE, error, error_size,
                      "envelope.cause: not a uint");
    return PB_NAK_NONE;
}

//  --------------------------------------------------------------------------
//  Decode an envelope, in PROTOCOL.md's NAK table order.

pb_nak_t
pb_envelope_decode (const char *type, size_t type_len,
                    const void *bytes, size_t size,
                    pb_envelope_form_t form, const pb_limits_t *limits,
                    pb_envelope_t **env_p, char *error, size_t error_size)
{
    assert (limits);
    assert (env_p);
    assert (bytes || size == 0);
    if (error && error_size)
        error [0] = 0;
    if (size > limits->max_size)
        return s_nak (PB_NAK_TOO_LARGE, error, error_size,
                      "envelope: %zu bytes, over the limit %zu", size,
                      limits->max_size);
    //  One bounded walk proves the bytes and counts the objects; unpacking
    //  them then needs no checks and no zone
    size_t objects = 0;
    if (pb_msgpack_check_objects (bytes, size, limits, &objects, error,
                                  error_size))
        return PB_NAK_BAD_MSGPACK;

    s_block_t *block = (s_block_t *) malloc (sizeof (s_block_t)
                                             + objects * sizeof (msgpack_object)
                                             + size);
    if (!block)
        abort ();                       //  OOM aborts (STYLE.md)
    memset (&block->pub, 0, sizeof (block->pub));
    uint8_t *copy = (uint8_t *) (block->slots + objects);
    memcpy (copy, bytes, size);
    pb_envelope_t *env = &block->pub;
    env->bytes = copy;
    env->size = size;
    env->type_index = -1;

    pb_nak_t nak = PB_NAK_NONE;
    pb_msgpack_unpack_checked (copy, size, block->slots, objects, &block->root);
    if (block->root.type != MSGPACK_OBJECT_MAP)
        nak = s_nak (PB_NAK_BAD_ENVELOPE, error, error_size,
                     "envelope: not a map");
    else
        nak = s_check_keys (env, &block->root, form, error, error_size);

    if (!nak && type
    &&  (type_len != env->type_len || memcmp (type, env->type, type_len))) {
        char quoted [40], frame [40];
        nak = s_nak (PB_NAK_TYPE_MISMATCH, error, error_size,
                     "envelope.type: '%s' differs from the type frame '%s'",
                     pb_msgpack_quote (quoted, sizeof quoted, env->type,
                                       env->type_len),
                     pb_msgpack_quote (frame, sizeof frame, type, type_len));
    }
    if (!nak) {
        env->type_index = pb_catalogue_lookup (env->type, env->type_len);
        if (env->type_index < 0) {
            char quoted [40];
            nak = s_nak (PB_NAK_UNKNOWN_TYPE, error, error_size,
                         "envelope.type: '%s' is not in the catalogue",
                         pb_msgpack_quote (quoted, sizeof quoted, env->type,
                                           env->type_len));
        }
    }
    if (nak)
        pb_envelope_destroy (&env);
    else
        *env_p = env;
    return nak;
}

//  --------------------------------------------------------------------------
//  Check the data map against its type's schema.

pb_nak_t
pb_envelope_validate_data (const pb_envelope_t *self, char *error,
                           size_t error_size)
{
    assert (self);
    assert (self->data);
    return pb_catalogue_validate (self->type_index, self->data, error,
                                  error_size);
}

//  --------------------------------------------------------------------------
//  Stored form: the producer's pairs copied verbatim after a new map header,
//  then seq and ts. Integers in their smallest encoding, as Python and
//  msgpack-c pack them, so the same (seq, ts) always gives the same bytes.

static size_t
s_put_uint (uint8_t *p, uint64_t v)
{
    if (v < 0x80) {
        p [0] = (uint8_t) v;
        return 1;
    }
    size_t n = v <= 0xff? 1: v <= 0xffff? 2: v <= 0xffffffffULL? 4: 8;
    p [0] = n == 1? 0xcc: n == 2? 0xcd: n == 4? 0xce: 0xcf;
    for (size_t i = 0; i < n; i++)
        p [1 + i] = (uint8_t) (v >> (8 * (n - 1 - i)));
    return 1 + n;
}

static size_t
s_put_int (uint8_t *p, int64_t v)
{
    if (v >= 0)
        return s_put_uint (p, (uint64_t) v);
    if (v >= -32) {
        p [0] = (uint8_t) (int8_t) v;
        return 1;
    }
    size_t n = v >= INT8_MIN? 1: v >= INT16_MIN? 2: v >= INT32_MIN? 4: 8;
    p [0] = n == 1? 0xd0: n == 2? 0xd1: n == 4? 0xd2: 0xd3;
    uint64_t u = (uint64_t) v;
    for (size_t i = 0; i < n; i++)
        p [1 + i] = (uint8_t) (u >> (8 * (n - 1 - i)));
    return 1 + n;
}

static size_t
s_put_map_header (uint8_t *p, uint32_t count)
{
    if (count <= 15) {
        p [0] = (uint8_t) (0x80 | count);
        return 1;
    }
    if (count <= 0xffff) {
        p [0] = 0xde;
        p [1] = (uint8_t) (count >> 8);
        p [2] = (uint8_t) count;
        return 3;
    }
    p [0] = 0xdf;
    for (int i = 0; i < 4; i++)
        p [1 + i] = (uint8_t) (count >> (24 - 8 * i));
    return 5;
}

int
pb_envelope_encode_stored (const pb_envelope_t *self, uint64_t seq,
                           int64_t ts, uint8_t **bytes_p, size_t *size_p)
{
    assert (self);
    assert (bytes_p && size_p);
    const s_block_t *block = (const s_block_t *) self;
    assert (block->root.type == MSGPACK_OBJECT_MAP);
    if (self->seq != 0)
        return PB_EINVAL;               //  Already stored: it has seq and ts
    size_t old_head = pb_envelope_map_header_size (self->bytes [0]);
    //  Header (<= 5) + pairs + "seq" (4) + uint (<= 9) + "ts" (3) + int (<= 9)
    uint8_t *out = (uint8_t *) malloc (5 + (self->size - old_head) + 4 + 9 + 3 + 9);
    if (!out)
        return PB_ENOMEM;
    size_t n = s_put_map_header (out, block->root.via.map.size + 2);
    memcpy (out + n, self->bytes + old_head, self->size - old_head);
    n += self->size - old_head;
    memcpy (out + n, "\xa3seq", 4);
    n += 4;
    n += s_put_uint (out + n, seq);
    memcpy (out + n, "\xa2ts", 3);
    n += 3;
    n += s_put_int (out + n, ts);
    *bytes_p = out;
    *size_p = n;
    return 0;
}

size_t
pb_envelope_map_header_size (uint8_t first)
{
    return first <= 0x8f? 1: first == 0xde? 3: 5;
}

void
pb_envelope_pairs (const pb_envelope_t *self, size_t *offset_p, size_t *size_p)
{
    assert (self);
    assert (offset_p && size_p);
    assert (self->seq == 0);            //  The ingest form: no tail
    size_t head = pb_envelope_map_header_size (self->bytes [0]);
    *offset_p = head;
    *size_p = self->size - head;
}

int
pb_envelope_unstore (const pb_envelope_t *self, uint8_t **bytes_p, size_t *size_p)
{
    assert (self);
    assert (bytes_p && size_p);
    const s_block_t *block = (const s_block_t *) self;
    if (self->seq == 0 || block->root.via.map.size < 2)
        return PB_EINVAL;               //  Not the stored form
    //  The two pairs pb_envelope_encode_stored appends, as it writes them
    uint8_t tail [4 + 9 + 3 + 9];
    size_t tail_size = 0;
    memcpy (tail, "\xa3seq", 4);
    tail_size = 4 + s_put_uint (tail + 4, self->seq);
    memcpy (tail + tail_size, "\xa2ts", 3);
    tail_size += 3;
    tail_size += s_put_int (tail + tail_size, self->ts);
    size_t old_head = pb_envelope_map_header_size (self->bytes [0]);
    if (self->size < old_head + tail_size
    ||  memcmp (self->bytes + self->size - tail_size, tail, tail_size) != 0)
        return PB_EINVAL;
    size_t body = self->size - old_head - tail_size;
    uint8_t *out = (uint8_t *) malloc (5 + body);
    if (!out)
        return PB_ENOMEM;
    size_t n = s_put_map_header (out, block->root.via.map.size - 2);
    memcpy (out + n, self->bytes + old_head, body);
    *bytes_p = out;
    *size_p = n + body;
    return 0;
}

//  --------------------------------------------------------------------------
//  The id of a refused envelope, read from the raw bytes. Only after the
//  pre-walk passed, so every length below is known to be in bounds.

//  Header of the item at p: its size, its payload length (str/bin) or the
//  items it contains (array: n, map: 2n)
static void
s_raw_item (const uint8_t *p, size_t *head, size_t *payload, uint64_t *items)
{
    uint8_t b = p [0];
    *head = 1;
    *payload = 0;
    *items = 0;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return;
    if (b <= 0x8f) { *items = 2 * (b & 0x0f); return; }
    if (b <= 0x9f) { *items = b & 0x0f; return; }
    if (b <= 0xbf) { *payload = b & 0x1f; return; }
    size_t n = 0;
    switch (b) {
        case 0xc4: case 0xd9: case 0xcc: case 0xd0: n = 1; break;
        case 0xc5: case 0xda: case 0xcd: case 0xd1: case 0xdc: case 0xde: n = 2; break;
        case 0xc6: case 0xdb: case 0xce: case 0xd2: case 0xca: case 0xdd: case 0xdf:
            n = 4; break;
        default: n = 8; break;          //  0xcb, 0xcf, 0xd3
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p [1 + i];
    *head = 1 + n;
    if (b == 0xc4 || b == 0xc5 || b == 0xc6 || b == 0xd9 || b == 0xda || b == 0xdb)
        *payload = (size_t) v;
    else
    if (b == 0xdc || b == 0xdd)
        *items = v;
    else
    if (b == 0xde || b == 0xdf)
        *items = 2 * v;
}

bool
pb_envelope_peek_id (const void *bytes, size_t size, const pb_limits_t *limits,
                     const char **id_p, size_t *id_len_p)
{
    assert (limits);
    assert (id_p && id_len_p);
    if (size == 0 || size > limits->max_size
    ||  pb_msgpack_check (bytes, size, limits, NULL, 0))
        return false;
    const uint8_t *p = (const uint8_t *) bytes;
    size_t head, payload;
    uint64_t pairs;
    s_raw_item (p, &head, &payload, &pairs);
    if (!((p [0] >= 0x80 && p [0] <= 0x8f) || p [0] == 0xde || p [0] == 0xdf))
        return false;                   //  Not a map
    pairs /= 2;
    size_t pos = head;
    while (pairs--) {
        //  The key: an 'id' str key followed by a str value is the answer
        s_raw_item (p + pos, &head, &payload, &(uint64_t) { 0 });
        bool is_id = (p [pos] >= 0xa0 && p [pos] <= 0xbf)
                  || (p [pos] >= 0xd9 && p [pos] <= 0xdb);
        is_id = is_id && payload == 2 && memcmp (p + pos + head, "id", 2) == 0;
        //  Skip the key, then the value: 'left' items still to skip
        uint64_t left = 2;
        while (left) {
            uint64_t items;
            s_raw_item (p + pos, &head, &payload, &items);
            if (is_id && left == 1) {
                bool is_str = (p [pos] >= 0xa0 && p [pos] <= 0xbf)
                           || (p [pos] >= 0xd9 && p [pos] <= 0xdb);
                if (!is_str || payload < 1 || payload > S_ID_MAX)
                    return false;
                *id_p = (const char *) p + pos + head;
                *id_len_p = payload;
                return true;
            }
            pos += head + payload;
            left += items;
            left--;
        }
    }
    return false;
}

//  Like s_raw_item, on untrusted bytes: false if the header or its
//  payload runs past 'end'
static bool
s_raw_item_checked (const uint8_t *p, const uint8_t *end, size_t *head,
                    size_t *payload, uint64_t *items)
{
    size_t avail = (size_t) (end - p);
    if (avail >= 9)
        s_raw_item (p, head, payload, items);  //  A header is at most 9 bytes
    else {
        uint8_t padded [9] = { 0 };
        if (avail == 0)
            return false;
        memcpy (padded, p, avail);
        s_raw_item (padded, head, payload, items);
    }
    return *head <= avail && *payload <= avail - *head;
}

bool
pb_envelope_split_stored (const void *bytes, size_t size, size_t *header_p,
                          size_t *pairs_p)
{
    assert (header_p && pairs_p);
    const uint8_t *p = (const uint8_t *) bytes;
    const uint8_t *end = p + size;
    size_t head, payload;
    uint64_t items;
    if (!p || !s_raw_item_checked (p, end, &head, &payload, &items)
    ||  !((p [0] >= 0x80 && p [0] <= 0x8f) || p [0] == 0xde || p [0] == 0xdf)
    ||  items < 4)
        return false;
    size_t header = head;
    //  The items of the first n - 2 pairs, and what their containers hold;
    //  every item takes at least a byte, so a hostile count ends at 'end'
    const uint8_t *q = p + header;
    for (uint64_t left = items - 4; left; left--) {
        uint64_t inner;
        if (!s_raw_item_checked (q, end, &head, &payload, &inner))
            return false;
        q += head + payload;
        left += inner;
    }
    *header_p = header;
    *pairs_p = (size_t) (q - p) - header;
    return true;
}

//  The walk of both peeks: stops once it has the type and, if 'want_seq',
//  the seq. Returns whether the top level is a map (walked as far as
//  needed); *have_seq_p and *type_p say what was found.
static bool
s_peek (const void *bytes, size_t size, bool want_seq, pb_envelope_type_fn *enough,
        void *arg, uint64_t *seq_p, bool *have_seq_p, const char **type_p,
        size_t *type_len_p, bool *enough_p)
{
    const uint8_t *p = (const uint8_t *) bytes;
    const uint8_t *end = p + size;
    size_t head, payload;
    uint64_t pairs;
    if (!p || !s_raw_item_checked (p, end, &head, &payload, &pairs)
    ||  !((p [0] >= 0x80 && p [0] <= 0x8f) || p [0] == 0xde || p [0] == 0xdf))
        return false;
    pairs /= 2;
    p += head;
    bool have_seq = false, have_type = false, said_enough = false;
    const char *type = NULL;
    size_t type_len = 0;
    uint64_t seq = 0;
    //  Every item takes at least a byte, so a hostile count ends at 'end'
    while (pairs-- && !(have_type && (have_seq || !want_seq))) {
        uint64_t items;
        if (!s_raw_item_checked (p, end, &head, &payload, &items))
            return false;
        bool key_str = (p [0] >= 0xa0 && p [0] <= 0xbf) || (p [0] >= 0xd9 && p [0] <= 0xdb);
        bool is_seq = key_str && payload == 3 && memcmp (p + head, "seq", 3) == 0;
        bool is_type = key_str && payload == 4 && memcmp (p + head, "type", 4) == 0;
        p += head + payload;
        uint64_t left = 1 + items;      //  The value, and what a non-str key holds
        bool first = true;
        while (left) {
            if (!s_raw_item_checked (p, end, &head, &payload, &items))
                return false;
            if (first && is_seq) {
                //  A uint as msgpack-c reads one: unsigned encodings, or a
                //  signed one (0xd0..0xd3) holding a value >= 0
                bool is_signed = p [0] >= 0xd0 && p [0] <= 0xd3;
                if (!(p [0] <= 0x7f || (p [0] >= 0xcc && p [0] <= 0xcf) || is_signed)
                ||  (is_signed && (p [1] & 0x80)))
                    return false;
                uint64_t v = 0;
                if (p [0] <= 0x7f)
                    v = p [0];
                else
                    for (size_t i = 1; i < head; i++)
                        v = (v << 8) | p [i];
                seq = v;
                have_seq = true;
            }
            if (first && is_type && !have_type) {   //  The first one
                if (!((p [0] >= 0xa0 && p [0] <= 0xbf) || (p [0] >= 0xd9 && p [0] <= 0xdb)))
                    return false;
                type = (const char *) p + head;
                type_len = payload;
                have_type = true;
                if (enough && enough (type, type_len, arg)) {
                    want_seq = false;           //  The caller takes it from here
                    said_enough = true;
                }
            }
            first = false;
            p += head + payload;
            left += items;
            left--;
        }
    }
    *have_seq_p = have_seq;
    *seq_p = seq;
    *type_p = type;
    *type_len_p = type_len;
    if (enough_p)
        *enough_p = said_enough;
    return true;
}

bool
pb_envelope_peek_seq (const void *bytes, size_t size, uint64_t *seq_p,
                      const char **type_p, size_t *type_len_p)
{
    assert (seq_p && type_p && type_len_p);
    uint64_t seq;
    bool have_seq = false;
    const char *type;
    size_t type_len;
    if (!s_peek (bytes, size, true, NULL, NULL, &seq, &have_seq, &type, &type_len, NULL)
    ||  !have_seq)
        return false;
    *seq_p = seq;
    *type_p = type;
    *type_len_p = type_len;
    return true;
}

int
pb_envelope_peek_unless (const void *bytes, size_t size, pb_envelope_type_fn *enough,
                         void *arg, uint64_t *seq_p, const char **type_p,
                         size_t *type_len_p)
{
    assert (enough && seq_p && type_p && type_len_p);
    uint64_t seq;
    bool have_seq = false;
    const char *type = NULL;
    size_t type_len = 0;
    bool said_enough;
    if (!s_peek (bytes, size, true, enough, arg, &seq, &have_seq, &type, &type_len,
                 &said_enough))
        return -1;
    if (said_enough && !have_seq) {
        *type_p = type;
        *type_len_p = type_len;
        return 1;                       //  Stopped at the type
    }
    if (!have_seq)
        return -1;
    *seq_p = seq;
    *type_p = type;
    *type_len_p = type_len;
    return 0;
}

//  --------------------------------------------------------------------------
//  Destroy the envelope; NULL-safe, idempotent.

void
pb_envelope_destroy (pb_envelope_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        free (*self_p);
        *self_p = NULL;
    }
}

//  --------------------------------------------------------------------------
//  Selftest

//  Decode an envelope written in pb_msgpack's text notation; returns the
//  NAK and checks that the error sentence contains 'expect'
static pb_nak_t
s_test_decode (const char *frame, const char *text, pb_envelope_form_t form,
               const char *expect, pb_envelope_t **env_p, bool verbose)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    int rc = pb_msgpack_pack_text (text, &buffer);
    assert (rc == 0);
    pb_limits_t limits = PB_LIMITS_DEFAULTS;
    char error [256];
    pb_envelope_t *env = NULL;
    pb_nak_t nak = pb_envelope_decode (frame, frame? strlen (frame): 0,
                                       buffer.data, buffer.size, form,
                                       &limits, &env, error, sizeof error);
    if (verbose || (expect && !strstr (error, expect)))
        printf ("\n    %s -> %s: %s", text, pb_nak_code (nak), error);
    if (expect)
        assert (strstr (error, expect));
    assert ((nak == PB_NAK_NONE) == (env != NULL));
    if (env_p)
        *env_p = env;
    else
        pb_envelope_destroy (&env);
    msgpack_sbuffer_destroy (&buffer);
    return nak;
}

static pb_nak_t
s_test_raw (const char *frame, const void *bytes, size_t size,
            const char *expect, bool verbose)
{
    pb_limits_t limits = PB_LIMITS_DEFAULTS;
    char error [256];
    pb_envelope_t *env = NULL;
    pb_nak_t nak = pb_envelope_decode (frame, strlen (frame), bytes, size,
                                       PB_ENVELOPE_INGEST, &limits, &env,
                                       error, sizeof error);
    if (verbose)
        printf ("\n    raw -> %s: %s", pb_nak_code (nak), error);
    if (expect)
        assert (strstr (error, expect));
    assert (nak != PB_NAK_NONE && env == NULL);
    return nak;
}

#define S_INGEST(frame, text, expect) \
    s_test_decode (frame, text, PB_ENVELOPE_INGEST, expect, NULL, verbose)
#define S_TICK_DATA "'data': {'now': 5}"
#define S_NOTE(rest) "{'id': 'n1', 'src': 'cpe', 'type': 'notify.cpe.vacant', " \
    "'data': {'partner': 'UKR', 'since': 1}" rest "}"

static bool
s_test_yes (const char *type, size_t len, void *arg)
{
    if (arg)
        (*(int *) arg)++;               //  How many times it was asked
    return true;
}

static bool
s_test_no (const char *type, size_t len, void *arg)
{
    return false;
}

void
pb_envelope_test (bool verbose)
{
    printf (" * pb_envelope: ");
    pb_envelope_t *env = NULL;

    //  A good event decodes; its fields point into the envelope
    pb_nak_t nak = s_test_decode ("activity.feedback",
        "{'id': 'fb-1', 'src': 'review', 'type': 'activity.feedback', "
        "'time': 1700000000000, 'data': {'activity': 'a-1', 'from': 'PDD', "
        "'relevance': 2, 'effectiveness': 4}}", PB_ENVELOPE_INGEST, NULL, &env,
        verbose);
    assert (nak == PB_NAK_NONE);
    assert (env->id_len == 4 && memcmp (env->id, "fb-1", 4) == 0);
    assert (env->src_len == 6 && memcmp (env->src, "review", 6) == 0);
    assert (env->type_index == pb_catalogue_lookup ("activity.feedback", 17));
    assert (env->has_time && env->time == 1700000000000LL);
    assert (!env->has_cause && env->seq == 0);
    assert (env->id >= (const char *) env->bytes
            && env->id < (const char *) env->bytes + env->size);
    const msgpack_object *relevance = pb_msgpack_get (env->data, "relevance");
    assert (relevance && relevance->via.u64 == 2);
    assert (pb_msgpack_str_eq (pb_msgpack_get (env->data, "from"), "PDD"));
    assert (pb_msgpack_get (env->data, "comment") == NULL);
    assert (pb_msgpack_get (relevance, "x") == NULL);
    char error [256];
    assert (pb_envelope_validate_data (env, error, sizeof error) == PB_NAK_NONE);

    //  The stored form: the received bytes plus seq and ts, round trip
    uint8_t *stored;
    size_t stored_size;
    int rc = pb_envelope_encode_stored (env, 12345678901ULL, 1700000000001LL,
                                        &stored, &stored_size);
    assert (rc == 0);
    assert (stored_size > env->size);
    assert (stored [0] == env->bytes [0] + 2);          //  fixmap, 2 more
    assert (memcmp (stored + 1, env->bytes + 1, env->size - 1) == 0);
    pb_limits_t limits = PB_LIMITS_DEFAULTS;
    pb_envelope_t *copy = NULL;
    nak = pb_envelope_decode (NULL, 0, stored, stored_size, PB_ENVELOPE_STORED,
                              &limits, &copy, error, sizeof error);
    assert (nak == PB_NAK_NONE);
    assert (copy->seq == 12345678901ULL && copy->ts == 1700000000001LL);
    assert (copy->id_len == env->id_len && memcmp (copy->id, env->id, env->id_len) == 0);
    assert (copy->type_index == env->type_index);
    assert (msgpack_object_equal (*copy->data, *env->data));
    assert (pb_envelope_validate_data (copy, error, sizeof error) == PB_NAK_NONE);
    assert (pb_envelope_encode_stored (copy, 1, 1, &stored, &stored_size) == PB_EINVAL);
    //  The cheap peek finds seq and type; on every truncation it stays in
    //  bounds, and whatever it finds is right
    uint64_t peeked = 0;
    const char *peek_type = NULL;
    size_t peek_type_len = 0;
    //  The walk that stops at a type the caller will decode anyway
    int asked = 0;
    assert (pb_envelope_peek_unless (stored, stored_size, s_test_yes, &asked, &peeked,
                                     &peek_type, &peek_type_len) == 1);
    assert (asked == 1);                //  Once per event, not twice
    assert (peek_type_len == env->type_len && memcmp (peek_type, env->type, env->type_len) == 0);
    peeked = 0;
    assert (pb_envelope_peek_unless (stored, stored_size, s_test_no, NULL, &peeked,
                                     &peek_type, &peek_type_len) == 0);
    assert (peeked == 12345678901ULL);
    //  The first 'type' counts; what comes after a stop is not read
    assert (pb_envelope_peek_unless ("\x83\xa4type\xa1" "a" "\xa4type\xa1" "b" "\xa3seq\x01",
                                     20, s_test_no, NULL, &peeked, &peek_type,
                                     &peek_type_len) == 0
            && peek_type_len == 1 && peek_type [0] == 'a' && peeked == 1);
    assert (pb_envelope_peek_seq ("\x83\xa4type\xa1" "a" "\xa4type\xa1" "b" "\xa3seq\x01", 20,
                                  &peeked, &peek_type, &peek_type_len)
            && peek_type_len == 1 && peek_type [0] == 'a' && peeked == 1);
    assert (pb_envelope_peek_unless ("\x82\xa4type\xa1t\xc1", 9, s_test_yes, NULL, &peeked,
                                     &peek_type, &peek_type_len) == 1);
    assert (pb_envelope_peek_unless ("\x82\xa4type\xa1t\xc1", 9, s_test_no, NULL, &peeked,
                                     &peek_type, &peek_type_len) == -1);
    assert (pb_envelope_peek_unless ("\x81\xa3seq\x07", 6, s_test_yes, NULL, &peeked,
                                     &peek_type, &peek_type_len) == 0 && !peek_type);
    assert (pb_envelope_peek_unless ("\x91\xa4type", 6, s_test_yes, NULL, &peeked,
                                     &peek_type, &peek_type_len) == -1);
    assert (pb_envelope_peek_seq (stored, stored_size, &peeked, &peek_type, &peek_type_len));
    assert (peeked == 12345678901ULL);
    assert (peek_type_len == env->type_len && memcmp (peek_type, env->type, env->type_len) == 0);
    for (size_t cut = 0; cut < stored_size; cut++) {
        uint8_t *part = (uint8_t *) malloc (cut + 1);
        memcpy (part, stored, cut);
        peeked = 0;
        if (pb_envelope_peek_seq (part, cut, &peeked, &peek_type, &peek_type_len))
            assert (peeked == 12345678901ULL);
        free (part);
    }
    assert (!pb_envelope_peek_seq ("\x93\x01\x02\x03", 4, &peeked, &peek_type, &peek_type_len));
    assert (!pb_envelope_peek_seq ("\xdf\xff\xff\xff\xff", 5, &peeked, &peek_type, &peek_type_len));
    assert (!pb_envelope_peek_seq ("\x82\xa3seq\xa1x\xa4type\xa1t", 13, &peeked,
                                   &peek_type, &peek_type_len));
    assert (pb_envelope_peek_seq ("\x81\xa3seq\xd1\x01\x02", 8, &peeked, &peek_type,
                                  &peek_type_len) && peeked == 0x102);
    assert (!pb_envelope_peek_seq ("\x81\xa3seq\xd0\xff", 7, &peeked, &peek_type,
                                   &peek_type_len));
    assert (pb_envelope_peek_seq ("\x81\xa3seq\x07", 6, &peeked, &peek_type, &peek_type_len));
    assert (peeked == 7 && peek_type == NULL && peek_type_len == 0);
    //  A stored event is not accepted from a producer, nor under another type
    nak = pb_envelope_decode ("activity.feedback", 17, copy->bytes, copy->size,
                              PB_ENVELOPE_INGEST, &limits, &env, error, sizeof error);
    assert (nak == PB_NAK_BAD_ENVELOPE && strstr (error, "envelope.seq: set by the journal"));
    nak = pb_envelope_decode ("sys.tick", 8, copy->bytes, copy->size,
                              PB_ENVELOPE_STORED, &limits, &env, error, sizeof error);
    assert (nak == PB_NAK_TYPE_MISMATCH);
    pb_envelope_destroy (&copy);
    free (stored);
    //  Small seq, negative ts; a non-minimal map header (map16) is rewritten
    rc = pb_envelope_encode_stored (env, 1, -2, &stored, &stored_size);
    assert (rc == 0);
    nak = pb_envelope_decode (NULL, 0, stored, stored_size, PB_ENVELOPE_STORED,
                              &limits, &copy, error, sizeof error);
    assert (nak == PB_NAK_NONE && copy->seq == 1 && copy->ts == -2);
    //  unstore gives the producer's bytes back (the import's inverse)
    uint8_t *producer = NULL;
    size_t producer_size = 0;
    assert (pb_envelope_unstore (env, &producer, &producer_size) == PB_EINVAL);
    assert (pb_envelope_unstore (copy, &producer, &producer_size) == 0);
    assert (producer_size == env->size && memcmp (producer, env->bytes, env->size) == 0);
    free (producer);
    pb_envelope_destroy (&copy);
    //  ... and refuses a stored form whose last pairs are not seq, ts
    stored [stored_size - 2] = 't';     //  "ts" -> "tt"
    nak = pb_envelope_decode (NULL, 0, stored, stored_size, PB_ENVELOPE_STORED,
                              &limits, &copy, error, sizeof error);
    if (nak == PB_NAK_NONE)
        assert (pb_envelope_unstore (copy, &producer, &producer_size) == PB_EINVAL);
    pb_envelope_destroy (&copy);
    free (stored);
    uint8_t *wide = (uint8_t *) malloc (env->size + 2);
    assert (wide);
    wide [0] = 0xde;
    wide [1] = 0;
    wide [2] = env->bytes [0] & 0x0f;
    memcpy (wide + 3, env->bytes + 1, env->size - 1);
    nak = pb_envelope_decode ("activity.feedback", 17, wide, env->size + 2,
                              PB_ENVELOPE_INGEST, &limits, &copy, error, sizeof error);
    assert (nak == PB_NAK_NONE);
    rc = pb_envelope_encode_stored (copy, 70000, INT64_MIN, &stored, &stored_size);
    assert (rc == 0);
    assert (stored [0] == (env->bytes [0] + 2));
    pb_envelope_destroy (&copy);
    nak = pb_envelope_decode (NULL, 0, stored, stored_size, PB_ENVELOPE_STORED,
                              &limits, &copy, error, sizeof error);
    assert (nak == PB_NAK_NONE && copy->seq == 70000 && copy->ts == INT64_MIN);
    pb_envelope_destroy (&copy);
    free (stored);
    free (wide);
    pb_envelope_destroy (&env);
    pb_envelope_destroy (&env);         //  Idempotent
    assert (env == NULL);

    //  too_large: never decoded, whatever the bytes
    uint8_t *big = (uint8_t *) calloc (1, 65537);
    assert (big);
    big [0] = 0xc1;
    assert (s_test_raw ("sys.tick", big, 65537, "65537 bytes, over the limit 65536",
                        verbose) == PB_NAK_TOO_LARGE);
    free (big);

    //  bad_msgpack: each class of bad bytes
    assert (s_test_raw ("sys.tick", "", 0, "truncated", verbose) == PB_NAK_BAD_MSGPACK);
    assert (s_test_raw ("sys.tick", "\xc1\x00\xff", 3, "0xc1", verbose) == PB_NAK_BAD_MSGPACK);
    assert (s_test_raw ("sys.tick", "\x81\xa2id", 4, "truncated", verbose) == PB_NAK_BAD_MSGPACK);
    assert (s_test_raw ("sys.tick", "\x80\x00", 2, "trailing", verbose) == PB_NAK_BAD_MSGPACK);
    assert (s_test_raw ("sys.tick", "\xdd\xff\xff\xff\xff\x00", 6, "array of 4294967295",
                        verbose) == PB_NAK_BAD_MSGPACK);
    assert (s_test_raw ("sys.tick", "\xdf\xff\xff\xff\xff\x00", 6, "map of 4294967295",
                        verbose) == PB_NAK_BAD_MSGPACK);
    assert (s_test_raw ("sys.tick", "\x81\xa1x\xdb\x00\x00\x01\x00xyz", 10, "beyond",
                        verbose) == PB_NAK_BAD_MSGPACK);
    assert (s_test_raw ("sys.tick", "\x81\xa1x\xd6\xff\x00\x00\x00\x01", 9, "ext",
                        verbose) == PB_NAK_BAD_MSGPACK);
    assert (s_test_raw ("sys.tick", "\x81\xa1x\xd4\x01\x00", 6, "ext", verbose)
            == PB_NAK_BAD_MSGPACK);
    assert (s_test_raw ("sys.tick", "\x81\xa1x\xa2\xc0\xaf", 6, "UTF-8", verbose)
            == PB_NAK_BAD_MSGPACK);
    assert (s_test_raw ("sys.tick", "\x81\xa1x\xa3\xed\xa0\x80", 7, "UTF-8", verbose)
            == PB_NAK_BAD_MSGPACK);
    assert (s_test_raw ("sys.tick", "\x81\xa1x\xa2\xe2\x82", 6, "UTF-8", verbose)
            == PB_NAK_BAD_MSGPACK);
    uint8_t deep [5000];
    memset (deep, 0x91, sizeof deep - 1);
    deep [sizeof deep - 1] = 0x80;
    assert (s_test_raw ("sys.tick", deep, sizeof deep, "nesting", verbose)
            == PB_NAK_BAD_MSGPACK);
    assert (S_INGEST ("sys.tick", "{'id': 'a', 'id': 'b', 'src': 's', 'type': 'sys.tick', "
                      S_TICK_DATA "}", "duplicate map key 'id'") == PB_NAK_BAD_MSGPACK);
    assert (S_INGEST ("sys.tick", "{'id': 'a', 'src': 's', 'type': 'sys.tick', "
                      "'data': {'now': 5, 'now': 6}}", "duplicate map key 'now'")
            == PB_NAK_BAD_MSGPACK);
    assert (S_INGEST ("sys.tick", "{'id': 'a', 'src': 's', 'type': 'sys.tick', "
                      "'data': {'x': {'k': 1, 'k': 1}}}", "duplicate") == PB_NAK_BAD_MSGPACK);

    //  bad_envelope: not a map; each key missing, ill-typed, unknown
    assert (S_INGEST ("sys.tick", "['id', 'a']", "envelope: not a map") == PB_NAK_BAD_ENVELOPE);
    assert (S_INGEST ("sys.tick", "'sys.tick'", "envelope: not a map") == PB_NAK_BAD_ENVELOPE);
    assert (S_INGEST ("sys.tick", "{'src': 's', 'type': 'sys.tick', " S_TICK_DATA "}",
                      "envelope.id: missing") == PB_NAK_BAD_ENVELOPE);
    assert (S_INGEST ("sys.tick", "{'id': 5, 'src': 's', 'type': 'sys.tick', " S_TICK_DATA "}",
                      "envelope.id: not a string") == PB_NAK_BAD_ENVELOPE);
    assert (S_INGEST ("sys.tick", "{'id': '', 'src': 's', 'type': 'sys.tick', " S_TICK_DATA "}",
                      "envelope.id: 0 bytes, out of range 1..128") == PB_NAK_BAD_ENVELOPE);
    char text [1024], long_id [130];
    memset (long_id, 'i', 129);
    long_id [129] = 0;
    snprintf (text, sizeof text, "{'id': '%s', 'src': 's', 'type': 'sys.tick', "
              S_TICK_DATA "}", long_id);
    assert (S_INGEST ("sys.tick", text, "envelope.id: 129 bytes, out of range 1..128")
            == PB_NAK_BAD_ENVELOPE);
    long_id [128] = 0;
    snprintf (text, sizeof text, "{'id': '%s', 'src': 's', 'type': 'sys.tick', "
              S_TICK_DATA "}", long_id);
    assert (S_INGEST ("sys.tick", text, NULL) == PB_NAK_NONE);
    assert (S_INGEST ("sys.tick", "{'id': 'a', 'type': 'sys.tick', " S_TICK_DATA "}",
                      "envelope.src: missing") == PB_NAK_BAD_ENVELOPE);
    assert (S_INGEST ("sys.tick", "{'id': 'a', 'src': nil, 'type': 'sys.tick', " S_TICK_DATA "}",
                      "envelope.src: not a string") == PB_NAK_BAD_ENVELOPE);
    long_id [65] = 0;
    snprintf (text, sizeof text, "{'id': 'a', 'src': '%s', 'type': 'sys.tick', "
              S_TICK_DATA "}", long_id);
    assert (S_INGEST ("sys.tick", text, "envelope.src: 65 bytes, out of range 1..64")
            == PB_NAK_BAD_ENVELOPE);
    assert (S_INGEST ("sys.tick", "{'id': 'a', 'src': 's', " S_TICK_DATA "}",
                      "envelope.type: missing") == PB_NAK_BAD_ENVELOPE);
    assert (S_INGEST ("sys.tick", "{'id': 'a', 'src': 's', 'type': ['sys.tick'], " S_TICK_DATA "}",
                      "envelope.type: not a string") == PB_NAK_BAD_ENVELOPE);
    assert (S_INGEST ("sys.tick", "{'id': 'a', 'src': 's', 'type': 'sys.tick', 'time': 'now', "
                      S_TICK_DATA "}", "envelope.time: not an integer") == PB_NAK_BAD_ENVELOPE);
    assert (S_INGEST ("sys.tick", "{'id': 'a', 'src': 's', 'type': 'sys.tick', 'time': 1.5, "
                      S_TICK_DATA "}", "envelope.time: not an integer") == PB_NAK_BAD_ENVELOPE);
    assert (S_INGEST ("sys.tick", "{'id': 'a', 'src': 's', 'type': 'sys.tick', 'time': -5, "
                      S_TICK_DATA "}", NULL) == PB_NAK_NONE);
    assert (S_INGEST ("sys.tick", "{'id': 'a', 'src': 's', 'type': 'sys.tick'}",
                      "envelope.data: missing") == PB_NAK_BAD_ENVELOPE);
    assert (S_INGEST ("sys.tick", "{'id': 'a', 'src': 's', 'type': 'sys.tick', 'data': [5]}",
                      "envelope.data: not a map") == PB_NAK_BAD_ENVELOPE);
    assert (S_INGEST ("sys.tick", "{'id': 'a', 'src': 's', 'type': 'sys.tick', 'date': 5, "
                      S_TICK_DATA "}", "envelope.date: unknown key") == PB_NAK_BAD_ENVELOPE);
    assert (S_INGEST ("sys.tick", "{'id': 'a', 'src': 's', 'type': 'sys.tick', 5: 5, "
                      S_TICK_DATA "}", "envelope: a key is not a string") == PB_NAK_BAD_ENVELOPE);
    //  seq and ts: the journal's, in either form
    assert (S_INGEST ("sys.tick", "{'id': 'a', 'src': 's', 'type': 'sys.tick', 'seq': 1, "
                      S_TICK_DATA "}", "envelope.seq: set by the journal") == PB_NAK_BAD_ENVELOPE);
    assert (S_INGEST ("sys.tick", "{'id': 'a', 'src': 's', 'type': 'sys.tick', 'ts': 1, "
                      S_TICK_DATA "}", "envelope.ts: set by the journal") == PB_NAK_BAD_ENVELOPE);
    assert (s_test_decode (NULL, "{'id': 'a', 'src': 's', 'type': 'sys.tick', 'ts': 1, "
                           S_TICK_DATA "}", PB_ENVELOPE_STORED, "envelope.seq: missing",
                           NULL, verbose) == PB_NAK_BAD_ENVELOPE);
    assert (s_test_decode (NULL, "{'id': 'a', 'src': 's', 'type': 'sys.tick', 'seq': 1, "
                           S_TICK_DATA "}", PB_ENVELOPE_STORED, "envelope.ts: missing",
                           NULL, verbose) == PB_NAK_BAD_ENVELOPE);
    assert (s_test_decode (NULL, "{'id': 'a', 'src': 's', 'type': 'sys.tick', 'seq': 0, "
                           "'ts': 1, " S_TICK_DATA "}", PB_ENVELOPE_STORED, "envelope.seq: not a uint",
                           NULL, verbose) == PB_NAK_BAD_ENVELOPE);
    assert (s_test_decode (NULL, "{'id': 'a', 'src': 's', 'type': 'sys.tick', 'seq': 1, "
                           "'ts': 'x', " S_TICK_DATA "}", PB_ENVELOPE_STORED, "envelope.ts: not an integer",
                           NULL, verbose) == PB_NAK_BAD_ENVELOPE);
    //  cause: required on notify.*, refused elsewhere, a uint
    assert (S_INGEST ("notify.cpe.vacant", S_NOTE (""), "envelope.cause: missing")
            == PB_NAK_BAD_ENVELOPE);
    assert (S_INGEST ("notify.cpe.vacant", S_NOTE (", 'cause': -1"), "envelope.cause: not a uint")
            == PB_NAK_BAD_ENVELOPE);
    assert (S_INGEST ("notify.cpe.vacant", S_NOTE (", 'cause': 'x'"), "envelope.cause: not a uint")
            == PB_NAK_BAD_ENVELOPE);
    assert (S_INGEST ("notify.cpe.vacant", S_NOTE (", 'cause': 9"), NULL) == PB_NAK_NONE);
    assert (S_INGEST ("sys.tick", "{'id': 'a', 'src': 's', 'type': 'sys.tick', 'cause': 1, "
                      S_TICK_DATA "}", "envelope.cause: allowed only on notify.*")
            == PB_NAK_BAD_ENVELOPE);
    //  An unknown notify.* type without cause is bad_envelope, not unknown_type
    assert (S_INGEST ("notify.x", "{'id': 'a', 'src': 's', 'type': 'notify.x', 'data': {}}",
                      "envelope.cause: missing") == PB_NAK_BAD_ENVELOPE);

    //  type_mismatch, then unknown_type
    assert (S_INGEST ("sys.tock", "{'id': 'a', 'src': 's', 'type': 'sys.tick', " S_TICK_DATA "}",
                      "envelope.type: 'sys.tick' differs from the type frame 'sys.tock'")
            == PB_NAK_TYPE_MISMATCH);
    assert (S_INGEST ("sys.tic", "{'id': 'a', 'src': 's', 'type': 'sys.tick', " S_TICK_DATA "}",
                      "differs") == PB_NAK_TYPE_MISMATCH);
    assert (S_INGEST ("", "{'id': 'a', 'src': 's', 'type': 'sys.tick', " S_TICK_DATA "}",
                      "differs") == PB_NAK_TYPE_MISMATCH);
    assert (S_INGEST ("sys.tock", "{'id': 'a', 'src': 's', 'type': 'sys.tock', " S_TICK_DATA "}",
                      "envelope.type: 'sys.tock' is not in the catalogue") == PB_NAK_UNKNOWN_TYPE);
    assert (S_INGEST ("", "{'id': 'a', 'src': 's', 'type': '', 'data': {}}",
                      "not in the catalogue") == PB_NAK_UNKNOWN_TYPE);
    assert (S_INGEST ("notify.x", "{'id': 'a', 'src': 's', 'type': 'notify.x', 'cause': 1, "
                      "'data': {}}", "not in the catalogue") == PB_NAK_UNKNOWN_TYPE);

    //  Row order: the first failing row wins
    assert (S_INGEST ("sys.tock", "{'id': 'a', 'src': 's', 'type': 'sys.tick', 'seq': 1, "
                      S_TICK_DATA "}", "envelope.seq") == PB_NAK_BAD_ENVELOPE);
    assert (S_INGEST ("sys.tock", "{'id': 'a', 'id': 'b', 'type': 'sys.tick'}", "duplicate")
            == PB_NAK_BAD_MSGPACK);

    //  bad_data comes from pb_envelope_validate_data, after decoding
    nak = s_test_decode ("nac.proposal", "{'id': 'a', 'src': 's', 'type': 'nac.proposal', "
        "'data': {'proposal': 'p', 'procedure': 'meeting', 'action': {'kind': 'cpe.assign', "
        "'ally': 'POL'}}}", PB_ENVELOPE_INGEST, NULL, &env, verbose);
    assert (nak == PB_NAK_NONE);
    nak = pb_envelope_validate_data (env, error, sizeof error);
    assert (nak == PB_NAK_BAD_DATA);
    assert (strcmp (error, "data.action.partner: missing") == 0);
    pb_envelope_destroy (&env);

    //  Integers in either encoding: uint or int for time, cause, data
    static const uint8_t encoded [] = {
        0x86, 0xa2, 'i', 'd', 0xa1, 'a', 0xa3, 's', 'r', 'c', 0xa3, 'c', 'p', 'e',
        0xa4, 't', 'y', 'p', 'e', 0xb1, 'n', 'o', 't', 'i', 'f', 'y', '.', 'c', 'p',
        'e', '.', 'v', 'a', 'c', 'a', 'n', 't',
        0xa4, 't', 'i', 'm', 'e', 0xd3, 0, 0, 0, 0, 0, 0, 0, 9,       //  int64 9
        0xa5, 'c', 'a', 'u', 's', 'e', 0xd0, 0x07,                    //  int8 7
        0xa4, 'd', 'a', 't', 'a', 0x82, 0xa7, 'p', 'a', 'r', 't', 'n', 'e', 'r',
        0xa3, 'U', 'K', 'R', 0xa5, 's', 'i', 'n', 'c', 'e', 0xd2, 0, 0, 0, 1  //  int32
    };
    nak = pb_envelope_decode ("notify.cpe.vacant", 17, encoded, sizeof encoded,
                              PB_ENVELOPE_INGEST, &limits, &env, error, sizeof error);
    assert (nak == PB_NAK_NONE);
    assert (env->time == 9 && env->has_cause && env->cause == 7);
    assert (pb_envelope_validate_data (env, error, sizeof error) == PB_NAK_NONE);
    pb_envelope_destroy (&env);

    //  Random mutations of a good envelope never crash (run under ASan)
    msgpack_sbuffer good;
    msgpack_sbuffer_init (&good);
    rc = pb_msgpack_pack_text ("{'id': 'x1', 'src': 'reg', 'type': 'nac.proposal',"
        " 'data': {'proposal': 'p1', 'action': {'kind': 'cpe.assign',"
        " 'partner': 'UKR', 'ally': 'POL'}, 'procedure': 'silence', 'deadline': 5}}", &good);
    assert (rc == 0);
    uint64_t state = 0x2545f4914f6cdd1dULL;
    uint8_t fuzz [256];
    int counts [PB_NAK_COUNT] = { 0 };
    for (int round = 0; round < 20000; round++) {
        memcpy (fuzz, good.data, good.size);
        for (int flips = 1 + round % 3; flips; flips--) {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            fuzz [state % good.size] = (uint8_t) (state >> 40);
        }
        nak = pb_envelope_decode ("nac.proposal", 12, fuzz, good.size,
                                  PB_ENVELOPE_INGEST, &limits, &env, error, sizeof error);
        if (nak == PB_NAK_NONE) {
            nak = pb_envelope_validate_data (env, error, sizeof error);
            uint8_t *out;
            size_t out_size;
            assert (pb_envelope_encode_stored (env, round + 1, round, &out, &out_size) == 0);
            free (out);
            pb_envelope_destroy (&env);
        }
        assert (pb_msgpack_utf8_valid (error, strlen (error)));
        const char *id;
        size_t id_len;
        if (pb_envelope_peek_id (fuzz, good.size, &limits, &id, &id_len))
            assert (id >= (const char *) fuzz && id + id_len <= (const char *) fuzz + good.size);
        counts [nak]++;
    }
    assert (counts [PB_NAK_BAD_MSGPACK] && counts [PB_NAK_BAD_ENVELOPE]
            && counts [PB_NAK_BAD_DATA]);
    msgpack_sbuffer_destroy (&good);

    //  The id of a refused envelope, when it can be read
    static const struct { const char *text; const char *id; } peeks [] = {
        { "{'src': 's', 'id': 'abc', 'type': 'x'}", "abc" },
        { "{'x': [1, {'id': 'no'}, 'y'], 'z': {'id': 'no'}, 'id': 'yes'}", "yes" },
        { "{['id']: 'no', 'data': {}, 'id': 'k\xc3\xbc'}", "k\xc3\xbc" },
        { "{'id': ''}", NULL },
        { "{'id': 5}", NULL },
        { "{'src': 's'}", NULL },
        { "['id', 'abc']", NULL },
        { "{'id': 'a', 'id': 'b'}", NULL },
    };
    for (size_t i = 0; i < sizeof peeks / sizeof peeks [0]; i++) {
        msgpack_sbuffer buffer;
        msgpack_sbuffer_init (&buffer);
        rc = pb_msgpack_pack_text (peeks [i].text, &buffer);
        assert (rc == 0);
        const char *id = NULL;
        size_t id_len = 0;
        bool found = pb_envelope_peek_id (buffer.data, buffer.size, &limits,
                                          &id, &id_len);
        if (peeks [i].id) {
            msgpack_sbuffer expect;
            msgpack_sbuffer_init (&expect);
            char quoted [32];
            snprintf (quoted, sizeof quoted, "'%s'", peeks [i].id);
            rc = pb_msgpack_pack_text (quoted, &expect);
            assert (rc == 0);
            assert (found && id_len == expect.size - 1
                    && memcmp (id, expect.data + 1, id_len) == 0);
            msgpack_sbuffer_destroy (&expect);
        }
        else
            assert (!found && id == NULL);
        msgpack_sbuffer_destroy (&buffer);
    }
    const char *id = NULL;
    size_t id_len;
    assert (!pb_envelope_peek_id ("\x81\xa2id\xa1", 5, &limits, &id, &id_len));
    assert (!pb_envelope_peek_id ("", 0, &limits, &id, &id_len));

    //  The NAK strings are PROTOCOL.md's
    assert (strcmp (pb_nak_code (PB_NAK_NONE), "") == 0);
    assert (strcmp (pb_nak_code (PB_NAK_BAD_FRAMES), "bad_frames") == 0);
    assert (strcmp (pb_nak_code (PB_NAK_BAD_DATA), "bad_data") == 0);
    assert (strcmp (pb_nak_code (PB_NAK_UNAVAILABLE), "unavailable") == 0);
    assert (strcmp (pb_nak_code (PB_NAK_COUNT), "") == 0);
    printf ("OK\n");
}
