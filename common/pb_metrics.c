/*  =========================================================================
    pb_metrics - Prometheus text exposition and a health check over HTTP

    Two halves: the snapshot builder, used on the service's thread, and
    the server, a zactor that owns the libmicrohttpd daemon and the latest
    snapshot. The only link between them is the actor's pipe: SNAPSHOT
    [text][ready][detail] messages, sent without waiting (a full pipe drops
    the snapshot: the next one follows within a second).
    =========================================================================
*/
#include "pb_metrics.h"
#include "pb_error.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_CONNECTIONS_MAX   32          //  concurrent scrapes
#define S_IDLE_SECS         10          //  a silent connection is closed
#define S_CONTENT_TYPE      "text/plain; version=0.0.4; charset=utf-8"

struct _pb_metrics_t {
    zactor_t *server;                   //  the HTTP thread (owned)
    uint16_t port;                      //  where it listens
    char *text;                         //  snapshot being built (owned)
    size_t size;                        //  bytes in text
    size_t capacity;                    //  bytes allocated
};

//  --------------------------------------------------------------------------
//  Histograms

void
pb_histogram_init (pb_histogram_t *self, const double *bounds, size_t count)
{
    assert (self);
    assert (count <= PB_HISTOGRAM_BOUNDS_MAX);
    memset (self, 0, sizeof *self);
    for (size_t i = 0; i < count; i++) {
        assert (i == 0 || bounds [i] > bounds [i - 1]);
        self->bounds [i] = bounds [i];
    }
    self->bounds_count = count;
}

void
pb_histogram_observe (pb_histogram_t *self, double value)
{
    size_t i = 0;
    while (i < self->bounds_count && value > self->bounds [i])
        i++;
    self->buckets [i]++;
    self->count++;
    self->sum += value;
}

//  --------------------------------------------------------------------------
//  The server: one thread, the daemon in external-polling mode

typedef struct {
    struct sockaddr_in address;         //  where to listen
    char service [64];                  //  for logs
} s_server_args_t;

typedef struct {
    const char *service;                //  for logs (borrowed from args)
    struct MHD_Daemon *daemon;          //  libmicrohttpd (owned)
    char *text;                         //  latest snapshot, or NULL (owned)
    bool ready;                         //  its health answer
    char *detail;                       //  why not ready (owned)
} s_server_t;

static void
s_log (void *arg, const char *format, va_list args)
{
    char line [512];
    vsnprintf (line, sizeof line, format, args);
    size_t len = strlen (line);
    while (len && (line [len - 1] == '\n' || line [len - 1] == '\r'))
        line [--len] = 0;
    zsys_warning ("metrics: %s: %s", (const char *) arg, line);
}

static enum MHD_Result
s_reply (struct MHD_Connection *connection, unsigned int status,
         const char *content_type, const char *body)
{
    struct MHD_Response *response = MHD_create_response_from_buffer (
        strlen (body), (void *) body, MHD_RESPMEM_MUST_COPY);
    if (!response)
        return MHD_NO;
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header (response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header (response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response (connection, status, response);
    MHD_destroy_response (response);
    return rc;
}

//  Runs on the server's thread (inside MHD_run), so it may read the
//  snapshot: nothing else touches it
static enum MHD_Result
s_on_request (void *arg, struct MHD_Connection *connection, const char *url,
              const char *method, const char *version, const char *upload_data,
              size_t *upload_data_size, void **request_p)
{
    s_server_t *self = (s_server_t *) arg;
    if (!streq (method, MHD_HTTP_METHOD_GET) && !streq (method, MHD_HTTP_METHOD_HEAD))
        return s_reply (connection, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain",
                        "method not allowed: GET /metrics or /health\n");
    if (streq (url, "/metrics")) {
        if (!self->text)
            return s_reply (connection, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain",
                            "no snapshot yet: the service is starting\n");
        return s_reply (connection, MHD_HTTP_OK, S_CONTENT_TYPE, self->text);
    }
    if (streq (url, "/health") || streq (url, "/ready")) {
        if (self->text && self->ready)
            return s_reply (connection, MHD_HTTP_OK, "text/plain", "ready\n");
        char body [512];
        snprintf (body, sizeof body, "not ready: %s\n",
                  !self->text? "starting": self->detail && *self->detail? self->detail: "-");
        return s_reply (connection, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", body);
    }
    return s_reply (connection, MHD_HTTP_NOT_FOUND, "text/plain",
                    "not found: GET /metrics or /health\n");
}

//  A SNAPSHOT from the owner replaces the one we had. Returns false on $TERM.
static bool
s_on_pipe (s_server_t *self, zsock_t *pipe)
{
    zmsg_t *msg = zmsg_recv (pipe);
    if (!msg)
        return true;                    //  Interrupted: only $TERM stops us
    char *command = zmsg_popstr (msg);
    bool go_on = command && !streq (command, "$TERM");
    if (go_on && streq (command, "SNAPSHOT") && zmsg_size (msg) == 3) {
        zstr_free (&self->text);
        zstr_free (&self->detail);
        self->text = zmsg_popstr (msg);
        char *ready = zmsg_popstr (msg);
        self->ready = ready && streq (ready, "1");
        zstr_free (&ready);
        self->detail = zmsg_popstr (msg);
    }
    zstr_free (&command);
    zmsg_destroy (&msg);
    return go_on;
}

static void
s_server_actor (zsock_t *pipe, void *args)
{
    s_server_args_t *server_args = (s_server_args_t *) args;
    s_server_t self = { .service = server_args->service };
    //  libmicrohttpd's default SO_REUSEADDR (not SO_REUSEPORT): a restart
    //  binds at once despite TIME_WAIT, a second process on the port fails
    self.daemon = MHD_start_daemon (
        MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, s_on_request, &self,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &server_args->address,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int) S_CONNECTIONS_MAX,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) S_IDLE_SECS,
        MHD_OPTION_EXTERNAL_LOGGER, s_log, (void *) self.service,
        MHD_OPTION_END);
    const union MHD_DaemonInfo *info = self.daemon
        ? MHD_get_daemon_info (self.daemon, MHD_DAEMON_INFO_EPOLL_FD): NULL;
    int epoll_fd = info? info->epoll_fd: -1;
    info = self.daemon? MHD_get_daemon_info (self.daemon, MHD_DAEMON_INFO_BIND_PORT): NULL;
    uint16_t port = info? info->port: 0;
    zsock_signal (pipe, 0);
    zsock_send (pipe, "i2", self.daemon && epoll_fd >= 0? 0: PB_EIO, port);
    bool running = self.daemon && epoll_fd >= 0;
    while (running) {
        MHD_UNSIGNED_LONG_LONG timeout = 1000;
        if (MHD_get_timeout (self.daemon, &timeout) != MHD_YES || timeout > 1000)
            timeout = 1000;
        zmq_pollitem_t items [] = {
            { zsock_resolve (pipe), 0, ZMQ_POLLIN, 0 },
            { NULL, epoll_fd, ZMQ_POLLIN, 0 }
        };
        if (zmq_poll (items, 2, (long) timeout) == -1 && zmq_errno () != EINTR)
            break;
        if (items [0].revents & ZMQ_POLLIN)
            running = s_on_pipe (&self, pipe);
        if (running)
            MHD_run (self.daemon);
    }
    if (self.daemon)
        MHD_stop_daemon (self.daemon);
    zstr_free (&self.text);
    zstr_free (&self.detail);
    free (server_args);
}

//  "HOST:PORT" or "*:PORT" into 'address'. Returns 0 or PB_EINVAL.
static int
s_parse_endpoint (const char *endpoint, struct sockaddr_in *address)
{
    memset (address, 0, sizeof *address);
    address->sin_family = AF_INET;
    const char *colon = strrchr (endpoint, ':');
    if (!colon || colon == endpoint || (size_t) (colon - endpoint) >= 64)
        return PB_EINVAL;
    char host [64];
    memcpy (host, endpoint, colon - endpoint);
    host [colon - endpoint] = 0;
    char *end = NULL;
    long port = strtol (colon + 1, &end, 10);
    if (!colon [1] || *end || port < 0 || port > 65535)
        return PB_EINVAL;
    address->sin_port = htons ((uint16_t) port);
    if (streq (host, "*"))
        address->sin_addr.s_addr = htonl (INADDR_ANY);
    else
    if (inet_pton (AF_INET, host, &address->sin_addr) != 1)
        return PB_EINVAL;
    return 0;
}

//  --------------------------------------------------------------------------

int
pb_metrics_open (const char *endpoint, const char *service, pb_metrics_t **self_p)
{
    assert (endpoint);
    assert (self_p);
    s_server_args_t *args = (s_server_args_t *) zmalloc (sizeof *args);
    snprintf (args->service, sizeof args->service, "%s", service? service: "");
    if (s_parse_endpoint (endpoint, &args->address)) {
        fprintf (stderr, "metrics: '%s' is not HOST:PORT (an IPv4 address or *, "
                 "and a port)\n", endpoint);
        free (args);
        return PB_EINVAL;
    }
    pb_metrics_t *self = (pb_metrics_t *) zmalloc (sizeof *self);
    self->server = zactor_new (s_server_actor, args);   //  args pass to it
    assert (self->server);
    int rc = PB_EIO;
    uint16_t port = 0;
    if (zsock_recv (self->server, "i2", &rc, &port) == -1)
        rc = PB_EIO;
    if (rc) {
        zsys_error ("metrics: %s: cannot listen on %s", service? service: "", endpoint);
        pb_metrics_destroy (&self);
        return rc;
    }
    self->port = port;
    zsys_notice ("metrics: %s serving /metrics and /health on %.*s:%u", service,
                 (int) (strrchr (endpoint, ':') - endpoint), endpoint, port);
    *self_p = self;
    return 0;
}

void
pb_metrics_destroy (pb_metrics_t **self_p)
{
    assert (self_p);
    pb_metrics_t *self = *self_p;
    if (!self)
        return;
    zactor_destroy (&self->server);
    free (self->text);
    free (self);
    *self_p = NULL;
}

uint16_t
pb_metrics_port (pb_metrics_t *self)
{
    assert (self);
    return self->port;
}

//  --------------------------------------------------------------------------
//  The snapshot builder

static void
s_append (pb_metrics_t *self, const char *format, ...)
{
    while (true) {
        va_list args;
        va_start (args, format);
        size_t room = self->capacity - self->size;
        int n = vsnprintf (self->text + self->size, room, format, args);
        va_end (args);
        assert (n >= 0);
        if ((size_t) n < room) {
            self->size += (size_t) n;
            return;
        }
        self->capacity = self->capacity * 2 + (size_t) n + 1;
        self->text = (char *) realloc (self->text, self->capacity);
        assert (self->text);
    }
}

void
pb_metrics_begin (pb_metrics_t *self)
{
    assert (self);
    if (!self->text) {
        self->capacity = 8192;
        self->text = (char *) zmalloc (self->capacity);
    }
    self->size = 0;
    self->text [0] = 0;
}

void
pb_metrics_family (pb_metrics_t *self, const char *name, const char *type,
                   const char *help)
{
    assert (self && self->text);
    s_append (self, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void
pb_metrics_sample (pb_metrics_t *self, const char *name, const char *labels,
                   double value)
{
    assert (self && self->text);
    if (labels)
        s_append (self, "%s{%s} %.15g\n", name, labels, value);
    else
        s_append (self, "%s %.15g\n", name, value);
}

void
pb_metrics_counter (pb_metrics_t *self, const char *name, const char *help,
                    uint64_t value)
{
    pb_metrics_family (self, name, "counter", help);
    s_append (self, "%s %" PRIu64 "\n", name, value);
}

void
pb_metrics_gauge (pb_metrics_t *self, const char *name, const char *help,
                  double value)
{
    pb_metrics_family (self, name, "gauge", help);
    pb_metrics_sample (self, name, NULL, value);
}

void
pb_metrics_histogram (pb_metrics_t *self, const char *name, const char *help,
                      const pb_histogram_t *histogram)
{
    assert (histogram);
    pb_metrics_family (self, name, "histogram", help);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < histogram->bounds_count; i++) {
        cumulative += histogram->buckets [i];
        s_append (self, "%s_bucket{le=\"%.15g\"} %" PRIu64 "\n", name,
                  histogram->bounds [i], cumulative);
    }
    cumulative += histogram->buckets [histogram->bounds_count];
    s_append (self, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cumulative);
    s_append (self, "%s_sum %.15g\n%s_count %" PRIu64 "\n", name, histogram->sum,
              name, histogram->count);
}

void
pb_metrics_commit (pb_metrics_t *self, bool ready, const char *detail)
{
    assert (self && self->text);
    void *pipe = zsock_resolve (self->server);
    const char *why = detail? detail: "";
    //  A multipart message is queued whole once its first frame is
    //  accepted; a full pipe drops this snapshot, never blocks us
    if (zmq_send (pipe, "SNAPSHOT", 8, ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1)
        return;
    zmq_send (pipe, self->text, self->size, ZMQ_SNDMORE);
    zmq_send (pipe, ready? "1": "0", 1, ZMQ_SNDMORE);
    zmq_send (pipe, why, strlen (why), 0);
}

//  --------------------------------------------------------------------------
//  Selftest: a real HTTP exchange over TCP on 127.0.0.1

//  GET 'path' from 127.0.0.1:port with a plain socket; returns the whole
//  response (status line, headers, body), caller frees
static char *
s_test_get (uint16_t port, const char *method, const char *path)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    assert (fd >= 0);
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons (port) };
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    int rc = connect (fd, (struct sockaddr *) &address, sizeof address);
    assert (rc == 0);
    char request [256];
    int n = snprintf (request, sizeof request, "%s %s HTTP/1.0\r\nHost: x\r\n\r\n",
                      method, path);
    assert (write (fd, request, (size_t) n) == n);
    char *response = (char *) zmalloc (65536);
    size_t size = 0;
    ssize_t got;
    while ((got = read (fd, response + size, 65535 - size)) > 0)
        size += (size_t) got;
    close (fd);
    return response;
}

//  Wait until GET 'path' answers something containing 'want'
static char *
s_test_until (uint16_t port, const char *path, const char *want)
{
    for (int attempt = 0; attempt < 200; attempt++) {
        char *response = s_test_get (port, "GET", path);
        if (strstr (response, want))
            return response;
        free (response);
        zclock_sleep (10);
    }
    assert (!"the server never answered what was expected");
    return NULL;
}

void
pb_metrics_test (bool verbose)
{
    printf (" * pb_metrics: ");
    pb_histogram_t histogram;
    const double bounds [] = { 1, 10, 100 };
    pb_histogram_init (&histogram, bounds, 3);
    pb_histogram_observe (&histogram, 0.5);
    pb_histogram_observe (&histogram, 10);
    pb_histogram_observe (&histogram, 11);
    pb_histogram_observe (&histogram, 1000);
    assert (histogram.count == 4 && histogram.buckets [0] == 1 && histogram.buckets [1] == 1
            && histogram.buckets [2] == 1 && histogram.buckets [3] == 1);

    //  Bad endpoints are refused before anything starts
    pb_metrics_t *metrics = NULL;
    const char *bad [] = { "", "9100", "127.0.0.1", "127.0.0.1:", "127.0.0.1:x",
                           "127.0.0.1:70000", "256.1.1.1:9100", "host:9100", ":9100" };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++)
        assert (pb_metrics_open (bad [i], "test", &metrics) == PB_EINVAL && !metrics);

    int rc = pb_metrics_open ("127.0.0.1:0", "test", &metrics);
    assert (rc == 0 && metrics);
    uint16_t port = pb_metrics_port (metrics);
    assert (port > 0);
    //  A second server on the same port cannot bind
    char taken [32];
    snprintf (taken, sizeof taken, "127.0.0.1:%u", port);
    pb_metrics_t *second = NULL;
    assert (pb_metrics_open (taken, "test", &second) == PB_EIO && !second);

    //  Before the first snapshot: 503 for both
    char *response = s_test_get (port, "GET", "/metrics");
    assert (strstr (response, "HTTP/1.0 503") || strstr (response, "HTTP/1.1 503"));
    free (response);
    response = s_test_get (port, "GET", "/health");
    assert (strstr (response, " 503 ") && strstr (response, "not ready: starting"));
    free (response);

    pb_metrics_begin (metrics);
    pb_metrics_counter (metrics, "pb_test_events_total", "events seen", 42);
    pb_metrics_family (metrics, "pb_test_naks_total", "counter", "refusals by code");
    pb_metrics_sample (metrics, "pb_test_naks_total", "code=\"bad_data\"", 3);
    pb_metrics_gauge (metrics, "pb_test_ratio", "a ratio", 0.25);
    pb_metrics_histogram (metrics, "pb_test_sizes", "sizes", &histogram);
    pb_metrics_commit (metrics, false, "catching up applied_seq=1 head=9");
    response = s_test_until (port, "/metrics", "pb_test_events_total 42\n");
    assert (strstr (response, " 200 "));
    assert (strstr (response, "text/plain; version=0.0.4"));
    assert (strstr (response, "# TYPE pb_test_events_total counter\n"));
    assert (strstr (response, "pb_test_naks_total{code=\"bad_data\"} 3\n"));
    assert (strstr (response, "pb_test_ratio 0.25\n"));
    assert (strstr (response, "pb_test_sizes_bucket{le=\"10\"} 2\n"));
    assert (strstr (response, "pb_test_sizes_bucket{le=\"+Inf\"} 4\n"));
    assert (strstr (response, "pb_test_sizes_count 4\n"));
    assert (strstr (response, "pb_test_sizes_sum 1021.5\n"));
    if (verbose)
        printf ("\n%s\n", response);
    free (response);
    response = s_test_get (port, "GET", "/health");
    assert (strstr (response, " 503 ") && strstr (response, "catching up applied_seq=1"));
    free (response);

    pb_metrics_begin (metrics);
    pb_metrics_counter (metrics, "pb_test_events_total", "events seen", 43);
    pb_metrics_commit (metrics, true, NULL);
    free (s_test_until (port, "/health", "ready\n"));
    response = s_test_get (port, "GET", "/metrics");
    assert (strstr (response, "pb_test_events_total 43\n") && !strstr (response, "pb_test_ratio"));
    free (response);

    //  What is not a scrape: 404, 405 with Allow, HEAD without a body
    response = s_test_get (port, "GET", "/nope");
    assert (strstr (response, " 404 "));
    free (response);
    response = s_test_get (port, "POST", "/metrics");
    assert (strstr (response, " 405 ") && strstr (response, "Allow: GET, HEAD"));
    free (response);
    response = s_test_get (port, "HEAD", "/metrics");
    assert (strstr (response, " 200 ") && !strstr (response, "pb_test_events_total"));
    free (response);

    pb_metrics_destroy (&metrics);
    pb_metrics_destroy (&metrics);
    assert (metrics == NULL);
    printf ("OK\n");
}
