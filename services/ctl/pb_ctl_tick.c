/*  =========================================================================
    pb_ctl_tick - pbctl tick --now TIME: TICK on a manual-clock journal

    The journal appends sys.tick {now} and answers TICKED {seq, now}; a now
    equal to the log time answers the tick already logged, a smaller one is
    refused as 'backwards', and an automatic clock as 'not_manual'
    (proto/README.md, Replay and control).
    =========================================================================
*/
#include "pb_ctl.h"

#include <time.h>

static const char *s_help =
    "Usage: pbctl tick --now TIME [OPTIONS]\n"
    "Append sys.tick with log time TIME to a journal started with --clock\n"
    "manual, and print the seq of the tick (TICKED). TIME is milliseconds\n"
    "since the Unix epoch, or YYYY-MM-DD (midnight UTC), or\n"
    "YYYY-MM-DDTHH:MM:SSZ. A TIME below the log time is refused (backwards),\n"
    "as is any tick on an automatic clock (not_manual): exit 1.\n"
    "Output: 'TICKED seq SEQ now MS (ISO)'; --json: {seq, now}.\n"
    "Options:\n"
    "  --now TIME       the new log time (required)\n"
    PB_CTL_JOURNAL_OPTS_HELP;


static int
s_request (pb_ctl_journal_opts_t *opts, zsock_t *replay, int64_t now)
{
    uint8_t map [PB_WIRE_REPLY_MAX];
    size_t size = 0;
    int rc = pb_wire_tick_encode (now, map, sizeof map, &size);
    assert (rc == 0);
    if (pb_ctl_journal_send (replay, "TICK", map, size))
        return PB_CTL_EXIT_UNREACHABLE;
    zmsg_t *reply = pb_ctl_journal_recv (replay, opts->timeout_ms);
    if (!reply) {
        fprintf (stderr, "pbctl tick: no answer from %s in %d ms\n",
                 opts->replay, opts->timeout_ms);
        return PB_CTL_EXIT_UNREACHABLE;
    }
    zframe_t *cmd = zmsg_first (reply);
    zframe_t *body = zmsg_next (reply);
    pb_wire_cmd_t command = zmsg_size (reply) == 2
        ? pb_wire_command (zframe_data (cmd), zframe_size (cmd)): PB_WIRE_UNKNOWN;
    char error [256] = "not TICKED or ERROR";
    uint64_t seq = 0;
    int64_t logged = 0;
    pb_wire_error_t refusal;
    rc = PB_CTL_EXIT_REFUSED;
    if (command == PB_WIRE_TICKED
    &&  pb_wire_ticked_decode (zframe_data (body), zframe_size (body), &seq,
                               &logged, error, sizeof error) == 0) {
        char iso [32];
        if (opts->json)
            printf ("{\"seq\":%" PRIu64 ",\"now\":%" PRId64 "}\n", seq, logged);
        else
            printf ("TICKED seq %" PRIu64 " now %" PRId64 " (%s)\n", seq, logged,
                    pb_ctl_journal_iso (logged, iso, sizeof iso));
        rc = PB_CTL_EXIT_OK;
    }
    else
    if (command == PB_WIRE_ERROR
    &&  pb_wire_error_decode (zframe_data (body), zframe_size (body), &refusal,
                              error, sizeof error) == 0) {
        if (opts->json) {
            json_t *obj = json_pack ("{s:s, s:s}", "code",
                                     pb_wire_refusal_code (refusal.code),
                                     "error", refusal.error);
            pb_ctl_json_print (stdout, obj);
            json_decref (obj);
        }
        else
            printf ("ERROR %s: %s\n", pb_wire_refusal_code (refusal.code), refusal.error);
    }
    else
        fprintf (stderr, "pbctl tick: unreadable answer: %s\n", error);
    zmsg_destroy (&reply);
    return rc;
}

int
pb_ctl_tick (int argc, char *argv [])
{
    pb_ctl_journal_opts_t opts;
    pb_ctl_journal_opts_init (&opts);
    const char *now_text = NULL;
    int i = 1;
    while (i < argc) {
        int rc = pb_ctl_journal_opts_parse (&opts, argc, argv, &i);
        if (rc == PB_CTL_EXIT_USAGE)
            return rc;
        if (rc == 1)
            continue;
        if (streq (argv [i], "--now") && i + 1 < argc)
            now_text = argv [++i];
        else {
            fprintf (stderr, "pbctl tick: unexpected '%s' (see --help)\n", argv [i]);
            return PB_CTL_EXIT_USAGE;
        }
        i++;
    }
    if (opts.help) {
        fputs (s_help, stdout);
        return PB_CTL_EXIT_OK;
    }
    int64_t now = 0;
    if (!now_text || !pb_ctl_journal_parse_time (now_text, &now)) {
        fprintf (stderr, "pbctl tick: --now wants ms, YYYY-MM-DD or "
                 "YYYY-MM-DDTHH:MM:SSZ (see --help)\n");
        return PB_CTL_EXIT_USAGE;
    }
    zsock_t *replay = pb_ctl_journal_connect (&opts, ZMQ_DEALER, opts.replay);
    if (!replay)
        return PB_CTL_EXIT_USAGE;
    int rc = s_request (&opts, replay, now);
    zsock_destroy (&replay);
    return rc;
}
