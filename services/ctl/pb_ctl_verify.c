/*  =========================================================================
    pb_ctl_verify - pbctl verify [--dir DIR]: walk the log's hash chain

    Read-only on the journal's LMDB directory (pb_chain_verify: MDB_RDONLY,
    short read transactions), so it runs beside a live journal or on a
    backup. Names the first record that is altered (it does not hash to
    its chain value) or missing (a gap in the seqs, or the end cut off
    below the chain's anchor), and on an intact log prints the head and
    its hash: an operator who notes that hash elsewhere can later tell
    that nothing up to it was rewritten.
    =========================================================================
*/
#include "pb_ctl.h"
#include "pb_chain.h"

static const char *s_help =
    "Usage: pbctl verify [OPTIONS]\n"
    "Walk the hash chain of the journal's log (read-only; the journal may be\n"
    "running) and name the first record that is altered or missing. Prints\n"
    "'intact head=SEQ hash=HEX', or 'altered seq=SEQ: REASON', or 'missing\n"
    "seq=FIRST..LAST: REASON' (--json: one object with the same fields).\n"
    "Exit 0 intact; 1 altered or missing; 3 no readable log, or one whose\n"
    "chain follows another rule than this pbctl (an older build's: the reason says).\n"
    "Options:\n"
    "  --dir DIR        the journal's data directory (default ./var/journal)\n"
    PB_CTL_JOURNAL_OPTS_HELP;

static void
s_print (const pb_chain_report_t *report, bool json)
{
    char hex [PB_CHAIN_SIZE * 2 + 1];
    for (int i = 0; i < PB_CHAIN_SIZE; i++)
        snprintf (hex + 2 * i, 3, "%02x", report->head_hash [i]);
    if (json) {
        json_t *line = NULL;
        if (report->status == PB_CHAIN_INTACT)
            line = json_pack ("{s:s, s:I, s:s, s:I}", "status", "intact",
                              "head", (json_int_t) report->head, "hash", hex,
                              "checked", (json_int_t) report->checked);
        else
        if (report->status == PB_CHAIN_ALTERED)
            line = json_pack ("{s:s, s:I, s:s}", "status", "altered",
                              "seq", (json_int_t) report->seq, "reason", report->reason);
        else
        if (report->status == PB_CHAIN_MISSING)
            line = json_pack ("{s:s, s:I, s:I, s:s}", "status", "missing",
                              "seq", (json_int_t) report->seq,
                              "last", (json_int_t) report->last, "reason", report->reason);
        else
            line = json_pack ("{s:s, s:s}", "status", "unreadable", "reason",
                              report->reason);
        pb_ctl_json_print (stdout, line);
        json_decref (line);
    }
    else
    if (report->status == PB_CHAIN_INTACT)
        printf ("intact head=%" PRIu64 " hash=%s checked=%" PRIu64 "\n",
                report->head, hex, report->checked);
    else
    if (report->status == PB_CHAIN_ALTERED)
        printf ("altered seq=%" PRIu64 ": %s\n", report->seq, report->reason);
    else
    if (report->status == PB_CHAIN_MISSING)
        printf ("missing seq=%" PRIu64 "..%" PRIu64 ": %s\n", report->seq, report->last,
                report->reason);
    else
        fprintf (stderr, "pbctl verify: %s\n", report->reason);
}

int
pb_ctl_verify (int argc, char *argv [])
{
    pb_ctl_journal_opts_t opts;         //  endpoints accepted, not used
    pb_ctl_journal_opts_init (&opts);
    const char *dir = "./var/journal";
    int i = 1;
    while (i < argc) {
        int rc = pb_ctl_journal_opts_parse (&opts, argc, argv, &i);
        if (rc == PB_CTL_EXIT_USAGE)
            return rc;
        if (rc == 1)
            continue;
        if (streq (argv [i], "--dir") && i + 1 < argc)
            dir = argv [++i];
        else {
            fprintf (stderr, "pbctl verify: unexpected '%s' (see --help)\n", argv [i]);
            return PB_CTL_EXIT_USAGE;
        }
        i++;
    }
    if (opts.help) {
        fputs (s_help, stdout);
        return PB_CTL_EXIT_OK;
    }
    pb_chain_report_t report;
    pb_chain_verify (dir, &report);
    s_print (&report, opts.json);
    fflush (stdout);
    return report.status == PB_CHAIN_INTACT? PB_CTL_EXIT_OK
         : report.status == PB_CHAIN_UNREADABLE? PB_CTL_EXIT_UNREACHABLE
         : PB_CTL_EXIT_REFUSED;
}
