/*  =========================================================================
    pb_ctl_journal - pbctl's connection to the journal

    Replies are awaited with zpoller so that an interrupt (czmq sets
    zsys_interrupted on SIGINT/SIGTERM) and a timeout end the wait the same
    way: NULL, and the caller decides (exit 3, or retry for tail).
    =========================================================================
*/
#include "pb_ctl_journal.h"
#include "pb_sock.h"

#include <msgpack.h>

#include <errno.h>
#include <time.h>

void
pb_ctl_journal_opts_init (pb_ctl_journal_opts_t *opts)
{
    assert (opts);
    memset (opts, 0, sizeof *opts);
    snprintf (opts->ingest, sizeof opts->ingest, "tcp://127.0.0.1:7701");
    snprintf (opts->fanout, sizeof opts->fanout, "tcp://127.0.0.1:7702");
    snprintf (opts->replay, sizeof opts->replay, "tcp://127.0.0.1:7703");
    opts->timeout_ms = 5000;
    const char *cert = getenv ("PBCTL_CERT");
    const char *server_key = getenv ("PBCTL_SERVER_KEY");
    snprintf (opts->cert, sizeof opts->cert, "%s", cert? cert: "");
    snprintf (opts->server_key, sizeof opts->server_key, "%s", server_key? server_key: "");
}

bool
pb_ctl_journal_parse_u64 (const char *text, uint64_t *value_p)
{
    if (!text || *text < '0' || *text > '9')
        return false;
    errno = 0;
    char *end = NULL;
    unsigned long long value = strtoull (text, &end, 10);
    if (errno || *end)
        return false;
    *value_p = (uint64_t) value;
    return true;
}

//  Parse TIME as ms, a date or a date and time (UTC). Returns true and sets
//  *ms_p, or false. Dates must be real calendar dates.
bool
pb_ctl_journal_parse_time (const char *text, int64_t *ms_p)
{
    uint64_t ms = 0;
    if (pb_ctl_journal_parse_u64 (text, &ms)) {
        if (ms > INT64_MAX)
            return false;
        *ms_p = (int64_t) ms;
        return true;
    }
    struct tm tm = { 0 };
    int used = 0;
    int year, month, day, hour = 0, minute = 0, second = 0;
    if (sscanf (text, "%4d-%2d-%2d%n", &year, &month, &day, &used) != 3 || used != 10)
        return false;
    if (text [used] == 'T') {
        int more = 0;
        if (sscanf (text + used, "T%2d:%2d:%2dZ%n", &hour, &minute, &second, &more) != 3
        ||  more != 10 || text [used + more] != 0)
            return false;
    }
    else
    if (text [used] != 0)
        return false;
    if (year < 1970 || month < 1 || month > 12 || day < 1 || day > 31
    ||  hour > 23 || minute > 59 || second > 59 || hour < 0 || minute < 0 || second < 0)
        return false;
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    time_t secs = timegm (&tm);
    struct tm check;
    if (secs < 0 || !gmtime_r (&secs, &check) || check.tm_mday != day
    ||  check.tm_mon != month - 1)
        return false;                   //  2023-02-29 and the like
    *ms_p = (int64_t) secs * 1000;
    return true;
}

//  The value of an option that takes one, or NULL (said on stderr)
static const char *
s_value (int argc, char *argv [], int *index_p)
{
    if (*index_p + 1 >= argc) {
        fprintf (stderr, "pbctl: %s needs a value\n", argv [*index_p]);
        return NULL;
    }
    *index_p += 1;
    return argv [*index_p];
}

static int
s_endpoint (char *dest, const char *value)
{
    if (!value)
        return PB_CTL_EXIT_USAGE;
    if (strlen (value) >= PB_CTL_ENDPOINT_MAX || !*value) {
        fprintf (stderr, "pbctl: endpoint '%.40s...' is empty or too long\n", value);
        return PB_CTL_EXIT_USAGE;
    }
    strcpy (dest, value);
    return 1;
}

int
pb_ctl_journal_opts_parse (pb_ctl_journal_opts_t *opts, int argc,
                           char *argv [], int *index_p)
{
    const char *arg = argv [*index_p];
    int rc = 1;
    if (streq (arg, "--ingest"))
        rc = s_endpoint (opts->ingest, s_value (argc, argv, index_p));
    else
    if (streq (arg, "--fanout"))
        rc = s_endpoint (opts->fanout, s_value (argc, argv, index_p));
    else
    if (streq (arg, "--replay"))
        rc = s_endpoint (opts->replay, s_value (argc, argv, index_p));
    else
    if (streq (arg, "--cert"))
        rc = s_endpoint (opts->cert, s_value (argc, argv, index_p));
    else
    if (streq (arg, "--server-key"))
        rc = s_endpoint (opts->server_key, s_value (argc, argv, index_p));
    else
    if (streq (arg, "--json"))
        opts->json = true;
    else
    if (streq (arg, "--help") || streq (arg, "-h"))
        opts->help = true;
    else
    if (streq (arg, "--timeout")) {
        const char *value = s_value (argc, argv, index_p);
        uint64_t secs = 0;
        if (!value)
            return PB_CTL_EXIT_USAGE;
        if (!pb_ctl_journal_parse_u64 (value, &secs) || secs < 1 || secs > 86400) {
            fprintf (stderr, "pbctl: --timeout wants whole seconds 1..86400\n");
            return PB_CTL_EXIT_USAGE;
        }
        opts->timeout_ms = (int) secs * 1000;
    }
    else
        return 0;
    if (rc == 1)
        *index_p += 1;
    return rc;
}

zsock_t *
pb_ctl_journal_connect (const pb_ctl_journal_opts_t *opts, int type, const char *endpoint)
{
    assert (opts);
    char spec [PB_CTL_ENDPOINT_MAX + 2];
    snprintf (spec, sizeof spec, ">%s", endpoint);
    if (!*opts->cert)
        return pb_sock_new (type, spec, NULL);
    pb_sock_opts_t sock_opts = PB_SOCK_OPTS_DEFAULTS;
    zcert_t *cert = NULL;
    char server_key [41];
    if (!*opts->server_key) {
        zsys_error ("pbctl: --cert needs --server-key (the journal's public key)");
        return NULL;
    }
    if (pb_sock_server_key (opts->server_key, "--server-key", server_key)
    ||  pb_sock_cert_load (opts->cert, "--cert", &cert))
        return NULL;                    //  Logged
    sock_opts.curve_cert = cert;
    sock_opts.curve_server = server_key;
    zsock_t *sock = pb_sock_new (type, spec, &sock_opts);
    zcert_destroy (&cert);              //  The socket has copied the keys
    return sock;
}

zmsg_t *
pb_ctl_journal_recv (zsock_t *sock, int timeout_ms)
{
    assert (sock);
    zpoller_t *poller = zpoller_new (sock, NULL);
    assert (poller);
    zmsg_t *msg = NULL;
    if (zpoller_wait (poller, timeout_ms) == sock)
        msg = zmsg_recv (sock);
    zpoller_destroy (&poller);
    return msg;
}

int
pb_ctl_journal_send (zsock_t *sock, const char *command, const void *map,
                     size_t size)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, command);
    if (map)
        zmsg_addmem (msg, map, size);
    return zmsg_send (&msg, sock);
}

int
pb_ctl_journal_status (zsock_t *replay, int timeout_ms,
                       pb_wire_status_t *status, char *error,
                       size_t error_size)
{
    if (pb_ctl_journal_send (replay, "STATUS", NULL, 0))
        return PB_CTL_EXIT_UNREACHABLE;
    zmsg_t *reply = pb_ctl_journal_recv (replay, timeout_ms);
    if (!reply) {
        snprintf (error, error_size, "no answer to STATUS");
        return PB_CTL_EXIT_UNREACHABLE;
    }
    int rc = PB_CTL_EXIT_REFUSED;
    zframe_t *cmd = zmsg_first (reply);
    zframe_t *map = zmsg_next (reply);
    if (zmsg_size (reply) == 2
    &&  pb_wire_command (zframe_data (cmd), zframe_size (cmd)) == PB_WIRE_STATUS) {
        if (pb_wire_status_decode (zframe_data (map), zframe_size (map),
                                   status, error, error_size) == 0)
            rc = 0;
    }
    else
        snprintf (error, error_size, "the answer to STATUS is not STATUS");
    zmsg_destroy (&reply);
    return rc;
}

//  One reply of a replay: 1 more EVENTS to go on, 0 at END, or an exit code
static int
s_replay_reply (zsock_t *replay, zmsg_t *reply, pb_ctl_journal_event_fn *fn,
                void *arg, pb_wire_end_t *end, char *error, size_t error_size)
{
    zframe_t *frame = zmsg_first (reply);
    pb_wire_cmd_t command = pb_wire_command (zframe_data (frame), zframe_size (frame));
    if (command == PB_WIRE_EVENTS) {
        for (frame = zmsg_next (reply); frame; frame = zmsg_next (reply))
            if (fn (zframe_data (frame), zframe_size (frame), arg)) {
                pb_ctl_journal_send (replay, "CANCEL", NULL, 0);
                snprintf (error, error_size, "stopped by the reader");
                return PB_CTL_EXIT_REFUSED;
            }
        uint8_t map [PB_WIRE_REPLY_MAX];
        size_t size = 0;
        int rc = pb_wire_credit_encode (1, map, sizeof map, &size);
        assert (rc == 0);
        pb_ctl_journal_send (replay, "CREDIT", map, size);
        return 1;
    }
    frame = zmsg_next (reply);
    if (!frame || zmsg_size (reply) != 2) {
        snprintf (error, error_size, "unreadable reply to REPLAY");
        return PB_CTL_EXIT_REFUSED;
    }
    if (command == PB_WIRE_END) {
        if (pb_wire_end_decode (zframe_data (frame), zframe_size (frame), end,
                                error, error_size))
            return PB_CTL_EXIT_REFUSED;
        return 0;
    }
    pb_wire_error_t refusal;
    if (command == PB_WIRE_ERROR
    &&  pb_wire_error_decode (zframe_data (frame), zframe_size (frame), &refusal,
                              error, error_size) == 0)
        snprintf (error, error_size, "%s: %s", pb_wire_refusal_code (refusal.code),
                  refusal.error);
    else
        snprintf (error, error_size, "unreadable reply to REPLAY");
    return PB_CTL_EXIT_REFUSED;
}

int
pb_ctl_journal_replay (zsock_t *replay, uint64_t from, uint64_t to,
                       const char *const *prefixes, size_t prefix_count,
                       int timeout_ms, pb_ctl_journal_event_fn *fn, void *arg,
                       pb_wire_end_t *end, char *error, size_t error_size)
{
    uint8_t map [PB_WIRE_REQUEST_MAX];
    size_t size = 0;
    if (pb_wire_replay_encode (from, to, prefixes, prefix_count, 4, map,
                               sizeof map, &size)) {
        snprintf (error, error_size, "REPLAY request does not fit (prefixes?)");
        return PB_CTL_EXIT_USAGE;
    }
    if (pb_ctl_journal_send (replay, "REPLAY", map, size)) {
        snprintf (error, error_size, "cannot send REPLAY");
        return PB_CTL_EXIT_UNREACHABLE;
    }
    int rc = 1;
    while (rc == 1) {
        zmsg_t *reply = pb_ctl_journal_recv (replay, timeout_ms);
        if (!reply) {
            snprintf (error, error_size, "no answer to REPLAY in %d ms", timeout_ms);
            return PB_CTL_EXIT_UNREACHABLE;
        }
        rc = s_replay_reply (replay, reply, fn, arg, end, error, error_size);
        zmsg_destroy (&reply);
    }
    return rc;
}

//  The ts of the one event a replay of one seq sends
static int
s_on_ts (const void *bytes, size_t size, void *arg)
{
    int64_t *ts_p = (int64_t *) arg;
    msgpack_unpacked result;
    msgpack_unpacked_init (&result);
    if (msgpack_unpack_next (&result, bytes, size, NULL) == MSGPACK_UNPACK_SUCCESS
    &&  result.data.type == MSGPACK_OBJECT_MAP) {
        const msgpack_object_map *map = &result.data.via.map;
        for (uint32_t i = 0; i < map->size; i++) {
            const msgpack_object *key = &map->ptr [i].key;
            const msgpack_object *value = &map->ptr [i].val;
            if (key->type == MSGPACK_OBJECT_STR && key->via.str.size == 2
            &&  memcmp (key->via.str.ptr, "ts", 2) == 0)
                *ts_p = value->type == MSGPACK_OBJECT_NEGATIVE_INTEGER? value->via.i64
                      : (int64_t) value->via.u64;
        }
    }
    msgpack_unpacked_destroy (&result);
    return 0;
}

int
pb_ctl_journal_seq_at (zsock_t *replay, int64_t ms, int timeout_ms,
                       uint64_t *seq_p, char *error, size_t error_size)
{
    pb_wire_status_t status;
    int rc = pb_ctl_journal_status (replay, timeout_ms, &status, error, error_size);
    uint64_t low = 1, high = status.head + 1;  //  the answer is in [low, high]
    while (rc == 0 && low < high) {
        uint64_t mid = low + (high - low) / 2;
        int64_t ts = INT64_MIN;
        pb_wire_end_t end;
        rc = pb_ctl_journal_replay (replay, mid, mid, NULL, 0, timeout_ms, s_on_ts, &ts,
                                    &end, error, error_size);
        if (ts >= ms)
            high = mid;
        else
            low = mid + 1;
    }
    if (rc == 0)
        *seq_p = low;
    return rc;
}

const char *
pb_ctl_journal_iso (int64_t ms, char *buf, size_t size)
{
    time_t secs = (time_t) (ms / 1000);
    int msecs = (int) (ms % 1000);
    if (msecs < 0) {
        msecs += 1000;
        secs -= 1;
    }
    struct tm tm;
    if (!gmtime_r (&secs, &tm)) {
        snprintf (buf, size, "%" PRId64, ms);
        return buf;
    }
    size_t len = strftime (buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (buf + len, size - len, ".%03dZ", msecs);
    return buf;
}

//  --------------------------------------------------------------------------
//  Self test: options and formatting (the sockets are exercised by
//  tests/it/it_pbctl.py against a real journal)

void
pb_ctl_journal_test (bool verbose)
{
    printf (" * pb_ctl_journal: ");
    pb_ctl_journal_opts_t opts;
    pb_ctl_journal_opts_init (&opts);
    char *argv [] = { "--ingest", "tcp://127.0.0.1:9", "--json", "--timeout",
                      "2", "--replay", "x", "rest", "--timeout", "0",
                      "--fanout" };
    int argc = sizeof argv / sizeof argv [0];
    int i = 0;
    assert (pb_ctl_journal_opts_parse (&opts, argc, argv, &i) == 1 && i == 2);
    assert (streq (opts.ingest, "tcp://127.0.0.1:9"));
    assert (pb_ctl_journal_opts_parse (&opts, argc, argv, &i) == 1 && i == 3);
    assert (opts.json);
    assert (pb_ctl_journal_opts_parse (&opts, argc, argv, &i) == 1 && i == 5);
    assert (opts.timeout_ms == 2000);
    assert (pb_ctl_journal_opts_parse (&opts, argc, argv, &i) == 1 && i == 7);
    assert (pb_ctl_journal_opts_parse (&opts, argc, argv, &i) == 0 && i == 7);
    i = 8;
    assert (pb_ctl_journal_opts_parse (&opts, argc, argv, &i) == PB_CTL_EXIT_USAGE);
    i = 10;
    assert (pb_ctl_journal_opts_parse (&opts, argc, argv, &i) == PB_CTL_EXIT_USAGE);
    assert (streq (opts.fanout, "tcp://127.0.0.1:7702"));

    uint64_t value = 0;
    assert (pb_ctl_journal_parse_u64 ("42", &value) && value == 42);
    assert (!pb_ctl_journal_parse_u64 ("-1", &value));
    assert (!pb_ctl_journal_parse_u64 ("4x", &value));
    assert (!pb_ctl_journal_parse_u64 ("", &value));
    assert (!pb_ctl_journal_parse_u64 ("99999999999999999999999", &value));

    char buf [32];
    assert (streq (pb_ctl_journal_iso (0, buf, sizeof buf), "1970-01-01T00:00:00.000Z"));
    assert (streq (pb_ctl_journal_iso (1767225600123, buf, sizeof buf),
                   "2026-01-01T00:00:00.123Z"));
    printf ("OK\n");
}
