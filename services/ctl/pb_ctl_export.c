/*  =========================================================================
    pb_ctl_export - pbctl export FILE / pbctl import FILE: the log to and
    from a portable file, resumable and verified

    The file (proto/README.md, "Export files") is a MessagePack stream: a
    header map {format: "partnerbus-export", version: 1}, then blocks
    {first: uint, events: [bin...], hash: bin 32}. Each event is a stored
    envelope byte for byte, seq first, first + 1, ... with no gap from 1.
    A block's hash is BLAKE2b-256 keyed with the hash before it (the
    header's: BLAKE2b-256 of the header bytes) over 'first' as 8 bytes
    big-endian and each event as a 4-byte big-endian length and its bytes:
    a block altered, dropped or moved is found, and named by its offset.

    export --resume reads what the file holds, keeps every block up to the
    first one that does not verify (an interrupted export ends in a cut
    block), truncates there and goes on from the next seq. import verifies
    the whole file before it sends anything, then resumes from the target's
    head (the target's events up to its head must equal the file's, byte
    for byte), sending IMPORT requests (proto/README.md) of at most 256
    events, and logs ops.import when done.
    =========================================================================
*/
#include "pb_ctl.h"
#include "pb_be64.h"
#include "pb_ctl_ops.h"
#include "pb_envelope.h"

#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_BLOCK_EVENTS 1000             //  events of one block, at most
#define S_BLOCK_BYTES  (1024 * 1024)    //  bytes of events of one block
#define S_READ_MAX     (4 * 1024 * 1024)    //  a block bigger is corrupt
#define S_IMPORT_EVENTS 256             //  events of one IMPORT request (--batch)
#define S_IMPORT_BYTES (4 * 1024 * 1024)
#define S_HASH_SIZE    32

static const char *s_export_help =
    "Usage: pbctl export [OPTIONS] FILE\n"
    "Write the log (seq 1 to the head, or --to) to FILE: a MessagePack stream\n"
    "of blocks of stored envelopes, each block with a BLAKE2b-256 hash chained\n"
    "to the one before (proto/README.md, \"Export files\"). FILE must not exist,\n"
    "unless --resume: then the blocks it holds are verified, a cut or bad tail\n"
    "is dropped, and the export goes on from the next seq. Progress goes to\n"
    "stderr when it is a terminal.\n"
    "Options:\n"
    "  --resume         continue an interrupted export of FILE\n"
    "  --to SEQ         the last seq (default: the head at start)\n"
    PB_CTL_JOURNAL_OPTS_HELP;

static const char *s_import_help =
    "Usage: pbctl import [OPTIONS] FILE\n"
    "Verify all of FILE (an export), then append its events to the journal\n"
    "seq for seq, with their own ts, by IMPORT requests on the replay socket.\n"
    "The journal must run with --clock manual and hold nothing or a prefix of\n"
    "the file (then the import resumes from its head, after checking that its\n"
    "events equal the file's byte for byte). Logs ops.import when done.\n"
    "A corrupt file is refused with the byte offset of the bad block, and\n"
    "nothing is imported. Progress goes to stderr when it is a terminal.\n"
    "Options:\n"
    "  --batch N        events per IMPORT request, 1..1000 (default 256; at\n"
    "                   most the journal's batch_max)\n"
    PB_CTL_JOURNAL_OPTS_HELP;

//  --------------------------------------------------------------------------
//  Blocks

//  The chained hash of a block of 'count' events of 'sizes' at 'events'
static void
s_block_hash (const uint8_t prev [S_HASH_SIZE], uint64_t first,
              const uint8_t *const *events, const size_t *sizes, size_t count,
              uint8_t out [S_HASH_SIZE])
{
    crypto_generichash_state state;
    crypto_generichash_init (&state, prev, S_HASH_SIZE, S_HASH_SIZE);
    uint8_t be [8];
    pb_be64_put (be, first);
    crypto_generichash_update (&state, be, 8);
    for (size_t i = 0; i < count; i++) {
        uint8_t len [4] = { (uint8_t) (sizes [i] >> 24), (uint8_t) (sizes [i] >> 16),
                            (uint8_t) (sizes [i] >> 8), (uint8_t) sizes [i] };
        crypto_generichash_update (&state, len, 4);
        crypto_generichash_update (&state, events [i], sizes [i]);
    }
    crypto_generichash_final (&state, out, S_HASH_SIZE);
}

static void
s_header (msgpack_sbuffer *buffer)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 2);
    msgpack_pack_str_with_body (&pk, "format", 6);
    msgpack_pack_str_with_body (&pk, "partnerbus-export", 17);
    msgpack_pack_str_with_body (&pk, "version", 7);
    msgpack_pack_uint8 (&pk, 1);
}

//  --------------------------------------------------------------------------
//  Reading a file: one block at a time, bounded

typedef struct {
    FILE *file;                         //  the export (owned)
    msgpack_unpacker unpacker;          //  bounded reading (owned)
    msgpack_unpacked value;             //  the last value read (owned)
    uint64_t offset;                    //  bytes of the file consumed by values
    uint64_t fed;                       //  bytes read into the unpacker
    uint64_t next;                      //  seq the next block must start with
    uint8_t hash [S_HASH_SIZE];         //  of the last good block (or header)
    //  The current block
    uint64_t block_offset;              //  where it starts in the file
    size_t count;                       //  its events
    const uint8_t *events [S_BLOCK_EVENTS]; //  into 'value' (borrowed)
    size_t sizes [S_BLOCK_EVENTS];      //  their sizes
    char error [300];                   //  why reading stopped
} s_reader_t;

//  The next MessagePack value of the file. Returns 1 (got one), 0 (a clean
//  end of file), -1 (cut or unreadable: error set).
static int
s_next_value (s_reader_t *self)
{
    while (true) {
        msgpack_unpack_return ret = msgpack_unpacker_next (&self->unpacker, &self->value);
        if (ret == MSGPACK_UNPACK_SUCCESS) {
            //  What was read, less what waits unparsed in the buffer
            self->offset = self->fed - (self->unpacker.used - self->unpacker.off);
            return 1;
        }
        if (ret != MSGPACK_UNPACK_CONTINUE) {
            snprintf (self->error, sizeof self->error, "not MessagePack");
            return -1;
        }
        uint64_t pending = self->fed - self->offset;
        if (pending > S_READ_MAX) {
            snprintf (self->error, sizeof self->error, "a block over %d bytes", S_READ_MAX);
            return -1;
        }
        if (!msgpack_unpacker_reserve_buffer (&self->unpacker, 65536)) {
            snprintf (self->error, sizeof self->error, "out of memory");
            return -1;
        }
        size_t got = fread (msgpack_unpacker_buffer (&self->unpacker), 1,
                            msgpack_unpacker_buffer_capacity (&self->unpacker), self->file);
        if (got == 0) {
            if (pending == 0)
                return 0;
            snprintf (self->error, sizeof self->error, "cut short (%" PRIu64 " bytes of a "
                      "block at the end)", pending);
            return -1;
        }
        msgpack_unpacker_buffer_consumed (&self->unpacker, got);
        self->fed += got;
    }
}

static const msgpack_object *
s_get (const msgpack_object *map, const char *key)
{
    return pb_msgpack_get (map, key);
}

//  Open 'path' and check its header. Returns 0, or -1 with error set.
static int
s_reader_open (s_reader_t *self, const char *path)
{
    memset (self, 0, sizeof *self);
    self->next = 1;
    msgpack_unpacker_init (&self->unpacker, 65536);
    msgpack_unpacked_init (&self->value);
    self->file = fopen (path, "rb");
    if (!self->file) {
        snprintf (self->error, sizeof self->error, "cannot open: %s", strerror (errno));
        return -1;
    }
    int got = s_next_value (self);
    msgpack_sbuffer header;
    msgpack_sbuffer_init (&header);
    s_header (&header);
    const msgpack_object *format = got == 1? s_get (&self->value.data, "format"): NULL;
    const msgpack_object *version = got == 1? s_get (&self->value.data, "version"): NULL;
    int rc = 0;
    if (got != 1 || !pb_msgpack_str_eq (format, "partnerbus-export")) {
        snprintf (self->error, sizeof self->error, "not a partnerbus export");
        rc = -1;
    }
    else
    if (!version || version->type != MSGPACK_OBJECT_POSITIVE_INTEGER || version->via.u64 != 1) {
        snprintf (self->error, sizeof self->error, "export version is not 1");
        rc = -1;
    }
    crypto_generichash (self->hash, S_HASH_SIZE, (const uint8_t *) header.data,
                        header.size, NULL, 0);
    msgpack_sbuffer_destroy (&header);
    return rc;
}

static void
s_reader_close (s_reader_t *self)
{
    if (self->file)
        fclose (self->file);
    self->file = NULL;
    msgpack_unpacked_destroy (&self->value);
    msgpack_unpacker_destroy (&self->unpacker);
}

//  The next block, verified. Returns 1, 0 at a clean end, -1 when the
//  block at self->block_offset is bad (error set).
static int
s_reader_block (s_reader_t *self)
{
    self->block_offset = self->offset;
    self->count = 0;
    int got = s_next_value (self);
    if (got <= 0)
        return got;
    const msgpack_object *root = &self->value.data;
    const msgpack_object *first = s_get (root, "first");
    const msgpack_object *events = s_get (root, "events");
    const msgpack_object *hash = s_get (root, "hash");
    if (root->type != MSGPACK_OBJECT_MAP || root->via.map.size != 3
    ||  !first || first->type != MSGPACK_OBJECT_POSITIVE_INTEGER
    ||  !events || events->type != MSGPACK_OBJECT_ARRAY
    ||  events->via.array.size == 0 || events->via.array.size > S_BLOCK_EVENTS
    ||  !hash || hash->type != MSGPACK_OBJECT_BIN || hash->via.bin.size != S_HASH_SIZE) {
        snprintf (self->error, sizeof self->error, "not a block {first, events, hash}");
        return -1;
    }
    for (uint32_t i = 0; i < events->via.array.size; i++) {
        const msgpack_object *event = &events->via.array.ptr [i];
        if (event->type != MSGPACK_OBJECT_BIN) {
            snprintf (self->error, sizeof self->error, "events[%u] is not a bin", i);
            return -1;
        }
        self->events [i] = (const uint8_t *) event->via.bin.ptr;
        self->sizes [i] = event->via.bin.size;
    }
    self->count = events->via.array.size;
    uint8_t want [S_HASH_SIZE];
    s_block_hash (self->hash, first->via.u64, self->events, self->sizes, self->count, want);
    if (sodium_memcmp (want, hash->via.bin.ptr, S_HASH_SIZE) != 0) {
        snprintf (self->error, sizeof self->error, "block hash does not match "
                  "(altered, or blocks out of order)");
        return -1;
    }
    if (first->via.u64 != self->next) {
        snprintf (self->error, sizeof self->error, "block starts at seq %" PRIu64
                  ", want %" PRIu64, first->via.u64, self->next);
        return -1;
    }
    //  Every event a stored envelope with its seq
    pb_limits_t limits = PB_LIMITS_DEFAULTS;
    for (size_t i = 0; i < self->count; i++) {
        pb_envelope_t *env = NULL;
        char error [256];
        if (pb_envelope_decode (NULL, 0, self->events [i], self->sizes [i],
                                PB_ENVELOPE_STORED, &limits, &env, error,
                                sizeof error) != PB_NAK_NONE) {
            snprintf (self->error, sizeof self->error, "seq %" PRIu64 ": %s",
                      self->next + i, error);
            return -1;
        }
        bool in_place = env->seq == self->next + i;
        pb_envelope_destroy (&env);
        if (!in_place) {
            snprintf (self->error, sizeof self->error, "events[%zu] is not seq %" PRIu64,
                      i, self->next + i);
            return -1;
        }
    }
    memcpy (self->hash, hash->via.bin.ptr, S_HASH_SIZE);
    self->next += self->count;
    return 1;
}

//  --------------------------------------------------------------------------
//  Export

typedef struct {
    FILE *file;                         //  the export (borrowed)
    uint8_t hash [S_HASH_SIZE];         //  of the last block written
    uint64_t first;                     //  seq of the block in hand
    uint8_t *events [S_BLOCK_EVENTS];   //  its events (owned)
    size_t sizes [S_BLOCK_EVENTS];      //  their sizes
    size_t count;                       //  events in hand
    size_t bytes;                       //  their bytes
    uint64_t written;                   //  events written
    uint64_t target;                    //  last seq
    bool progress;                      //  stderr is a terminal
    int64_t shown;                      //  when progress was last shown
    bool failed;                        //  a write failed
} s_export_t;

static int
s_flush_block (s_export_t *self)
{
    if (self->count == 0)
        return 0;
    uint8_t hash [S_HASH_SIZE];
    s_block_hash (self->hash, self->first, (const uint8_t *const *) self->events,
                  self->sizes, self->count, hash);
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 3);
    msgpack_pack_str_with_body (&pk, "first", 5);
    msgpack_pack_uint64 (&pk, self->first);
    msgpack_pack_str_with_body (&pk, "events", 6);
    msgpack_pack_array (&pk, self->count);
    for (size_t i = 0; i < self->count; i++) {
        msgpack_pack_bin_with_body (&pk, self->events [i], self->sizes [i]);
        free (self->events [i]);
    }
    msgpack_pack_str_with_body (&pk, "hash", 4);
    msgpack_pack_bin_with_body (&pk, hash, S_HASH_SIZE);
    //  One write per block, so that a kill leaves whole blocks and at most
    //  one cut one at the end
    if (fwrite (buffer.data, 1, buffer.size, self->file) != buffer.size
    ||  fflush (self->file))
        self->failed = true;
    msgpack_sbuffer_destroy (&buffer);
    memcpy (self->hash, hash, S_HASH_SIZE);
    self->written += self->count;
    self->first += self->count;
    self->count = 0;
    self->bytes = 0;
    if (self->progress && zclock_mono () - self->shown > 200) {
        self->shown = zclock_mono ();
        fprintf (stderr, "\rexport: seq %" PRIu64 " of %" PRIu64, self->first - 1,
                 self->target);
    }
    return self->failed? -1: 0;
}

static int
s_on_export (const void *bytes, size_t size, void *arg)
{
    s_export_t *self = (s_export_t *) arg;
    if (self->count == S_BLOCK_EVENTS || (self->count && self->bytes + size > S_BLOCK_BYTES))
        if (s_flush_block (self))
            return -1;
    self->events [self->count] = (uint8_t *) malloc (size);
    assert (self->events [self->count]);
    memcpy (self->events [self->count], bytes, size);
    self->sizes [self->count++] = size;
    self->bytes += size;
    return 0;
}

//  Parse FILE and the options common to export and import
static int
s_args (int argc, char *argv [], pb_ctl_journal_opts_t *opts, const char *name,
        const char **file_p, bool *resume_p, uint64_t *to_p, uint64_t *batch_p)
{
    int i = 1;
    while (i < argc) {
        int rc = pb_ctl_journal_opts_parse (opts, argc, argv, &i);
        if (rc == PB_CTL_EXIT_USAGE)
            return rc;
        if (rc == 1)
            continue;
        const char *arg = argv [i];
        if (resume_p && streq (arg, "--resume"))
            *resume_p = true;
        else
        if (to_p && streq (arg, "--to") && i + 1 < argc
        &&  pb_ctl_journal_parse_u64 (argv [i + 1], to_p) && *to_p >= 1)
            i++;
        else
        if (batch_p && streq (arg, "--batch") && i + 1 < argc
        &&  pb_ctl_journal_parse_u64 (argv [i + 1], batch_p) && *batch_p >= 1
        &&  *batch_p <= PB_WIRE_IMPORT_MAX)
            i++;
        else
        if (arg [0] != '-' && !*file_p)
            *file_p = arg;
        else {
            fprintf (stderr, "pbctl %s: bad or unexpected '%s' (see --help)\n", name, arg);
            return PB_CTL_EXIT_USAGE;
        }
        i++;
    }
    if (!opts->help && !*file_p) {
        fprintf (stderr, "pbctl %s: FILE is missing (see --help)\n", name);
        return PB_CTL_EXIT_USAGE;
    }
    return 0;
}

int
pb_ctl_export (int argc, char *argv [])
{
    pb_ctl_journal_opts_t opts;
    pb_ctl_journal_opts_init (&opts);
    const char *path = NULL;
    bool resume = false;
    uint64_t to = 0;
    int rc = s_args (argc, argv, &opts, "export", &path, &resume, &to, NULL);
    if (rc)
        return rc;
    if (opts.help) {
        fputs (s_export_help, stdout);
        return PB_CTL_EXIT_OK;
    }
    if (sodium_init () < 0)
        return PB_CTL_EXIT_REFUSED;
    s_export_t self = { .first = 1, .progress = isatty (2) };
    bool exists = access (path, F_OK) == 0;
    struct stat info;
    if (exists && resume && stat (path, &info) == 0 && info.st_size == 0) {
        //  Killed before the header was written: start it again
        if (unlink (path) == 0)
            exists = false;
    }
    if (exists && !resume) {
        fprintf (stderr, "pbctl export: %s exists (--resume continues it)\n", path);
        return PB_CTL_EXIT_USAGE;
    }
    uint64_t keep = 0;                  //  bytes of the file kept
    if (exists) {
        s_reader_t reader;
        int got = s_reader_open (&reader, path);
        if (got) {
            fprintf (stderr, "pbctl export: cannot resume %s: %s\n", path, reader.error);
            s_reader_close (&reader);
            return PB_CTL_EXIT_REFUSED;
        }
        keep = reader.offset;
        while ((got = s_reader_block (&reader)) == 1)
            keep = reader.offset;
        if (got < 0)
            fprintf (stderr, "pbctl export: %s: dropping from byte %" PRIu64 " (%s)\n",
                     path, reader.block_offset, reader.error);
        self.first = reader.next;
        memcpy (self.hash, reader.hash, S_HASH_SIZE);
        s_reader_close (&reader);
        if (truncate (path, (off_t) keep)) {
            fprintf (stderr, "pbctl export: cannot truncate %s: %s\n", path, strerror (errno));
            return PB_CTL_EXIT_REFUSED;
        }
    }
    zsock_t *replay = pb_ctl_journal_connect (&opts, ZMQ_DEALER, opts.replay);
    if (!replay)
        return PB_CTL_EXIT_USAGE;
    pb_wire_status_t status;
    char error [300] = "";
    rc = pb_ctl_journal_status (replay, opts.timeout_ms, &status, error, sizeof error);
    if (rc) {
        fprintf (stderr, "pbctl export: %s\n", error);
        zsock_destroy (&replay);
        return rc;
    }
    self.target = to? to: status.head;
    if (self.target > status.head) {
        fprintf (stderr, "pbctl export: --to %" PRIu64 " is beyond the head %" PRIu64 "\n",
                 to, status.head);
        zsock_destroy (&replay);
        return PB_CTL_EXIT_USAGE;
    }
    uint64_t start = self.first;
    self.file = fopen (path, exists? "ab": "wbx");
    if (!self.file) {
        fprintf (stderr, "pbctl export: cannot write %s: %s\n", path, strerror (errno));
        zsock_destroy (&replay);
        return PB_CTL_EXIT_REFUSED;
    }
    if (!exists) {
        msgpack_sbuffer header;
        msgpack_sbuffer_init (&header);
        s_header (&header);
        if (fwrite (header.data, 1, header.size, self.file) != header.size)
            self.failed = true;
        crypto_generichash (self.hash, S_HASH_SIZE, (const uint8_t *) header.data,
                            header.size, NULL, 0);
        msgpack_sbuffer_destroy (&header);
    }
    pb_wire_end_t end = { 0 };
    if (self.first <= self.target && !self.failed)
        rc = pb_ctl_journal_replay (replay, self.first, self.target, NULL, 0,
                                    opts.timeout_ms, s_on_export, &self, &end, error,
                                    sizeof error);
    if (rc == 0 && s_flush_block (&self))
        rc = PB_CTL_EXIT_REFUSED;
    for (size_t i = 0; i < self.count; i++)
        free (self.events [i]);
    if (fflush (self.file) || fsync (fileno (self.file)))
        self.failed = true;
    fclose (self.file);
    zsock_destroy (&replay);
    if (self.progress)
        fprintf (stderr, "\rexport: seq %" PRIu64 " of %" PRIu64 "\n", self.first - 1,
                 self.target);
    if (self.failed) {
        fprintf (stderr, "pbctl export: cannot write %s\n", path);
        return PB_CTL_EXIT_REFUSED;
    }
    if (rc) {
        fprintf (stderr, "pbctl export: %s (export --resume continues)\n", error);
        return rc;
    }
    if (opts.json) {
        json_t *out = json_pack ("{s:s, s:I, s:I, s:I}", "file", path,
                                 "from", (json_int_t) start,
                                 "through", (json_int_t) (self.first - 1),
                                 "events", (json_int_t) self.written);
        pb_ctl_json_print (stdout, out);
        json_decref (out);
    }
    else
        printf ("exported seq %" PRIu64 "..%" PRIu64 " (%" PRIu64 " events) to %s\n",
                start, self.first - 1, self.written, path);
    return PB_CTL_EXIT_OK;
}

//  --------------------------------------------------------------------------
//  Import

//  Compare the target's events 1..head with the file's
typedef struct {
    s_reader_t *reader;                 //  (borrowed)
    size_t index;                       //  next event of the reader's block
    uint64_t seq;                       //  of the next event compared
    uint64_t differs;                   //  first seq that differs, or 0
} s_compare_t;

static int
s_on_compare (const void *bytes, size_t size, void *arg)
{
    s_compare_t *self = (s_compare_t *) arg;
    if (self->index == self->reader->count) {
        if (s_reader_block (self->reader) != 1) {
            self->differs = self->seq;
            return -1;
        }
        self->index = 0;
    }
    size_t i = self->index++;
    if (self->reader->sizes [i] != size || memcmp (self->reader->events [i], bytes, size)) {
        self->differs = self->seq;
        return -1;
    }
    self->seq++;
    return 0;
}

//  Send one IMPORT of the events [from, from + count) in the reader's block
//  at index 'at'. Returns 0 and sets *head_p, or an exit code.
static int
s_send_import (zsock_t *replay, const pb_ctl_journal_opts_t *opts, uint64_t after,
               const uint8_t *const *events, const size_t *sizes, size_t count,
               uint64_t *head_p, char *error, size_t error_size)
{
    uint8_t map [PB_WIRE_REPLY_MAX];
    size_t size = 0;
    int rc = pb_wire_import_encode (after, map, sizeof map, &size);
    assert (rc == 0);
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "IMPORT");
    zmsg_addmem (msg, map, size);
    for (size_t i = 0; i < count; i++)
        zmsg_addmem (msg, events [i], sizes [i]);
    if (zmsg_send (&msg, replay)) {
        zmsg_destroy (&msg);
        snprintf (error, error_size, "cannot send IMPORT");
        return PB_CTL_EXIT_UNREACHABLE;
    }
    zmsg_t *reply = pb_ctl_journal_recv (replay, opts->timeout_ms);
    if (!reply) {
        snprintf (error, error_size, "no answer to IMPORT in %d ms", opts->timeout_ms);
        return PB_CTL_EXIT_UNREACHABLE;
    }
    zframe_t *command = zmsg_first (reply);
    zframe_t *body = zmsg_next (reply);
    pb_wire_error_t refusal;
    rc = PB_CTL_EXIT_REFUSED;
    if (body && zframe_streq (command, "IMPORTED")
    &&  pb_wire_imported_decode (zframe_data (body), zframe_size (body), head_p,
                                 error, error_size) == 0)
        rc = 0;
    else
    if (body && zframe_streq (command, "ERROR")
    &&  pb_wire_error_decode (zframe_data (body), zframe_size (body), &refusal,
                              NULL, 0) == 0)
        snprintf (error, error_size, "%s: %s", pb_wire_refusal_code (refusal.code),
                  refusal.error);
    else
        snprintf (error, error_size, "unreadable answer to IMPORT");
    zmsg_destroy (&reply);
    return rc;
}

int
pb_ctl_import (int argc, char *argv [])
{
    pb_ctl_journal_opts_t opts;
    pb_ctl_journal_opts_init (&opts);
    const char *path = NULL;
    uint64_t batch = S_IMPORT_EVENTS;
    int rc = s_args (argc, argv, &opts, "import", &path, NULL, NULL, &batch);
    if (rc)
        return rc;
    if (opts.help) {
        fputs (s_import_help, stdout);
        return PB_CTL_EXIT_OK;
    }
    if (sodium_init () < 0)
        return PB_CTL_EXIT_REFUSED;
    bool progress = isatty (2);
    //  1. The whole file, verified, before anything is sent
    s_reader_t reader;
    int got = s_reader_open (&reader, path);
    while (got == 0 && (got = s_reader_block (&reader)) == 1)
        got = 0;
    uint64_t last = reader.next - 1;
    if (got < 0) {
        fprintf (stderr, "pbctl import: %s: corrupt at byte %" PRIu64 ": %s; nothing "
                 "imported\n", path, reader.block_offset, reader.error);
        s_reader_close (&reader);
        return PB_CTL_EXIT_REFUSED;
    }
    s_reader_close (&reader);
    //  2. The target: manual clock, and a prefix of the file
    zsock_t *replay = pb_ctl_journal_connect (&opts, ZMQ_DEALER, opts.replay);
    if (!replay)
        return PB_CTL_EXIT_USAGE;
    pb_wire_status_t status;
    char error [400] = "";
    rc = pb_ctl_journal_status (replay, opts.timeout_ms, &status, error, sizeof error);
    if (rc == 0 && !status.manual) {
        snprintf (error, sizeof error, "the journal's clock is automatic: its own ticks "
                  "would come between the imported events (start it with --clock manual)");
        rc = PB_CTL_EXIT_REFUSED;
    }
    if (rc == 0 && status.head > last) {
        snprintf (error, sizeof error, "the journal holds %" PRIu64 " events, the file %"
                  PRIu64 ": not a prefix", status.head, last);
        rc = PB_CTL_EXIT_REFUSED;
    }
    s_reader_open (&reader, path);
    if (rc == 0 && status.head > 0) {
        s_compare_t compare = { &reader, 0, 1, 0 };
        pb_wire_end_t end;
        int crc = pb_ctl_journal_replay (replay, 1, status.head, NULL, 0, opts.timeout_ms,
                                         s_on_compare, &compare, &end, error, sizeof error);
        if (compare.differs) {
            snprintf (error, sizeof error, "the journal's seq %" PRIu64 " differs from the "
                      "file's: it is not a prefix of this export", compare.differs);
            rc = PB_CTL_EXIT_REFUSED;
        }
        else
            rc = crc;
        //  Skip what the journal holds in the reader's current block
        reader.count -= compare.index;
        memmove (reader.events, reader.events + compare.index,
                 reader.count * sizeof reader.events [0]);
        memmove (reader.sizes, reader.sizes + compare.index,
                 reader.count * sizeof reader.sizes [0]);
    }
    //  3. IMPORT requests, in order, each acknowledged before the next
    uint64_t head = status.head;
    uint64_t from = head + 1;
    int64_t shown = 0;
    while (rc == 0 && head < last) {
        if (reader.count == 0 && s_reader_block (&reader) != 1) {
            snprintf (error, sizeof error, "%s changed while importing: %s", path,
                      reader.error);
            rc = PB_CTL_EXIT_REFUSED;
            break;
        }
        size_t n = 0, bytes = 0;
        while (n < reader.count && n < batch
           &&  (n == 0 || bytes + reader.sizes [n] <= S_IMPORT_BYTES))
            bytes += reader.sizes [n++];
        uint64_t new_head = 0;
        rc = s_send_import (replay, &opts, head, reader.events, reader.sizes, n,
                            &new_head, error, sizeof error);
        if (rc == 0 && new_head != head + n) {
            snprintf (error, sizeof error, "IMPORTED head %" PRIu64 ", want %" PRIu64,
                      new_head, head + n);
            rc = PB_CTL_EXIT_REFUSED;
        }
        if (rc)
            break;
        head = new_head;
        reader.count -= n;
        memmove (reader.events, reader.events + n, reader.count * sizeof reader.events [0]);
        memmove (reader.sizes, reader.sizes + n, reader.count * sizeof reader.sizes [0]);
        if (progress && zclock_mono () - shown > 200) {
            shown = zclock_mono ();
            fprintf (stderr, "\rimport: seq %" PRIu64 " of %" PRIu64, head, last);
        }
    }
    s_reader_close (&reader);
    if (progress)
        fprintf (stderr, "\rimport: seq %" PRIu64 " of %" PRIu64 "\n", head, last);
    zsock_destroy (&replay);
    if (rc) {
        fprintf (stderr, "pbctl import: %s\n", error);
        if (head >= from)
            fprintf (stderr, "pbctl import: seq %" PRIu64 "..%" PRIu64 " were imported; "
                     "import again to resume\n", from, head);
        return rc;
    }
    //  4. Logged once the events are in
    uint64_t logged = 0;
    if (from <= last) {
        json_t *data = json_pack ("{s:s, s:I, s:I}", "file", path, "from", (json_int_t) from,
                                  "through", (json_int_t) last);
        rc = pb_ctl_ops_log (&opts, "ops.import", data, &logged, error, sizeof error);
        json_decref (data);
        if (rc)
            fprintf (stderr, "pbctl import: imported, not logged: %s\n", error);
    }
    if (opts.json) {
        json_t *out = json_pack ("{s:s, s:I, s:I, s:I}", "file", path,
                                 "from", (json_int_t) from, "through", (json_int_t) last,
                                 "logged", (json_int_t) logged);
        pb_ctl_json_print (stdout, out);
        json_decref (out);
    }
    else
    if (from > last)
        printf ("nothing to import: the journal already holds seq 1..%" PRIu64 " of %s\n",
                last, path);
    else
        printf ("imported seq %" PRIu64 "..%" PRIu64 " from %s; ops.import at seq %"
                PRIu64 "\n", from, last, path, logged);
    return rc;
}
