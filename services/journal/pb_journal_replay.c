/*  =========================================================================
    pb_journal_replay - replay and control on the journal's second ROUTER

    proto/README.md, "Replay and control". Each client connection has at
    most one replay session. Sessions advance one EVENTS batch per loop
    turn each (a zero-delay zloop timer runs while any session has
    credit), every batch from its own short read transaction, so a replay
    of millions of events neither stalls ingest nor grows memory: what is
    in flight is bounded by credit (flow control) and by the ROUTER's
    high-water mark (ROUTER_MANDATORY: a full pipe is retried later, a
    vanished client drops its session).
    =========================================================================
*/
#include "pb_journal_internal.h"

#include "pb_crash.h"
#include "pb_msgpack.h"

#define S_BATCH_BYTES (1024 * 1024)     //  bytes of events per EVENTS message
#define S_SCAN_FACTOR 16                //  records scanned per batch / replay_batch
#define S_DRAIN_MAX 64                  //  commands handled per wakeup
#define S_IDENTITY_MAX 255              //  ZeroMQ routing ids are at most 255 bytes

struct _pb_journal_session_t {
    uint8_t identity [S_IDENTITY_MAX];  //  the client's routing id
    size_t identity_size;
    pb_wire_replay_t request;           //  what it asked for
    uint64_t next;                      //  next seq to read
    uint64_t count;                     //  events sent so far
    uint64_t credit;                    //  EVENTS batches it may still get
    uint64_t batches;                   //  EVENTS batches sent
    int64_t last_credit;                //  zclock_mono of REPLAY or CREDIT
    char public_key [41];               //  the asker's key (security on), or ""
};

typedef enum { S_MORE, S_WAIT, S_DONE, S_GONE } s_progress_t;

static void
s_session_destroy (pb_journal_session_t **self_p)
{
    free (*self_p);
    *self_p = NULL;
}

static void
s_session_destructor (void **item)
{
    s_session_destroy ((pb_journal_session_t **) item);
}

static pb_journal_session_t *
s_session_find (pb_journal_t *self, const void *identity, size_t size)
{
    pb_journal_session_t *session = (pb_journal_session_t *) zlistx_first (self->sessions);
    while (session) {
        if (session->identity_size == size && memcmp (session->identity, identity, size) == 0)
            return session;
        session = (pb_journal_session_t *) zlistx_next (self->sessions);
    }
    return NULL;
}

//  --------------------------------------------------------------------------
//  Sending

void
pb_journal_send_reply (pb_journal_t *self, const void *identity,
                       size_t identity_size, pb_wire_cmd_t command,
                       const uint8_t *map, size_t map_size)
{
    const char *name = pb_wire_command_name (command);
    void *socket = self->replay_handle;
    //  ROUTER_MANDATORY: a reply to a vanished or stuck client fails here,
    //  on the identity frame, and is dropped
    if (zmq_send (socket, identity, identity_size, ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1)
        return;
    zmq_send (socket, name, strlen (name), map? ZMQ_SNDMORE: 0);
    if (map)
        zmq_send (socket, map, map_size, 0);
}

void
pb_journal_send_error (pb_journal_t *self, const void *identity,
                       size_t identity_size, pb_wire_refusal_t code,
                       const char *error)
{
    uint8_t map [PB_WIRE_REPLY_MAX];
    size_t size = 0;
    int rc = pb_wire_error_encode (code, error, map, sizeof map, &size);
    assert (rc == 0);
    self->errors [code]++;
    if (self->verbose)
        zsys_debug ("journal: ERROR code=%s error=%s", pb_wire_refusal_code (code), error);
    pb_journal_send_reply (self, identity, identity_size, PB_WIRE_ERROR, map, size);
}

//  --------------------------------------------------------------------------
//  Advancing a session by one batch

typedef struct {
    pb_journal_t *self;                 //  the journal (borrowed)
    pb_journal_session_t *session;      //  the session (borrowed)
    zmq_msg_t pending;                  //  last event, sent when the next comes
    bool started;                       //  identity and EVENTS frames sent
    uint64_t events;                    //  in this batch
    size_t bytes;                       //  in this batch
    const pb_rights_key_t *key;         //  security on: the asker's rights (borrowed)
} s_batch_t;

//  pb_log_read's callback: filter, then stream the event into the batch.
//  Each frame is sent when the next one is known, so that the last goes
//  without ZMQ_SNDMORE.
static int
s_collect (const pb_log_event_t *event, void *arg)
{
    s_batch_t *batch = (s_batch_t *) arg;
    pb_journal_session_t *session = batch->session;
    if (!pb_wire_replay_matches (&session->request, event->type, event->type_len))
        return 0;                       //  Consumed: not for this client
    if (batch->key && !pb_rights_may_replay (batch->key, event->type, event->type_len))
        return 0;                       //  Consumed: outside its replay rights
    if (batch->events >= (uint64_t) batch->self->cfg->replay_batch
    ||  (batch->events > 0 && batch->bytes + event->size > S_BATCH_BYTES))
        return PB_LOG_STOP;
    void *socket = batch->self->replay_handle;
    if (!batch->started) {
        if (zmq_send (socket, session->identity, session->identity_size,
                      ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1)
            return zmq_errno () == EAGAIN? PB_EAGAIN: PB_ENOTFOUND;
        zmq_send (socket, "EVENTS", 6, ZMQ_SNDMORE);
        batch->started = true;
    }
    else
        zmq_msg_send (&batch->pending, socket, ZMQ_SNDMORE);
    zmq_msg_init_size (&batch->pending, event->size);
    memcpy (zmq_msg_data (&batch->pending), event->bytes, event->size);
    batch->events++;
    batch->bytes += event->size;
    return 0;
}

static void
s_send_end (pb_journal_t *self, pb_journal_session_t *session)
{
    pb_wire_end_t end = { session->next - 1, pb_log_head (self->log), session->count };
    uint8_t map [PB_WIRE_REPLY_MAX];
    size_t size = 0;
    int rc = pb_wire_end_encode (&end, map, sizeof map, &size);
    assert (rc == 0);
    pb_journal_send_reply (self, session->identity, session->identity_size,
                           PB_WIRE_END, map, size);
    if (self->verbose)
        zsys_debug ("journal: replay END through=%" PRIu64 " count=%" PRIu64,
                    end.through, end.count);
}

//  Send the next batch of a session that has credit, or its END. Returns
//  how it went, or -1 (self->exit_rc set) on a fatal log error.
static int
s_session_advance (pb_journal_t *self, pb_journal_session_t *session)
{
    uint64_t head = pb_log_head (self->log);
    uint64_t limit = session->request.to < head? session->request.to: head;
    if (session->next > limit) {
        s_send_end (self, session);
        return S_DONE;
    }
    if (session->batches > 0)
        PB_CRASH_POINT ("mid_replay");
    s_batch_t batch = { self, session, { { 0 } }, false, 0, 0, NULL };
    if (self->rights) {
        //  The rights in force now, for every batch: a key removed by a
        //  reload stops getting events at once
        batch.key = pb_rights_lookup (self->rights, session->public_key);
        if (!batch.key) {
            pb_journal_send_error (self, session->identity, session->identity_size,
                                   PB_WIRE_UNAUTHORIZED,
                                   "key: not in the rights file any more (revoked)");
            return S_GONE;
        }
    }
    uint64_t next = session->next;
    size_t max_scan = (size_t) self->cfg->replay_batch * S_SCAN_FACTOR;
    int rc = pb_log_read (self->log, session->next, limit, max_scan, s_collect, &batch, &next);
    if (batch.started) {
        zmq_msg_send (&batch.pending, self->replay_handle, 0);
        session->batches++;
        session->credit--;
        session->count += batch.events;
        self->replay_events += batch.events;
        self->replay_batches++;
    }
    if (rc == PB_EAGAIN)
        return S_WAIT;                  //  Nothing sent; the pipe is full
    if (rc == PB_ENOTFOUND)
        return S_GONE;
    if (rc == PB_LOG_CORRUPT) {
        self->exit_rc = rc;
        return -1;
    }
    if (rc)
        return S_GONE;                  //  pb_log logged why
    session->next = next;
    if (session->next > limit) {
        s_send_end (self, session);
        return S_DONE;
    }
    return S_MORE;
}

//  The zero-delay timer: one batch per session with credit, per loop turn
static int
s_on_pump (zloop_t *loop, int timer_id, void *arg)
{
    pb_journal_t *self = (pb_journal_t *) arg;
    //  Reads only (pb_log_read): they run beside a batch that commits, so
    //  a replay does not take the overlap of commits and admission away
    //  from ingest
    bool busy = false;
    pb_journal_session_t *session = (pb_journal_session_t *) zlistx_first (self->sessions);
    while (session) {
        if (session->credit > 0) {
            int progress = s_session_advance (self, session);
            if (progress == -1)
                return -1;
            if (progress == S_DONE || progress == S_GONE) {
                if (progress == S_GONE)
                    self->replays_dropped++;
                zlistx_detach_cur (self->sessions);     //  Cursor moves back
                s_session_destroy (&session);
            }
            else
                busy |= session->credit > 0;
        }
        session = (pb_journal_session_t *) zlistx_next (self->sessions);
    }
    if (!busy) {
        zloop_timer_end (loop, timer_id);
        self->pump_timer = -1;
    }
    return 0;
}

static void
s_pump_schedule (pb_journal_t *self)
{
    if (self->pump_timer == -1)
        self->pump_timer = zloop_timer (self->loop, 0, 0, s_on_pump, self);
}

//  --------------------------------------------------------------------------
//  Commands

//  True if 'msg' holds exactly 'want' frames after the command; else
//  ERROR bad_request is sent
static bool
s_frames_ok (pb_journal_t *self, zframe_t *identity, zmsg_t *msg,
             const char *command, size_t want)
{
    size_t frames = zmsg_size (msg);
    if (frames == want)
        return true;
    char error [128];
    snprintf (error, sizeof error, "%s: want %s, got %zu frames after the command",
              command, want? "one map frame": "no frame", frames);
    pb_journal_send_error (self, zframe_data (identity), zframe_size (identity),
                           PB_WIRE_BAD_REQUEST, error);
    return false;
}

static void
s_on_replay_request (pb_journal_t *self, zframe_t *identity, zframe_t *body,
                     const pb_rights_key_t *sender)
{
    char error [PB_JOURNAL_ERROR_MAX];
    pb_wire_replay_t *request = (pb_wire_replay_t *) malloc (sizeof *request);
    assert (request);
    if (pb_wire_replay_decode (zframe_data (body), zframe_size (body), request,
                               error, sizeof error)) {
        pb_journal_send_error (self, zframe_data (identity), zframe_size (identity),
                               PB_WIRE_BAD_REQUEST, error);
        free (request);
        return;
    }
    pb_journal_session_t *session = s_session_find (self, zframe_data (identity),
                                                    zframe_size (identity));
    if (!session && zlistx_size (self->sessions) >= (size_t) self->cfg->replay_max) {
        pb_journal_send_error (self, zframe_data (identity), zframe_size (identity),
                               PB_WIRE_UNAVAILABLE,
                               "REPLAY: too many replays in progress, try again later");
        free (request);
        return;
    }
    if (!session) {
        session = (pb_journal_session_t *) zmalloc (sizeof *session);
        assert (session);
        session->identity_size = zframe_size (identity);
        memcpy (session->identity, zframe_data (identity), session->identity_size);
        zlistx_add_end (self->sessions, session);
    }
    //  A new REPLAY replaces the one in progress
    session->request = *request;
    snprintf (session->public_key, sizeof session->public_key, "%s",
              sender? zframe_meta (body, "User-Id"): "");
    free (request);
    session->next = session->request.from;
    session->count = 0;
    session->batches = 0;
    session->credit = session->request.credit < (uint64_t) self->cfg->replay_credit_max
                    ? session->request.credit: (uint64_t) self->cfg->replay_credit_max;
    session->last_credit = zclock_mono ();
    if (self->verbose)
        zsys_debug ("journal: REPLAY from=%" PRIu64 " prefixes=%u credit=%" PRIu64,
                    session->request.from, session->request.prefix_count, session->credit);
    s_pump_schedule (self);
}

static void
s_on_credit (pb_journal_t *self, zframe_t *identity, zframe_t *body)
{
    char error [PB_JOURNAL_ERROR_MAX];
    uint32_t n = 0;
    if (pb_wire_credit_decode (zframe_data (body), zframe_size (body), &n, error, sizeof error)) {
        pb_journal_send_error (self, zframe_data (identity), zframe_size (identity),
                               PB_WIRE_BAD_REQUEST, error);
        return;
    }
    //  Credit for a replay that has ended crosses its END: not an error
    pb_journal_session_t *session = s_session_find (self, zframe_data (identity),
                                                    zframe_size (identity));
    if (session) {
        session->credit += n;
        if (session->credit > (uint64_t) self->cfg->replay_credit_max)
            session->credit = (uint64_t) self->cfg->replay_credit_max;
        session->last_credit = zclock_mono ();
        s_pump_schedule (self);
    }
}

//  Returns 0, or -1 after a fatal log error
static int
s_on_tick_command (pb_journal_t *self, zframe_t *identity, zframe_t *body)
{
    char error [PB_JOURNAL_ERROR_MAX];
    int64_t now = 0;
    const void *id = zframe_data (identity);
    size_t id_size = zframe_size (identity);
    if (pb_wire_tick_decode (zframe_data (body), zframe_size (body), &now, error, sizeof error))
        pb_journal_send_error (self, id, id_size, PB_WIRE_BAD_REQUEST, error);
    else
    if (!self->manual)
        pb_journal_send_error (self, id, id_size, PB_WIRE_NOT_MANUAL,
                               "TICK: the journal's clock is automatic (journal/clock)");
    else
    if (now < self->now_ahead) {
        //  The log time once the ticks in hand and in flight are in
        snprintf (error, sizeof error, "TICK.now: %" PRId64 " is below the log time %" PRId64,
                  now, self->now_ahead);
        pb_journal_send_error (self, id, id_size, PB_WIRE_BACKWARDS, error);
    }
    else {
        zmq_msg_t asker;
        zmq_msg_init_size (&asker, id_size);
        memcpy (zmq_msg_data (&asker), id, id_size);
        int rc = pb_journal_tick (self, now, &asker);
        zmq_msg_close (&asker);
        return rc;
    }
    return 0;
}

static void
s_on_status (pb_journal_t *self, zframe_t *identity)
{
    pb_wire_status_t status = { pb_log_head (self->log), pb_log_now (self->log), self->manual };
    uint8_t map [PB_WIRE_REPLY_MAX];
    size_t size = 0;
    int rc = pb_wire_status_encode (&status, map, sizeof map, &size);
    assert (rc == 0);
    pb_journal_send_reply (self, zframe_data (identity), zframe_size (identity),
                           PB_WIRE_STATUS, map, size);
}

//  IMPORT [map {after}] [event]...: the map is taken off, the events go
//  to pb_journal_import. Returns 0, or -1 on a fatal log error.
static int
s_on_import (pb_journal_t *self, zframe_t *identity, zmsg_t *msg)
{
    char error [PB_JOURNAL_ERROR_MAX];
    zframe_t *map = zmsg_pop (msg);
    uint64_t after = 0;
    int rc = 0;
    if (!map)
        pb_journal_send_error (self, zframe_data (identity), zframe_size (identity),
                               PB_WIRE_BAD_REQUEST, "IMPORT: want a map frame, then events");
    else
    if (pb_wire_import_decode (zframe_data (map), zframe_size (map), &after, error,
                               sizeof error))
        pb_journal_send_error (self, zframe_data (identity), zframe_size (identity),
                               PB_WIRE_BAD_REQUEST, error);
    else
        rc = pb_journal_import (self, identity, after, msg);
    zframe_destroy (&map);
    return rc;
}

//  One command message: [identity][command][map?]. Returns 0, or -1 on
//  a fatal log error.
static int
s_command (pb_journal_t *self, zmsg_t *msg)
{
    zframe_t *identity = zmsg_pop (msg);
    zframe_t *command = zmsg_pop (msg);
    int rc = 0;
    if (!identity || !command) {
        zframe_destroy (&identity);
        zframe_destroy (&command);
        return 0;
    }
    //  Security on: the sender's key, checked on every command
    const pb_rights_key_t *sender = pb_journal_security_sender (self, command);
    if (self->rights && !sender) {
        pb_journal_send_error (self, zframe_data (identity), zframe_size (identity),
                               PB_WIRE_UNAUTHORIZED,
                               "key: not in the rights file any more (revoked)");
        zframe_destroy (&identity);
        zframe_destroy (&command);
        return 0;
    }
    pb_wire_cmd_t cmd = pb_wire_command (zframe_data (command), zframe_size (command));
    bool known = cmd == PB_WIRE_REPLAY || cmd == PB_WIRE_CREDIT || cmd == PB_WIRE_TICK
              || cmd == PB_WIRE_CANCEL || cmd == PB_WIRE_STATUS || cmd == PB_WIRE_IMPORT;
    size_t want = cmd == PB_WIRE_CANCEL || cmd == PB_WIRE_STATUS? 0: 1;
    zframe_t *body = zmsg_first (msg);
    if (!known) {
        char quoted [64], error [160];
        pb_msgpack_quote (quoted, sizeof quoted, (const char *) zframe_data (command),
                          zframe_size (command));
        snprintf (error, sizeof error, "command: unknown '%s' (REPLAY, CREDIT, CANCEL, "
                  "TICK, STATUS or IMPORT)", quoted);
        pb_journal_send_error (self, zframe_data (identity), zframe_size (identity),
                               PB_WIRE_BAD_REQUEST, error);
    }
    else
    if (cmd == PB_WIRE_IMPORT && sender && !pb_rights_may_import (sender))
        pb_journal_send_error (self, zframe_data (identity), zframe_size (identity),
                               PB_WIRE_UNAUTHORIZED, "IMPORT: needs src \"*\" and "
                               "publish \"*\" in the rights of this key");
    else
    if (cmd == PB_WIRE_IMPORT)
        rc = s_on_import (self, identity, msg);
    else
    if (!s_frames_ok (self, identity, msg, pb_wire_command_name (cmd), want))
        ;                               //  Answered
    else
    if (cmd == PB_WIRE_REPLAY)
        s_on_replay_request (self, identity, body, sender);
    else
    if (cmd == PB_WIRE_CREDIT)
        s_on_credit (self, identity, body);
    else
    if (cmd == PB_WIRE_TICK && sender
    &&  !pb_rights_may_publish (sender, NULL, 0, "sys.tick", 8))
        pb_journal_send_error (self, zframe_data (identity), zframe_size (identity),
                               PB_WIRE_UNAUTHORIZED, "TICK: sys.tick is outside the "
                               "publish rights of this key");
    else
    if (cmd == PB_WIRE_TICK)
        rc = s_on_tick_command (self, identity, body);
    else
    if (cmd == PB_WIRE_STATUS)
        s_on_status (self, identity);
    else {
        pb_journal_session_t *session = s_session_find (self, zframe_data (identity),
                                                        zframe_size (identity));
        if (session) {                  //  CANCEL: no reply
            zlistx_detach_cur (self->sessions);
            s_session_destroy (&session);
        }
    }
    zframe_destroy (&identity);
    zframe_destroy (&command);
    return rc;
}

int
pb_journal_on_replay (zloop_t *loop, zsock_t *reader, void *arg)
{
    pb_journal_t *self = (pb_journal_t *) arg;
    for (int i = 0; i < S_DRAIN_MAX && (zsock_events (reader) & ZMQ_POLLIN); i++) {
        zmsg_t *msg = zmsg_recv (reader);
        if (!msg)
            return -1;                  //  Interrupted
        //  IMPORT writes the log and STATUS reads its time: the log is
        //  ours again first. REPLAY and CREDIT only read events (beside a
        //  commit), CANCEL reads nothing, a TICK joins the batch in hand.
        zmsg_first (msg);               //  The identity, then the command
        zframe_t *command = zmsg_next (msg);
        pb_wire_cmd_t cmd = command? pb_wire_command (zframe_data (command),
                                                      zframe_size (command))
                                   : PB_WIRE_UNKNOWN;
        bool settle = cmd == PB_WIRE_IMPORT || cmd == PB_WIRE_STATUS;
        if (settle && pb_journal_settle (self)) {
            zmsg_destroy (&msg);
            return -1;
        }
        int rc = s_command (self, msg);
        zmsg_destroy (&msg);
        if (rc)
            return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------------

int
pb_journal_replay_start (pb_journal_t *self)
{
    self->sessions = zlistx_new ();
    assert (self->sessions);
    zlistx_set_destructor (self->sessions, s_session_destructor);
    zsock_set_router_mandatory (self->replay, 1);
    return 0;
}

void
pb_journal_replay_stop (pb_journal_t *self)
{
    zlistx_destroy (&self->sessions);
}

//  Drop replays that got no credit for replay_idle ms
void
pb_journal_replay_expire (pb_journal_t *self)
{
    int64_t now = zclock_mono ();
    pb_journal_session_t *session = (pb_journal_session_t *) zlistx_first (self->sessions);
    while (session) {
        if (session->credit == 0 && now - session->last_credit > self->cfg->replay_idle) {
            zlistx_detach_cur (self->sessions);
            s_session_destroy (&session);
            self->replays_dropped++;
        }
        session = (pb_journal_session_t *) zlistx_next (self->sessions);
    }
    if (self->replays_dropped) {
        zsys_warning ("journal: replays dropped (idle or client gone) count=%" PRIu64,
                      self->replays_dropped);
        self->replays_dropped_total += self->replays_dropped;
        self->replays_dropped = 0;
    }
}
