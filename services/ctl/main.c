/*  =========================================================================
    pbctl - the operator's tool for partnerbus (thin dispatch)
    =========================================================================
*/
#include "pb_ctl.h"

typedef struct {
    const char *name;                   //  subcommand word
    int (*run) (int argc, char *argv []);   //  its entry point
    const char *summary;                //  one line for pbctl --help
} s_command_t;

static const s_command_t s_commands [] = {
    { "publish", pb_ctl_publish, "publish events from JSON lines (FILE or stdin)" },
    { "tick",    pb_ctl_tick,    "advance a manual-clock journal's log time" },
    { "status",  pb_ctl_status,  "head, rates; workers' lag, quarantine, store sizes" },
    { "replay",  pb_ctl_replay,  "print logged events (range, prefixes)" },
    { "tail",    pb_ctl_tail,    "follow live events, optionally from history" },
    { "state",   pb_ctl_state,   "print a worker's state keys (read-only)" },
    { "up",      pb_ctl_up,      "run and supervise the journal and the workers" },
    { "keygen",  pb_ctl_keygen,  "create a CurveZMQ certificate (public + secret file)" },
    { "verify",  pb_ctl_verify,  "walk the log's hash chain, name what is altered" },
    { "rebuild", pb_ctl_rebuild, "rebuild a worker's store from the log, compare, swap" },
    { "export",  pb_ctl_export,  "write the log to a portable, verified file" },
    { "import",  pb_ctl_import,  "append an export to an empty (or prefix) journal" },
    { "trace",   pb_ctl_trace,   "an event's causes and effects (by cause)" },
    { "quarantine", pb_ctl_quarantine, "list, show or redrive quarantined events" },
    { NULL, NULL, NULL }
};

static void
s_usage (FILE *out)
{
    fprintf (out, "Usage: pbctl SUBCOMMAND [OPTIONS] [ARGS]\n\nSubcommands:\n");
    for (const s_command_t *c = s_commands; c->name; c++)
        fprintf (out, "  %-10s %s\n", c->name, c->summary);
    fprintf (out, "\n'pbctl SUBCOMMAND --help' describes each one.\n%s",
             "Exit codes: 0 ok; 1 some input refused or difference found; 2 usage\n"
             "error; 3 journal unreachable or timeout.\n");
}

int
main (int argc, char *argv [])
{
    zsys_init ();                       //  SIGINT/SIGTERM set zsys_interrupted
    zsys_set_logstream (stderr);        //  stdout is for results only
    zsys_set_logident ("pbctl");
    if (argc < 2) {
        s_usage (stderr);
        return PB_CTL_EXIT_USAGE;
    }
    if (streq (argv [1], "--help") || streq (argv [1], "-h") || streq (argv [1], "help")) {
        s_usage (stdout);
        return PB_CTL_EXIT_OK;
    }
    for (const s_command_t *c = s_commands; c->name; c++)
        if (streq (argv [1], c->name))
            return c->run (argc - 1, argv + 1);
    fprintf (stderr, "pbctl: unknown subcommand '%s'\n", argv [1]);
    s_usage (stderr);
    return PB_CTL_EXIT_USAGE;
}
