/*  =========================================================================
    pb_bench - the journal's figures, and this machine's ceilings

    Measures, against a running pb-journal (its ingest endpoint):
      - durable ingest throughput (events/s) and ACK latency (p50, p99,
        p99.9) with 1, 4 and 16 concurrent producers of 200-byte events,
        pipelined (window 1000) and one at a time (window 1);
      - the ACK latency of a well-behaved producer while another floods
        the journal with malformed messages;
      - the journal's peak memory (VmHWM of --pid);
      - one event in flight again, --pairs times, each run back to back
        with its floor (raw LMDB one-value commits, file written ahead),
        since the disk's flush tail here moves from minute to minute;
      - with --replay, pipelined ingest while whole-log replays run
        (flow-controlled), their rate, and the journal's resident memory
        meanwhile;
      - with --log (the journal's log directory), the log's growth in
        bytes per event over the last pipelined run, and the rate that
        the disk alone would allow at that many bytes: the LMDB ceiling's
        bytes per second over the log's bytes per event;
    and, in the same run, the ceilings these figures are compared with:
      - raw LMDB batched append rate with sync (batches of 1000 values of
        the event size, in a temporary directory), and the bytes on disk
        that this is: the disk's synced bandwidth;
      - raw LMDB one value per commit + sync, its commit's p50 and p99,
        the floor of an ACK's latency with one event in flight under the
        log's durability: as LMDB writes its file, and with the file
        written ahead as pb-journal keeps its log (common/pb_prealloc.h);
      - raw ZeroMQ DEALER/ROUTER request-ACK rate, pipelined, and its
        round trip one at a time, over tcp loopback.
    Prints one table. Not a pass/fail test: tests/bench/run.sh starts a
    journal and runs this; ctest's bench_smoke runs it with tiny counts.

    Every producer is a thread with its own socket and its own results;
    threads share nothing but the read-only options.
    =========================================================================
*/
#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pb_prealloc.h"
#include "pb_sock.h"
#include "pb_wire.h"

#define S_MAX_CONFIGS 16

typedef struct {
    const char *ingest;         //  journal ingest endpoint (borrowed)
    int pid;                    //  journal pid for VmHWM, 0 if unknown
    long events;                //  events per pipelined configuration
    long events_w1;             //  events per window-1 configuration
    int size;                   //  envelope size in bytes
    int producers [S_MAX_CONFIGS];
    int producer_count;
    int window;                 //  pipelined window
    long lmdb_events;           //  raw LMDB ceiling: values written
    long zmq_events;            //  raw ZeroMQ ceiling: requests
    long flood_bad;             //  malformed messages of the flood
    long flood_good;            //  good events sent one at a time meanwhile
    const char *replay;         //  journal replay endpoint, or NULL (borrowed)
    int replays;                //  replay clients during the replay run
    int pairs;                  //  one-in-flight runs side by side with the floor
    const char *tmp;            //  where the LMDB ceiling writes
    const char *log;            //  the journal's log directory, or NULL (borrowed)
    char run_id [32];           //  makes ids unique across runs
} s_opts_t;

typedef struct {
    const s_opts_t *opts;       //  borrowed
    const char *endpoint;       //  where to connect (borrowed)
    int index;                  //  producer number
    int window;                 //  requests in flight
    long count;                 //  requests to send
    bool raw;                   //  true: ceiling run, no envelope ids
    double *latency;            //  count latencies in seconds (owned)
    long acks;                  //  ACKs received
    long naks;                  //  NAKs received
    int rc;                     //  0, or -1 on a timeout or bad reply
} s_producer_t;

typedef struct {
    double rate;                //  events per second
    double p50, p99, p999, max; //  latency in seconds
    long acks, naks;
    int rc;
} s_figures_t;

//  Bytes of the pages in use of the LMDB environment in 'dir', or 0.
//  Read-only beside the process that writes it: LMDB's own multi-process
//  use, and no transaction is held (pb_prealloc_used reads the meta pages)
static uint64_t
s_dir_bytes (const char *dir)
{
    MDB_env *env = NULL;
    uint64_t bytes = 0;
    if (dir && mdb_env_create (&env) == 0
    &&  mdb_env_open (env, dir, MDB_RDONLY, 0644) == 0)
        bytes = pb_prealloc_used (env);
    if (env)
        mdb_env_close (env);
    return bytes;
}

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
s_cmp_double (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y? -1: x > y;
}

//  --------------------------------------------------------------------------
//  Envelopes: an activity.feedback padded with a comment to 'size' bytes

static void
s_pack_str (msgpack_packer *pk, const char *text)
{
    msgpack_pack_str_with_body (pk, text, strlen (text));
}

static void
s_envelope (msgpack_sbuffer *buf, const char *id, const char *src, int pad)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 4);
    s_pack_str (&pk, "id");
    s_pack_str (&pk, id);
    s_pack_str (&pk, "src");
    s_pack_str (&pk, src);
    s_pack_str (&pk, "type");
    s_pack_str (&pk, "activity.feedback");
    s_pack_str (&pk, "data");
    msgpack_pack_map (&pk, 5);
    s_pack_str (&pk, "activity");
    s_pack_str (&pk, "ACT-BENCH");
    s_pack_str (&pk, "from");
    s_pack_str (&pk, "ITA");
    s_pack_str (&pk, "relevance");
    msgpack_pack_int (&pk, 4);
    s_pack_str (&pk, "effectiveness");
    msgpack_pack_int (&pk, 3);
    s_pack_str (&pk, "comment");
    char comment [4096];
    if (pad < 0)
        pad = 0;
    if (pad > (int) sizeof comment)
        pad = sizeof comment;
    memset (comment, 'x', pad);
    msgpack_pack_str_with_body (&pk, comment, pad);
}

//  A producer's envelopes, padded to opts->size bytes: packed once with a
//  counter of S_DIGITS digits at the end of its id, after which an event
//  costs the writing of those digits (the client shares the two cores
//  with the journal it measures)
#define S_DIGITS 12

typedef struct {
    msgpack_sbuffer buf;        //  the envelope
    size_t digits;              //  offset of the id's counter in buf
} s_template_t;

static void
s_template_init (s_template_t *self, const s_opts_t *opts, int index)
{
    char id [64], src [32];
    int id_len = snprintf (id, sizeof id, "%s-%0*d", opts->run_id, S_DIGITS, 0);
    snprintf (src, sizeof src, "bench-%d", index);
    assert (id_len > S_DIGITS && id_len < (int) sizeof id);
    msgpack_sbuffer_init (&self->buf);
    s_envelope (&self->buf, id, src, 0);
    int pad = opts->size - (int) self->buf.size;
    //  A str header grows by one byte past 31 and by two past 255
    pad -= pad > 31? (pad > 255? 2: 1): 0;
    msgpack_sbuffer_clear (&self->buf);
    s_envelope (&self->buf, id, src, pad);
    //  The id is the first str value that holds it
    size_t at = 0;
    while (at + (size_t) id_len <= self->buf.size
       &&  memcmp (self->buf.data + at, id, (size_t) id_len) != 0)
        at++;
    assert (at + (size_t) id_len <= self->buf.size);
    self->digits = at + (size_t) id_len - S_DIGITS;
}

//  Make the envelope number 'i'
static void
s_template_set (s_template_t *self, long i)
{
    char *digit = self->buf.data + self->digits + S_DIGITS;
    for (int d = 0; d < S_DIGITS; d++, i /= 10)
        *--digit = (char) ('0' + i % 10);
}

static void
s_template_destroy (s_template_t *self)
{
    msgpack_sbuffer_destroy (&self->buf);
}

//  --------------------------------------------------------------------------
//  One producer: 'window' requests in flight, replies in order

static void *
s_producer_run (void *arg)
{
    s_producer_t *self = (s_producer_t *) arg;
    const s_opts_t *opts = self->opts;
    self->latency = (double *) zmalloc (sizeof (double) * (self->count + 1));
    double *sent_at = (double *) zmalloc (sizeof (double) * self->window);
    char endpoint [256];
    snprintf (endpoint, sizeof endpoint, ">%s", self->endpoint);
    zsock_t *sock = pb_sock_new (ZMQ_DEALER, endpoint, NULL);
    s_template_t envelope;
    s_template_init (&envelope, opts, self->index);
    self->rc = sock? 0: -1;
    if (sock) {
        zsock_set_rcvtimeo (sock, 30000);
        void *handle = zsock_resolve (sock);
        long sent = 0, got = 0;
        while (got < self->count && self->rc == 0) {
            while (sent < self->count && sent - got < self->window) {
                if (!self->raw)
                    s_template_set (&envelope, sent);
                sent_at [sent % self->window] = s_now ();
                zmq_send (handle, "activity.feedback", 17, ZMQ_SNDMORE);
                zmq_send (handle, envelope.buf.data, envelope.buf.size, 0);
                sent++;
            }
            //  Wait for one reply, then take every reply already there
            int flags = 0;
            while (got < sent && self->rc == 0) {
                zmq_msg_t kind, body;
                zmq_msg_init (&kind);
                zmq_msg_init (&body);
                if (zmq_msg_recv (&kind, handle, flags) == -1) {
                    zmq_msg_close (&kind);
                    zmq_msg_close (&body);
                    if (flags == ZMQ_DONTWAIT && zmq_errno () == EAGAIN)
                        break;
                    fprintf (stderr, "pb_bench: producer %d: no reply in 30 s "
                             "after %ld of %ld\n", self->index, got, self->count);
                    self->rc = -1;
                    break;
                }
                if (!zmq_msg_more (&kind) || zmq_msg_recv (&body, handle, 0) == -1)
                    self->rc = -1;
                else {
                    self->latency [got] = s_now () - sent_at [got % self->window];
                    if (zmq_msg_size (&kind) == 3
                    &&  memcmp (zmq_msg_data (&kind), "ACK", 3) == 0)
                        self->acks++;
                    else
                        self->naks++;
                    got++;
                }
                zmq_msg_close (&kind);
                zmq_msg_close (&body);
                flags = ZMQ_DONTWAIT;
            }
        }
    }
    s_template_destroy (&envelope);
    zsock_destroy (&sock);
    free (sent_at);
    return NULL;
}

//  Run 'count' producers of 'events' in all; fill 'fig'
//  'tag' makes each run's producer names (src) unique.
static void
s_run_producers (const s_opts_t *opts, const char *endpoint, int tag, int count,
                 int window, long events, bool raw, s_figures_t *fig)
{
    s_producer_t *producers = (s_producer_t *) zmalloc (sizeof (s_producer_t) * count);
    pthread_t *threads = (pthread_t *) zmalloc (sizeof (pthread_t) * count);
    double start = s_now ();
    for (int i = 0; i < count; i++) {
        producers [i].opts = opts;
        producers [i].endpoint = endpoint;
        producers [i].index = tag * 100 + i;
        producers [i].window = window;
        producers [i].count = events / count + (i < events % count);
        producers [i].raw = raw;
        pthread_create (&threads [i], NULL, s_producer_run, &producers [i]);
    }
    long total = 0;
    memset (fig, 0, sizeof *fig);
    for (int i = 0; i < count; i++) {
        pthread_join (threads [i], NULL);
        total += producers [i].acks + producers [i].naks;
    }
    double elapsed = s_now () - start;
    double *all = (double *) zmalloc (sizeof (double) * (total + 1));
    long n = 0;
    for (int i = 0; i < count; i++) {
        long got = producers [i].acks + producers [i].naks;
        memcpy (all + n, producers [i].latency, sizeof (double) * got);
        n += got;
        fig->acks += producers [i].acks;
        fig->naks += producers [i].naks;
        if (producers [i].rc)
            fig->rc = -1;
        free (producers [i].latency);
    }
    qsort (all, n, sizeof (double), s_cmp_double);
    fig->rate = elapsed > 0? n / elapsed: 0;
    if (n > 0) {
        fig->p50 = all [(long) (n * 0.50)];
        fig->p99 = all [(long) (n * 0.99)];
        fig->p999 = all [(long) (n * 0.999)];
        fig->max = all [n - 1];
    }
    free (all);
    free (threads);
    free (producers);
}

//  --------------------------------------------------------------------------
//  Ceiling 1: raw LMDB, batches of 'batch' values, one commit + sync each

//  'ahead': keep the data file written 8 MiB past its last page, as
//  pb-journal does (journal/prealloc), outside the commits' times
static int
s_lmdb_ceiling (const s_opts_t *opts, int batch, long values, bool ahead,
                double *rate, double *p50, double *p99, double *bytes_p)
{
    char dir [512];
    snprintf (dir, sizeof dir, "%s/pb-bench-lmdb-XXXXXX", opts->tmp);
    if (!mkdtemp (dir)) {
        fprintf (stderr, "pb_bench: mkdtemp %s: %s\n", dir, strerror (errno));
        return -1;
    }
    MDB_env *env = NULL;
    MDB_dbi dbi;
    int rc = mdb_env_create (&env);
    if (!rc)
        rc = mdb_env_set_mapsize (env, (size_t) 4 << 30);
    if (!rc)
        rc = mdb_env_open (env, dir, 0, 0644);
    pb_prealloc_t prealloc;
    pb_prealloc_init (&prealloc, "pb_bench", ahead? (uint64_t) 8 << 20: 0);
    if (!rc)
        rc = pb_prealloc_run (&prealloc, env);
    char *value = (char *) zmalloc (opts->size);
    memset (value, 'v', opts->size);
    double start = s_now ();
    long written = 0;
    long commits = 0;
    //  Each commit's time: with one value per commit, the floor of an
    //  ACK's latency with one event in flight on this disk
    double *took = (double *) zmalloc (sizeof (double) * ((size_t) (values / batch) + 2));
    while (!rc && written < values) {
        double began = s_now ();
        MDB_txn *txn;
        rc = mdb_txn_begin (env, NULL, 0, &txn);
        if (rc)
            break;
        if (written == 0)
            rc = mdb_dbi_open (txn, NULL, 0, &dbi);
        for (int i = 0; !rc && i < batch && written < values; i++) {
            uint64_t seq = written + 1;
            uint8_t key [8];
            for (int b = 0; b < 8; b++)
                key [b] = (uint8_t) (seq >> (56 - 8 * b));
            MDB_val k = { sizeof key, key }, v = { (size_t) opts->size, value };
            rc = mdb_put (txn, dbi, &k, &v, MDB_APPEND);
            written++;
        }
        if (rc)
            mdb_txn_abort (txn);
        else
            rc = mdb_txn_commit (txn);         //  syncs: LMDB's default
        if (!rc)
            took [commits++] = (s_now () - began) * 1000.0;
        if (!rc)
            rc = pb_prealloc_run (&prealloc, env);
    }
    double elapsed = s_now () - start;
    qsort (took, (size_t) commits, sizeof (double), s_cmp_double);
    *p50 = commits? took [(long) (commits * 0.50)]: 0;
    *p99 = commits? took [(long) (commits * 0.99)]: 0;
    free (took);
    if (rc)
        fprintf (stderr, "pb_bench: LMDB: %s\n", mdb_strerror (rc));
    *rate = elapsed > 0? written / elapsed: 0;
    //  What each value costs on disk: key, node header, the page's slack
    //  and the branch pages, as LMDB lays them out
    if (bytes_p)
        *bytes_p = env && written > 0? (double) pb_prealloc_used (env) / written: -1;
    if (env)
        mdb_env_close (env);
    free (value);
    char path [600];
    snprintf (path, sizeof path, "%s/data.mdb", dir);
    unlink (path);
    snprintf (path, sizeof path, "%s/lock.mdb", dir);
    unlink (path);
    rmdir (dir);
    return rc? -1: 0;
}

//  --------------------------------------------------------------------------
//  Ceiling 2: raw ZeroMQ, a ROUTER that ACKs each request at once

static void
s_echo_actor (zsock_t *pipe, void *arg)
{
    zsock_t *router = pb_sock_new (ZMQ_ROUTER, "@tcp://127.0.0.1:*", NULL);
    assert (router);
    zsock_signal (pipe, 0);
    zstr_send (pipe, zsock_endpoint (router));
    void *handle = zsock_resolve (router);
    //  The ACK map of a typical reply: {id: <40 bytes>, seq: <uint32>}
    static const char ack [] = "\x82\xa2id\xd9\x28xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                               "\xa3seq\xce\x00\x01\x00\x00";
    zpoller_t *poller = zpoller_new (pipe, router, NULL);
    while (zpoller_wait (poller, -1) == router) {
        //  Answer every request already there, then wait again
        zmq_msg_t identity, frame;
        zmq_msg_init (&identity);
        zmq_msg_init (&frame);
        while (zmq_msg_recv (&identity, handle, ZMQ_DONTWAIT) != -1) {
            //  Skip the request's other frames
            bool more = zmq_msg_more (&identity);
            while (more && zmq_msg_recv (&frame, handle, 0) != -1)
                more = zmq_msg_more (&frame);
            zmq_msg_send (&identity, handle, ZMQ_SNDMORE);
            zmq_send (handle, "ACK", 3, ZMQ_SNDMORE);
            zmq_send (handle, ack, sizeof ack - 1, 0);
        }
        zmq_msg_close (&identity);
        zmq_msg_close (&frame);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&router);
}

//  --------------------------------------------------------------------------
//  The flood: malformed messages from one thread, as fast as it can

typedef struct {
    const char *endpoint;       //  borrowed
    long count;                 //  messages to send
    long sent;                  //  sent so far
} s_flooder_t;

static void *
s_flooder_run (void *arg)
{
    s_flooder_t *self = (s_flooder_t *) arg;
    char endpoint [256];
    snprintf (endpoint, sizeof endpoint, ">%s", self->endpoint);
    zsock_t *sock = pb_sock_new (ZMQ_DEALER, endpoint, NULL);
    if (!sock)
        return NULL;
    void *handle = zsock_resolve (sock);
    static const char garbage [] = "\xc1\xc1 not msgpack at all";
    static const char deep [64] = "\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91"
        "\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91"
        "\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91";
    static const char huge_array [] = "\xdd\xff\xff\xff\xff\x01";
    for (self->sent = 0; self->sent < self->count; self->sent++) {
        switch (self->sent % 4) {
            case 0:
                zmq_send (handle, "activity.feedback", 17, ZMQ_SNDMORE);
                zmq_send (handle, garbage, sizeof garbage - 1, 0);
                break;
            case 1:
                zmq_send (handle, "activity.feedback", 17, 0);  //  bad_frames
                break;
            case 2:
                zmq_send (handle, "activity.feedback", 17, ZMQ_SNDMORE);
                zmq_send (handle, deep, sizeof deep, 0);
                break;
            default:
                zmq_send (handle, "activity.feedback", 17, ZMQ_SNDMORE);
                zmq_send (handle, huge_array, sizeof huge_array - 1, 0);
        }
        //  Read what NAKs have come, without waiting
        zmq_msg_t msg;
        zmq_msg_init (&msg);
        while (zmq_msg_recv (&msg, handle, ZMQ_DONTWAIT) != -1)
            ;
        zmq_msg_close (&msg);
    }
    zclock_sleep (200);
    zsock_destroy (&sock);
    return NULL;
}

//  --------------------------------------------------------------------------

static long
s_vm_kb (int pid, const char *field)
{
    char path [64], line [256];
    snprintf (path, sizeof path, "/proc/%d/status", pid);
    FILE *file = fopen (path, "r");
    long kb = -1;
    size_t len = strlen (field);
    while (file && fgets (line, sizeof line, file))
        if (strncmp (line, field, len) == 0 && line [len] == ':')
            kb = atol (line + len + 1);
    if (file)
        fclose (file);
    return kb;
}

//  One table row; with a ceiling, the rate as a share of it (and of the
//  LMDB rate, if given)
static void
s_row (const char *what, int producers, int window, const s_figures_t *fig,
       double ceiling, const double *lmdb_rate)
{
    printf ("| %-26s | %4d | %6d | %10.0f | %8.3f | %8.3f | %8.3f | %8.3f |",
            what, producers, window, fig->rate, fig->p50 * 1e3, fig->p99 * 1e3,
            fig->p999 * 1e3, fig->max * 1e3);
    if (ceiling > 0)
        printf (" %5.1f%%", 100.0 * fig->rate / ceiling);
    if (lmdb_rate && *lmdb_rate > 0)
        printf ("; %5.1f%%", 100.0 * fig->rate / *lmdb_rate);
    if (fig->naks)
        printf (" (%ld NAKs!)", fig->naks);
    if (fig->rc)
        printf (" (FAILED: timeout)");
    printf ("\n");
    fflush (stdout);
}

//  --------------------------------------------------------------------------
//  Replay while ingest runs: whole-log readers with flow control (credit),
//  and the journal's resident memory sampled meanwhile

typedef struct {
    const char *endpoint;       //  replay endpoint (borrowed)
    uint64_t to;                //  last seq to read
    long events;                //  events received
    double seconds;             //  REPLAY .. END
    int rc;                     //  0, or -1 on a timeout or an ERROR
} s_replayer_t;

static void *
s_replayer_run (void *arg)
{
    s_replayer_t *self = (s_replayer_t *) arg;
    char endpoint [300];
    snprintf (endpoint, sizeof endpoint, ">%s", self->endpoint);
    zsock_t *sock = pb_sock_new (ZMQ_DEALER, endpoint, NULL);
    assert (sock);
    zsock_set_rcvtimeo (sock, 30000);
    void *handle = zsock_resolve (sock);
    uint8_t map [PB_WIRE_REQUEST_MAX];
    size_t size = 0;
    int rc = pb_wire_replay_encode (1, self->to, NULL, 0, 4, map, sizeof map, &size);
    assert (rc == 0);
    double start = s_now ();
    zmq_send (handle, "REPLAY", 6, ZMQ_SNDMORE);
    zmq_send (handle, map, size, 0);
    rc = pb_wire_credit_encode (1, map, sizeof map, &size);
    assert (rc == 0);
    self->rc = -1;
    while (true) {
        zmsg_t *msg = zmsg_recv (sock);
        if (!msg) {
            fprintf (stderr, "pb_bench: replay: no answer in 30 s after %ld events\n",
                     self->events);
            break;
        }
        zframe_t *command = zmsg_first (msg);
        bool events = zframe_streq (command, "EVENTS");
        bool end = zframe_streq (command, "END");
        if (events) {
            self->events += (long) zmsg_size (msg) - 1;
            zmq_send (handle, "CREDIT", 6, ZMQ_SNDMORE);
            zmq_send (handle, map, size, 0);
        }
        zmsg_destroy (&msg);
        if (end)
            self->rc = 0;
        if (!events)
            break;
    }
    self->seconds = s_now () - start;
    zsock_destroy (&sock);
    return NULL;
}

typedef struct {
    int pid;
    volatile int running;
    long peak_kb;               //  highest RssAnon seen (the log's mapped
                                //  pages a replay reads count in VmRSS,
                                //  not in RssAnon)
} s_sampler_t;

static long
    s_vm_kb (int pid, const char *field);

static void *
s_sampler_run (void *arg)
{
    s_sampler_t *self = (s_sampler_t *) arg;
    while (self->running) {
        long kb = s_vm_kb (self->pid, "RssAnon");
        if (kb > self->peak_kb)
            self->peak_kb = kb;
        zclock_sleep (20);
    }
    return NULL;
}

//  The head of the log, by STATUS on the replay endpoint; 0 if unknown
static uint64_t
s_head (const char *replay)
{
    char endpoint [300];
    snprintf (endpoint, sizeof endpoint, ">%s", replay);
    zsock_t *sock = pb_sock_new (ZMQ_DEALER, endpoint, NULL);
    assert (sock);
    zsock_set_rcvtimeo (sock, 5000);
    zstr_send (sock, "STATUS");
    zmsg_t *msg = zmsg_recv (sock);
    pb_wire_status_t status = { 0 };
    zframe_t *command = msg? zmsg_first (msg): NULL;
    zframe_t *body = msg? zmsg_next (msg): NULL;
    if (!command || !body || !zframe_streq (command, "STATUS")
    ||  pb_wire_status_decode (zframe_data (body), zframe_size (body), &status, NULL, 0))
        status.head = 0;
    zmsg_destroy (&msg);
    zsock_destroy (&sock);
    return status.head;
}

static void
s_usage (void)
{
    printf ("pb_bench --ingest ENDPOINT [--pid PID] [--events N] [--events-w1 N]\n"
            "         [--producers 1,4,16] [--window N] [--size BYTES]\n"
            "         [--lmdb-events N] [--zmq-events N] [--flood N]\n"
            "         [--flood-good N] [--replay ENDPOINT] [--replays N]\n"
            "         [--pairs N] [--tmp DIR] [--log DIR] [--quick]\n"
            "--ingest none: the ceilings only\n");
}

int
main (int argc, char *argv [])
{
    s_opts_t opts = {
        .ingest = NULL, .pid = 0, .events = 100000, .events_w1 = 2000,
        .size = 200, .producers = { 1, 4, 16 }, .producer_count = 3,
        .window = 1000, .lmdb_events = 200000, .zmq_events = 200000,
        .flood_bad = 50000, .flood_good = 2000, .replay = NULL, .replays = 2,
        .pairs = 4, .tmp = "/tmp"
    };
    for (int i = 1; i < argc; i++) {
        const char *arg = argv [i];
        const char *val = i + 1 < argc? argv [i + 1]: NULL;
        bool takes = true;
        if (streq (arg, "--quick")) {
            opts.events = 2000;
            opts.events_w1 = 100;
            opts.lmdb_events = 5000;
            opts.zmq_events = 5000;
            opts.flood_bad = 2000;
            opts.flood_good = 100;
            opts.pairs = 1;
            takes = false;
        }
        else
        if (streq (arg, "--help") || !val) {
            s_usage ();
            return streq (arg, "--help")? 0: 1;
        }
        else
        if (streq (arg, "--ingest"))
            opts.ingest = streq (val, "none")? NULL: val;
        else
        if (streq (arg, "--pid"))
            opts.pid = atoi (val);
        else
        if (streq (arg, "--events"))
            opts.events = atol (val);
        else
        if (streq (arg, "--events-w1"))
            opts.events_w1 = atol (val);
        else
        if (streq (arg, "--window"))
            opts.window = atoi (val);
        else
        if (streq (arg, "--size"))
            opts.size = atoi (val);
        else
        if (streq (arg, "--lmdb-events"))
            opts.lmdb_events = atol (val);
        else
        if (streq (arg, "--zmq-events"))
            opts.zmq_events = atol (val);
        else
        if (streq (arg, "--flood"))
            opts.flood_bad = atol (val);
        else
        if (streq (arg, "--flood-good"))
            opts.flood_good = atol (val);
        else
        if (streq (arg, "--replay"))
            opts.replay = val;
        else
        if (streq (arg, "--replays"))
            opts.replays = atoi (val);
        else
        if (streq (arg, "--pairs"))
            opts.pairs = atoi (val);
        else
        if (streq (arg, "--tmp"))
            opts.tmp = val;
        else
        if (streq (arg, "--log"))
            opts.log = val;
        else
        if (streq (arg, "--producers")) {
            opts.producer_count = 0;
            char copy [128];
            snprintf (copy, sizeof copy, "%s", val);
            for (char *tok = strtok (copy, ","); tok && opts.producer_count < S_MAX_CONFIGS;
                 tok = strtok (NULL, ","))
                opts.producers [opts.producer_count++] = atoi (tok);
        }
        else {
            s_usage ();
            return 1;
        }
        if (takes)
            i++;
    }
    if (opts.size < 120 || opts.size > 4000 || opts.window < 1 || opts.events < 1) {
        fprintf (stderr, "pb_bench: --size must be 120..4000, --window and --events >= 1\n");
        return 1;
    }
    snprintf (opts.run_id, sizeof opts.run_id, "b%lx-%d", (long) time (NULL), getpid ());
    zsys_init ();
    zsys_set_logstream (stderr);
    int failed = 0;
    int tag = 1;                        //  next producer run's tag

    //  The ceilings: raw LMDB, and raw ZeroMQ in every configuration the
    //  journal is measured in (same producers, same window, same bytes)
    double lmdb_rate = 0, lmdb1_rate = 0, p50, p99, lmdb1_p50 = 0, lmdb1_p99 = 0;
    double ahead_rate = 0, ahead_p50 = 0, ahead_p99 = 0, lmdb_bytes = -1;
    long lmdb1_values = opts.lmdb_events / 100 > 100? opts.lmdb_events / 100: 100;
    if (s_lmdb_ceiling (&opts, 1000, opts.lmdb_events, false, &lmdb_rate, &p50, &p99,
                        &lmdb_bytes)
    ||  s_lmdb_ceiling (&opts, 1, lmdb1_values, false, &lmdb1_rate, &lmdb1_p50, &lmdb1_p99,
                        NULL)
    ||  s_lmdb_ceiling (&opts, 1, lmdb1_values, true, &ahead_rate, &ahead_p50, &ahead_p99,
                        NULL))
        failed = 1;
    int windows [2] = { opts.window, 1 };
    s_figures_t ceiling [2][S_MAX_CONFIGS];
    zactor_t *echo = zactor_new (s_echo_actor, NULL);
    char *echo_endpoint = zstr_recv (echo);
    s_figures_t fig, single_w1 = { 0 };
    s_run_producers (&opts, echo_endpoint, tag++, 1, opts.window, 2000, true, &fig);
    for (int w = 0; w < 2; w++)
        for (int c = 0; c < opts.producer_count; c++) {
            int producers = opts.producers [c];
            long events = w == 0? opts.zmq_events: opts.events_w1 * producers * 4;
            s_run_producers (&opts, echo_endpoint, tag++, producers, windows [w],
                             events, true, &ceiling [w][c]);
            failed |= ceiling [w][c].rc;
        }
    zstr_free (&echo_endpoint);
    zactor_destroy (&echo);

    printf ("\npartnerbus benchmark: %d-byte events; pipelined = window %d per producer\n\n",
            opts.size, opts.window);
    printf ("Ceilings of this machine\n\n");
    printf ("  raw LMDB append, batches of 1000, one commit + sync each: "
            "%.0f values/s (%ld values)\n", lmdb_rate, opts.lmdb_events);
    if (lmdb_bytes > 0)
        printf ("    %.0f bytes on disk per value: %.1f MB/s written and synced, "
                "this disk's synced append bandwidth at that batch\n", lmdb_bytes, lmdb_rate * lmdb_bytes / 1e6);
    printf ("  raw LMDB append, one value per commit + sync:            "
            "%.0f values/s (%ld values; %.3f ms each)\n", lmdb1_rate, lmdb1_values,
            lmdb1_rate > 0? 1e3 / lmdb1_rate: 0);
    printf ("    its commit + sync, p50 %.3f ms, p99 %.3f ms: the floor of an ACK's "
            "latency with one event in flight (journal/prealloc 0)\n", lmdb1_p50, lmdb1_p99);
    printf ("  the same, the data file written ahead as pb-journal keeps its log: "
            "%.0f values/s\n", ahead_rate);
    printf ("    its commit + sync, p50 %.3f ms, p99 %.3f ms: the same floor with "
            "journal/prealloc (the default)\n\n", ahead_p50, ahead_p99);
    printf ("| %-26s | %4s | %6s | %10s | %8s | %8s | %8s | %8s |\n",
            "raw ZeroMQ request-ACK", "prod", "window", "req/s", "p50 ms", "p99 ms",
            "p99.9 ms", "max ms");
    printf ("|----------------------------|------|--------|------------|"
            "----------|----------|----------|----------|\n");
    for (int w = 0; w < 2; w++)
        for (int c = 0; c < opts.producer_count; c++)
            s_row ("DEALER/ROUTER tcp loopback", opts.producers [c], windows [w],
                   &ceiling [w][c], 0, NULL);
    if (!opts.ingest) {
        printf ("\n(no --ingest: journal figures skipped)\n");
        return failed;
    }

    printf ("\nDurable ingest into pb-journal (ACK = committed and synced); "
            "ratios to the ceilings above\n\n");
    printf ("| %-26s | %4s | %6s | %10s | %8s | %8s | %8s | %8s | %s\n",
            "pb-journal", "prod", "window", "events/s", "p50 ms", "p99 ms", "p99.9 ms",
            "max ms", "rate vs ZeroMQ (same prod/window); vs LMDB (batch 1000 | 1)");
    printf ("|----------------------------|------|--------|------------|"
            "----------|----------|----------|----------|\n");
    //  Warm up: connects, first map pages
    s_run_producers (&opts, opts.ingest, tag++, 1, opts.window, 1000, false, &fig);
    //  The log's growth in the last pipelined run (the most producers), in
    //  bytes per event
    double log_bytes = -1, log_rate = 0;
    int log_producers = opts.producers [opts.producer_count - 1];
    for (int w = 0; w < 2; w++)
        for (int c = 0; c < opts.producer_count; c++) {
            int producers = opts.producers [c];
            long events = w == 0? opts.events: opts.events_w1 * producers;
            bool grown = w == 0 && c == opts.producer_count - 1;
            uint64_t before = grown? s_dir_bytes (opts.log): 0;
            s_run_producers (&opts, opts.ingest, tag++, producers, windows [w], events,
                             false, &fig);
            uint64_t after = grown? s_dir_bytes (opts.log): 0;
            if (before > 0 && after > before && fig.acks > 0) {
                log_bytes = (double) (after - before) / fig.acks;
                log_rate = fig.rate;
            }
            s_row (w == 0? "pipelined": "one at a time", producers, windows [w], &fig,
                   ceiling [w][c].rate, w == 0? &lmdb_rate: &lmdb1_rate);
            if (w == 1 && c == 0)
                single_w1 = fig;
            failed |= fig.rc || fig.naks;
        }

    //  A well-behaved producer, one at a time, during a flood
    s_flooder_t flooder = { opts.ingest, opts.flood_bad, 0 };
    pthread_t flood_thread;
    pthread_create (&flood_thread, NULL, s_flooder_run, &flooder);
    s_run_producers (&opts, opts.ingest, tag++, 1, 1, opts.flood_good, false, &fig);
    long flood_sent_during = flooder.sent;
    pthread_join (flood_thread, NULL);
    s_row ("one at a time, under flood", 1, 1, &fig, ceiling [1][0].rate, NULL);
    failed |= fig.rc || fig.naks;
    printf ("\n  flood: %ld malformed messages (%ld while the good producer ran); "
            "p50 under flood / p50 without: %.1fx, p99: %.1fx\n",
            flooder.count, flood_sent_during,
            single_w1.p50 > 0? fig.p50 / single_w1.p50: 0,
            single_w1.p99 > 0? fig.p99 / single_w1.p99: 0);
    if (opts.pid > 0)
        printf ("  journal peak memory (VmHWM): %ld kB; now (VmRSS): %ld kB\n",
                s_vm_kb (opts.pid, "VmHWM"), s_vm_kb (opts.pid, "VmRSS"));
    if (log_bytes > 0 && lmdb_bytes > 0) {
        double disk = lmdb_rate * lmdb_bytes;
        printf ("  disk: the log grew %.0f bytes per event (%d producers pipelined: "
                "%.1f MB/s, %.1f%% of the disk's %.1f MB/s above); at that bandwidth and "
                "that many bytes an event, the disk alone would bound ingest at %.0f "
                "events/s\n",
                log_bytes, log_producers, log_rate * log_bytes / 1e6,
                100.0 * log_rate * log_bytes / disk, disk / 1e6, disk / log_bytes);
    }

    //  Whole-log replays while 16 producers (or the most configured)
    //  pipeline: ingest must go on, and the journal's memory must not grow
    //  with the length of what is replayed
    uint64_t head = opts.replay? s_head (opts.replay): 0;
    if (opts.replay && head > 0 && opts.replays > 0) {
        int producers = opts.producers [opts.producer_count - 1];
        int count = opts.replays < 16? opts.replays: 16;
        s_replayer_t replayers [16];
        pthread_t threads [16];
        s_sampler_t sampler = { opts.pid, 1, 0 };
        long rss_before = opts.pid > 0? s_vm_kb (opts.pid, "RssAnon"): 0;
        pthread_t sampler_thread;
        pthread_create (&sampler_thread, NULL, s_sampler_run, &sampler);
        for (int i = 0; i < count; i++) {
            replayers [i] = (s_replayer_t) { opts.replay, head, 0, 0, 0 };
            pthread_create (&threads [i], NULL, s_replayer_run, &replayers [i]);
        }
        s_run_producers (&opts, opts.ingest, tag++, producers, opts.window, opts.events,
                         false, &fig);
        char what [64];
        snprintf (what, sizeof what, "pipelined, %d replays", count);
        s_row (what, producers, opts.window, &fig, ceiling [0][opts.producer_count - 1].rate,
               &lmdb_rate);
        failed |= fig.rc || fig.naks;
        long replayed = 0;
        double longest = 0;
        for (int i = 0; i < count; i++) {
            pthread_join (threads [i], NULL);
            replayed += replayers [i].events;
            if (replayers [i].seconds > longest)
                longest = replayers [i].seconds;
            failed |= replayers [i].rc || replayers [i].events != (long) head;
        }
        sampler.running = 0;
        pthread_join (sampler_thread, NULL);
        printf ("\n  replays: %d clients each read the whole log (%" PRIu64 " events, "
                "credit 4) while the producers ran: %.0f events/s in all, the last "
                "done in %.2f s\n", count, head, longest > 0? replayed / longest: 0, longest);
        if (opts.pid > 0)
            printf ("  journal's own memory (RssAnon, without the log's mapped pages): "
                    "%ld kB before the replays, at most %ld kB while they ran (VmRSS "
                    "now %ld kB: it counts the pages of the log the replays read)\n",
                    rss_before, sampler.peak_kb, s_vm_kb (opts.pid, "VmRSS"));
    }
    //  The disk's flush tail moves from minute to minute here, so one
    //  event in flight is also measured back to back with its floor (raw
    //  LMDB, one value per commit, file written ahead), pair by pair
    if (opts.pairs > 0) {
        printf ("\nOne event in flight (1 producer, %ld events) back to back with its "
                "floor (raw LMDB, %ld one-value commits, file written ahead)\n\n",
                opts.events_w1, opts.events_w1);
        printf ("| pair | journal p50 ms | p99 ms | floor p50 ms | p99 ms | p99 / floor p99 |\n");
        printf ("|------|----------------|--------|--------------|--------|-----------------|\n");
    }
    for (int pair = 0; pair < opts.pairs; pair++) {
        double rate, floor_p50 = 0, floor_p99 = 0;
        failed |= s_lmdb_ceiling (&opts, 1, opts.events_w1, true, &rate, &floor_p50,
                                  &floor_p99, NULL);
        s_run_producers (&opts, opts.ingest, tag++, 1, 1, opts.events_w1, false, &fig);
        failed |= fig.rc || fig.naks;
        printf ("| %4d | %14.3f | %6.3f | %12.3f | %6.3f | %15.2f |\n", pair + 1,
                fig.p50 * 1e3, fig.p99 * 1e3, floor_p50, floor_p99,
                floor_p99 > 0? fig.p99 * 1e3 / floor_p99: 0);
    }

    printf ("\n");
    if (failed)
        fprintf (stderr, "pb_bench: some runs failed (timeouts or NAKs), see above\n");
    return failed? 1: 0;
}
