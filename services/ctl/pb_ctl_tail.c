/*  =========================================================================
    pb_ctl_tail - pbctl tail PREFIX... [--from SEQ]: live events

    No gap and no repeat (proto/README.md, Fanout and Replay): subscribe
    first, then replay the history, and drop live events at or below the
    seq delivered so far ('seen'). Fanout can lose messages (a journal
    restart, a reconnect, a full queue); two signs of a loss trigger a
    fill from replay before anything newer is shown:
      - a live seq beyond seen + 1;
      - a sys.heartbeat whose head is beyond seen (the heartbeat follows,
        on the same connection, every event up to head).
    The first sign needs every seq, so the SUB socket subscribes to every
    type and the prefixes are matched here (fills ask the journal for the
    prefixes only). A subscription by prefix would let a live event jump
    over lost ones unseen: correctness costs the wire carrying every event
    to the tail. A live event after a gap that could not be filled (the
    journal is restarting) is not shown: the next heartbeat's fill brings
    it, in order. Interrupt (Ctrl-C) stops; --count N stops after N events.
    =========================================================================
*/
#include "pb_ctl.h"
#include "pb_envelope.h"
#include "pb_msgpack.h"

static const char *s_help =
    "Usage: pbctl tail [OPTIONS] [PREFIX...]\n"
    "Print live events whose type starts with one of the PREFIXes (every\n"
    "type when none), until interrupted. With --from SEQ, print the logged\n"
    "events from SEQ first, then go on live with no gap and no repeat (a\n"
    "gap, after a journal restart say, is filled from replay: every event\n"
    "reaches pbctl, which matches the prefixes, so that no loss goes unseen).\n"
    "Default output: a table 'SEQ  TS  TYPE  ID  DATA'; --json: the stored\n"
    "envelopes as JSON lines (bin as hex strings).\n"
    "Options:\n"
    "  --from SEQ       replay history from SEQ first\n"
    "  --since TIME     replay history from the first event with ts >= TIME\n"
    "                   (ms, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ) first\n"
    "  --count N        stop after N events\n"
    PB_CTL_JOURNAL_OPTS_HELP;

typedef struct {
    pb_ctl_journal_opts_t opts;         //  endpoints, --json
    const char *prefixes [PB_WIRE_PREFIXES_MAX];  //  borrowed from argv
    size_t prefix_count;                //  0 for every type
    bool every_type;                    //  no prefix, or an empty one
    zsock_t *replay;                    //  DEALER for fills (owned)
    uint64_t seen;                      //  every match <= seen was shown
    bool based;                         //  seen is known
    uint64_t count;                     //  events shown
    uint64_t count_max;                 //  --count, 0 for no limit
} s_tail_t;

static void
s_show (s_tail_t *self, json_t *env)
{
    if (self->opts.json) {
        pb_ctl_json_print (stdout, env);
        return;
    }
    char iso [32];
    json_t *id = json_object_get (env, "id");
    char *data = json_dumps (json_object_get (env, "data"),
                             JSON_COMPACT | JSON_ENCODE_ANY);
    printf ("%8lld  %s  %-30s %s  %s\n",
            (long long) json_integer_value (json_object_get (env, "seq")),
            pb_ctl_journal_iso (json_integer_value (json_object_get (env, "ts")),
                                iso, sizeof iso),
            json_string_value (json_object_get (env, "type"))?: "?",
            json_is_string (id)? json_string_value (id): "?",
            data? data: "");
    free (data);
    fflush (stdout);
}

static int
s_on_replayed (const void *bytes, size_t size, void *arg)
{
    s_tail_t *self = (s_tail_t *) arg;
    char error [256];
    json_t *env = pb_ctl_json_from_bytes (bytes, size, error, sizeof error);
    json_int_t seq = env? json_integer_value (json_object_get (env, "seq")): 0;
    if (seq > 0 && (uint64_t) seq > self->seen) {
        s_show (self, env);
        self->seen = (uint64_t) seq;
        self->count++;
    }
    json_decref (env);
    return self->count_max && self->count >= self->count_max;
}

//  Fill seen+1..to (0: the head) from replay. Returns 0, or an exit code
//  (then seen moved only as far as events were shown).
static int
s_fill (s_tail_t *self, uint64_t from, uint64_t to)
{
    if (!self->replay)
        self->replay = pb_ctl_journal_connect (&self->opts, ZMQ_DEALER, self->opts.replay);
    if (!self->replay)
        return PB_CTL_EXIT_USAGE;
    pb_wire_end_t end = { 0 };
    char error [300] = "";
    int rc = pb_ctl_journal_replay (self->replay, from, to,
                                    self->every_type? NULL: self->prefixes,
                                    self->every_type? 0: self->prefix_count,
                                    self->opts.timeout_ms, s_on_replayed, self,
                                    &end, error, sizeof error);
    if (rc == 0) {
        //  A fill after history means fanout lost something: say so once
        //  per fill (stderr: diagnostics; stdout has only the events)
        if (self->based && end.count)
            fprintf (stderr, "pbctl tail: filled %" PRIu64 " missed event(s) "
                     "from replay, seq %" PRIu64 "..%" PRIu64 "\n",
                     end.count, from, end.through);
        if (end.through > self->seen)
            self->seen = end.through;
        self->based = true;
    }
    else
    if (!(self->count_max && self->count >= self->count_max)) {
        fprintf (stderr, "pbctl tail: replay from %" PRIu64 ": %s\n", from, error);
        zsock_destroy (&self->replay);  //  may still hold the old batches
    }
    return rc;
}

static void
s_on_heartbeat (s_tail_t *self, zframe_t *body)
{
    uint64_t head = 0;
    int64_t ts = 0;
    if (pb_wire_heartbeat_decode (zframe_data (body), zframe_size (body),
                                  &head, &ts, NULL, 0))
        return;
    if (!self->based) {
        self->seen = head;
        self->based = true;
    }
    else
    if (head > self->seen)
        s_fill (self, self->seen + 1, head);
}

//  The seq of a stored envelope, or 0 if it has none
static uint64_t
s_seq_of (const void *bytes, size_t size)
{
    pb_limits_t limits = PB_LIMITS_DEFAULTS;
    limits.max_size = size;
    size_t slot_count = 0;
    if (pb_msgpack_check_objects (bytes, size, &limits, &slot_count, NULL, 0))
        return 0;
    msgpack_object *slots = (msgpack_object *) zmalloc ((slot_count + 1) * sizeof *slots);
    msgpack_object root;
    pb_msgpack_unpack_checked (bytes, size, slots, slot_count, &root);
    uint64_t seq = 0;
    const msgpack_object *value = pb_msgpack_get (&root, "seq");
    if (!value || !pb_msgpack_uint (value, &seq))
        seq = 0;
    free (slots);
    return seq;
}

static bool
s_matches (s_tail_t *self, zframe_t *type)
{
    if (self->every_type)
        return true;
    for (size_t p = 0; p < self->prefix_count; p++) {
        size_t len = strlen (self->prefixes [p]);
        if (zframe_size (type) >= len && memcmp (zframe_data (type), self->prefixes [p], len) == 0)
            return true;
    }
    return false;
}

static void
s_on_live (s_tail_t *self, zframe_t *type, zframe_t *body)
{
    uint64_t seq = s_seq_of (zframe_data (body), zframe_size (body));
    if (seq == 0)
        return;                         //  not a stored envelope
    if (!self->based) {
        self->seen = seq - 1;
        self->based = true;
    }
    if (seq <= self->seen)
        return;                         //  replayed already
    if (seq > self->seen + 1)
        s_fill (self, self->seen + 1, seq - 1);
    if (seq != self->seen + 1)
        return;                         //  unfilled gap: a later fill brings it
    self->seen = seq;
    if (!s_matches (self, type)
    ||  (self->count_max && self->count >= self->count_max))
        return;
    char error [256];
    json_t *env = pb_ctl_json_from_bytes (zframe_data (body), zframe_size (body),
                                          error, sizeof error);
    if (env) {
        s_show (self, env);
        self->count++;
        json_decref (env);
    }
}

static int
s_run (s_tail_t *self, zsock_t *sub, uint64_t from)
{
    if (from) {
        int rc = s_fill (self, from, 0);
        if (rc && !(self->count_max && self->count >= self->count_max))
            return rc;
    }
    while (!zsys_interrupted
    &&    !(self->count_max && self->count >= self->count_max)) {
        zmsg_t *msg = pb_ctl_journal_recv (sub, 1000);
        if (!msg)
            continue;
        zframe_t *type = zmsg_first (msg);
        zframe_t *body = zmsg_next (msg);
        if (body && zmsg_size (msg) == 2) {
            if (zframe_streq (type, "sys.heartbeat"))
                s_on_heartbeat (self, body);
            else
                s_on_live (self, type, body);
        }
        zmsg_destroy (&msg);
    }
    return PB_CTL_EXIT_OK;
}

int
pb_ctl_tail (int argc, char *argv [])
{
    s_tail_t self = { .prefix_count = 0 };
    pb_ctl_journal_opts_init (&self.opts);
    uint64_t from = 0;
    int64_t since = INT64_MIN;
    int i = 1;
    while (i < argc) {
        int rc = pb_ctl_journal_opts_parse (&self.opts, argc, argv, &i);
        if (rc == PB_CTL_EXIT_USAGE)
            return rc;
        if (rc == 1)
            continue;
        const char *arg = argv [i];
        bool ok = true;
        if (streq (arg, "--since"))
            ok = i + 1 < argc && pb_ctl_journal_parse_time (argv [++i], &since);
        else
        if (streq (arg, "--from") || streq (arg, "--count")) {
            uint64_t *value = streq (arg, "--from")? &from: &self.count_max;
            ok = i + 1 < argc && pb_ctl_journal_parse_u64 (argv [++i], value) && *value >= 1;
        }
        else
        if (arg [0] == '-')
            ok = false;
        else
            ok = self.prefix_count < PB_WIRE_PREFIXES_MAX
              && strlen (arg) <= PB_WIRE_PREFIX_MAX
              && (self.prefixes [self.prefix_count++] = arg);
        if (!ok) {
            fprintf (stderr, "pbctl tail: bad or unexpected '%s' (see --help)\n", arg);
            return PB_CTL_EXIT_USAGE;
        }
        i++;
    }
    if (self.opts.help) {
        fputs (s_help, stdout);
        return PB_CTL_EXIT_OK;
    }
    if (since != INT64_MIN && from) {
        fprintf (stderr, "pbctl tail: --from or --since, not both\n");
        return PB_CTL_EXIT_USAGE;
    }
    if (since != INT64_MIN) {
        //  The time becomes the seq of the first event at or after it
        zsock_t *replay = pb_ctl_journal_connect (&self.opts, ZMQ_DEALER, self.opts.replay);
        char error [300] = "";
        int rc = replay? pb_ctl_journal_seq_at (replay, since, self.opts.timeout_ms,
                                                &from, error, sizeof error)
                       : PB_CTL_EXIT_USAGE;
        zsock_destroy (&replay);
        if (rc) {
            fprintf (stderr, "pbctl tail: %s\n", error);
            return rc;
        }
    }
    self.every_type = self.prefix_count == 0;
    for (size_t p = 0; p < self.prefix_count; p++)
        if (!*self.prefixes [p])
            self.every_type = true;
    zsock_t *sub = pb_ctl_journal_connect (&self.opts, ZMQ_SUB, self.opts.fanout);
    if (!sub)
        return PB_CTL_EXIT_USAGE;
    zsock_set_subscribe (sub, "");      //  every seq: see the header
    int rc = s_run (&self, sub, from);
    zsock_destroy (&self.replay);
    zsock_destroy (&sub);
    return rc;
}
