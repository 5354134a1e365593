/*  =========================================================================
    pb_worker_local - apply events to a worker store without sockets

    Part of pb_worker (see pb_worker.h, "Local application"). It builds a
    stored envelope as the journal would ({id, src, type, data, seq, ts})
    and hands it to the same pb_worker_store_apply the actor uses, so a
    rules module's selftest exercises the real transaction, quarantine and
    outbox code.
    =========================================================================
*/
#include "pb_worker_store.h"

struct _pb_worker_local_t {
    pb_worker_store_t *store;           //  the store (owned)
    const pb_rules_t *rules;            //  (borrowed, static)
    char src [65];                      //  src of the event being built
    char type [129];                    //  its type
    msgpack_sbuffer data;               //  its data map (owned)
    msgpack_packer pk;                  //  packer over data
};

int
pb_worker_local_open (const char *data_dir, const pb_rules_t *rules,
                      pb_worker_local_t **self_p)
{
    assert (data_dir && rules && self_p);
    pb_worker_store_t *store = NULL;
    int rc = pb_worker_store_open (data_dir, 16 << 20, rules, &store);
    if (rc)
        return rc;
    pb_worker_local_t *self = (pb_worker_local_t *) zmalloc (sizeof *self);
    self->store = store;
    self->rules = rules;
    msgpack_sbuffer_init (&self->data);
    msgpack_packer_init (&self->pk, &self->data, msgpack_sbuffer_write);
    *self_p = self;
    return 0;
}

void
pb_worker_local_destroy (pb_worker_local_t **self_p)
{
    assert (self_p);
    pb_worker_local_t *self = *self_p;
    if (self) {
        pb_worker_store_destroy (&self->store);
        msgpack_sbuffer_destroy (&self->data);
        free (self);
        *self_p = NULL;
    }
}

msgpack_packer *
pb_worker_local_begin (pb_worker_local_t *self, const char *src, const char *type)
{
    assert (self && src && type);
    snprintf (self->src, sizeof self->src, "%s", src);
    snprintf (self->type, sizeof self->type, "%s", type);
    msgpack_sbuffer_clear (&self->data);
    return &self->pk;
}

int
pb_worker_local_end (pb_worker_local_t *self)
{
    assert (self);
    uint64_t seq = pb_worker_store_applied_seq (self->store) + 1;
    char id [64];
    snprintf (id, sizeof id, "local/%" PRIu64, seq);
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    bool notify = strncmp (self->type, "notify.", 7) == 0;
    msgpack_pack_map (&pk, notify? 7: 6);
    pb_apply_pack_str (&pk, "id");
    pb_apply_pack_str (&pk, id);
    pb_apply_pack_str (&pk, "src");
    pb_apply_pack_str (&pk, self->src);
    pb_apply_pack_str (&pk, "type");
    pb_apply_pack_str (&pk, self->type);
    if (notify) {
        pb_apply_pack_str (&pk, "cause");
        msgpack_pack_uint64 (&pk, seq > 1? seq - 1: 1);
    }
    pb_apply_pack_str (&pk, "data");
    msgpack_sbuffer_write (&buf, self->data.data, self->data.size);
    pb_apply_pack_str (&pk, "seq");
    msgpack_pack_uint64 (&pk, seq);
    pb_apply_pack_str (&pk, "ts");
    msgpack_pack_int64 (&pk, 0);
    pb_limits_t limits = PB_LIMITS_DEFAULTS;
    pb_worker_event_t event;
    memset (&event, 0, sizeof event);
    char error [256];
    int rc = 0;
    if (pb_envelope_decode (self->type, strlen (self->type), buf.data, buf.size,
                            PB_ENVELOPE_STORED, &limits, &event.env,
                            error, sizeof error) != PB_NAK_NONE) {
        zsys_warning ("pb_worker: local event refused: %s", error);
        rc = PB_EINVAL;
    }
    else {
        event.seq = seq;
        rc = pb_worker_store_apply (self->store, &event, 1);
    }
    pb_envelope_destroy (&event.env);
    msgpack_sbuffer_destroy (&buf);
    return rc;
}

typedef struct {
    char *buf;                          //  where to print (borrowed)
    size_t size;
    uint8_t key [PB_WORKER_KEY_SIZE];   //  the entry taken
    bool found;
} s_take_t;

static int
s_take_first (const uint8_t *key, const char *type, const void *env,
              size_t size, void *arg)
{
    s_take_t *take = (s_take_t *) arg;
    msgpack_unpacked result;
    msgpack_unpacked_init (&result);
    int n = snprintf (take->buf, take->size, "%s ", type);
    if (msgpack_unpack_next (&result, env, size, NULL) == MSGPACK_UNPACK_SUCCESS
    &&  n > 0 && (size_t) n < take->size) {
        const msgpack_object *data = pb_msgpack_get (&result.data, "data");
        if (data)
            msgpack_object_print_buffer (take->buf + n, take->size - (size_t) n, *data);
    }
    msgpack_unpacked_destroy (&result);
    memcpy (take->key, key, PB_WORKER_KEY_SIZE);
    take->found = true;
    return 1;
}

bool
pb_worker_local_take (pb_worker_local_t *self, char *buf, size_t size)
{
    assert (self && buf && size > 0);
    s_take_t take = { buf, size, { 0 }, false };
    buf [0] = 0;
    if (pb_worker_store_outbox_scan (self->store, NULL, s_take_first, &take) == 0
    &&  take.found)
        pb_worker_store_outbox_ack (self->store, take.key, 1);
    return take.found;
}

uint64_t
pb_worker_local_seq (pb_worker_local_t *self)
{
    assert (self);
    return pb_worker_store_applied_seq (self->store);
}

//  --------------------------------------------------------------------------

void
pb_worker_local_ally (pb_worker_local_t *self, const char *country)
{
    msgpack_packer *pk = pb_worker_local_begin (self, "registry", "registry.ally");
    msgpack_pack_map (pk, 3);
    pb_apply_pack_str (pk, "country");
    pb_apply_pack_str (pk, country);
    pb_apply_pack_str (pk, "name");
    pb_apply_pack_str (pk, country);
    pb_apply_pack_str (pk, "joined");
    pb_apply_pack_str (pk, "1949-04-04");
    int rc = pb_worker_local_end (self);
    assert (rc == 0);
    (void) rc;
}

//  --------------------------------------------------------------------------

void
pb_worker_local_partner (pb_worker_local_t *self, const char *country,
                         const char *frameworks, const char *status)
{
    msgpack_packer *pk = pb_worker_local_begin (self, "registry", "registry.partner");
    msgpack_pack_map (pk, 4);
    pb_apply_pack_str (pk, "country");
    pb_apply_pack_str (pk, country);
    pb_apply_pack_str (pk, "name");
    pb_apply_pack_str (pk, country);
    pb_apply_pack_str (pk, "frameworks");
    size_t count = 1;
    for (const char *p = frameworks; *p; p++)
        count += *p == ',';
    msgpack_pack_array (pk, count);
    for (const char *p = frameworks; ; p++) {
        size_t len = strcspn (p, ",");
        msgpack_pack_str (pk, len);
        msgpack_pack_str_body (pk, p, len);
        p += len;
        if (!*p)
            break;
    }
    pb_apply_pack_str (pk, "status");
    pb_apply_pack_str (pk, status);
    int rc = pb_worker_local_end (self);
    assert (rc == 0);
    (void) rc;
}
