/*  =========================================================================
    pb_journal - the journal service: ingest, durable log, fanout, replay

    The ingest path, in the order that makes invariant 1 hold:
      1. drain what is already queued on ingest (never wait), up to
         batch_max messages, into the preallocated entry array;
      2. admit each one: frames, decode, authorization, data schema
         (PROTOCOL.md's NAK table, first row wins), the digest; and build
         its stored envelope and chain hash for the seq it should get;
      3. ONE write transaction: idempotency lookup, append, index; then
         ONE commit with LMDB's full sync (pb_log_commit);
      4. only then answer every message, in arrival order (a NAK never
         overtakes an earlier ACK), and
      5. fan the appended events out in seq order.
    A crash before 3 completes loses only unanswered messages (producers
    resend); a crash after it loses nothing, since resends are answered
    from the index with the original seq.

    Step 3 runs on a second thread, the committer (s_committer), so that
    the actor receives and admits batch N+1 while batch N is written and
    synced: the sync no longer stalls decoding. The actor hands a whole
    batch, and with it the log, over an inproc pipe (s_dispatch) and takes
    both back with the commit's result before it answers that batch or
    touches the log again; one batch at a time is in flight, so batches are
    answered in dispatch order. On ingest the next batch is dispatched as
    soon as the previous one is durable, and the previous one is answered
    and fanned out while the next one commits (answers need no log). The
    two threads never use the same entries or the log at once, and share
    no other mutable state. A batch of at most S_HERE_MAX entries that
    comes while nothing is in flight is committed on the actor itself
    (s_commit_here): with one event at a time there is nothing to overlap,
    and the trip to the committer and back is two thread wakeups.

    The actor also builds batch N+1's records (stored envelope, chain
    hash) while N commits, from where N will leave the log if every event
    of N appends (s_build_ahead). A resend found in the index, or a failed
    commit, moves the seqs: the actor builds the batch again from the log
    before it dispatches it, and the committer builds any record whose seq
    moved inside its own batch (pb_log takes a hash only for the seq and
    previous hash it was made for).

    This file: lifecycle, ingest and the batch path. pb_journal_replay.c:
    replay and control. pb_journal_timers.c: ticks, heartbeat, reader
    checks, aggregated warnings. pb_journal_cfg.c: the config table.
    =========================================================================
*/
#include "pb_journal_internal.h"

#include "pb_catalogue.h"
#include "pb_msgpack.h"
#include "pb_crash.h"
#include "pb_sock.h"

//  Bytes of envelopes one batch may hold: bounds the transaction's dirty
//  pages (LMDB refuses past ~512 MiB) whatever batch_max says
#define S_BATCH_BYTES (64 * 1024 * 1024)

//  Entries of a batch the actor commits itself when nothing is in flight
//  (s_commit_here); a larger one goes to the committer, so that the next
//  batch is admitted while it syncs
#define S_HERE_MAX 32

int64_t
pb_journal_clock (pb_journal_t *self)
{
    if (self->cfg->clock_fn)
        return self->cfg->clock_fn (self->cfg->clock_arg);
    return zclock_time ();
}

//  --------------------------------------------------------------------------
//  Admission: PROTOCOL.md's table up to bad_data, before any transaction

//  'unauthorized': sys. types come from nobody on ingest; ops. types
//  (operators' actions, pbctl) and notifications only from their owner;
//  and an owner's src (journal, ops, a worker) publishes nothing but its
//  own types, so that no producer can take ids in a namespace the journal
//  or a worker derives ids in.
static pb_nak_t
s_authorize (pb_journal_t *self, const pb_envelope_t *env, char *error)
{
    const char *owner = pb_catalogue_owner (env->type_index);
    if (owner && streq (owner, "journal")) {
        snprintf (error, PB_JOURNAL_ERROR_MAX, "type: %s is not accepted on ingest",
                  pb_catalogue_name (env->type_index));
        return PB_NAK_UNAUTHORIZED;
    }
    if (owner && (strlen (owner) != env->src_len
              ||  memcmp (owner, env->src, env->src_len) != 0)) {
        snprintf (error, PB_JOURNAL_ERROR_MAX, "src: %s may only come from src '%s'",
                  pb_catalogue_name (env->type_index), owner);
        return PB_NAK_UNAUTHORIZED;
    }
    for (int i = 0; !owner && i < self->owner_count; i++)
        if (self->owner_lens [i] == env->src_len
        &&  memcmp (self->owners [i], env->src, env->src_len) == 0) {
            snprintf (error, PB_JOURNAL_ERROR_MAX,
                      "src: '%s' is reserved for its own event types", self->owners [i]);
            return PB_NAK_UNAUTHORIZED;
        }
    return PB_NAK_NONE;
}

//  A NAK carries the id "when the envelope was readable enough to find it"
//  (PROTOCOL.md): past bad_msgpack the bytes passed pb_msgpack_check, so
//  msgpack-c may read them, and a str id of the right size is taken.
static void
s_find_id (pb_journal_t *self, pb_journal_entry_t *entry)
{
    const void *bytes = zmq_msg_data (&entry->body);
    size_t size = zmq_msg_size (&entry->body);
    if (size > self->limits.max_size
    ||  pb_msgpack_check (bytes, size, &self->limits, NULL, 0))
        return;
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    if (msgpack_unpack_next (&unpacked, (const char *) bytes, size, NULL)
        == MSGPACK_UNPACK_SUCCESS) {
        const msgpack_object *id = pb_msgpack_get (&unpacked.data, "id");
        if (id && id->type == MSGPACK_OBJECT_STR && id->via.str.size > 0
        &&  id->via.str.size <= PB_WIRE_ID_MAX) {
            memcpy (entry->nak_id, id->via.str.ptr, id->via.str.size);
            entry->nak_id_len = id->via.str.size;
        }
    }
    msgpack_unpacked_destroy (&unpacked);
}

static void
s_admit (pb_journal_t *self, pb_journal_entry_t *entry)
{
    entry->result = PB_JOURNAL_REFUSED;
    entry->nak_id_len = 0;
    if (entry->frames != 2) {
        entry->nak = PB_NAK_BAD_FRAMES;
        snprintf (entry->error, PB_JOURNAL_ERROR_MAX,
                  "frames: got %d, want 2 (type, envelope)", entry->frames);
        return;
    }
    entry->nak = pb_envelope_decode (
        (const char *) zmq_msg_data (&entry->type), zmq_msg_size (&entry->type),
        zmq_msg_data (&entry->body), zmq_msg_size (&entry->body),
        PB_ENVELOPE_INGEST, &self->limits, &entry->envelope,
        entry->error, PB_JOURNAL_ERROR_MAX);
    if (entry->nak > PB_NAK_BAD_MSGPACK)
        s_find_id (self, entry);
    if (entry->nak == PB_NAK_NONE && entry->origin == PB_JOURNAL_FROM_INGEST)
        entry->nak = s_authorize (self, entry->envelope, entry->error);
    //  With security on, the same row: the sender's key and its rights
    if (entry->nak == PB_NAK_NONE && entry->origin == PB_JOURNAL_FROM_INGEST && self->rights)
        entry->nak = pb_journal_security_admit (self, &entry->type, entry->envelope,
                                                entry->error);
    //  bad_data, the table's last row before the log; then the hash of
    //  the producer's pairs: the index's digest (id_conflict) and the
    //  chain's input (pb_chain.h)
    if (entry->nak == PB_NAK_NONE)
        entry->nak = pb_envelope_validate_data (entry->envelope, entry->error,
                                                PB_JOURNAL_ERROR_MAX);
    if (entry->nak == PB_NAK_NONE) {
        size_t offset;
        pb_envelope_pairs (entry->envelope, &offset, &entry->pairs_size);
        pb_chain_pairs_hash (entry->envelope->bytes + offset, entry->pairs_size,
                             entry->pairs_hash);
        entry->result = PB_JOURNAL_APPENDED;
    }
}

//  Build the stored envelope and the chain hash of every admitted entry
//  for the seqs they will have if each one appends, from seq 'from' after
//  hash 'prev', with one ts for the batch. Done on the actor while the
//  batch before commits, which takes about half of the committer's work
//  off it. The committer uses what is built only where the log is where
//  it was expected (no resend found in the index, no failed commit
//  before); pb_log checks the hash's seq and previous hash again.
static void
s_build_ahead (pb_journal_t *self, uint64_t from, const uint8_t prev [PB_CHAIN_SIZE])
{
    self->entries_from = from;
    memcpy (self->entries_prev, prev, PB_CHAIN_SIZE);
    int64_t ts = pb_journal_clock (self);
    uint64_t seq = from;
    const uint8_t *last = prev;
    for (size_t i = 0; i < self->entry_count; i++) {
        pb_journal_entry_t *entry = &self->entries [i];
        free (entry->stored);
        entry->stored = NULL;
        entry->ahead.seq = 0;
        if (entry->result != PB_JOURNAL_APPENDED)
            continue;
        const pb_envelope_t *env = entry->envelope;
        if (pb_envelope_encode_stored (env, seq, ts, &entry->stored, &entry->stored_size))
            continue;                   //  Out of memory: the committer tries
        entry->ts = ts;
        pb_log_hash_ahead (seq, last, env->type, env->type_len, entry->stored,
                           entry->stored_size, entry->pairs_size, entry->pairs_hash,
                           &entry->ahead);
        last = entry->ahead.chain;
        seq++;
    }
    self->ahead_next = seq;
    memcpy (self->ahead_chain, last, PB_CHAIN_SIZE);
}

//  --------------------------------------------------------------------------
//  The transaction

static void
s_free_stored (pb_journal_entry_t *entries, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free (entries [i].stored);
        entries [i].stored = NULL;
    }
}

//  One attempt: lookups and appends of every admitted entry, then the
//  commit. Returns a pb_log code.
static int
s_txn_attempt (pb_journal_t *self, pb_journal_entry_t *entries, size_t count)
{
    int rc = pb_log_begin (self->log);
    int64_t ts = pb_journal_clock (self);
    for (size_t i = 0; i < count && rc == 0; i++) {
        pb_journal_entry_t *entry = &entries [i];
        if (entry->result == PB_JOURNAL_REFUSED)
            continue;
        const pb_envelope_t *env = entry->envelope;
        pb_log_key_t key = { env->src, env->src_len, env->id, env->id_len };
        entry->result = PB_JOURNAL_APPENDED;
        entry->seq = pb_log_next_seq (self->log);
        bool imported = entry->origin == PB_JOURNAL_FROM_IMPORT;
        if (imported && entry->seq != entry->import_seq) {
            snprintf (entry->error, PB_JOURNAL_ERROR_MAX,
                      "seq: %" PRIu64 " does not follow the log's head %" PRIu64,
                      entry->import_seq, entry->seq - 1);
            entry->nak = PB_NAK_BAD_ENVELOPE;
            rc = PB_EPROTO;             //  The whole IMPORT is refused
            break;
        }
        //  Built ahead for this seq, or built now (the batch before had a
        //  resend or failed, this one met a resend, or a retry freed it)
        bool ahead = entry->stored && entry->ahead.seq == entry->seq;
        if (!ahead) {
            free (entry->stored);
            entry->stored = NULL;
            entry->ahead.seq = 0;
            rc = pb_envelope_encode_stored (env, entry->seq, imported? entry->import_ts: ts,
                                            &entry->stored, &entry->stored_size);
        }
        if (rc == 0 && imported
        &&  (entry->stored_size != entry->imported_size
        ||   memcmp (entry->stored, entry->imported, entry->stored_size) != 0)) {
            snprintf (entry->error, PB_JOURNAL_ERROR_MAX,
                      "envelope: not in the stored form this journal writes");
            entry->nak = PB_NAK_BAD_ENVELOPE;
            rc = PB_EPROTO;
            break;
        }
        uint64_t seq = 0;
        uint8_t digest [PB_LOG_DIGEST_SIZE];
        if (rc == 0)
            rc = pb_log_append (self->log, &key, entry->pairs_hash, env->type, env->type_len,
                                entry->stored, entry->stored_size,
                                ahead? &entry->ahead: NULL, &seq, digest);
        if (rc == PB_LOG_EXISTS && imported) {
            snprintf (entry->error, PB_JOURNAL_ERROR_MAX,
                      "id: (src, id) already in the log at seq %" PRIu64, seq);
            entry->nak = PB_NAK_BAD_ENVELOPE;
            rc = PB_EPROTO;
            break;
        }
        if (rc == PB_LOG_EXISTS) {
            //  Seen before, possibly earlier in this very batch
            bool same = memcmp (digest, entry->pairs_hash, PB_LOG_DIGEST_SIZE) == 0;
            entry->result = same? PB_JOURNAL_DUPLICATE: PB_JOURNAL_CONFLICT;
            entry->seq = seq;
            free (entry->stored);
            entry->stored = NULL;
            rc = 0;
            continue;
        }
        if (PB_NEVER (rc == PB_EINVAL)) {
            //  The decoder bounds src, id and type, and a stored form
            //  always splits into its parts: refuse, never stop
            entry->result = PB_JOURNAL_REFUSED;
            entry->nak = PB_NAK_BAD_ENVELOPE;
            snprintf (entry->error, PB_JOURNAL_ERROR_MAX,
                      "envelope: src, id or type longer than the log accepts");
            free (entry->stored);
            entry->stored = NULL;
            rc = 0;
            continue;
        }
        if (rc == 0 && imported && entry->import_tick && entry->tick_now < pb_log_now (self->log)) {
            snprintf (entry->error, PB_JOURNAL_ERROR_MAX,
                      "data.now: %" PRId64 " is below the log time %" PRId64,
                      entry->tick_now, pb_log_now (self->log));
            entry->nak = PB_NAK_BAD_ENVELOPE;
            rc = PB_EPROTO;
            break;
        }
        if (rc == 0 && (imported? entry->import_tick: entry->origin != PB_JOURNAL_FROM_INGEST))
            rc = pb_log_set_now (self->log, entry->tick_now);
    }
    if (rc == 0)
        rc = pb_log_commit (self->log);
    else
        pb_log_abort (self->log);
    return rc;
}

//  Run the transaction, growing the map as often as needed. Returns 0,
//  PB_LOG_NOSPC or PB_LOG_AT_MAX (answer 'unavailable'), or a fatal code.
static int
s_txn_run (pb_journal_t *self, pb_journal_entry_t *entries, size_t count)
{
    bool any = false;
    for (size_t i = 0; i < count; i++)
        any |= entries [i].result != PB_JOURNAL_REFUSED;
    bool import = count > 0 && entries [0].origin == PB_JOURNAL_FROM_IMPORT;
    for (size_t i = 0; import && any && i < count; i++)
        any = entries [i].result != PB_JOURNAL_REFUSED;
    if (!any) {
        for (size_t i = 0; import && i < count; i++)
            entries [i].result = PB_JOURNAL_REFUSED;
        return 0;                       //  Nothing to write, nothing to sync
    }
    int rc;
    while ((rc = s_txn_attempt (self, entries, count)) == PB_LOG_FULL) {
        s_free_stored (entries, count);
        rc = pb_log_grow (self->log);   //  No transaction is active here
        if (rc)
            break;
    }
    if (rc == PB_EPROTO && import) {
        //  An imported event that cannot take its place (its nak is set):
        //  nothing of the IMPORT is stored
        for (size_t i = 0; i < count; i++)
            entries [i].result = PB_JOURNAL_REFUSED;
        s_free_stored (entries, count);
        return 0;
    }
    if (rc == PB_LOG_AT_MAX && !self->map_at_max)
        zsys_error ("journal: log map is at map_max=%" PRId64 ", refusing events "
                    "with 'unavailable'", self->cfg->map_max);
    self->map_at_max = rc == PB_LOG_AT_MAX;
    if (rc == PB_LOG_NOSPC || rc == PB_LOG_AT_MAX) {
        //  Nothing of the batch is stored: what it would have appended is
        //  'unavailable'; resends of older events are still good ACKs
        uint64_t head = pb_log_head (self->log);
        for (size_t i = 0; i < count; i++) {
            pb_journal_entry_t *entry = &entries [i];
            if (entry->result != PB_JOURNAL_REFUSED
            &&  (entry->result == PB_JOURNAL_APPENDED || entry->seq > head)) {
                entry->result = PB_JOURNAL_REFUSED;
                entry->nak = PB_NAK_UNAVAILABLE;
                snprintf (entry->error, PB_JOURNAL_ERROR_MAX,
                          "journal: cannot store now (%s), send again later",
                          pb_log_strerror (rc));
            }
        }
        s_free_stored (entries, count);
    }
    return rc;
}

//  --------------------------------------------------------------------------
//  Answers and fanout, after the commit

static void
s_answer_ingest (pb_journal_t *self, pb_journal_entry_t *entry)
{
    uint8_t map [PB_WIRE_REPLY_MAX];
    size_t size = 0;
    const pb_envelope_t *env = entry->envelope;
    const char *command = "ACK";
    int rc;
    if (entry->result == PB_JOURNAL_APPENDED || entry->result == PB_JOURNAL_DUPLICATE)
        rc = pb_wire_ack_encode (env->id, env->id_len, entry->seq, map, sizeof map, &size);
    else {
        if (entry->result == PB_JOURNAL_CONFLICT) {
            entry->nak = PB_NAK_ID_CONFLICT;
            snprintf (entry->error, PB_JOURNAL_ERROR_MAX,
                      "id: already used by this src for another envelope (seq %" PRIu64 ")",
                      entry->seq);
        }
        command = "NAK";
        self->naks [entry->nak]++;
        const char *id = env? env->id: entry->nak_id_len? entry->nak_id: NULL;
        size_t id_len = env? env->id_len: entry->nak_id_len;
        rc = pb_wire_nak_encode (id, id_len, entry->nak, entry->error, map, sizeof map, &size);
    }
    assert (rc == 0);
    if (self->verbose)
        zsys_debug ("journal: %s id_len=%zu seq=%" PRIu64 " code=%s", command,
                    env? env->id_len: entry->nak_id_len, entry->seq,
                    command [0] == 'N'? pb_nak_code (entry->nak): "");
    //  ROUTER drops what it cannot deliver: a producer that went away or
    //  stopped reading resends, and the index answers it then
    void *socket = self->ingest_handle;
    zmq_send (socket, zmq_msg_data (&entry->identity), zmq_msg_size (&entry->identity),
              ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send (socket, command, 3, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send (socket, map, size, ZMQ_DONTWAIT);
}

static void
s_answer_control (pb_journal_t *self, pb_journal_entry_t *entry)
{
    const void *identity = zmq_msg_data (&entry->identity);
    size_t identity_size = zmq_msg_size (&entry->identity);
    if (entry->result == PB_JOURNAL_APPENDED || entry->result == PB_JOURNAL_DUPLICATE) {
        uint8_t map [PB_WIRE_REPLY_MAX];
        size_t size = 0;
        int rc = pb_wire_ticked_encode (entry->seq, entry->tick_now, map, sizeof map, &size);
        assert (rc == 0);
        pb_journal_send_reply (self, identity, identity_size, PB_WIRE_TICKED, map, size);
    }
    else {
        pb_wire_refusal_t code = entry->nak == PB_NAK_UNAVAILABLE
                               ? PB_WIRE_UNAVAILABLE: PB_WIRE_BAD_REQUEST;
        if (entry->result == PB_JOURNAL_CONFLICT)
            snprintf (entry->error, PB_JOURNAL_ERROR_MAX,
                      "TICK.now: a different tick already has this id");
        pb_journal_send_error (self, identity, identity_size, code, entry->error);
    }
}

//  One answer for a whole IMPORT: IMPORTED {head}, or ERROR naming the
//  first event at fault (with its index in the request and its seq)
static void
s_answer_import (pb_journal_t *self, pb_journal_entry_t *entries, size_t count)
{
    const void *identity = zmq_msg_data (&entries [0].identity);
    size_t identity_size = zmq_msg_size (&entries [0].identity);
    for (size_t i = 0; i < count; i++) {
        pb_journal_entry_t *entry = &entries [i];
        if (entry->result == PB_JOURNAL_REFUSED && entry->nak != PB_NAK_NONE) {
            char error [PB_JOURNAL_ERROR_MAX + 64];
            snprintf (error, sizeof error, "IMPORT[%zu] (seq %" PRIu64 "): %s", i,
                      entry->import_seq, entry->error);
            pb_journal_send_error (self, identity, identity_size,
                                   entry->nak == PB_NAK_UNAVAILABLE
                                   ? PB_WIRE_UNAVAILABLE: PB_WIRE_BAD_REQUEST, error);
            return;
        }
    }
    uint8_t map [PB_WIRE_REPLY_MAX];
    size_t size = 0;
    int rc = pb_wire_imported_encode (pb_log_head (self->log), map, sizeof map, &size);
    assert (rc == 0);
    zsys_notice ("journal: imported %zu events through seq %" PRIu64, count,
                 pb_log_head (self->log));
    pb_journal_send_reply (self, identity, identity_size, PB_WIRE_IMPORTED, map, size);
}

//  libzmq frees a fanned-out envelope when every subscriber has it
static void
s_free_envelope (void *data, void *hint)
{
    free (data);
}

static void
s_fanout (pb_journal_t *self, pb_journal_entry_t *entries, size_t count)
{
    bool first = true;
    for (size_t i = 0; i < count; i++) {
        pb_journal_entry_t *entry = &entries [i];
        if (entry->result != PB_JOURNAL_APPENDED)
            continue;
        if (!first)
            PB_CRASH_POINT ("mid_fanout");
        first = false;
        //  PUB never blocks: a slow subscriber loses messages at its
        //  high-water mark and fills the gap from replay
        zmq_send (self->fanout_handle, entry->envelope->type, entry->envelope->type_len,
                  ZMQ_SNDMORE | ZMQ_DONTWAIT);
        //  Zero copy: the stored envelope's buffer passes to libzmq
        zmq_msg_t body;
        zmq_msg_init_data (&body, entry->stored, entry->stored_size, s_free_envelope, NULL);
        entry->stored = NULL;
        if (zmq_msg_send (&body, self->fanout_handle, ZMQ_DONTWAIT) == -1)
            zmq_msg_close (&body);
    }
}

//  Release what the batch held, ready for the next one
static void
s_batch_reset (pb_journal_entry_t *entries, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        pb_journal_entry_t *entry = &entries [i];
        pb_envelope_destroy (&entry->envelope);
        free (entry->stored);
        entry->stored = NULL;
        entry->ahead.seq = 0;
        free (entry->imported);
        entry->imported = NULL;
        entry->import_tick = false;
        //  Close and re-init: releases large bodies now, not at reuse
        zmq_msg_close (&entry->identity);
        zmq_msg_close (&entry->type);
        zmq_msg_close (&entry->body);
        zmq_msg_init (&entry->identity);
        zmq_msg_init (&entry->type);
        zmq_msg_init (&entry->body);
    }
}

//  Answer and fan out a batch the committer has finished with 'rc', then
//  release it. Returns 0, or -1 after a fatal log error: nothing of the
//  batch is answered then.
static int
s_batch_finish (pb_journal_t *self, pb_journal_entry_t *entries, size_t count, int rc)
{
    if (rc && rc != PB_LOG_NOSPC && rc != PB_LOG_AT_MAX) {
        zsys_error ("journal: stopping on a log failure, nothing of the batch "
                    "is acknowledged error=%s", pb_log_strerror (rc));
        self->exit_rc = rc;
        s_batch_reset (entries, count);
        return -1;
    }
    bool appended = false;
    for (size_t i = 0; i < count; i++)
        appended |= entries [i].result == PB_JOURNAL_APPENDED;
    if (appended)
        PB_CRASH_POINT ("after_commit");        //  Durable, nothing answered
    if (count > 0 && entries [0].origin == PB_JOURNAL_FROM_IMPORT)
        s_answer_import (self, entries, count);
    for (size_t i = 0; i < count; i++) {
        pb_journal_entry_t *entry = &entries [i];
        if (entry->result == PB_JOURNAL_APPENDED)
            self->appended++;
        else
        if (entry->result == PB_JOURNAL_DUPLICATE)
            self->duplicates++;
        if (entry->origin == PB_JOURNAL_FROM_INGEST)
            s_answer_ingest (self, entry);
        else
        if (entry->origin == PB_JOURNAL_FROM_CONTROL)
            s_answer_control (self, entry);
    }
    if (appended)
        PB_CRASH_POINT ("after_ack");           //  Answered, not fanned out
    s_fanout (self, entries, count);
    self->batches++;
    self->messages += count;
    pb_journal_metrics_batch (self, entries, count, appended);
    s_batch_reset (entries, count);
    return 0;
}

//  Hand the admitted entries in hand to the committer and start filling
//  the other buffer. From here until pb_journal_settle, the batch and the
//  log belong to the committer's thread.
static void
s_dispatch (pb_journal_t *self, bool built_ahead)
{
    assert (!self->in_flight);
    self->flight = self->entries;
    self->flight_count = self->entry_count;
    self->entries = self->entries == self->buffers [0]? self->buffers [1]: self->buffers [0];
    self->entry_count = 0;
    self->in_flight = true;
    self->flight_ahead = built_ahead;
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "COMMIT");
    zmsg_addmem (msg, &self->flight, sizeof self->flight);
    zmsg_addmem (msg, &self->flight_count, sizeof self->flight_count);
    int rc = zmsg_send (&msg, self->committer);
    assert (rc == 0);                   //  inproc to our own thread
}

//  Wait for the committer's result of the batch in flight, into *rc_p.
//  Returns 0, or -1 if the committer is gone (nothing of it is answered).
static int
s_wait_committed (pb_journal_t *self, int *rc_p)
{
    assert (self->in_flight);
    int received;
    uint64_t usecs = 0;
    *rc_p = PB_LOG_IO;
    //  A commit is bounded work: wait it out even across a signal
    do
        received = zsock_recv (self->committer, "i8", rc_p, &usecs);
    while (received == -1 && zmq_errno () == EINTR);
    self->commit_usecs = (int64_t) usecs;
    self->in_flight = false;
    if (received == -1) {
        zsys_error ("journal: lost the committer, nothing of the batch is acknowledged");
        self->exit_rc = PB_LOG_IO;
        s_batch_reset (self->flight, self->flight_count);
        return -1;
    }
    return 0;
}

//  Answer the batch in flight, if any. Returns 0, or -1 after a fatal
//  log error.
static int
s_settle_flight (pb_journal_t *self)
{
    if (!self->in_flight)
        return 0;
    int rc;
    if (s_wait_committed (self, &rc))
        return -1;
    return s_batch_finish (self, self->flight, self->flight_count, rc);
}

//  Nothing in flight: hand the admitted entries in hand (ticks that came
//  while a batch committed) to the committer, built from the log as it is
static void
s_kick (pb_journal_t *self)
{
    if (self->in_flight || self->entry_count == 0)
        return;
    uint8_t chain [PB_CHAIN_SIZE];
    pb_log_chain (self->log, chain);
    s_build_ahead (self, pb_log_head (self->log) + 1, chain);
    s_dispatch (self, true);
}

int
pb_journal_settle (pb_journal_t *self)
{
    if (s_settle_flight (self))
        return -1;
    if (self->entry_count) {
        s_kick (self);
        if (s_settle_flight (self))
            return -1;
    }
    //  Every tick admitted is in the log now, or was refused
    self->now_ahead = pb_log_now (self->log);
    return 0;
}

//  Admit, store, answer, fan out the entries in hand, and wait for all of
//  it (an IMPORT). Returns 0, or -1 after a fatal log error.
int
pb_journal_batch_run (pb_journal_t *self)
{
    if (s_settle_flight (self))
        return -1;
    for (size_t i = 0; i < self->entry_count; i++)
        s_admit (self, &self->entries [i]);
    s_dispatch (self, false);
    return pb_journal_settle (self);
}

void
pb_journal_tick_enqueue (pb_journal_t *self)
{
    pb_journal_entry_t *entry = &self->entries [self->entry_count];
    s_admit (self, entry);
    self->entry_count++;
    if (entry->result == PB_JOURNAL_APPENDED && entry->tick_now > self->now_ahead)
        self->now_ahead = entry->tick_now;
    s_kick (self);
}

//  --------------------------------------------------------------------------
//  IMPORT: another log's stored events, seq for seq, through the batch path

int
pb_journal_import (pb_journal_t *self, zframe_t *identity, uint64_t after,
                   zmsg_t *msg)
{
    assert (self->entry_count == 0);    //  Never inside an ingest batch
    const void *id = zframe_data (identity);
    size_t id_size = zframe_size (identity);
    size_t count = zmsg_size (msg);
    size_t limit = (size_t) self->cfg->batch_max < PB_WIRE_IMPORT_MAX
                 ? (size_t) self->cfg->batch_max: PB_WIRE_IMPORT_MAX;
    char error [PB_JOURNAL_ERROR_MAX + 64];
    if (after != pb_log_head (self->log)) {
        snprintf (error, sizeof error, "IMPORT.after: %" PRIu64 ", but the log's head is %"
                  PRIu64 " (an import goes into an empty log or continues one)",
                  after, pb_log_head (self->log));
        pb_journal_send_error (self, id, id_size, PB_WIRE_BAD_REQUEST, error);
        return 0;
    }
    if (count == 0 || count > limit) {
        snprintf (error, sizeof error, "IMPORT: want 1..%zu event frames after the map, "
                  "got %zu", limit, count);
        pb_journal_send_error (self, id, id_size, PB_WIRE_BAD_REQUEST, error);
        return 0;
    }
    //  Each event decoded in the stored form, in sequence, and taken back
    //  to its producer's form, which then goes through admission (decode,
    //  data schema) and the transaction as an ingested event would
    size_t i = 0;
    for (zframe_t *frame = zmsg_first (msg); frame; frame = zmsg_next (msg), i++) {
        pb_journal_entry_t *entry = &self->entries [i];
        self->entry_count = i + 1;
        entry->origin = PB_JOURNAL_FROM_IMPORT;
        entry->frames = 2;
        entry->seq = 0;
        entry->nak = PB_NAK_NONE;
        entry->import_seq = after + 1 + i;
        if (i == 0) {                   //  The one answer goes there
            zmq_msg_close (&entry->identity);
            zmq_msg_init_size (&entry->identity, id_size);
            memcpy (zmq_msg_data (&entry->identity), id, id_size);
        }
        pb_envelope_t *env = NULL;
        char reason [PB_JOURNAL_ERROR_MAX] = "";
        uint8_t *producer = NULL;
        size_t producer_size = 0;
        if (pb_envelope_decode (NULL, 0, zframe_data (frame), zframe_size (frame),
                                PB_ENVELOPE_STORED, &self->limits, &env, reason,
                                sizeof reason) != PB_NAK_NONE)
            ;
        else
        if (env->seq != entry->import_seq)
            snprintf (reason, sizeof reason, "envelope.seq: %" PRIu64 ", want %" PRIu64,
                      env->seq, entry->import_seq);
        else
        if (pb_envelope_unstore (env, &producer, &producer_size))
            snprintf (reason, sizeof reason, "envelope: seq and ts are not its last keys");
        if (!producer) {
            snprintf (error, sizeof error, "IMPORT[%zu] (seq %" PRIu64 "): %s", i,
                      entry->import_seq, reason);
            pb_envelope_destroy (&env);
            s_batch_reset (self->entries, self->entry_count);
            self->entry_count = 0;
            pb_journal_send_error (self, id, id_size, PB_WIRE_BAD_REQUEST, error);
            return 0;
        }
        entry->import_ts = env->ts;
        entry->import_tick = env->type_len == 8 && memcmp (env->type, "sys.tick", 8) == 0;
        int64_t now = 0;
        if (entry->import_tick)
            pb_msgpack_int (pb_msgpack_get (env->data, "now"), &now);
        entry->tick_now = now;
        zmq_msg_close (&entry->type);
        zmq_msg_init_size (&entry->type, env->type_len);
        memcpy (zmq_msg_data (&entry->type), env->type, env->type_len);
        zmq_msg_close (&entry->body);
        zmq_msg_init_size (&entry->body, producer_size);
        memcpy (zmq_msg_data (&entry->body), producer, producer_size);
        free (producer);
        entry->imported = (uint8_t *) malloc (zframe_size (frame));
        assert (entry->imported);
        memcpy (entry->imported, zframe_data (frame), zframe_size (frame));
        entry->imported_size = zframe_size (frame);
        pb_envelope_destroy (&env);
    }
    return pb_journal_batch_run (self);
}

//  --------------------------------------------------------------------------
//  The committer: a thread that owns the log while it holds a batch. It
//  runs the transaction and the sync of one batch at a time, so that the
//  actor receives and admits the next batch meanwhile; the actor answers
//  each batch only after its commit, in dispatch order, so replies stay in
//  arrival order and an ACK still means committed and synced.

//  Commit a batch on the thread that owns the log now (the committer, or
//  the actor when nothing is in flight: s_commit_here). After a fatal
//  failure nothing more is written: a failed sync must not be retried in
//  the same process (a batch dispatched meanwhile gets the same failure,
//  unanswered). Returns the batch's code; *usecs_p is what it took.
static int
s_commit (pb_journal_t *self, pb_journal_entry_t *entries, size_t count, uint64_t *usecs_p)
{
    int64_t started = zclock_usecs ();
    int rc = self->log_failed? self->log_failed: s_txn_run (self, entries, count);
    if (rc && rc != PB_LOG_NOSPC && rc != PB_LOG_AT_MAX)
        self->log_failed = rc;
    *usecs_p = (uint64_t) (zclock_usecs () - started);
    return rc;
}

static void
s_committer (zsock_t *pipe, void *args)
{
    pb_journal_t *self = (pb_journal_t *) args;
    zsock_signal (pipe, 0);
    while (true) {
        zmsg_t *msg = zmsg_recv (pipe);
        if (!msg) {
            if (zmq_errno () == EINTR)
                continue;               //  Only $TERM ends the committer
            break;
        }
        char *command = zmsg_popstr (msg);
        bool term = !command || streq (command, "$TERM");
        if (!term) {
            //  COMMIT [entries][count], from the actor's own s_dispatch
            zframe_t *entries_frame = zmsg_pop (msg);
            zframe_t *count_frame = zmsg_pop (msg);
            assert (entries_frame && zframe_size (entries_frame) == sizeof (pb_journal_entry_t *));
            assert (count_frame && zframe_size (count_frame) == sizeof (size_t));
            pb_journal_entry_t *entries;
            size_t count;
            memcpy (&entries, zframe_data (entries_frame), sizeof entries);
            memcpy (&count, zframe_data (count_frame), sizeof count);
            zframe_destroy (&entries_frame);
            zframe_destroy (&count_frame);
            uint64_t usecs;
            int rc = s_commit (self, entries, count, &usecs);
            //  The time goes back with the result: the actor, not this
            //  thread, writes what it reads while the next batch commits
            zsock_send (pipe, "i8", rc, usecs);
        }
        zstr_free (&command);
        zmsg_destroy (&msg);
        if (term)
            break;
    }
}

//  The committer's answer arrived while the actor was idle
static int
s_on_committed (zloop_t *loop, zsock_t *reader, void *arg)
{
    pb_journal_t *self = (pb_journal_t *) arg;
    //  s_on_ingest may have taken the answer in this same loop turn
    if (!self->in_flight || !(zsock_events (reader) & ZMQ_POLLIN))
        return 0;
    if (s_settle_flight (self))
        return -1;
    s_kick (self);                      //  Ticks that came meanwhile
    if (!self->in_flight)               //  Idle: a tick refused by a full
        self->now_ahead = pb_log_now (self->log);   //  disk set no time
    return 0;
}

//  --------------------------------------------------------------------------
//  Ingest reader

//  Receive one multipart message into 'entry': identity, then the frames
//  a producer sent. Returns 0, or -1 when nothing is waiting.
static int
s_receive (pb_journal_t *self, pb_journal_entry_t *entry, size_t *bytes)
{
    if (zmq_msg_recv (&entry->identity, self->ingest_handle, ZMQ_DONTWAIT) == -1)
        return -1;
    entry->origin = PB_JOURNAL_FROM_INGEST;
    entry->frames = 0;
    entry->seq = 0;
    while (zmq_msg_more (&entry->identity) || entry->frames > 0) {
        zmq_msg_t *part = entry->frames == 0? &entry->type
                        : entry->frames == 1? &entry->body: NULL;
        zmq_msg_t extra;
        if (!part) {
            zmq_msg_init (&extra);
            part = &extra;
        }
        //  The rest of a multipart message is already here: this never waits
        int rc = zmq_msg_recv (part, self->ingest_handle, ZMQ_DONTWAIT);
        bool more = rc != -1 && zmq_msg_more (part);
        if (rc != -1)
            *bytes += zmq_msg_size (part);
        if (part == &extra)
            zmq_msg_close (&extra);
        if (rc == -1)
            break;
        entry->frames++;
        if (!more)
            break;
    }
    return 0;
}

//  A small batch with nothing in flight is committed on the actor's own
//  thread: there is nothing to overlap it with, and the way through the
//  committer and back costs two thread wakeups, most of what an ACK
//  takes beyond the sync when events come one at a time. While nothing
//  is in flight the log is the actor's. Returns 0, or -1 after a fatal
//  log error.
static int
s_commit_here (pb_journal_t *self)
{
    uint8_t chain [PB_CHAIN_SIZE];
    pb_log_chain (self->log, chain);
    s_build_ahead (self, pb_log_head (self->log) + 1, chain);
    uint64_t usecs;
    size_t count = self->entry_count;
    int rc = s_commit (self, self->entries, count, &usecs);
    self->commit_usecs = (int64_t) usecs;
    self->entry_count = 0;
    return s_batch_finish (self, self->entries, count, rc);
}

static int
s_on_ingest (zloop_t *loop, zsock_t *reader, void *arg)
{
    pb_journal_t *self = (pb_journal_t *) arg;
    //  Group commit: take what is already queued, up to the bounds, so
    //  that one sync covers many producers; never wait for more
    size_t bytes = 0;
    size_t first = self->entry_count;  //  Ticks in hand, already admitted
    while (self->entry_count < (size_t) self->cfg->batch_max && bytes < S_BATCH_BYTES) {
        if (s_receive (self, &self->entries [self->entry_count], &bytes))
            break;
        self->entry_count++;
    }
    if (self->entry_count == first)
        return 0;
    //  Admit while the committer syncs the previous batch. Once that one
    //  is durable, hand this one over first and answer and fan out that
    //  one while the committer works, so the answers overlap the next
    //  sync instead of delaying it. The previous batch's buffer is the
    //  one s_dispatch makes the receiving buffer: it is answered and
    //  released before anything is received into it.
    for (size_t i = first; i < self->entry_count; i++)
        s_admit (self, &self->entries [i]);
    bool previous = self->in_flight;
    if (!previous && self->entry_count <= S_HERE_MAX)
        return s_commit_here (self);
    //  Built ahead from where the batch in flight will leave the log, if
    //  that batch was built ahead too; else from the log as it is
    bool built = false;
    if (previous && self->flight_ahead) {
        uint8_t prev [PB_CHAIN_SIZE];
        memcpy (prev, self->ahead_chain, PB_CHAIN_SIZE);
        s_build_ahead (self, self->ahead_next, prev);
        built = true;
    }
    pb_journal_entry_t *done = self->flight;
    size_t done_count = self->flight_count;
    int done_rc = 0;
    if (previous && s_wait_committed (self, &done_rc))
        return -1;
    //  The log is the actor's until the dispatch: if it is not where this
    //  batch was built from (a resend in the batch before, a failed
    //  commit), build it again, so that one miss does not carry over
    uint8_t chain [PB_CHAIN_SIZE];
    pb_log_chain (self->log, chain);
    if (!built || self->entries_from != pb_log_head (self->log) + 1
    ||  memcmp (self->entries_prev, chain, PB_CHAIN_SIZE) != 0)
        s_build_ahead (self, pb_log_head (self->log) + 1, chain);
    s_dispatch (self, true);
    if (previous && s_batch_finish (self, done, done_count, done_rc))
        return -1;
    return 0;
}

static int
s_on_pipe (zloop_t *loop, zsock_t *pipe, void *arg)
{
    pb_journal_t *self = (pb_journal_t *) arg;
    zmsg_t *msg = zmsg_recv (pipe);
    if (!msg)
        return -1;                      //  Interrupted
    char *command = zmsg_popstr (msg);
    int rc = 0;
    if (command && streq (command, "$TERM"))
        rc = -1;
    else
    if (command && streq (command, "VERBOSE"))
        self->verbose = true;
    else
    if (command && streq (command, "RELOAD")) {
        pb_journal_security_reload (self);
        if (!self->fanout)
            rc = -1;                    //  Could not bind it again: stop
    }
    else
        zsys_warning ("journal: unknown pipe command=%s", command? command: "");
    zstr_free (&command);
    zmsg_destroy (&msg);
    return rc;
}

//  --------------------------------------------------------------------------
//  Lifecycle

static void
s_journal_destroy (pb_journal_t **self_p)
{
    pb_journal_t *self = *self_p;
    if (!self)
        return;
    //  Answer what is committing, then stop the committer before its
    //  batch is released
    if (self->in_flight && self->exit_rc == 0)
        pb_journal_settle (self);
    zactor_destroy (&self->committer);
    if (self->in_flight)
        s_batch_reset (self->flight, self->flight_count);
    s_batch_reset (self->entries, self->entry_count);
    for (int b = 0; b < 2; b++) {
        pb_journal_entry_t *entries = self->buffers [b];
        for (int64_t i = 0; entries && i <= self->cfg->batch_max; i++) {
            zmq_msg_close (&entries [i].identity);
            zmq_msg_close (&entries [i].type);
            zmq_msg_close (&entries [i].body);
            free (entries [i].error);
        }
        free (entries);
    }
    pb_journal_replay_stop (self);
    pb_journal_metrics_close (self);
    zloop_destroy (&self->loop);
    zsock_destroy (&self->ingest);
    zsock_destroy (&self->fanout);
    zsock_destroy (&self->replay);
    pb_journal_security_close (self);   //  After the CURVE servers
    pb_log_destroy (&self->log);
    free (self);
    *self_p = NULL;
}

static zsock_t *
s_bind (pb_journal_t *self, int type, const char *name, const char *endpoint)
{
    pb_sock_opts_t opts = PB_SOCK_OPTS_DEFAULTS;
    opts.maxmsgsize = self->cfg->max_msg_size;
    opts.curve_cert = self->cert;       //  NULL unless security is on
    opts.xpub_manual = type == ZMQ_XPUB;    //  Security: subscriptions vetted
    zsock_t *sock = pb_sock_new (type, endpoint, &opts);
    if (sock)
        zsys_notice ("journal: bound %s=%s", name, zsock_endpoint (sock));
    return sock;
}

static int
s_journal_open (const pb_journal_cfg_t *cfg, zsock_t *pipe, pb_journal_t **self_p)
{
    pb_journal_t *self = (pb_journal_t *) zmalloc (sizeof (pb_journal_t));
    assert (self);
    self->cfg = cfg;
    self->pipe = pipe;
    self->verbose = cfg->verbose;
    self->manual = streq (cfg->clock, "manual");
    self->pump_timer = -1;
    self->sighup_fd = -1;
    self->limits = (pb_limits_t) { (size_t) cfg->max_envelope, (uint32_t) cfg->max_depth,
                                   (uint32_t) cfg->max_container, (uint32_t) cfg->max_string };
    //  The srcs reserved for their own types, from the catalogue
    for (int index = 0; index < pb_catalogue_count (); index++) {
        const char *owner = pb_catalogue_owner (index);
        bool known = !owner;
        for (int i = 0; i < self->owner_count && !known; i++)
            known = streq (self->owners [i], owner);
        if (!known && self->owner_count < 8) {
            self->owners [self->owner_count] = owner;
            self->owner_lens [self->owner_count++] = strlen (owner);
        }
    }
    for (int b = 0; b < 2; b++) {
        pb_journal_entry_t *entries = (pb_journal_entry_t *)
            calloc ((size_t) cfg->batch_max + 1, sizeof (pb_journal_entry_t));
        assert (entries);
        for (int64_t i = 0; i <= cfg->batch_max; i++) {
            zmq_msg_init (&entries [i].identity);
            zmq_msg_init (&entries [i].type);
            zmq_msg_init (&entries [i].body);
            entries [i].error = (char *) malloc (PB_JOURNAL_ERROR_MAX);
            assert (entries [i].error);
        }
        self->buffers [b] = entries;
    }
    self->entries = self->buffers [0];
    int rc = pb_log_open (cfg->data_dir, (uint64_t) cfg->map_size,
                          (uint64_t) cfg->map_max, &self->log);
    if (rc == 0)
        rc = pb_log_set_prealloc (self->log, (uint64_t) cfg->prealloc);
    //  Security before any bind: a CURVE server without its ZAP handler
    //  would take any key. Fanout is an XPUB then, to vet subscriptions.
    if (rc == 0)
        rc = pb_journal_security_open (self);
    if (rc == 0) {
        self->ingest = s_bind (self, ZMQ_ROUTER, "ingest", cfg->ingest);
        self->fanout = s_bind (self, cfg->security? ZMQ_XPUB: ZMQ_PUB, "fanout", cfg->fanout);
        self->replay = s_bind (self, ZMQ_ROUTER, "replay", cfg->replay);
        if (!self->ingest || !self->fanout || !self->replay)
            rc = PB_EIO;
    }
    if (rc == 0)
        rc = pb_journal_security_probe (self);
    if (rc == 0)
        rc = pb_journal_metrics_open (self);
    if (rc == 0) {
        self->ingest_handle = zsock_resolve (self->ingest);
        self->fanout_handle = zsock_resolve (self->fanout);
        self->replay_handle = zsock_resolve (self->replay);
        self->loop = zloop_new ();
        assert (self->loop);
        self->committer = zactor_new (s_committer, self);
        assert (self->committer);
        self->now_ahead = pb_log_now (self->log);
        rc = pb_journal_replay_start (self);
    }
    if (rc == 0) {
        zsys_notice ("journal: started data_dir=%s head=%" PRIu64 " log_time=%" PRId64
                     " clock=%s", cfg->data_dir, pb_log_head (self->log),
                     pb_log_now (self->log), cfg->clock);
        *self_p = self;
    }
    else {
        zsys_error ("journal: cannot start error=%s", pb_journal_strerror (rc));
        s_journal_destroy (&self);
    }
    return rc;
}

//  --------------------------------------------------------------------------

void
pb_journal_actor (zsock_t *pipe, void *args)
{
    const pb_journal_cfg_t *cfg = (const pb_journal_cfg_t *) args;
    assert (cfg);
    pb_journal_t *self = NULL;
    int rc = s_journal_open (cfg, pipe, &self);
    zsock_signal (pipe, 0);             //  zactor handshake, always first
    zsock_send (pipe, "i", rc);         //  Startup status
    if (rc == 0) {
        zloop_reader (self->loop, pipe, s_on_pipe, self);
        zloop_reader (self->loop, zactor_sock (self->committer), s_on_committed, self);
        zloop_reader (self->loop, self->ingest, s_on_ingest, self);
        zloop_reader (self->loop, self->replay, pb_journal_on_replay, self);
        pb_journal_security_attach (self);
        if (!self->manual)
            zloop_timer (self->loop, (size_t) cfg->tick_interval, 0,
                         pb_journal_on_tick, self);
        zloop_timer (self->loop, (size_t) cfg->heartbeat_interval, 0,
                     pb_journal_on_heartbeat, self);
        zloop_timer (self->loop, (size_t) cfg->reader_check_interval, 0,
                     pb_journal_on_reader_check, self);
        zloop_timer (self->loop, PB_JOURNAL_STATS_INTERVAL, 0, pb_journal_on_stats, self);
        zloop_start (self->loop);       //  Ends on $TERM, a signal, or -1
        if (self->exit_rc == 0)
            pb_journal_settle (self);   //  Answer what is committing
        rc = self->exit_rc;
        zsys_notice ("journal: stopped head=%" PRIu64 " appended=%" PRIu64
                     " duplicates=%" PRIu64 " batches=%" PRIu64 " rc=%d",
                     pb_log_head (self->log), self->appended, self->duplicates,
                     self->batches, rc);
    }
    s_journal_destroy (&self);
    zsock_send (pipe, "i", rc);         //  Exit status
}

//  --------------------------------------------------------------------------

const char *
pb_journal_strerror (int rc)
{
    return pb_log_strerror (rc);
}

//  --------------------------------------------------------------------------
//  Selftest: the actor on inproc:// with a temporary log, driven the way
//  producers, subscribers and operators drive it

static int64_t
s_test_clock (void *arg)
{
    return *(int64_t *) arg;
}

//  A nac.position envelope; 'reason' varies the bytes for id_conflict
static zmsg_t *
s_test_event (const char *id, const char *src, const char *reason)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 4);
    msgpack_pack_str_with_body (&pk, "id", 2);
    msgpack_pack_str_with_body (&pk, id, strlen (id));
    msgpack_pack_str_with_body (&pk, "src", 3);
    msgpack_pack_str_with_body (&pk, src, strlen (src));
    msgpack_pack_str_with_body (&pk, "type", 4);
    msgpack_pack_str_with_body (&pk, "nac.position", 12);
    msgpack_pack_str_with_body (&pk, "data", 4);
    msgpack_pack_map (&pk, 4);
    msgpack_pack_str_with_body (&pk, "proposal", 8);
    msgpack_pack_str_with_body (&pk, "p-1", 3);
    msgpack_pack_str_with_body (&pk, "ally", 4);
    msgpack_pack_str_with_body (&pk, "FRA", 3);
    msgpack_pack_str_with_body (&pk, "position", 8);
    msgpack_pack_str_with_body (&pk, "concur", 6);
    msgpack_pack_str_with_body (&pk, "reason", 6);
    msgpack_pack_str_with_body (&pk, reason, strlen (reason));
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "nac.position");
    zmsg_addmem (msg, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    return msg;
}

//  Receive one ingest reply; returns the seq of an ACK, or 0 for a NAK
//  whose code is copied to 'code'
static uint64_t
s_test_reply (zsock_t *producer, char *code)
{
    zmsg_t *reply = zmsg_recv (producer);
    assert (reply && zmsg_size (reply) == 2);
    char *command = zmsg_popstr (reply);
    zframe_t *map = zmsg_first (reply);
    uint64_t seq = 0;
    if (streq (command, "ACK")) {
        pb_wire_ack_t ack;
        int rc = pb_wire_ack_decode (zframe_data (map), zframe_size (map), &ack, NULL, 0);
        assert (rc == 0);
        seq = ack.seq;
    }
    else {
        assert (streq (command, "NAK"));
        pb_wire_nak_t nak;
        int rc = pb_wire_nak_decode (zframe_data (map), zframe_size (map), &nak, NULL, 0);
        assert (rc == 0);
        strcpy (code, pb_nak_code (nak.code));
    }
    zstr_free (&command);
    zmsg_destroy (&reply);
    return seq;
}

//  Send a control command with an optional map, return the reply
static zmsg_t *
s_test_control (zsock_t *control, const char *command, const uint8_t *map, size_t size)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, command);
    if (map)
        zmsg_addmem (msg, map, size);
    zmsg_send (&msg, control);
    zmsg_t *reply = zmsg_recv (control);
    assert (reply);
    return reply;
}

//  The stored form of s_test_event (id, src, reason) at 'seq' and 'ts'
static zframe_t *
s_test_stored (const char *id, const char *reason, uint64_t seq, int64_t ts)
{
    zmsg_t *msg = s_test_event (id, "test", reason);
    zframe_t *body = zmsg_last (msg);
    pb_limits_t limits = PB_LIMITS_DEFAULTS;
    pb_envelope_t *env = NULL;
    pb_nak_t nak = pb_envelope_decode ("nac.position", 12, zframe_data (body),
                                       zframe_size (body), PB_ENVELOPE_INGEST,
                                       &limits, &env, NULL, 0);
    assert (nak == PB_NAK_NONE);
    uint8_t *stored = NULL;
    size_t size = 0;
    int rc = pb_envelope_encode_stored (env, seq, ts, &stored, &size);
    assert (rc == 0);
    zframe_t *frame = zframe_new (stored, size);
    free (stored);
    pb_envelope_destroy (&env);
    zmsg_destroy (&msg);
    return frame;
}

//  IMPORT {after} + frames; returns the reply's command (caller frees)
//  and its map's error text or head in 'text'
static char *
s_test_import (zsock_t *control, uint64_t after, zframe_t **frames, size_t count,
               char *text, size_t size)
{
    uint8_t map [PB_WIRE_REQUEST_MAX];
    size_t len = 0;
    int rc = pb_wire_import_encode (after, map, sizeof map, &len);
    assert (rc == 0);
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "IMPORT");
    zmsg_addmem (msg, map, len);
    for (size_t i = 0; i < count; i++)
        zmsg_append (msg, &frames [i]);
    zmsg_send (&msg, control);
    zmsg_t *reply = zmsg_recv (control);
    assert (reply && zmsg_size (reply) == 2);
    char *command = zmsg_popstr (reply);
    zframe_t *body = zmsg_first (reply);
    if (streq (command, "IMPORTED")) {
        uint64_t head = 0;
        rc = pb_wire_imported_decode (zframe_data (body), zframe_size (body), &head, NULL, 0);
        assert (rc == 0);
        snprintf (text, size, "%" PRIu64, head);
    }
    else {
        pb_wire_error_t error;
        rc = pb_wire_error_decode (zframe_data (body), zframe_size (body), &error, NULL, 0);
        assert (rc == 0 && streq (command, "ERROR"));
        snprintf (text, size, "%s", error.error);
    }
    zmsg_destroy (&reply);
    return command;
}

//  IMPORT: another log's events seq for seq, all or none, only at the head
static void
s_test_run_import (const pb_journal_cfg_t *base, bool verbose)
{
    pb_journal_cfg_t cfg = *base;
    char path [] = "/tmp/pb_journal_import.XXXXXX";
    assert (mkdtemp (path));
    snprintf (cfg.data_dir, sizeof cfg.data_dir, "%s", path);
    strcpy (cfg.ingest, "inproc://pb_journal_test_ingest_4");
    strcpy (cfg.fanout, "inproc://pb_journal_test_fanout_4");
    strcpy (cfg.replay, "inproc://pb_journal_test_replay_4");
    zactor_t *journal = zactor_new (pb_journal_actor, &cfg);
    int rc = -1;
    zsock_recv (journal, "i", &rc);
    assert (rc == 0);
    zsock_t *control = pb_sock_new (ZMQ_DEALER, ">inproc://pb_journal_test_replay_4", NULL);
    zsock_t *producer = pb_sock_new (ZMQ_DEALER, ">inproc://pb_journal_test_ingest_4", NULL);
    assert (control && producer);
    zsock_set_rcvtimeo (control, 5000);
    zsock_set_rcvtimeo (producer, 5000);
    char text [PB_WIRE_TEXT_MAX + 1];
    zframe_t *two [2] = { s_test_stored ("i-1", "one", 1, 5), s_test_stored ("i-2", "two", 2, 6) };
    char *command = s_test_import (control, 0, two, 2, text, sizeof text);
    assert (streq (command, "IMPORTED") && streq (text, "2"));
    zstr_free (&command);
    //  Not at the head; a seq out of place; an id already in the log (the
    //  good event before it is not appended either: all or none)
    zframe_t *again [1] = { s_test_stored ("i-3", "three", 3, 7) };
    command = s_test_import (control, 0, again, 1, text, sizeof text);
    assert (streq (command, "ERROR") && strstr (text, "IMPORT.after"));
    zstr_free (&command);
    zframe_t *jump [1] = { s_test_stored ("i-3", "three", 4, 7) };
    command = s_test_import (control, 2, jump, 1, text, sizeof text);
    assert (streq (command, "ERROR") && strstr (text, "IMPORT[0] (seq 3)"));
    zstr_free (&command);
    zframe_t *dup [2] = { s_test_stored ("i-3", "three", 3, 7), s_test_stored ("i-1", "one", 4, 8) };
    command = s_test_import (control, 2, dup, 2, text, sizeof text);
    assert (streq (command, "ERROR") && strstr (text, "IMPORT[1] (seq 4)")
         && strstr (text, "already in the log at seq 1"));
    zstr_free (&command);
    zmsg_t *reply = s_test_control (control, "STATUS", NULL, 0);
    pb_wire_status_t status;
    rc = pb_wire_status_decode (zframe_data (zmsg_last (reply)), zframe_size (zmsg_last (reply)),
                                &status, NULL, 0);
    assert (rc == 0 && status.head == 2);
    zmsg_destroy (&reply);
    //  A producer's resend of an imported event is a duplicate
    zmsg_t *msg = s_test_event ("i-2", "test", "two");
    zmsg_send (&msg, producer);
    char code [32] = "";
    assert (s_test_reply (producer, code) == 2);
    zsock_destroy (&control);
    zsock_destroy (&producer);
    zactor_destroy (&journal);
    char file [PATH_MAX];
    snprintf (file, sizeof file, "%s/data.mdb", path);
    zsys_file_delete (file);
    snprintf (file, sizeof file, "%s/lock.mdb", path);
    zsys_file_delete (file);
    zsys_dir_delete ("%s", path);
}

static void
s_test_run_clock_auto (const pb_journal_cfg_t *base, bool verbose)
{
    pb_journal_cfg_t cfg = *base;
    strcpy (cfg.clock, "auto");
    strcpy (cfg.ingest, "inproc://pb_journal_test_ingest_3");
    strcpy (cfg.fanout, "inproc://pb_journal_test_fanout_3");
    strcpy (cfg.replay, "inproc://pb_journal_test_replay_3");
    cfg.tick_interval = 10;
    //  A fixed fake clock past the log time of the manual ticks: exactly one
    //  tick, since a tick never repeats a now
    int64_t now = 1735689601000;
    cfg.clock_arg = &now;
    zactor_t *journal = zactor_new (pb_journal_actor, &cfg);
    int rc = -1;
    zsock_recv (journal, "i", &rc);
    assert (rc == 0);
    zsock_t *subscriber = pb_sock_new (ZMQ_SUB, ">inproc://pb_journal_test_fanout_3", NULL);
    assert (subscriber);
    zsock_set_subscribe (subscriber, "sys.tick");
    zsock_set_rcvtimeo (subscriber, 2000);
    zmsg_t *msg = zmsg_recv (subscriber);
    assert (msg && zmsg_size (msg) == 2);
    pb_envelope_t *env = NULL;
    pb_limits_t limits = PB_LIMITS_DEFAULTS;
    zframe_t *body = zmsg_last (msg);
    pb_nak_t nak = pb_envelope_decode (NULL, 0, zframe_data (body), zframe_size (body),
                                       PB_ENVELOPE_STORED, &limits, &env, NULL, 0);
    assert (nak == PB_NAK_NONE);
    int64_t tick_now = 0;
    bool ok = pb_msgpack_int (pb_msgpack_get (env->data, "now"), &tick_now);
    assert (ok && tick_now == now);
    pb_envelope_destroy (&env);
    zmsg_destroy (&msg);
    zsock_set_rcvtimeo (subscriber, 100);
    msg = zmsg_recv (subscriber);
    assert (msg == NULL);
    zsock_destroy (&subscriber);
    zactor_destroy (&journal);
}

void
pb_journal_test (bool verbose)
{
    printf (" * pb_journal: ");
    char path [] = "/tmp/pb_journal_test.XXXXXX";
    assert (mkdtemp (path));
    pb_journal_cfg_t cfg;
    char *argv [] = { "pb_journal_test", "--clock", "manual", "--replay-batch", "2",
                      "--ingest", "inproc://pb_journal_test_ingest",
                      "--fanout", "inproc://pb_journal_test_fanout",
                      "--replay", "inproc://pb_journal_test_replay",
                      "--map-size", "1M", NULL };
    int rc = pb_journal_cfg_load (&cfg, 13, argv);
    assert (rc == 0);
    snprintf (cfg.data_dir, sizeof cfg.data_dir, "%s", path);
    cfg.verbose = verbose;
    cfg.clock_fn = s_test_clock;
    int64_t wall = 1800000000000;
    cfg.clock_arg = &wall;

    zactor_t *journal = zactor_new (pb_journal_actor, &cfg);
    rc = -1;
    zsock_recv (journal, "i", &rc);
    assert (rc == 0);
    zsock_t *producer = pb_sock_new (ZMQ_DEALER, ">inproc://pb_journal_test_ingest", NULL);
    zsock_t *subscriber = pb_sock_new (ZMQ_SUB, ">inproc://pb_journal_test_fanout", NULL);
    zsock_t *control = pb_sock_new (ZMQ_DEALER, ">inproc://pb_journal_test_replay", NULL);
    assert (producer && subscriber && control);
    zsock_set_subscribe (subscriber, "");
    zsock_set_rcvtimeo (subscriber, 2000);
    zsock_set_rcvtimeo (producer, 5000);
    zsock_set_rcvtimeo (control, 5000);

    //  Publish, ACK, and the same event on fanout with seq and ts
    zmsg_t *msg = s_test_event ("e-1", "test", "first");
    zmsg_send (&msg, producer);
    char code [32] = "";
    assert (s_test_reply (producer, code) == 1);
    msg = zmsg_recv (subscriber);
    assert (msg && zmsg_size (msg) == 2);
    char *type = zmsg_popstr (msg);
    assert (streq (type, "nac.position"));
    zstr_free (&type);
    zmsg_destroy (&msg);

    //  Pipelined: replies in arrival order, NAKs included; a resend is
    //  ACKed with its first seq; another envelope under the same id is
    //  id_conflict; two frames or nothing else
    msg = s_test_event ("e-2", "test", "second");
    zmsg_send (&msg, producer);
    msg = s_test_event ("e-1", "test", "first");
    zmsg_send (&msg, producer);
    msg = s_test_event ("e-1", "test", "changed");
    zmsg_send (&msg, producer);
    zstr_send (producer, "lonely");
    msg = s_test_event ("e-3", "nac", "a worker's src");
    zmsg_send (&msg, producer);
    msg = s_test_event ("e-3", "test", "third");
    zmsg_send (&msg, producer);
    msg = s_test_event ("e-3", "test", "third");       //  Same batch, same event
    zmsg_send (&msg, producer);
    assert (s_test_reply (producer, code) == 2);
    assert (s_test_reply (producer, code) == 1);
    assert (s_test_reply (producer, code) == 0 && streq (code, "id_conflict"));
    assert (s_test_reply (producer, code) == 0 && streq (code, "bad_frames"));
    assert (s_test_reply (producer, code) == 0 && streq (code, "unauthorized"));
    assert (s_test_reply (producer, code) == 3);
    assert (s_test_reply (producer, code) == 3);

    //  Control: TICK (manual clock), a repeat, backwards, STATUS
    uint8_t map [PB_WIRE_REQUEST_MAX];
    size_t size = 0;
    rc = pb_wire_tick_encode (1735689600000, map, sizeof map, &size);
    assert (rc == 0);
    zmsg_t *reply = s_test_control (control, "TICK", map, size);
    char *command = zmsg_popstr (reply);
    assert (streq (command, "TICKED"));
    uint64_t seq = 0;
    int64_t now = 0;
    rc = pb_wire_ticked_decode (zframe_data (zmsg_first (reply)), zframe_size (zmsg_first (reply)),
                                &seq, &now, NULL, 0);
    assert (rc == 0 && seq == 4 && now == 1735689600000);
    zstr_free (&command);
    zmsg_destroy (&reply);
    reply = s_test_control (control, "TICK", map, size);
    command = zmsg_popstr (reply);
    rc = pb_wire_ticked_decode (zframe_data (zmsg_first (reply)), zframe_size (zmsg_first (reply)),
                                &seq, &now, NULL, 0);
    assert (streq (command, "TICKED") && rc == 0 && seq == 4);
    zstr_free (&command);
    zmsg_destroy (&reply);
    rc = pb_wire_tick_encode (1000, map, sizeof map, &size);
    assert (rc == 0);
    reply = s_test_control (control, "TICK", map, size);
    command = zmsg_popstr (reply);
    pb_wire_error_t error;
    rc = pb_wire_error_decode (zframe_data (zmsg_first (reply)), zframe_size (zmsg_first (reply)),
                               &error, NULL, 0);
    assert (streq (command, "ERROR") && rc == 0 && error.code == PB_WIRE_BACKWARDS);
    zstr_free (&command);
    zmsg_destroy (&reply);
    reply = s_test_control (control, "STATUS", NULL, 0);
    command = zmsg_popstr (reply);
    pb_wire_status_t status;
    rc = pb_wire_status_decode (zframe_data (zmsg_first (reply)), zframe_size (zmsg_first (reply)),
                                &status, NULL, 0);
    assert (streq (command, "STATUS") && rc == 0);
    assert (status.head == 4 && status.now == 1735689600000 && status.manual);
    zstr_free (&command);
    zmsg_destroy (&reply);
    reply = s_test_control (control, "FLY", NULL, 0);
    command = zmsg_popstr (reply);
    assert (streq (command, "ERROR"));
    zstr_free (&command);
    zmsg_destroy (&reply);

    //  Replay with credit 1 and replay_batch 2: EVENTS (1, 2), then more
    //  only after CREDIT, then END
    rc = pb_wire_replay_encode (1, 0, NULL, 0, 1, map, sizeof map, &size);
    assert (rc == 0);
    reply = s_test_control (control, "REPLAY", map, size);
    command = zmsg_popstr (reply);
    assert (streq (command, "EVENTS") && zmsg_size (reply) == 2);
    zstr_free (&command);
    zmsg_destroy (&reply);
    zsock_set_rcvtimeo (control, 100);
    reply = zmsg_recv (control);
    assert (reply == NULL);             //  No credit, no batch
    zsock_set_rcvtimeo (control, 5000);
    rc = pb_wire_credit_encode (5, map, sizeof map, &size);
    assert (rc == 0);
    reply = s_test_control (control, "CREDIT", map, size);
    command = zmsg_popstr (reply);
    assert (streq (command, "EVENTS") && zmsg_size (reply) == 2);   //  3, 4
    zstr_free (&command);
    zmsg_destroy (&reply);
    reply = zmsg_recv (control);
    command = zmsg_popstr (reply);
    pb_wire_end_t end;
    rc = pb_wire_end_decode (zframe_data (zmsg_first (reply)), zframe_size (zmsg_first (reply)),
                             &end, NULL, 0);
    assert (streq (command, "END") && rc == 0);
    assert (end.through == 4 && end.head == 4 && end.count == 4);
    zsock_destroy (&subscriber);
    zstr_free (&command);
    zmsg_destroy (&reply);
    //  Server-side prefixes: only the tick
    const char *prefixes [] = { "sys." };
    rc = pb_wire_replay_encode (1, 0, prefixes, 1, 0, map, sizeof map, &size);
    assert (rc == 0);
    reply = s_test_control (control, "REPLAY", map, size);
    command = zmsg_popstr (reply);
    assert (streq (command, "EVENTS") && zmsg_size (reply) == 1);
    zstr_free (&command);
    zmsg_destroy (&reply);
    reply = zmsg_recv (control);
    command = zmsg_popstr (reply);
    rc = pb_wire_end_decode (zframe_data (zmsg_first (reply)), zframe_size (zmsg_first (reply)),
                             &end, NULL, 0);
    assert (streq (command, "END") && rc == 0 && end.through == 4 && end.count == 1);
    zstr_free (&command);
    zmsg_destroy (&reply);
    zactor_destroy (&journal);

    //  Restart on the same log: what was ACKed is there, and a resend is
    //  still answered with its first seq. (New endpoint names: libzmq
    //  releases an inproc name asynchronously after its socket closes.)
    strcpy (cfg.ingest, "inproc://pb_journal_test_ingest_2");
    strcpy (cfg.fanout, "inproc://pb_journal_test_fanout_2");
    strcpy (cfg.replay, "inproc://pb_journal_test_replay_2");
    journal = zactor_new (pb_journal_actor, &cfg);
    zsock_recv (journal, "i", &rc);
    assert (rc == 0);
    zsock_destroy (&producer);          //  inproc peers do not reconnect
    producer = pb_sock_new (ZMQ_DEALER, ">inproc://pb_journal_test_ingest_2", NULL);
    assert (producer);
    zsock_set_rcvtimeo (producer, 5000);
    msg = s_test_event ("e-2", "test", "second");
    zmsg_send (&msg, producer);
    assert (s_test_reply (producer, code) == 2);
    zactor_destroy (&journal);

    //  Automatic clock: ticks from the configured clock
    s_test_run_clock_auto (&cfg, verbose);
    s_test_run_import (&cfg, verbose);

    zsock_destroy (&producer);
    zsock_destroy (&control);
    char file [PATH_MAX];
    snprintf (file, sizeof file, "%s/data.mdb", path);
    zsys_file_delete (file);
    snprintf (file, sizeof file, "%s/lock.mdb", path);
    zsys_file_delete (file);
    zsys_dir_delete ("%s", path);
    printf ("OK\n");
}
