/*  =========================================================================
    pb_ctl_status - pbctl status: the journal's head, log time, clock, rate
    and store; each worker's applied_seq, lag in events and in seconds,
    rate, quarantine and store

    A worker's progress is read from its store, read-only (pb_worker_stats),
    so status works whether the worker runs or not; so are the journal's
    store sizes (pb_ctl_store_env on --journal-dir). Lag is head minus
    applied_seq, in events of the log (every event, not only those the
    worker cares about: a worker applies them all), and in seconds the
    journal's log time minus the worker's (the now of the last sys.tick
    each has), 0 once the worker has the head. Rates are events per second
    between two samples: --rate-ms apart in one round (default 1000; 0 for
    none), and between rounds with --watch.
    =========================================================================
*/
#include "pb_ctl.h"
#include "pb_ctl_store.h"
#include "pb_worker.h"

#define S_WORKERS_MAX 16

typedef struct {
    char name [32];                     //  nac, cpe, activity, ...
    char dir [PATH_MAX];                //  its data dir
    bool readable;                      //  stats below are valid
    pb_worker_stats_t stats;            //  the latest sample
    pb_worker_stats_t last;             //  the sample before, for rates
    bool has_last;                      //  'last' is valid
} s_worker_t;

typedef struct {
    pb_ctl_journal_opts_t opts;         //  endpoints, --json, --timeout
    zsock_t *replay;                    //  DEALER for STATUS (owned)
    char journal_dir [PATH_MAX];        //  the journal's data dir, or ""
    s_worker_t workers [S_WORKERS_MAX]; //  the stores to read
    size_t count;                       //  how many
    uint64_t rate_ms;                   //  sample interval in one round, 0: none
    pb_wire_status_t status;            //  the latest STATUS
    uint64_t last_head;                 //  head of the sample before
    int64_t last_at;                    //  mono ms of the sample before (0: none)
    int64_t at;                         //  mono ms of the latest sample
} s_status_t;

static const char *s_help =
    "Usage: pbctl status [OPTIONS]\n"
    "Print the journal's head (last seq), log time, clock and append rate and,\n"
    "for each worker store, its applied_seq, its lag in events (head -\n"
    "applied_seq) and in seconds (the journal's log time - the worker's, 0 once\n"
    "it has the head), its apply rate, its quarantine (events and refused\n"
    "notifications), and the store's size and map use. Stores are read\n"
    "read-only, whether the services run or not. Without --worker, ./var/nac,\n"
    "./var/cpe and ./var/activity are read when they hold a store; without\n"
    "--journal-dir, ./var/journal. Rates are events/s between two samples\n"
    "--rate-ms apart (and between rounds with --watch). --json: one object per\n"
    "round {head, now, clock, rate, journal: {dir, store_bytes, map_bytes,\n"
    "map_used_bytes}, workers: [{name, dir, applied_seq, now, lag,\n"
    "lag_seconds, rate, quarantined, state_keys, outbox, store_bytes,\n"
    "map_bytes, map_used_bytes, map_use}]}; a rate is null when not measured.\n"
    "Options:\n"
    "  --worker NAME=DIR  a worker store to read (repeatable)\n"
    "  --journal-dir DIR  the journal's data dir, for its store sizes\n"
    "  --rate-ms MS       sample interval for rates in one round (1000; 0: none)\n"
    "  --watch SECS       print again every SECS seconds until interrupted\n"
    PB_CTL_JOURNAL_OPTS_HELP;

//  "12.3 MiB" into buf
static const char *
s_bytes (uint64_t bytes, char *buf, size_t size)
{
    const char *units [] = { "B", "KiB", "MiB", "GiB", "TiB" };
    double value = (double) bytes;
    size_t unit = 0;
    while (value >= 1024 && unit < 4) {
        value /= 1024;
        unit++;
    }
    snprintf (buf, size, unit? "%.1f %s": "%.0f %s", value, units [unit]);
    return buf;
}

//  Events per second between two samples, or -1 when not measured
static double
s_rate (uint64_t then, uint64_t now, int64_t elapsed_ms)
{
    if (elapsed_ms <= 0 || now < then)
        return -1;
    return (double) (now - then) * 1000.0 / (double) elapsed_ms;
}

static json_t *
s_json_rate (double rate)
{
    return rate < 0? json_null (): json_real (rate);
}

//  One sample: STATUS and every store. Returns 0, or the journal's
//  unreachable/refused code (said).
static int
s_sample (s_status_t *self)
{
    if (self->at) {
        self->last_head = self->status.head;
        self->last_at = self->at;
        for (size_t i = 0; i < self->count; i++) {
            s_worker_t *w = &self->workers [i];
            w->last = w->stats;
            w->has_last = w->readable;
        }
    }
    char error [256] = "";
    int rc = pb_ctl_journal_status (self->replay, self->opts.timeout_ms, &self->status,
                                    error, sizeof error);
    if (rc) {
        fprintf (stderr, "pbctl status: %s (%s)\n", error, self->opts.replay);
        return rc;
    }
    self->at = zclock_mono ();
    for (size_t i = 0; i < self->count; i++) {
        s_worker_t *w = &self->workers [i];
        w->readable = pb_worker_stats (w->dir, &w->stats) == 0;
        if (!w->readable)
            w->has_last = false;
    }
    return 0;
}

static json_t *
s_journal_report (s_status_t *self, char *line, size_t size)
{
    const pb_wire_status_t *st = &self->status;
    double rate = self->last_at? s_rate (self->last_head, st->head, self->at - self->last_at): -1;
    json_t *report = json_pack ("{s:I, s:I, s:s, s:o}", "head", (json_int_t) st->head,
                                "now", (json_int_t) st->now,
                                "clock", st->manual? "manual": "auto",
                                "rate", s_json_rate (rate));
    char iso [32], rate_text [32] = "", store [128] = "";
    if (rate >= 0)
        snprintf (rate_text, sizeof rate_text, "  rate %.1f ev/s", rate);
    pb_ctl_store_env_t env;
    if (*self->journal_dir && pb_ctl_store_env (self->journal_dir, &env) == 0) {
        json_object_set_new (report, "journal", json_pack ("{s:s, s:I, s:I, s:I}",
            "dir", self->journal_dir, "store_bytes", (json_int_t) env.file_bytes,
            "map_bytes", (json_int_t) env.map_bytes,
            "map_used_bytes", (json_int_t) env.used_bytes));
        char a [32], b [32];
        snprintf (store, sizeof store, "  store %s, map %s used of %s",
                  s_bytes (env.file_bytes, a, sizeof a),
                  s_bytes (env.used_bytes, b, sizeof b),
                  s_bytes (env.map_bytes, iso, sizeof iso));
    }
    snprintf (line, size, "journal  head %" PRIu64 "  log time %" PRId64 " (%s)  clock %s%s%s\n",
              st->head, st->now, pb_ctl_journal_iso (st->now, iso, sizeof iso),
              st->manual? "manual": "auto", rate_text, store);
    return report;
}

static json_t *
s_worker_report (s_status_t *self, s_worker_t *w, char *line, size_t size)
{
    json_t *item = json_pack ("{s:s, s:s}", "name", w->name, "dir", w->dir);
    if (!w->readable) {
        json_object_set_new (item, "error", json_string ("no readable store"));
        snprintf (line, size, "%-8s no readable store at %s\n", w->name, w->dir);
        return item;
    }
    const pb_worker_stats_t *st = &w->stats;
    uint64_t head = self->status.head;
    int64_t lag = (int64_t) (head - st->applied_seq);
    double lag_secs = 0;
    if (st->applied_seq < head && self->status.now > st->now)
        lag_secs = (double) (self->status.now - st->now) / 1000.0;
    double rate = w->has_last
        ? s_rate (w->last.applied_seq, st->applied_seq, self->at - self->last_at): -1;
    double use = st->map_bytes? (double) st->used_bytes / (double) st->map_bytes: 0;
    json_object_set_new (item, "applied_seq", json_integer ((json_int_t) st->applied_seq));
    json_object_set_new (item, "now", json_integer (st->now));
    json_object_set_new (item, "lag", json_integer (lag));
    json_object_set_new (item, "lag_seconds", json_real (lag_secs));
    json_object_set_new (item, "rate", s_json_rate (rate));
    json_object_set_new (item, "quarantined", json_integer ((json_int_t) st->quarantined));
    json_object_set_new (item, "state_keys", json_integer ((json_int_t) st->state_keys));
    json_object_set_new (item, "outbox", json_integer ((json_int_t) st->outbox));
    json_object_set_new (item, "store_bytes", json_integer ((json_int_t) st->file_bytes));
    json_object_set_new (item, "map_bytes", json_integer ((json_int_t) st->map_bytes));
    json_object_set_new (item, "map_used_bytes", json_integer ((json_int_t) st->used_bytes));
    json_object_set_new (item, "map_use", json_real (use));
    char rate_text [32] = "", a [32], b [32];
    if (rate >= 0)
        snprintf (rate_text, sizeof rate_text, "  rate %.1f ev/s", rate);
    snprintf (line, size, "%-8s applied_seq %" PRIu64 "  lag %" PRId64 " (%.1f s)%s"
              "  quarantined %" PRIu64 "  store %s, map %.1f%% of %s  (%s)\n",
              w->name, st->applied_seq, lag, lag_secs, rate_text, st->quarantined,
              s_bytes (st->file_bytes, a, sizeof a), use * 100,
              s_bytes (st->map_bytes, b, sizeof b), w->dir);
    return item;
}

//  One round: sample (twice, rate_ms apart, the first time), then print
static int
s_round (s_status_t *self)
{
    int rc = s_sample (self);
    if (rc == 0 && !self->last_at && self->rate_ms) {
        zclock_sleep ((int) self->rate_ms);
        if (!zsys_interrupted)
            rc = s_sample (self);
    }
    if (rc)
        return rc;
    char line [1024];
    json_t *report = s_journal_report (self, line, sizeof line);
    if (!self->opts.json)
        fputs (line, stdout);
    json_t *list = json_array ();
    for (size_t i = 0; i < self->count; i++) {
        s_worker_t *w = &self->workers [i];
        json_array_append_new (list, s_worker_report (self, w, line, sizeof line));
        if (!self->opts.json)
            fputs (line, stdout);
        if (!w->readable)
            rc = PB_CTL_EXIT_REFUSED;
    }
    json_object_set_new (report, "workers", list);
    if (self->opts.json)
        pb_ctl_json_print (stdout, report);
    fflush (stdout);
    json_decref (report);
    return rc;
}

static int
s_add_worker (s_status_t *self, const char *spec)
{
    const char *eq = strchr (spec, '=');
    s_worker_t *w = &self->workers [self->count];
    if (!eq || eq == spec || !eq [1] || (size_t) (eq - spec) >= sizeof w->name
    ||  strlen (eq + 1) >= sizeof w->dir || self->count >= S_WORKERS_MAX) {
        fprintf (stderr, "pbctl status: --worker wants NAME=DIR (at most %d)\n",
                 S_WORKERS_MAX);
        return PB_CTL_EXIT_USAGE;
    }
    memcpy (w->name, spec, eq - spec);
    w->name [eq - spec] = 0;
    strcpy (w->dir, eq + 1);
    self->count++;
    return 0;
}

static int
s_parse (s_status_t *self, int argc, char *argv [], uint64_t *watch)
{
    int i = 1;
    while (i < argc) {
        int rc = pb_ctl_journal_opts_parse (&self->opts, argc, argv, &i);
        if (rc == PB_CTL_EXIT_USAGE)
            return rc;
        if (rc == 1)
            continue;
        if (streq (argv [i], "--worker") && i + 1 < argc) {
            if (s_add_worker (self, argv [++i]))
                return PB_CTL_EXIT_USAGE;
        }
        else
        if (streq (argv [i], "--journal-dir") && i + 1 < argc) {
            if (strlen (argv [++i]) >= sizeof self->journal_dir || !*argv [i]) {
                fprintf (stderr, "pbctl status: --journal-dir wants a directory\n");
                return PB_CTL_EXIT_USAGE;
            }
            strcpy (self->journal_dir, argv [i]);
        }
        else
        if (streq (argv [i], "--watch") && i + 1 < argc) {
            if (!pb_ctl_journal_parse_u64 (argv [++i], watch) || *watch < 1 || *watch > 86400) {
                fprintf (stderr, "pbctl status: --watch wants seconds 1..86400\n");
                return PB_CTL_EXIT_USAGE;
            }
        }
        else
        if (streq (argv [i], "--rate-ms") && i + 1 < argc) {
            if (!pb_ctl_journal_parse_u64 (argv [++i], &self->rate_ms)
            ||  self->rate_ms > 60000) {
                fprintf (stderr, "pbctl status: --rate-ms wants 0..60000\n");
                return PB_CTL_EXIT_USAGE;
            }
        }
        else {
            fprintf (stderr, "pbctl status: unexpected '%s' (see --help)\n", argv [i]);
            return PB_CTL_EXIT_USAGE;
        }
        i++;
    }
    return 0;
}

int
pb_ctl_status (int argc, char *argv [])
{
    s_status_t *self = (s_status_t *) zmalloc (sizeof *self);
    pb_ctl_journal_opts_init (&self->opts);
    self->rate_ms = 1000;
    uint64_t watch = 0;
    int rc = s_parse (self, argc, argv, &watch);
    if (rc == 0 && self->opts.help) {
        fputs (s_help, stdout);
        free (self);
        return PB_CTL_EXIT_OK;
    }
    if (rc == 0 && self->count == 0) {
        const char *names [] = { "nac", "cpe", "activity" };
        for (size_t n = 0; n < 3; n++) {
            char path [64];
            snprintf (path, sizeof path, "./var/%s/data.mdb", names [n]);
            if (zsys_file_exists (path)) {
                s_worker_t *w = &self->workers [self->count++];
                snprintf (w->name, sizeof w->name, "%s", names [n]);
                snprintf (w->dir, sizeof w->dir, "./var/%s", names [n]);
            }
        }
    }
    if (rc == 0 && !*self->journal_dir && zsys_file_exists ("./var/journal/data.mdb"))
        strcpy (self->journal_dir, "./var/journal");
    if (rc == 0) {
        self->replay = pb_ctl_journal_connect (&self->opts, ZMQ_DEALER, self->opts.replay);
        rc = self->replay? 0: PB_CTL_EXIT_USAGE;
    }
    if (rc == 0) {
        rc = s_round (self);
        while (watch && rc != PB_CTL_EXIT_UNREACHABLE && !zsys_interrupted) {
            zclock_sleep ((int) watch * 1000);
            if (zsys_interrupted)
                break;
            if (!self->opts.json)
                printf ("\n");
            rc = s_round (self);
        }
    }
    zsock_destroy (&self->replay);
    free (self);
    return rc;
}
