/*  =========================================================================
    pb_worker_metrics - a worker's /metrics and /health (internal to pb_worker)

    pb_worker.c keeps the progress below on the actor's thread (plain
    fields, set where the work happens); once a second it calls
    pb_worker_metrics_publish, which reads the store's statistics and the
    rules' business gauges in a read transaction, renders them with the
    progress, and hands the text to the HTTP thread (pb_metrics.h).
    =========================================================================
*/
#ifndef PB_WORKER_METRICS_H_INCLUDED
#define PB_WORKER_METRICS_H_INCLUDED

#include "pb_metrics.h"
#include "pb_worker_store.h"

//  A worker is not ready while the journal has been silent this long
#define PB_WORKER_SILENCE_MS 10000

typedef struct {
    const char *name;                   //  the worker (borrowed)
    uint64_t head;                      //  the journal's head, latest heartbeat or END
    int64_t head_ts;                    //  the journal clock of that heartbeat (0: none)
    int64_t heard_at;                   //  mono ms of that heartbeat or END (0: never)
    bool caught_up;                     //  a catch-up reached the head since start
    bool replaying;                     //  a catch-up or gap fill is in progress
    uint64_t acked;                     //  notifications ACKed since start
    uint64_t refused;                   //  notifications NAKed (quarantined)
    uint64_t unavailable;               //  'unavailable' answers (resent later)
    int64_t inflight;                   //  notifications sent, unanswered
} pb_worker_progress_t;

//  Render and publish one snapshot. Returns 0, or the store code of a
//  failed read (the snapshot is not published; the caller exits as for
//  any store failure).
int
    pb_worker_metrics_publish (pb_metrics_t *metrics, pb_worker_store_t *store,
                               const pb_worker_progress_t *progress);

#endif
