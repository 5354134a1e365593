/*  =========================================================================
    pb_config - one table per service: ZPL file, command line, defaults

    The loader is the only code that parses configuration text; services
    see a plain struct of values. Every error names the key and where the
    value came from, so an operator can fix it without reading code.
    =========================================================================
*/
#include "pb_config.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

//  Where a value came from, for error messages
typedef struct {
    const char *source;         //  "default", "command line", a file name (borrowed)
} s_origin_t;

static const pb_config_entry_t *
s_find (const pb_config_entry_t *table, const char *name, size_t name_len)
{
    //  By full path first ("journal/batch_max")
    for (const pb_config_entry_t *e = table; e->path; e++)
        if (strlen (e->path) == name_len && memcmp (e->path, name, name_len) == 0)
            return e;
    //  Then by the key alone, dashes for underscores ("batch-max")
    for (const pb_config_entry_t *e = table; e->path; e++) {
        const char *key = strrchr (e->path, '/');
        key = key? key + 1: e->path;
        if (strlen (key) != name_len)
            continue;
        size_t i = 0;
        for (; i < name_len; i++) {
            char c = name [i] == '-'? '_': name [i];
            if (c != key [i])
                break;
        }
        if (i == name_len)
            return e;
    }
    return NULL;
}

//  Parse 'text' into the field of 'entry'. Returns 0 or PB_CONFIG_BAD_VALUE
//  after printing what was wrong and where.
static int
s_set (const pb_config_entry_t *entry, void *cfg, const char *text,
       const char *source)
{
    char *field = (char *) cfg + entry->offset;
    if (entry->type == PB_CONFIG_STR) {
        if (strlen (text) >= PB_CONFIG_STR_MAX) {
            fprintf (stderr, "config: %s (%s): value longer than %d bytes\n",
                     entry->path, source, PB_CONFIG_STR_MAX - 1);
            return PB_CONFIG_BAD_VALUE;
        }
        strcpy (field, text);
        return 0;
    }
    if (entry->type == PB_CONFIG_BOOL) {
        bool value;
        if (streq (text, "true") || streq (text, "1") || streq (text, "yes") || streq (text, "on"))
            value = true;
        else
        if (streq (text, "false") || streq (text, "0") || streq (text, "no") || streq (text, "off"))
            value = false;
        else {
            fprintf (stderr, "config: %s (%s): '%s' is not a boolean "
                     "(true/false)\n", entry->path, source, text);
            return PB_CONFIG_BAD_VALUE;
        }
        memcpy (field, &value, sizeof value);
        return 0;
    }
    errno = 0;
    char *end = NULL;
    long long value = strtoll (text, &end, 10);
    //  Allow K/M/G suffixes for sizes (binary multiples)
    long long unit = 1;
    if (end && (*end == 'K' || *end == 'k'))
        unit = 1024LL;
    else
    if (end && (*end == 'M' || *end == 'm'))
        unit = 1024LL * 1024;
    else
    if (end && (*end == 'G' || *end == 'g'))
        unit = 1024LL * 1024 * 1024;
    if (unit > 1)
        end++;
    if (errno || end == text || !end || *end != 0
    ||  value > entry->max / unit || value < entry->min / unit
    ||  value * unit < entry->min || value * unit > entry->max) {
        fprintf (stderr, "config: %s (%s): '%s' is not an integer in %lld..%lld\n",
                 entry->path, source, text,
                 (long long) entry->min, (long long) entry->max);
        return PB_CONFIG_BAD_VALUE;
    }
    int64_t stored = value * unit;
    memcpy (field, &stored, sizeof stored);
    return 0;
}

#define S_FILE_MAX (1024 * 1024)        //  a configuration file is small

//  Parse a ZPL file. Not zconfig_load: czmq 4.2.1's leaks its zfile when
//  the text does not parse (found by tests/fuzz/pb_fuzz_config; the input
//  is corpus/config/regress-zconfig-leak). Returns NULL if the file cannot
//  be read, is over S_FILE_MAX, or does not parse.
static zconfig_t *
s_parse_file (const char *filename)
{
    FILE *file = fopen (filename, "rb");
    if (!file)
        return NULL;
    zconfig_t *root = NULL;
    zchunk_t *chunk = zchunk_read (file, S_FILE_MAX + 1);
    if (chunk && !ferror (file) && zchunk_size (chunk) <= S_FILE_MAX)
        root = zconfig_chunk_load (chunk);
    zchunk_destroy (&chunk);
    fclose (file);
    return root;
}

//  A key in this service's own section that the table does not know is a
//  typo or a key of another version: refused, so that a setting the
//  operator wrote is never silently ignored. Other sections belong to the
//  other services of the same file.
static int
s_check_section (const pb_config_entry_t *table, zconfig_t *root, const char *filename)
{
    const char *slash = strchr (table->path, '/');
    if (!slash || (size_t) (slash - table->path) >= 64)
        return 0;
    char section [64];
    memcpy (section, table->path, slash - table->path);
    section [slash - table->path] = 0;
    zconfig_t *sec = zconfig_locate (root, section);
    for (zconfig_t *item = sec? zconfig_child (sec): NULL; item; item = zconfig_next (item)) {
        char path [160];
        snprintf (path, sizeof path, "%s/%s", section, zconfig_name (item));
        bool known = false;
        for (const pb_config_entry_t *e = table; e->path && !known; e++)
            known = streq (e->path, path);
        if (!known) {
            fprintf (stderr, "config: %s (%s): unknown key (see --help)\n", path, filename);
            return PB_CONFIG_BAD_KEY;
        }
    }
    return 0;
}

//  Apply every key of the table found in a ZPL file
static int
s_load_file (const pb_config_entry_t *table, void *cfg, const char *filename)
{
    zconfig_t *root = s_parse_file (filename);
    if (!root) {
        fprintf (stderr, "config: cannot read or parse '%s'\n", filename);
        return PB_CONFIG_BAD_FILE;
    }
    int rc = s_check_section (table, root, filename);
    for (const pb_config_entry_t *e = table; e->path && rc == 0; e++) {
        zconfig_t *item = zconfig_locate (root, e->path);
        if (item && zconfig_value (item))
            rc = s_set (e, cfg, zconfig_value (item), filename);
    }
    zconfig_destroy (&root);
    return rc;
}

static void
s_print_help (const pb_config_entry_t *table)
{
    printf ("Options (each also a key of the --config FILE in ZPL):\n");
    printf ("  --config FILE        read the configuration from FILE\n");
    printf ("  --check-config       load and check it all, print the result, exit\n");
    for (const pb_config_entry_t *e = table; e->path; e++)
        printf ("  --%-24s %s (default %s)\n", e->path, e->help,
                *e->default_value? e->default_value: "\"\"");
}

//  --------------------------------------------------------------------------

int
pb_config_load (const pb_config_entry_t *table, void *cfg,
                int argc, char *argv [],
                int *rest, int rest_max, int *rest_count)
{
    assert (table);
    assert (cfg);
    int rc = 0;
    if (rest_count)
        *rest_count = 0;
    for (const pb_config_entry_t *e = table; e->path && rc == 0; e++)
        rc = s_set (e, cfg, e->default_value, "default");
    assert (rc == 0);                   //  A bad default is a programmer error

    //  The file first, wherever --config stands, so the command line wins
    bool check = false;
    for (int i = 1; i < argc && rc == 0; i++) {
        if (streq (argv [i], "--check-config")) {
            check = true;
            continue;
        }
        if (streq (argv [i], "--help") || streq (argv [i], "-h")) {
            s_print_help (table);
            return PB_CONFIG_HELP;
        }
        if (streq (argv [i], "--help-markdown")) {
            pb_config_print_reference (table, stdout);
            return PB_CONFIG_HELP;
        }
        if (streq (argv [i], "--config")) {
            if (i + 1 >= argc) {
                fprintf (stderr, "config: --config needs a file name\n");
                return PB_CONFIG_BAD_VALUE;
            }
            rc = s_load_file (table, cfg, argv [++i]);
        }
        else
        if (strncmp (argv [i], "--config=", 9) == 0)
            rc = s_load_file (table, cfg, argv [i] + 9);
    }
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *arg = argv [i];
        if (streq (arg, "--config")) {
            i++;
            continue;
        }
        if (strncmp (arg, "--config=", 9) == 0 || streq (arg, "--check-config"))
            continue;
        if (strncmp (arg, "--", 2) != 0) {
            if (rest && rest_count && *rest_count < rest_max)
                rest [(*rest_count)++] = i;
            else {
                fprintf (stderr, "config: unexpected argument '%s'\n", arg);
                rc = PB_CONFIG_BAD_KEY;
            }
            continue;
        }
        const char *name = arg + 2;
        const char *equals = strchr (name, '=');
        size_t name_len = equals? (size_t) (equals - name): strlen (name);
        const pb_config_entry_t *entry = s_find (table, name, name_len);
        if (!entry) {
            fprintf (stderr, "config: unknown option '--%.*s' (see --help)\n",
                     (int) name_len, name);
            rc = PB_CONFIG_BAD_KEY;
            break;
        }
        const char *value = equals? equals + 1: NULL;
        if (!value) {
            if (entry->type == PB_CONFIG_BOOL
            &&  (i + 1 >= argc || strncmp (argv [i + 1], "--", 2) == 0))
                value = "true";         //  A bare boolean flag
            else
            if (i + 1 < argc)
                value = argv [++i];
            else {
                fprintf (stderr, "config: --%s needs a value\n", entry->path);
                rc = PB_CONFIG_BAD_VALUE;
                break;
            }
        }
        rc = s_set (entry, cfg, value, "command line");
    }
    if (rc == 0 && check) {
        //  Everything parsed: say so with the effective values (the
        //  caller's own cross-key checks have not run yet: see the
        //  service's --check-config)
        for (const pb_config_entry_t *e = table; e->path; e++) {
            const char *field = (const char *) cfg + e->offset;
            int64_t number;
            bool flag;
            if (e->type == PB_CONFIG_STR)
                printf ("%s = \"%s\"\n", e->path, field);
            else
            if (e->type == PB_CONFIG_BOOL) {
                memcpy (&flag, field, sizeof flag);
                printf ("%s = %s\n", e->path, flag? "true": "false");
            }
            else {
                memcpy (&number, field, sizeof number);
                printf ("%s = %" PRId64 "\n", e->path, number);
            }
        }
        return PB_CONFIG_CHECKED;
    }
    return rc;
}

//  --------------------------------------------------------------------------

void
pb_config_log (const pb_config_entry_t *table, const void *cfg)
{
    for (const pb_config_entry_t *e = table; e->path; e++) {
        const char *field = (const char *) cfg + e->offset;
        if (e->type == PB_CONFIG_STR)
            zsys_notice ("config: %s=%s", e->path, field);
        else
        if (e->type == PB_CONFIG_BOOL) {
            bool value;
            memcpy (&value, field, sizeof value);
            zsys_notice ("config: %s=%s", e->path, value? "true": "false");
        }
        else {
            int64_t value;
            memcpy (&value, field, sizeof value);
            zsys_notice ("config: %s=%" PRId64, e->path, value);
        }
    }
}

//  --------------------------------------------------------------------------

void
pb_config_print_reference (const pb_config_entry_t *table, FILE *file)
{
    fprintf (file, "| key | type | default | range | meaning |\n");
    fprintf (file, "|---|---|---|---|---|\n");
    for (const pb_config_entry_t *e = table; e->path; e++) {
        const char *type = e->type == PB_CONFIG_STR? "string"
                         : e->type == PB_CONFIG_BOOL? "bool": "integer";
        char range [64] = "";
        if (e->type == PB_CONFIG_INT)
            snprintf (range, sizeof range, "%" PRId64 "..%" PRId64, e->min, e->max);
        fprintf (file, "| `%s` | %s | `%s` | %s | %s |\n",
                 e->path, type, e->default_value, range, e->help);
    }
}

//  --------------------------------------------------------------------------

typedef struct {
    char name [PB_CONFIG_STR_MAX];      //  a string
    int64_t count;                      //  an integer
    bool flag;                          //  a boolean
} s_test_cfg_t;

static const pb_config_entry_t s_test_table [] = {
    { "test/name", PB_CONFIG_STR, "alpha", 0, 0, offsetof (s_test_cfg_t, name), "a name" },
    { "test/batch_max", PB_CONFIG_INT, "10", 1, 100000, offsetof (s_test_cfg_t, count), "a count" },
    { "test/flag", PB_CONFIG_BOOL, "false", 0, 0, offsetof (s_test_cfg_t, flag), "a flag" },
    { NULL }
};

void
pb_config_test (bool verbose)
{
    printf (" * pb_config: ");
    s_test_cfg_t cfg;
    //  Defaults
    char *args0 [] = { "prog", NULL };
    int rc = pb_config_load (s_test_table, &cfg, 1, args0, NULL, 0, NULL);
    assert (rc == 0);
    assert (streq (cfg.name, "alpha") && cfg.count == 10 && !cfg.flag);

    //  A ZPL file, then the command line over it, in both spellings
    char dir [] = "/tmp/pb_config_test.XXXXXX";
    assert (mkdtemp (dir));
    char path [256];
    snprintf (path, sizeof path, "%s/test.cfg", dir);
    FILE *file = fopen (path, "w");
    assert (file);
    fprintf (file, "test\n    name = beta\n    batch_max = 20\n");
    fclose (file);
    char *args1 [] = { "prog", "--config", path, "--batch-max", "30", "--test/flag", NULL };
    rc = pb_config_load (s_test_table, &cfg, 6, args1, NULL, 0, NULL);
    assert (rc == 0);
    assert (streq (cfg.name, "beta") && cfg.count == 30 && cfg.flag);
    char *args2 [] = { "prog", "--test/batch_max=2K", "extra", NULL };
    int rest [4], rest_count = 0;
    rc = pb_config_load (s_test_table, &cfg, 3, args2, rest, 4, &rest_count);
    assert (rc == 0 && cfg.count == 2048 && rest_count == 1 && rest [0] == 2);

    //  Every class of bad input: a clear refusal, never a crash
    char *bad_key [] = { "prog", "--nope", "1", NULL };
    assert (pb_config_load (s_test_table, &cfg, 3, bad_key, NULL, 0, NULL) == PB_CONFIG_BAD_KEY);
    char *out_of_range [] = { "prog", "--batch-max", "0", NULL };
    assert (pb_config_load (s_test_table, &cfg, 3, out_of_range, NULL, 0, NULL) == PB_CONFIG_BAD_VALUE);
    char *not_int [] = { "prog", "--batch-max", "12x", NULL };
    assert (pb_config_load (s_test_table, &cfg, 3, not_int, NULL, 0, NULL) == PB_CONFIG_BAD_VALUE);
    char *huge [] = { "prog", "--batch-max", "99999999999999999999G", NULL };
    assert (pb_config_load (s_test_table, &cfg, 3, huge, NULL, 0, NULL) == PB_CONFIG_BAD_VALUE);
    char *bad_bool [] = { "prog", "--flag", "maybe", NULL };
    assert (pb_config_load (s_test_table, &cfg, 3, bad_bool, NULL, 0, NULL) == PB_CONFIG_BAD_VALUE);
    char *missing [] = { "prog", "--name", NULL };
    assert (pb_config_load (s_test_table, &cfg, 2, missing, NULL, 0, NULL) == PB_CONFIG_BAD_VALUE);
    char *no_file [] = { "prog", "--config", "/nonexistent/pb.cfg", NULL };
    assert (pb_config_load (s_test_table, &cfg, 3, no_file, NULL, 0, NULL) == PB_CONFIG_BAD_FILE);
    char *stray [] = { "prog", "stray", NULL };
    assert (pb_config_load (s_test_table, &cfg, 2, stray, NULL, 0, NULL) == PB_CONFIG_BAD_KEY);
    char long_value [PB_CONFIG_STR_MAX + 8];
    memset (long_value, 'x', sizeof long_value - 1);
    long_value [sizeof long_value - 1] = 0;
    char *too_long [] = { "prog", "--name", long_value, NULL };
    assert (pb_config_load (s_test_table, &cfg, 3, too_long, NULL, 0, NULL) == PB_CONFIG_BAD_VALUE);

    //  A typo in our own section is refused; another service's section
    //  in the same file is not ours to judge
    file = fopen (path, "w");
    assert (file);
    fprintf (file, "other\n    anything = 1\ntest\n    name = gamma\n");
    fclose (file);
    char *shared [] = { "prog", "--config", path, NULL };
    assert (pb_config_load (s_test_table, &cfg, 3, shared, NULL, 0, NULL) == 0);
    assert (streq (cfg.name, "gamma"));
    file = fopen (path, "w");
    assert (file);
    fprintf (file, "test\n    nmae = gamma\n");
    fclose (file);
    assert (pb_config_load (s_test_table, &cfg, 3, shared, NULL, 0, NULL) == PB_CONFIG_BAD_KEY);
    //  --check-config: everything loaded, then PB_CONFIG_CHECKED; an error
    //  is still the error
    char *check [] = { "prog", "--check-config", "--batch-max", "7", NULL };
    assert (pb_config_load (s_test_table, &cfg, 4, check, NULL, 0, NULL) == PB_CONFIG_CHECKED);
    assert (cfg.count == 7);
    char *check_bad [] = { "prog", "--check-config", "--batch-max", "0", NULL };
    assert (pb_config_load (s_test_table, &cfg, 4, check_bad, NULL, 0, NULL) == PB_CONFIG_BAD_VALUE);

    if (verbose)
        pb_config_print_reference (s_test_table, stdout);
    remove (path);
    rmdir (dir);
    printf ("OK\n");
}
