/*  =========================================================================
    pb_wire - the small maps of ingest replies and of replay and control

    The reader here is deliberately not msgpack-c's unpacker: that one
    allocates what a declared count asks for before the elements arrive,
    so a 10-byte map could ask for gigabytes. These maps are tiny and flat,
    so a cursor that checks each length against the bytes left is simpler
    and bounded by construction (invariant 4).
    =========================================================================
*/
#include "pb_wire.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  --------------------------------------------------------------------------
//  Writing

typedef struct {
    uint8_t *data;              //  the caller's buffer (borrowed)
    size_t size;                //  its capacity
    size_t len;                 //  bytes written so far
    bool full;                  //  something did not fit
} s_out_t;

static void
s_put (s_out_t *out, const void *bytes, size_t size)
{
    if (out->full || out->size - out->len < size) {
        out->full = true;
        return;
    }
    memcpy (out->data + out->len, bytes, size);
    out->len += size;
}

//  A type byte followed by 'width' bytes of 'value', big-endian
static void
s_put_be (s_out_t *out, uint8_t type, uint64_t value, int width)
{
    uint8_t bytes [9];
    bytes [0] = type;
    for (int i = 0; i < width; i++)
        bytes [1 + i] = (uint8_t) (value >> (8 * (width - 1 - i)));
    s_put (out, bytes, 1 + width);
}

static void
s_put_map (s_out_t *out, uint32_t count)
{
    assert (count < 16);                //  every map here is small
    s_put_be (out, (uint8_t) (0x80 | count), 0, 0);
}

static void
s_put_str (s_out_t *out, const char *text, size_t len)
{
    if (len < 32)
        s_put_be (out, (uint8_t) (0xa0 | len), 0, 0);
    else
    if (len <= 0xff)
        s_put_be (out, 0xd9, len, 1);
    else
    if (len <= 0xffff)
        s_put_be (out, 0xda, len, 2);
    else
        s_put_be (out, 0xdb, len, 4);
    s_put (out, text, len);
}

static void
s_put_key (s_out_t *out, const char *key)
{
    s_put_str (out, key, strlen (key));
}

static void
s_put_uint (s_out_t *out, uint64_t value)
{
    if (value < 128)
        s_put_be (out, (uint8_t) value, 0, 0);
    else
    if (value <= 0xff)
        s_put_be (out, 0xcc, value, 1);
    else
    if (value <= 0xffff)
        s_put_be (out, 0xcd, value, 2);
    else
    if (value <= 0xffffffffULL)
        s_put_be (out, 0xce, value, 4);
    else
        s_put_be (out, 0xcf, value, 8);
}

static void
s_put_int (s_out_t *out, int64_t value)
{
    if (value >= 0)
        s_put_uint (out, (uint64_t) value);
    else
    if (value >= -32)
        s_put_be (out, (uint8_t) value, 0, 0);
    else
    if (value >= INT8_MIN)
        s_put_be (out, 0xd0, (uint64_t) value & 0xff, 1);
    else
    if (value >= INT16_MIN)
        s_put_be (out, 0xd1, (uint64_t) value & 0xffff, 2);
    else
    if (value >= INT32_MIN)
        s_put_be (out, 0xd2, (uint64_t) value & 0xffffffffULL, 4);
    else
        s_put_be (out, 0xd3, (uint64_t) value, 8);
}

//  Length of the valid UTF-8 sequence at 'text' (1..4), or 0 if invalid
static size_t
s_utf8_len (const uint8_t *text, size_t left)
{
    uint8_t c = text [0];
    size_t len = c < 0x80? 1: (c & 0xe0) == 0xc0? 2: (c & 0xf0) == 0xe0? 3
               : (c & 0xf8) == 0xf0? 4: 0;
    if (len == 0 || len > left || (len == 2 && c < 0xc2) || (len == 4 && c > 0xf4))
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((text [i] & 0xc0) != 0x80)
            return 0;
    if (len == 3) {
        uint32_t cp = ((c & 0x0fu) << 12) | ((text [1] & 0x3fu) << 6);
        if (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;                   //  Overlong, or a surrogate
    }
    if (len == 4) {
        uint32_t cp = ((c & 0x07u) << 18) | ((text [1] & 0x3fu) << 12);
        if (cp < 0x10000 || cp > 0x10ffff)
            return 0;
    }
    return len;
}

//  An error sentence: cut at a character boundary, invalid bytes as '?',
//  because a client's decoder would refuse the whole reply over one bad
//  byte echoed from a hostile message.
static void
s_put_text (s_out_t *out, const char *text)
{
    char clean [PB_WIRE_TEXT_MAX];
    size_t len = 0;
    const uint8_t *at = (const uint8_t *) (text? text: "");
    size_t left = strlen ((const char *) at);
    while (left > 0) {
        size_t step = s_utf8_len (at, left);
        if (step == 0) {
            if (len + 1 > sizeof clean)
                break;
            clean [len++] = '?';
            step = 1;
        }
        else {
            if (len + step > sizeof clean)
                break;
            memcpy (clean + len, at, step);
            len += step;
        }
        at += step;
        left -= step;
    }
    s_put_str (out, clean, len);
}

static int
s_finish (s_out_t *out, size_t *len_p)
{
    if (out->full)
        return PB_PROTO_TOO_LARGE;
    *len_p = out->len;
    return 0;
}

//  --------------------------------------------------------------------------
//  Reading

typedef struct {
    const uint8_t *at;          //  next byte (borrowed)
    const uint8_t *end;         //  past the last byte
    const char *what;           //  the command, for error sentences
    char *error;                //  where to write the sentence (borrowed)
    size_t error_size;
    int rc;                     //  first failure
} s_in_t;

static void
s_fail (s_in_t *in, int rc, const char *format, ...)
{
    if (in->rc)
        return;                         //  The first failure names the field
    in->rc = rc;
    if (in->error && in->error_size) {
        int used = snprintf (in->error, in->error_size, "%s", in->what);
        if (used < 0 || (size_t) used >= in->error_size)
            return;
        va_list args;
        va_start (args, format);
        vsnprintf (in->error + used, in->error_size - used, format, args);
        va_end (args);
    }
}

//  Read a big-endian number of 'width' bytes
static bool
s_get_be (s_in_t *in, int width, uint64_t *value)
{
    if (in->end - in->at < width)
        return false;
    uint64_t result = 0;
    for (int i = 0; i < width; i++)
        result = (result << 8) | in->at [i];
    in->at += width;
    *value = result;
    return true;
}

typedef enum { S_NONE, S_UINT, S_NEGATIVE, S_STR, S_ARRAY, S_MAP, S_OTHER } s_kind_t;

//  Read one item's head: its kind, and its value (integers), its length
//  (str, bin) or its count (array, map). Lengths are checked against the
//  bytes left; counts at least against one byte per element. Returns
//  S_NONE (and fails) when the bytes end first.
static s_kind_t
s_get_head (s_in_t *in, uint64_t *value)
{
    if (in->at >= in->end) {
        s_fail (in, PB_PROTO_TRUNCATED, ": truncated");
        return S_NONE;
    }
    uint8_t c = *in->at++;
    uint64_t n = 0;
    s_kind_t kind = S_OTHER;
    bool ok = true;
    if (c < 0x80)               { n = c; kind = S_UINT; }
    else if (c >= 0xe0)         { n = (uint64_t) (int64_t) (int8_t) c; kind = S_NEGATIVE; }
    else if ((c & 0xf0) == 0x80) { n = c & 0x0f; kind = S_MAP; }
    else if ((c & 0xf0) == 0x90) { n = c & 0x0f; kind = S_ARRAY; }
    else if ((c & 0xe0) == 0xa0) { n = c & 0x1f; kind = S_STR; }
    else if (c >= 0xcc && c <= 0xcf) { ok = s_get_be (in, 1 << (c - 0xcc), &n); kind = S_UINT; }
    else if (c >= 0xd0 && c <= 0xd3) {
        int width = 1 << (c - 0xd0);
        ok = s_get_be (in, width, &n);
        if (width < 8 && (n >> (8 * width - 1)))
            n |= ~0ULL << (8 * width);  //  Sign-extend
        kind = (int64_t) n < 0? S_NEGATIVE: S_UINT;
    }
    else if (c >= 0xd9 && c <= 0xdb) { ok = s_get_be (in, 1 << (c - 0xd9), &n); kind = S_STR; }
    else if (c >= 0xc4 && c <= 0xc6) { ok = s_get_be (in, 1 << (c - 0xc4), &n); }
    else if (c == 0xdc || c == 0xdd) { ok = s_get_be (in, c == 0xdc? 2: 4, &n); kind = S_ARRAY; }
    else if (c == 0xde || c == 0xdf) { ok = s_get_be (in, c == 0xde? 2: 4, &n); kind = S_MAP; }
    else if (c == 0xc0 || c == 0xc2 || c == 0xc3) n = 0;
    else if (c == 0xca || c == 0xcb) { n = 0; ok = s_get_be (in, c == 0xca? 4: 8, &n); }
    else {
        //  ext types and the unused byte 0xc1: none of these maps has them
        s_fail (in, PB_PROTO_MALFORMED, ": unsupported MessagePack type 0x%02x", c);
        return S_NONE;
    }
    size_t left = (size_t) (in->end - in->at);
    if (ok && (c & 0xe0) != 0xa0 && c != 0xd9 && c != 0xda && c != 0xdb
    &&  !(c >= 0xc4 && c <= 0xc6))
        ok = !(kind == S_ARRAY && n > left) && !(kind == S_MAP && n > left / 2);
    else
    if (ok)
        ok = n <= left;                 //  str and bin bytes
    if (!ok) {
        s_fail (in, PB_PROTO_TRUNCATED, ": truncated");
        return S_NONE;
    }
    *value = n;
    return kind;
}

//  Skip one value of any kind, nesting at most 'depth' deeper
static void
s_skip (s_in_t *in, int depth)
{
    uint64_t n = 0;
    const uint8_t *start = in->at;
    s_kind_t kind = s_get_head (in, &n);
    if (kind == S_NONE)
        return;
    if (kind == S_STR || (kind == S_OTHER && *start >= 0xc4 && *start <= 0xc6))
        in->at += n;
    else
    if (kind == S_ARRAY || kind == S_MAP) {
        if (depth == 0) {
            s_fail (in, PB_PROTO_MALFORMED, ": nested too deep");
            return;
        }
        uint64_t items = kind == S_MAP? n * 2: n;
        for (uint64_t i = 0; i < items && in->rc == 0; i++)
            s_skip (in, depth - 1);
    }
}

//  The fields of one map, filled by s_get_map
typedef enum { F_UINT, F_INT, F_STR, F_STRS } s_type_t;

typedef struct {
    const char *key;            //  field name (static)
    s_type_t type;              //  what it must hold
    bool required;              //  missing is an error
    bool present;               //  set by s_get_map
    uint64_t u;                 //  F_UINT value, F_STRS count
    int64_t i;                  //  F_INT value
    const uint8_t *s;           //  F_STR bytes, F_STRS first element (borrowed)
    size_t len;                 //  F_STR length
} s_field_t;

#define S_FIELD(key, type, required) { key, type, required, false, 0, 0, NULL, 0 }

//  Read the value of one field, checking its type
static void
s_get_field (s_in_t *in, s_field_t *f)
{
    uint64_t n = 0;
    s_kind_t kind = s_get_head (in, &n);
    if (kind == S_NONE)
        return;
    if (f->type == F_UINT && kind == S_UINT)
        f->u = n;
    else
    if (f->type == F_INT && (kind == S_NEGATIVE || (kind == S_UINT && n <= INT64_MAX)))
        f->i = (int64_t) n;
    else
    if (f->type == F_STR && kind == S_STR) {
        f->s = in->at;
        f->len = (size_t) n;
        in->at += n;
    }
    else
    if (f->type == F_STRS && kind == S_ARRAY) {
        if (n > PB_WIRE_PREFIXES_MAX) {
            s_fail (in, PB_PROTO_MALFORMED, ".%s: more than %d entries",
                    f->key, PB_WIRE_PREFIXES_MAX);
            return;
        }
        f->u = n;
        f->s = in->at;
        for (uint64_t i = 0; i < n && in->rc == 0; i++) {
            uint64_t len = 0;
            kind = s_get_head (in, &len);
            if (kind != S_STR || len > PB_WIRE_PREFIX_MAX) {
                s_fail (in, PB_PROTO_MALFORMED, ".%s[%d]: %s", f->key, (int) i,
                        kind != S_STR? "not a string": "longer than 128 bytes");
                return;
            }
            in->at += len;
        }
    }
    else {
        const char *want = f->type == F_UINT? "an unsigned integer"
                         : f->type == F_INT? "an integer"
                         : f->type == F_STR? "a string": "an array of strings";
        s_fail (in, PB_PROTO_MALFORMED, ".%s: not %s", f->key, want);
    }
}

//  Read a whole map of 'size' bytes into 'fields'. 'strict' refuses keys
//  that are not in the list (requests); otherwise they are skipped.
static int
s_get_map (s_in_t *in, const void *bytes, size_t size, s_field_t *fields,
           size_t field_count, bool strict)
{
    if (size > PB_WIRE_REQUEST_MAX) {
        s_fail (in, PB_PROTO_TOO_LARGE, ": over %d bytes", PB_WIRE_REQUEST_MAX);
        return in->rc;
    }
    in->at = (const uint8_t *) bytes;
    in->end = in->at + size;
    uint64_t count = 0;
    s_kind_t kind = s_get_head (in, &count);
    if (kind != S_MAP) {
        s_fail (in, PB_PROTO_MALFORMED, ": not a map");
        return in->rc;
    }
    for (uint64_t i = 0; i < count && in->rc == 0; i++) {
        uint64_t key_len = 0;
        if (s_get_head (in, &key_len) != S_STR) {
            s_fail (in, PB_PROTO_MALFORMED, ": a key is not a string");
            break;
        }
        const char *key = (const char *) in->at;
        in->at += key_len;
        s_field_t *field = NULL;
        for (size_t j = 0; j < field_count && !field; j++)
            if (strlen (fields [j].key) == key_len
            &&  memcmp (fields [j].key, key, key_len) == 0)
                field = &fields [j];
        if (field && field->present)
            s_fail (in, PB_PROTO_MALFORMED, ".%s: repeated", field->key);
        else
        if (field) {
            field->present = true;
            s_get_field (in, field);
        }
        else
        if (strict) {
            bool printable = key_len <= 32;
            for (size_t j = 0; j < key_len && printable; j++)
                printable = key [j] > 0x20 && key [j] < 0x7f;
            if (printable)
                s_fail (in, PB_PROTO_MALFORMED, ".%.*s: unknown field",
                        (int) key_len, key);
            else
                s_fail (in, PB_PROTO_MALFORMED, ": unknown field");
        }
        else
            s_skip (in, 8);
    }
    for (size_t j = 0; j < field_count && in->rc == 0; j++)
        if (fields [j].required && !fields [j].present)
            s_fail (in, PB_PROTO_MALFORMED, ".%s: missing", fields [j].key);
    if (in->rc == 0 && in->at != in->end)
        s_fail (in, PB_PROTO_MALFORMED, ": trailing bytes after the map");
    return in->rc;
}

//  Copy a str field into a fixed buffer: whole for ids, cut for texts
static void
s_copy_text (const s_field_t *f, char *dest, size_t dest_size, size_t *len_p)
{
    size_t len = f->len < dest_size - 1? f->len: dest_size - 1;
    //  Back off to a character boundary so the copy stays valid UTF-8
    while (len < f->len && len > 0 && (f->s [len] & 0xc0) == 0x80)
        len--;
    memcpy (dest, f->s, len);
    dest [len] = 0;
    if (len_p)
        *len_p = len;
}

#define S_IN(what) { NULL, NULL, what, error, error_size, 0 }

//  --------------------------------------------------------------------------

pb_wire_cmd_t
pb_wire_command (const void *frame, size_t size)
{
    static const char *const names [] = {
#define XX(name, text) text,
        PB_WIRE_COMMANDS (XX)
#undef XX
    };
    for (size_t i = 0; i < sizeof names / sizeof names [0]; i++)
        if (strlen (names [i]) == size && memcmp (names [i], frame, size) == 0)
            return (pb_wire_cmd_t) (i + 1);
    return PB_WIRE_UNKNOWN;
}

const char *
pb_wire_command_name (pb_wire_cmd_t cmd)
{
    switch (cmd) {
#define XX(name, text) case name: return text;
        PB_WIRE_COMMANDS (XX)
#undef XX
        default:
            return "";
    }
}

const char *
pb_wire_refusal_code (pb_wire_refusal_t code)
{
    switch (code) {
#define XX(name, text) case name: return text;
        PB_WIRE_REFUSALS (XX)
#undef XX
        default:
            return "";
    }
}

//  --------------------------------------------------------------------------
//  Encoders

int
pb_wire_ack_encode (const char *id, size_t id_len, uint64_t seq,
                    uint8_t *buf, size_t size, size_t *len_p)
{
    if (!id || id_len > PB_WIRE_ID_MAX)
        return PB_EINVAL;
    s_out_t out = { buf, size, 0, false };
    s_put_map (&out, 2);
    s_put_key (&out, "id");
    s_put_str (&out, id, id_len);
    s_put_key (&out, "seq");
    s_put_uint (&out, seq);
    return s_finish (&out, len_p);
}

int
pb_wire_nak_encode (const char *id, size_t id_len, pb_nak_t code,
                    const char *error, uint8_t *buf, size_t size,
                    size_t *len_p)
{
    if ((id && id_len > PB_WIRE_ID_MAX) || code <= PB_NAK_NONE || code >= PB_NAK_COUNT)
        return PB_EINVAL;
    s_out_t out = { buf, size, 0, false };
    s_put_map (&out, id? 3: 2);
    if (id) {
        s_put_key (&out, "id");
        s_put_str (&out, id, id_len);
    }
    s_put_key (&out, "code");
    s_put_key (&out, pb_nak_code (code));
    s_put_key (&out, "error");
    s_put_text (&out, error);
    return s_finish (&out, len_p);
}

int
pb_wire_replay_encode (uint64_t from, uint64_t to,
                       const char *const *prefixes, size_t prefix_count,
                       uint32_t credit, uint8_t *buf, size_t size,
                       size_t *len_p)
{
    if (from == 0 || (to && to < from) || prefix_count > PB_WIRE_PREFIXES_MAX
    ||  credit > PB_WIRE_CREDIT_MAX || (prefix_count && !prefixes))
        return PB_EINVAL;
    for (size_t i = 0; i < prefix_count; i++)
        if (!prefixes [i] || strlen (prefixes [i]) > PB_WIRE_PREFIX_MAX)
            return PB_EINVAL;
    s_out_t out = { buf, size, 0, false };
    s_put_map (&out, 1 + (to? 1: 0) + (prefix_count? 1: 0) + (credit? 1: 0));
    s_put_key (&out, "from");
    s_put_uint (&out, from);
    if (to) {
        s_put_key (&out, "to");
        s_put_uint (&out, to);
    }
    if (prefix_count) {
        s_put_key (&out, "prefixes");
        if (prefix_count < 16)
            s_put_be (&out, (uint8_t) (0x90 | prefix_count), 0, 0);
        else
            s_put_be (&out, 0xdc, prefix_count, 2);
        for (size_t i = 0; i < prefix_count; i++)
            s_put_key (&out, prefixes [i]);
    }
    if (credit) {
        s_put_key (&out, "credit");
        s_put_uint (&out, credit);
    }
    if (out.len > PB_WIRE_REQUEST_MAX)
        out.full = true;                //  The journal would refuse it
    return s_finish (&out, len_p);
}

int
pb_wire_credit_encode (uint32_t n, uint8_t *buf, size_t size, size_t *len_p)
{
    if (n == 0 || n > PB_WIRE_CREDIT_MAX)
        return PB_EINVAL;
    s_out_t out = { buf, size, 0, false };
    s_put_map (&out, 1);
    s_put_key (&out, "n");
    s_put_uint (&out, n);
    return s_finish (&out, len_p);
}

int
pb_wire_end_encode (const pb_wire_end_t *end, uint8_t *buf, size_t size,
                    size_t *len_p)
{
    assert (end);
    s_out_t out = { buf, size, 0, false };
    s_put_map (&out, 3);
    s_put_key (&out, "through");
    s_put_uint (&out, end->through);
    s_put_key (&out, "head");
    s_put_uint (&out, end->head);
    s_put_key (&out, "count");
    s_put_uint (&out, end->count);
    return s_finish (&out, len_p);
}

static int
s_encode_uint1 (const char *key, uint64_t value, uint8_t *buf, size_t size,
                size_t *len_p)
{
    s_out_t out = { buf, size, 0, false };
    s_put_map (&out, 1);
    s_put_key (&out, key);
    s_put_uint (&out, value);
    return s_finish (&out, len_p);
}

int
pb_wire_import_encode (uint64_t after, uint8_t *buf, size_t size, size_t *len_p)
{
    return s_encode_uint1 ("after", after, buf, size, len_p);
}

int
pb_wire_imported_encode (uint64_t head, uint8_t *buf, size_t size, size_t *len_p)
{
    return s_encode_uint1 ("head", head, buf, size, len_p);
}

int
pb_wire_tick_encode (int64_t now, uint8_t *buf, size_t size, size_t *len_p)
{
    s_out_t out = { buf, size, 0, false };
    s_put_map (&out, 1);
    s_put_key (&out, "now");
    s_put_int (&out, now);
    return s_finish (&out, len_p);
}

int
pb_wire_ticked_encode (uint64_t seq, int64_t now, uint8_t *buf, size_t size,
                       size_t *len_p)
{
    s_out_t out = { buf, size, 0, false };
    s_put_map (&out, 2);
    s_put_key (&out, "seq");
    s_put_uint (&out, seq);
    s_put_key (&out, "now");
    s_put_int (&out, now);
    return s_finish (&out, len_p);
}

int
pb_wire_status_encode (const pb_wire_status_t *status, uint8_t *buf,
                       size_t size, size_t *len_p)
{
    assert (status);
    s_out_t out = { buf, size, 0, false };
    s_put_map (&out, 3);
    s_put_key (&out, "head");
    s_put_uint (&out, status->head);
    s_put_key (&out, "now");
    s_put_int (&out, status->now);
    s_put_key (&out, "clock");
    s_put_key (&out, status->manual? "manual": "auto");
    return s_finish (&out, len_p);
}

int
pb_wire_error_encode (pb_wire_refusal_t code, const char *error,
                      uint8_t *buf, size_t size, size_t *len_p)
{
    if (code <= PB_WIRE_REFUSAL_NONE || code >= PB_WIRE_REFUSAL_COUNT)
        return PB_EINVAL;
    s_out_t out = { buf, size, 0, false };
    s_put_map (&out, 2);
    s_put_key (&out, "code");
    s_put_key (&out, pb_wire_refusal_code (code));
    s_put_key (&out, "error");
    s_put_text (&out, error);
    return s_finish (&out, len_p);
}

int
pb_wire_heartbeat_encode (uint64_t head, int64_t ts, uint8_t *buf,
                          size_t size, size_t *len_p)
{
    s_out_t out = { buf, size, 0, false };
    s_put_map (&out, 2);
    s_put_key (&out, "head");
    s_put_uint (&out, head);
    s_put_key (&out, "ts");
    s_put_int (&out, ts);
    return s_finish (&out, len_p);
}

//  --------------------------------------------------------------------------
//  Decoders

int
pb_wire_ack_decode (const void *bytes, size_t size, pb_wire_ack_t *ack,
                    char *error, size_t error_size)
{
    assert (ack);
    s_in_t in = S_IN ("ACK");
    s_field_t f [] = {
        S_FIELD ("id", F_STR, true), S_FIELD ("seq", F_UINT, true)
    };
    if (s_get_map (&in, bytes, size, f, 2, false) == 0 && f [0].len > PB_WIRE_ID_MAX)
        s_fail (&in, PB_PROTO_MALFORMED, ".id: longer than %d bytes", PB_WIRE_ID_MAX);
    if (in.rc == 0) {
        s_copy_text (&f [0], ack->id, sizeof ack->id, &ack->id_len);
        ack->seq = f [1].u;
    }
    return in.rc;
}

int
pb_wire_nak_decode (const void *bytes, size_t size, pb_wire_nak_t *nak,
                    char *error, size_t error_size)
{
    assert (nak);
    s_in_t in = S_IN ("NAK");
    s_field_t f [] = {
        S_FIELD ("id", F_STR, false), S_FIELD ("code", F_STR, true), S_FIELD ("error", F_STR, true)
    };
    if (s_get_map (&in, bytes, size, f, 3, false) == 0 && f [0].len > PB_WIRE_ID_MAX)
        s_fail (&in, PB_PROTO_MALFORMED, ".id: longer than %d bytes", PB_WIRE_ID_MAX);
    nak->code = PB_NAK_NONE;
    for (int code = PB_NAK_NONE + 1; code < PB_NAK_COUNT && in.rc == 0; code++)
        if (strlen (pb_nak_code ((pb_nak_t) code)) == f [1].len
        &&  memcmp (pb_nak_code ((pb_nak_t) code), f [1].s, f [1].len) == 0)
            nak->code = (pb_nak_t) code;
    if (in.rc == 0 && nak->code == PB_NAK_NONE)
        s_fail (&in, PB_PROTO_MALFORMED, ".code: not a code of PROTOCOL.md");
    if (in.rc == 0) {
        nak->has_id = f [0].present;
        nak->id [0] = 0;
        nak->id_len = 0;
        if (nak->has_id)
            s_copy_text (&f [0], nak->id, sizeof nak->id, &nak->id_len);
        s_copy_text (&f [2], nak->error, sizeof nak->error, NULL);
    }
    return in.rc;
}

int
pb_wire_replay_decode (const void *bytes, size_t size,
                       pb_wire_replay_t *replay, char *error,
                       size_t error_size)
{
    assert (replay);
    s_in_t in = S_IN ("REPLAY");
    s_field_t f [] = {
        S_FIELD ("from", F_UINT, true), S_FIELD ("to", F_UINT, false),
        S_FIELD ("prefixes", F_STRS, false), S_FIELD ("credit", F_UINT, false)
    };
    if (s_get_map (&in, bytes, size, f, 4, true))
        return in.rc;
    if (f [0].u == 0)
        s_fail (&in, PB_PROTO_MALFORMED, ".from: must be at least 1");
    else
    if (f [1].present && f [1].u < f [0].u)
        s_fail (&in, PB_PROTO_MALFORMED, ".to: below from");
    else
    if (f [3].present && (f [3].u == 0 || f [3].u > PB_WIRE_CREDIT_MAX))
        s_fail (&in, PB_PROTO_MALFORMED, ".credit: not in 1..%d", PB_WIRE_CREDIT_MAX);
    if (in.rc)
        return in.rc;
    replay->from = f [0].u;
    replay->to = f [1].present? f [1].u: UINT64_MAX;
    replay->credit = f [3].present? (uint32_t) f [3].u: PB_WIRE_CREDIT_DEFAULT;
    replay->prefix_count = 0;
    //  The array was checked by s_get_field: read it again, copying
    s_in_t again = { f [2].s, in.end, "REPLAY", NULL, 0, 0 };
    size_t used = 0;
    for (uint64_t i = 0; f [2].present && i < f [2].u; i++) {
        uint64_t len = 0;
        s_get_head (&again, &len);
        assert (again.rc == 0 && used + len <= sizeof replay->text);
        memcpy (replay->text + used, again.at, len);
        replay->prefix_off [i] = (uint16_t) used;
        replay->prefix_len [i] = (uint16_t) len;
        replay->prefix_count++;
        used += len;
        again.at += len;
    }
    return 0;
}

int
pb_wire_credit_decode (const void *bytes, size_t size, uint32_t *n_p,
                       char *error, size_t error_size)
{
    assert (n_p);
    s_in_t in = S_IN ("CREDIT");
    s_field_t f [] = { S_FIELD ("n", F_UINT, true) };
    if (s_get_map (&in, bytes, size, f, 1, true) == 0
    &&  (f [0].u == 0 || f [0].u > PB_WIRE_CREDIT_MAX))
        s_fail (&in, PB_PROTO_MALFORMED, ".n: not in 1..%d", PB_WIRE_CREDIT_MAX);
    if (in.rc == 0)
        *n_p = (uint32_t) f [0].u;
    return in.rc;
}

int
pb_wire_end_decode (const void *bytes, size_t size, pb_wire_end_t *end,
                    char *error, size_t error_size)
{
    assert (end);
    s_in_t in = S_IN ("END");
    s_field_t f [] = {
        S_FIELD ("through", F_UINT, true), S_FIELD ("head", F_UINT, true), S_FIELD ("count", F_UINT, true)
    };
    if (s_get_map (&in, bytes, size, f, 3, false) == 0) {
        end->through = f [0].u;
        end->head = f [1].u;
        end->count = f [2].u;
    }
    return in.rc;
}

int
pb_wire_import_decode (const void *bytes, size_t size, uint64_t *after_p,
                       char *error, size_t error_size)
{
    assert (after_p);
    s_in_t in = S_IN ("IMPORT");
    s_field_t f [] = { S_FIELD ("after", F_UINT, true) };
    if (s_get_map (&in, bytes, size, f, 1, true) == 0)
        *after_p = f [0].u;
    return in.rc;
}

int
pb_wire_imported_decode (const void *bytes, size_t size, uint64_t *head_p,
                         char *error, size_t error_size)
{
    assert (head_p);
    s_in_t in = S_IN ("IMPORTED");
    s_field_t f [] = { S_FIELD ("head", F_UINT, true) };
    if (s_get_map (&in, bytes, size, f, 1, false) == 0)
        *head_p = f [0].u;
    return in.rc;
}

int
pb_wire_tick_decode (const void *bytes, size_t size, int64_t *now_p,
                     char *error, size_t error_size)
{
    assert (now_p);
    s_in_t in = S_IN ("TICK");
    s_field_t f [] = { S_FIELD ("now", F_INT, true) };
    if (s_get_map (&in, bytes, size, f, 1, true) == 0)
        *now_p = f [0].i;
    return in.rc;
}

int
pb_wire_ticked_decode (const void *bytes, size_t size, uint64_t *seq_p,
                       int64_t *now_p, char *error, size_t error_size)
{
    assert (seq_p && now_p);
    s_in_t in = S_IN ("TICKED");
    s_field_t f [] = { S_FIELD ("seq", F_UINT, true), S_FIELD ("now", F_INT, true) };
    if (s_get_map (&in, bytes, size, f, 2, false) == 0) {
        *seq_p = f [0].u;
        *now_p = f [1].i;
    }
    return in.rc;
}

int
pb_wire_status_decode (const void *bytes, size_t size,
                       pb_wire_status_t *status, char *error,
                       size_t error_size)
{
    assert (status);
    s_in_t in = S_IN ("STATUS");
    s_field_t f [] = {
        S_FIELD ("head", F_UINT, true), S_FIELD ("now", F_INT, true), S_FIELD ("clock", F_STR, true)
    };
    if (s_get_map (&in, bytes, size, f, 3, false))
        return in.rc;
    bool manual = f [2].len == 6 && memcmp (f [2].s, "manual", 6) == 0;
    bool automatic = f [2].len == 4 && memcmp (f [2].s, "auto", 4) == 0;
    if (!manual && !automatic)
        s_fail (&in, PB_PROTO_MALFORMED, ".clock: not \"auto\" or \"manual\"");
    else {
        status->head = f [0].u;
        status->now = f [1].i;
        status->manual = manual;
    }
    return in.rc;
}

int
pb_wire_error_decode (const void *bytes, size_t size, pb_wire_error_t *err,
                      char *error, size_t error_size)
{
    assert (err);
    s_in_t in = S_IN ("ERROR");
    s_field_t f [] = { S_FIELD ("code", F_STR, true), S_FIELD ("error", F_STR, true) };
    if (s_get_map (&in, bytes, size, f, 2, false))
        return in.rc;
    err->code = PB_WIRE_REFUSAL_NONE;
    for (int code = 1; code < PB_WIRE_REFUSAL_COUNT; code++) {
        const char *text = pb_wire_refusal_code ((pb_wire_refusal_t) code);
        if (strlen (text) == f [0].len && memcmp (text, f [0].s, f [0].len) == 0)
            err->code = (pb_wire_refusal_t) code;
    }
    if (err->code == PB_WIRE_REFUSAL_NONE)
        s_fail (&in, PB_PROTO_MALFORMED, ".code: not a code of proto/README.md");
    else
        s_copy_text (&f [1], err->error, sizeof err->error, NULL);
    return in.rc;
}

int
pb_wire_heartbeat_decode (const void *bytes, size_t size, uint64_t *head_p,
                          int64_t *ts_p, char *error, size_t error_size)
{
    assert (head_p && ts_p);
    s_in_t in = S_IN ("sys.heartbeat");
    s_field_t f [] = { S_FIELD ("head", F_UINT, true), S_FIELD ("ts", F_INT, true) };
    if (s_get_map (&in, bytes, size, f, 2, false) == 0) {
        *head_p = f [0].u;
        *ts_p = f [1].i;
    }
    return in.rc;
}

//  --------------------------------------------------------------------------

const char *
pb_wire_replay_prefix (const pb_wire_replay_t *replay, uint32_t i,
                       size_t *len_p)
{
    assert (replay && i < replay->prefix_count && len_p);
    *len_p = replay->prefix_len [i];
    return replay->text + replay->prefix_off [i];
}

bool
pb_wire_replay_matches (const pb_wire_replay_t *replay, const char *type,
                        size_t type_len)
{
    assert (replay);
    if (replay->prefix_count == 0)
        return true;
    for (uint32_t i = 0; i < replay->prefix_count; i++) {
        size_t len = replay->prefix_len [i];
        if (len <= type_len && memcmp (replay->text + replay->prefix_off [i], type, len) == 0)
            return true;
    }
    return false;
}

//  --------------------------------------------------------------------------
//  Selftest

//  A small deterministic generator for the fuzz loop (no global state)
static uint32_t
s_next (uint32_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    return *state;
}

//  Every decoder on 'bytes': none may crash, read out of bounds or succeed
//  on garbage without filling its struct
static void
s_decode_all (const uint8_t *bytes, size_t size)
{
    char error [128];
    pb_wire_ack_t ack;
    pb_wire_nak_t nak;
    pb_wire_replay_t *replay = (pb_wire_replay_t *) malloc (sizeof *replay);
    assert (replay);
    pb_wire_end_t end;
    pb_wire_status_t status;
    pb_wire_error_t err;
    uint32_t n;
    uint64_t u;
    int64_t i;
    pb_wire_ack_decode (bytes, size, &ack, error, sizeof error);
    pb_wire_nak_decode (bytes, size, &nak, error, sizeof error);
    if (pb_wire_replay_decode (bytes, size, replay, error, sizeof error) == 0)
        pb_wire_replay_matches (replay, "cpe.x", 5);
    pb_wire_credit_decode (bytes, size, &n, error, sizeof error);
    pb_wire_end_decode (bytes, size, &end, error, sizeof error);
    pb_wire_tick_decode (bytes, size, &i, error, sizeof error);
    pb_wire_import_decode (bytes, size, &u, error, sizeof error);
    pb_wire_imported_decode (bytes, size, &u, error, sizeof error);
    pb_wire_ticked_decode (bytes, size, &u, &i, error, sizeof error);
    pb_wire_status_decode (bytes, size, &status, error, sizeof error);
    pb_wire_error_decode (bytes, size, &err, error, sizeof error);
    pb_wire_heartbeat_decode (bytes, size, &u, &i, NULL, 0);
    free (replay);
}

void
pb_wire_test (bool verbose)
{
    printf (" * pb_wire: ");
    uint8_t buf [PB_WIRE_REQUEST_MAX];
    size_t len = 0;
    char error [128];

    //  Commands
    assert (pb_wire_command ("REPLAY", 6) == PB_WIRE_REPLAY);
    assert (pb_wire_command ("ACK", 3) == PB_WIRE_ACK);
    assert (pb_wire_command ("ACKS", 4) == PB_WIRE_UNKNOWN);
    assert (pb_wire_command ("", 0) == PB_WIRE_UNKNOWN);
    assert (strcmp (pb_wire_command_name (PB_WIRE_TICKED), "TICKED") == 0);
    assert (strcmp (pb_wire_refusal_code (PB_WIRE_BACKWARDS), "backwards") == 0);

    //  ACK round trip, with a seq that needs 8 bytes
    int rc = pb_wire_ack_encode ("e-1", 3, 5000000000ULL, buf, PB_WIRE_REPLY_MAX, &len);
    assert (rc == 0);
    pb_wire_ack_t ack;
    rc = pb_wire_ack_decode (buf, len, &ack, error, sizeof error);
    assert (rc == 0 && ack.seq == 5000000000ULL && strcmp (ack.id, "e-1") == 0);
    //  Too small a buffer is refused, not overrun
    rc = pb_wire_ack_encode ("e-1", 3, 1, buf, 8, &len);
    assert (rc == PB_PROTO_TOO_LARGE);
    char long_id [PB_WIRE_ID_MAX + 1];
    memset (long_id, 'x', sizeof long_id);
    assert (pb_wire_ack_encode (long_id, PB_WIRE_ID_MAX, 1, buf, PB_WIRE_REPLY_MAX, &len) == 0);
    assert (pb_wire_ack_encode (long_id, PB_WIRE_ID_MAX + 1, 1, buf, PB_WIRE_REPLY_MAX, &len) == PB_EINVAL);

    //  NAK round trip; a hostile sentence is cleaned and cut
    char sentence [600];
    memset (sentence, 0, sizeof sentence);
    memset (sentence, 'a', 500);
    sentence [3] = (char) 0xff;                     //  invalid UTF-8
    memcpy (sentence + 253, "\xe2\x82\xac", 3);     //  a euro sign across the cut
    rc = pb_wire_nak_encode (long_id, PB_WIRE_ID_MAX, PB_NAK_BAD_DATA, sentence,
                             buf, PB_WIRE_REPLY_MAX, &len);
    assert (rc == 0);
    pb_wire_nak_t nak;
    rc = pb_wire_nak_decode (buf, len, &nak, error, sizeof error);
    assert (rc == 0 && nak.has_id && nak.id_len == PB_WIRE_ID_MAX);
    assert (nak.code == PB_NAK_BAD_DATA);
    assert (nak.error [3] == '?' && strlen (nak.error) == 253);
    rc = pb_wire_nak_encode (NULL, 0, PB_NAK_BAD_FRAMES, "frames: 3, want 2",
                             buf, PB_WIRE_REPLY_MAX, &len);
    assert (rc == 0);
    rc = pb_wire_nak_decode (buf, len, &nak, error, sizeof error);
    assert (rc == 0 && !nak.has_id && nak.code == PB_NAK_BAD_FRAMES);
    assert (strcmp (nak.error, "frames: 3, want 2") == 0);
    assert (pb_wire_nak_encode (NULL, 0, PB_NAK_NONE, "", buf, PB_WIRE_REPLY_MAX, &len) == PB_EINVAL);

    //  REPLAY round trip and matching
    pb_wire_replay_t *replay = (pb_wire_replay_t *) malloc (sizeof *replay);
    assert (replay);
    const char *prefixes [] = { "cpe.", "notify.nac." };
    rc = pb_wire_replay_encode (10, 20, prefixes, 2, 7, buf, sizeof buf, &len);
    assert (rc == 0);
    rc = pb_wire_replay_decode (buf, len, replay, error, sizeof error);
    assert (rc == 0 && replay->from == 10 && replay->to == 20 && replay->credit == 7);
    assert (replay->prefix_count == 2);
    size_t prefix_len = 0;
    const char *prefix = pb_wire_replay_prefix (replay, 1, &prefix_len);
    assert (prefix_len == 11 && memcmp (prefix, "notify.nac.", 11) == 0);
    assert (pb_wire_replay_matches (replay, "cpe.assigned", 12));
    assert (pb_wire_replay_matches (replay, "notify.nac.adopted", 18));
    assert (!pb_wire_replay_matches (replay, "notify.cpe.x", 12));
    assert (!pb_wire_replay_matches (replay, "cpe", 3));
    rc = pb_wire_replay_encode (1, 0, NULL, 0, 0, buf, sizeof buf, &len);
    assert (rc == 0);
    rc = pb_wire_replay_decode (buf, len, replay, error, sizeof error);
    assert (rc == 0 && replay->to == UINT64_MAX && replay->credit == PB_WIRE_CREDIT_DEFAULT);
    assert (pb_wire_replay_matches (replay, "sys.tick", 8));
    assert (pb_wire_replay_encode (0, 0, NULL, 0, 0, buf, sizeof buf, &len) == PB_EINVAL);
    assert (pb_wire_replay_encode (5, 4, NULL, 0, 0, buf, sizeof buf, &len) == PB_EINVAL);

    //  REPLAY refusals name the field
#define S_BYTES(literal) literal, sizeof literal - 1
    static const struct {
        const char *bytes;              //  msgpack
        size_t size;
        int rc;
        const char *error;
    } bad [] = {
        { S_BYTES ("\x80"), PB_PROTO_MALFORMED, "REPLAY.from: missing" },
        { S_BYTES ("\x81\xa4""from\x00"), PB_PROTO_MALFORMED, "REPLAY.from: must be at least 1" },
        { S_BYTES ("\x81\xa4""from\xff"), PB_PROTO_MALFORMED, "REPLAY.from: not an unsigned integer" },
        { S_BYTES ("\x81\xa4""from\xa1x"), PB_PROTO_MALFORMED, "REPLAY.from: not an unsigned integer" },
        { S_BYTES ("\x82\xa4""from\x05\xa2to\x04"), PB_PROTO_MALFORMED, "REPLAY.to: below from" },
        { S_BYTES ("\x82\xa4""from\x05\xa4""from\x06"), PB_PROTO_MALFORMED, "REPLAY.from: repeated" },
        { S_BYTES ("\x82\xa4""from\x05\xa3""bad\x06"), PB_PROTO_MALFORMED, "REPLAY.bad: unknown field" },
        { S_BYTES ("\x82\xa4""from\x05\xa6""credit\x00"), PB_PROTO_MALFORMED, "REPLAY.credit: not in 1..1000" },
        { S_BYTES ("\x82\xa4""from\x05\xa8prefixes\x91\x01"), PB_PROTO_MALFORMED, "REPLAY.prefixes[0]: not a string" },
        { S_BYTES ("\x82\xa4""from\x05\xa8prefixes\xdd\xff\xff\xff\xff"), PB_PROTO_TRUNCATED, "REPLAY: truncated" },
        { S_BYTES ("\x81\xa4""from\x05\x01"), PB_PROTO_MALFORMED, "REPLAY: trailing bytes after the map" },
        { S_BYTES ("\xdf\xff\xff\xff\xff"), PB_PROTO_TRUNCATED, "REPLAY: truncated" },
        { S_BYTES ("\x81\xdb\xff\xff\xff\xff"), PB_PROTO_TRUNCATED, "REPLAY: truncated" },
        { S_BYTES ("\x81\xa4""from"), PB_PROTO_TRUNCATED, "REPLAY: truncated" },
        { S_BYTES ("\x93\x01\x02\x03"), PB_PROTO_MALFORMED, "REPLAY: not a map" },
        { S_BYTES (""), PB_PROTO_TRUNCATED, "REPLAY: truncated" },
        { S_BYTES ("\x81\x01\x01"), PB_PROTO_MALFORMED, "REPLAY: a key is not a string" },
        { S_BYTES ("\x81\xa4""from\xc7\x01\x01\x00"), PB_PROTO_MALFORMED, "REPLAY: unsupported MessagePack type 0xc7" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        rc = pb_wire_replay_decode (bad [i].bytes, bad [i].size, replay, error, sizeof error);
        if (verbose || rc != bad [i].rc || strcmp (error, bad [i].error))
            printf ("\n   case %zu: rc=%d error=%s", i, rc, error);
        assert (rc == bad [i].rc && strcmp (error, bad [i].error) == 0);
    }
    if (verbose)
        printf ("\n   ");
    //  A prefix of 129 bytes, and an oversized request
    uint8_t big [PB_WIRE_REQUEST_MAX + 16];
    memcpy (big, "\x82\xa4""from\x05\xa8prefixes\x91\xd9\x81", 19);
    memset (big + 19, 'p', 129);
    rc = pb_wire_replay_decode (big, 19 + 129, replay, error, sizeof error);
    assert (rc == PB_PROTO_MALFORMED);
    assert (strcmp (error, "REPLAY.prefixes[0]: longer than 128 bytes") == 0);
    rc = pb_wire_replay_decode (big, sizeof big, replay, error, sizeof error);
    assert (rc == PB_PROTO_TOO_LARGE);
    memcpy (big, "\x82\xa4""from\x05\xa8prefixes\xdc\x00\x41", 19);
    memset (big + 19, 0xa0, 65);                    //  65 empty strings
    rc = pb_wire_replay_decode (big, 19 + 65, replay, error, sizeof error);
    assert (rc == PB_PROTO_MALFORMED);
    assert (strcmp (error, "REPLAY.prefixes: more than 64 entries") == 0);
    //  64 prefixes of 60 bytes do not fit in a request
    const char *many [PB_WIRE_PREFIXES_MAX];
    char sixty [61];
    memset (sixty, 'q', 60);
    sixty [60] = 0;
    for (int i = 0; i < PB_WIRE_PREFIXES_MAX; i++)
        many [i] = sixty;
    rc = pb_wire_replay_encode (1, 0, many, PB_WIRE_PREFIXES_MAX, 0, buf, sizeof buf, &len);
    assert (rc == 0);                   //  64 * 62 bytes: just fits
    rc = pb_wire_replay_decode (buf, len, replay, error, sizeof error);
    assert (rc == 0 && replay->prefix_count == PB_WIRE_PREFIXES_MAX);

    //  The other maps
    uint32_t n = 0;
    assert (pb_wire_credit_encode (3, buf, PB_WIRE_REPLY_MAX, &len) == 0);
    assert (pb_wire_credit_decode (buf, len, &n, error, sizeof error) == 0 && n == 3);
    assert (pb_wire_credit_encode (0, buf, PB_WIRE_REPLY_MAX, &len) == PB_EINVAL);
    assert (pb_wire_credit_decode ("\x81\xa1n\x00", 4, &n, error, sizeof error) == PB_PROTO_MALFORMED);
    assert (strcmp (error, "CREDIT.n: not in 1..1000") == 0);

    pb_wire_end_t end = { 90, 100, 12 }, end2;
    assert (pb_wire_end_encode (&end, buf, PB_WIRE_REPLY_MAX, &len) == 0);
    assert (pb_wire_end_decode (buf, len, &end2, error, sizeof error) == 0);
    assert (end2.through == 90 && end2.head == 100 && end2.count == 12);

    int64_t now = 0;
    uint64_t seq = 0;
    int64_t times [] = { 0, -1, -33, -200, -40000, -3000000000LL, INT64_MIN, INT64_MAX, 1735689600000LL };
    for (size_t i = 0; i < sizeof times / sizeof times [0]; i++) {
        assert (pb_wire_tick_encode (times [i], buf, PB_WIRE_REPLY_MAX, &len) == 0);
        assert (pb_wire_tick_decode (buf, len, &now, error, sizeof error) == 0 && now == times [i]);
        assert (pb_wire_import_encode ((uint64_t) times [i] & INT64_MAX, buf,
                                       PB_WIRE_REPLY_MAX, &len) == 0);
        assert (pb_wire_import_decode (buf, len, &seq, error, sizeof error) == 0);
        assert (seq == ((uint64_t) times [i] & INT64_MAX));
        assert (pb_wire_imported_encode (seq, buf, PB_WIRE_REPLY_MAX, &len) == 0);
        assert (pb_wire_imported_decode (buf, len, &seq, error, sizeof error) == 0);
        assert (seq == ((uint64_t) times [i] & INT64_MAX));
        assert (pb_wire_ticked_encode (7, times [i], buf, PB_WIRE_REPLY_MAX, &len) == 0);
        assert (pb_wire_ticked_decode (buf, len, &seq, &now, error, sizeof error) == 0);
        assert (seq == 7 && now == times [i]);
        assert (pb_wire_heartbeat_encode (8, times [i], buf, PB_WIRE_REPLY_MAX, &len) == 0);
        assert (pb_wire_heartbeat_decode (buf, len, &seq, &now, NULL, 0) == 0);
        assert (seq == 8 && now == times [i]);
    }
    assert (pb_wire_tick_decode ("\x81\xa3now\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 14,
                                 &now, error, sizeof error) == PB_PROTO_MALFORMED);
    assert (strcmp (error, "TICK.now: not an integer") == 0);

    pb_wire_status_t status = { 42, 1000, true }, status2;
    assert (pb_wire_status_encode (&status, buf, PB_WIRE_REPLY_MAX, &len) == 0);
    assert (pb_wire_status_decode (buf, len, &status2, error, sizeof error) == 0);
    assert (status2.head == 42 && status2.now == 1000 && status2.manual);

    pb_wire_error_t err;
    assert (pb_wire_error_encode (PB_WIRE_NOT_MANUAL, "TICK: the clock is automatic",
                                  buf, PB_WIRE_REPLY_MAX, &len) == 0);
    assert (pb_wire_error_decode (buf, len, &err, error, sizeof error) == 0);
    assert (err.code == PB_WIRE_NOT_MANUAL);
    assert (strcmp (err.error, "TICK: the clock is automatic") == 0);

    //  Replies skip unknown keys (a newer journal), requests do not
    const char ack_plus [] = "\x83\xa2id\xa1z\xa5""extra\x92\x81\xa1k\xc0\xc3\xa3seq\x09";
    assert (pb_wire_ack_decode (ack_plus, sizeof ack_plus - 1, &ack, error, sizeof error) == 0);
    assert (ack.seq == 9 && strcmp (ack.id, "z") == 0);

    //  Fuzz: random bytes and mutations of valid maps never crash
    uint32_t state = 2463534242u;
    for (int round = 0; round < 20000; round++) {
        size_t size = s_next (&state) % 64;
        if (round % 2) {
            rc = pb_wire_replay_encode (1 + round, 0, prefixes, 2, 3, buf, sizeof buf, &len);
            assert (rc == 0);
            for (int flips = 1 + s_next (&state) % 3; flips; flips--)
                buf [s_next (&state) % len] = (uint8_t) s_next (&state);
            size = len - s_next (&state) % 3;
        }
        else
            for (size_t i = 0; i < size; i++)
                buf [i] = (uint8_t) s_next (&state);
        //  Decode from a heap copy of exactly 'size' bytes so that ASan
        //  sees any read past the end
        uint8_t *copy = (uint8_t *) malloc (size + 1);
        assert (copy);
        memcpy (copy, buf, size);
        s_decode_all (copy, size);
        free (copy);
    }
    free (replay);
    printf ("OK\n");
}
