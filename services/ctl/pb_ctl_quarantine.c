/*  =========================================================================
    pb_ctl_quarantine - pbctl quarantine list | show SEQ | redrive SEQ

    list and show read the workers' stores, read-only (pb_ctl_store): the
    quarantine db holds, under the seq (8 bytes big-endian), {type, reason,
    event} of an event the rules refused, and under "nak/<id>" {type,
    reason} of a notification the journal refused. redrive logs
    ops.redrive {worker, seq, by} on ingest (src ops): the log is the
    record, so the redrive is logged before anything is applied, and that
    worker alone applies the quarantined event when it reads the redrive,
    as caused by it (EVENTS.md, "Every worker"). With --wait, pbctl then
    watches the store until the worker has applied the redrive and says
    whether the event was applied or failed again.
    =========================================================================
*/
#include "pb_ctl.h"
#include "pb_ctl_ops.h"
#include "pb_ctl_store.h"

static const char *s_help =
    "Usage: pbctl quarantine [OPTIONS] list\n"
    "       pbctl quarantine [OPTIONS] show SEQ --worker W\n"
    "       pbctl quarantine [OPTIONS] redrive SEQ --worker W [--wait SECS]\n"
    "list: every quarantined event of the workers' stores (read-only): seq,\n"
    "type and reason, and the notifications the journal refused (nak/<id>).\n"
    "show: one quarantined event, its record and the event as logged.\n"
    "redrive: log ops.redrive {worker, seq, by} (src ops): worker W alone\n"
    "applies the quarantined event SEQ when it reads it, as caused by the\n"
    "redrive; refused (exit 1) if W's store does not hold SEQ quarantined.\n"
    "--wait: until W has applied the redrive; exit 1 if SEQ failed again.\n"
    "Options:\n"
    "  --worker W       nac, cpe or activity (list: default all three)\n"
    "  --dir DIR        W's store (default DATA-DIR/W)\n"
    "  --data-dir DIR   the stores are DIR/nac, DIR/cpe, DIR/activity\n"
    "                   (default ./var, as pbctl up lays them out)\n"
    "  --wait SECS      redrive: wait for the outcome, at most SECS\n"
    PB_CTL_JOURNAL_OPTS_HELP;

typedef struct {
    const char *worker;                 //  whose store (borrowed)
    bool json;                          //  JSON lines
    uint64_t want;                      //  show/redrive: this seq, else 0
    json_t *record;                     //  show: the record found (owned)
    size_t count;                       //  records seen
} s_list_t;

static uint64_t
s_hex_seq (const char *key)
{
    if (strlen (key) != 16 || strspn (key, "0123456789abcdef") != 16)
        return 0;
    return strtoull (key, NULL, 16);
}

static int
s_on_entry (const char *db, const char *key, const uint8_t *value, size_t size,
            void *arg)
{
    s_list_t *self = (s_list_t *) arg;
    if (!streq (db, "quarantine"))
        return 0;
    uint64_t seq = s_hex_seq (key);
    if (self->want && seq != self->want)
        return 0;
    json_t *record = pb_ctl_json_from_bytes (value, size, NULL, 0);
    if (!json_is_object (record)) {
        json_decref (record);
        record = json_object ();
    }
    json_object_set_new (record, "worker", json_string (self->worker));
    if (seq)
        json_object_set_new (record, "seq", json_integer ((json_int_t) seq));
    else
        json_object_set_new (record, "nak", json_string (strncmp (key, "nak/", 4)? key: key + 4));
    self->count++;
    if (self->want) {
        json_decref (self->record);
        self->record = record;
        return 0;
    }
    json_object_del (record, "event");
    if (self->json)
        pb_ctl_json_print (stdout, record);
    else {
        const char *type = json_string_value (json_object_get (record, "type"));
        const char *reason = json_string_value (json_object_get (record, "reason"));
        if (seq)
            printf ("%-8s seq %-8" PRIu64 " %s: %s\n", self->worker, seq, type? type: "?",
                    reason? reason: "");
        else
            printf ("%-8s refused notification %s (%s): %s\n", self->worker,
                    json_string_value (json_object_get (record, "nak")),
                    type? type: "?", reason? reason: "");
    }
    json_decref (record);
    return 0;
}

//  The worker's quarantine record of 'seq', or NULL; -1 in *rc_p if the
//  store cannot be read
static json_t *
s_find (const char *worker, const char *dir, uint64_t seq, int *rc_p)
{
    s_list_t list = { .worker = worker, .want = seq };
    *rc_p = pb_ctl_store_read (dir, s_on_entry, &list);
    return list.record;
}

static uint64_t
s_applied (const char *dir)
{
    uint64_t applied = 0;
    int64_t now = 0;
    pb_ctl_store_progress (dir, &applied, &now);
    return applied;
}

int
pb_ctl_quarantine (int argc, char *argv [])
{
    pb_ctl_journal_opts_t opts;
    pb_ctl_journal_opts_init (&opts);
    const char *action = NULL, *worker = NULL, *dir_given = NULL, *data_dir = "./var";
    bool data_dir_given = false;
    uint64_t seq = 0, wait = 0;
    int i = 1;
    while (i < argc) {
        int rc = pb_ctl_journal_opts_parse (&opts, argc, argv, &i);
        if (rc == PB_CTL_EXIT_USAGE)
            return rc;
        if (rc == 1)
            continue;
        const char *arg = argv [i];
        const char *value = i + 1 < argc? argv [i + 1]: NULL;
        if (streq (arg, "--worker") && value)
            worker = argv [++i];
        else
        if (streq (arg, "--dir") && value)
            dir_given = argv [++i];
        else
        if (streq (arg, "--data-dir") && value) {
            data_dir = argv [++i];
            data_dir_given = true;
        }
        else
        if (streq (arg, "--wait") && value && pb_ctl_journal_parse_u64 (value, &wait)
        &&  wait >= 1 && wait <= 86400)
            i++;
        else
        if (!action && (streq (arg, "list") || streq (arg, "show") || streq (arg, "redrive")))
            action = arg;
        else
        if (action && !streq (action, "list") && !seq
        &&  pb_ctl_journal_parse_u64 (arg, &seq) && seq >= 1)
            ;
        else {
            fprintf (stderr, "pbctl quarantine: bad or unexpected '%s' (see --help)\n", arg);
            return PB_CTL_EXIT_USAGE;
        }
        i++;
    }
    if (opts.help) {
        fputs (s_help, stdout);
        return PB_CTL_EXIT_OK;
    }
    if (!action || (!streq (action, "list") && (!seq || !worker))
    ||  (worker && !pb_ctl_ops_is_worker (worker)) || (dir_given && !worker)
    ||  (dir_given && data_dir_given)
    ||  (wait && !streq (action, "redrive"))) {
        fprintf (stderr, "pbctl quarantine: want list, or show|redrive SEQ --worker "
                 "nac|cpe|activity (see --help)\n");
        return PB_CTL_EXIT_USAGE;
    }
    char dir [PATH_MAX];
    if (worker)
        snprintf (dir, sizeof dir, "%s", dir_given? dir_given: "");
    if (worker && !dir_given)
        snprintf (dir, sizeof dir, "%.*s/%s", PATH_MAX - 16, data_dir, worker);

    if (streq (action, "list")) {
        const char *all [] = { "nac", "cpe", "activity" };
        int rc = PB_CTL_EXIT_OK;
        size_t total = 0, stores = 0;
        for (int w = 0; w < 3; w++) {
            if (worker && !streq (worker, all [w]))
                continue;
            char path [PATH_MAX];
            if (worker)
                snprintf (path, sizeof path, "%s", dir);
            else
                snprintf (path, sizeof path, "%.*s/%s", PATH_MAX - 16, data_dir, all [w]);
            s_list_t list = { .worker = all [w], .json = opts.json };
            if (pb_ctl_store_read (path, s_on_entry, &list) == 0)
                stores++;
            else
            if (worker)
                rc = PB_CTL_EXIT_REFUSED;
            total += list.count;
        }
        if (!opts.json)
            printf ("%zu quarantined in %zu stores\n", total, stores);
        return rc;
    }

    int rc = 0;
    json_t *record = s_find (worker, dir, seq, &rc);
    if (rc) {
        fprintf (stderr, "pbctl quarantine: no readable store of %s in %s (--dir)\n",
                 worker, dir);
        return PB_CTL_EXIT_REFUSED;
    }
    if (!record) {
        fprintf (stderr, "pbctl quarantine: %s has not quarantined seq %" PRIu64 "%s\n",
                 worker, seq, streq (action, "redrive")? " (a redrive would change nothing)": "");
        return PB_CTL_EXIT_REFUSED;
    }
    if (streq (action, "show")) {
        //  The kept event, as JSON
        const char *hex = json_string_value (json_object_get (record, "event"));
        if (hex) {
            size_t len = strlen (hex);
            uint8_t *bytes = (uint8_t *) zmalloc (len / 2 + 1);
            for (size_t k = 0; k + 1 < len; k += 2) {
                char pair [3] = { hex [k], hex [k + 1], 0 };
                bytes [k / 2] = (uint8_t) strtoul (pair, NULL, 16);
            }
            json_t *event = pb_ctl_json_from_bytes (bytes, len / 2, NULL, 0);
            free (bytes);
            if (event)
                json_object_set_new (record, "event", event);
        }
        if (opts.json)
            pb_ctl_json_print (stdout, record);
        else {
            char *text = json_dumps (json_object_get (record, "event"), JSON_COMPACT);
            printf ("%s seq %" PRIu64 " %s: %s\n  event: %s\n", worker, seq,
                    json_string_value (json_object_get (record, "type")),
                    json_string_value (json_object_get (record, "reason")),
                    text? text: "(not kept)");
            free (text);
        }
        json_decref (record);
        return PB_CTL_EXIT_OK;
    }

    //  redrive: logged first; the worker applies it from the log
    json_decref (record);
    json_t *data = json_pack ("{s:s, s:I}", "worker", worker, "seq", (json_int_t) seq);
    uint64_t logged = 0;
    char error [300];
    rc = pb_ctl_ops_log (&opts, "ops.redrive", data, &logged, error, sizeof error);
    json_decref (data);
    if (rc) {
        fprintf (stderr, "pbctl quarantine: redrive not logged: %s\n", error);
        return rc;
    }
    const char *outcome = "logged";
    if (wait) {
        int64_t deadline = zclock_mono () + (int64_t) wait * 1000;
        while (s_applied (dir) < logged && zclock_mono () < deadline && !zsys_interrupted)
            zclock_sleep (50);
        if (s_applied (dir) < logged) {
            outcome = "pending";
            rc = PB_CTL_EXIT_UNREACHABLE;
        }
        else {
            int src = 0;
            json_t *still = s_find (worker, dir, seq, &src);
            outcome = still? "failed again": "applied";
            if (still)
                rc = PB_CTL_EXIT_REFUSED;
            json_decref (still);
        }
    }
    if (opts.json) {
        json_t *out = json_pack ("{s:s, s:I, s:I, s:s}", "worker", worker,
                                 "seq", (json_int_t) seq, "logged", (json_int_t) logged,
                                 "outcome", outcome);
        pb_ctl_json_print (stdout, out);
        json_decref (out);
    }
    else
        printf ("ops.redrive of %s seq %" PRIu64 " logged at seq %" PRIu64 ": %s\n",
                worker, seq, logged, outcome);
    return rc;
}
