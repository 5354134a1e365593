/*  =========================================================================
    pb_journal_metrics - the journal's /metrics and /health (journal/metrics)

    The counters are plain integers of pb_journal_t, incremented on the
    actor's thread where the work happens (the NAK counts the stats timer
    already keeps, appended and duplicates, two histograms per batch, the
    replay counts). Once a second, on the stats timer and after settling,
    so the log is the actor's, pb_journal_metrics_publish renders them and
    sends the text to the HTTP thread (common/pb_metrics.h explains why a
    snapshot and not shared counters). The journal is ready as soon as it
    is bound and its loop runs: the first snapshot says so.
    =========================================================================
*/
#include "pb_journal_internal.h"

#include <sys/stat.h>

//  Batch sizes (entries per group commit) and commit latency (seconds)
static const double s_batch_bounds [] = {
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 16384, 65536
};
static const double s_commit_bounds [] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1, 2.5, 10
};

int
pb_journal_metrics_open (pb_journal_t *self)
{
    pb_histogram_init (&self->batch_sizes, s_batch_bounds,
                       sizeof s_batch_bounds / sizeof s_batch_bounds [0]);
    pb_histogram_init (&self->commit_seconds, s_commit_bounds,
                       sizeof s_commit_bounds / sizeof s_commit_bounds [0]);
    if (!*self->cfg->metrics)
        return 0;
    return pb_metrics_open (self->cfg->metrics, "journal", &self->metrics)? PB_EIO: 0;
}

void
pb_journal_metrics_close (pb_journal_t *self)
{
    pb_metrics_destroy (&self->metrics);
}

void
pb_journal_metrics_batch (pb_journal_t *self, const pb_journal_entry_t *entries,
                          size_t count, bool appended)
{
    if (!self->metrics)
        return;
    for (size_t i = 0; i < count; i++)
        self->ingest_messages += entries [i].origin == PB_JOURNAL_FROM_INGEST;
    pb_histogram_observe (&self->batch_sizes, (double) count);
    if (appended)                       //  A batch of refusals syncs nothing
        pb_histogram_observe (&self->commit_seconds, self->commit_usecs / 1e6);
}

static void
s_render (pb_journal_t *self, pb_metrics_t *m)
{
    pb_metrics_counter (m, "pb_journal_ingest_messages_total",
                        "messages answered on ingest (ACK or NAK)", self->ingest_messages);
    pb_metrics_counter (m, "pb_journal_events_appended_total",
                        "events appended to the log (sys.tick included)", self->appended);
    pb_metrics_counter (m, "pb_journal_duplicates_total",
                        "resends answered with their first seq", self->duplicates);
    pb_metrics_family (m, "pb_journal_naks_total", "counter", "ingest refusals by NAK code");
    char labels [96];
    for (int code = PB_NAK_NONE + 1; code < PB_NAK_COUNT; code++) {
        snprintf (labels, sizeof labels, "code=\"%s\"", pb_nak_code ((pb_nak_t) code));
        pb_metrics_sample (m, "pb_journal_naks_total", labels, (double) self->naks_total [code]);
    }
    pb_metrics_family (m, "pb_journal_replay_errors_total", "counter",
                       "replay and control requests refused, by code");
    for (int code = PB_WIRE_REFUSAL_NONE + 1; code < PB_WIRE_REFUSAL_COUNT; code++) {
        snprintf (labels, sizeof labels, "code=\"%s\"",
                  pb_wire_refusal_code ((pb_wire_refusal_t) code));
        pb_metrics_sample (m, "pb_journal_replay_errors_total", labels,
                           (double) self->errors_total [code]);
    }
    //  PUB never refuses a send: every appended event is fanned out (a
    //  slow subscriber drops at its high-water mark and fills from replay)
    pb_metrics_counter (m, "pb_journal_fanout_events_total",
                        "events sent on fanout", self->appended);
    pb_metrics_counter (m, "pb_journal_replay_events_total",
                        "events sent by replay", self->replay_events);
    pb_metrics_counter (m, "pb_journal_replay_batches_total",
                        "EVENTS messages sent by replay", self->replay_batches);
    pb_metrics_counter (m, "pb_journal_replays_dropped_total",
                        "replays dropped (idle, or the client went away)",
                        self->replays_dropped_total);
    pb_metrics_gauge (m, "pb_journal_replay_sessions", "replays in progress",
                      (double) zlistx_size (self->sessions));
    pb_metrics_counter (m, "pb_journal_batches_total", "group commits", self->batches);
    pb_metrics_histogram (m, "pb_journal_batch_size", "messages per group commit",
                          &self->batch_sizes);
    pb_metrics_histogram (m, "pb_journal_commit_seconds",
                          "transaction and sync of one batch that appended",
                          &self->commit_seconds);
    pb_metrics_gauge (m, "pb_journal_head_seq", "seq of the last logged event",
                      (double) pb_log_head (self->log));
    pb_metrics_gauge (m, "pb_journal_log_time_ms", "log time: now of the latest sys.tick",
                      (double) pb_log_now (self->log));
    char path [PB_CONFIG_STR_MAX + 16];
    snprintf (path, sizeof path, "%s/data.mdb", self->cfg->data_dir);
    struct stat st;
    double file_bytes = stat (path, &st) == 0? (double) st.st_size: 0;
    double map_bytes = (double) pb_log_map_size (self->log);
    double used_bytes = (double) pb_log_used_bytes (self->log);
    pb_metrics_gauge (m, "pb_journal_store_bytes",
                      "size of the log's data file (with what is written ahead)", file_bytes);
    pb_metrics_gauge (m, "pb_journal_map_used_bytes", "pages in use", used_bytes);
    pb_metrics_gauge (m, "pb_journal_map_bytes", "LMDB map size (grows up to map_max)",
                      map_bytes);
    pb_metrics_gauge (m, "pb_journal_map_max_bytes", "journal/map_max",
                      (double) self->cfg->map_max);
    pb_metrics_gauge (m, "pb_journal_map_use_ratio", "pages in use / map size",
                      map_bytes > 0? used_bytes / map_bytes: 0);
    pb_metrics_gauge (m, "pb_journal_map_at_max", "1 while refusing: the map is at map_max",
                      self->map_at_max? 1: 0);
    if (self->cfg->security) {
        pb_metrics_counter (m, "pb_journal_rights_reloads_total",
                            "rights file reloads that took effect (SIGHUP)", self->reloads);
        pb_metrics_gauge (m, "pb_journal_rights_keys", "keys in the rights in force",
                          (double) pb_rights_size (self->rights));
        pb_metrics_counter (m, "pb_journal_handshakes_refused_total",
                            "CURVE handshakes refused by the ZAP handler",
                            self->refused_handshakes_total + self->refused_handshakes);
        pb_metrics_counter (m, "pb_journal_subscriptions_refused_total",
                            "fanout subscriptions outside the subscriber's rights",
                            self->refused_subscriptions_total + self->refused_subscriptions);
    }
}

void
pb_journal_metrics_publish (pb_journal_t *self)
{
    //  The per-second counts the warnings use become totals here, so
    //  they are kept whether or not metrics are served
    for (int code = 0; code < PB_NAK_COUNT; code++)
        self->naks_total [code] += self->naks [code];
    for (int code = 0; code < PB_WIRE_REFUSAL_COUNT; code++)
        self->errors_total [code] += self->errors [code];
    if (!self->metrics)
        return;
    pb_metrics_begin (self->metrics);
    s_render (self, self->metrics);
    pb_metrics_commit (self->metrics, true, NULL);
}
