/*  =========================================================================
    pb_nak - the wire-visible refusal codes of PROTOCOL.md, in table order

    The strings come from the one X-macro list in pb_nak.h.
    =========================================================================
*/
#include "pb_nak.h"

#include <stddef.h>

static const char *const s_nak_codes [PB_NAK_COUNT] = {
    [PB_NAK_NONE] = "",
#define XX(name, text) [name] = text,
    PB_NAKS (XX)
#undef XX
};

//  --------------------------------------------------------------------------
//  The wire string of a code; "" for PB_NAK_NONE and for out-of-range values.

const char *
pb_nak_code (pb_nak_t nak)
{
    if ((int) nak < 0 || nak >= PB_NAK_COUNT)
        return "";
    return s_nak_codes [nak];
}
