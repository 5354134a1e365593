/*  =========================================================================
    pb_nak - the wire-visible refusal codes of PROTOCOL.md, in table order

    One X-macro list of (enum, wire string), so the strings cannot drift
    from the spec. The order is the table's: where several rows apply, the
    first one wins, and PB_NAK_* values grow in that order.
    =========================================================================
*/
#ifndef PB_NAK_H_INCLUDED
#define PB_NAK_H_INCLUDED

#define PB_NAKS(XX) \
    XX (PB_NAK_BAD_FRAMES,    "bad_frames") \
    XX (PB_NAK_TOO_LARGE,     "too_large") \
    XX (PB_NAK_BAD_MSGPACK,   "bad_msgpack") \
    XX (PB_NAK_BAD_ENVELOPE,  "bad_envelope") \
    XX (PB_NAK_TYPE_MISMATCH, "type_mismatch") \
    XX (PB_NAK_UNKNOWN_TYPE,  "unknown_type") \
    XX (PB_NAK_UNAUTHORIZED,  "unauthorized") \
    XX (PB_NAK_BAD_DATA,      "bad_data") \
    XX (PB_NAK_ID_CONFLICT,   "id_conflict") \
    XX (PB_NAK_UNAVAILABLE,   "unavailable")

typedef enum {
    PB_NAK_NONE = 0,                    //  not refused
#define XX(name, text) name,
    PB_NAKS (XX)
#undef XX
    PB_NAK_COUNT
} pb_nak_t;

//  The wire string of a code ("bad_frames", ...); "" for PB_NAK_NONE.
//  Static storage.
const char *
    pb_nak_code (pb_nak_t nak);

#endif
