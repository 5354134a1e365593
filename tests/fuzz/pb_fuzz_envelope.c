/*  =========================================================================
    pb_fuzz_envelope - the envelope decoder and every type's validator

    Input: [type selector: 1 byte][envelope bytes]. The selector picks the
    type frame: the catalogue type of index selector % (count + 1), or for
    the last value the type named by the envelope itself (so a mismatch and
    an unknown type are reached too). The bytes are decoded as a producer's
    envelope; one that decodes is checked against its type's schema, as the
    journal does, and one that validates is turned into its stored form,
    which must decode again (stored form) and validate again, with the same
    id, src and type, and split (the log chain's rule) into the producer's
    pairs as they came and the seq and ts after them. The raw bytes are also decoded as a stored envelope
    (what a subscriber or the log reads) and peeked for a NAK's id.
    =========================================================================
*/
#include "pb_fuzz.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "pb_catalogue.h"
#include "pb_envelope.h"

//  A stop that depends on the type: stop at types of odd length
static bool
s_stop_at_odd (const char *type, size_t type_len, void *arg)
{
    return type_len % 2 == 1;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    pb_limits_t limits = PB_LIMITS_DEFAULTS;
    int count = pb_catalogue_count ();
    int selector = data [0] % (count + 1);
    const uint8_t *bytes = data + 1;
    size_t bytes_size = size - 1;
    char error [256];

    //  The type frame: a catalogue name, or the envelope's own 'type'
    const char *type = NULL;
    size_t type_len = 0;
    pb_envelope_t *env = NULL;
    if (selector < count) {
        type = pb_catalogue_name (selector);
        type_len = strlen (type);
    }
    else
    if (pb_envelope_decode (NULL, 0, bytes, bytes_size, PB_ENVELOPE_STORED,
                            &limits, &env, error, sizeof error) == PB_NAK_NONE) {
        //  A stored envelope carries its type: use it as the frame
        type = env->type;
        type_len = env->type_len;
    }
    else {
        type = "fuzz.unknown";
        type_len = strlen (type);
    }
    assert (env == NULL || env->type_index >= 0);
    //  The workers' cheap peek reads the same untrusted bytes: in bounds,
    //  and on a decodable stored envelope it agrees with the decoder
    uint64_t peek_seq = 0;
    const char *peek_type = NULL;
    size_t peek_type_len = 0;
    bool peeked = pb_envelope_peek_seq (bytes, bytes_size, &peek_seq, &peek_type,
                                        &peek_type_len);
    assert (!env || (peeked && peek_seq == env->seq && peek_type_len == env->type_len
                     && memcmp (peek_type, env->type, env->type_len) == 0));
    //  The walk that may stop at the type agrees with the long one
    uint64_t short_seq = 0;
    const char *short_type = NULL;
    size_t short_type_len = 0;
    int stopped = pb_envelope_peek_unless (bytes, bytes_size, s_stop_at_odd, NULL,
                                           &short_seq, &short_type, &short_type_len);
    assert (stopped != 0 || (peeked && short_seq == peek_seq && short_type == peek_type
                             && short_type_len == peek_type_len));
    assert (stopped != 1 || (short_type && s_stop_at_odd (short_type, short_type_len, NULL)));
    assert (!env || stopped >= 0);
    assert (!peeked || stopped >= 0);
    assert (!peeked || !peek_type || (short_type == peek_type && short_type_len == peek_type_len));

    //  The chain's split of untrusted bytes (pbctl verify) stays in them
    size_t split_header = 0, split_pairs = 0;
    if (pb_envelope_split_stored (bytes, bytes_size, &split_header, &split_pairs))
        assert (split_header >= 1 && split_header <= 5
                && split_header + split_pairs <= bytes_size);

    pb_envelope_t *ingest = NULL;
    pb_nak_t nak = pb_envelope_decode (type, type_len, bytes, bytes_size,
                                       PB_ENVELOPE_INGEST, &limits, &ingest,
                                       error, sizeof error);
    assert (strlen (error) < sizeof error);
    if (nak != PB_NAK_NONE) {
        assert (ingest == NULL);
        const char *id = NULL;
        size_t id_len = 0;
        if (pb_envelope_peek_id (bytes, bytes_size, &limits, &id, &id_len))
            assert (id >= (const char *) bytes && id_len >= 1 && id_len <= 128
                    && id + id_len <= (const char *) bytes + bytes_size);
    }
    else {
        assert (ingest && ingest->type_index >= 0);
        assert (ingest->type_len == type_len
                && memcmp (ingest->type, type, type_len) == 0);
        assert (ingest->size == bytes_size);
        if (pb_envelope_validate_data (ingest, error, sizeof error) == PB_NAK_NONE) {
            //  The stored form of what validates must read back the same
            uint8_t *stored = NULL;
            size_t stored_size = 0;
            int rc = pb_envelope_encode_stored (ingest, 123456789, 1735689600000,
                                                &stored, &stored_size);
            assert (rc == 0);
            //  The chain's split of the stored form finds the producer's
            //  pairs, byte for byte, and the seq and ts pairs after them
            size_t header = 0, pairs = 0, offset = 0, pairs_size = 0;
            assert (pb_envelope_split_stored (stored, stored_size, &header, &pairs));
            pb_envelope_pairs (ingest, &offset, &pairs_size);
            assert (header == pb_envelope_map_header_size (stored [0]));
            assert (pairs == pairs_size
                    && memcmp (stored + header, ingest->bytes + offset, pairs) == 0);
            assert (stored_size - header - pairs <= 4 + 9 + 3 + 9);
            pb_envelope_t *back = NULL;
            pb_limits_t stored_limits = limits;
            stored_limits.max_size += 32;       //  seq and ts added
            nak = pb_envelope_decode (type, type_len, stored, stored_size,
                                      PB_ENVELOPE_STORED, &stored_limits, &back,
                                      error, sizeof error);
            assert (nak == PB_NAK_NONE);
            assert (back->seq == 123456789 && back->ts == 1735689600000);
            assert (back->id_len == ingest->id_len
                    && memcmp (back->id, ingest->id, back->id_len) == 0);
            assert (back->src_len == ingest->src_len
                    && memcmp (back->src, ingest->src, back->src_len) == 0);
            assert (back->type_index == ingest->type_index);
            assert (pb_envelope_validate_data (back, error, sizeof error)
                    == PB_NAK_NONE);
            pb_envelope_destroy (&back);
            free (stored);
        }
        else
            assert (strlen (error) > 0);
        pb_envelope_destroy (&ingest);
    }
    assert (ingest == NULL);

    //  What a subscriber does with a stored event: decode, then validate
    if (env) {
        pb_envelope_validate_data (env, error, sizeof error);
        pb_envelope_destroy (&env);
    }
    return 0;
}
