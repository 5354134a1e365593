/*  =========================================================================
    pb_ctl_status - pbctl status: the journal's head, log time and clock,
    and each worker's applied_seq and lag

    A worker's progress is read from its store, read-only (pb_ctl_store),
    so status works whether the worker runs or not. Lag is head minus
    applied_seq, in events of the log (every event, not only those the
    worker cares about: a worker applies them all).
    =========================================================================
*/
#include "pb_ctl.h"
#include "pb_ctl_store.h"

#define S_WORKERS_MAX 16

typedef struct {
    char name [32];                     //  nac, cpe, activity, ...
    char dir [PATH_MAX];                //  its data dir
} s_worker_t;

static const char *s_help =
    "Usage: pbctl status [OPTIONS]\n"
    "Print the journal's head (last seq), log time and clock and, for each\n"
    "worker store, its applied_seq and its lag (head - applied_seq, in\n"
    "events). Stores are read read-only, whether the worker runs or not.\n"
    "Without --worker, ./var/nac, ./var/cpe and ./var/activity are read when\n"
    "they hold a store. --json: one object per round {head, now, clock,\n"
    "workers: [{name, dir, applied_seq, now, lag}]}.\n"
    "Options:\n"
    "  --worker NAME=DIR  a worker store to read (repeatable)\n"
    "  --watch SECS       print again every SECS seconds until interrupted\n"
    PB_CTL_JOURNAL_OPTS_HELP;

static int
s_round (pb_ctl_journal_opts_t *opts, zsock_t *replay, s_worker_t *workers,
         size_t count)
{
    pb_wire_status_t status;
    char error [256] = "";
    int rc = pb_ctl_journal_status (replay, opts->timeout_ms, &status,
                                    error, sizeof error);
    if (rc) {
        fprintf (stderr, "pbctl status: %s (%s)\n", error, opts->replay);
        return rc;
    }
    json_t *report = json_pack ("{s:I, s:I, s:s}", "head", (json_int_t) status.head,
                                "now", (json_int_t) status.now,
                                "clock", status.manual? "manual": "auto");
    json_t *list = json_array ();
    char iso [32];
    if (!opts->json)
        printf ("journal  head %" PRIu64 "  log time %" PRId64 " (%s)  clock %s\n",
                status.head, status.now, pb_ctl_journal_iso (status.now, iso, sizeof iso),
                status.manual? "manual": "auto");
    for (size_t i = 0; i < count; i++) {
        uint64_t applied = 0;
        int64_t now = 0;
        json_t *item = json_pack ("{s:s, s:s}", "name", workers [i].name,
                                  "dir", workers [i].dir);
        if (pb_ctl_store_progress (workers [i].dir, &applied, &now) == 0) {
            int64_t lag = (int64_t) (status.head - applied);
            json_object_set_new (item, "applied_seq", json_integer ((json_int_t) applied));
            json_object_set_new (item, "now", json_integer (now));
            json_object_set_new (item, "lag", json_integer (lag));
            if (!opts->json)
                printf ("%-8s applied_seq %" PRIu64 "  lag %" PRId64 "  (%s)\n",
                        workers [i].name, applied, lag, workers [i].dir);
        }
        else {
            json_object_set_new (item, "error", json_string ("no readable store"));
            if (!opts->json)
                printf ("%-8s no readable store at %s\n", workers [i].name, workers [i].dir);
            rc = PB_CTL_EXIT_REFUSED;
        }
        json_array_append_new (list, item);
    }
    json_object_set_new (report, "workers", list);
    if (opts->json)
        pb_ctl_json_print (stdout, report);
    fflush (stdout);
    json_decref (report);
    return rc;
}

static int
s_add_worker (s_worker_t *workers, size_t *count, const char *spec)
{
    const char *eq = strchr (spec, '=');
    if (!eq || eq == spec || !eq [1] || (size_t) (eq - spec) >= sizeof workers->name
    ||  strlen (eq + 1) >= sizeof workers->dir || *count >= S_WORKERS_MAX) {
        fprintf (stderr, "pbctl status: --worker wants NAME=DIR (at most %d)\n",
                 S_WORKERS_MAX);
        return PB_CTL_EXIT_USAGE;
    }
    s_worker_t *w = &workers [(*count)++];
    memcpy (w->name, spec, eq - spec);
    w->name [eq - spec] = 0;
    strcpy (w->dir, eq + 1);
    return 0;
}

int
pb_ctl_status (int argc, char *argv [])
{
    pb_ctl_journal_opts_t opts;
    pb_ctl_journal_opts_init (&opts);
    s_worker_t workers [S_WORKERS_MAX];
    size_t count = 0;
    uint64_t watch = 0;
    int i = 1;
    while (i < argc) {
        int rc = pb_ctl_journal_opts_parse (&opts, argc, argv, &i);
        if (rc == PB_CTL_EXIT_USAGE)
            return rc;
        if (rc == 1)
            continue;
        if (streq (argv [i], "--worker") && i + 1 < argc) {
            if (s_add_worker (workers, &count, argv [++i]))
                return PB_CTL_EXIT_USAGE;
        }
        else
        if (streq (argv [i], "--watch") && i + 1 < argc) {
            if (!pb_ctl_journal_parse_u64 (argv [++i], &watch) || watch < 1 || watch > 86400) {
                fprintf (stderr, "pbctl status: --watch wants seconds 1..86400\n");
                return PB_CTL_EXIT_USAGE;
            }
        }
        else {
            fprintf (stderr, "pbctl status: unexpected '%s' (see --help)\n", argv [i]);
            return PB_CTL_EXIT_USAGE;
        }
        i++;
    }
    if (opts.help) {
        fputs (s_help, stdout);
        return PB_CTL_EXIT_OK;
    }
    if (count == 0) {
        const char *names [] = { "nac", "cpe", "activity" };
        for (size_t n = 0; n < 3; n++) {
            char path [64];
            snprintf (path, sizeof path, "./var/%s/data.mdb", names [n]);
            if (zsys_file_exists (path)) {
                snprintf (workers [count].name, sizeof workers [count].name, "%s", names [n]);
                snprintf (workers [count].dir, sizeof workers [count].dir, "./var/%s", names [n]);
                count++;
            }
        }
    }
    zsock_t *replay = pb_ctl_journal_connect (ZMQ_DEALER, opts.replay);
    if (!replay)
        return PB_CTL_EXIT_USAGE;
    int rc = s_round (&opts, replay, workers, count);
    while (watch && rc != PB_CTL_EXIT_UNREACHABLE && !zsys_interrupted) {
        zclock_sleep ((int) watch * 1000);
        if (zsys_interrupted)
            break;
        if (!opts.json)
            printf ("\n");
        rc = s_round (&opts, replay, workers, count);
    }
    zsock_destroy (&replay);
    return rc;
}
