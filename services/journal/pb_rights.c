/*  =========================================================================
    pb_rights - the journal's allow-list and rights: one ZPL file

    Parsing is strict, since a typo in a rights file should never grant or
    silently withhold a right: an unknown attribute, a malformed public
    key, a key listed twice, a list item that is not printable ASCII, or
    publish rights without a src all refuse the whole file (and a reload
    keeps the rights in force).
    =========================================================================
*/
#include "pb_rights.h"

#include <czmq.h>

#include "pb_error.h"

typedef struct {
    bool all;                           //  "*": every value
    size_t count;                       //  items
    char *items [PB_RIGHTS_LIST_MAX];   //  nul-terminated (owned)
    size_t lens [PB_RIGHTS_LIST_MAX];
    char *text;                         //  the list as written, normalized (owned)
} s_list_t;

struct _pb_rights_key_t {
    char *name;                         //  section name (owned)
    char public_key [41];               //  Z85
    s_list_t src;                       //  srcs it may publish with
    s_list_t publish;                   //  type prefixes it may publish
    s_list_t subscribe;                 //  fanout prefixes
    s_list_t replay;                    //  replayed type prefixes
};

struct _pb_rights_t {
    zhashx_t *keys;                     //  public key -> pb_rights_key_t (owned)
};

static const char *s_attributes [] = { "public_key", "src", "publish", "subscribe",
                                       "replay", NULL };

static void
s_list_free (s_list_t *list)
{
    for (size_t i = 0; i < list->count; i++)
        free (list->items [i]);
    free (list->text);
    memset (list, 0, sizeof *list);
}

static void
s_key_destroy (pb_rights_key_t **self_p)
{
    pb_rights_key_t *self = *self_p;
    if (self) {
        free (self->name);
        s_list_free (&self->src);
        s_list_free (&self->publish);
        s_list_free (&self->subscribe);
        s_list_free (&self->replay);
        free (self);
        *self_p = NULL;
    }
}

static void
s_key_destructor (void **item)
{
    s_key_destroy ((pb_rights_key_t **) item);
}

//  Split 'value' on spaces into 'list'. Returns 0, or PB_EINVAL with the
//  reason in 'error'.
static int
s_list_parse (const char *value, s_list_t *list, const char *section,
              const char *attribute, char *error, size_t error_size)
{
    memset (list, 0, sizeof *list);
    zchunk_t *text = zchunk_new (NULL, 0);
    const char *at = value? value: "";
    int rc = 0;
    while (rc == 0 && *at) {
        while (*at == ' ' || *at == '\t')
            at++;
        const char *end = at;
        while (*end && *end != ' ' && *end != '\t')
            end++;
        size_t len = (size_t) (end - at);
        if (len == 0)
            break;
        bool printable = true;
        for (size_t i = 0; i < len; i++)
            printable &= at [i] > 0x20 && at [i] < 0x7f;
        if (!printable || len > PB_RIGHTS_ITEM_MAX) {
            snprintf (error, error_size, "%s/%s: item %zu is not 1..%d printable "
                      "ASCII characters", section, attribute, list->count + 1,
                      PB_RIGHTS_ITEM_MAX);
            rc = PB_EINVAL;
        }
        else
        if (list->count == PB_RIGHTS_LIST_MAX) {
            snprintf (error, error_size, "%s/%s: more than %d items", section, attribute,
                      PB_RIGHTS_LIST_MAX);
            rc = PB_EINVAL;
        }
        else
        if (len == 1 && *at == '*')
            list->all = true;
        else {
            list->items [list->count] = strndup (at, len);
            assert (list->items [list->count]);
            list->lens [list->count++] = len;
        }
        if (rc == 0) {
            if (zchunk_size (text))
                zchunk_extend (text, " ", 1);
            zchunk_extend (text, at, len);
        }
        at = end;
    }
    if (rc == 0 && list->all && list->count > 0) {
        snprintf (error, error_size, "%s/%s: '*' (everything) must stand alone",
                  section, attribute);
        rc = PB_EINVAL;
    }
    list->text = strndup ((const char *) zchunk_data (text), zchunk_size (text));
    assert (list->text);
    zchunk_destroy (&text);
    if (rc)
        s_list_free (list);
    return rc;
}

//  One section: a client key. Returns 0 and sets *key_p, or PB_EINVAL.
static int
s_key_parse (zconfig_t *section, pb_rights_key_t **key_p, char *error, size_t error_size)
{
    const char *name = zconfig_name (section);
    size_t name_len = strlen (name);
    bool name_ok = name_len > 0 && name_len <= 64;
    for (size_t i = 0; i < name_len; i++)
        name_ok &= isalnum ((unsigned char) name [i]) || strchr ("-_.", name [i]);
    if (!name_ok) {
        snprintf (error, error_size, "section %.64s: a name is 1..64 letters, digits, "
                  "'-', '_' or '.'", name);
        return PB_EINVAL;
    }
    if (zconfig_value (section) && *zconfig_value (section)) {
        snprintf (error, error_size, "%s: a section has no value of its own", name);
        return PB_EINVAL;
    }
    for (zconfig_t *child = zconfig_child (section); child; child = zconfig_next (child)) {
        bool known = false;
        for (int i = 0; s_attributes [i] && !known; i++)
            known = streq (zconfig_name (child), s_attributes [i]);
        int seen = 0;
        for (zconfig_t *twin = zconfig_child (section); twin; twin = zconfig_next (twin))
            seen += streq (zconfig_name (twin), zconfig_name (child));
        if (!known || seen > 1 || zconfig_child (child)) {
            snprintf (error, error_size, "%s/%.64s: %s", name, zconfig_name (child),
                      !known? "unknown key (public_key, src, publish, subscribe, replay)"
                      : seen > 1? "given twice": "has sections under it");
            return PB_EINVAL;
        }
    }
    const char *public_key = zconfig_get (section, "public_key", NULL);
    uint8_t decoded [32];
    if (!public_key || strlen (public_key) != 40 || !zmq_z85_decode (decoded, public_key)) {
        snprintf (error, error_size, "%s/public_key: %s", name, public_key
                  ? "not a Z85 CURVE public key (40 characters)": "missing");
        return PB_EINVAL;
    }
    pb_rights_key_t *key = (pb_rights_key_t *) zmalloc (sizeof *key);
    key->name = strdup (name);
    assert (key->name);
    strcpy (key->public_key, public_key);
    int rc = s_list_parse (zconfig_get (section, "src", NULL), &key->src, name, "src",
                           error, error_size);
    if (rc == 0)
        rc = s_list_parse (zconfig_get (section, "publish", NULL), &key->publish, name,
                           "publish", error, error_size);
    if (rc == 0)
        rc = s_list_parse (zconfig_get (section, "subscribe", NULL), &key->subscribe,
                           name, "subscribe", error, error_size);
    if (rc == 0)
        rc = s_list_parse (zconfig_get (section, "replay", NULL), &key->replay, name,
                           "replay", error, error_size);
    if (rc == 0 && (key->publish.all || key->publish.count)
    &&  !key->src.all && key->src.count == 0) {
        snprintf (error, error_size, "%s/src: missing, and publish needs it", name);
        rc = PB_EINVAL;
    }
    if (rc == 0)
        *key_p = key;
    else
        s_key_destroy (&key);
    return rc;
}

//  --------------------------------------------------------------------------

int
pb_rights_parse (const char *text, size_t size, pb_rights_t **rights_p,
                 char *error, size_t error_size)
{
    assert (text || size == 0);
    assert (rights_p && error);
    //  zconfig reads a nul-terminated string; a nul inside is not ZPL
    if (memchr (text, 0, size) || size > PB_RIGHTS_FILE_MAX) {
        snprintf (error, error_size, "not a text file of at most %d bytes",
                  PB_RIGHTS_FILE_MAX);
        return PB_EINVAL;
    }
    char *copy = strndup (text? text: "", size);
    assert (copy);
    zconfig_t *root = zconfig_str_load (copy);
    free (copy);
    if (!root) {
        snprintf (error, error_size, "not valid ZPL (rfc.zeromq.org/spec:4)");
        return PB_EINVAL;
    }
    pb_rights_t *self = (pb_rights_t *) zmalloc (sizeof *self);
    self->keys = zhashx_new ();
    assert (self->keys);
    zhashx_set_destructor (self->keys, s_key_destructor);
    zhashx_t *names = zhashx_new ();
    assert (names);
    int rc = 0;
    for (zconfig_t *section = zconfig_child (root); section && rc == 0;
         section = zconfig_next (section)) {
        pb_rights_key_t *key = NULL;
        rc = s_key_parse (section, &key, error, error_size);
        if (rc)
            break;
        pb_rights_key_t *twin = (pb_rights_key_t *) zhashx_lookup (self->keys, key->public_key);
        if (twin || zhashx_lookup (names, key->name)
        ||  zhashx_size (self->keys) >= PB_RIGHTS_KEYS_MAX) {
            if (twin)
                snprintf (error, error_size, "%s/public_key: the same key as section %s",
                          key->name, twin->name);
            else
            if (zhashx_lookup (names, key->name))
                snprintf (error, error_size, "%s: section given twice", key->name);
            else
                snprintf (error, error_size, "more than %d keys", PB_RIGHTS_KEYS_MAX);
            s_key_destroy (&key);
            rc = PB_EINVAL;
        }
        else {
            zhashx_insert (names, key->name, key);
            zhashx_insert (self->keys, key->public_key, key);
        }
    }
    zhashx_destroy (&names);
    zconfig_destroy (&root);
    if (rc == 0)
        *rights_p = self;
    else
        pb_rights_destroy (&self);
    return rc;
}

//  --------------------------------------------------------------------------

int
pb_rights_load (const char *path, pb_rights_t **rights_p, char *error, size_t error_size)
{
    assert (path && rights_p && error);
    char reason [256] = "";
    int rc = 0;
    zfile_t *file = zfile_new (NULL, path);
    zchunk_t *chunk = NULL;
    if (!file || zfile_input (file)) {
        snprintf (reason, sizeof reason, "cannot be read: %s", strerror (errno));
        rc = PB_EIO;
    }
    else
    if (zfile_cursize (file) > PB_RIGHTS_FILE_MAX) {
        snprintf (reason, sizeof reason, "larger than %d bytes", PB_RIGHTS_FILE_MAX);
        rc = PB_EIO;
    }
    else {
        chunk = zfile_read (file, PB_RIGHTS_FILE_MAX + 1, 0);
        if (!chunk) {
            snprintf (reason, sizeof reason, "cannot be read");
            rc = PB_EIO;
        }
    }
    if (rc == 0)
        rc = pb_rights_parse ((const char *) zchunk_data (chunk), zchunk_size (chunk),
                              rights_p, reason, sizeof reason);
    if (rc)
        snprintf (error, error_size, "rights file %s: %s", path, reason);
    zchunk_destroy (&chunk);
    zfile_destroy (&file);
    return rc;
}

//  --------------------------------------------------------------------------

void
pb_rights_destroy (pb_rights_t **self_p)
{
    assert (self_p);
    pb_rights_t *self = *self_p;
    if (self) {
        zhashx_destroy (&self->keys);
        free (self);
        *self_p = NULL;
    }
}

size_t
pb_rights_size (pb_rights_t *self)
{
    assert (self);
    return zhashx_size (self->keys);
}

const pb_rights_key_t *
pb_rights_lookup (pb_rights_t *self, const char *public_key)
{
    assert (self);
    if (!public_key || strlen (public_key) != 40)
        return NULL;
    return (const pb_rights_key_t *) zhashx_lookup (self->keys, public_key);
}

const char *
pb_rights_key_name (const pb_rights_key_t *key)
{
    assert (key);
    return key->name;
}

//  --------------------------------------------------------------------------

static bool
s_list_has (const s_list_t *list, const char *value, size_t len)
{
    if (list->all)
        return true;
    for (size_t i = 0; i < list->count; i++)
        if (list->lens [i] == len && memcmp (list->items [i], value, len) == 0)
            return true;
    return false;
}

//  True if an item of 'list' is a prefix of 'value'
static bool
s_list_prefixes (const s_list_t *list, const char *value, size_t len)
{
    if (list->all)
        return true;
    for (size_t i = 0; i < list->count; i++)
        if (list->lens [i] <= len && memcmp (list->items [i], value, list->lens [i]) == 0)
            return true;
    return false;
}

bool
pb_rights_may_publish (const pb_rights_key_t *key, const char *src, size_t src_len,
                       const char *type, size_t type_len)
{
    assert (key && type);
    return (!src || s_list_has (&key->src, src, src_len))
        && s_list_prefixes (&key->publish, type, type_len);
}

bool
pb_rights_may_subscribe (const pb_rights_key_t *key, const char *prefix, size_t prefix_len)
{
    assert (key && (prefix || prefix_len == 0));
    if (prefix_len >= 13 && memcmp (prefix, "sys.heartbeat", 13) == 0)
        return true;
    return s_list_prefixes (&key->subscribe, prefix, prefix_len);
}

bool
pb_rights_may_replay (const pb_rights_key_t *key, const char *type, size_t type_len)
{
    assert (key && type);
    return s_list_prefixes (&key->replay, type, type_len);
}

bool
pb_rights_may_import (const pb_rights_key_t *key)
{
    assert (key);
    return key->src.all && key->publish.all;
}

bool
pb_rights_reads_kept (pb_rights_t *before, pb_rights_t *after)
{
    assert (before && after);
    for (pb_rights_key_t *key = (pb_rights_key_t *) zhashx_first (before->keys); key;
         key = (pb_rights_key_t *) zhashx_next (before->keys)) {
        pb_rights_key_t *now = (pb_rights_key_t *) zhashx_lookup (after->keys,
                                                                  key->public_key);
        if (!now || !streq (now->subscribe.text, key->subscribe.text))
            return false;
    }
    return true;
}

//  --------------------------------------------------------------------------

void
pb_rights_test (bool verbose)
{
    printf (" * pb_rights: ");
    zcert_t *nac = zcert_new (), *ops = zcert_new (), *other = zcert_new ();
    assert (nac && ops && other);
    char text [2048];
    snprintf (text, sizeof text,
              "#   rights\n"
              "nac\n"
              "    public_key = \"%s\"\n"
              "    src = \"nac\"\n"
              "    publish = \"notify.nac.\"\n"
              "    subscribe = \"*\"\n"
              "    replay = \"*\"\n"
              "ops-anna\n"
              "    public_key = \"%s\"\n"
              "    src = \"*\"\n"
              "    publish = \"ops. registry.  nac.\"\n"
              "    subscribe = \"notify.\"\n"
              "    replay = \"notify. nac.\"\n"
              "monitor\n"
              "    public_key = \"%s\"\n",
              zcert_public_txt (nac), zcert_public_txt (ops), zcert_public_txt (other));
    pb_rights_t *rights = NULL;
    char error [256] = "";
    int rc = pb_rights_parse (text, strlen (text), &rights, error, sizeof error);
    assert (rc == 0 && rights && pb_rights_size (rights) == 3);
    const pb_rights_key_t *key = pb_rights_lookup (rights, zcert_public_txt (nac));
    assert (key && streq (pb_rights_key_name (key), "nac"));
    assert (pb_rights_may_publish (key, "nac", 3, "notify.nac.adopted", 18));
    assert (!pb_rights_may_publish (key, "cpe", 3, "notify.nac.adopted", 18));
    assert (!pb_rights_may_publish (key, "nac", 3, "notify.cpe.vacant", 17));
    assert (!pb_rights_may_publish (key, "nac", 3, "notify.nac", 10));
    assert (pb_rights_may_subscribe (key, "", 0));
    assert (pb_rights_may_replay (key, "sys.tick", 8));
    key = pb_rights_lookup (rights, zcert_public_txt (ops));
    assert (key && pb_rights_may_publish (key, "anyone", 6, "registry.ally", 13));
    assert (pb_rights_may_publish (key, NULL, 0, "nac.position", 12));
    assert (!pb_rights_may_publish (key, NULL, 0, "sys.tick", 8));
    assert (!pb_rights_may_import (key));
    assert (pb_rights_may_subscribe (key, "notify.cpe.", 11));
    assert (!pb_rights_may_subscribe (key, "notify", 6));       //  Would get more
    assert (!pb_rights_may_subscribe (key, "", 0));
    assert (pb_rights_may_subscribe (key, "sys.heartbeat", 13));
    assert (!pb_rights_may_subscribe (key, "sys.", 4));
    assert (pb_rights_may_replay (key, "nac.meeting", 11));
    assert (!pb_rights_may_replay (key, "cpe.handover", 12));
    key = pb_rights_lookup (rights, zcert_public_txt (other));
    assert (key && !pb_rights_may_publish (key, "x", 1, "registry.ally", 13));
    assert (!pb_rights_may_subscribe (key, "notify.", 7));
    assert (!pb_rights_may_replay (key, "notify.nac.adopted", 18));
    assert (pb_rights_lookup (rights, "short") == NULL);
    assert (pb_rights_lookup (rights, NULL) == NULL);

    //  The same minus one key, and one with its subscriptions changed
    pb_rights_t *fewer = NULL;
    char *cut = strstr (text, "monitor\n");
    rc = pb_rights_parse (text, (size_t) (cut - text), &fewer, error, sizeof error);
    assert (rc == 0 && pb_rights_size (fewer) == 2);
    assert (pb_rights_reads_kept (fewer, rights));
    assert (!pb_rights_reads_kept (rights, fewer));
    pb_rights_t *same = NULL;
    rc = pb_rights_parse (text, strlen (text), &same, error, sizeof error);
    assert (rc == 0 && pb_rights_reads_kept (rights, same));
    pb_rights_destroy (&same);
    pb_rights_destroy (&fewer);

    //  Every malformed file is refused, naming what is wrong
    char bad [2048];
    const char *pk = zcert_public_txt (nac);
    struct { const char *format; const char *expect; } cases [] = {
        { "a\n    public_key = \"%s\"\n    publsh = \"x.\"\n", "unknown key" },
        { "a\n    public_key = \"%.39s\"\n", "not a Z85" },
        { "a\n    src = \"a\"\n#   %s\n", "missing" },
        { "a\n    public_key = \"%s\"\n    publish = \"x.\"\n", "src: missing" },
        { "a\n    public_key = \"%s\"\nb\n    public_key = \"%1$s\"\n", "same key" },
        { "a\n    public_key = \"%s\"\n    src = \"* a\"\n", "stand alone" },
        { "a\n    public_key = \"%s\"\n    src = \"a\"\n    src = \"b\"\n", "twice" },
        { "a b\n    public_key = \"%s\"\n", "" },
        { "a\n    public_key = \"%s\"\n        deeper = 1\n", "sections under" },
        { "\x01\x02\n%s", "" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        snprintf (bad, sizeof bad, cases [i].format, pk);
        pb_rights_t *refused = NULL;
        error [0] = 0;
        rc = pb_rights_parse (bad, strlen (bad), &refused, error, sizeof error);
        if (verbose)
            printf ("\n   case %zu: rc=%d %s", i, rc, error);
        assert (rc == PB_EINVAL && refused == NULL && *error);
        assert (strstr (error, cases [i].expect));
    }
    pb_rights_t *refused = NULL;
    rc = pb_rights_parse ("a\0b", 3, &refused, error, sizeof error);
    assert (rc == PB_EINVAL && !refused);
    rc = pb_rights_load ("/nonexistent/rights", &refused, error, sizeof error);
    assert (rc == PB_EIO && !refused && strstr (error, "/nonexistent/rights"));
    //  An empty file: nobody may connect
    rc = pb_rights_parse ("", 0, &refused, error, sizeof error);
    assert (rc == 0 && pb_rights_size (refused) == 0);
    pb_rights_destroy (&refused);

    pb_rights_destroy (&rights);
    pb_rights_destroy (&rights);
    zcert_destroy (&nac);
    zcert_destroy (&ops);
    zcert_destroy (&other);
    printf ("OK\n");
}
