/*  =========================================================================
    pb_ctl_trace - pbctl trace SEQ: the causation chain of an event

    Backward: the event's 'cause' (the seq of the event a worker derived
    it from), that event's cause, and so on to an upstream event, one
    REPLAY of one seq each. Forward: every event whose 'cause' is the
    event or one of its effects, transitively. A cause always comes before
    what it causes, so one pass over the notify.* events after SEQ, in seq
    order (filtered by the journal), finds them all: an event joins the
    set when its cause is in it. Only notifications carry a cause
    (proto/README.md, envelope decoding), so the forward pass asks for the
    notify. prefix only.
    =========================================================================
*/
#include "pb_ctl.h"

#include <unistd.h>

static const char *s_help =
    "Usage: pbctl trace [OPTIONS] SEQ\n"
    "Print the causation chain of the event SEQ: backward, its cause, the\n"
    "cause of that, ... (each notification's 'cause' is the seq it was\n"
    "derived from), then the event, then forward everything it caused,\n"
    "transitively, in seq order, indented by depth. --json: one object per\n"
    "event, {role: cause|event|effect, depth, event}. Exit 1 if there is no\n"
    "event SEQ.\n"
    "Options:\n"
    "  --to SEQ         look for effects up to this seq (default: the head)\n"
    PB_CTL_JOURNAL_OPTS_HELP;

typedef struct {
    json_t *found;                      //  the one event read (owned)
    zhashx_t *depths;                   //  seq "%llu" of the set -> depth (owned)
    bool json;                          //  JSON lines
    uint64_t effects;                   //  printed forward
    bool progress;                      //  stderr is a terminal
    int64_t shown;                      //  when progress was last shown
    uint64_t to;                        //  the forward pass ends here
} s_trace_t;

static int
s_on_one (const void *bytes, size_t size, void *arg)
{
    s_trace_t *self = (s_trace_t *) arg;
    json_decref (self->found);
    self->found = pb_ctl_json_from_bytes (bytes, size, NULL, 0);
    return 0;
}

//  The event at 'seq', or NULL (absent or unreadable). Caller owns it.
static json_t *
s_read (s_trace_t *self, zsock_t *replay, uint64_t seq, int timeout_ms, int *rc_p)
{
    pb_wire_end_t end;
    char error [300];
    self->found = NULL;
    *rc_p = pb_ctl_journal_replay (replay, seq, seq, NULL, 0, timeout_ms, s_on_one, self,
                                   &end, error, sizeof error);
    if (*rc_p)
        fprintf (stderr, "pbctl trace: %s\n", error);
    json_t *found = self->found;
    self->found = NULL;
    return found;
}

static uint64_t
s_int (const json_t *env, const char *key)
{
    const json_t *value = json_object_get (env, key);
    return json_is_integer (value) && json_integer_value (value) > 0
         ? (uint64_t) json_integer_value (value): 0;
}

static void
s_show (s_trace_t *self, const char *role, int depth, json_t *env)
{
    if (self->json) {
        json_t *line = json_pack ("{s:s, s:i, s:O}", "role", role, "depth", depth,
                                  "event", env);
        pb_ctl_json_print (stdout, line);
        json_decref (line);
        return;
    }
    char ts [40];
    const char *type = json_string_value (json_object_get (env, "type"));
    const char *src = json_string_value (json_object_get (env, "src"));
    const char *id = json_string_value (json_object_get (env, "id"));
    char *data = json_dumps (json_object_get (env, "data"), JSON_COMPACT);
    printf ("%*s%-6s seq %" PRIu64 " %s %s %s/%s", depth * 2, "", role, s_int (env, "seq"),
            pb_ctl_journal_iso ((int64_t) json_integer_value (json_object_get (env, "ts")),
                                ts, sizeof ts),
            type? type: "?", src? src: "?", id? id: "?");
    if (s_int (env, "cause"))
        printf (" cause %" PRIu64, s_int (env, "cause"));
    printf (" %s\n", data? data: "");
    free (data);
}

static int
s_on_effect (const void *bytes, size_t size, void *arg)
{
    s_trace_t *self = (s_trace_t *) arg;
    json_t *env = pb_ctl_json_from_bytes (bytes, size, NULL, 0);
    uint64_t cause = env? s_int (env, "cause"): 0;
    char key [24];
    snprintf (key, sizeof key, "%" PRIu64, cause);
    void *depth = cause? zhashx_lookup (self->depths, key): NULL;
    if (depth) {
        int d = (int) (intptr_t) depth;
        snprintf (key, sizeof key, "%" PRIu64, s_int (env, "seq"));
        zhashx_insert (self->depths, key, (void *) (intptr_t) (d + 1));
        s_show (self, "effect", d, env);
        self->effects++;
    }
    if (self->progress && zclock_mono () - self->shown > 200) {
        self->shown = zclock_mono ();
        fprintf (stderr, "\rtrace: seq %" PRIu64 " of %" PRIu64 "\r", s_int (env, "seq"),
                 self->to);
    }
    json_decref (env);
    return 0;
}

//  zlistx hands its destructor the address of the item
static void
s_json_destructor (void **item)
{
    json_decref ((json_t *) *item);
    *item = NULL;
}

int
pb_ctl_trace (int argc, char *argv [])
{
    pb_ctl_journal_opts_t opts;
    pb_ctl_journal_opts_init (&opts);
    uint64_t seq = 0, to = 0;
    int i = 1;
    while (i < argc) {
        int rc = pb_ctl_journal_opts_parse (&opts, argc, argv, &i);
        if (rc == PB_CTL_EXIT_USAGE)
            return rc;
        if (rc == 1)
            continue;
        if (streq (argv [i], "--to") && i + 1 < argc
        &&  pb_ctl_journal_parse_u64 (argv [i + 1], &to) && to >= 1)
            i++;
        else
        if (!seq && pb_ctl_journal_parse_u64 (argv [i], &seq) && seq >= 1)
            ;
        else {
            fprintf (stderr, "pbctl trace: bad or unexpected '%s' (see --help)\n", argv [i]);
            return PB_CTL_EXIT_USAGE;
        }
        i++;
    }
    if (opts.help) {
        fputs (s_help, stdout);
        return PB_CTL_EXIT_OK;
    }
    if (!seq) {
        fprintf (stderr, "pbctl trace: SEQ is missing (see --help)\n");
        return PB_CTL_EXIT_USAGE;
    }
    zsock_t *replay = pb_ctl_journal_connect (&opts, ZMQ_DEALER, opts.replay);
    if (!replay)
        return PB_CTL_EXIT_USAGE;
    s_trace_t self = { .json = opts.json, .progress = isatty (2) };
    self.depths = zhashx_new ();
    int rc = 0;
    json_t *event = s_read (&self, replay, seq, opts.timeout_ms, &rc);
    if (!event && rc == 0) {
        fprintf (stderr, "pbctl trace: no event %" PRIu64 " in the log\n", seq);
        rc = PB_CTL_EXIT_REFUSED;
    }
    //  Backward, printed from the oldest cause
    zlistx_t *causes = zlistx_new ();
    zlistx_set_destructor (causes, s_json_destructor);
    uint64_t cause = event? s_int (event, "cause"): 0;
    while (rc == 0 && cause) {
        json_t *env = s_read (&self, replay, cause, opts.timeout_ms, &rc);
        if (!env) {
            if (rc == 0)
                fprintf (stderr, "pbctl trace: cause %" PRIu64 " is not in the log\n", cause);
            break;
        }
        uint64_t next = s_int (env, "cause");
        zlistx_add_start (causes, env);
        if (next >= cause)
            break;                      //  A cause is always older: never loop
        cause = next;
    }
    int depth = 0;
    for (json_t *env = (json_t *) zlistx_first (causes); env;
         env = (json_t *) zlistx_next (causes))
        s_show (&self, "cause", depth++, env);
    if (event)
        s_show (&self, "event", depth, event);
    //  Forward
    pb_wire_status_t status;
    char error [300] = "";
    if (rc == 0)
        rc = pb_ctl_journal_status (replay, opts.timeout_ms, &status, error, sizeof error);
    if (rc == 0) {
        self.to = to && to < status.head? to: status.head;
        char key [24];
        snprintf (key, sizeof key, "%" PRIu64, seq);
        zhashx_insert (self.depths, key, (void *) (intptr_t) (depth + 1));
        const char *prefixes [] = { "notify." };
        pb_wire_end_t end;
        if (seq < self.to)
            rc = pb_ctl_journal_replay (replay, seq + 1, self.to, prefixes, 1,
                                        opts.timeout_ms, s_on_effect, &self, &end,
                                        error, sizeof error);
        if (self.progress)
            fprintf (stderr, "%40s\r", "");
    }
    if (rc && error [0])
        fprintf (stderr, "pbctl trace: %s\n", error);
    if (rc == 0 && !opts.json)
        printf ("%zu causes, %" PRIu64 " effects through seq %" PRIu64 "\n",
                zlistx_size (causes), self.effects, self.to);
    zlistx_destroy (&causes);
    json_decref (event);
    zhashx_destroy (&self.depths);
    zsock_destroy (&replay);
    return rc;
}
