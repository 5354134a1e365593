/*  =========================================================================
    pb_ctl_up - pbctl up: the journal and the workers on one machine

    Starts pb-journal, then pb-nac, pb-cpe and pb-activity, as child
    processes with embedded defaults and their data in one directory
    (default ./var: var/journal, var/nac, ...), and supervises them: a child
    that exits is started again after a pause that doubles from 1 s up to
    30 s (and falls back to 1 s once a child has run for a minute), and
    every exit and restart is logged. Once the journal answers STATUS the
    reference data (deploy/registry.jsonl) is published through the same
    code as 'pbctl publish', on the first start only: a marker file
    DIR/.registry-loaded records that it was (a second load would append
    nothing anyway: ids are stable and the journal is idempotent).

    SIGINT or SIGTERM stops everything: SIGTERM to the workers first (they
    commit what they hold), then to the journal, each waited for (SIGKILL
    after 20 s, logged), and up exits 0. Children run in their own process
    group, so a Ctrl-C on the terminal reaches up alone and the order holds;
    and each gets SIGTERM if up itself dies (PR_SET_PDEATHSIG), so no
    service outlives its supervisor.

    Binaries are looked for in --bin-dir, then beside pbctl (an installed
    layout, or the build tree: services/ctl/pbctl beside
    services/journal/pb-journal), then on PATH. Single-threaded: one loop
    that reaps, restarts and sleeps 100 ms.
    =========================================================================
*/
#include "pb_ctl.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_CHILDREN      4               //  journal, nac, cpe, activity
#define S_ARGS_MAX      16              //  argv entries of one child
#define S_BACKOFF_MIN   1000            //  ms before the first restart
#define S_BACKOFF_MAX   30000           //  ms between restarts, at most
#define S_STABLE_MS     60000           //  a run this long resets the backoff
#define S_STOP_MS       20000           //  SIGTERM, then SIGKILL after this
#define S_TURN_MS       100             //  supervision loop period

typedef struct {
    const char *name;                   //  "journal", "nac", ... (static)
    char binary [PATH_MAX];             //  absolute path of pb-<name>
    char *argv [S_ARGS_MAX];            //  its command line (owned strings)
    pid_t pid;                          //  running child, or 0
    int64_t started_at;                 //  mono ms of the last start
    int64_t restart_at;                 //  mono ms of the next start, or 0
    int64_t backoff;                    //  ms before the next restart
    uint64_t restarts;                  //  restarts since up started
} s_child_t;

typedef struct {
    pb_ctl_journal_opts_t opts;         //  endpoints, --json, --timeout
    char data_dir [PATH_MAX];           //  the services' data directory
    const char *bin_dir;                //  --bin-dir, or NULL (borrowed)
    char registry [PATH_MAX];           //  reference data, or "" for none
    bool registry_given;                //  --registry was on the command line
    bool registry_pending;              //  to load once the journal answers
    uint64_t metrics_port;              //  journal's; workers' follow; 0: off
    s_child_t children [S_CHILDREN];    //  journal first
    int lock_fd;                        //  DIR/.pbctl-up.lock, held (owned), or -1
} s_up_t;

static const char *s_names [S_CHILDREN] = { "journal", "nac", "cpe", "activity" };

static const char *s_help =
    "Usage: pbctl up [OPTIONS]\n"
    "Run partnerbus on this machine: start pb-journal, pb-nac, pb-cpe and\n"
    "pb-activity with embedded defaults and their data under DIR (DIR/journal,\n"
    "DIR/nac, ...), restart any that exits (after 1 s, doubling up to 30 s;\n"
    "each restart is logged), load the reference data once the journal answers\n"
    "(first start only: DIR/.registry-loaded marks it done), print the\n"
    "endpoints, and on SIGINT (Ctrl-C) or SIGTERM stop the workers, then the\n"
    "journal, and exit 0. The services log to stdout; with --json, stdout\n"
    "carries only up's lifecycle events as JSON lines ({event: ready|registry|\n"
    "exited|restarted|stopped, ...}) and the services log to stderr.\n"
    "Options:\n"
    "  --data-dir DIR   data directory (default ./var), created mode 0700; one\n"
    "                   pbctl up per DIR (DIR/.pbctl-up.lock)\n"
    "  --bin-dir DIR    where pb-journal, pb-nac, ... are (default: beside\n"
    "                   pbctl, in a build tree's services/*/, then PATH)\n"
    "  --registry FILE  reference data to load on first start (default\n"
    "                   deploy/registry.jsonl of the source tree; 'none': skip)\n"
    "  --metrics-port P HTTP /metrics and /health on 127.0.0.1: the journal on P,\n"
    "                   nac P+1, cpe P+2, activity P+3 (default 7710; 0: off)\n"
    PB_CTL_JOURNAL_OPTS_HELP;

//  --------------------------------------------------------------------------
//  Finding the binaries

static bool
s_executable (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0 && S_ISREG (st.st_mode) && access (path, X_OK) == 0;
}

//  The first of DIR/pb-NAME, DIR/services/NAME/pb-NAME, DIR/../NAME/pb-NAME
static bool
s_find_in (const char *dir, const char *name, char *path, size_t size)
{
    const char *patterns [] = { "%s/pb-%s", "%s/services/%s/pb-%s", "%s/../%s/pb-%s" };
    for (size_t i = 0; i < 3; i++) {
        int n = i == 0? snprintf (path, size, patterns [i], dir, name)
                      : snprintf (path, size, patterns [i], dir, name, name);
        if (n > 0 && (size_t) n < size && s_executable (path)) {
            char *real = realpath (path, NULL);
            if (real && strlen (real) < size)
                strcpy (path, real);
            free (real);
            return true;
        }
    }
    return false;
}

static bool
s_find_binary (const char *bin_dir, const char *name, char *path, size_t size)
{
    if (bin_dir)
        return s_find_in (bin_dir, name, path, size);
    char self [PATH_MAX];
    ssize_t len = readlink ("/proc/self/exe", self, sizeof self - 1);
    if (len > 0) {
        self [len] = 0;
        char *slash = strrchr (self, '/');
        if (slash) {
            *slash = 0;
            if (s_find_in (self, name, path, size))
                return true;
        }
    }
    const char *env = getenv ("PATH");
    char *dirs = strdup (env? env: "/usr/local/bin:/usr/bin:/bin");
    bool found = false;
    char *save = NULL;
    for (char *dir = strtok_r (dirs, ":", &save); dir && !found;
         dir = strtok_r (NULL, ":", &save)) {
        int n = snprintf (path, size, "%s/pb-%s", *dir? dir: ".", name);
        found = n > 0 && (size_t) n < size && s_executable (path);
    }
    free (dirs);
    return found;
}

//  The default reference data: deploy/registry.jsonl below the working
//  directory, of the source tree pbctl was built from, or installed
static void
s_default_registry (char *path, size_t size)
{
    const char *candidates [] = {
        "deploy/registry.jsonl",
#ifdef PB_SOURCE_DIR
        PB_SOURCE_DIR "/deploy/registry.jsonl",
#endif
        "/usr/local/share/partnerbus/registry.jsonl",
        "/usr/share/partnerbus/registry.jsonl"
    };
    *path = 0;
    for (size_t i = 0; i < sizeof candidates / sizeof candidates [0]; i++)
        if (access (candidates [i], R_OK) == 0) {
            char *real = realpath (candidates [i], NULL);
            snprintf (path, size, "%s", real? real: candidates [i]);
            free (real);
            return;
        }
}

//  --------------------------------------------------------------------------
//  Children

static void
s_arg (s_child_t *child, size_t *count, const char *format, ...)
{
    assert (*count + 1 < S_ARGS_MAX);
    va_list args;
    va_start (args, format);
    child->argv [(*count)++] = zsys_vprintf (format, args);
    va_end (args);
    child->argv [*count] = NULL;
}

//  pb-journal --journal/data_dir=DIR/journal --journal/ingest=EP ..., the
//  same for a worker under its own section
static void
s_child_argv (s_up_t *self, s_child_t *child)
{
    size_t n = 0;
    s_arg (child, &n, "%s", child->binary);
    s_arg (child, &n, "--%s/data_dir=%s/%s", child->name, self->data_dir, child->name);
    s_arg (child, &n, "--%s/ingest=%s", child->name, self->opts.ingest);
    s_arg (child, &n, "--%s/fanout=%s", child->name, self->opts.fanout);
    s_arg (child, &n, "--%s/replay=%s", child->name, self->opts.replay);
    if (self->metrics_port)
        s_arg (child, &n, "--%s/metrics=127.0.0.1:%u", child->name,
               (unsigned) (self->metrics_port + (size_t) (child - self->children)));
}

static void
s_emit (s_up_t *self, json_t *event)
{
    if (self->opts.json) {
        pb_ctl_json_print (stdout, event);
        fflush (stdout);
    }
    json_decref (event);
}

//  Fork and exec one child. Between fork and exec only async-signal-safe
//  calls: the parent may have other threads (libzmq's).
static void
s_child_start (s_up_t *self, s_child_t *child)
{
    pid_t parent = getpid ();
    bool json = self->opts.json;
    pid_t pid = fork ();
    if (pid == 0) {
        setpgid (0, 0);                 //  Ctrl-C reaches up, not us
        prctl (PR_SET_PDEATHSIG, SIGTERM);
        if (getppid () != parent)
            _exit (127);                //  up died before the prctl
        if (json)                       //  stdout carries up's JSON alone
            dup2 (STDERR_FILENO, STDOUT_FILENO);
        execv (child->binary, child->argv);
        _exit (127);
    }
    child->restart_at = 0;
    child->started_at = zclock_mono ();
    if (pid < 0) {
        zsys_error ("up: cannot start %s: %s; trying again in %" PRId64 " ms",
                    child->name, strerror (errno), child->backoff);
        child->pid = 0;
        child->restart_at = child->started_at + child->backoff;
        return;
    }
    child->pid = pid;
}

//  A child exited with 'status': log it, and plan its restart
static void
s_child_exited (s_up_t *self, s_child_t *child, int status)
{
    int64_t now = zclock_mono ();
    int64_t ran = now - child->started_at;
    char how [64];
    if (WIFSIGNALED (status))
        snprintf (how, sizeof how, "signal %d", WTERMSIG (status));
    else
        snprintf (how, sizeof how, "status %d", WEXITSTATUS (status));
    if (ran >= S_STABLE_MS)
        child->backoff = S_BACKOFF_MIN;
    zsys_warning ("up: %s exited (%s) after %.1f s; restarting in %" PRId64 " ms",
                  child->name, how, ran / 1000.0, child->backoff);
    s_emit (self, json_pack ("{s:s, s:s, s:i, s:s, s:I}", "event", "exited",
                             "name", child->name, "pid", (int) child->pid,
                             "how", how, "restart_in_ms", (json_int_t) child->backoff));
    child->pid = 0;
    child->restart_at = now + child->backoff;
    child->backoff = child->backoff * 2 > S_BACKOFF_MAX? S_BACKOFF_MAX: child->backoff * 2;
}

static void
s_reap (s_up_t *self)
{
    for (size_t i = 0; i < S_CHILDREN; i++) {
        s_child_t *child = &self->children [i];
        int status = 0;
        if (child->pid && waitpid (child->pid, &status, WNOHANG) == child->pid)
            s_child_exited (self, child, status);
    }
}

static void
s_restart_due (s_up_t *self)
{
    int64_t now = zclock_mono ();
    for (size_t i = 0; i < S_CHILDREN; i++) {
        s_child_t *child = &self->children [i];
        if (!child->pid && child->restart_at && now >= child->restart_at) {
            child->restarts++;
            s_child_start (self, child);
            if (child->pid) {
                zsys_notice ("up: restarted %s pid=%d restarts=%" PRIu64,
                             child->name, (int) child->pid, child->restarts);
                s_emit (self, json_pack ("{s:s, s:s, s:i, s:I}", "event", "restarted",
                                         "name", child->name, "pid", (int) child->pid,
                                         "restarts", (json_int_t) child->restarts));
            }
        }
    }
}

//  SIGTERM to the running children of [from, to) and wait for them all;
//  SIGKILL whoever is still there after S_STOP_MS. Returns true if all
//  stopped on SIGTERM.
static bool
s_stop (s_up_t *self, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        if (self->children [i].pid)
            kill (self->children [i].pid, SIGTERM);
    int64_t deadline = zclock_mono () + S_STOP_MS;
    bool clean = true;
    for (size_t i = from; i < to; i++) {
        s_child_t *child = &self->children [i];
        int status = 0;
        while (child->pid && waitpid (child->pid, &status, WNOHANG) == 0) {
            if (zclock_mono () >= deadline) {
                zsys_error ("up: %s pid=%d did not stop in %d s: SIGKILL",
                            child->name, (int) child->pid, S_STOP_MS / 1000);
                kill (child->pid, SIGKILL);
                waitpid (child->pid, &status, 0);
                clean = false;
                break;
            }
            usleep (20000);             //  zclock_sleep: cut short by signals
        }
        if (child->pid)
            zsys_notice ("up: stopped %s pid=%d %s", child->name, (int) child->pid,
                         WIFEXITED (status) && WEXITSTATUS (status) == 0
                         ? "exit 0": "with a failure status");
        child->pid = 0;
    }
    return clean;
}

//  --------------------------------------------------------------------------
//  The journal's readiness and the reference data

//  Ask STATUS once, on a fresh socket (a late answer to an earlier try
//  must not be taken for this one). True when the journal answered.
static bool
s_journal_answers (s_up_t *self, int timeout_ms, pb_wire_status_t *status)
{
    zsock_t *replay = pb_ctl_journal_connect (&self->opts, ZMQ_DEALER, self->opts.replay);
    if (!replay)
        return false;
    char error [256];
    int rc = pb_ctl_journal_status (replay, timeout_ms, status, error, sizeof error);
    zsock_destroy (&replay);
    return rc == 0;
}

static void
s_registry_load (s_up_t *self)
{
    self->registry_pending = false;
    char marker [PATH_MAX + 32];
    snprintf (marker, sizeof marker, "%s/.registry-loaded", self->data_dir);
    if (access (marker, F_OK) == 0) {
        zsys_notice ("up: reference data already loaded (%s)", marker);
        return;
    }
    size_t acked = 0;
    int rc = pb_ctl_publish_file (&self->opts, self->registry, false, true, &acked);
    if (rc != PB_CTL_EXIT_OK) {
        zsys_error ("up: reference data from %s: not all loaded (%zu ACKed, exit %d); "
                    "'pbctl publish %s' shows each refusal", self->registry, acked, rc,
                    self->registry);
        return;
    }
    FILE *file = fopen (marker, "w");
    if (file) {
        fprintf (file, "%zu events from %s\n", acked, self->registry);
        fclose (file);
    }
    else
        zsys_warning ("up: cannot write %s: %s (the next start loads again, "
                      "which appends nothing)", marker, strerror (errno));
    zsys_notice ("up: reference data loaded events=%zu file=%s", acked, self->registry);
    s_emit (self, json_pack ("{s:s, s:I, s:s}", "event", "registry",
                             "events", (json_int_t) acked, "file", self->registry));
}

static void
s_print_ready (s_up_t *self, const pb_wire_status_t *status)
{
    json_t *services = json_array ();
    for (size_t i = 0; i < S_CHILDREN; i++) {
        s_child_t *child = &self->children [i];
        json_t *service = json_pack ("{s:s, s:i, s:s}", "name", child->name,
                                     "pid", (int) child->pid, "binary", child->binary);
        if (self->metrics_port)
            json_object_set_new (service, "metrics", json_sprintf (
                "http://127.0.0.1:%u/metrics", (unsigned) (self->metrics_port + i)));
        json_array_append_new (services, service);
    }
    if (self->opts.json) {
        s_emit (self, json_pack ("{s:s, s:s, s:s, s:s, s:s, s:I, s:o}", "event", "ready",
                                 "data_dir", self->data_dir, "ingest", self->opts.ingest,
                                 "fanout", self->opts.fanout, "replay", self->opts.replay,
                                 "head", (json_int_t) status->head, "services", services));
        return;
    }
    json_decref (services);
    printf ("partnerbus is up, data in %s (head %" PRIu64 ")\n", self->data_dir, status->head);
    printf ("  ingest  %s   publish events here (pbctl publish)\n", self->opts.ingest);
    printf ("  fanout  %s   live events (pbctl tail)\n", self->opts.fanout);
    printf ("  replay  %s   replay and control (pbctl replay, status)\n", self->opts.replay);
    for (size_t i = 0; i < S_CHILDREN; i++) {
        printf ("  %-8s pid %d  %s\n", self->children [i].name,
                (int) self->children [i].pid, self->children [i].binary);
        if (self->metrics_port)
            printf ("           http://127.0.0.1:%u/metrics and /health\n",
                    (unsigned) (self->metrics_port + i));
    }
    printf ("Ctrl-C stops everything.\n");
    fflush (stdout);
}

//  --------------------------------------------------------------------------
//  Command line

static int
s_parse (s_up_t *self, int argc, char *argv [])
{
    int i = 1;
    while (i < argc) {
        int rc = pb_ctl_journal_opts_parse (&self->opts, argc, argv, &i);
        if (rc == PB_CTL_EXIT_USAGE)
            return rc;
        if (rc == 1)
            continue;
        const char *arg = argv [i];
        const char *value = i + 1 < argc? argv [i + 1]: NULL;
        if ((streq (arg, "--data-dir") || streq (arg, "--bin-dir")
        ||   streq (arg, "--registry")) && (!value || !*value || strlen (value) >= PATH_MAX - 64)) {
            fprintf (stderr, "pbctl up: %s needs a value (a path)\n", arg);
            return PB_CTL_EXIT_USAGE;
        }
        if (streq (arg, "--metrics-port")) {
            if (!value || !pb_ctl_journal_parse_u64 (value, &self->metrics_port)
            ||  self->metrics_port > 65535 - S_CHILDREN) {
                fprintf (stderr, "pbctl up: --metrics-port wants 0 (off) or a port "
                         "below %d\n", 65535 - S_CHILDREN);
                return PB_CTL_EXIT_USAGE;
            }
        }
        else
        if (streq (arg, "--data-dir"))
            snprintf (self->data_dir, sizeof self->data_dir, "%s", value);
        else
        if (streq (arg, "--bin-dir"))
            self->bin_dir = value;
        else
        if (streq (arg, "--registry")) {
            snprintf (self->registry, sizeof self->registry, "%s",
                      streq (value, "none")? "": value);
            self->registry_given = true;
        }
        else {
            fprintf (stderr, "pbctl up: unexpected '%s' (see --help)\n", arg);
            return PB_CTL_EXIT_USAGE;
        }
        i += 2;
    }
    return 0;
}

//  Binaries, data directory, reference data: everything that can be wrong
//  before anything starts. Returns 0 or PB_CTL_EXIT_USAGE (said).
static int
s_prepare (s_up_t *self)
{
    for (size_t i = 0; i < S_CHILDREN; i++) {
        s_child_t *child = &self->children [i];
        child->name = s_names [i];
        child->backoff = S_BACKOFF_MIN;
        if (!s_find_binary (self->bin_dir, child->name, child->binary, sizeof child->binary)) {
            fprintf (stderr, "pbctl up: pb-%s not found (in %s; --bin-dir DIR says where)\n",
                     child->name, self->bin_dir? self->bin_dir: "pbctl's directory or PATH");
            return PB_CTL_EXIT_USAGE;
        }
    }
    if (zsys_dir_create ("%s", self->data_dir) || chmod (self->data_dir, 0700)) {
        fprintf (stderr, "pbctl up: cannot create %s: %s\n", self->data_dir, strerror (errno));
        return PB_CTL_EXIT_USAGE;
    }
    char *real = realpath (self->data_dir, NULL);
    if (real && strlen (real) < sizeof self->data_dir)
        strcpy (self->data_dir, real);
    free (real);
    //  One up per data directory: a second one would run a second writer
    //  on every store. The lock dies with the process (flock), and the
    //  children do not inherit it (O_CLOEXEC).
    char path [PATH_MAX + 32];
    snprintf (path, sizeof path, "%s/.pbctl-up.lock", self->data_dir);
    self->lock_fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (self->lock_fd < 0 || flock (self->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        char holder [32] = "";
        if (self->lock_fd >= 0 && read (self->lock_fd, holder, sizeof holder - 1) > 0)
            holder [strcspn (holder, "\n")] = 0;
        fprintf (stderr, "pbctl up: %s is in use by another pbctl up%s%s%s\n", self->data_dir,
                 *holder? " (pid ": "", holder, *holder? ")": "");
        return PB_CTL_EXIT_USAGE;
    }
    char pid [32];
    int len = snprintf (pid, sizeof pid, "%d\n", (int) getpid ());
    if (ftruncate (self->lock_fd, 0) != 0 || write (self->lock_fd, pid, (size_t) len) != len)
        zsys_warning ("up: cannot write %s: %s", path, strerror (errno));
    if (!self->registry_given)
        s_default_registry (self->registry, sizeof self->registry);
    if (*self->registry && access (self->registry, R_OK) != 0) {
        fprintf (stderr, "pbctl up: cannot read %s: %s\n", self->registry, strerror (errno));
        return PB_CTL_EXIT_USAGE;
    }
    if (!*self->registry && !self->registry_given)
        zsys_warning ("up: no reference data found (deploy/registry.jsonl); "
                      "--registry FILE loads it");
    self->registry_pending = *self->registry != 0;
    for (size_t i = 0; i < S_CHILDREN; i++)
        s_child_argv (self, &self->children [i]);
    return 0;
}

//  --------------------------------------------------------------------------

int
pb_ctl_up (int argc, char *argv [])
{
    s_up_t self;
    memset (&self, 0, sizeof self);
    self.lock_fd = -1;
    pb_ctl_journal_opts_init (&self.opts);
    snprintf (self.data_dir, sizeof self.data_dir, "./var");
    self.metrics_port = 7710;
    int rc = s_parse (&self, argc, argv);
    if (rc == 0 && self.opts.help) {
        fputs (s_help, stdout);
        return PB_CTL_EXIT_OK;
    }
    if (rc == 0)
        rc = s_prepare (&self);
    if (rc == 0) {
        zsys_notice ("up: starting data_dir=%s", self.data_dir);
        for (size_t i = 0; i < S_CHILDREN; i++) {
            s_child_start (&self, &self.children [i]);
            zsys_notice ("up: started %s pid=%d", self.children [i].name,
                         (int) self.children [i].pid);
        }
        bool ready = false;
        while (!zsys_interrupted) {
            s_reap (&self);
            s_restart_due (&self);
            pb_wire_status_t status;
            if ((!ready || self.registry_pending) && self.children [0].pid
            &&  s_journal_answers (&self, 200, &status)) {
                if (self.registry_pending) {
                    s_registry_load (&self);
                    s_journal_answers (&self, 1000, &status);   //  the new head
                }
                if (!ready)
                    s_print_ready (&self, &status);
                ready = true;
            }
            else
                zclock_sleep (S_TURN_MS);
        }
        zsys_notice ("up: stopping");
        //  The workers first: they commit what they hold while the
        //  journal still answers
        bool clean = s_stop (&self, 1, S_CHILDREN);
        clean &= s_stop (&self, 0, 1);
        s_emit (&self, json_pack ("{s:s, s:b}", "event", "stopped", "clean", clean));
        zsys_notice ("up: stopped%s", clean? "": " (some child needed SIGKILL)");
    }
    for (size_t i = 0; i < S_CHILDREN; i++)
        for (size_t a = 0; a < S_ARGS_MAX; a++)
            zstr_free (&self.children [i].argv [a]);
    if (self.lock_fd >= 0)
        close (self.lock_fd);           //  Releases the lock
    return rc;
}
