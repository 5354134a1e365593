/*  =========================================================================
    pb_ctl_replay - pbctl replay: logged events to stdout

    Credit flow control (proto/README.md, Replay and control): the journal
    sends at most 4 batches ahead, so a slow reader (a pipe into less)
    holds the journal to its pace instead of filling memory. Progress goes
    to stderr only when stderr is a terminal, so that scripts see nothing
    but the events.
    =========================================================================
*/
#include "pb_ctl.h"
#include "pb_ctl_ops.h"
#include "pb_catalogue.h"
#include "pb_envelope.h"

#include <unistd.h>

#define S_WINDOW 500                    //  re-published events in flight

static const char *s_help =
    "Usage: pbctl replay [OPTIONS]\n"
    "Print the logged events with FROM <= seq <= TO whose type starts with\n"
    "one of the prefixes (all when none), in seq order, on stdout: as JSON\n"
    "lines (the stored envelope: the producer's map with seq and ts; bin\n"
    "values as hex strings) or, with --format msgpack, as the stored\n"
    "MessagePack envelopes one after another, byte for byte. Progress goes\n"
    "to stderr when it is a terminal.\n"
    "With --to ENDPOINT (another journal's ingest, for a test system) the\n"
    "upstream events of the range (registry., nac., cpe., activity.: not\n"
    "sys., ops. or notify.; the target appends its own ticks and its workers\n"
    "derive their own notifications) are re-published there in their\n"
    "producer's form, pipelined, one line per refusal; then ops.replay is\n"
    "logged on this journal. Exit 1 if the target refused any.\n"
    "Options:\n"
    "  --from SEQ        first seq (default 1)\n"
    "  --to SEQ          last seq (default: the head when the replay gets there)\n"
    "  --since TIME      from the first event with ts >= TIME (ms, YYYY-MM-DD\n"
    "                    or YYYY-MM-DDTHH:MM:SSZ; ts is the append time)\n"
    "  --until TIME      up to the last event with ts <= TIME\n"
    "  --to ENDPOINT     re-publish upstream events to this ingest endpoint\n"
    "  --prefix P        type prefix (repeatable, at most 64)\n"
    "  --format F        json (default) or msgpack\n"
    PB_CTL_JOURNAL_OPTS_HELP;

typedef struct {
    zsock_t *target;                    //  --to ENDPOINT: its ingest (owned)
    int timeout_ms;                     //  wait for its answers at most
    uint64_t sent;                      //  re-published
    uint64_t answered;                  //  ACK or NAK received
    uint64_t refused;                   //  NAK
    bool lost;                          //  the target stopped answering
    bool msgpack;                       //  raw output
    bool progress;                      //  stderr is a terminal
    uint64_t count;                     //  events written
    int64_t last_shown;                 //  ms of the last progress line
    bool failed;                        //  stdout write failed
} s_replay_t;

//  One answer of the target's ingest; returns -1 when none came in time
static int
s_target_answer (s_replay_t *self)
{
    zmsg_t *reply = pb_ctl_journal_recv (self->target, self->timeout_ms);
    if (!reply) {
        self->lost = true;
        return -1;
    }
    self->answered++;
    zframe_t *command = zmsg_first (reply);
    zframe_t *body = zmsg_next (reply);
    pb_wire_nak_t nak;
    if (body && zframe_streq (command, "NAK")
    &&  pb_wire_nak_decode (zframe_data (body), zframe_size (body), &nak, NULL, 0) == 0) {
        self->refused++;
        printf ("NAK %s %s: %s\n", nak.has_id? nak.id: "?", pb_nak_code (nak.code),
                nak.error);
    }
    else
    if (!body || !zframe_streq (command, "ACK")) {
        self->refused++;
        printf ("unreadable answer from the target\n");
    }
    zmsg_destroy (&reply);
    return 0;
}

//  --to ENDPOINT: an upstream event, in its producer's form, to the target
static int
s_republish (s_replay_t *self, const void *bytes, size_t size)
{
    pb_limits_t limits = PB_LIMITS_DEFAULTS;
    pb_envelope_t *env = NULL;
    char error [256];
    if (pb_envelope_decode (NULL, 0, bytes, size, PB_ENVELOPE_STORED, &limits, &env,
                            error, sizeof error) != PB_NAK_NONE) {
        fprintf (stderr, "pbctl replay: unreadable event, not re-published: %s\n", error);
        return 0;
    }
    uint8_t *producer = NULL;
    size_t producer_size = 0;
    int rc = 0;
    if (pb_catalogue_owner (env->type_index) == NULL
    &&  pb_envelope_unstore (env, &producer, &producer_size) == 0) {
        zmsg_t *msg = zmsg_new ();
        zmsg_addmem (msg, env->type, env->type_len);
        zmsg_addmem (msg, producer, producer_size);
        free (producer);
        if (zmsg_send (&msg, self->target)) {
            zmsg_destroy (&msg);
            self->lost = true;
            rc = -1;
        }
        else
            self->sent++;
        while (rc == 0 && self->sent - self->answered >= S_WINDOW)
            rc = s_target_answer (self);
    }
    pb_envelope_destroy (&env);
    return rc;
}

static int
s_on_event (const void *bytes, size_t size, void *arg)
{
    s_replay_t *self = (s_replay_t *) arg;
    if (self->target) {
        self->count++;
        return s_republish (self, bytes, size);
    }
    if (self->msgpack) {
        if (fwrite (bytes, 1, size, stdout) != size)
            self->failed = true;
    }
    else {
        char error [256];
        json_t *value = pb_ctl_json_from_bytes (bytes, size, error, sizeof error);
        if (!value) {
            fprintf (stderr, "pbctl replay: unreadable event: %s\n", error);
            value = json_pack ("{s:s}", "unreadable", error);
        }
        if (pb_ctl_json_print (stdout, value))
            self->failed = true;
        json_decref (value);
    }
    self->count++;
    if (self->progress && zclock_mono () - self->last_shown > 200) {
        self->last_shown = zclock_mono ();
        fprintf (stderr, "\rreplay: %" PRIu64 " events", self->count);
    }
    return self->failed? -1: 0;
}

int
pb_ctl_replay (int argc, char *argv [])
{
    pb_ctl_journal_opts_t opts;
    pb_ctl_journal_opts_init (&opts);
    s_replay_t self = { .progress = isatty (2) };
    uint64_t from = 1, to = 0;
    int64_t since = INT64_MIN, until = INT64_MAX;
    const char *endpoint = NULL;
    const char *prefixes [PB_WIRE_PREFIXES_MAX];
    size_t prefix_count = 0;
    int i = 1;
    while (i < argc) {
        int rc = pb_ctl_journal_opts_parse (&opts, argc, argv, &i);
        if (rc == PB_CTL_EXIT_USAGE)
            return rc;
        if (rc == 1)
            continue;
        const char *arg = argv [i];
        const char *value = i + 1 < argc? argv [i + 1]: NULL;
        bool ok = value != NULL;
        if (ok && streq (arg, "--from"))
            ok = pb_ctl_journal_parse_u64 (value, &from) && from >= 1;
        else
        if (ok && streq (arg, "--to") && strstr (value, "://"))
            ok = strlen (value) < PB_CTL_ENDPOINT_MAX && (endpoint = value);
        else
        if (ok && streq (arg, "--to"))
            ok = pb_ctl_journal_parse_u64 (value, &to) && to >= 1;
        else
        if (ok && streq (arg, "--since"))
            ok = pb_ctl_journal_parse_time (value, &since);
        else
        if (ok && streq (arg, "--until"))
            ok = pb_ctl_journal_parse_time (value, &until);
        else
        if (ok && streq (arg, "--prefix"))
            ok = prefix_count < PB_WIRE_PREFIXES_MAX && strlen (value) <= PB_WIRE_PREFIX_MAX
              && (prefixes [prefix_count++] = value);
        else
        if (ok && streq (arg, "--format")) {
            ok = streq (value, "json") || streq (value, "msgpack");
            self.msgpack = streq (value, "msgpack");
        }
        else
            ok = false;
        if (!ok) {
            fprintf (stderr, "pbctl replay: bad or unexpected '%s' (see --help)\n", arg);
            return PB_CTL_EXIT_USAGE;
        }
        i += 2;
    }
    if (opts.help) {
        fputs (s_help, stdout);
        return PB_CTL_EXIT_OK;
    }
    if (to && to < from) {
        fprintf (stderr, "pbctl replay: --to is below --from\n");
        return PB_CTL_EXIT_USAGE;
    }
    if (since > until) {
        fprintf (stderr, "pbctl replay: --until is before --since\n");
        return PB_CTL_EXIT_USAGE;
    }
    if (endpoint && self.msgpack) {
        fprintf (stderr, "pbctl replay: --format goes to stdout, not with --to ENDPOINT\n");
        return PB_CTL_EXIT_USAGE;
    }
    zsock_t *replay = pb_ctl_journal_connect (&opts, ZMQ_DEALER, opts.replay);
    if (!replay)
        return PB_CTL_EXIT_USAGE;
    pb_wire_end_t end = { 0 };
    char error [300] = "";
    int rc = 0;
    //  A time range becomes a seq range
    uint64_t first = 0, after = 0;
    if (since != INT64_MIN)
        rc = pb_ctl_journal_seq_at (replay, since, opts.timeout_ms, &first, error,
                                    sizeof error);
    if (rc == 0 && until != INT64_MAX) {
        rc = pb_ctl_journal_seq_at (replay, until + 1, opts.timeout_ms, &after, error,
                                    sizeof error);
        if (rc == 0 && (to == 0 || after - 1 < to))
            to = after - 1;
    }
    if (first > from)
        from = first;
    bool empty = rc == 0 && (to == 0 && until != INT64_MAX? true: to != 0 && to < from);
    if (endpoint) {
        self.target = pb_ctl_journal_connect (&opts, ZMQ_DEALER, endpoint);
        self.timeout_ms = opts.timeout_ms;
        if (!self.target) {
            zsock_destroy (&replay);
            return PB_CTL_EXIT_USAGE;
        }
    }
    if (rc == 0 && !empty)
        rc = pb_ctl_journal_replay (replay, from, to, prefixes, prefix_count,
                                    opts.timeout_ms, s_on_event, &self, &end,
                                    error, sizeof error);
    if (empty)
        end.through = from - 1;
    while (self.target && !self.lost && self.answered < self.sent)
        s_target_answer (&self);
    if (self.lost) {
        snprintf (error, sizeof error, "the target %s stopped answering after %" PRIu64
                  " of %" PRIu64 " events", endpoint, self.answered, self.sent);
        rc = PB_CTL_EXIT_UNREACHABLE;
    }
    if (self.target && rc == 0) {
        json_t *data = json_pack ("{s:s, s:I, s:I, s:I}", "to", endpoint,
                                  "from", (json_int_t) from,
                                  "through", (json_int_t) end.through,
                                  "events", (json_int_t) self.sent);
        uint64_t logged = 0;
        if (pb_ctl_ops_log (&opts, "ops.replay", data, &logged, error, sizeof error))
            fprintf (stderr, "pbctl replay: re-published, not logged: %s\n", error);
        json_decref (data);
        if (opts.json) {
            json_t *out = json_pack ("{s:s, s:I, s:I, s:I, s:I, s:I}", "to", endpoint,
                                     "from", (json_int_t) from,
                                     "through", (json_int_t) end.through,
                                     "events", (json_int_t) self.sent,
                                     "refused", (json_int_t) self.refused,
                                     "logged", (json_int_t) logged);
            pb_ctl_json_print (stdout, out);
            json_decref (out);
        }
        else
            printf ("re-published %" PRIu64 " upstream events of seq %" PRIu64 "..%" PRIu64
                    " to %s: %" PRIu64 " refused\n", self.sent, from, end.through,
                    endpoint, self.refused);
        if (self.refused)
            rc = PB_CTL_EXIT_REFUSED;
    }
    zsock_destroy (&self.target);
    fflush (stdout);
    if (self.progress)
        fprintf (stderr, "\rreplay: %" PRIu64 " events", self.count);
    if (rc == 0 && self.progress)
        fprintf (stderr, ", through seq %" PRIu64 ", head %" PRIu64 "\n",
                 end.through, end.head);
    if (rc) {
        if (self.progress)
            fprintf (stderr, "\n");
        fprintf (stderr, "pbctl replay: %s\n", self.failed? "cannot write stdout": error);
    }
    zsock_destroy (&replay);
    return rc;
}
