/*  =========================================================================
    pb_fuzz_ingest - the whole ingest loop of a real journal, in process

    The fixture starts the journal actor (pb_journal_actor, as pb-journal
    runs it) on inproc:// endpoints, manual clock, with its LMDB log in a
    temporary directory (PB_FUZZ_TMP, default /tmp: /dev/shm makes a sync
    cheap). Each input is one multipart message, its frames separated by
    0xC1 0xC1 (pb_fuzz.h), sent on ingest by a fuzzing producer. Checked
    after every input: exactly one reply comes back, of two frames, an ACK
    or a NAK whose map decodes (pb_wire); then a well-behaved producer
    publishes a fresh valid event and must get its ACK, with a seq above
    its previous one. A journal that crashes, hangs, stops ACKing or
    answers garbage fails the run.
    =========================================================================
*/
#include "pb_fuzz.h"

#include <assert.h>
#include <czmq.h>
#include <pthread.h>
#include <signal.h>
#include <msgpack.h>
#include <string.h>
#include <unistd.h>

#include "pb_journal.h"
#include "pb_sock.h"
#include "pb_wire.h"

#define S_FRAMES_MAX 16
#define S_REPLY_TIMEOUT 30000           //  ms: a hang is a failure

typedef struct {
    pb_journal_cfg_t cfg;               //  the journal's configuration
    zactor_t *journal;                  //  the actor (owned)
    zsock_t *fuzzer;                    //  DEALER that sends the inputs (owned)
    zsock_t *good;                      //  DEALER of the good producer (owned)
    char src [32];                      //  the good producer's src
    uint64_t good_count;                //  good events ACKed
    uint64_t good_seq;                  //  seq of the last one
} s_fixture_t;

//  libFuzzer's API leaves no other place for a fixture than a static
static s_fixture_t *s_fixture;

static void
s_fixture_destroy (void)
{
    if (!s_fixture)
        return;
    zsock_destroy (&s_fixture->fuzzer);
    zsock_destroy (&s_fixture->good);
    zactor_destroy (&s_fixture->journal);
    char path [PB_CONFIG_STR_MAX + 16];
    snprintf (path, sizeof path, "%s/data.mdb", s_fixture->cfg.data_dir);
    unlink (path);
    snprintf (path, sizeof path, "%s/lock.mdb", s_fixture->cfg.data_dir);
    unlink (path);
    rmdir (s_fixture->cfg.data_dir);
    free (s_fixture);
    s_fixture = NULL;
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    //  libFuzzer's SIGALRM (its -timeout watchdog, every timeout/2 + 1 s)
    //  must never reach the journal's threads: a signal with a handler
    //  interrupts the actor's zmq_poll, and zloop ends on EINTR as on $TERM
    //  (without czmq's handler nothing says it was not one). That was the
    //  "journal stall": the actor had stopped. So every thread created from
    //  here (ZeroMQ's, the actor, its committer) starts with the fuzzer's
    //  signals blocked, and only this thread takes them.
    sigset_t fuzzer_signals, previous;
    sigemptyset (&fuzzer_signals);
    sigaddset (&fuzzer_signals, SIGALRM);
    sigaddset (&fuzzer_signals, SIGUSR1);
    sigaddset (&fuzzer_signals, SIGUSR2);
    pthread_sigmask (SIG_BLOCK, &fuzzer_signals, &previous);
    zsys_init ();
    //  The journal's log only when asked (PB_FUZZ_LOG=1): a fuzzer that
    //  finds a hang needs it
    zsys_set_logstream (getenv ("PB_FUZZ_LOG")? stderr: NULL);
    zsys_set_logsystem (false);
    zsys_handler_set (NULL);
    //  After zsys_init: at exit this runs before czmq's own shutdown
    atexit (s_fixture_destroy);
    s_fixture = (s_fixture_t *) zmalloc (sizeof *s_fixture);
    char *args [] = { "pb_fuzz_ingest", "--clock", "manual",
                      "--ingest", "inproc://pb_fuzz_ingest",
                      "--fanout", "inproc://pb_fuzz_fanout",
                      "--replay", "inproc://pb_fuzz_replay",
                      "--map-size", "1M", "--map-max", "1G", NULL };
    int rc = pb_journal_cfg_load (&s_fixture->cfg, 13, args);
    assert (rc == 0);
    const char *base = getenv ("PB_FUZZ_TMP");
    snprintf (s_fixture->cfg.data_dir, sizeof s_fixture->cfg.data_dir,
              "%s/pb-fuzz-ingest.XXXXXX", base? base: "/tmp");
    assert (mkdtemp (s_fixture->cfg.data_dir));
    s_fixture->journal = zactor_new (pb_journal_actor, &s_fixture->cfg);
    assert (s_fixture->journal);
    pthread_sigmask (SIG_SETMASK, &previous, NULL);
    rc = -1;
    zsock_recv (s_fixture->journal, "i", &rc);
    assert (rc == 0);
    s_fixture->fuzzer = pb_sock_new (ZMQ_DEALER, ">inproc://pb_fuzz_ingest", NULL);
    s_fixture->good = pb_sock_new (ZMQ_DEALER, ">inproc://pb_fuzz_ingest", NULL);
    assert (s_fixture->fuzzer && s_fixture->good);
    const char *timeout = getenv ("PB_FUZZ_REPLY_TIMEOUT");     //  ms
    int ms = timeout? atoi (timeout): S_REPLY_TIMEOUT;
    zsock_set_rcvtimeo (s_fixture->fuzzer, ms);
    zsock_set_rcvtimeo (s_fixture->good, ms);
    snprintf (s_fixture->src, sizeof s_fixture->src, "good-%08x", (unsigned) getpid ());
    return 0;
}

//  Receive one reply: two frames, ACK or NAK, a map that decodes. Returns
//  the seq of an ACK, 0 for a NAK.
static uint64_t
s_reply (zsock_t *socket)
{
    //  The watchdog's SIGALRM lands on this thread: a wait it interrupts
    //  goes on
    zmsg_t *reply = zmsg_recv (socket);
    while (!reply && zmq_errno () == EINTR)
        reply = zmsg_recv (socket);
    assert (reply);                     //  A hang or a lost reply
    assert (zmsg_size (reply) == 2);
    zframe_t *kind = zmsg_first (reply);
    zframe_t *body = zmsg_next (reply);
    pb_wire_cmd_t cmd = pb_wire_command (zframe_data (kind), zframe_size (kind));
    char error [PB_WIRE_TEXT_MAX + 1];
    uint64_t seq = 0;
    if (cmd == PB_WIRE_ACK) {
        pb_wire_ack_t ack;
        int rc = pb_wire_ack_decode (zframe_data (body), zframe_size (body), &ack,
                                     error, sizeof error);
        assert (rc == 0 && ack.seq >= 1);
        seq = ack.seq;
    }
    else {
        assert (cmd == PB_WIRE_NAK);
        pb_wire_nak_t nak;
        int rc = pb_wire_nak_decode (zframe_data (body), zframe_size (body), &nak,
                                     error, sizeof error);
        assert (rc == 0 && nak.code != PB_NAK_NONE && strlen (nak.error) > 0);
    }
    zmsg_destroy (&reply);
    return seq;
}

//  A valid nac.position from the good producer, with a fresh id
static zmsg_t *
s_good_event (s_fixture_t *self)
{
    char id [32];
    snprintf (id, sizeof id, "g-%" PRIu64, self->good_count);
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 4);
    msgpack_pack_str_with_body (&pk, "id", 2);
    msgpack_pack_str_with_body (&pk, id, strlen (id));
    msgpack_pack_str_with_body (&pk, "src", 3);
    msgpack_pack_str_with_body (&pk, self->src, strlen (self->src));
    msgpack_pack_str_with_body (&pk, "type", 4);
    msgpack_pack_str_with_body (&pk, "nac.position", 12);
    msgpack_pack_str_with_body (&pk, "data", 4);
    msgpack_pack_map (&pk, 3);
    msgpack_pack_str_with_body (&pk, "proposal", 8);
    msgpack_pack_str_with_body (&pk, "P-1", 3);
    msgpack_pack_str_with_body (&pk, "ally", 4);
    msgpack_pack_str_with_body (&pk, "FRA", 3);
    msgpack_pack_str_with_body (&pk, "position", 8);
    msgpack_pack_str_with_body (&pk, "concur", 6);
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "nac.position");
    zmsg_addmem (msg, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    return msg;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    s_fixture_t *self = s_fixture;
    assert (self);
    zmsg_t *msg = zmsg_new ();
    const uint8_t *at = data, *end = data + size;
    while (zmsg_size (msg) < S_FRAMES_MAX) {
        const uint8_t *sep = (const uint8_t *) memmem (at, (size_t) (end - at),
            PB_FUZZ_SEPARATOR, PB_FUZZ_SEPARATOR_SIZE);
        if (!sep || zmsg_size (msg) == S_FRAMES_MAX - 1) {
            zmsg_addmem (msg, at, (size_t) (end - at));
            break;
        }
        zmsg_addmem (msg, at, (size_t) (sep - at));
        at = sep + PB_FUZZ_SEPARATOR_SIZE;
    }
    int rc = zmsg_send (&msg, self->fuzzer);
    assert (rc == 0);
    s_reply (self->fuzzer);

    //  The good producer is still served
    msg = s_good_event (self);
    rc = zmsg_send (&msg, self->good);
    assert (rc == 0);
    uint64_t seq = s_reply (self->good);
    assert (seq > self->good_seq);
    self->good_seq = seq;
    self->good_count++;
    return 0;
}
