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

#include <unistd.h>

static const char *s_help =
    "Usage: pbctl replay [OPTIONS]\n"
    "Print the logged events with FROM <= seq <= TO whose type starts with\n"
    "one of the prefixes (all when none), in seq order, on stdout: as JSON\n"
    "lines (the stored envelope: the producer's map with seq and ts; bin\n"
    "values as hex strings) or, with --format msgpack, as the stored\n"
    "MessagePack envelopes one after another, byte for byte. Progress goes\n"
    "to stderr when it is a terminal.\n"
    "Options:\n"
    "  --from SEQ        first seq (default 1)\n"
    "  --to SEQ          last seq (default: the head when the replay gets there)\n"
    "  --prefix P        type prefix (repeatable, at most 64)\n"
    "  --format F        json (default) or msgpack\n"
    PB_CTL_JOURNAL_OPTS_HELP;

typedef struct {
    bool msgpack;                       //  raw output
    bool progress;                      //  stderr is a terminal
    uint64_t count;                     //  events written
    int64_t last_shown;                 //  ms of the last progress line
    bool failed;                        //  stdout write failed
} s_replay_t;

static int
s_on_event (const void *bytes, size_t size, void *arg)
{
    s_replay_t *self = (s_replay_t *) arg;
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
        if (ok && streq (arg, "--to"))
            ok = pb_ctl_journal_parse_u64 (value, &to) && to >= 1;
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
    zsock_t *replay = pb_ctl_journal_connect (ZMQ_DEALER, opts.replay);
    if (!replay)
        return PB_CTL_EXIT_USAGE;
    pb_wire_end_t end = { 0 };
    char error [300] = "";
    int rc = pb_ctl_journal_replay (replay, from, to, prefixes, prefix_count,
                                    opts.timeout_ms, s_on_event, &self, &end,
                                    error, sizeof error);
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
