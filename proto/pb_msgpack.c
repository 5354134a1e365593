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
    s_key_make (w->bytes + start, end - start, &w->keys [w->keys_count++]);
    return 0;
}

static int
s_key_duplicate (s_walk_t *w, const s_key_t *key)
{
    char quoted [48];
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
                    return s_key_duplicate (w, keys + i);
        return 0;
    }
    qsort (keys, n, sizeof (s_key_t), s_key_cmp);
    for (size_t i = 1; i < n; i++)
        if (s_key_cmp (keys + i, keys + i - 1) == 0)
            return s_key_duplicate (w, keys + i);
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
    if (s_classify (p [0], &kind, &head, &len))
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
    assert (limits);
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
    w.error = error;
    w.error_size = error_size;
    if (error && error_size)
        error [0] = 0;
    int rc = s_walk (&w);
    if (w.keys != w.keys_local)
        free (w.keys);
    return rc;
}

//  --------------------------------------------------------------------------
//  UTF-8 (RFC 3629). ASCII, by far the common case, goes 8 bytes at a time.

bool
pb_msgpack_utf8_valid (const void *s_, size_t len)
{
    const uint8_t *s = (const uint8_t *) s_;
    size_t i = 0;
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
