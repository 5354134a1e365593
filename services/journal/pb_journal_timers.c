/*  =========================================================================
    pb_journal_timers - the journal's clock and timers: sys.tick (automatic
    and on TICK), the fanout heartbeat, LMDB reader checks, and the
    once-a-second aggregated warnings

    A tick is an event like any other: it joins the batch in hand, after
    what ingest delivered before it, and goes through the same commit path
    (the committer is never waited for on its account), so it is durable
    before TICKED is sent and fanned out in seq order. Its id derives from its
    now, so the same tick twice is one event (a TICK equal to the log time
    answers the existing seq), and log time never goes backwards.
    =========================================================================
*/
#include "pb_journal_internal.h"

//  --------------------------------------------------------------------------
//  Ticks

int
pb_journal_tick (pb_journal_t *self, int64_t now, zmq_msg_t *identity)
{
    //  Room for one more in hand: past batch_max, commit what is there
    if (self->entry_count >= (size_t) self->cfg->batch_max && pb_journal_settle (self))
        return -1;
    pb_journal_entry_t *entry = &self->entries [self->entry_count];
    entry->origin = identity? PB_JOURNAL_FROM_CONTROL: PB_JOURNAL_FROM_TICK;
    entry->frames = 2;
    entry->tick_now = now;
    entry->seq = 0;
    if (identity)
        zmq_msg_copy (&entry->identity, identity);
    //  The id derives from now, so the same tick twice is one event
    char id [32];
    snprintf (id, sizeof id, "tick-%" PRId64, now);
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 4);
    msgpack_pack_str_with_body (&packer, "id", 2);
    msgpack_pack_str_with_body (&packer, id, strlen (id));
    msgpack_pack_str_with_body (&packer, "src", 3);
    msgpack_pack_str_with_body (&packer, "journal", 7);
    msgpack_pack_str_with_body (&packer, "type", 4);
    msgpack_pack_str_with_body (&packer, "sys.tick", 8);
    msgpack_pack_str_with_body (&packer, "data", 4);
    msgpack_pack_map (&packer, 1);
    msgpack_pack_str_with_body (&packer, "now", 3);
    msgpack_pack_int64 (&packer, now);
    zmq_msg_close (&entry->type);
    zmq_msg_init_size (&entry->type, 8);
    memcpy (zmq_msg_data (&entry->type), "sys.tick", 8);
    zmq_msg_close (&entry->body);
    zmq_msg_init_size (&entry->body, buffer.size);
    memcpy (zmq_msg_data (&entry->body), buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    pb_journal_tick_enqueue (self);
    return 0;
}

int
pb_journal_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    pb_journal_t *self = (pb_journal_t *) arg;
    int64_t now = pb_journal_clock (self);
    if (now <= self->now_ahead) {
        //  Log time never goes backwards, and a tick never repeats a now:
        //  wait for the clock to pass it
        if (!self->tick_skipped && now < self->now_ahead)
            zsys_warning ("journal: clock is behind log time, ticks paused "
                          "clock=%" PRId64 " log_time=%" PRId64, now, self->now_ahead);
        self->tick_skipped = now < self->now_ahead;
        return 0;
    }
    self->tick_skipped = false;
    return pb_journal_tick (self, now, NULL);
}

//  --------------------------------------------------------------------------
//  Other timers

int
pb_journal_on_heartbeat (zloop_t *loop, int timer_id, void *arg)
{
    pb_journal_t *self = (pb_journal_t *) arg;
    if (pb_journal_settle (self))       //  The log is ours again
        return -1;
    uint8_t map [PB_WIRE_REPLY_MAX];
    size_t size = 0;
    int rc = pb_wire_heartbeat_encode (pb_log_head (self->log), pb_journal_clock (self),
                                       map, sizeof map, &size);
    assert (rc == 0);
    zmq_send (self->fanout_handle, "sys.heartbeat", 13, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send (self->fanout_handle, map, size, ZMQ_DONTWAIT);
    return 0;
}

int
pb_journal_on_reader_check (zloop_t *loop, int timer_id, void *arg)
{
    pb_journal_t *self = (pb_journal_t *) arg;
    if (pb_journal_settle (self))       //  The log is ours again
        return -1;
    int rc = pb_log_reader_check (self->log);
    return rc == PB_LOG_CORRUPT? (self->exit_rc = rc, -1): 0;
}

//  Warnings aggregated once a second: counts by code, never per message
int
pb_journal_on_stats (zloop_t *loop, int timer_id, void *arg)
{
    pb_journal_t *self = (pb_journal_t *) arg;
    if (pb_journal_settle (self))       //  The log is ours again
        return -1;
    char line [512] = "";
    size_t used = 0;
    uint64_t total = 0;
    for (int code = PB_NAK_NONE + 1; code < PB_NAK_COUNT; code++)
        if (self->naks [code] && used < sizeof line) {
            used += snprintf (line + used, sizeof line - used, " %s=%" PRIu64,
                              pb_nak_code ((pb_nak_t) code), self->naks [code]);
            total += self->naks [code];
        }
    for (int code = PB_WIRE_REFUSAL_NONE + 1; code < PB_WIRE_REFUSAL_COUNT; code++)
        if (self->errors [code] && used < sizeof line) {
            used += snprintf (line + used, sizeof line - used, " error.%s=%" PRIu64,
                              pb_wire_refusal_code ((pb_wire_refusal_t) code),
                              self->errors [code]);
            total += self->errors [code];
        }
    if (total)
        zsys_warning ("journal: refused in the last second count=%" PRIu64 "%s", total, line);
    if (++self->stats_turns % 10 == 0)
        zsys_info ("journal: stats head=%" PRIu64 " appended=%" PRIu64 " duplicates=%"
                   PRIu64 " batches=%" PRIu64 " mean_batch=%.1f replays=%zu",
                   pb_log_head (self->log), self->appended, self->duplicates,
                   self->batches, self->batches? (double) self->messages / self->batches: 0.0,
                   zlistx_size (self->sessions));
    pb_journal_metrics_publish (self);  //  Totals, and the /metrics snapshot
    memset (self->naks, 0, sizeof self->naks);
    memset (self->errors, 0, sizeof self->errors);
    pb_journal_replay_expire (self);
    pb_journal_security_stats (self);
    return 0;
}

