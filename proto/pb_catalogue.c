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
#include <string.h>

//  --------------------------------------------------------------------------
//  The tables

typedef enum {
    S_REQUIRED, S_OPTIONAL, S_WHEN
} s_presence_t;

typedef enum {
    S_K_ID, S_K_TEXT, S_K_STR, S_K_COUNTRY, S_K_DATE, S_K_TIME, S_K_INT,
    S_K_REAL, S_K_BOOL, S_K_ENUM, S_K_LIST_ENUM, S_K_LIST_COUNTRY,
    S_K_LIST_ID, S_K_WEIGHTS, S_K_FACTORS, S_K_PROFILE, S_K_ACTION
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

//  Extend the path; returns the old length to restore it with
static size_t
s_path_push (s_ctx_t *ctx, const char *format, ...)
{
    size_t len = strlen (ctx->path);
    va_list args;
    va_start (args, format);
    vsnprintf (ctx->path + len, sizeof (ctx->path) - len, format, args);
    va_end (args);
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
    item.kind = field->kind == S_K_LIST_ENUM? S_K_ENUM:
                field->kind == S_K_LIST_COUNTRY? S_K_COUNTRY: S_K_ID;
    //  Lists are sets: at most 256 short strings, so pairwise is fine
    for (uint32_t i = 0; i < v->via.array.size; i++) {
        const msgpack_object *o = &v->via.array.ptr [i];
        size_t len = s_path_push (ctx, "[%u]", i);
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
            s_path_push (ctx, ".%s", s_quote (quoted, sizeof quoted, key));
            return s_bad (ctx, "unknown field");
        }
        values [c] = &v->via.map.ptr [i].val;
    }
    bool all_zero = true;
    for (size_t c = 0; c < count; c++) {
        size_t len = s_path_push (ctx, ".%s", s_enum_considerations [c]);
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
    size_t len = s_path_push (ctx, ".kind");
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
        case S_K_BOOL:
            return v->type == MSGPACK_OBJECT_BOOLEAN? 0: s_bad (ctx, "not a bool");
        case S_K_ENUM:      return s_check_enum (ctx, v, field->values);
        case S_K_LIST_ENUM:
        case S_K_LIST_COUNTRY:
        case S_K_LIST_ID:   return s_check_list (ctx, field, v);
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
            s_path_push (ctx, ".%s", s_quote (quoted, sizeof quoted, key));
            return s_bad (ctx, "unknown field");
        }
        values [f] = &v->via.map.ptr [i].val;
    }
    for (int f = 0; f < count; f++) {
        const s_field_t *field = &fields [f];
        size_t len = s_path_push (ctx, ".%s", field->name);
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
    assert (error && error_size);
    s_ctx_t ctx;
    strcpy (ctx.path, "data");
    ctx.error = error;
    ctx.error_size = error_size;
    error [0] = 0;
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
        case S_K_BOOL:    fprintf (out, "bool"); break;
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
        case S_K_LIST_ID: item = "id"; break;
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
