/*  =========================================================================
    pb_fuzz_wire - the replay request parser and the other maps of pb_wire

    Input: [selector: 1 byte][map bytes]. Selector 0..127 (the common case)
    decodes a REPLAY request, the untrusted map every replay client sends;
    a request that decodes must satisfy the contract (from >= 1, to >= from,
    credit 1..1000, at most 64 prefixes of at most 128 bytes), re-encode,
    and decode again to the same request. Other selectors decode CREDIT,
    TICK and, as a client would read them from a journal, ACK, NAK, END,
    TICKED, STATUS, ERROR and the heartbeat; a refusal always writes a
    nul-terminated sentence.
    =========================================================================
*/
#include "pb_fuzz.h"

#include <assert.h>
#include <string.h>

#include "pb_wire.h"

//  A REPLAY request that decoded: check it, re-encode it, decode it again
static void
s_check_replay (const pb_wire_replay_t *replay)
{
    assert (replay->from >= 1);
    assert (replay->to >= replay->from);
    assert (replay->credit >= 1 && replay->credit <= PB_WIRE_CREDIT_MAX);
    assert (replay->prefix_count <= PB_WIRE_PREFIXES_MAX);
    char prefixes [PB_WIRE_PREFIXES_MAX][PB_WIRE_PREFIX_MAX + 1];
    const char *pointers [PB_WIRE_PREFIXES_MAX];
    bool has_nul = false;
    for (uint32_t i = 0; i < replay->prefix_count; i++) {
        size_t len = 0;
        const char *prefix = pb_wire_replay_prefix (replay, i, &len);
        assert (len <= PB_WIRE_PREFIX_MAX);
        assert (prefix >= replay->text
                && prefix + len <= replay->text + sizeof replay->text);
        memcpy (prefixes [i], prefix, len);
        prefixes [i][len] = 0;
        has_nul |= memchr (prefix, 0, len) != NULL;
        pointers [i] = prefixes [i];
        //  A type equal to a prefix matches it
        assert (pb_wire_replay_matches (replay, prefix, len));
    }
    if (has_nul)
        return;                         //  The encoder takes C strings
    uint8_t buf [PB_WIRE_REQUEST_MAX];
    size_t len = 0;
    int rc = pb_wire_replay_encode (replay->from,
                                    replay->to == UINT64_MAX? 0: replay->to,
                                    pointers, replay->prefix_count,
                                    replay->credit, buf, sizeof buf, &len);
    //  Ours may be longer than the input (a default credit is written
    //  out), so near the 4 KiB bound it may not fit: nothing else fails
    assert (rc == 0 || rc == PB_PROTO_TOO_LARGE);
    if (rc)
        return;
    pb_wire_replay_t again;
    char error [PB_WIRE_TEXT_MAX + 1];
    rc = pb_wire_replay_decode (buf, len, &again, error, sizeof error);
    assert (rc == 0);
    assert (again.from == replay->from && again.to == replay->to);
    assert (again.credit == replay->credit);
    assert (again.prefix_count == replay->prefix_count);
    for (uint32_t i = 0; i < again.prefix_count; i++) {
        size_t a_len = 0, b_len = 0;
        const char *a = pb_wire_replay_prefix (&again, i, &a_len);
        const char *b = pb_wire_replay_prefix (replay, i, &b_len);
        assert (a_len == b_len && memcmp (a, b, a_len) == 0);
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t *bytes = data + 1;
    size_t len = size - 1;
    char error [PB_WIRE_TEXT_MAX + 1];
    error [0] = 0;
    int rc = 0;
    uint8_t selector = data [0];
    if (selector < 128) {
        pb_wire_replay_t replay;
        rc = pb_wire_replay_decode (bytes, len, &replay, error, sizeof error);
        if (rc == 0)
            s_check_replay (&replay);
    }
    else {
        uint32_t n;
        int64_t now;
        uint64_t seq, head;
        pb_wire_ack_t ack;
        pb_wire_nak_t nak;
        pb_wire_end_t end;
        pb_wire_status_t status;
        pb_wire_error_t err;
        switch (selector % 9) {
            case 0:
                rc = pb_wire_credit_decode (bytes, len, &n, error, sizeof error);
                assert (rc || (n >= 1 && n <= PB_WIRE_CREDIT_MAX));
                break;
            case 1:
                rc = pb_wire_tick_decode (bytes, len, &now, error, sizeof error);
                break;
            case 2:
                rc = pb_wire_ack_decode (bytes, len, &ack, error, sizeof error);
                assert (rc || (ack.id_len <= PB_WIRE_ID_MAX && ack.id [ack.id_len] == 0));
                break;
            case 3:
                rc = pb_wire_nak_decode (bytes, len, &nak, error, sizeof error);
                assert (rc || (nak.code != PB_NAK_NONE
                               && strlen (nak.error) <= PB_WIRE_TEXT_MAX));
                break;
            case 4:
                rc = pb_wire_end_decode (bytes, len, &end, error, sizeof error);
                break;
            case 5:
                rc = pb_wire_ticked_decode (bytes, len, &seq, &now, error, sizeof error);
                break;
            case 6:
                rc = pb_wire_status_decode (bytes, len, &status, error, sizeof error);
                break;
            case 7:
                rc = pb_wire_error_decode (bytes, len, &err, error, sizeof error);
                assert (rc || err.code != PB_WIRE_REFUSAL_NONE);
                break;
            default:
                rc = pb_wire_heartbeat_decode (bytes, len, &head, &now, error,
                                               sizeof error);
                break;
        }
    }
    assert (memchr (error, 0, sizeof error));
    if (rc)
        assert (strlen (error) > 0);
    //  The command table: any frame maps to a command or to none
    pb_wire_cmd_t cmd = pb_wire_command (bytes, len);
    if (cmd != PB_WIRE_UNKNOWN)
        assert (strlen (pb_wire_command_name (cmd)) == len);
    return 0;
}
