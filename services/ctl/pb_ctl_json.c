/*  =========================================================================
    pb_ctl_json - JSON to MessagePack and back, faithfully (jansson)
    =========================================================================
*/
#include "pb_ctl_json.h"
#include "pb_envelope.h"
#include "pb_msgpack.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int
pb_ctl_json_pack (const json_t *value, msgpack_packer *pk)
{
    switch (json_typeof (value)) {
        case JSON_OBJECT: {
            msgpack_pack_map (pk, json_object_size (value));
            const char *key;
            json_t *item;
            //  Iteration follows insertion order (jansson >= 2.8)
            json_object_foreach ((json_t *) value, key, item) {
                size_t len = strlen (key);
                msgpack_pack_str (pk, len);
                msgpack_pack_str_body (pk, key, len);
                pb_ctl_json_pack (item, pk);
            }
            break;
        }
        case JSON_ARRAY: {
            msgpack_pack_array (pk, json_array_size (value));
            size_t index;
            json_t *item;
            json_array_foreach (value, index, item)
                pb_ctl_json_pack (item, pk);
            break;
        }
        case JSON_STRING: {
            size_t len = json_string_length (value);
            msgpack_pack_str (pk, len);
            msgpack_pack_str_body (pk, json_string_value (value), len);
            break;
        }
        case JSON_INTEGER:
            msgpack_pack_int64 (pk, (int64_t) json_integer_value (value));
            break;
        case JSON_REAL:
            msgpack_pack_double (pk, json_real_value (value));
            break;
        case JSON_TRUE:
            msgpack_pack_true (pk);
            break;
        case JSON_FALSE:
            msgpack_pack_false (pk);
            break;
        case JSON_NULL:
            msgpack_pack_nil (pk);
            break;
    }
    return 0;
}

static json_t *
s_hex (const void *bytes, size_t size)
{
    static const char digits [] = "0123456789abcdef";
    const uint8_t *p = (const uint8_t *) bytes;
    char *text = (char *) malloc (size * 2 + 1);
    assert (text);
    for (size_t i = 0; i < size; i++) {
        text [2 * i] = digits [p [i] >> 4];
        text [2 * i + 1] = digits [p [i] & 15];
    }
    text [size * 2] = 0;
    json_t *value = json_string (text);
    free (text);
    return value;
}

//  A non-str map key is its JSON text, and a key inside such a key is
//  escaped once more: bytes that nest maps as keys would grow their text
//  twofold per level (found by the fuzzer: 32 levels of them). So a key's
//  text is at most S_KEY_TEXT_MAX bytes (ASCII, cut with "..."), and keys
//  nested S_KEY_DEPTH_MAX deep inside keys are shown as "...".
#define S_KEY_TEXT_MAX  1024
#define S_KEY_DEPTH_MAX 2

static json_t *s_from_object (const msgpack_object *obj, int key_depth);

//  A map key as the string JSON wants
static char *
s_key_text (const msgpack_object *key, int key_depth)
{
    if (key->type == MSGPACK_OBJECT_STR) {
        char *text = (char *) malloc (key->via.str.size + 1);
        assert (text);
        memcpy (text, key->via.str.ptr, key->via.str.size);
        text [key->via.str.size] = 0;
        return text;
    }
    if (key_depth >= S_KEY_DEPTH_MAX)
        return strdup ("...");
    json_t *value = s_from_object (key, key_depth + 1);
    char *text = json_dumps (value, JSON_COMPACT | JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
    json_decref (value);
    if (text && *text == '"') {         //  bin or big uint: drop the quotes
        size_t len = strlen (text);
        memmove (text, text + 1, len - 2);
        text [len - 2] = 0;
    }
    if (text && strlen (text) > S_KEY_TEXT_MAX)
        strcpy (text + S_KEY_TEXT_MAX - 3, "...");
    return text;
}

json_t *
pb_ctl_json_from_object (const msgpack_object *obj)
{
    return s_from_object (obj, 0);
}

static json_t *
s_from_object (const msgpack_object *obj, int key_depth)
{
    switch (obj->type) {
        case MSGPACK_OBJECT_NIL:
            return json_null ();
        case MSGPACK_OBJECT_BOOLEAN:
            return json_boolean (obj->via.boolean);
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            if (obj->via.u64 > INT64_MAX) {
                char digits [24];
                snprintf (digits, sizeof digits, "%" PRIu64, obj->via.u64);
                return json_string (digits);
            }
            return json_integer ((json_int_t) obj->via.u64);
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            return json_integer ((json_int_t) obj->via.i64);
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            return isfinite (obj->via.f64)? json_real (obj->via.f64): json_null ();
        case MSGPACK_OBJECT_STR: {
            json_t *value = json_stringn (obj->via.str.ptr, obj->via.str.size);
            //  Invalid UTF-8 (a worker store is not checked like ingest)
            return value? value: s_hex (obj->via.str.ptr, obj->via.str.size);
        }
        case MSGPACK_OBJECT_BIN:
            return s_hex (obj->via.bin.ptr, obj->via.bin.size);
        case MSGPACK_OBJECT_EXT:
            return s_hex (obj->via.ext.ptr, obj->via.ext.size);
        case MSGPACK_OBJECT_ARRAY: {
            json_t *array = json_array ();
            for (uint32_t i = 0; i < obj->via.array.size; i++)
                json_array_append_new (array,
                    s_from_object (&obj->via.array.ptr [i], key_depth));
            return array;
        }
        case MSGPACK_OBJECT_MAP: {
            json_t *map = json_object ();
            for (uint32_t i = 0; i < obj->via.map.size; i++) {
                char *key = s_key_text (&obj->via.map.ptr [i].key, key_depth);
                if (key)
                    json_object_set_new (map, key,
                        s_from_object (&obj->via.map.ptr [i].val, key_depth));
                free (key);
            }
            return map;
        }
    }
    return json_null ();
}

json_t *
pb_ctl_json_from_bytes (const void *bytes, size_t size, char *error,
                        size_t error_size)
{
    //  Generous bounds: what the journal stores is within the defaults,
    //  but a worker's state value may be larger than one envelope
    pb_limits_t limits = { size, 32, 1048576, 16777216 };
    size_t slot_count = 0;
    if (pb_msgpack_check_objects (bytes, size, &limits, &slot_count,
                                  error, error_size))
        return NULL;
    msgpack_object *slots = (msgpack_object *) calloc (slot_count + 1, sizeof *slots);
    assert (slots);
    msgpack_object root;
    pb_msgpack_unpack_checked (bytes, size, slots, slot_count, &root);
    json_t *value = pb_ctl_json_from_object (&root);
    free (slots);
    return value;
}

int
pb_ctl_json_print (FILE *out, const json_t *value)
{
    char *text = json_dumps (value, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text)
        return -1;
    int rc = fprintf (out, "%s\n", text) < 0? -1: 0;
    free (text);
    if (fflush (out))
        rc = -1;
    return rc;
}

//  --------------------------------------------------------------------------
//  Self test: JSON -> msgpack -> JSON keeps kinds, order and values

static json_t *
s_round_trip (const char *text, msgpack_sbuffer *buffer)
{
    json_error_t jerr;
    json_t *in = json_loads (text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    assert (in);
    msgpack_sbuffer_clear (buffer);
    msgpack_packer pk;
    msgpack_packer_init (&pk, buffer, msgpack_sbuffer_write);
    pb_ctl_json_pack (in, &pk);
    json_decref (in);
    char error [128];
    json_t *out = pb_ctl_json_from_bytes (buffer->data, buffer->size,
                                          error, sizeof error);
    assert (out);
    return out;
}

void
pb_ctl_json_test (bool verbose)
{
    printf (" * pb_ctl_json: ");
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);

    //  Integer 1 is msgpack's positive fixint 0x01; 1.0 is float64 0xcb;
    //  "1" is fixstr 0xa1
    json_t *out = s_round_trip ("[1, 1.0, \"1\", -5, true, null]", &buffer);
    const uint8_t expect [] = { 0x96, 0x01, 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0,
                                0xa1, '1', 0xfb, 0xc3, 0xc0 };
    assert (buffer.size == sizeof expect);
    assert (memcmp (buffer.data, expect, sizeof expect) == 0);
    char *text = json_dumps (out, JSON_COMPACT);
    assert (!strcmp (text, "[1,1.0,\"1\",-5,true,null]"));
    free (text);
    json_decref (out);

    //  Key order is kept; nested maps; UTF-8 strings; large integers
    out = s_round_trip ("{\"z\":{\"b\":2,\"a\":[]},\"a\":\"\\u00e9\","
                        "\"n\":9223372036854775807}", &buffer);
    text = json_dumps (out, JSON_COMPACT);
    assert (!strcmp (text, "{\"z\":{\"b\":2,\"a\":[]},\"a\":\"\xc3\xa9\","
                         "\"n\":9223372036854775807}"));
    free (text);
    json_decref (out);

    //  Duplicate keys and out-of-range integers are refused by the parser
    json_error_t jerr;
    assert (!json_loads ("{\"a\":1,\"a\":2}", JSON_REJECT_DUPLICATES, &jerr));
    assert (!json_loads ("{\"a\":99999999999999999999}", JSON_REJECT_DUPLICATES, &jerr));

    //  bin, non-str keys, big uint, ext, and bytes that are not msgpack
    const uint8_t odd [] = { 0x83, 0xc4, 0x02, 0xab, 0xcd, 0x07, 0x07, 0xcd,
                             0xff, 0xff, 0xa1, 'x', 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff,
                             0xff, 0xff, 0xff };
    char error [128];
    out = pb_ctl_json_from_bytes (odd, sizeof odd, error, sizeof error);
    assert (out);
    text = json_dumps (out, JSON_COMPACT);
    if (verbose)
        printf ("%s ", text);
    assert (!strcmp (text, "{\"abcd\":7,\"7\":65535,\"x\":\"18446744073709551615\"}"));
    free (text);
    json_decref (out);
    //  Maps as keys of maps as keys, 31 deep: bounded text, not 2^31 (the
    //  fuzzer's timeout)
    uint8_t nested [64];
    size_t n = 0;
    for (int i = 0; i < 31; i++)
        nested [n++] = 0x81;            //  31 maps, each the key of the one before
    nested [n++] = 0x01;                //  innermost: {1: 1}
    nested [n++] = 0x01;
    for (int i = 0; i < 30; i++)
        nested [n++] = 0x01;            //  the value of each enclosing pair
    out = pb_ctl_json_from_bytes (nested, n, error, sizeof error);
    assert (out);
    text = json_dumps (out, JSON_COMPACT);
    assert (text && strlen (text) < 4 * S_KEY_TEXT_MAX);
    assert (strstr (text, "..."));
    free (text);
    json_decref (out);
    const uint8_t bad [] = { 0x92, 0x01 };
    assert (pb_ctl_json_from_bytes (bad, sizeof bad, error, sizeof error) == NULL);
    const uint8_t trailing [] = { 0x01, 0x02 };
    assert (pb_ctl_json_from_bytes (trailing, sizeof trailing, error, sizeof error) == NULL);

    msgpack_sbuffer_destroy (&buffer);
    printf ("OK\n");
}
