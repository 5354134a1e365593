/*  =========================================================================
    pb_live_bench - end to end, live: publish a scenario paced at a rate,
    stamp every derived notification on arrival at the fanout

    The publishing half of tests/bench/workers_bench.py, in C, so that the
    figures are the system's and not a Python publisher's: at 10,000
    events/s on two cores an interpreter that packs, paces and stamps each
    message is itself the bottleneck. workers_bench.py generates the
    scenario (tests/it/scenario.py), writes it as a steps file, starts the
    journal and the three workers, and runs this program.

    Steps file: a MessagePack stream of arrays, [0, now] for a TICK (the
    manual clock) or [1, type, envelope-bytes] for an event. As in the
    Python publisher, events are pipelined on one DEALER (at most --window
    in flight) and a TICK is sent only once every event before it was
    answered, so that the log's order is the scenario's.

    A subscriber thread (its own socket, on an I/O thread of its own:
    nothing shared with the publisher but the arrays read after it stops,
    and ZeroMQ's context) records
    (arrival, seq, cause) of every notify.*. Latency is from the send of
    an event or TICK to the arrival of each notification it caused,
    directly (its cause is the event) or through other notifications (a
    handover that waited, caused by notify.nac.adopted: the chain of
    causes is followed back to the published event).
    PB_LIVE_DUMP=FILE also writes every ACK ("A seq sent acked") and every
    notification ("N cause arrived type"), in seconds from the start, to
    look at the latency over time.
    =========================================================================
*/

#include <czmq.h>
#include <msgpack.h>
#include <pthread.h>
#include <math.h>

#include "pb_sock.h"
#include "pb_wire.h"

typedef struct {
    uint64_t seq;                       //  of the event or tick
    double sent;                        //  when it left the publisher
    double acked;                       //  when its ACK or TICKED came back
} s_sent_t;

typedef struct {
    uint64_t seq;                       //  its own seq in the log
    uint64_t cause;                     //  seq of the event that made it
    double arrived;                     //  at the subscriber
    int type;                           //  index in the subscriber's types
} s_note_t;

#define S_TYPES_MAX 32

typedef struct {
    char fanout [256];                  //  endpoint (borrowed from argv)
    volatile int running;               //  cleared by main to stop
    volatile int ready;                 //  set once subscribed
    s_note_t *notes;                    //  arrivals (owned)
    size_t count, capacity;
    char types [S_TYPES_MAX][64];       //  notification types seen
    int type_count;
    double last_arrival;
} s_subscriber_t;

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void *
s_subscriber_run (void *arg)
{
    s_subscriber_t *self = (s_subscriber_t *) arg;
    //  Through pb_sock like every socket of the project: no high-water
    //  mark (a notification dropped would be a latency never measured)
    pb_sock_opts_t opts = PB_SOCK_OPTS_DEFAULTS;
    opts.rcvhwm = 0;
    opts.linger = 0;
    char endpoint [300];
    snprintf (endpoint, sizeof endpoint, ">%s", self->fanout);
    zsock_t *sub_sock = pb_sock_new (ZMQ_SUB, endpoint, &opts);
    assert (sub_sock);
    zsock_set_rcvtimeo (sub_sock, 100);
    zsock_set_subscribe (sub_sock, "notify.");
    void *sub = zsock_resolve (sub_sock);
    zclock_sleep (300);                 //  The subscription reaches the PUB
    self->ready = 1;
    msgpack_unpacked result;
    msgpack_unpacked_init (&result);
    while (self->running) {
        zmq_msg_t type, body;
        zmq_msg_init (&type);
        zmq_msg_init (&body);
        if (zmq_msg_recv (&type, sub, 0) != -1 && zmq_msg_more (&type)
        &&  zmq_msg_recv (&body, sub, 0) != -1) {
            double t = s_now ();
            uint64_t cause = 0, seq = 0;
            if (msgpack_unpack_next (&result, zmq_msg_data (&body), zmq_msg_size (&body),
                                     NULL) == MSGPACK_UNPACK_SUCCESS
            &&  result.data.type == MSGPACK_OBJECT_MAP) {
                msgpack_object_map *map = &result.data.via.map;
                for (uint32_t i = 0; i < map->size; i++) {
                    msgpack_object *key = &map->ptr [i].key;
                    if (key->type != MSGPACK_OBJECT_STR
                    ||  map->ptr [i].val.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                        continue;
                    if (key->via.str.size == 5 && memcmp (key->via.str.ptr, "cause", 5) == 0)
                        cause = map->ptr [i].val.via.u64;
                    else
                    if (key->via.str.size == 3 && memcmp (key->via.str.ptr, "seq", 3) == 0)
                        seq = map->ptr [i].val.via.u64;
                }
            }
            if (self->count == self->capacity) {
                self->capacity = self->capacity? self->capacity * 2: 65536;
                self->notes = (s_note_t *) realloc (self->notes,
                                                    self->capacity * sizeof (s_note_t));
                assert (self->notes);
            }
            int type_index = 0;
            size_t type_len = zmq_msg_size (&type) < 63? zmq_msg_size (&type): 63;
            while (type_index < self->type_count
            &&  (strlen (self->types [type_index]) != type_len
              || memcmp (self->types [type_index], zmq_msg_data (&type), type_len)))
                type_index++;
            if (type_index == self->type_count && type_index < S_TYPES_MAX - 1) {
                memcpy (self->types [type_index], zmq_msg_data (&type), type_len);
                self->types [type_index][type_len] = 0;
                self->type_count++;
            }
            self->notes [self->count++] = (s_note_t) { seq, cause, t, type_index };
            self->last_arrival = t;
        }
        zmq_msg_close (&type);
        zmq_msg_close (&body);
    }
    msgpack_unpacked_destroy (&result);
    zsock_destroy (&sub_sock);
    return NULL;
}

//  --------------------------------------------------------------------------
//  The publisher

typedef struct {
    void *ingest;                       //  DEALER (borrowed handle)
    void *control;                      //  DEALER on replay (borrowed handle)
    int window;
    double *inflight;                   //  ring of send times (owned)
    long sent, answered, naks;
    s_sent_t *done;                     //  (seq, sent) of every ACK (owned)
    size_t done_count, done_capacity;
    long ticks;
} s_publisher_t;

static void
s_record (s_publisher_t *self, uint64_t seq, double sent)
{
    if (self->done_count == self->done_capacity) {
        self->done_capacity = self->done_capacity? self->done_capacity * 2: 65536;
        self->done = (s_sent_t *) realloc (self->done,
                                           self->done_capacity * sizeof (s_sent_t));
        assert (self->done);
    }
    self->done [self->done_count++] = (s_sent_t) { seq, sent, s_now () };
}

//  Take one reply (blocking if 'wait'). Returns 0, 1 if none was there,
//  or -1 when the journal said nothing for 30 s.
static int
s_reply (s_publisher_t *self, bool wait)
{
    zmq_msg_t kind, body;
    zmq_msg_init (&kind);
    zmq_msg_init (&body);
    int rc = 0;
    if (zmq_msg_recv (&kind, self->ingest, wait? 0: ZMQ_DONTWAIT) == -1)
        rc = zmq_errno () == EAGAIN && !wait? 1: -1;
    else
    if (!zmq_msg_more (&kind) || zmq_msg_recv (&body, self->ingest, 0) == -1)
        rc = -1;
    else {
        double sent = self->inflight [self->answered % self->window];
        self->answered++;
        pb_wire_ack_t ack;
        if (zmq_msg_size (&kind) == 3 && memcmp (zmq_msg_data (&kind), "ACK", 3) == 0
        &&  pb_wire_ack_decode (zmq_msg_data (&body), zmq_msg_size (&body), &ack, NULL, 0) == 0)
            s_record (self, ack.seq, sent);
        else
            self->naks++;
    }
    zmq_msg_close (&kind);
    zmq_msg_close (&body);
    return rc;
}

static int
s_event (s_publisher_t *self, const char *type, size_t type_len,
         const void *env, size_t size)
{
    while (self->sent - self->answered >= self->window)
        if (s_reply (self, true) < 0)
            return -1;
    while (self->sent > self->answered && s_reply (self, false) == 0)
        ;
    self->inflight [self->sent % self->window] = s_now ();
    zmq_send (self->ingest, type, type_len, ZMQ_SNDMORE);
    zmq_send (self->ingest, env, size, 0);
    self->sent++;
    return 0;
}

static int
s_tick (s_publisher_t *self, int64_t now)
{
    while (self->sent > self->answered)
        if (s_reply (self, true) < 0)
            return -1;
    uint8_t map [64];
    size_t size = 0;
    int rc = pb_wire_tick_encode (now, map, sizeof map, &size);
    assert (rc == 0);
    double sent = s_now ();
    zmq_send (self->control, "TICK", 4, ZMQ_SNDMORE);
    zmq_send (self->control, map, size, 0);
    zmq_msg_t kind, body;
    zmq_msg_init (&kind);
    zmq_msg_init (&body);
    rc = -1;
    uint64_t seq = 0;
    int64_t ticked = 0;
    if (zmq_msg_recv (&kind, self->control, 0) != -1 && zmq_msg_more (&kind)
    &&  zmq_msg_recv (&body, self->control, 0) != -1
    &&  zmq_msg_size (&kind) == 6 && memcmp (zmq_msg_data (&kind), "TICKED", 6) == 0
    &&  pb_wire_ticked_decode (zmq_msg_data (&body), zmq_msg_size (&body),
                               &seq, &ticked, NULL, 0) == 0) {
        s_record (self, seq, sent);
        self->ticks++;
        rc = 0;
    }
    else
        fprintf (stderr, "pb_live_bench: TICK %" PRId64 " not answered TICKED\n", now);
    zmq_msg_close (&kind);
    zmq_msg_close (&body);
    return rc;
}

//  --------------------------------------------------------------------------
//  Figures

static int
s_double_cmp (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y? -1: x > y;
}

static int
s_sent_cmp (const void *a, const void *b)
{
    uint64_t x = ((const s_sent_t *) a)->seq, y = ((const s_sent_t *) b)->seq;
    return x < y? -1: x > y;
}

static double
s_percentile (const double *sorted, size_t count, double p)
{
    if (count == 0)
        return NAN;
    size_t i = (size_t) (p / 100.0 * (double) (count - 1) + 0.5);
    return sorted [i < count? i: count - 1];
}

static const s_sent_t *
s_find (const s_sent_t *done, size_t count, uint64_t seq)
{
    s_sent_t key = { seq, 0, 0 };
    return (const s_sent_t *) bsearch (&key, done, count, sizeof key, s_sent_cmp);
}

//  A notification's place in the arrivals, by its seq
typedef struct {
    uint64_t seq;
    size_t index;
} s_link_t;

static int
s_link_cmp (const void *a, const void *b)
{
    uint64_t x = ((const s_link_t *) a)->seq, y = ((const s_link_t *) b)->seq;
    return x < y? -1: x > y;
}

//  The published event (or TICK) behind each notification: its cause if
//  the publisher sent it, else the cause of the notification that caused
//  it, and so on back. Returns an array parallel to the arrivals (NULL
//  where the chain leaves what was published, e.g. the reference data);
//  'chained_p' counts those reached through another notification.
static const s_sent_t **
s_roots (const s_publisher_t *pub, const s_subscriber_t *sub, size_t *chained_p)
{
    s_link_t *links = (s_link_t *) malloc ((sub->count + 1) * sizeof (s_link_t));
    const s_sent_t **root = (const s_sent_t **) calloc (sub->count + 1,
                                                         sizeof (s_sent_t *));
    assert (links && root);
    for (size_t i = 0; i < sub->count; i++)
        links [i] = (s_link_t) { sub->notes [i].seq, i };
    qsort (links, sub->count, sizeof (s_link_t), s_link_cmp);
    size_t chained = 0;
    for (size_t i = 0; i < sub->count; i++) {
        uint64_t cause = sub->notes [i].cause;
        //  Chains are short (adopted, then assigned); the bound is for a
        //  log that would name a cause after itself
        for (int depth = 0; depth < 16; depth++) {
            root [i] = s_find (pub->done, pub->done_count, cause);
            if (root [i]) {
                chained += depth > 0;
                break;
            }
            s_link_t key = { cause, 0 };
            const s_link_t *link = (const s_link_t *) bsearch (&key, links, sub->count,
                                                               sizeof key, s_link_cmp);
            if (!link || sub->notes [link->index].cause >= cause)
                break;
            cause = sub->notes [link->index].cause;
        }
    }
    free (links);
    *chained_p = chained;
    return root;
}

//  --------------------------------------------------------------------------

static char *
s_slurp (const char *path, size_t *size_p)
{
    FILE *file = fopen (path, "rb");
    if (!file)
        return NULL;
    fseek (file, 0, SEEK_END);
    long size = ftell (file);
    fseek (file, 0, SEEK_SET);
    char *data = (char *) malloc ((size_t) size + 1);
    assert (data);
    if (fread (data, 1, (size_t) size, file) != (size_t) size) {
        free (data);
        data = NULL;
    }
    fclose (file);
    *size_p = (size_t) size;
    return data;
}

int
main (int argc, char *argv [])
{
    const char *ingest = NULL, *replay = NULL, *fanout = NULL, *steps_path = NULL;
    double rate = 1000, quiet = 1.5;
    int window = 1000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (streq (argv [i], "--ingest"))  ingest = argv [i + 1];
        else
        if (streq (argv [i], "--replay"))  replay = argv [i + 1];
        else
        if (streq (argv [i], "--fanout"))  fanout = argv [i + 1];
        else
        if (streq (argv [i], "--steps"))   steps_path = argv [i + 1];
        else
        if (streq (argv [i], "--rate"))    rate = atof (argv [i + 1]);
        else
        if (streq (argv [i], "--window"))  window = atoi (argv [i + 1]);
        else
        if (streq (argv [i], "--quiet"))   quiet = atof (argv [i + 1]);
    }
    if (!ingest || !replay || !fanout || !steps_path || rate <= 0 || window < 1) {
        fprintf (stderr, "usage: pb_live_bench --ingest EP --replay EP --fanout EP "
                 "--steps FILE [--rate N] [--window N] [--quiet SECS]\n");
        return 2;
    }
    size_t steps_size = 0;
    char *steps = s_slurp (steps_path, &steps_size);
    if (!steps) {
        fprintf (stderr, "pb_live_bench: cannot read %s\n", steps_path);
        return 2;
    }
    //  Two I/O threads: the subscriber's socket does not queue behind
    //  the publisher's on one
    zsys_set_io_threads (2);
    zsys_init ();
    s_subscriber_t subscriber = { .running = 1 };
    snprintf (subscriber.fanout, sizeof subscriber.fanout, "%s", fanout);
    pthread_t thread;
    pthread_create (&thread, NULL, s_subscriber_run, &subscriber);
    while (!subscriber.ready)
        zclock_sleep (10);

    char endpoint [300];
    snprintf (endpoint, sizeof endpoint, ">%s", ingest);
    zsock_t *ingest_sock = pb_sock_new (ZMQ_DEALER, endpoint, NULL);
    snprintf (endpoint, sizeof endpoint, ">%s", replay);
    zsock_t *control_sock = pb_sock_new (ZMQ_DEALER, endpoint, NULL);
    assert (ingest_sock && control_sock);
    zsock_set_rcvtimeo (ingest_sock, 30000);
    zsock_set_rcvtimeo (control_sock, 30000);
    s_publisher_t pub = { .ingest = zsock_resolve (ingest_sock),
                          .control = zsock_resolve (control_sock), .window = window,
                          .inflight = (double *) calloc ((size_t) window, sizeof (double)) };

    msgpack_unpacked step;
    msgpack_unpacked_init (&step);
    size_t offset = 0;
    long index = 0;
    int rc = 0;
    double t0 = s_now ();
    while (rc == 0 && msgpack_unpack_next (&step, steps, steps_size, &offset)
                      == MSGPACK_UNPACK_SUCCESS) {
        msgpack_object *item = step.data.type == MSGPACK_OBJECT_ARRAY
                             ? step.data.via.array.ptr: NULL;
        if (step.data.type != MSGPACK_OBJECT_ARRAY || !item || step.data.via.array.size < 2
        ||  (item [0].via.u64 == 1 && step.data.via.array.size < 3)) {
            fprintf (stderr, "pb_live_bench: step %ld is not [kind, ...]\n", index);
            rc = 2;
            break;
        }
        //  Paced: step i leaves at t0 + i / rate; replies are taken while
        //  waiting so the window never blocks a step that is due. The wait
        //  is a poll of whole milliseconds (rounded up), never a spin: a
        //  publisher that spins between steps 100 us apart takes one of
        //  the two cores from the processes it measures. So at 10,000/s
        //  the steps leave in bursts of about ten a millisecond, as they
        //  would from many producers, each stamped when it leaves.
        double due = t0 + (double) index / rate;
        while (s_now () < due) {
            while (pub.sent > pub.answered && s_reply (&pub, false) == 0)
                ;
            double left = due - s_now ();
            if (left > 0)
                zmq_poll (&(zmq_pollitem_t) { pub.ingest, 0, ZMQ_POLLIN, 0 }, 1,
                          (long) ceil (left * 1000));
        }
        if (item [0].via.u64 == 0)
            rc = s_tick (&pub, item [1].via.i64);
        else
            rc = s_event (&pub, item [1].via.str.ptr, item [1].via.str.size,
                          item [2].via.bin.ptr, item [2].via.bin.size);
        index++;
    }
    while (rc == 0 && pub.sent > pub.answered)
        rc = s_reply (&pub, true);
    double took = s_now () - t0;
    //  Quiescent: no notification for 'quiet' seconds
    double last = s_now ();
    size_t seen = subscriber.count;
    while (s_now () - last < quiet) {
        zclock_sleep (50);
        if (subscriber.count != seen) {
            seen = subscriber.count;
            last = s_now ();
        }
    }
    subscriber.running = 0;
    pthread_join (thread, NULL);

    qsort (pub.done, pub.done_count, sizeof (s_sent_t), s_sent_cmp);
    if (getenv ("PB_LIVE_DUMP")) {
        FILE *dump = fopen (getenv ("PB_LIVE_DUMP"), "w");
        for (size_t i = 0; i < pub.done_count; i++)
            fprintf (dump, "A %lu %.6f %.6f\n", (unsigned long) pub.done [i].seq, pub.done [i].sent - t0, pub.done [i].acked - t0);
        for (size_t i = 0; i < subscriber.count; i++)
            fprintf (dump, "N %lu %.6f %d\n", (unsigned long) subscriber.notes [i].cause, subscriber.notes [i].arrived - t0, subscriber.notes [i].type);
        fclose (dump);
    }
    size_t chained = 0;
    const s_sent_t **root = s_roots (&pub, &subscriber, &chained);
    double *latency = (double *) malloc ((subscriber.count + 1) * sizeof (double));
    size_t traced = 0;
    for (size_t i = 0; i < subscriber.count; i++)
        if (root [i])
            latency [traced++] = (subscriber.notes [i].arrived - root [i]->sent) * 1000.0;
    qsort (latency, traced, sizeof (double), s_double_cmp);
    double span = (subscriber.count? subscriber.last_arrival: s_now ()) - t0;
    printf ("  offered %6.0f steps/s: %ld steps (%ld ticks) sent in %.2fs (%.0f/s achieved), "
            "%zu notifications, %ld NAKs\n", rate, index, pub.ticks, took,
            (double) index / took, subscriber.count, pub.naks);
    printf ("    publish -> notification latency (%zu notifications: %zu direct, %zu through "
            "another notification): p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms\n",
            traced, traced - chained, chained, s_percentile (latency, traced, 50),
            s_percentile (latency, traced, 99), s_percentile (latency, traced, 99.9),
            traced? latency [traced - 1]: NAN);
    printf ("    end to end: %.0f steps/s (first send .. last notification, %.2fs)\n",
            (double) index / span, span);
    //  The two legs: the published event's own commit (send .. its ACK),
    //  then the worker, the notification's commit and the fanout (ACK ..
    //  arrival; for a chained notification, every link of the chain)
    double *leg = (double *) malloc ((subscriber.count + 1) * sizeof (double));
    size_t legs = 0;
    for (size_t i = 0; i < subscriber.count; i++) {
        const s_sent_t *sent = root [i];
        if (sent) {
            latency [legs] = (sent->acked - sent->sent) * 1000.0;
            leg [legs++] = (subscriber.notes [i].arrived - sent->acked) * 1000.0;
        }
    }
    qsort (latency, legs, sizeof (double), s_double_cmp);
    qsort (leg, legs, sizeof (double), s_double_cmp);
    printf ("    legs: send .. cause ACKed p50 %.2f ms, p99 %.2f ms; cause ACKed .. "
            "notification p50 %.2f ms, p99 %.2f ms\n",
            s_percentile (latency, legs, 50), s_percentile (latency, legs, 99),
            s_percentile (leg, legs, 50), s_percentile (leg, legs, 99));
    free (leg);
    //  By type: where the tail comes from
    for (int k = 0; k < subscriber.type_count; k++) {
        size_t n = 0;
        for (size_t i = 0; i < subscriber.count; i++) {
            const s_sent_t *sent = subscriber.notes [i].type == k? root [i]: NULL;
            if (sent)
                latency [n++] = (subscriber.notes [i].arrived - sent->sent) * 1000.0;
        }
        qsort (latency, n, sizeof (double), s_double_cmp);
        printf ("      %-36s %6zu: p50 %7.2f ms, p99 %7.2f ms\n", subscriber.types [k], n,
                s_percentile (latency, n, 50), s_percentile (latency, n, 99));
    }
    msgpack_unpacked_destroy (&step);
    free (latency);
    free (root);
    free (pub.inflight);
    free (pub.done);
    free (subscriber.notes);
    free (steps);
    zsock_destroy (&ingest_sock);
    zsock_destroy (&control_sock);
    return rc == 0 && pub.naks == 0? 0: 1;
}
