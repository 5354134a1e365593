/*  =========================================================================
    pb_fuzz_ctl_json - pbctl's JSON reader and writer (services/ctl)

    Input: [mode: 1 byte][bytes]. Even modes read the bytes as one line of
    `pbctl publish` (jansson with JSON_REJECT_DUPLICATES | JSON_DECODE_ANY),
    pack the value to MessagePack as pbctl does, and read the packed bytes
    back to JSON the way `pbctl replay/tail/state` print events: the
    round trip must give an equal value (the reader is documented as
    faithful) and print. Odd modes read the bytes as MessagePack from a
    journal or a worker store (pb_ctl_json_from_bytes, bounded), and print
    what comes out.
    =========================================================================
*/
#include "pb_fuzz.h"

#include <assert.h>
#include <string.h>

#include "pb_ctl_json.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *bytes = (const char *) data + 1;
    size_t len = size - 1;
    char error [256];
    FILE *sink = fopen ("/dev/null", "w");
    assert (sink);
    if ((data [0] & 1) == 0) {
        json_error_t jerr;
        json_t *value = json_loadb (bytes, len,
                                    JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        if (value) {
            msgpack_sbuffer buffer;
            msgpack_sbuffer_init (&buffer);
            msgpack_packer pk;
            msgpack_packer_init (&pk, &buffer, msgpack_sbuffer_write);
            int rc = pb_ctl_json_pack (value, &pk);
            assert (rc == 0);
            error [0] = 0;
            json_t *back = pb_ctl_json_from_bytes (buffer.data, buffer.size,
                                                   error, sizeof error);
            //  A value pbctl packs is within the reader's bounds unless
            //  it is very deep or very wide; otherwise it must read back
            //  equal
            if (back) {
                assert (json_equal (value, back));
                assert (pb_ctl_json_print (sink, back) == 0);
                json_decref (back);
            }
            else
                assert (strlen (error) > 0);
            msgpack_sbuffer_destroy (&buffer);
            json_decref (value);
        }
    }
    else {
        error [0] = 0;
        json_t *value = pb_ctl_json_from_bytes (bytes, len, error, sizeof error);
        if (value) {
            assert (pb_ctl_json_print (sink, value) == 0);
            json_decref (value);
        }
        else
            assert (strlen (error) > 0);
    }
    fclose (sink);
    return 0;
}
