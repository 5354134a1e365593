/*  =========================================================================
    pb_metrics - Prometheus text exposition and a health check over HTTP

    A service that has a 'metrics' endpoint ("HOST:PORT") serves
    GET /metrics (Prometheus text format 0.0.4) and GET /health (200 "ready"
    or 503 "not ready: why") from its own HTTP thread, through
    libmicrohttpd.

    Threads share nothing (STYLE.md): the service's counters are plain
    integers that only its own thread touches. Once a second that thread
    renders them into a snapshot of exposition text (pb_metrics_begin,
    the family and sample calls, pb_metrics_commit), and commit SENDS the
    text over an inproc pipe to the HTTP thread, which keeps the latest
    one and answers every scrape from it. So the hot path pays only its
    increments, a scrape never touches the service's state, and what a
    scrape returns is at most one snapshot interval old.

    The HTTP thread is a zactor that owns the libmicrohttpd daemon in
    external-polling mode: one thread polls both the pipe and the daemon's
    epoll descriptor, so the request handler runs on the thread that owns
    the snapshot. Hardened for an exposed port: GET and HEAD only (405),
    bodies refused, at most 32 connections, 10 s idle timeout.
    =========================================================================
*/
#ifndef PB_METRICS_H_INCLUDED
#define PB_METRICS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _pb_metrics_t pb_metrics_t;

#define PB_HISTOGRAM_BOUNDS_MAX 20

//  A histogram with fixed upper bounds, owned by one thread: observe is a
//  few comparisons and increments. Initialize with pb_histogram_init.
typedef struct {
    size_t bounds_count;                //  finite buckets
    double bounds [PB_HISTOGRAM_BOUNDS_MAX];    //  upper bounds, ascending
    uint64_t buckets [PB_HISTOGRAM_BOUNDS_MAX + 1];  //  per bucket (+Inf last)
    uint64_t count;                     //  observations
    double sum;                         //  of observed values
} pb_histogram_t;

//  Set the bounds (ascending, at most PB_HISTOGRAM_BOUNDS_MAX) and zero
//  the counts
void
    pb_histogram_init (pb_histogram_t *self, const double *bounds, size_t count);

//  Count one observation of 'value'
void
    pb_histogram_observe (pb_histogram_t *self, double value);

//  Start serving /metrics and /health on 'endpoint': "HOST:PORT" with an
//  IPv4 HOST, or "*:PORT" for every interface; port 0 takes a free one
//  (pb_metrics_port says which). 'service' names the process in logs.
//  Until the first pb_metrics_commit, /metrics and /health answer 503.
//  Returns 0 and sets *self_p (the caller owns it and its thread);
//  PB_EINVAL for an endpoint that is not HOST:PORT (said on stderr);
//  PB_EIO if it cannot bind (logged).
int
    pb_metrics_open (const char *endpoint, const char *service,
                     pb_metrics_t **self_p);

//  Stop the HTTP thread and free. NULL-safe, idempotent, nullifies.
void
    pb_metrics_destroy (pb_metrics_t **self_p);

//  The TCP port it listens on
uint16_t
    pb_metrics_port (pb_metrics_t *self);

//  Building a snapshot, on the owner's thread: begin, then for each
//  metric its family (# HELP and # TYPE lines, once) and its samples,
//  then commit. 'type' is "counter" or "gauge". 'labels' is NULL or the
//  inside of the braces, e.g. "code=\"bad_data\"". Names and labels are
//  the caller's constants: they are not escaped.
void
    pb_metrics_begin (pb_metrics_t *self);
void
    pb_metrics_family (pb_metrics_t *self, const char *name, const char *type,
                       const char *help);
void
    pb_metrics_sample (pb_metrics_t *self, const char *name, const char *labels,
                       double value);
//  A family with one unlabelled sample
void
    pb_metrics_counter (pb_metrics_t *self, const char *name, const char *help,
                        uint64_t value);
void
    pb_metrics_gauge (pb_metrics_t *self, const char *name, const char *help,
                      double value);
//  A histogram family: _bucket{le=...} (cumulative), _sum and _count
void
    pb_metrics_histogram (pb_metrics_t *self, const char *name, const char *help,
                          const pb_histogram_t *histogram);

//  Hand the snapshot to the HTTP thread, with the health answer: 'ready',
//  or not and why ('detail', one line, may be NULL). Never blocks the
//  caller for long: the pipe is inproc and only the latest text is kept.
void
    pb_metrics_commit (pb_metrics_t *self, bool ready, const char *detail);

//  Self test of this module
void
    pb_metrics_test (bool verbose);

#endif
