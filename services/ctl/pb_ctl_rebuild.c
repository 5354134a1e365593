/*  =========================================================================
    pb_ctl_rebuild - pbctl rebuild WORKER: rebuild a worker's store from the
    log with no side effects, compare it with the live store, and swap

    The rebuild itself is the worker's own binary, pb-<name> --rebuild DIR
    --rebuild-to SEQ (common/pb_worker_rebuild.c): the same rules and the
    same transaction code as the live worker, with no ingest socket and no
    outbox, so none of the rebuilt notifications can be published, and it
    skips what the log shows quarantined by that worker. pbctl never links
    a worker's rules (a service never includes another's headers).

    The comparison is on the canonical dump (pb_worker_dump: meta, state,
    quarantine in key order; the outbox is transport state and left out).
    The live store is read first, read-only, and the rebuild goes through
    its applied_seq, so a running worker can be checked too. The first
    differing key is named with both values, and the event that made it
    differ: the last event of the rebuild that wrote or deleted that key
    (the rebuild records it), or none if no event of the log ever did.

    --swap replaces the live store by the rebuilt one (the old data.mdb is
    kept as data.mdb.pre-rebuild) only when the worker is stopped: pbctl
    takes LMDB's own exclusive lock on the live lock.mdb (the fcntl lock
    every process that opens the store holds shared), so a running worker
    is detected, and a worker started meanwhile waits in mdb_env_open
    until the swap is done. A live outbox that still holds notifications
    refuses the swap (they would be lost).
    =========================================================================
*/
#include "pb_ctl.h"
#include "pb_ctl_ops.h"
#include "pb_worker.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_DIR_MAX 1024                  //  bytes of a store's directory name

static const char *s_help =
    "Usage: pbctl rebuild [OPTIONS] WORKER\n"
    "Rebuild WORKER's store (nac, cpe or activity) from the log into a fresh\n"
    "directory next to the live one, with no side effects (the worker binary\n"
    "in rebuild mode: nothing is published), through the live store's\n"
    "applied_seq, and compare the two canonical dumps. Prints 'same', or the\n"
    "first differing key with both values and the event (seq, type) of the\n"
    "log that last wrote it in the rebuild. Logs ops.rebuild (and ops.swap).\n"
    "Exit 0 same (and swapped if asked); 1 differs, or the swap was refused.\n"
    "Options:\n"
    "  --dir DIR        the live store (default ./var/WORKER)\n"
    "  --swap           replace the live store by the rebuilt one if they\n"
    "                   agree; only while the worker is stopped\n"
    "  --force          with --swap: replace it even if they differ\n"
    "  --keep           keep the rebuilt store (its directory is printed)\n"
    "  --bin PATH       the worker binary (default: pb-WORKER next to pbctl,\n"
    "                   in the build tree, or on PATH)\n"
    "  --config FILE    the worker's configuration, for its journal endpoint\n"
    "                   and keys (--replay overrides the endpoint)\n"
    PB_CTL_JOURNAL_OPTS_HELP;

typedef struct {
    const char *worker;                 //  its name (borrowed)
    char live [S_DIR_MAX];              //  the live store's directory
    char temp [S_DIR_MAX];              //  the rebuild's directory
    zlistx_t *live_lines;               //  dump lines "db key hex" (owned)
    zlistx_t *new_lines;                //  the rebuild's (owned)
    uint64_t through;                   //  the live applied_seq
    //  The first difference
    bool differs;                       //  there is one
    char db [16];                       //  its db: meta, state, quarantine
    char *key;                          //  its key, as the dump spells it (owned)
    char *live_hex;                     //  value in the live store, or NULL (owned)
    char *new_hex;                      //  value in the rebuild, or NULL (owned)
    uint64_t cause;                     //  the event that wrote it, or 0
    char cause_type [130];              //  that event's type
} s_rebuild_t;

//  The dump of a store as a list of lines; NULL if there is none
static zlistx_t *
s_dump (const char *dir, int (*dump_fn) (const char *, FILE *))
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    assert (out);
    int rc = dump_fn (dir, out);
    fclose (out);
    zlistx_t *lines = NULL;
    if (rc == 0) {
        lines = zlistx_new ();
        zlistx_set_destructor (lines, (zlistx_destructor_fn *) zstr_free);
        for (char *save = NULL, *line = strtok_r (text, "\n", &save); line;
             line = strtok_r (NULL, "\n", &save))
            zlistx_add_end (lines, strdup (line));
    }
    free (text);
    return lines;
}

//  "db key" of a dump line, into 'buf'
static const char *
s_line_key (const char *line, char *buf, size_t size)
{
    const char *space = strchr (line, ' ');
    const char *end = space? strchr (space + 1, ' '): NULL;
    size_t len = end? (size_t) (end - line): strlen (line);
    snprintf (buf, size, "%.*s", (int) len, line);
    return buf;
}

static const char *
s_line_value (const char *line)
{
    const char *space = strchr (line, ' ');
    const char *end = space? strchr (space + 1, ' '): NULL;
    return end? end + 1: "";
}

//  Set of the "db key" of every line
static zhashx_t *
s_keys (zlistx_t *lines)
{
    zhashx_t *keys = zhashx_new ();
    char key [1200];
    for (const char *line = (const char *) zlistx_first (lines); line;
         line = (const char *) zlistx_next (lines))
        zhashx_insert (keys, s_line_key (line, key, sizeof key), (void *) line);
    return keys;
}

static void
s_set_difference (s_rebuild_t *self, const char *dbkey, const char *live_line,
                  const char *new_line)
{
    self->differs = true;
    const char *space = strchr (dbkey, ' ');
    snprintf (self->db, sizeof self->db, "%.*s", (int) (space - dbkey), dbkey);
    self->key = strdup (space + 1);
    self->live_hex = live_line? strdup (s_line_value (live_line)): NULL;
    self->new_hex = new_line? strdup (s_line_value (new_line)): NULL;
}

//  The first line (in dump order) where the two dumps disagree
static void
s_compare (s_rebuild_t *self)
{
    zhashx_t *live_keys = s_keys (self->live_lines);
    zhashx_t *new_keys = s_keys (self->new_lines);
    const char *a = (const char *) zlistx_first (self->live_lines);
    const char *b = (const char *) zlistx_first (self->new_lines);
    char ka [1200], kb [1200];
    while (a || b) {
        if (a && b && streq (a, b)) {
            a = (const char *) zlistx_next (self->live_lines);
            b = (const char *) zlistx_next (self->new_lines);
            continue;
        }
        if (a && b && streq (s_line_key (a, ka, sizeof ka), s_line_key (b, kb, sizeof kb)))
            s_set_difference (self, ka, a, b);
        else
        if (a && !zhashx_lookup (new_keys, s_line_key (a, ka, sizeof ka)))
            s_set_difference (self, ka, a, NULL);
        else
            s_set_difference (self, s_line_key (b, kb, sizeof kb),
                              zhashx_lookup (live_keys, kb), b);
        break;
    }
    zhashx_destroy (&live_keys);
    zhashx_destroy (&new_keys);
}

//  The origin of the differing key in the rebuilt store
static void
s_find_cause (s_rebuild_t *self)
{
    zlistx_t *origins = s_dump (self->temp, pb_worker_dump_origin);
    char want [1200];
    snprintf (want, sizeof want, "%s %s ", self->db, self->key);
    for (const char *line = origins? (const char *) zlistx_first (origins): NULL;
         line; line = (const char *) zlistx_next (origins))
        if (strncmp (line, want, strlen (want)) == 0)
            pb_ctl_journal_parse_u64 (line + strlen (want), &self->cause);
    zlistx_destroy (&origins);
}

static int
s_on_cause (const void *bytes, size_t size, void *arg)
{
    s_rebuild_t *self = (s_rebuild_t *) arg;
    json_t *env = pb_ctl_json_from_bytes (bytes, size, NULL, 0);
    const char *type = env? json_string_value (json_object_get (env, "type")): NULL;
    snprintf (self->cause_type, sizeof self->cause_type, "%s", type? type: "?");
    json_decref (env);
    return 0;
}

//  Run pb-<name> --rebuild; its stderr goes to ours on a terminal (its
//  progress), else to a file shown only if it fails
static int
s_run_worker (s_rebuild_t *self, const char *bin, const char *config,
              const pb_ctl_journal_opts_t *opts)
{
    char to [32], timeout [32], errfile [S_DIR_MAX + 16];
    snprintf (to, sizeof to, "%" PRIu64, self->through);
    snprintf (timeout, sizeof timeout, "%d", opts->timeout_ms);
    snprintf (errfile, sizeof errfile, "%s/rebuild.log", self->temp);
    //  The configuration's endpoint, unless --replay was given
    bool replay = !config || !streq (opts->replay, "tcp://127.0.0.1:7703");
    char *argv [12] = { (char *) bin, "--rebuild", self->temp, "--rebuild-to", to,
                        "--replay-timeout-ms", timeout };
    int argc = 7;
    if (config) {
        argv [argc++] = "--config";
        argv [argc++] = (char *) config;
    }
    if (replay) {
        argv [argc++] = "--replay";
        argv [argc++] = (char *) opts->replay;
    }
    argv [argc] = NULL;
    bool tty = isatty (2);
    fflush (stdout);
    fflush (stderr);
    pid_t pid = fork ();
    if (pid == 0) {
        int null = open ("/dev/null", O_WRONLY);
        dup2 (null, 1);                 //  Its result line: we print our own
        if (!tty) {
            int err = open (errfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            if (err >= 0)
                dup2 (err, 2);
        }
        execv (bin, argv);
        _exit (127);
    }
    int status = 0;
    while (pid > 0 && waitpid (pid, &status, 0) == -1 && errno == EINTR)
        ;
    bool ok = pid > 0 && WIFEXITED (status) && WEXITSTATUS (status) == 0;
    if (!ok) {
        fprintf (stderr, "pbctl rebuild: %s --rebuild failed (exit %d)\n", bin,
                 WIFEXITED (status)? WEXITSTATUS (status): -1);
        FILE *log = tty? NULL: fopen (errfile, "r");
        char line [512];
        while (log && fgets (line, sizeof line, log))
            fprintf (stderr, "  %s", line);
        if (log)
            fclose (log);
    }
    unlink (errfile);
    return ok? 0: -1;
}

static void
s_remove_store (const char *dir)
{
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%.*s/data.mdb", S_DIR_MAX, dir);
    unlink (path);
    snprintf (path, sizeof path, "%.*s/lock.mdb", S_DIR_MAX, dir);
    unlink (path);
    rmdir (dir);
}

//  Replace the live store by the rebuilt one. Returns 0, or
//  PB_CTL_EXIT_REFUSED with the reason said.
static int
s_swap (s_rebuild_t *self)
{
    size_t pending = 0;
    if (pb_worker_pending (self->live, &pending) == 0 && pending > 0) {
        fprintf (stderr, "pbctl rebuild: not swapped: %zu notifications wait in the "
                 "live outbox; run the worker until they are sent, stop it, retry\n",
                 pending);
        return PB_CTL_EXIT_REFUSED;
    }
    if (pb_worker_forget_origin (self->temp)) {
        fprintf (stderr, "pbctl rebuild: not swapped: cannot finish the rebuilt store\n");
        return PB_CTL_EXIT_REFUSED;
    }
    //  LMDB's own lock: every process with the store open holds a shared
    //  fcntl lock on byte 0 of lock.mdb; an exclusive one means nobody has
    char lock_path [S_DIR_MAX + 16], data [S_DIR_MAX + 16], old [S_DIR_MAX + 32],
         fresh [S_DIR_MAX + 16];
    snprintf (lock_path, sizeof lock_path, "%s/lock.mdb", self->live);
    int fd = open (lock_path, O_RDWR | O_CREAT, 0600);
    struct flock lock = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0,
                          .l_len = 1 };
    if (fd < 0 || fcntl (fd, F_SETLK, &lock) == -1) {
        fprintf (stderr, "pbctl rebuild: not swapped: the worker is running (it has "
                 "%s open); stop it first\n", self->live);
        if (fd >= 0)
            close (fd);
        return PB_CTL_EXIT_REFUSED;
    }
    snprintf (data, sizeof data, "%s/data.mdb", self->live);
    snprintf (old, sizeof old, "%s/data.mdb.pre-rebuild", self->live);
    snprintf (fresh, sizeof fresh, "%s/data.mdb", self->temp);
    int rc = 0;
    if (rename (data, old) || rename (fresh, data)) {
        fprintf (stderr, "pbctl rebuild: swap failed: %s\n", strerror (errno));
        rename (old, data);             //  Put the live one back if it moved
        rc = PB_CTL_EXIT_REFUSED;
    }
    close (fd);                         //  Releases the lock
    if (rc == 0)
        s_remove_store (self->temp);
    return rc;
}

//  A value for people: the rules' MessagePack as JSON; meta's integers
//  and anything unreadable as hex
static json_t *
s_value_json (const char *db, const char *hex)
{
    if (!hex)
        return json_null ();
    size_t len = strlen (hex);
    uint8_t *bytes = (uint8_t *) zmalloc (len / 2 + 1);
    for (size_t i = 0; i + 1 < len; i += 2) {
        char pair [3] = { hex [i], hex [i + 1], 0 };
        bytes [i / 2] = (uint8_t) strtoul (pair, NULL, 16);
    }
    json_t *value = streq (db, "meta")? NULL: pb_ctl_json_from_bytes (bytes, len / 2, NULL, 0);
    free (bytes);
    return value? value: json_string (hex);
}

static void
s_print (s_rebuild_t *self, bool json, bool swapped, uint64_t logged)
{
    json_t *out = json_pack ("{s:s, s:I, s:s, s:b}", "worker", self->worker,
                             "through", (json_int_t) self->through,
                             "result", self->differs? "differs": "same",
                             "swapped", swapped);
    if (self->differs) {
        json_object_set_new (out, "db", json_string (self->db));
        json_object_set_new (out, "key", json_string (self->key));
        json_object_set_new (out, "live", s_value_json (self->db, self->live_hex));
        json_object_set_new (out, "rebuilt", s_value_json (self->db, self->new_hex));
        json_object_set_new (out, "cause", self->cause? json_integer ((json_int_t) self->cause)
                                                      : json_null ());
        if (self->cause)
            json_object_set_new (out, "cause_type", json_string (self->cause_type));
    }
    if (logged)
        json_object_set_new (out, "logged", json_integer ((json_int_t) logged));
    if (json)
        pb_ctl_json_print (stdout, out);
    else
    if (!self->differs)
        printf ("%s: same as a rebuild from the log through seq %" PRIu64 "%s\n",
                self->worker, self->through, swapped? " (swapped in)": "");
    else {
        char *live = json_dumps (json_object_get (out, "live"), JSON_COMPACT | JSON_ENCODE_ANY);
        char *rebuilt = json_dumps (json_object_get (out, "rebuilt"),
                                    JSON_COMPACT | JSON_ENCODE_ANY);
        printf ("%s: differs from a rebuild through seq %" PRIu64 " at %s %s\n"
                "  live:    %s\n  rebuilt: %s\n", self->worker, self->through,
                self->db, self->key, live, rebuilt);
        if (self->cause)
            printf ("  made by seq %" PRIu64 " (%s) in the rebuild\n", self->cause,
                    self->cause_type);
        else
            printf ("  no event of the log wrote this key\n");
        if (swapped)
            printf ("  swapped in anyway (--force)\n");
        free (live);
        free (rebuilt);
    }
    json_decref (out);
}

int
pb_ctl_rebuild (int argc, char *argv [])
{
    pb_ctl_journal_opts_t opts;
    pb_ctl_journal_opts_init (&opts);
    s_rebuild_t self_ = { 0 };
    s_rebuild_t *self = &self_;
    const char *dir = NULL, *bin_given = NULL, *config = NULL;
    bool swap = false, force = false, keep = false;
    int i = 1;
    while (i < argc) {
        int rc = pb_ctl_journal_opts_parse (&opts, argc, argv, &i);
        if (rc == PB_CTL_EXIT_USAGE)
            return rc;
        if (rc == 1)
            continue;
        const char *arg = argv [i];
        if (streq (arg, "--dir") && i + 1 < argc)
            dir = argv [++i];
        else
        if (streq (arg, "--bin") && i + 1 < argc)
            bin_given = argv [++i];
        else
        if (streq (arg, "--config") && i + 1 < argc)
            config = argv [++i];
        else
        if (streq (arg, "--swap"))
            swap = true;
        else
        if (streq (arg, "--force"))
            force = true;
        else
        if (streq (arg, "--keep"))
            keep = true;
        else
        if (arg [0] != '-' && !self->worker)
            self->worker = arg;
        else {
            fprintf (stderr, "pbctl rebuild: bad or unexpected '%s' (see --help)\n", arg);
            return PB_CTL_EXIT_USAGE;
        }
        i++;
    }
    if (opts.help) {
        fputs (s_help, stdout);
        return PB_CTL_EXIT_OK;
    }
    if (!pb_ctl_ops_is_worker (self->worker)) {
        fprintf (stderr, "pbctl rebuild: WORKER must be nac, cpe or activity\n");
        return PB_CTL_EXIT_USAGE;
    }
    if (force && !swap) {
        fprintf (stderr, "pbctl rebuild: --force only goes with --swap\n");
        return PB_CTL_EXIT_USAGE;
    }
    char bin [PATH_MAX];
    if (!pb_ctl_ops_worker_bin (self->worker, bin_given, bin, sizeof bin)) {
        fprintf (stderr, "pbctl rebuild: no executable pb-%s (give --bin PATH)\n",
                 self->worker);
        return PB_CTL_EXIT_USAGE;
    }
    if (dir && strlen (dir) > S_DIR_MAX - 32) {
        fprintf (stderr, "pbctl rebuild: --dir is too long\n");
        return PB_CTL_EXIT_USAGE;
    }
    if (dir)
        snprintf (self->live, sizeof self->live, "%s", dir);
    else
        snprintf (self->live, sizeof self->live, "./var/%s", self->worker);
    size_t len = strlen (self->live);
    while (len > 1 && self->live [len - 1] == '/')
        self->live [--len] = 0;

    //  The live store first, read-only: the rebuild goes through its seq
    int rc = PB_CTL_EXIT_OK;
    self->live_lines = s_dump (self->live, pb_worker_dump);
    if (!self->live_lines) {
        fprintf (stderr, "pbctl rebuild: no readable store in %s\n", self->live);
        return PB_CTL_EXIT_REFUSED;
    }
    for (const char *line = (const char *) zlistx_first (self->live_lines); line;
         line = (const char *) zlistx_next (self->live_lines))
        if (strncmp (line, "meta applied_seq ", 17) == 0)
            self->through = strtoull (line + 17, NULL, 16);
    snprintf (self->temp, sizeof self->temp, "%.*s.rebuild.XXXXXX", S_DIR_MAX - 32,
              self->live);
    if (!mkdtemp (self->temp)) {
        fprintf (stderr, "pbctl rebuild: cannot create %s: %s\n", self->temp,
                 strerror (errno));
        zlistx_destroy (&self->live_lines);
        return PB_CTL_EXIT_REFUSED;
    }
    bool swapped = false;
    uint64_t logged = 0;
    char error [300] = "";
    if (self->through == 0) {
        //  A store that applied nothing: its rebuild is an empty store
        self->new_lines = zlistx_new ();
        if (swap) {
            fprintf (stderr, "pbctl rebuild: not swapped: the live store has applied "
                     "nothing (start the worker: it catches up from the log)\n");
            swap = false;
            rc = PB_CTL_EXIT_REFUSED;
        }
    }
    else
    if (s_run_worker (self, bin, config, &opts))
        rc = PB_CTL_EXIT_UNREACHABLE;
    if (rc == 0 && !self->new_lines) {
        self->new_lines = s_dump (self->temp, pb_worker_dump);
        if (!self->new_lines)
            rc = PB_CTL_EXIT_REFUSED;
    }
    if (rc == 0) {
        s_compare (self);
        if (self->differs)
            s_find_cause (self);
        if (self->cause) {
            zsock_t *replay = pb_ctl_journal_connect (&opts, ZMQ_DEALER, opts.replay);
            pb_wire_end_t end;
            if (replay)
                pb_ctl_journal_replay (replay, self->cause, self->cause, NULL, 0,
                                       opts.timeout_ms, s_on_cause, self, &end,
                                       error, sizeof error);
            zsock_destroy (&replay);
        }
        json_t *data = json_pack ("{s:s, s:I, s:s}", "worker", self->worker,
                                  "through", (json_int_t) self->through,
                                  "result", self->differs? "differs": "same");
        if (self->differs) {
            char key [4096];
            snprintf (key, sizeof key, "%s %s", self->db, self->key);
            json_object_set_new (data, "key", json_string (key));
            if (self->cause)
                json_object_set_new (data, "cause", json_integer ((json_int_t) self->cause));
        }
        int lrc = pb_ctl_ops_log (&opts, "ops.rebuild", data, &logged, error, sizeof error);
        json_decref (data);
        if (lrc)
            fprintf (stderr, "pbctl rebuild: not logged: %s\n", error);
        if (swap && (!self->differs || force)) {
            rc = s_swap (self);
            swapped = rc == 0;
            if (swapped) {
                uint64_t seq = 0;
                data = json_pack ("{s:s, s:I, s:s}", "worker", self->worker,
                                  "through", (json_int_t) self->through,
                                  "result", self->differs? "differs": "same");
                if (pb_ctl_ops_log (&opts, "ops.swap", data, &seq, error, sizeof error))
                    fprintf (stderr, "pbctl rebuild: swap not logged: %s\n", error);
                json_decref (data);
            }
        }
        else
        if (swap)
            fprintf (stderr, "pbctl rebuild: not swapped: the stores differ "
                     "(--force to swap anyway)\n");
        s_print (self, opts.json, swapped, logged);
        if (rc == 0 && self->differs)
            rc = PB_CTL_EXIT_REFUSED;
    }
    if (keep && !swapped)
        fprintf (stderr, "pbctl rebuild: rebuilt store kept in %s\n", self->temp);
    else
    if (!swapped)
        s_remove_store (self->temp);
    zlistx_destroy (&self->live_lines);
    zlistx_destroy (&self->new_lines);
    free (self->key);
    free (self->live_hex);
    free (self->new_hex);
    return rc;
}
