/*  =========================================================================
    pb_ctl_ops - operators' actions logged as ops.* events
    =========================================================================
*/
#include "pb_ctl_ops.h"
#include "pb_ctl_json.h"

#include <pwd.h>
#include <unistd.h>

const char *
pb_ctl_ops_user (char *buf, size_t size)
{
    assert (buf && size > 0);
    const char *name = getenv ("USER");
    if (!name || !*name)
        name = getenv ("LOGNAME");
    struct passwd *pw = NULL;
    if ((!name || !*name) && (pw = getpwuid (getuid ())))
        name = pw->pw_name;
    if (name && *name)
        snprintf (buf, size < 65? size: 65, "%s", name);
    else
        snprintf (buf, size, "uid%u", (unsigned) getuid ());
    return buf;
}

bool
pb_ctl_ops_is_worker (const char *name)
{
    return name && (streq (name, "nac") || streq (name, "cpe") || streq (name, "activity"));
}

int
pb_ctl_ops_log (const pb_ctl_journal_opts_t *opts, const char *type,
                json_t *data, uint64_t *seq_p, char *error, size_t error_size)
{
    char by [65], id [160];
    pb_ctl_ops_user (by, sizeof by);
    snprintf (id, sizeof id, "%s/%s/%" PRId64 "-%d", type, by, zclock_time (),
              (int) getpid ());
    json_object_set_new (data, "by", json_string (by));
    json_t *env = json_pack ("{s:s, s:s, s:s, s:I, s:O}", "id", id, "src", "ops",
                             "type", type, "time", (json_int_t) zclock_time (),
                             "data", data);
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buffer, msgpack_sbuffer_write);
    pb_ctl_json_pack (env, &pk);
    json_decref (env);
    int rc = PB_CTL_EXIT_UNREACHABLE;
    zsock_t *ingest = pb_ctl_journal_connect (opts, ZMQ_DEALER, opts->ingest);
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, type);
    zmsg_addmem (msg, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    if (ingest && zmsg_send (&msg, ingest) == 0) {
        zmsg_t *reply = pb_ctl_journal_recv (ingest, opts->timeout_ms);
        zframe_t *command = reply? zmsg_first (reply): NULL;
        zframe_t *body = reply? zmsg_next (reply): NULL;
        pb_wire_ack_t ack;
        pb_wire_nak_t nak;
        snprintf (error, error_size, "no answer from ingest %s", opts->ingest);
        if (command && body && zframe_streq (command, "ACK")
        &&  pb_wire_ack_decode (zframe_data (body), zframe_size (body), &ack, NULL, 0) == 0) {
            *seq_p = ack.seq;
            rc = 0;
        }
        else
        if (command && body && zframe_streq (command, "NAK")
        &&  pb_wire_nak_decode (zframe_data (body), zframe_size (body), &nak, NULL, 0) == 0) {
            snprintf (error, error_size, "%s refused: %s: %s", type,
                      pb_nak_code (nak.code), nak.error);
            rc = PB_CTL_EXIT_REFUSED;
        }
        zmsg_destroy (&reply);
    }
    zmsg_destroy (&msg);
    zsock_destroy (&ingest);
    return rc;
}

static bool
s_try (char *buf, size_t size, const char *dir, const char *tail)
{
    int n = snprintf (buf, size, "%s/%s", dir, tail);
    return n > 0 && (size_t) n < size && access (buf, X_OK) == 0;
}

bool
pb_ctl_ops_worker_bin (const char *name, const char *given, char *buf, size_t size)
{
    assert (name && buf);
    if (given) {
        snprintf (buf, size, "%s", given);
        return access (buf, X_OK) == 0;
    }
    char self [PATH_MAX];
    ssize_t len = readlink ("/proc/self/exe", self, sizeof self - 1);
    char tail [128];
    snprintf (tail, sizeof tail, "pb-%s", name);
    if (len > 0) {
        self [len] = 0;
        char *slash = strrchr (self, '/');
        if (slash) {
            *slash = 0;
            if (s_try (buf, size, self, tail))
                return true;
            char tree [160];
            snprintf (tree, sizeof tree, "../%s/pb-%s", name, name);
            if (s_try (buf, size, self, tree))
                return true;
        }
    }
    const char *path = getenv ("PATH");
    char *copy = strdup (path? path: "/usr/local/bin:/usr/bin:/bin");
    bool found = false;
    for (char *save = NULL, *dir = strtok_r (copy, ":", &save); dir && !found;
         dir = strtok_r (NULL, ":", &save))
        found = s_try (buf, size, dir, tail);
    free (copy);
    return found;
}

//  --------------------------------------------------------------------------
//  Self test: the user name and the worker names (ops events are logged
//  against a real journal by tests/it/it_pbctl_ops.py)

void
pb_ctl_ops_test (bool verbose)
{
    printf (" * pb_ctl_ops: ");
    char by [65];
    assert (*pb_ctl_ops_user (by, sizeof by));
    assert (strlen (by) <= 64);
    assert (pb_ctl_ops_is_worker ("nac") && pb_ctl_ops_is_worker ("activity"));
    assert (!pb_ctl_ops_is_worker ("journal") && !pb_ctl_ops_is_worker (NULL));
    char bin [PATH_MAX];
    assert (!pb_ctl_ops_worker_bin ("nac", "/nonexistent/pb-nac", bin, sizeof bin));
    printf ("OK\n");
}
