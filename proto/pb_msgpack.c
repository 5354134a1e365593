/*  =========================================================================
    pb_msgpack - the bounded pre-walk over untrusted MessagePack bytes, and
    small readers over unpacked objects

    The walk is iterative: an explicit stack of open containers (frames)
    replaces recursion, so its depth is a data limit, not a C stack limit.
    Map keys are pushed on a key stack as they are read; when a map closes,
    its keys (the top of the key stack) are checked for duplicates, by
    pairwise comparison for small maps and by sorting for large ones, so a
    map of max_container keys costs O(n log n), then popped.
    =========================================================================
*/
#include "pb_msgpack.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_FRAMES_LOCAL 32               //  == PB_MSGPACK_DEPTH_MAX
#define S_KEYS_LOCAL   128
#define S_PAIRWISE_MAX 16               //  maps up to this: compare pairwise

//  One open array or map
typedef struct {
    uint64_t left;                      //  items still to read (2 per pair)
    size_t keys_base;                   //  this map's first key on the stack
    size_t key_start;                   //  offset of the key being read
    bool is_map;                        //  map, else array
} s_frame_t;

//  A map key, normalized so that equal values compare equal
typedef struct {
    const uint8_t *ptr;                 //  str payload or raw encoding (borrowed)
    size_t len;                         //  its length
    uint64_t num;                       //  integer keys: the value
    uint8_t tag;                        //  's' str, 'u' uint, 'n' negative, 'r' raw
    size_t at;                          //  offset of the key in the message
} s_key_t;

typedef struct {
    const uint8_t *bytes;               //  the message (borrowed)
    size_t size;                        //  its size
    size_t pos;                         //  next byte to read
    const pb_limits_t *limits;          //  (borrowed)
    uint32_t max_depth;                 //  effective depth limit
    s_frame_t frames [S_FRAMES_LOCAL];  //  open containers
    uint32_t depth;                     //  how many are open
    s_key_t keys_local [S_KEYS_LOCAL];  //  key stack while small
    s_key_t *keys;                      //  key stack (keys_local or owned)
    size_t keys_count;                  //  keys on the stack
    size_t keys_max;                    //  capacity of the key stack
    size_t objects;                     //  object slots the value unpacks into
    char *error;                        //  caller's buffer (borrowed)
    size_t error_size;
} s_walk_t;

static int
s_fail (s_walk_t *w, int rc, const char *format, ...)
{
    if (w->error && w->error_size) {
        int n = snprintf (w->error, w->error_size, "msgpack at byte %zu: ",
                          w->pos);
        if (n >= 0 && (size_t) n < w->error_size) {
            va_list args;
            va_start (args, format);
            vsnprintf (w->error + n, w->error_size - n, format, args);
            va_end (args);
        }
    }
    return rc;
}

static uint64_t
s_be (const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p [i];
    return v;
}

//  --------------------------------------------------------------------------
//  Duplicate keys

static int
s_key_cmp (const void *a_, const void *b_)
{
    const s_key_t *a = (const s_key_t *) a_;
    const s_key_t *b = (const s_key_t *) b_;
    if (a->tag != b->tag)
        return a->tag < b->tag? -1: 1;
    if (a->num != b->num)
        return a->num < b->num? -1: 1;
    if (a->len != b->len)
        return a->len < b->len? -1: 1;
    return a->len? memcmp (a->ptr, b->ptr, a->len): 0;
}

//  Normalize the key encoded at [start, end): already walked, so well-formed
static void
s_key_make (const uint8_t *p, size_t len, s_key_t *key)
{
    uint8_t b = p [0];
    key->num = 0;
    key->tag = 'r';
    key->ptr = p;
    key->len = len;
    if ((b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb)) {
        size_t head = b <= 0xbf? 1: 1 + (1u << (b - 0xd9));
        key->tag = 's';
        key->ptr = p + head;
        key->len = len - head;
    }
    else
    if (b <= 0x7f || (b >= 0xcc && b <= 0xcf)) {
        key->tag = 'u';
        key->num = b <= 0x7f? b: s_be (p + 1, len - 1);
        key->len = 0;
    }
    else
    if (b >= 0xe0 || (b >= 0xd0 && b <= 0xd3)) {
        int64_t v;
        if (b >= 0xe0)
            v = (int8_t) b;
        else {
            uint64_t u = s_be (p + 1, len - 1);
            size_t bits = 8 * (len - 1);
            if (bits < 64 && (u >> (bits - 1)))
                u |= ~(uint64_t) 0 << bits;     //  Sign-extend
            v = (int64_t) u;
        }
        key->tag = v < 0? 'n': 'u';
        key->num = (uint64_t) v;
        key->len = 0;
    }
}

static int
s_key_push (s_walk_t *w, size_t start, size_t end)
{
    if (w->keys_count == w->keys_max) {
        size_t max = w->keys_max * 2;
        s_key_t *keys = (s_key_t *) malloc (max * sizeof (s_key_t));
        if (!keys)
            return s_fail (w, PB_ENOMEM, "out of memory");
        memcpy (keys, w->keys, w->keys_count * sizeof (s_key_t));
        if (w->keys != w->keys_local)
            free (w->keys);
        w->keys = keys;
        w->keys_max = max;
    }
    s_key_make (w->bytes + start, end - start, &w->keys [w->keys_count]);
    w->keys [w->keys_count++].at = start;
    return 0;
}

static int
s_key_duplicate (s_walk_t *w, const s_key_t *a, const s_key_t *b)
{
    const s_key_t *key = a->at > b->at? a: b;
    char quoted [48];
    w->pos = key->at;                   //  Name the later of the two
    if (key->tag == 's')
        return s_fail (w, PB_PROTO_MALFORMED, "duplicate map key '%s'",
                       pb_msgpack_quote (quoted, sizeof quoted,
                                         (const char *) key->ptr, key->len));
    return s_fail (w, PB_PROTO_MALFORMED, "duplicate map key");
}

//  Check the keys of the map that just closed, then pop them
static int
s_keys_close (s_walk_t *w, size_t base)
{
    s_key_t *keys = w->keys + base;
    size_t n = w->keys_count - base;
    w->keys_count = base;
    if (n <= S_PAIRWISE_MAX) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (s_key_cmp (keys + i, keys + j) == 0)
                    return s_key_duplicate (w, keys + i, keys + j);
        return 0;
    }
    qsort (keys, n, sizeof (s_key_t), s_key_cmp);
    for (size_t i = 1; i < n; i++)
        if (s_key_cmp (keys + i, keys + i - 1) == 0)
            return s_key_duplicate (w, keys + i, keys + i - 1);
    return 0;
}

//  --------------------------------------------------------------------------
//  One item: a scalar, a str/bin, or the header of an array/map (pushed)

typedef enum { S_SCALAR, S_STR, S_BIN, S_ARRAY, S_MAP } s_kind_t;

//  Classify the first byte: kind, header size, and for fixed-size types the
//  length. Returns -1 for the bytes we refuse (ext, 0xc1).
static int
s_classify (uint8_t b, s_kind_t *kind, size_t *head, uint64_t *len)
{
    *len = 0;
    *head = 1;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        *kind = S_SCALAR;
    else
    if (b <= 0x8f) { *kind = S_MAP; *len = b & 0x0f; }
    else
    if (b <= 0x9f) { *kind = S_ARRAY; *len = b & 0x0f; }
    else
    if (b <= 0xbf) { *kind = S_STR; *len = b & 0x1f; }
    else
    if (b >= 0xc4 && b <= 0xc6) { *kind = S_BIN; *head = 1 + (1u << (b - 0xc4)); }
    else
    if (b == 0xca || b == 0xcb) { *kind = S_SCALAR; *head = b == 0xca? 5: 9; }
    else
    if (b >= 0xcc && b <= 0xcf) { *kind = S_SCALAR; *head = 1 + (1u << (b - 0xcc)); }
    else
    if (b >= 0xd0 && b <= 0xd3) { *kind = S_SCALAR; *head = 1 + (1u << (b - 0xd0)); }
    else
    if (b >= 0xd9 && b <= 0xdb) { *kind = S_STR; *head = 1 + (1u << (b - 0xd9)); }
    else
    if (b == 0xdc || b == 0xdd) { *kind = S_ARRAY; *head = b == 0xdc? 3: 5; }
    else
    if (b == 0xde || b == 0xdf) { *kind = S_MAP; *head = b == 0xde? 3: 5; }
    else
        return -1;                      //  0xc1, ext 0xc7..0xc9, fixext 0xd4..0xd8
    return 0;
}

//  s_classify with the bytes that make most of an envelope (fixstr, small
//  ints, fixmap) decided inline: the walk and the build classify every item
static inline int
s_classify_fast (uint8_t b, s_kind_t *kind, size_t *head, uint64_t *len)
{
    if (b >= 0xa0 && b <= 0xbf) {
        *kind = S_STR;
        *head = 1;
        *len = b & 0x1f;
        return 0;
    }
    if (b <= 0x7f) {
        *kind = S_SCALAR;
        *head = 1;
        *len = 0;
        return 0;
    }
    if (b <= 0x8f) {
        *kind = S_MAP;
        *head = 1;
        *len = b & 0x0f;
        return 0;
    }
    return s_classify (b, kind, head, len);
}

static int
s_push (s_walk_t *w, uint64_t items, bool is_map)
{
    if (w->depth >= w->max_depth)
        return s_fail (w, PB_PROTO_MALFORMED, "nesting deeper than %u",
                       w->max_depth);
    s_frame_t *frame = &w->frames [w->depth++];
    frame->left = items;
    frame->is_map = is_map;
    frame->keys_base = w->keys_count;
    frame->key_start = 0;
    w->objects += items;                //  A map's pairs are 2 objects each
    return 0;
}

static int
s_read_item (s_walk_t *w)
{
    size_t remain = w->size - w->pos;
    if (remain == 0)
        return s_fail (w, PB_PROTO_TRUNCATED, "truncated: a value is missing");
    const uint8_t *p = w->bytes + w->pos;
    s_kind_t kind;
    size_t head;
    uint64_t len;
    if (s_classify_fast (p [0], &kind, &head, &len))
        return s_fail (w, PB_PROTO_MALFORMED, p [0] == 0xc1?
                       "reserved byte 0xc1": "ext type 0x%02x refused", p [0]);
    if (head > remain)
        return s_fail (w, PB_PROTO_TRUNCATED, "truncated header");
    if (kind == S_SCALAR) {
        w->pos += head;
        return 0;
    }
    if (head > 1)
        len = s_be (p + 1, head - 1);
    remain -= head;
    if (kind == S_STR || kind == S_BIN) {
        if (len > w->limits->max_string)
            return s_fail (w, PB_PROTO_MALFORMED,
                           "%s of %llu bytes, over the limit %u",
                           kind == S_STR? "str": "bin",
                           (unsigned long long) len, w->limits->max_string);
        if (len > remain)
            return s_fail (w, PB_PROTO_TRUNCATED,
                           "declared length %llu is beyond the %zu bytes left",
                           (unsigned long long) len, remain);
        if (kind == S_STR && !pb_msgpack_utf8_valid (p + head, (size_t) len))
            return s_fail (w, PB_PROTO_MALFORMED, "str is not valid UTF-8");
        w->pos += head + (size_t) len;
        return 0;
    }
    //  A container: each element takes at least one byte, a pair two
    if (len > w->limits->max_container)
        return s_fail (w, PB_PROTO_MALFORMED,
                       "%s of %llu entries, over the limit %u",
                       kind == S_MAP? "map": "array",
                       (unsigned long long) len, w->limits->max_container);
    uint64_t items = kind == S_MAP? 2 * len: len;
    if (items > remain)
        return s_fail (w, PB_PROTO_TRUNCATED,
                       "%s of %llu entries cannot fit in the %zu bytes left",
                       kind == S_MAP? "map": "array",
                       (unsigned long long) len, remain);
    w->pos += head;
    return s_push (w, items, kind == S_MAP);
}

static int
s_walk (s_walk_t *w)
{
    bool root_read = false;
    while (true) {
        //  Close the containers that are complete
        while (w->depth > 0 && w->frames [w->depth - 1].left == 0) {
            s_frame_t *frame = &w->frames [--w->depth];
            if (frame->is_map) {
                int rc = s_keys_close (w, frame->keys_base);
                if (rc)
                    return rc;
            }
        }
        if (w->depth == 0) {
            if (root_read)
                break;
            root_read = true;
        }
        else {
            s_frame_t *frame = &w->frames [w->depth - 1];
            if (frame->is_map) {
                if (frame->left % 2 == 0)
                    frame->key_start = w->pos;          //  A key comes next
                else {
                    int rc = s_key_push (w, frame->key_start, w->pos);
                    if (rc)
                        return rc;
                }
            }
            frame->left--;
        }
        int rc = s_read_item (w);
        if (rc)
            return rc;
    }
    if (w->pos != w->size)
        return s_fail (w, PB_PROTO_MALFORMED, "%zu trailing bytes after the value",
                       w->size - w->pos);
    return 0;
}

//  --------------------------------------------------------------------------
//  Walk 'size' bytes that must hold exactly one bounded MessagePack value.

int
pb_msgpack_check (const void *bytes, size_t size, const pb_limits_t *limits,
                  char *error, size_t error_size)
{
    size_t objects;
    return pb_msgpack_check_objects (bytes, size, limits, &objects, error,
                                     error_size);
}

int
pb_msgpack_check_objects (const void *bytes, size_t size,
                          const pb_limits_t *limits, size_t *objects_p,
                          char *error, size_t error_size)
{
    assert (limits);
    assert (objects_p);
    assert (bytes || size == 0);
    s_walk_t w;
    w.bytes = (const uint8_t *) bytes;
    w.size = size;
    w.pos = 0;
    w.limits = limits;
    w.max_depth = limits->max_depth < PB_MSGPACK_DEPTH_MAX?
                  limits->max_depth: PB_MSGPACK_DEPTH_MAX;
    w.depth = 0;
    w.keys = w.keys_local;
    w.keys_count = 0;
    w.keys_max = S_KEYS_LOCAL;
    w.objects = 0;
    w.error = error;
    w.error_size = error_size;
    if (error && error_size)
        error [0] = 0;
    int rc = s_walk (&w);
    if (w.keys != w.keys_local)
        free (w.keys);
    if (rc == 0)
        *objects_p = (size_t) w.objects;
    return rc;
}

//  --------------------------------------------------------------------------
//  Unpack bytes that pb_msgpack_check_objects passed into caller's slots.
//  The walk has proven every length, count and the depth, so this reads
//  without checks of its own; a container's children take the next free
//  slots (a map's pairs as key, value, key, value: msgpack_object_kv is two
//  msgpack_objects), which is how the walk counted them.

static void
s_build_scalar (const uint8_t *p, msgpack_object *o)
{
    uint8_t b = p [0];
    if (b <= 0x7f) {
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = b;
    }
    else
    if (b >= 0xe0) {
        o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o->via.i64 = (int8_t) b;
    }
    else
    if (b == 0xc0)
        o->type = MSGPACK_OBJECT_NIL;
    else
    if (b == 0xc2 || b == 0xc3) {
        o->type = MSGPACK_OBJECT_BOOLEAN;
        o->via.boolean = b == 0xc3;
    }
    else
    if (b == 0xca) {
        uint32_t bits = (uint32_t) s_be (p + 1, 4);
        float value;
        memcpy (&value, &bits, 4);
        o->type = MSGPACK_OBJECT_FLOAT32;
        o->via.f64 = value;
    }
    else
    if (b == 0xcb) {
        uint64_t bits = s_be (p + 1, 8);
        memcpy (&o->via.f64, &bits, 8);
        o->type = MSGPACK_OBJECT_FLOAT64;
    }
    else
    if (b >= 0xcc && b <= 0xcf) {
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = s_be (p + 1, (size_t) 1 << (b - 0xcc));
    }
    else {                              //  0xd0..0xd3: int 8..64
        size_t n = (size_t) 1 << (b - 0xd0);
        uint64_t u = s_be (p + 1, n);
        if (n < 8 && (u >> (8 * n - 1)))
            u |= ~(uint64_t) 0 << (8 * n);      //  Sign-extend
        int64_t v = (int64_t) u;
        //  As msgpack-c: every value >= 0 is a POSITIVE_INTEGER
        o->type = v < 0? MSGPACK_OBJECT_NEGATIVE_INTEGER
                       : MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.i64 = v;
    }
}

size_t
pb_msgpack_read_scalar (const void *bytes, size_t size, msgpack_object *obj)
{
    assert (obj);
    const uint8_t *p = (const uint8_t *) bytes;
    s_kind_t kind;
    size_t head;
    uint64_t len;
    if (!p || size == 0 || s_classify (p [0], &kind, &head, &len)
    ||  kind != S_SCALAR || head > size)
        return 0;
    s_build_scalar (p, obj);
    return head;
}

void
pb_msgpack_unpack_checked (const void *bytes, size_t size,
                           msgpack_object *slots, size_t slot_count,
                           msgpack_object *root)
{
    assert (bytes && root);
    assert (slots || slot_count == 0);
    const uint8_t *p = (const uint8_t *) bytes;
    const uint8_t *end = p + size;
    struct {
        msgpack_object *next;           //  the slot the next item fills
        uint64_t left;                  //  items still to read
    } frames [PB_MSGPACK_DEPTH_MAX];
    uint32_t depth = 0;
    size_t used = 0;
    msgpack_object *o = root;
    while (true) {
        assert (p < end);
        s_kind_t kind;
        size_t head;
        uint64_t len;
        int rc = s_classify_fast (p [0], &kind, &head, &len);
        assert (rc == 0);
        if (kind == S_SCALAR)
            s_build_scalar (p, o);
        else {
            if (head > 1)
                len = s_be (p + 1, head - 1);
            if (kind == S_STR || kind == S_BIN) {
                if (kind == S_STR) {
                    o->type = MSGPACK_OBJECT_STR;
                    o->via.str.size = (uint32_t) len;
                    o->via.str.ptr = (const char *) p + head;
                }
                else {
                    o->type = MSGPACK_OBJECT_BIN;
                    o->via.bin.size = (uint32_t) len;
                    o->via.bin.ptr = (const char *) p + head;
                }
                head += (size_t) len;
            }
            else {
                uint64_t items = kind == S_MAP? 2 * len: len;
                assert (used + items <= slot_count);
                msgpack_object *children = items? slots + used: NULL;
                used += (size_t) items;
                if (kind == S_MAP) {
                    o->type = MSGPACK_OBJECT_MAP;
                    o->via.map.size = (uint32_t) len;
                    o->via.map.ptr = (msgpack_object_kv *) children;
                }
                else {
                    o->type = MSGPACK_OBJECT_ARRAY;
                    o->via.array.size = (uint32_t) len;
                    o->via.array.ptr = children;
                }
                if (items) {
                    assert (depth < PB_MSGPACK_DEPTH_MAX);
                    frames [depth].next = children;
                    frames [depth++].left = items;
                }
            }
        }
        p += head;
        while (depth > 0 && frames [depth - 1].left == 0)
            depth--;
        if (depth == 0)
            break;
        frames [depth - 1].left--;
        o = frames [depth - 1].next++;
    }
    assert (p == end);
    assert (used == slot_count);
}

//  --------------------------------------------------------------------------
//  UTF-8 (RFC 3629). ASCII, by far the common case, goes 8 bytes at a time.

bool
pb_msgpack_utf8_valid (const void *s_, size_t len)
{
    const uint8_t *s = (const uint8_t *) s_;
    //  All ASCII, most strings: one tight pass, no decoding
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t chunk;
        memcpy (&chunk, s + i, 8);
        if (chunk & 0x8080808080808080ULL)
            break;
    }
    if (i + 8 > len) {
        uint8_t high = 0;
        for (size_t k = i; k < len; k++)
            high |= s [k];
        if (high < 0x80)
            return true;
    }
    //  From the chunk with a non-ASCII byte on: every earlier byte was
    //  ASCII, so 'i' is at a character boundary
    while (i < len) {
        if (len - i >= 8) {
            uint64_t chunk;
            memcpy (&chunk, s + i, 8);
            if ((chunk & 0x8080808080808080ULL) == 0) {
                i += 8;
                continue;
            }
        }
        uint8_t c = s [i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) { n = 1; cp = c & 0x1f; }
        else
        if (c >= 0xe0 && c <= 0xef) { n = 2; cp = c & 0x0f; }
        else
        if (c >= 0xf0 && c <= 0xf4) { n = 3; cp = c & 0x07; }
        else
            return false;               //  Continuation, 0xc0/0xc1, 0xf5..
        if (len - i - 1 < n)
            return false;               //  Truncated sequence
        for (size_t k = 1; k <= n; k++) {
            if ((s [i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s [i + k] & 0x3f);
        }
        if (n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
            return false;               //  Overlong or surrogate
        if (n == 3 && (cp < 0x10000 || cp > 0x10ffff))
            return false;
        i += n + 1;
    }
    return true;
}

//  --------------------------------------------------------------------------
//  Integers: msgpack-c makes every value >= 0 a POSITIVE_INTEGER whatever
//  its encoding, and every value < 0 a NEGATIVE_INTEGER.

bool
pb_msgpack_int (const msgpack_object *obj, int64_t *value)
{
    if (obj->type == MSGPACK_OBJECT_POSITIVE_INTEGER
    &&  obj->via.u64 <= (uint64_t) INT64_MAX) {
        *value = (int64_t) obj->via.u64;
        return true;
    }
    if (obj->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *value = obj->via.i64;
        return true;
    }
    return false;
}

bool
pb_msgpack_uint (const msgpack_object *obj, uint64_t *value)
{
    if (obj->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *value = obj->via.u64;
        return true;
    }
    if (obj->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && obj->via.i64 >= 0) {
        *value = (uint64_t) obj->via.i64;
        return true;
    }
    return false;
}

//  --------------------------------------------------------------------------
//  Look up a str key in a map object; NULL if absent or not a map.

const msgpack_object *
pb_msgpack_get (const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t key_len = strlen (key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr [i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == key_len
        &&  memcmp (k->via.str.ptr, key, key_len) == 0)
            return &map->via.map.ptr [i].val;
    }
    return NULL;
}

bool
pb_msgpack_str_eq (const msgpack_object *obj, const char *text)
{
    if (!obj || obj->type != MSGPACK_OBJECT_STR)
        return false;
    size_t len = strlen (text);
    return obj->via.str.size == len
        && (len == 0 || memcmp (obj->via.str.ptr, text, len) == 0);
}

char *
pb_msgpack_quote (char *dest, size_t dest_size, const char *s, size_t len)
{
    assert (dest && dest_size >= 8);
    size_t room = dest_size - 4;        //  "..." and the nul
    size_t n = len < room? len: room;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s [i];
        dest [i] = c >= 0x20 && c < 0x7f? (char) c: '?';
    }
    if (n < len) {
        memcpy (dest + n, "...", 3);
        n += 3;
    }
    dest [n] = 0;
    return dest;
}

//  --------------------------------------------------------------------------
//  The text notation: a recursive descent parser, bounded in depth. Each
//  container is packed into its own buffer first, because its header needs
//  the count.

typedef struct {
    const char *p;                      //  next character (borrowed)
} s_text_t;

static void
s_text_space (s_text_t *t)
{
    while (*t->p && isspace ((unsigned char) *t->p))
        t->p++;
}

static int
    s_text_value (s_text_t *t, msgpack_packer *pk, int depth);

static int
s_text_string (s_text_t *t, msgpack_packer *pk)
{
    char quote = *t->p++;
    msgpack_sbuffer str;
    msgpack_sbuffer_init (&str);
    int rc = PB_EINVAL;
    while (*t->p && *t->p != quote) {
        char c = *t->p++;
        if (c == '\\') {
            c = *t->p;
            if (c == 0)
                goto cleanup;
            t->p++;
            if (c == 'n')
                c = '\n';
            else
            if (c == 'x' && isxdigit ((unsigned char) t->p [0])
                         && isxdigit ((unsigned char) t->p [1])) {
                char hex [3] = { t->p [0], t->p [1], 0 };
                c = (char) strtol (hex, NULL, 16);
                t->p += 2;
            }
            else
            if (c != '\\' && c != '\'' && c != '"')
                goto cleanup;
        }
        msgpack_sbuffer_write (&str, &c, 1);
    }
    if (*t->p == quote) {
        t->p++;
        msgpack_pack_str (pk, str.size);
        msgpack_pack_str_body (pk, str.data, str.size);
        rc = 0;
    }
cleanup:
    msgpack_sbuffer_destroy (&str);
    return rc;
}

//  Take character 'c' if it comes next; never steps past the end
static bool
s_text_eat (s_text_t *t, char c)
{
    s_text_space (t);
    if (*t->p != c || c == 0)
        return false;
    t->p++;
    return true;
}

static int
s_text_container (s_text_t *t, msgpack_packer *pk, int depth)
{
    char close = *t->p++ == '{'? '}': ']';
    msgpack_sbuffer items;
    msgpack_sbuffer_init (&items);
    msgpack_packer items_pk;
    msgpack_packer_init (&items_pk, &items, msgpack_sbuffer_write);
    uint32_t count = 0;
    int rc = 0;
    while (rc == 0 && !s_text_eat (t, close)) {
        if (count > 0 && !s_text_eat (t, ','))
            rc = PB_EINVAL;
        if (rc == 0)
            rc = s_text_value (t, &items_pk, depth + 1);
        if (rc == 0 && close == '}')
            rc = s_text_eat (t, ':')? s_text_value (t, &items_pk, depth + 1):
                                      PB_EINVAL;
        count++;
    }
    if (rc == 0) {
        if (close == '}')
            msgpack_pack_map (pk, count);
        else
            msgpack_pack_array (pk, count);
        msgpack_sbuffer *out = (msgpack_sbuffer *) pk->data;
        msgpack_sbuffer_write (out, items.data, items.size);
    }
    msgpack_sbuffer_destroy (&items);
    return rc;
}

static int
s_text_value (s_text_t *t, msgpack_packer *pk, int depth)
{
    s_text_space (t);
    char c = *t->p;
    if (c == '{' || c == '[')
        return depth < PB_MSGPACK_DEPTH_MAX? s_text_container (t, pk, depth):
                                             PB_EINVAL;
    if (c == '\'' || c == '"')
        return s_text_string (t, pk);
    const char *words [] = { "true", "false", "nil" };
    for (int w = 0; w < 3; w++)
        if (strncmp (t->p, words [w], strlen (words [w])) == 0) {
            t->p += strlen (words [w]);
            return w == 0? msgpack_pack_true (pk):
                   w == 1? msgpack_pack_false (pk): msgpack_pack_nil (pk);
        }
    const char *end = t->p;
    while (*end && (isalnum ((unsigned char) *end) || strchr ("+-.", *end)))
        end++;
    if (end == t->p)
        return PB_EINVAL;
    bool real = false;
    for (const char *q = t->p; q < end; q++)
        real |= *q == '.' || *q == 'e' || *q == 'E';
    char *stop;
    errno = 0;
    if (real) {
        double value = strtod (t->p, &stop);
        if (stop != end)
            return PB_EINVAL;
        t->p = end;
        return msgpack_pack_double (pk, value);
    }
    if (*t->p == '-') {
        long long value = strtoll (t->p, &stop, 10);
        if (stop != end || errno)
            return PB_EINVAL;
        t->p = end;
        return msgpack_pack_int64 (pk, value);
    }
    unsigned long long value = strtoull (t->p, &stop, 10);
    if (stop != end || errno)
        return PB_EINVAL;
    t->p = end;
    return msgpack_pack_uint64 (pk, value);
}

int
pb_msgpack_pack_text (const char *text, msgpack_sbuffer *buffer)
{
    assert (text);
    assert (buffer);
    msgpack_packer pk;
    msgpack_packer_init (&pk, buffer, msgpack_sbuffer_write);
    s_text_t t = { text };
    int rc = s_text_value (&t, &pk, 0);
    s_text_space (&t);
    if (rc == 0 && *t.p)
        rc = PB_EINVAL;                 //  Something after the value
    return rc? PB_EINVAL: 0;
}

//  --------------------------------------------------------------------------
//  Selftest

//  Check 'size' bytes; returns the code and keeps the error sentence
static int
s_test_check (const void *bytes, size_t size, const pb_limits_t *limits,
              const char *expect, bool verbose)
{
    char error [256];
    int rc = pb_msgpack_check (bytes, size, limits, error, sizeof error);
    size_t objects = SIZE_MAX;
    char error2 [256];
    assert (pb_msgpack_check_objects (bytes, size, limits, &objects, error2,
                                      sizeof error2) == rc);
    assert (strcmp (error, error2) == 0);
    if (verbose)
        printf ("\n    %d %s", rc, error);
    if (expect)
        assert (strstr (error, expect));
    if (rc == 0) {
        //  What passes, msgpack_unpack must read whole
        msgpack_zone zone;
        msgpack_zone_init (&zone, 1024);
        msgpack_object obj;
        size_t offset = 0;
        int ret = msgpack_unpack ((const char *) bytes, size, &offset, &zone, &obj);
        assert (ret == MSGPACK_UNPACK_SUCCESS);
        assert (offset == size);
        //  and pb_msgpack_unpack_checked gives the same objects, in as
        //  many slots as the walk counted
        assert (objects <= size);
        msgpack_object *slots = (msgpack_object *)
            malloc ((objects + 1) * sizeof (msgpack_object));
        assert (slots);
        msgpack_object root;
        pb_msgpack_unpack_checked (bytes, size, slots, objects, &root);
        assert (msgpack_object_equal (root, obj));
        assert (root.type == obj.type);
        free (slots);
        msgpack_zone_destroy (&zone);
    }
    return rc;
}

static int
s_test_text (const char *text, const pb_limits_t *limits, const char *expect,
             bool verbose)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    int rc = pb_msgpack_pack_text (text, &buffer);
    assert (rc == 0);
    rc = s_test_check (buffer.data, buffer.size, limits, expect, verbose);
    msgpack_sbuffer_destroy (&buffer);
    return rc;
}

#define S_RAW(limits, expect, ...) \
    s_test_check ((const uint8_t []) { __VA_ARGS__ }, \
                  sizeof ((const uint8_t []) { __VA_ARGS__ }), limits, expect, \
                  verbose)

void
pb_msgpack_test (bool verbose)
{
    printf (" * pb_msgpack: ");
    pb_limits_t limits = PB_LIMITS_DEFAULTS;
    pb_limits_t wide = { SIZE_MAX, 10000, UINT32_MAX, UINT32_MAX };

    //  Good input passes (and msgpack_unpack then reads it whole)
    assert (s_test_text ("{'a': 1, 'b': [1, -2, 3.5, true, false, nil, 'x'],"
                         " 'c': {'d': {}, 'e': []}, 7: 'int key', -7: 1}",
                         &limits, NULL, verbose) == 0);
    assert (s_test_text ("['T\\xc3\\xbcrkiye', '\\xe2\\x82\\xac', "
                         "'\\xf0\\x90\\x8d\\x88', '\\xed\\x9f\\xbf', "
                         "'\\xf4\\x8f\\xbf\\xbf', 'abcdefghijklmnop\\xc3\\xa9']",
                         &limits, NULL, verbose) == 0);
    assert (s_test_text ("[{'a': 1}, {'a': 2}, {'a': {'a': 1}}]", &limits,
                         NULL, verbose) == 0);
    assert (S_RAW (&limits, NULL, 0xc4, 0x02, 0xff, 0x00) == 0);  //  bin8
    assert (S_RAW (&limits, NULL, 0xca, 0, 0, 0, 0) == 0);        //  float32
    assert (S_RAW (&limits, NULL, 0xd9, 0x01, 'a') == 0);          //  str8
    assert (S_RAW (&limits, NULL, 0xda, 0, 0x01, 'a') == 0);       //  str16
    assert (S_RAW (&limits, NULL, 0xdc, 0, 1, 0xc0) == 0);         //  array16
    //  Every scalar encoding, as pb_msgpack_unpack_checked must read it
    assert (S_RAW (&limits, NULL, 0x94, 0xd0, 0x05, 0xd0, 0xfb,
                   0xd1, 0x80, 0x00, 0xd3, 0xff, 0xff, 0xff, 0xff,
                   0xff, 0xff, 0xff, 0xff) == 0);               //  int8..64
    assert (S_RAW (&limits, NULL, 0x93, 0xcc, 0xff, 0xcd, 0x12, 0x34,
                   0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                   0xfe) == 0);                                 //  uint8..64
    assert (S_RAW (&limits, NULL, 0x92, 0xca, 0x3f, 0xc0, 0, 0,
                   0xcb, 0xc0, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d,
                   0x18) == 0);                                 //  floats
    assert (S_RAW (&limits, NULL, 0xde, 0, 2, 0xa1, 'a', 0x90,
                   0xa1, 'b', 0x81, 0xd2, 0xff, 0xff, 0xff, 0xf0,
                   0xc5, 0, 1, 0x7f) == 0);                     //  map16, bin16

    //  Empty, garbage, reserved byte
    assert (s_test_check ("", 0, &limits, "truncated", verbose) == PB_PROTO_TRUNCATED);
    assert (S_RAW (&limits, "0xc1", 0xc1) == PB_PROTO_MALFORMED);
    assert (S_RAW (&limits, NULL, 0x93, 0x01, 0xc1, 0x02) == PB_PROTO_MALFORMED);
    assert (s_test_check ("hello, world", 12, &limits, "trailing", verbose)
            == PB_PROTO_MALFORMED);

    //  Truncated: headers, strings, containers, scalars
    assert (S_RAW (&limits, NULL, 0x92, 0x01) == PB_PROTO_TRUNCATED);
    assert (S_RAW (&limits, NULL, 0x81, 0xa1, 'a') == PB_PROTO_TRUNCATED);
    assert (S_RAW (&limits, NULL, 0xa3, 'a', 'b') == PB_PROTO_TRUNCATED);
    assert (S_RAW (&limits, NULL, 0xcd, 0x01) == PB_PROTO_TRUNCATED);
    assert (S_RAW (&limits, NULL, 0xcb, 0, 0, 0) == PB_PROTO_TRUNCATED);
    assert (S_RAW (&limits, NULL, 0xdb, 0x00, 0x00) == PB_PROTO_TRUNCATED);
    assert (S_RAW (&limits, NULL, 0xde, 0x00) == PB_PROTO_TRUNCATED);

    //  Trailing bytes
    assert (S_RAW (&limits, "1 trailing", 0x01, 0x02) == PB_PROTO_MALFORMED);
    assert (S_RAW (&limits, NULL, 0x80, 0x80) == PB_PROTO_MALFORMED);

    //  Declared lengths beyond the bytes: refused before anything is
    //  allocated, whether the limit or the bytes catch them first
    assert (S_RAW (&limits, "over the limit", 0xdd, 0xff, 0xff, 0xff, 0xff)
            == PB_PROTO_MALFORMED);
    assert (S_RAW (&wide, "cannot fit", 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01)
            == PB_PROTO_TRUNCATED);
    assert (S_RAW (&limits, "over the limit", 0xdf, 0xff, 0xff, 0xff, 0xff)
            == PB_PROTO_MALFORMED);
    assert (S_RAW (&wide, "cannot fit", 0xdf, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01)
            == PB_PROTO_TRUNCATED);
    //  A map of N pairs needs 2N bytes: 3 pairs in 5 bytes cannot be
    assert (S_RAW (&wide, "cannot fit", 0x83, 1, 1, 2, 2, 3) == PB_PROTO_TRUNCATED);
    assert (S_RAW (&limits, "over the limit", 0xdb, 0xff, 0xff, 0xff, 0xff, 'a')
            == PB_PROTO_MALFORMED);
    assert (S_RAW (&wide, "beyond", 0xdb, 0xff, 0xff, 0xff, 0xff, 'a')
            == PB_PROTO_TRUNCATED);
    assert (S_RAW (&wide, "beyond", 0xc6, 0x00, 0x01, 0x00, 0x00, 'a')
            == PB_PROTO_TRUNCATED);

    //  Limits on strings and containers
    pb_limits_t small = { 65536, 4, 3, 5 };
    assert (s_test_text ("'abcde'", &small, NULL, verbose) == 0);
    assert (s_test_text ("'abcdef'", &small, "over the limit 5", verbose)
            == PB_PROTO_MALFORMED);
    assert (S_RAW (&small, "over the limit 5", 0xc4, 6, 1, 2, 3, 4, 5, 6)
            == PB_PROTO_MALFORMED);
    assert (s_test_text ("[1, 2, 3]", &small, NULL, verbose) == 0);
    assert (s_test_text ("[1, 2, 3, 4]", &small, "over the limit 3", verbose)
            == PB_PROTO_MALFORMED);
    assert (s_test_text ("{1: 1, 2: 2, 3: 3, 4: 4}", &small, "over the limit 3",
                         verbose) == PB_PROTO_MALFORMED);
    assert (s_test_text ("[[[[1]]]]", &small, NULL, verbose) == 0);
    assert (s_test_text ("[[[[[1]]]]]", &small, "nesting deeper than 4",
                         verbose) == PB_PROTO_MALFORMED);
    assert (s_test_text ("[[[[{}]]]]", &small, "nesting", verbose)
            == PB_PROTO_MALFORMED);

    //  Depth: 32 is what msgpack-c can unpack; 33 and 5000 are refused
    //  without recursion, even when the configured limit is higher
    uint8_t deep [5001];
    memset (deep, 0x91, 5000);
    deep [5000] = 0x01;
    assert (s_test_check (deep + 5000 - 32, 33, &wide, NULL, verbose) == 0);
    assert (s_test_check (deep + 5000 - 33, 34, &wide, "nesting", verbose)
            == PB_PROTO_MALFORMED);
    assert (s_test_check (deep, sizeof deep, &limits, "nesting", verbose)
            == PB_PROTO_MALFORMED);
    assert (s_test_check (deep, sizeof deep, &wide, "nesting", verbose)
            == PB_PROTO_MALFORMED);
    memset (deep, 0x81, 5000);          //  {x: {x: ...}}: a map value nests
    assert (s_test_check (deep, sizeof deep, &wide, NULL, verbose) != 0);

    //  Ext types, the timestamp extension among them
    assert (S_RAW (&limits, "ext", 0xd4, 0x01, 0x00) == PB_PROTO_MALFORMED);
    assert (S_RAW (&limits, "ext", 0xd5, 0x01, 0x00, 0x00) == PB_PROTO_MALFORMED);
    assert (S_RAW (&limits, "ext", 0xd6, 0xff, 0, 0, 0, 1) == PB_PROTO_MALFORMED);
    assert (S_RAW (&limits, "ext", 0xd7, 0xff, 0, 0, 0, 0, 0, 0, 0, 1)
            == PB_PROTO_MALFORMED);
    assert (S_RAW (&limits, "ext", 0xd8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0,
                   0, 0, 0, 0, 0, 0, 0, 0) == PB_PROTO_MALFORMED);
    assert (S_RAW (&limits, "ext", 0xc7, 0x0c, 0xff, 0, 0, 0, 0, 0, 0, 0, 0,
                   0, 0, 0, 1) == PB_PROTO_MALFORMED);
    assert (S_RAW (&limits, "ext", 0xc8, 0x00, 0x01, 0x01, 0x00) == PB_PROTO_MALFORMED);
    assert (S_RAW (&limits, "ext", 0xc9, 0, 0, 0, 1, 0x01, 0x00) == PB_PROTO_MALFORMED);
    assert (S_RAW (&limits, "ext", 0x81, 0xa1, 'a', 0xd4, 0x01, 0x00)
            == PB_PROTO_MALFORMED);

    //  Invalid UTF-8 in values and in keys
    const char *bad_utf8 [] = {
        "'\\xc0\\xaf'",                 //  overlong '/'
        "'\\xc1\\xbf'",                 //  overlong
        "'\\xe0\\x80\\xaf'",            //  overlong, 3 bytes
        "'\\xf0\\x80\\x80\\xaf'",       //  overlong, 4 bytes
        "'\\xed\\xa0\\x80'",            //  surrogate U+D800
        "'\\xed\\xbf\\xbf'",            //  surrogate U+DFFF
        "'\\xf4\\x90\\x80\\x80'",       //  above U+10FFFF
        "'\\xf8\\x88\\x80\\x80\\x80'",  //  5-byte form
        "'\\xe2\\x82'",                 //  truncated sequence
        "'abc\\xe2'",                   //  truncated at the end
        "'\\x80'",                      //  lone continuation
        "'\\xc3\\x28'",                 //  bad continuation
        "'\\xff'",
        "'abcdefgh\\xff'",              //  after an ASCII run
        "{'\\xc0\\xaf': 1}",            //  in a key
        "{'a': {'\\xed\\xa0\\x80': 1}}",
    };
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8 [0]; i++)
        assert (s_test_text (bad_utf8 [i], &limits, "UTF-8", verbose)
                == PB_PROTO_MALFORMED);

    //  Duplicate keys at any level, however the key is encoded
    assert (s_test_text ("{'a': 1, 'a': 2}", &limits, "duplicate map key 'a'",
                         verbose) == PB_PROTO_MALFORMED);
    assert (s_test_text ("{'x': {'b': 1, 'a': 1, 'b': 2}}", &limits, "'b'",
                         verbose) == PB_PROTO_MALFORMED);
    assert (s_test_text ("[1, [{'x': 1, 'y': {}, 'x': nil}]]", &limits,
                         "duplicate", verbose) == PB_PROTO_MALFORMED);
    assert (s_test_text ("{1: 'a', 1: 'b'}", &limits, "duplicate", verbose)
            == PB_PROTO_MALFORMED);
    assert (S_RAW (&limits, "duplicate", 0x82, 0xa1, 'k', 0x01, 0xd9, 0x01, 'k', 0x02)
            == PB_PROTO_MALFORMED);     //  fixstr and str8 'k'
    assert (S_RAW (&limits, "duplicate", 0x82, 0x01, 0x01, 0xcc, 0x01, 0x02)
            == PB_PROTO_MALFORMED);     //  fixint and uint8 1
    assert (S_RAW (&limits, "duplicate", 0x82, 0xd0, 0x05, 0x01, 0x05, 0x02)
            == PB_PROTO_MALFORMED);     //  int8 and fixint 5
    assert (S_RAW (&limits, "duplicate", 0x82, 0xff, 0x01, 0xd1, 0xff, 0xff, 0x02)
            == PB_PROTO_MALFORMED);     //  -1 as fixint and int16
    assert (S_RAW (&limits, NULL, 0x82, 0xa1, 'k', 0x01, 0xc4, 0x01, 'k', 0x02)
            == 0);                      //  str 'k' and bin 'k' differ
    assert (S_RAW (&limits, NULL, 0x82, 0x91, 0x01, 0x01, 0x91, 0x02, 0x02)
            == 0);                      //  container keys [1], [2]
    assert (S_RAW (&limits, "duplicate", 0x82, 0x91, 0x01, 0x01, 0x91, 0x01, 0x02)
            == PB_PROTO_MALFORMED);     //  container keys [1], [1]

    //  Large maps: sorted, not compared pairwise; more keys than the
    //  walk's local stack
    char text [16384];
    size_t used = 0;
    used += snprintf (text + used, sizeof text - used, "{");
    for (int i = 0; i < 600; i++)
        used += snprintf (text + used, sizeof text - used, "%s'k%d': {'k%d': %d}",
                          i? ", ": "", i, i, i);
    snprintf (text + used, sizeof text - used, "}");
    assert (s_test_text (text, &limits, NULL, verbose) == 0);
    text [used] = 0;
    snprintf (text + used, sizeof text - used, ", 'k599': 0}");
    assert (s_test_text (text, &limits, "duplicate map key 'k599'", verbose)
            == PB_PROTO_MALFORMED);
    assert (s_test_text ("{'a': 1, 'b': 2, 'a': 3}", &limits,
                         "msgpack at byte 7: duplicate map key 'a'", verbose)
            == PB_PROTO_MALFORMED);

    //  Random bytes and mutations of a good message never crash, and what
    //  passes is always readable by msgpack_unpack (s_test_check asserts)
    msgpack_sbuffer good;
    msgpack_sbuffer_init (&good);
    int rc = pb_msgpack_pack_text (
        "{'id': 'x1', 'src': 'reg', 'type': 'nac.proposal', 'time': 5,"
        " 'data': {'proposal': 'p1', 'action': {'kind': 'cpe.assign',"
        " 'partner': 'UKR', 'ally': 'POL'}, 'procedure': 'meeting'},"
        " 'x': [1.5, -300, 70000, 'T\\xc3\\xbcrkiye', {}, [], nil]}", &good);
    assert (rc == 0);
    uint64_t state = 0x9e3779b97f4a7c15ULL;
    uint8_t fuzz [512];
    int passed = 0;
    for (int round = 0; round < 20000; round++) {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17;
        size_t size;
        if (round % 2) {
            size = state % sizeof fuzz;
            for (size_t i = 0; i < size; i++) {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                fuzz [i] = (uint8_t) state;
            }
        }
        else {
            size = good.size;
            memcpy (fuzz, good.data, size);
            for (int flips = 1 + state % 4; flips; flips--) {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                fuzz [state % size] = (uint8_t) (state >> 32);
            }
            if (state % 5 == 0)
                size = (state >> 16) % size;
        }
        if (s_test_check (fuzz, size, &limits, NULL, false) == 0)
            passed++;
    }
    assert (passed > 0);
    msgpack_sbuffer_destroy (&good);

    //  The text notation refuses what it cannot read
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    assert (pb_msgpack_pack_text ("{'a' 1}", &buffer) == PB_EINVAL);
    assert (pb_msgpack_pack_text ("[1, 2", &buffer) == PB_EINVAL);
    assert (pb_msgpack_pack_text ("'abc", &buffer) == PB_EINVAL);
    assert (pb_msgpack_pack_text ("1 2", &buffer) == PB_EINVAL);
    assert (pb_msgpack_pack_text ("", &buffer) == PB_EINVAL);
    assert (pb_msgpack_pack_text ("{'a': 1,", &buffer) == PB_EINVAL);
    assert (pb_msgpack_pack_text ("{'a':", &buffer) == PB_EINVAL);
    assert (pb_msgpack_pack_text ("['a\\", &buffer) == PB_EINVAL);
    assert (pb_msgpack_pack_text ("[1,]", &buffer) == PB_EINVAL);
    assert (pb_msgpack_pack_text ((const char *) deep, &buffer) == PB_EINVAL);
    msgpack_sbuffer_destroy (&buffer);

    //  Integer readers take both encodings
    msgpack_object obj;
    int64_t i64;
    uint64_t u64;
    obj.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    obj.via.u64 = 5;
    assert (pb_msgpack_int (&obj, &i64) && i64 == 5);
    assert (pb_msgpack_uint (&obj, &u64) && u64 == 5);
    obj.via.u64 = UINT64_MAX;
    assert (!pb_msgpack_int (&obj, &i64));
    assert (pb_msgpack_uint (&obj, &u64) && u64 == UINT64_MAX);
    obj.type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
    obj.via.i64 = -5;
    assert (pb_msgpack_int (&obj, &i64) && i64 == -5);
    assert (!pb_msgpack_uint (&obj, &u64));
    obj.type = MSGPACK_OBJECT_FLOAT64;
    assert (!pb_msgpack_int (&obj, &i64) && !pb_msgpack_uint (&obj, &u64));

    //  Lookups and quoting
    obj.type = MSGPACK_OBJECT_STR;
    obj.via.str.ptr = "abc";
    obj.via.str.size = 3;
    assert (pb_msgpack_str_eq (&obj, "abc"));
    assert (!pb_msgpack_str_eq (&obj, "ab"));
    assert (!pb_msgpack_str_eq (NULL, "abc"));
    assert (pb_msgpack_get (&obj, "abc") == NULL);
    char quoted [10];
    assert (!strcmp (pb_msgpack_quote (quoted, sizeof quoted, "a\xff\n", 3), "a??"));
    assert (!strcmp (pb_msgpack_quote (quoted, sizeof quoted, "abcdefghij", 10),
                    "abcdef..."));
    assert (pb_msgpack_utf8_valid ("", 0));
    //  One scalar at a time, read as the unpacker reads it
    msgpack_object one;
    assert (pb_msgpack_read_scalar ("\x07", 1, &one) == 1
            && one.type == MSGPACK_OBJECT_POSITIVE_INTEGER && one.via.u64 == 7);
    assert (pb_msgpack_read_scalar ("\xd1\xff\x7f", 3, &one) == 3
            && one.type == MSGPACK_OBJECT_NEGATIVE_INTEGER && one.via.i64 == -129);
    assert (pb_msgpack_read_scalar ("\xd0\x05", 2, &one) == 2
            && one.type == MSGPACK_OBJECT_POSITIVE_INTEGER && one.via.u64 == 5);
    assert (pb_msgpack_read_scalar ("\xc3\x01", 2, &one) == 1
            && one.type == MSGPACK_OBJECT_BOOLEAN && one.via.boolean);
    assert (pb_msgpack_read_scalar ("\xcf\x00\x00", 3, &one) == 0);  //  cut short
    assert (pb_msgpack_read_scalar ("\xa1x", 2, &one) == 0);          //  a str
    assert (pb_msgpack_read_scalar ("\x91\x01", 2, &one) == 0);      //  an array
    assert (pb_msgpack_read_scalar ("\xc1", 1, &one) == 0);
    assert (pb_msgpack_read_scalar (NULL, 0, &one) == 0);
    printf ("OK\n");
}
