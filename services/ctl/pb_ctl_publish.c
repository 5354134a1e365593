/*  =========================================================================
    pb_ctl_publish - pbctl publish [FILE|-]: events from JSON lines

    Each non-empty line that does not start with '#' is one envelope
    {id, src, type, data[, time][, cause]} as JSON. It is packed faithfully
    (pb_ctl_json.h) and sent on a DEALER to ingest with its "type" as the
    type frame; the journal judges it (a line that is JSON but not an
    envelope gets the journal's NAK, not ours). Sends are pipelined up to
    a window; replies come in the order of the requests (proto/README.md,
    Ingest), so each reply belongs to the oldest line still waiting, and
    results are printed in input order, one per line.

    A line that is not JSON stops the reading there (nothing after it is
    published) unless --keep-going: a file cut in the middle, or the wrong
    file, should not be half published by accident.
    =========================================================================
*/
#include "pb_ctl.h"

#define S_WINDOW     1000               //  lines in flight
#define S_FRAME_MAX  (1048576 - 1024)   //  under every socket's limit

typedef struct {
    size_t line;                        //  input line number
    bool waiting;                       //  sent, no reply yet
    json_t *id;                         //  the line's "id" (owned, or NULL)
    json_t *result;                     //  result object once known (owned)
} s_entry_t;

typedef struct {
    pb_ctl_journal_opts_t opts;         //  endpoints, --json, --timeout
    bool keep_going;                    //  publish past malformed lines
    const char *path;                   //  FILE, or "-" for stdin
    zsock_t *ingest;                    //  DEALER (owned)
    zlistx_t *entries;                  //  s_entry_t *, input order (owned)
    size_t waiting;                     //  entries sent and unanswered
    bool refused;                       //  some line NAKed or invalid
    bool quiet;                         //  print no result lines
    size_t acked;                       //  lines ACKed
} s_publish_t;

static const char *s_help =
    "Usage: pbctl publish [OPTIONS] [FILE|-]\n"
    "Publish events from JSON lines (FILE, or stdin when absent or '-'): one\n"
    "envelope {id, src, type, data[, time][, cause]} per line; blank lines and\n"
    "lines starting with '#' are skipped. JSON integers are sent as MessagePack\n"
    "integers, reals as float64, strings as str. Prints one result per input\n"
    "line, in input order: 'line N: ACK ID seq SEQ', 'line N: NAK ID CODE: ERROR'\n"
    "or 'line N: invalid JSON: ...'; with --json, objects {line, result:\n"
    "\"ACK\"|\"NAK\"|\"invalid\"|\"timeout\", id, seq | code, error}.\n"
    "A line that is not JSON stops the publishing there (nothing after it is\n"
    "sent) unless --keep-going. Ids are stable: publishing a file again\n"
    "answers each line with its first seq and appends nothing.\n"
    "Options:\n"
    "  --keep-going     publish the lines after a malformed one too\n"
    PB_CTL_JOURNAL_OPTS_HELP;

static void
s_entry_destroy (void **item_p)
{
    s_entry_t *entry = (s_entry_t *) *item_p;
    if (entry) {
        json_decref (entry->id);
        json_decref (entry->result);
        free (entry);
        *item_p = NULL;
    }
}

static json_t *
s_result (s_entry_t *entry, const char *result)
{
    json_t *obj = json_object ();
    json_object_set_new (obj, "line", json_integer ((json_int_t) entry->line));
    json_object_set_new (obj, "result", json_string (result));
    if (entry->id)
        json_object_set (obj, "id", entry->id);
    return obj;
}

static void
s_print (s_publish_t *self, const json_t *result)
{
    if (self->quiet)
        return;
    if (self->opts.json) {
        pb_ctl_json_print (stdout, result);
        return;
    }
    const char *kind = json_string_value (json_object_get (result, "result"));
    json_int_t line = json_integer_value (json_object_get (result, "line"));
    json_t *id_value = json_object_get (result, "id");
    char *id = id_value? json_dumps (id_value, JSON_ENCODE_ANY): strdup ("-");
    if (json_is_string (id_value)) {
        free (id);
        id = strdup (json_string_value (id_value));
    }
    if (streq (kind, "ACK"))
        printf ("line %lld: ACK %s seq %lld\n", (long long) line, id,
                (long long) json_integer_value (json_object_get (result, "seq")));
    else
    if (streq (kind, "NAK"))
        printf ("line %lld: NAK %s %s: %s\n", (long long) line, id,
                json_string_value (json_object_get (result, "code")),
                json_string_value (json_object_get (result, "error")));
    else
    if (streq (kind, "invalid"))
        printf ("line %lld: invalid %s\n", (long long) line,
                json_string_value (json_object_get (result, "error")));
    else
        printf ("line %lld: TIMEOUT %s (no answer from the journal)\n",
                (long long) line, id);
    free (id);
    fflush (stdout);
}

//  Print and drop the finished entries at the head, in input order
static void
s_flush (s_publish_t *self)
{
    s_entry_t *entry = (s_entry_t *) zlistx_first (self->entries);
    while (entry && !entry->waiting) {
        s_print (self, entry->result);
        zlistx_delete (self->entries, zlistx_cursor (self->entries));
        entry = (s_entry_t *) zlistx_first (self->entries);
    }
}

static s_entry_t *
s_entry_new (s_publish_t *self, size_t line)
{
    s_entry_t *entry = (s_entry_t *) zmalloc (sizeof *entry);
    entry->line = line;
    zlistx_add_end (self->entries, entry);
    return entry;
}

//  One line of input: refuse it, or pack and send it. Returns false if the
//  reading must stop here.
static bool
s_line (s_publish_t *self, const char *text, size_t line)
{
    json_error_t jerr;
    json_t *env = json_loads (text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    s_entry_t *entry = s_entry_new (self, line);
    if (!env) {
        entry->result = s_result (entry, "invalid");
        json_object_set_new (entry->result, "error",
            json_sprintf ("JSON: %s (column %d)", jerr.text, jerr.column));
        self->refused = true;
        return self->keep_going;
    }
    json_t *id = json_object_get (env, "id");     //  NULL if not an object
    entry->id = json_incref (id);
    json_t *type = json_object_get (env, "type");
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buffer, msgpack_sbuffer_write);
    pb_ctl_json_pack (env, &pk);
    if (buffer.size > S_FRAME_MAX) {
        entry->result = s_result (entry, "invalid");
        json_object_set_new (entry->result, "error",
            json_sprintf ("envelope: %zu bytes, over the 1 MiB frame limit",
                          buffer.size));
        self->refused = true;
    }
    else {
        zmsg_t *msg = zmsg_new ();
        zmsg_addstr (msg, json_is_string (type)? json_string_value (type): "");
        zmsg_addmem (msg, buffer.data, buffer.size);
        int rc = zmsg_send (&msg, self->ingest);
        zmsg_destroy (&msg);
        entry->waiting = rc == 0;
        if (rc == 0)
            self->waiting++;
        else {
            entry->result = s_result (entry, "timeout");
        }
    }
    msgpack_sbuffer_destroy (&buffer);
    json_decref (env);
    return true;
}

//  A reply belongs to the oldest waiting entry
static int
s_reply (s_publish_t *self, zmsg_t *reply)
{
    s_entry_t *entry = (s_entry_t *) zlistx_first (self->entries);
    while (entry && !entry->waiting)
        entry = (s_entry_t *) zlistx_next (self->entries);
    if (!entry)
        return -1;                      //  a reply nobody asked for
    zframe_t *cmd = zmsg_first (reply);
    zframe_t *map = zmsg_next (reply);
    char error [256] = "";
    pb_wire_cmd_t command = PB_WIRE_UNKNOWN;
    if (zmsg_size (reply) == 2)
        command = pb_wire_command (zframe_data (cmd), zframe_size (cmd));
    pb_wire_ack_t ack;
    pb_wire_nak_t nak;
    if (command == PB_WIRE_ACK
    &&  pb_wire_ack_decode (zframe_data (map), zframe_size (map), &ack,
                            error, sizeof error) == 0) {
        entry->result = s_result (entry, "ACK");
        json_object_set_new (entry->result, "seq", json_integer ((json_int_t) ack.seq));
        self->acked++;
    }
    else
    if (command == PB_WIRE_NAK
    &&  pb_wire_nak_decode (zframe_data (map), zframe_size (map), &nak,
                            error, sizeof error) == 0) {
        entry->result = s_result (entry, "NAK");
        json_object_set_new (entry->result, "code", json_string (pb_nak_code (nak.code)));
        json_object_set_new (entry->result, "error", json_string (nak.error));
        self->refused = true;
    }
    else {
        entry->result = s_result (entry, "NAK");
        json_object_set_new (entry->result, "code", json_string ("unreadable_reply"));
        json_object_set_new (entry->result, "error",
            json_sprintf ("the journal's reply: %s", *error? error: "not ACK or NAK"));
        self->refused = true;
    }
    entry->waiting = false;
    self->waiting--;
    return 0;
}

//  No reply in time: every waiting line is a timeout
static void
s_time_out (s_publish_t *self)
{
    s_entry_t *entry = (s_entry_t *) zlistx_first (self->entries);
    while (entry) {
        if (entry->waiting) {
            entry->waiting = false;
            entry->result = s_result (entry, "timeout");
        }
        entry = (s_entry_t *) zlistx_next (self->entries);
    }
    self->waiting = 0;
}

static int
s_run (s_publish_t *self, FILE *in)
{
    char *text = NULL;
    size_t text_size = 0;
    size_t line = 0;
    bool reading = true;
    int rc = PB_CTL_EXIT_OK;
    while (reading || self->waiting) {
        while (reading && self->waiting < S_WINDOW) {
            ssize_t len = getline (&text, &text_size, in);
            if (len < 0) {
                reading = false;
                break;
            }
            line++;
            while (len > 0 && (text [len - 1] == '\n' || text [len - 1] == '\r'))
                text [--len] = 0;
            const char *start = text + strspn (text, " \t");
            if (*start == 0 || *start == '#')
                continue;
            if (!s_line (self, text, line)) {
                reading = false;
                fprintf (stderr, "pbctl publish: stopped at line %zu (not JSON); "
                         "nothing after it was published (--keep-going "
                         "publishes the rest)\n", line);
            }
        }
        s_flush (self);
        if (!self->waiting)
            break;
        zmsg_t *reply = pb_ctl_journal_recv (self->ingest, self->opts.timeout_ms);
        if (!reply) {
            s_time_out (self);
            rc = PB_CTL_EXIT_UNREACHABLE;
            fprintf (stderr, "pbctl publish: no answer from %s in %d ms%s\n",
                     self->opts.ingest, self->opts.timeout_ms,
                     reading? "; stopped reading": "");
            break;
        }
        s_reply (self, reply);
        zmsg_destroy (&reply);
    }
    s_flush (self);
    free (text);
    if (rc == PB_CTL_EXIT_OK && self->refused)
        rc = PB_CTL_EXIT_REFUSED;
    return rc;
}

//  --------------------------------------------------------------------------

int
pb_ctl_publish_file (const pb_ctl_journal_opts_t *opts, const char *path,
                     bool keep_going, bool quiet, size_t *acked_p)
{
    assert (opts);
    s_publish_t self = { .opts = *opts, .path = path, .keep_going = keep_going,
                         .quiet = quiet };
    FILE *in = stdin;
    if (self.path && !streq (self.path, "-")) {
        in = fopen (self.path, "r");
        if (!in) {
            fprintf (stderr, "pbctl publish: cannot open %s: %s\n", self.path, strerror (errno));
            return PB_CTL_EXIT_USAGE;
        }
    }
    int rc = PB_CTL_EXIT_USAGE;         //  an endpoint that cannot be used
    self.ingest = pb_ctl_journal_connect (&self.opts, ZMQ_DEALER, self.opts.ingest);
    if (self.ingest) {
        self.entries = zlistx_new ();
        zlistx_set_destructor (self.entries, s_entry_destroy);
        rc = s_run (&self, in);
        zlistx_destroy (&self.entries);
        zsock_destroy (&self.ingest);
    }
    if (in != stdin)
        fclose (in);
    if (acked_p)
        *acked_p = self.acked;
    return rc;
}

int
pb_ctl_publish (int argc, char *argv [])
{
    s_publish_t self = { .path = NULL };
    pb_ctl_journal_opts_init (&self.opts);
    int i = 1;
    while (i < argc) {
        int rc = pb_ctl_journal_opts_parse (&self.opts, argc, argv, &i);
        if (rc == PB_CTL_EXIT_USAGE)
            return rc;
        if (rc == 1)
            continue;
        if (streq (argv [i], "--keep-going"))
            self.keep_going = true;
        else
        if (argv [i][0] == '-' && argv [i][1] != 0) {
            fprintf (stderr, "pbctl publish: unknown option %s (see --help)\n", argv [i]);
            return PB_CTL_EXIT_USAGE;
        }
        else
        if (self.path) {
            fprintf (stderr, "pbctl publish: one FILE at most (see --help)\n");
            return PB_CTL_EXIT_USAGE;
        }
        else
            self.path = argv [i];
        i++;
    }
    if (self.opts.help) {
        fputs (s_help, stdout);
        return PB_CTL_EXIT_OK;
    }
    return pb_ctl_publish_file (&self.opts, self.path, self.keep_going, false, NULL);
}
