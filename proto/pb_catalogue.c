/*  =========================================================================
    pb_catalogue - the event types of EVENTS.md and the schema of their data

    pb_catalogue.def is included several times with different macro
    definitions (X-macros) to build const tables: the enumerations, a flat
    array of every field (each schema a contiguous run, located through an
    enum whose values are the field indexes), the schemas, the action kinds
    and the types. One generic validator walks a data map against a schema;
    the only code specific to a "kind" is in s_check_value.
    =========================================================================
*/
#include "pb_catalogue.h"
#include "pb_msgpack.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

//  --------------------------------------------------------------------------
//  The tables

typedef enum {
    S_REQUIRED, S_OPTIONAL, S_WHEN
} s_presence_t;

typedef enum {
    S_K_ID, S_K_TEXT, S_K_STR, S_K_COUNTRY, S_K_DATE, S_K_TIME, S_K_INT,
    S_K_REAL, S_K_ENUM, S_K_LIST_ENUM, S_K_LIST_COUNTRY,
    S_K_WEIGHTS, S_K_FACTORS, S_K_PROFILE, S_K_ACTION
} s_kind_t;

#define S_ID_MAX    64                  //  EVENTS.md: ids and codes
#define S_TEXT_MAX  4096                //  EVENTS.md: title, subject, ...
#define S_FIELDS_MAX 16                 //  fields of one schema, at most

typedef struct {
    const char *name;                   //  field name (static)
    size_t name_len;                    //  its length
    s_presence_t presence;              //  required, optional, conditional
    const char *when_field;             //  S_WHEN: the sibling field (static)
    const char *when_value;             //  S_WHEN: its value that requires us
    s_kind_t kind;                      //  what the value is
    int64_t min, max;                   //  range, lengths or item counts
    const char *const *values;          //  ENUM, LIST_ENUM: NULL-terminated
} s_field_t;

typedef struct {
    int first;                          //  index of its first field
    int count;                          //  how many fields
} s_schema_t;

//  Each block below defines all six macros of pb_catalogue.def, includes
//  it, and undefines them again.
//  Enumerations: s_enum_<name>, each NULL-terminated
#define PB_ENUM(name, ...) \
    static const char *const s_enum_##name [] = { __VA_ARGS__, NULL };
#define PB_SCHEMA(schema)
#define PB_FIELD(schema, field, presence, kind, min, max, values)
#define PB_END(schema)
#define PB_ACTION(kind, schema)
#define PB_TYPE(type, owner, schema)
#include "pb_catalogue.def"
#include "pb_catalogue_undef.h"
static const char *const s_enum_NONE [] = { NULL };

//  Field indexes: a schema's PB_SCHEMA line names the index of its first
//  field without taking one (the '_rewind' enumerator steps back), PB_END
//  the index after its last.
enum {
#define PB_ENUM(name, ...)
#define PB_SCHEMA(schema) \
    S_F_##schema##__first, S_F_##schema##__rewind = S_F_##schema##__first - 1,
#define PB_FIELD(schema, field, presence, kind, min, max, values) \
    S_F_##schema##_##field,
#define PB_END(schema) \
    S_F_##schema##__end, S_F_##schema##__rewind2 = S_F_##schema##__end - 1,
#define PB_ACTION(kind, schema)
#define PB_TYPE(type, owner, schema)
#include "pb_catalogue.def"
#include "pb_catalogue_undef.h"
    S_FIELD_COUNT
};

//  Every field, schema after schema
#define REQUIRED S_REQUIRED, NULL, NULL
#define OPTIONAL S_OPTIONAL, NULL, NULL
#define WHEN(sibling, value) S_WHEN, #sibling, value
static const s_field_t s_fields [S_FIELD_COUNT] = {
#define PB_ENUM(name, ...)
#define PB_SCHEMA(schema)
#define PB_FIELD(schema, field, presence, kind, min, max, values) \
    { #field, sizeof (#field) - 1, presence, S_K_##kind, min, max, \
      s_enum_##values },
#define PB_END(schema)
#define PB_ACTION(kind, schema)
#define PB_TYPE(type, owner, schema)
#include "pb_catalogue.def"
#include "pb_catalogue_undef.h"
};
#undef REQUIRED
#undef OPTIONAL
#undef WHEN

enum {
#define PB_ENUM(name, ...)
#define PB_SCHEMA(schema) S_SCHEMA_##schema,
#define PB_FIELD(schema, field, presence, kind, min, max, values)
#define PB_END(schema)
#define PB_ACTION(kind, schema)
#define PB_TYPE(type, owner, schema)
#include "pb_catalogue.def"
#include "pb_catalogue_undef.h"
    S_SCHEMA_COUNT
};

static const s_schema_t s_schemas [S_SCHEMA_COUNT] = {
#define PB_ENUM(name, ...)
#define PB_SCHEMA(schema)
#define PB_FIELD(schema, field, presence, kind, min, max, values)
#define PB_END(schema) [S_SCHEMA_##schema] = \
    { S_F_##schema##__first, S_F_##schema##__end - S_F_##schema##__first },
#define PB_ACTION(kind, schema)
#define PB_TYPE(type, owner, schema)
#include "pb_catalogue.def"
#include "pb_catalogue_undef.h"
};

typedef struct {
    const char *kind;                   //  action kind (static)
    int schema;                         //  schema of its other fields
} s_action_t;

static const s_action_t s_actions [] = {
#define PB_ENUM(name, ...)
#define PB_SCHEMA(schema)
#define PB_FIELD(schema, field, presence, kind, min, max, values)
#define PB_END(schema)
#define PB_ACTION(kind, schema) { kind, S_SCHEMA_##schema },
#define PB_TYPE(type, owner, schema)
#include "pb_catalogue.def"
#include "pb_catalogue_undef.h"
    { NULL, 0 }
};

typedef struct {
    const char *name;                   //  type name (static)
    size_t name_len;                    //  its length
    const char *owner;                  //  sole publisher, NULL: upstream
    int schema;                         //  schema of its data
} s_type_t;

static const s_type_t s_types [] = {
#define PB_ENUM(name, ...)
#define PB_SCHEMA(schema)
#define PB_FIELD(schema, field, presence, kind, min, max, values)
#define PB_END(schema)
#define PB_ACTION(kind, schema)
#define PB_TYPE(type, owner, schema) \
    { type, sizeof (type) - 1, owner, S_SCHEMA_##schema },
#include "pb_catalogue.def"
#include "pb_catalogue_undef.h"
};

#define S_TYPE_COUNT ((int) (sizeof (s_types) / sizeof (s_types [0])))
#define S_CONSIDERATIONS 7              //  s_enum_considerations
#define S_PROFILE_CONSIDERATIONS 6      //  all but priority_area

//  --------------------------------------------------------------------------
//  Lookups

int
pb_catalogue_lookup (const char *name, size_t len)
{
    for (int i = 0; i < S_TYPE_COUNT; i++)
        if (s_types [i].name_len == len
        &&  memcmp (s_types [i].name, name, len) == 0)
            return i;
    return -1;
}

int
pb_catalogue_count (void)
{
    return S_TYPE_COUNT;
}

const char *
pb_catalogue_name (int index)
{
    assert (index >= 0 && index < S_TYPE_COUNT);
    return s_types [index].name;
}

const char *
pb_catalogue_owner (int index)
{
    assert (index >= 0 && index < S_TYPE_COUNT);
    return s_types [index].owner;
}

bool
pb_catalogue_is_notification (int index)
{
    assert (index >= 0 && index < S_TYPE_COUNT);
    return strncmp (s_types [index].name, "notify.", 7) == 0;
}

//  --------------------------------------------------------------------------
//  Validation. The path of the value being checked ("data.action.partner",
//  "data.partners[2]") is built in ctx->path as we descend.

typedef struct {
    char path [192];                    //  where we are
    char *error;                        //  caller's buffer (borrowed)
    size_t error_size;
} s_ctx_t;

static int
s_bad (s_ctx_t *ctx, const char *format, ...)
{
    int n = snprintf (ctx->error, ctx->error_size, "%s: ", ctx->path);
    if (n >= 0 && (size_t) n < ctx->error_size) {
        va_list args;
        va_start (args, format);
        vsnprintf (ctx->error + n, ctx->error_size - n, format, args);
        va_end (args);
    }
    return -1;
}

//  Append 'size' bytes to the path, truncated as snprintf would
static void
s_path_append (s_ctx_t *ctx, size_t len, const char *text, size_t size)
{
    size_t room = sizeof (ctx->path) - 1 - len;
    if (size > room)
        size = room;
    memcpy (ctx->path + len, text, size);
    ctx->path [len + size] = 0;
}

//  Extend the path with ".name"; returns the old length to restore it
//  with. Runs for every field of every event, so it copies bytes instead
//  of formatting them (vsnprintf was an eighth of the journal's ingest)
static size_t
s_path_push (s_ctx_t *ctx, const char *name)
{
    size_t len = strlen (ctx->path);
    s_path_append (ctx, len, ".", 1);
    s_path_append (ctx, len + 1, name, strlen (name));
    return len;
}

//  Extend the path with "[index]"; returns the old length
static size_t
s_path_push_index (s_ctx_t *ctx, uint32_t index)
{
    char digits [16];
    size_t at = sizeof digits;
    digits [--at] = ']';
    do
        digits [--at] = (char) ('0' + index % 10);
    while ((index /= 10) > 0);
    digits [--at] = '[';
    size_t len = strlen (ctx->path);
    s_path_append (ctx, len, digits + at, sizeof digits - at);
    return len;
}

static const char *
s_quote (char *buffer, size_t size, const msgpack_object *str)
{
    return pb_msgpack_quote (buffer, size, str->via.str.ptr,
                             str->via.str.size);
}

static int
s_check_str (s_ctx_t *ctx, const msgpack_object *v, int64_t min, int64_t max)
{
    if (v->type != MSGPACK_OBJECT_STR)
        return s_bad (ctx, "not a string");
    int64_t len = v->via.str.size;
    if (len < min && len == 0)
        return s_bad (ctx, "empty");
    if (len < min || len > max)
        return s_bad (ctx, "%lld bytes, out of range %lld..%lld",
                      (long long) len, (long long) min, (long long) max);
    return 0;
}

static int
s_check_country (s_ctx_t *ctx, const msgpack_object *v)
{
    if (v->type != MSGPACK_OBJECT_STR)
        return s_bad (ctx, "not a string");
    const char *s = v->via.str.ptr;
    if (v->via.str.size != 3
    ||  s [0] < 'A' || s [0] > 'Z' || s [1] < 'A' || s [1] > 'Z'
    ||  s [2] < 'A' || s [2] > 'Z') {
        char quoted [40];
        return s_bad (ctx, "'%s' is not a country code (3 letters A-Z)",
                      s_quote (quoted, sizeof quoted, v));
    }
    return 0;
}

static bool
s_is_date (const char *s, size_t len)
{
    if (len != 10 || s [4] != '-' || s [7] != '-')
        return false;
    int digits [8], d = 0;
    for (size_t i = 0; i < 10; i++) {
        if (i == 4 || i == 7)
            continue;
        if (s [i] < '0' || s [i] > '9')
            return false;
        digits [d++] = s [i] - '0';
    }
    int year = digits [0] * 1000 + digits [1] * 100 + digits [2] * 10 + digits [3];
    int month = digits [4] * 10 + digits [5];
    int day = digits [6] * 10 + digits [7];
    static const int days_in [12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (year < 1 || month < 1 || month > 12 || day < 1)
        return false;
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    int last = days_in [month - 1] + (month == 2 && leap? 1: 0);
    return day <= last;
}

static int
s_check_date (s_ctx_t *ctx, const msgpack_object *v)
{
    if (v->type != MSGPACK_OBJECT_STR)
        return s_bad (ctx, "not a string");
    if (!s_is_date (v->via.str.ptr, v->via.str.size)) {
        char quoted [40];
        return s_bad (ctx, "'%s' is not a date (YYYY-MM-DD)",
                      s_quote (quoted, sizeof quoted, v));
    }
    return 0;
}

static int
s_check_int (s_ctx_t *ctx, const msgpack_object *v, int64_t min, int64_t max)
{
    int64_t value;
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 > INT64_MAX)
        return s_bad (ctx, "%llu is out of range", (unsigned long long) v->via.u64);
    if (!pb_msgpack_int (v, &value))
        return s_bad (ctx, "not an integer");
    if (value < min || value > max) {
        if (max == INT64_MAX)
            return s_bad (ctx, "%lld is below the minimum %lld",
                          (long long) value, (long long) min);
        return s_bad (ctx, "%lld is out of range %lld..%lld",
                      (long long) value, (long long) min, (long long) max);
    }
    return 0;
}

static int
s_check_real (s_ctx_t *ctx, const msgpack_object *v, int64_t min, int64_t max)
{
    double value;
    int64_t i;
    if (v->type == MSGPACK_OBJECT_FLOAT64 || v->type == MSGPACK_OBJECT_FLOAT32)
        value = v->via.f64;
    else
    if (pb_msgpack_int (v, &i))
        value = (double) i;
    else
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        value = (double) v->via.u64;
    else
        return s_bad (ctx, "not a number");
    if (!isfinite (value))
        return s_bad (ctx, "not a finite number");
    if (value < (double) min || value > (double) max)
        return s_bad (ctx, "%g is out of range %lld..%lld", value,
                      (long long) min, (long long) max);
    return 0;
}

static int
s_check_enum (s_ctx_t *ctx, const msgpack_object *v, const char *const *values)
{
    if (v->type != MSGPACK_OBJECT_STR)
        return s_bad (ctx, "not a string");
    for (const char *const *value = values; *value; value++)
        if (pb_msgpack_str_eq (v, *value))
            return 0;
    char quoted [40], list [512];
    size_t used = 0;
    list [0] = 0;
    for (const char *const *value = values; *value && used < sizeof list; value++) {
        int n = snprintf (list + used, sizeof list - used, "%s%s",
                          value == values? "": ", ", *value);
        used += n > 0? (size_t) n: 0;
    }
    return s_bad (ctx, "'%s' is not one of %s",
                  s_quote (quoted, sizeof quoted, v), list);
}

static int
    s_check_value (s_ctx_t *ctx, const s_field_t *field,
                   const msgpack_object *v);

static int
s_check_list (s_ctx_t *ctx, const s_field_t *field, const msgpack_object *v)
{
    if (v->type != MSGPACK_OBJECT_ARRAY)
        return s_bad (ctx, "not a list");
    int64_t size = v->via.array.size;
    if (size < field->min || size > field->max)
        return s_bad (ctx, "%lld items, out of range %lld..%lld",
                      (long long) size, (long long) field->min,
                      (long long) field->max);
    s_field_t item = *field;
    item.kind = field->kind == S_K_LIST_ENUM? S_K_ENUM: S_K_COUNTRY;
    //  Lists are sets: at most 256 short strings, so pairwise is fine
    for (uint32_t i = 0; i < v->via.array.size; i++) {
        const msgpack_object *o = &v->via.array.ptr [i];
        size_t len = s_path_push_index (ctx, i);
        int rc = s_check_value (ctx, &item, o);
        for (uint32_t j = 0; rc == 0 && j < i; j++)
            if (o->via.str.size == v->via.array.ptr [j].via.str.size
            &&  memcmp (o->via.str.ptr, v->via.array.ptr [j].via.str.ptr,
                        o->via.str.size) == 0)
                rc = s_bad (ctx, "duplicate of item %u", j);
        if (rc)
            return rc;
        ctx->path [len] = 0;
    }
    return 0;
}

//  WEIGHTS, FACTORS, PROFILE: a map with exactly the considerations
static int
s_check_considerations (s_ctx_t *ctx, const s_field_t *field,
                        const msgpack_object *v)
{
    if (v->type != MSGPACK_OBJECT_MAP)
        return s_bad (ctx, "not a map");
    size_t count = field->kind == S_K_PROFILE?
                   S_PROFILE_CONSIDERATIONS: S_CONSIDERATIONS;
    const msgpack_object *values [S_CONSIDERATIONS] = { NULL };
    for (uint32_t i = 0; i < v->via.map.size; i++) {
        const msgpack_object *key = &v->via.map.ptr [i].key;
        if (key->type != MSGPACK_OBJECT_STR)
            return s_bad (ctx, "a key is not a string");
        size_t c = 0;
        while (c < count && !pb_msgpack_str_eq (key, s_enum_considerations [c]))
            c++;
        if (c == count) {
            char quoted [40];
            s_path_push (ctx, s_quote (quoted, sizeof quoted, key));
            return s_bad (ctx, "unknown field");
        }
        values [c] = &v->via.map.ptr [i].val;
    }
    bool all_zero = true;
    for (size_t c = 0; c < count; c++) {
        size_t len = s_path_push (ctx, s_enum_considerations [c]);
        if (!values [c])
            return s_bad (ctx, "missing");
        int rc = field->kind == S_K_PROFILE?
                 (values [c]->type == MSGPACK_OBJECT_BOOLEAN? 0:
                  s_bad (ctx, "not a bool")):
                 field->kind == S_K_FACTORS?
                 s_check_real (ctx, values [c], 0, 1):
                 s_check_int (ctx, values [c], 0, 100);
        if (rc)
            return rc;
        if (field->kind == S_K_WEIGHTS && values [c]->via.u64 != 0)
            all_zero = false;
        ctx->path [len] = 0;
    }
    if (field->kind == S_K_WEIGHTS && all_zero)
        return s_bad (ctx, "all weights are 0");
    return 0;
}

static int
    s_check_map (s_ctx_t *ctx, int schema, const msgpack_object *v,
                 bool has_kind);

static int
s_check_action (s_ctx_t *ctx, const msgpack_object *v)
{
    if (v->type != MSGPACK_OBJECT_MAP)
        return s_bad (ctx, "not a map");
    const msgpack_object *kind = pb_msgpack_get (v, "kind");
    size_t len = s_path_push (ctx, "kind");
    if (!kind)
        return s_bad (ctx, "missing");
    if (kind->type != MSGPACK_OBJECT_STR)
        return s_bad (ctx, "not a string");
    const s_action_t *action = s_actions;
    while (action->kind && !pb_msgpack_str_eq (kind, action->kind))
        action++;
    if (!action->kind) {
        const char *kinds [sizeof (s_actions) / sizeof (s_actions [0])];
        for (size_t i = 0; i < sizeof (s_actions) / sizeof (s_actions [0]); i++)
            kinds [i] = s_actions [i].kind;
        return s_check_enum (ctx, kind, kinds);
    }
    ctx->path [len] = 0;
    return s_check_map (ctx, action->schema, v, true);
}

static int
s_check_value (s_ctx_t *ctx, const s_field_t *field, const msgpack_object *v)
{
    switch (field->kind) {
        case S_K_ID:        return s_check_str (ctx, v, 1, S_ID_MAX);
        case S_K_TEXT:      return s_check_str (ctx, v, 0, S_TEXT_MAX);
        case S_K_STR:       return s_check_str (ctx, v, field->min, field->max);
        case S_K_COUNTRY:   return s_check_country (ctx, v);
        case S_K_DATE:      return s_check_date (ctx, v);
        case S_K_TIME:      return s_check_int (ctx, v, 0, INT64_MAX);
        case S_K_INT:       return s_check_int (ctx, v, field->min, field->max);
        case S_K_REAL:      return s_check_real (ctx, v, field->min, field->max);
        case S_K_ENUM:      return s_check_enum (ctx, v, field->values);
        case S_K_LIST_ENUM:
        case S_K_LIST_COUNTRY: return s_check_list (ctx, field, v);
        case S_K_WEIGHTS:
        case S_K_FACTORS:
        case S_K_PROFILE:   return s_check_considerations (ctx, field, v);
        case S_K_ACTION:    return s_check_action (ctx, v);
    }
    return s_bad (ctx, "no such kind");
}

//  Check a map against a schema: unknown keys first, in map order, then
//  each field of the schema in its order. 'has_kind': the map is an action,
//  whose 'kind' was checked by the caller.
static int
s_check_map (s_ctx_t *ctx, int schema, const msgpack_object *v, bool has_kind)
{
    if (v->type != MSGPACK_OBJECT_MAP)
        return s_bad (ctx, "not a map");
    const s_field_t *fields = s_fields + s_schemas [schema].first;
    int count = s_schemas [schema].count;
    assert (count <= S_FIELDS_MAX);
    const msgpack_object *values [S_FIELDS_MAX] = { NULL };
    for (uint32_t i = 0; i < v->via.map.size; i++) {
        const msgpack_object *key = &v->via.map.ptr [i].key;
        if (key->type != MSGPACK_OBJECT_STR)
            return s_bad (ctx, "a key is not a string");
        if (has_kind && pb_msgpack_str_eq (key, "kind"))
            continue;
        int f = 0;
        while (f < count && !(fields [f].name_len == key->via.str.size
                          &&  memcmp (fields [f].name, key->via.str.ptr,
                                      key->via.str.size) == 0))
            f++;
        if (f == count) {
            char quoted [40];
            s_path_push (ctx, s_quote (quoted, sizeof quoted, key));
            return s_bad (ctx, "unknown field");
        }
        values [f] = &v->via.map.ptr [i].val;
    }
    for (int f = 0; f < count; f++) {
        const s_field_t *field = &fields [f];
        size_t len = s_path_push (ctx, field->name);
        if (field->presence == S_WHEN) {
            const msgpack_object *sibling = pb_msgpack_get (v, field->when_field);
            bool required = pb_msgpack_str_eq (sibling, field->when_value);
            if (required && !values [f])
                return s_bad (ctx, "missing (required when %s is %s)",
                              field->when_field, field->when_value);
            if (!required && values [f])
                return s_bad (ctx, "allowed only when %s is %s",
                              field->when_field, field->when_value);
        }
        else
        if (field->presence == S_REQUIRED && !values [f])
            return s_bad (ctx, "missing");
        if (values [f]) {
            int rc = s_check_value (ctx, field, values [f]);
            if (rc)
                return rc;
        }
        ctx->path [len] = 0;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Check a data map against its type's schema.

pb_nak_t
pb_catalogue_validate (int index, const msgpack_object *data,
                       char *error, size_t error_size)
{
    assert (index >= 0 && index < S_TYPE_COUNT);
    assert (data);
    s_ctx_t ctx;
    char ignored [8];
    strcpy (ctx.path, "data");
    ctx.error = error && error_size? error: ignored;
    ctx.error_size = error && error_size? error_size: sizeof ignored;
    ctx.error [0] = 0;
    if (s_check_map (&ctx, s_types [index].schema, data, false))
        return PB_NAK_BAD_DATA;
    return PB_NAK_NONE;
}

//  --------------------------------------------------------------------------
//  The reference table. What each kind means is printed from here too, so
//  the README cannot say something the validator does not do.

static const char *const s_kind_legend [] = {
    "`id`: str of 1..64 bytes",
    "`text`: str of 0..4096 bytes",
    "`country`: ISO 3166-1 alpha-3, exactly 3 letters A-Z (`FIN`)",
    "`date`: `YYYY-MM-DD`, a real calendar date (`2024-02-29`, not `2023-02-29`)",
    "`time`: int, ms since the Unix epoch, >= 0",
    "`int a..b`: an integer in that range, whether packed as uint or int",
    "`number a..b`: float64 (what the workers emit), float32 or integer, finite, in that range",
    "`[...] a..b`: an array of a..b distinct items",
    "`weights`: map of all seven considerations to int 0..100, not all 0",
    "`factors`: map of all seven considerations to number 0..1 (the share "
        "of counted partners with that consideration; `priority_area` 0 or 1)",
    "`profile`: map of all six profile considerations (the seven but "
        "`priority_area`) to bool",
    "`action`: map with `kind` and that kind's fields (second table)",
    "`?`: optional; `!`: required under the condition given, refused otherwise",
    NULL
};

static void
s_print_values (FILE *out, const char *const *values)
{
    for (const char *const *value = values; *value; value++)
        fprintf (out, "%s`%s`", value == values? "": ", ", *value);
}

static void
s_print_field (FILE *out, const s_field_t *field)
{
    fprintf (out, "`%s`%s ", field->name,
             field->presence == S_OPTIONAL? "?":
             field->presence == S_WHEN? "!": "");
    const char *item = NULL;
    switch (field->kind) {
        case S_K_ID:      fprintf (out, "id"); break;
        case S_K_TEXT:    fprintf (out, "text"); break;
        case S_K_STR:     fprintf (out, "str %lld..%lld bytes",
                                   (long long) field->min, (long long) field->max);
                          break;
        case S_K_COUNTRY: fprintf (out, "country"); break;
        case S_K_DATE:    fprintf (out, "date"); break;
        case S_K_TIME:    fprintf (out, "time"); break;
        case S_K_INT:
            if (field->max == INT64_MAX)
                fprintf (out, "int >= %lld", (long long) field->min);
            else
                fprintf (out, "int %lld..%lld", (long long) field->min,
                         (long long) field->max);
            break;
        case S_K_REAL:    fprintf (out, "number %lld..%lld",
                                   (long long) field->min, (long long) field->max);
                          break;
        case S_K_ENUM:
            fprintf (out, "one of ");
            s_print_values (out, field->values);
            break;
        case S_K_LIST_ENUM:
            fprintf (out, "[");
            s_print_values (out, field->values);
            fprintf (out, "] %lld..%lld", (long long) field->min,
                     (long long) field->max);
            break;
        case S_K_LIST_COUNTRY: item = "country"; break;
        case S_K_WEIGHTS: fprintf (out, "weights"); break;
        case S_K_FACTORS: fprintf (out, "factors"); break;
        case S_K_PROFILE: fprintf (out, "profile"); break;
        case S_K_ACTION:  fprintf (out, "action"); break;
    }
    if (item)
        fprintf (out, "[%s] %lld..%lld", item, (long long) field->min,
                 (long long) field->max);
    if (field->presence == S_WHEN)
        fprintf (out, " (when `%s` is `%s`)", field->when_field,
                 field->when_value);
}

static void
s_print_schema (FILE *out, int schema)
{
    const s_field_t *fields = s_fields + s_schemas [schema].first;
    for (int f = 0; f < s_schemas [schema].count; f++) {
        fprintf (out, "%s", f? "; ": "");
        s_print_field (out, &fields [f]);
    }
}

//  --------------------------------------------------------------------------
//  Print the Markdown reference table of every type and action kind.

int
pb_catalogue_print (FILE *out)
{
    assert (out);
    fprintf (out, "<!-- generated by pb_catalogue_doc from "
                  "proto/pb_catalogue.def: do not edit -->\n\n");
    fprintf (out, "| type | owner (`src`) | data |\n|---|---|---|\n");
    for (int i = 0; i < S_TYPE_COUNT; i++) {
        fprintf (out, "| `%s` | %s | ", s_types [i].name,
                 s_types [i].owner? s_types [i].owner: "upstream");
        s_print_schema (out, s_types [i].schema);
        fprintf (out, " |\n");
    }
    fprintf (out, "\n| action `kind` | fields |\n|---|---|\n");
    for (const s_action_t *action = s_actions; action->kind; action++) {
        fprintf (out, "| `%s` | ", action->kind);
        s_print_schema (out, action->schema);
        fprintf (out, " |\n");
    }
    fprintf (out, "\nThe considerations: ");
    s_print_values (out, s_enum_considerations);
    fprintf (out, ".\n\n");
    for (const char *const *line = s_kind_legend; *line; line++)
        fprintf (out, "- %s\n", *line);
    fflush (out);
    return ferror (out)? PB_EIO: 0;
}

//  --------------------------------------------------------------------------
//  Selftest

typedef struct {
    const char *type;                   //  event type
    const char *data;                   //  data map, in pb_msgpack's notation
    const char *error;                  //  NULL: valid; else the exact error
} s_test_case_t;

//  Good input passes: at least one valid example of every type and action
static const s_test_case_t s_valid [] = {
    { "registry.ally", "{'country': 'FRA', 'name': 'France', 'joined': '1949-04-04'}", NULL },
    { "registry.partner", "{'country': 'FIN', 'name': 'Finland', 'frameworks': ['EAPC', 'PFP'],"
      " 'status': 'active', 'programmes': ['IPAP', 'PARP'], 'profile': {'aspires_membership': true,"
      " 'shares_values': true, 'supports_operations': true, 'strategic_importance': false,"
      " 'bilateral_framework': false, 'finances_activities': true}}", NULL },
    { "registry.partner", "{'country': 'CHN', 'name': 'China', 'frameworks': ['DIALOGUE'],"
      " 'status': 'active'}", NULL },
    { "registry.policy", "{}", NULL },
    { "registry.policy", "{'discard_below': 2.5, 'discard_min_feedbacks': 3, 'weights':"
      " {'aspires_membership': 1, 'shares_values': 0, 'supports_operations': 100,"
      " 'strategic_importance': 1, 'bilateral_framework': 1, 'finances_activities': 1,"
      " 'priority_area': 1}, 'expiry_notice_days': 90}", NULL },
    { "registry.policy", "{'discard_below': 3}", NULL },
    { "nac.proposal", "{'proposal': 'p-1', 'action': {'kind': 'cpe.assign', 'partner': 'UKR',"
      " 'ally': 'POL'}, 'procedure': 'silence', 'deadline': 1700000000000}", NULL },
    { "nac.proposal", "{'proposal': 'p-2', 'action': {'kind': 'activity.open', 'activity': 'a-1',"
      " 'partners': ['JPN', 'KOR']}, 'procedure': 'meeting'}", NULL },
    { "nac.proposal", "{'procedure': 'meeting', 'proposal': 'p-3', 'action': {'partner': 'GEO',"
      " 'kind': 'programme.open', 'programme': 'IPAP'}}", NULL },
    { "nac.proposal", "{'proposal': 'p-4', 'action': {'kind': 'consultation.convene',"
      " 'subject': 'Black Sea security', 'participants': ['UKR', 'GEO', 'MDA']},"
      " 'procedure': 'meeting'}", NULL },
    { "nac.proposal", "{'proposal': 'p-5', 'action': {'kind': 'activity.discard',"
      " 'activity': 'a-1'}, 'procedure': 'meeting'}", NULL },
    { "nac.proposal", "{'proposal': 'p-6', 'action': {'kind': 'accession', 'country': 'SWE',"
      " 'effective': '2024-03-07'}, 'procedure': 'silence', 'deadline': 0}", NULL },
    { "nac.position", "{'proposal': 'p-1', 'ally': 'HUN', 'position': 'object',"
      " 'reason': 'T\\xc3\\xbcrkiye asks for time'}", NULL },
    { "nac.position", "{'proposal': 'p-1', 'ally': 'HUN', 'position': 'concur'}", NULL },
    { "nac.meeting", "{'proposal': 'p-1', 'outcome': 'not_agreed'}", NULL },
    { "cpe.volunteer", "{'ally': 'POL', 'partner': 'UKR'}", NULL },
    { "cpe.handover", "{'partner': 'UKR', 'to': 'POL', 'decision': 'p-1',"
      " 'effective': '2024-02-29', 'from': 'LTU'}", NULL },
    { "activity.registered", "{'activity': 'a-1', 'title': 'Cyber defence course',"
      " 'area': 'emerging_security_challenges', 'tool': 'TRUST_FUND', 'partners': [],"
      " 'review_every_days': 365}", NULL },
    { "activity.feedback", "{'activity': 'a-1', 'from': 'PDD', 'relevance': 1,"
      " 'effectiveness': 5, 'comment': ''}", NULL },
    { "sys.tick", "{'now': 1700000000000}", NULL },
    { "ops.redrive", "{'worker': 'cpe', 'seq': 42}", NULL },
    { "ops.redrive", "{'worker': 'cpe', 'seq': 42, 'by': 'alice'}", NULL },
    { "ops.rebuild", "{'worker': 'nac', 'by': 'alice', 'through': 0, 'result': 'same'}", NULL },
    { "ops.rebuild", "{'worker': 'nac', 'by': 'alice', 'through': 9, 'result': 'differs',"
      " 'key': 'state proposal/p-1', 'cause': 7}", NULL },
    { "ops.swap", "{'worker': 'activity', 'by': 'alice', 'through': 9, 'result': 'differs'}", NULL },
    { "ops.import", "{'by': 'alice', 'file': 'log.pbx', 'from': 1, 'through': 100}", NULL },
    { "ops.replay", "{'by': 'alice', 'to': 'tcp://test:7701', 'from': 1, 'through': 9,"
      " 'events': 4}", NULL },
    { "notify.nac.rejected", "{'proposal': 'p-1', 'reason': 'standing_objection'}", NULL },
    { "notify.nac.adopted", "{'proposal': 'p-6', 'action': {'kind': 'accession',"
      " 'country': 'SWE', 'effective': '2024-03-07'}, 'adopted_at': 1709769600000}", NULL },
    { "notify.nac.blocked", "{'proposal': 'p-1', 'by': []}", NULL },
    { "notify.nac.silence_broken", "{'proposal': 'p-1', 'by': 'HUN'}", NULL },
    { "notify.nac.quarantined", "{'seq': 7, 'type': 'nac.position', 'reason': 'bug'}", NULL },
    { "notify.cpe.assigned", "{'partner': 'UKR', 'ally': 'POL', 'previous': 'LTU',"
      " 'term_start': '2024-02-29', 'term_end': '2026-02-28'}", NULL },
    { "notify.cpe.term_expiring", "{'partner': 'UKR', 'ally': 'POL', 'term_end': '2026-02-28',"
      " 'days_left': 0}", NULL },
    { "notify.cpe.ended", "{'partner': 'FIN', 'ally': 'NOR', 'reason': 'accession'}", NULL },
    { "notify.cpe.vacant", "{'partner': 'UKR', 'since': 1, 'candidate': 'POL'}", NULL },
    { "notify.cpe.vacant", "{'partner': 'UKR', 'since': 1}", NULL },
    { "notify.cpe.rejected", "{'partner': 'XXX', 'reason': 'unknown_partner'}", NULL },
    { "notify.cpe.quarantined", "{'seq': 1, 'type': 'cpe.handover', 'reason': 'x'}", NULL },
    { "notify.activity.discard_candidate", "{'activity': 'a-1', 'mean_relevance': 1.6666666666666667,"
      " 'feedbacks': 3}", NULL },
    { "notify.activity.review_due", "{'activity': 'a-1', 'last_feedback': 0}", NULL },
    { "notify.activity.priority", "{'activity': 'a-1', 'score': 58, 'factors':"
      " {'aspires_membership': 0.5, 'shares_values': 1.0, 'supports_operations': 0.0,"
      " 'strategic_importance': 0.25, 'bilateral_framework': 0, 'finances_activities': 1,"
      " 'priority_area': 1.0}}", NULL },
    { "notify.activity.opened", "{'activity': 'a-1', 'partners': ['JPN']}", NULL },
    { "notify.activity.discarded", "{'activity': 'a-1', 'proposal': 'p-5'}", NULL },
    { "notify.activity.rejected", "{'activity': 'a-9', 'reason': 'closed'}", NULL },
    { "notify.activity.quarantined", "{'seq': 3, 'type': 'activity.feedback', 'reason': ''}", NULL },
    { "notify.partner.access_changed", "{'partner': 'GEO', 'programme': 'PARP',"
      " 'proposal': 'p-3'}", NULL },
    { "notify.consultation.convened", "{'subject': 'Black Sea', 'participants': ['UKR'],"
      " 'informed': ['GEO', 'MDA']}", NULL },
};

#define S_PROFILE6 "{'aspires_membership': true, 'shares_values': true, " \
    "'supports_operations': true, 'strategic_importance': false, " \
    "'bilateral_framework': false, 'finances_activities': true"
#define S_SEVEN "'aspires_membership': 1, 'shares_values': 1, " \
    "'supports_operations': 1, 'strategic_importance': 1, " \
    "'bilateral_framework': 1, 'finances_activities': 1"
#define S_PRIO(factors) "{'activity': 'a', 'score': 1, 'factors': " factors "}"
#define S_ACT(action) "{'proposal': 'p', 'procedure': 'meeting', 'action': " action "}"

//  Bad data: one case at least per rule kind and per type, each with the
//  exact sentence it must produce
static const s_test_case_t s_invalid [] = {
    //  Missing, unknown, ill-typed; keys that are not strings
    { "registry.ally", "{'country': 'FRA', 'name': 'France'}", "data.joined: missing" },
    { "registry.ally", "{'country': 'FRA', 'name': 'F', 'joined': '1949-04-04', 'x': 1}",
      "data.x: unknown field" },
    { "registry.ally", "{'country': 'FRA', 'name': 'F', 'joined': '1949-04-04', 1: 1}",
      "data: a key is not a string" },
    { "registry.ally", "{'country': 'FRA', 'name': 7, 'joined': '1949-04-04'}",
      "data.name: not a string" },
    //  Country, date
    { "registry.ally", "{'country': 'fra', 'name': 'F', 'joined': '1949-04-04'}",
      "data.country: 'fra' is not a country code (3 letters A-Z)" },
    { "registry.ally", "{'country': 'FRAN', 'name': 'F', 'joined': '1949-04-04'}",
      "data.country: 'FRAN' is not a country code (3 letters A-Z)" },
    { "registry.ally", "{'country': 'FRA', 'name': 'F', 'joined': '2023-02-29'}",
      "data.joined: '2023-02-29' is not a date (YYYY-MM-DD)" },
    { "registry.ally", "{'country': 'FRA', 'name': 'F', 'joined': '1900-02-29'}",
      "data.joined: '1900-02-29' is not a date (YYYY-MM-DD)" },
    { "registry.ally", "{'country': 'FRA', 'name': 'F', 'joined': '1949-4-4'}",
      "data.joined: '1949-4-4' is not a date (YYYY-MM-DD)" },
    { "registry.ally", "{'country': 'FRA', 'name': 'F', 'joined': '1949-13-01'}",
      "data.joined: '1949-13-01' is not a date (YYYY-MM-DD)" },
    { "registry.ally", "{'country': 'FRA', 'name': 'F', 'joined': 1949}",
      "data.joined: not a string" },
    //  Enumerations, lists (type, size, items, duplicates), profile
    { "registry.partner", "{'country': 'FIN', 'name': 'F', 'frameworks': ['EAPC'], 'status': 'gone'}",
      "data.status: 'gone' is not one of active, suspended" },
    { "registry.partner", "{'country': 'FIN', 'name': 'F', 'frameworks': [], 'status': 'active'}",
      "data.frameworks: 0 items, out of range 1..6" },
    { "registry.partner", "{'country': 'FIN', 'name': 'F', 'frameworks': 'EAPC', 'status': 'active'}",
      "data.frameworks: not a list" },
    { "registry.partner", "{'country': 'FIN', 'name': 'F', 'frameworks': ['EAPC', 'NATO'],"
      " 'status': 'active'}", "data.frameworks[1]: 'NATO' is not one of EAPC, PFP, MD, ICI, PATG, DIALOGUE" },
    { "registry.partner", "{'country': 'FIN', 'name': 'F', 'frameworks': ['PFP', 'PFP'],"
      " 'status': 'active'}", "data.frameworks[1]: duplicate of item 0" },
    { "registry.partner", "{'country': 'FIN', 'name': 'F', 'frameworks': ['PFP'], 'status': 'active',"
      " 'profile': " S_PROFILE6 ", 'priority_area': true}}", "data.profile.priority_area: unknown field" },
    { "registry.partner", "{'country': 'FIN', 'name': 'F', 'frameworks': ['PFP'], 'status': 'active',"
      " 'profile': {'shares_values': true}}", "data.profile.aspires_membership: missing" },
    { "registry.partner", "{'country': 'FIN', 'name': 'F', 'frameworks': ['PFP'], 'status': 'active',"
      " 'profile': {'aspires_membership': 1, 'shares_values': true}}",
      "data.profile.aspires_membership: not a bool" },
    { "registry.partner", "{'country': 'FIN', 'name': 'F', 'frameworks': ['PFP'], 'status': 'active',"
      " 'profile': []}", "data.profile: not a map" },
    //  Real numbers, weights
    { "registry.policy", "{'discard_below': 5.5}", "data.discard_below: 5.5 is out of range 0..5" },
    { "registry.policy", "{'discard_below': 'low'}", "data.discard_below: not a number" },
    { "registry.policy", "{'discard_below': 1e999}", "data.discard_below: not a finite number" },
    { "registry.policy", "{'discard_below': -0.5}", "data.discard_below: -0.5 is out of range 0..5" },
    { "registry.policy", "{'discard_min_feedbacks': 0}",
      "data.discard_min_feedbacks: 0 is out of range 1..1000000" },
    { "registry.policy", "{'weights': {" S_SEVEN ", 'priority_area': 101}}",
      "data.weights.priority_area: 101 is out of range 0..100" },
    { "registry.policy", "{'weights': {" S_SEVEN "}}", "data.weights.priority_area: missing" },
    { "registry.policy", "{'weights': {'aspires_membership': 0, 'shares_values': 0, "
      "'supports_operations': 0, 'strategic_importance': 0, 'bilateral_framework': 0, "
      "'finances_activities': 0, 'priority_area': 0}}", "data.weights: all weights are 0" },
    { "registry.policy", "{'weights': {" S_SEVEN ", 'priority_area': 1, 'cost': 1}}",
      "data.weights.cost: unknown field" },
    { "registry.policy", "{'expiry_notice_days': -1}",
      "data.expiry_notice_days: -1 is out of range 0..730" },
    //  Conditional: deadline with silence only
    { "nac.proposal", "{'proposal': 'p', 'procedure': 'silence', 'action': {'kind':"
      " 'activity.discard', 'activity': 'a'}}", "data.deadline: missing (required when procedure is silence)" },
    { "nac.proposal", "{'proposal': 'p', 'procedure': 'meeting', 'deadline': 5, 'action':"
      " {'kind': 'activity.discard', 'activity': 'a'}}", "data.deadline: allowed only when procedure is silence" },
    { "nac.proposal", "{'proposal': 'p', 'procedure': 'silence', 'deadline': -5, 'action':"
      " {'kind': 'activity.discard', 'activity': 'a'}}", "data.deadline: -5 is below the minimum 0" },
    { "nac.proposal", "{'proposal': 'p', 'procedure': 'silence', 'deadline': 'soon', 'action':"
      " {'kind': 'activity.discard', 'activity': 'a'}}", "data.deadline: not an integer" },
    { "nac.proposal", "{'proposal': 'p', 'procedure': 'vote', 'action':"
      " {'kind': 'activity.discard', 'activity': 'a'}}", "data.procedure: 'vote' is not one of silence, meeting" },
    //  Actions by kind
    { "nac.proposal", S_ACT ("{'kind': 'cpe.assign', 'ally': 'POL'}"), "data.action.partner: missing" },
    { "nac.proposal", S_ACT ("{'partner': 'UKR', 'ally': 'POL'}"), "data.action.kind: missing" },
    { "nac.proposal", S_ACT ("{'kind': 7}"), "data.action.kind: not a string" },
    { "nac.proposal", S_ACT ("{'kind': 'war'}"), "data.action.kind: 'war' is not one of cpe.assign, "
      "activity.open, programme.open, consultation.convene, activity.discard, accession" },
    { "nac.proposal", S_ACT ("'cpe.assign'"), "data.action: not a map" },
    { "nac.proposal", S_ACT ("{'kind': 'cpe.assign', 'partner': 'UKR', 'ally': 'POL', 'activity': 'a'}"),
      "data.action.activity: unknown field" },
    { "nac.proposal", S_ACT ("{'kind': 'activity.open', 'activity': 'a', 'partners': []}"),
      "data.action.partners: 0 items, out of range 1..64" },
    { "nac.proposal", S_ACT ("{'kind': 'programme.open', 'partner': 'GEO', 'programme': 'IPCP'}"),
      "data.action.programme: 'IPCP' is not one of IPAP, PARP" },
    { "nac.proposal", S_ACT ("{'kind': 'consultation.convene', 'subject': 's', 'participants': ['UKR', 'ukr']}"),
      "data.action.participants[1]: 'ukr' is not a country code (3 letters A-Z)" },
    { "nac.proposal", S_ACT ("{'kind': 'activity.discard', 'activity': ''}"), "data.action.activity: empty" },
    { "nac.proposal", S_ACT ("{'kind': 'accession', 'country': 'SWE', 'effective': '2024-02-30'}"),
      "data.action.effective: '2024-02-30' is not a date (YYYY-MM-DD)" },
    { "nac.proposal", "{'proposal': 'p', 'procedure': 'meeting'}", "data.action: missing" },
    //  The remaining upstream types
    { "nac.position", "{'proposal': 'p', 'ally': 'HUN', 'position': 'abstain'}",
      "data.position: 'abstain' is not one of concur, object" },
    { "nac.meeting", "{'proposal': 'p', 'outcome': true}", "data.outcome: not a string" },
    { "cpe.volunteer", "{'ally': 'POL'}", "data.partner: missing" },
    { "cpe.handover", "{'partner': 'UKR', 'to': 'POL', 'decision': 'p', 'effective': '2024-01-01',"
      " 'from': 'pl'}", "data.from: 'pl' is not a country code (3 letters A-Z)" },
    { "activity.registered", "{'activity': 'a', 'title': 't', 'area': 'space', 'tool': 'PCM',"
      " 'partners': []}", "data.area: 'space' is not one of political_consultation, operations, "
      "defence_reform, interoperability, counter_terrorism, counter_proliferation, "
      "emerging_security_challenges, civil_emergency_planning, other" },
    { "activity.registered", "{'activity': 'a', 'title': 't', 'area': 'other', 'tool': 'PCM',"
      " 'partners': [], 'review_every_days': 0}", "data.review_every_days: 0 is out of range 1..3650" },
    { "activity.feedback", "{'activity': 'a', 'from': 'x', 'relevance': 7, 'effectiveness': 1}",
      "data.relevance: 7 is out of range 1..5" },
    { "activity.feedback", "{'activity': 'a', 'from': 'x', 'relevance': 3, 'effectiveness': 0}",
      "data.effectiveness: 0 is out of range 1..5" },
    { "activity.feedback", "{'activity': 'a', 'from': 'x', 'relevance': 3.0, 'effectiveness': 1}",
      "data.relevance: not an integer" },
    { "activity.feedback", "{'activity': 'a', 'from': 'x', 'relevance': 18446744073709551615,"
      " 'effectiveness': 1}", "data.relevance: 18446744073709551615 is out of range" },
    { "sys.tick", "{}", "data.now: missing" },
    { "sys.tick", "{'now': -1}", "data.now: -1 is below the minimum 0" },
    { "ops.redrive", "{'worker': 'journal', 'seq': 1}",
      "data.worker: 'journal' is not one of nac, cpe, activity" },
    { "ops.redrive", "{'worker': 'nac', 'seq': 0}", "data.seq: 0 is below the minimum 1" },
    { "ops.rebuild", "{'worker': 'nac', 'by': 'alice', 'through': 1, 'result': 'maybe'}",
      "data.result: 'maybe' is not one of same, differs" },
    { "ops.swap", "{'worker': 'nac', 'through': 1, 'result': 'same'}", "data.by: missing" },
    { "ops.import", "{'by': 'alice', 'file': 'f', 'from': 0, 'through': 1}",
      "data.from: 0 is below the minimum 1" },
    { "ops.replay", "{'by': 'alice', 'to': 'x', 'from': 1, 'through': 1}", "data.events: missing" },
    //  Notifications
    { "notify.nac.rejected", "{'proposal': 'p', 'reason': 'late'}", "data.reason: 'late' is not one "
      "of invalid_action, duplicate_proposal, standing_objection, not_an_ally, unknown_proposal, "
      "already_decided, wrong_procedure" },
    { "notify.nac.adopted", "{'proposal': 'p', 'action': {'kind': 'cpe.assign', 'partner': 'UKR'},"
      " 'adopted_at': 5}", "data.action.ally: missing" },
    { "notify.nac.adopted", "{'proposal': 'p', 'action': {'kind': 'accession', 'country': 'SWE',"
      " 'effective': '2024-03-07'}}", "data.adopted_at: missing" },
    { "notify.nac.blocked", "{'proposal': 'p', 'by': ['HUN', 'HUN']}", "data.by[1]: duplicate of item 0" },
    { "notify.nac.silence_broken", "{'proposal': 'p', 'by': ['HUN']}", "data.by: not a string" },
    { "notify.nac.quarantined", "{'seq': 0, 'type': 't', 'reason': 'r'}", "data.seq: 0 is below the minimum 1" },
    { "notify.cpe.assigned", "{'partner': 'UKR', 'ally': 'POL', 'term_start': '2024-01-01'}",
      "data.term_end: missing" },
    { "notify.cpe.term_expiring", "{'partner': 'UKR', 'ally': 'POL', 'term_end': '2026-01-01',"
      " 'days_left': -1}", "data.days_left: -1 is out of range 0..1000000" },
    { "notify.cpe.ended", "{'partner': 'UKR', 'ally': 'POL', 'reason': 'bored'}",
      "data.reason: 'bored' is not one of term_ended, accession, suspended" },
    { "notify.cpe.vacant", "{'partner': 'UKR', 'since': '2024-01-01'}", "data.since: not an integer" },
    { "notify.cpe.rejected", "{'partner': 'UKR', 'reason': 'not_eligible', 'ally': 'POL'}",
      "data.ally: unknown field" },
    { "notify.cpe.quarantined", "{'seq': 1, 'type': '', 'reason': 'r'}", "data.type: empty" },
    { "notify.activity.discard_candidate", "{'activity': 'a', 'mean_relevance': 0.5, 'feedbacks': 3}",
      "data.mean_relevance: 0.5 is out of range 1..5" },
    { "notify.activity.review_due", "{'activity': 'a'}", "data.last_feedback: missing" },
    { "notify.activity.priority", "{'activity': 'a', 'score': 101, 'factors': {}}",
      "data.score: 101 is out of range 0..100" },
    { "notify.activity.priority", S_PRIO ("{" S_SEVEN ", 'priority_area': 1.5}"),
      "data.factors.priority_area: 1.5 is out of range 0..1" },
    { "notify.activity.priority", S_PRIO ("{" S_SEVEN ", 'priority_area': true}"),
      "data.factors.priority_area: not a number" },
    { "notify.activity.priority", S_PRIO ("{" S_SEVEN "}"), "data.factors.priority_area: missing" },
    { "notify.activity.opened", "{'activity': 'a', 'partners': ['JPN', 7]}",
      "data.partners[1]: not a string" },
    { "notify.activity.discarded", "{'activity': 'a'}", "data.proposal: missing" },
    { "notify.activity.rejected", "{'activity': 'a', 'reason': 'unknown'}",
      "data.reason: 'unknown' is not one of unknown_activity, closed" },
    { "notify.activity.quarantined", "{'seq': 1, 'type': 't'}", "data.reason: missing" },
    { "notify.partner.access_changed", "{'partner': 'GEO', 'programme': 'PARP'}",
      "data.proposal: missing" },
    { "notify.consultation.convened", "{'subject': 's', 'participants': [], 'informed': []}",
      "data.participants: 0 items, out of range 1..64" },
};

//  Unpack 'text' into 'zone' (through the pre-walk, as the journal does)
static msgpack_object
s_test_object (const char *text, msgpack_zone *zone, msgpack_sbuffer *buffer)
{
    int rc = pb_msgpack_pack_text (text, buffer);
    if (rc)
        fprintf (stderr, "\nbad test text: %s\n", text);
    assert (rc == 0);
    pb_limits_t limits = PB_LIMITS_DEFAULTS;
    char error [256];
    rc = pb_msgpack_check (buffer->data, buffer->size, &limits, error, sizeof error);
    assert (rc == 0);
    msgpack_object obj;
    size_t offset = 0;
    rc = msgpack_unpack (buffer->data, buffer->size, &offset, zone, &obj);
    assert (rc == MSGPACK_UNPACK_SUCCESS);
    return obj;
}

static void
s_test_run (const s_test_case_t *test, bool verbose)
{
    msgpack_zone zone;
    msgpack_zone_init (&zone, 2048);
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_object data = s_test_object (test->data, &zone, &buffer);
    int index = pb_catalogue_lookup (test->type, strlen (test->type));
    assert (index >= 0);
    char error [512];
    pb_nak_t nak = pb_catalogue_validate (index, &data, error, sizeof error);
    if (verbose || (test->error? strcmp (error, test->error) != 0: nak != PB_NAK_NONE))
        printf ("\n    %s %s -> %s", test->type, test->data, error);
    if (test->error) {
        assert (nak == PB_NAK_BAD_DATA);
        assert (strcmp (error, test->error) == 0);
    }
    else
        assert (nak == PB_NAK_NONE && error [0] == 0);
    msgpack_sbuffer_destroy (&buffer);
    msgpack_zone_destroy (&zone);
}

void
pb_catalogue_test (bool verbose)
{
    printf (" * pb_catalogue: ");
    //  Every type of EVENTS.md, with its owner
    static const char *const types [][2] = {
        { "registry.ally", NULL }, { "registry.partner", NULL },
        { "registry.policy", NULL }, { "nac.proposal", NULL },
        { "nac.position", NULL }, { "nac.meeting", NULL },
        { "cpe.volunteer", NULL }, { "cpe.handover", NULL },
        { "activity.registered", NULL }, { "activity.feedback", NULL },
        { "sys.tick", "journal" }, { "ops.redrive", "ops" },
        { "ops.rebuild", "ops" }, { "ops.swap", "ops" },
        { "ops.import", "ops" }, { "ops.replay", "ops" },
        { "notify.nac.rejected", "nac" }, { "notify.nac.adopted", "nac" },
        { "notify.nac.blocked", "nac" }, { "notify.nac.silence_broken", "nac" },
        { "notify.nac.quarantined", "nac" }, { "notify.cpe.assigned", "cpe" },
        { "notify.cpe.term_expiring", "cpe" }, { "notify.cpe.ended", "cpe" },
        { "notify.cpe.vacant", "cpe" }, { "notify.cpe.rejected", "cpe" },
        { "notify.cpe.quarantined", "cpe" },
        { "notify.activity.discard_candidate", "activity" },
        { "notify.activity.review_due", "activity" },
        { "notify.activity.priority", "activity" },
        { "notify.activity.opened", "activity" },
        { "notify.activity.discarded", "activity" },
        { "notify.activity.rejected", "activity" },
        { "notify.activity.quarantined", "activity" },
        { "notify.partner.access_changed", "activity" },
        { "notify.consultation.convened", "activity" },
    };
    int count = (int) (sizeof types / sizeof types [0]);
    assert (pb_catalogue_count () == count);
    bool seen [sizeof types / sizeof types [0]] = { false };
    for (int i = 0; i < count; i++) {
        int index = pb_catalogue_lookup (types [i][0], strlen (types [i][0]));
        assert (index >= 0 && index < count);
        assert (!seen [index]);
        seen [index] = true;
        assert (strcmp (pb_catalogue_name (index), types [i][0]) == 0);
        const char *owner = pb_catalogue_owner (index);
        assert (types [i][1]? owner && strcmp (owner, types [i][1]) == 0: !owner);
        assert (pb_catalogue_is_notification (index)
                == (strncmp (types [i][0], "notify.", 7) == 0));
    }
    assert (pb_catalogue_lookup ("nac.proposal", 11) == -1);   //  A prefix
    assert (pb_catalogue_lookup ("nac.proposals", 13) == -1);
    assert (pb_catalogue_lookup ("", 0) == -1);
    assert (pb_catalogue_lookup ("sys.heartbeat", 13) == -1);  //  Not logged

    //  Every type has a valid example, every action kind too
    bool has_example [sizeof types / sizeof types [0]] = { false };
    for (size_t i = 0; i < sizeof s_valid / sizeof s_valid [0]; i++) {
        s_test_run (&s_valid [i], verbose);
        has_example [pb_catalogue_lookup (s_valid [i].type,
                                          strlen (s_valid [i].type))] = true;
    }
    for (int i = 0; i < count; i++)
        assert (has_example [i]);
    for (const s_action_t *action = s_actions; action->kind; action++) {
        bool found = false;
        for (size_t i = 0; i < sizeof s_valid / sizeof s_valid [0]; i++) {
            char kind [64];
            snprintf (kind, sizeof kind, "'kind': '%s'", action->kind);
            found |= strstr (s_valid [i].data, kind) != NULL;
        }
        assert (found);
    }
    //  Bad data is refused with a sentence naming the field
    bool has_bad [sizeof types / sizeof types [0]] = { false };
    for (size_t i = 0; i < sizeof s_invalid / sizeof s_invalid [0]; i++) {
        s_test_run (&s_invalid [i], verbose);
        has_bad [pb_catalogue_lookup (s_invalid [i].type,
                                      strlen (s_invalid [i].type))] = true;
    }
    for (int i = 0; i < count; i++)
        assert (has_bad [i]);

    //  Limits of ids, texts and lists
    char text [8192], item [5000];
    memset (item, 'x', 4097);
    item [4097] = 0;
    snprintf (text, sizeof text, "{'activity': 'a', 'from': 'x', 'relevance': 3,"
              " 'effectiveness': 1, 'comment': '%s'}", item);
    s_test_case_t test = { "activity.feedback", text,
                           "data.comment: 4097 bytes, out of range 0..4096" };
    s_test_run (&test, verbose);
    item [4096] = 0;
    snprintf (text, sizeof text, "{'activity': 'a', 'from': 'x', 'relevance': 3,"
              " 'effectiveness': 1, 'comment': '%s'}", item);
    test.error = NULL;
    s_test_run (&test, verbose);
    item [65] = 0;
    snprintf (text, sizeof text, "{'activity': '%s', 'reason': 'closed'}", item);
    test = (s_test_case_t) { "notify.activity.rejected", text,
                             "data.activity: 65 bytes, out of range 1..64" };
    s_test_run (&test, verbose);
    size_t used = snprintf (text, sizeof text, "{'activity': 'a', 'partners': [");
    for (int i = 0; i < 65; i++)
        used += snprintf (text + used, sizeof text - used, "%s'%c%c%c'", i? ", ": "",
                          'A' + i / 26, 'A' + i % 26, 'Z');
    snprintf (text + used, sizeof text - used, "]}");
    test = (s_test_case_t) { "notify.activity.opened", text,
                             "data.partners: 65 items, out of range 0..64" };
    s_test_run (&test, verbose);

    //  The reference table names every type
    FILE *out = tmpfile ();
    assert (out);
    assert (pb_catalogue_print (out) == 0);
    long size = ftell (out);
    assert (size > 0 && size < (long) sizeof text * 2);
    char *table = (char *) calloc (1, size + 1);
    assert (table);
    rewind (out);
    assert (fread (table, 1, size, out) == (size_t) size);
    for (int i = 0; i < count; i++) {
        snprintf (text, sizeof text, "| `%s` |", types [i][0]);
        assert (strstr (table, text));
    }
    free (table);
    fclose (out);
    printf ("OK\n");
}
