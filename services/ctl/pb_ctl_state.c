/*  =========================================================================
    pb_ctl_state - pbctl state WORKER [KEY-PREFIX]: a worker's state keys

    Read-only (pb_ctl_store: MDB_RDONLY through pb_worker_dump), so it can
    look at a live worker's store or a copy without changing either. Values
    are the rules' MessagePack, printed as JSON (pb_ctl_json.h).
    =========================================================================
*/
#include "pb_ctl.h"
#include "pb_ctl_store.h"

static const char *s_help =
    "Usage: pbctl state [OPTIONS] WORKER [KEY-PREFIX]\n"
    "Print the state keys of a worker's store (read-only) whose key starts\n"
    "with KEY-PREFIX (all when absent), in key order, with their MessagePack\n"
    "values as JSON: 'KEY = VALUE' lines, or with --json {key, value} lines.\n"
    "WORKER is a name (its store is ./var/WORKER) or, with --dir, any name.\n"
    "Keys that are not printable are shown in hex; bin values as hex strings.\n"
    "Exit 1 when there is no readable store.\n"
    "Options:\n"
    "  --dir DIR        the store's directory (default ./var/WORKER)\n"
    PB_CTL_JOURNAL_OPTS_HELP;

typedef struct {
    const char *prefix;                 //  key prefix (borrowed)
    bool json;                          //  JSON lines
    size_t count;                       //  keys printed
} s_state_t;

static int
s_on_entry (const char *db, const char *key, const uint8_t *value, size_t size,
            void *arg)
{
    s_state_t *self = (s_state_t *) arg;
    if (!streq (db, "state") || strncmp (key, self->prefix, strlen (self->prefix)))
        return 0;
    char error [256];
    json_t *json = pb_ctl_json_from_bytes (value, size, error, sizeof error);
    if (!json)
        json = json_pack ("{s:s}", "unreadable", error);
    if (self->json) {
        json_t *line = json_pack ("{s:s, s:O}", "key", key, "value", json);
        pb_ctl_json_print (stdout, line);
        json_decref (line);
    }
    else {
        char *text = json_dumps (json, JSON_COMPACT | JSON_ENCODE_ANY);
        printf ("%s = %s\n", key, text? text: "?");
        free (text);
    }
    json_decref (json);
    self->count++;
    return 0;
}

int
pb_ctl_state (int argc, char *argv [])
{
    s_state_t self = { .prefix = "" };
    pb_ctl_journal_opts_t opts;         //  endpoints accepted, not used
    pb_ctl_journal_opts_init (&opts);
    const char *worker = NULL, *dir = NULL;
    bool prefix_given = false;
    int i = 1;
    while (i < argc) {
        int rc = pb_ctl_journal_opts_parse (&opts, argc, argv, &i);
        if (rc == PB_CTL_EXIT_USAGE)
            return rc;
        if (rc == 1)
            continue;
        if (streq (argv [i], "--dir") && i + 1 < argc)
            dir = argv [++i];
        else
        if (argv [i][0] != '-' && !worker)
            worker = argv [i];
        else
        if (argv [i][0] != '-' && !prefix_given) {
            self.prefix = argv [i];
            prefix_given = true;
        }
        else {
            fprintf (stderr, "pbctl state: unexpected '%s' (see --help)\n", argv [i]);
            return PB_CTL_EXIT_USAGE;
        }
        i++;
    }
    self.json = opts.json;
    if (opts.help) {
        fputs (s_help, stdout);
        return PB_CTL_EXIT_OK;
    }
    if (!worker || strchr (worker, '/') || strlen (worker) > 64) {
        fprintf (stderr, "pbctl state: WORKER is a name such as nac (see --help)\n");
        return PB_CTL_EXIT_USAGE;
    }
    char path [PATH_MAX];
    snprintf (path, sizeof path, "./var/%s", worker);
    if (pb_ctl_store_read (dir? dir: path, s_on_entry, &self)) {
        fprintf (stderr, "pbctl state: no readable store at %s\n", dir? dir: path);
        return PB_CTL_EXIT_REFUSED;
    }
    fflush (stdout);
    return PB_CTL_EXIT_OK;
}
