/*  =========================================================================
    pb_worker_metrics - a worker's /metrics and /health (internal to pb_worker)

    Every sample carries worker="<name>", so that one Prometheus can scrape
    the three workers and tell them apart. Lag is measured against the
    journal's head as the latest heartbeat (or replay END) told it: in
    events, head - applied_seq; in seconds, the heartbeat's journal clock
    minus the log time of the last sys.tick applied, and 0 once applied_seq
    has reached the head (the log time only moves with ticks, so a worker
    that has everything is not behind). With --clock manual the heartbeat
    carries the wall clock, not the log time: lag in seconds is then only
    meaningful when 0.

    Ready (GET /health) once a catch-up has reached the head since the
    worker started, and while the journal has been heard from within the
    last PB_WORKER_SILENCE_MS: before that its state is not current.
    =========================================================================
*/
#include "pb_worker_metrics.h"

typedef struct {
    pb_metrics_t *metrics;              //  (borrowed)
    char labels [96];                   //  worker="<name>"
} s_render_t;

static void
s_gauge (s_render_t *r, const char *name, const char *help, double value)
{
    pb_metrics_family (r->metrics, name, "gauge", help);
    pb_metrics_sample (r->metrics, name, r->labels, value);
}

static void
s_counter (s_render_t *r, const char *name, const char *help, double value)
{
    pb_metrics_family (r->metrics, name, "counter", help);
    pb_metrics_sample (r->metrics, name, r->labels, value);
}

//  pb_worker_gauge_fn: a business gauge from the rules
static void
s_on_gauge (void *arg, const char *name, const char *help, double value)
{
    s_gauge ((s_render_t *) arg, name, help, value);
}

int
pb_worker_metrics_publish (pb_metrics_t *metrics, pb_worker_store_t *store,
                           const pb_worker_progress_t *p)
{
    assert (metrics && store && p);
    pb_worker_stats_t st;
    int rc = pb_worker_store_stats (store, &st);
    if (rc)
        return rc;
    s_render_t r = { .metrics = metrics };
    snprintf (r.labels, sizeof r.labels, "worker=\"%s\"", p->name);
    uint64_t lag = p->head > st.applied_seq? p->head - st.applied_seq: 0;
    double lag_secs = 0;
    if (lag && p->head_ts > st.now)
        lag_secs = (double) (p->head_ts - st.now) / 1000.0;

    pb_metrics_begin (metrics);
    s_gauge (&r, "pb_worker_applied_seq", "seq of the last event applied", (double) st.applied_seq);
    s_gauge (&r, "pb_worker_head_seq", "the journal's head, as last heard",
             (double) p->head);
    s_gauge (&r, "pb_worker_lag_events", "head - applied_seq", (double) lag);
    s_gauge (&r, "pb_worker_lag_seconds",
             "journal clock of the last heartbeat - log time applied (0 when caught up)",
             lag_secs);
    s_gauge (&r, "pb_worker_log_time_ms", "log time: now of the last sys.tick applied",
             (double) st.now);
    s_gauge (&r, "pb_worker_catching_up", "1 while a catch-up or gap fill runs",
             p->replaying? 1: 0);
    s_gauge (&r, "pb_worker_quarantined", "quarantine entries (events, refused notifications)",
             (double) st.quarantined);
    s_gauge (&r, "pb_worker_state_keys", "entries of the state database",
             (double) st.state_keys);
    s_gauge (&r, "pb_worker_outbox", "notifications not yet ACKed", (double) st.outbox);
    s_gauge (&r, "pb_worker_inflight", "notifications sent and unanswered",
             (double) p->inflight);
    s_counter (&r, "pb_worker_notifications_acked_total", "notifications ACKed by the journal",
               (double) p->acked);
    s_counter (&r, "pb_worker_notifications_refused_total",
               "notifications the journal refused (quarantined)", (double) p->refused);
    s_counter (&r, "pb_worker_unavailable_total", "'unavailable' answers (resent later)",
               (double) p->unavailable);
    s_gauge (&r, "pb_worker_store_bytes", "size of the store's data file (with what is written ahead)",
             (double) st.file_bytes);
    s_gauge (&r, "pb_worker_map_bytes", "LMDB map size (grows)", (double) st.map_bytes);
    s_gauge (&r, "pb_worker_map_used_bytes", "pages in use", (double) st.used_bytes);
    s_gauge (&r, "pb_worker_map_use_ratio", "pages in use / map size",
             st.map_bytes? (double) st.used_bytes / (double) st.map_bytes: 0);
    rc = pb_worker_store_gauges (store, s_on_gauge, &r);
    if (rc)
        return rc;

    char detail [160] = "";
    int64_t silent = p->heard_at? zclock_mono () - p->heard_at: 0;
    if (!p->caught_up)
        snprintf (detail, sizeof detail, "catching up applied_seq=%" PRIu64 " head=%" PRIu64,
                  st.applied_seq, p->head);
    else
    if (silent > PB_WORKER_SILENCE_MS)
        snprintf (detail, sizeof detail, "no word from the journal for %" PRId64 " s",
                  silent / 1000);
    pb_metrics_commit (metrics, *detail == 0, detail);
    return 0;
}
