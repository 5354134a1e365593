/*  =========================================================================
    pb_wire - the small maps of ingest replies and of replay and control

    Encoders and bounded decoders for every map of proto/README.md other
    than the envelope: ACK, NAK (ingest replies), REPLAY, CREDIT, END,
    TICK, TICKED, STATUS, ERROR (replay and control) and the heartbeat of
    the fanout. Plain C over msgpack wire bytes, no czmq, no allocation:
    encoders write into a caller's buffer, decoders fill a caller's struct
    and copy the strings they keep.

    Decoders read untrusted bytes with their own bounded reader (never
    msgpack-c's unpacker, which trusts declared counts): the input size is
    checked first, every declared length is checked against the bytes that
    remain, nesting is bounded, and a refusal writes a sentence naming the
    field at fault ("REPLAY.prefixes[2]: longer than 128 bytes").
    Requests (REPLAY, CREDIT, TICK) refuse unknown keys; replies skip them,
    so that an older client reads a newer journal.

    Stateless; any thread.
    =========================================================================
*/
#ifndef PB_WIRE_H_INCLUDED
#define PB_WIRE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pb_error.h"
#include "pb_nak.h"

//  The command frames (first frame of every replay/control message and of
//  every ingest reply), one list of (enum, wire string)
#define PB_WIRE_COMMANDS(XX) \
    XX (PB_WIRE_ACK,     "ACK") \
    XX (PB_WIRE_NAK,     "NAK") \
    XX (PB_WIRE_REPLAY,  "REPLAY") \
    XX (PB_WIRE_CREDIT,  "CREDIT") \
    XX (PB_WIRE_CANCEL,  "CANCEL") \
    XX (PB_WIRE_TICK,    "TICK") \
    XX (PB_WIRE_STATUS,  "STATUS") \
    XX (PB_WIRE_EVENTS,  "EVENTS") \
    XX (PB_WIRE_END,     "END") \
    XX (PB_WIRE_TICKED,  "TICKED") \
    XX (PB_WIRE_ERROR,   "ERROR") \
    XX (PB_WIRE_IMPORT,  "IMPORT") \
    XX (PB_WIRE_IMPORTED, "IMPORTED")

typedef enum {
    PB_WIRE_UNKNOWN = 0,                //  not a command of this list
#define XX(name, text) name,
    PB_WIRE_COMMANDS (XX)
#undef XX
    PB_WIRE_COMMAND_COUNT
} pb_wire_cmd_t;

//  The ERROR codes of replay and control, one list of (enum, wire string)
#define PB_WIRE_REFUSALS(XX) \
    XX (PB_WIRE_BAD_REQUEST, "bad_request") \
    XX (PB_WIRE_NOT_MANUAL,  "not_manual") \
    XX (PB_WIRE_BACKWARDS,   "backwards") \
    XX (PB_WIRE_UNAVAILABLE, "unavailable") \
    XX (PB_WIRE_UNAUTHORIZED, "unauthorized")

typedef enum {
    PB_WIRE_REFUSAL_NONE = 0,
#define XX(name, text) name,
    PB_WIRE_REFUSALS (XX)
#undef XX
    PB_WIRE_REFUSAL_COUNT
} pb_wire_refusal_t;

//  Limits
#define PB_WIRE_ID_MAX        128       //  bytes of an envelope id
#define PB_WIRE_TEXT_MAX      255       //  bytes of an error sentence kept
#define PB_WIRE_REQUEST_MAX   4096      //  bytes of a REPLAY/CREDIT/TICK map
#define PB_WIRE_PREFIXES_MAX  64        //  prefixes of one REPLAY
#define PB_WIRE_PREFIX_MAX    128       //  bytes of one prefix
#define PB_WIRE_CREDIT_MAX    1000      //  REPLAY credit and CREDIT n
#define PB_WIRE_CREDIT_DEFAULT 4        //  REPLAY credit when absent
#define PB_WIRE_IMPORT_MAX    1000      //  events of one IMPORT request
#define PB_WIRE_REPLY_MAX     512       //  buffer that fits any encoded
                                        //  map here except REPLAY

//  Decoded replies. Strings are copied and nul-terminated; texts longer
//  than PB_WIRE_TEXT_MAX are cut (at a UTF-8 boundary).
typedef struct {
    char id [PB_WIRE_ID_MAX + 1];       //  the event's id
    size_t id_len;
    uint64_t seq;                       //  its position in the log
} pb_wire_ack_t;

typedef struct {
    bool has_id;                        //  id was readable in the envelope
    char id [PB_WIRE_ID_MAX + 1];
    size_t id_len;
    pb_nak_t code;                      //  never PB_NAK_NONE once decoded
    char error [PB_WIRE_TEXT_MAX + 1];  //  the sentence naming the field
} pb_wire_nak_t;

typedef struct {
    pb_wire_refusal_t code;             //  never PB_WIRE_REFUSAL_NONE
    char error [PB_WIRE_TEXT_MAX + 1];
} pb_wire_error_t;

typedef struct {
    uint64_t through;                   //  every match <= through was sent
    uint64_t head;                      //  last seq of the log then
    uint64_t count;                     //  events sent by this request
} pb_wire_end_t;

typedef struct {
    uint64_t head;                      //  last seq of the log
    int64_t now;                        //  log time (0 before any tick)
    bool manual;                        //  clock "manual" (else "auto")
} pb_wire_status_t;

//  A REPLAY request. Prefixes are packed in 'text' (not nul-terminated);
//  use pb_wire_replay_prefix and pb_wire_replay_matches.
typedef struct {
    uint64_t from;                      //  >= 1
    uint64_t to;                        //  >= from; UINT64_MAX when absent
    uint32_t credit;                    //  1..1000 (default 4)
    uint32_t prefix_count;              //  0: every type
    uint16_t prefix_off [PB_WIRE_PREFIXES_MAX];
    uint16_t prefix_len [PB_WIRE_PREFIXES_MAX];
    char text [PB_WIRE_REQUEST_MAX];    //  the prefixes' bytes
} pb_wire_replay_t;

//  --------------------------------------------------------------------------
//  Commands

//  The command named by a frame of 'size' bytes; PB_WIRE_UNKNOWN if none.
pb_wire_cmd_t
    pb_wire_command (const void *frame, size_t size);

//  The wire string of a command, or "" for PB_WIRE_UNKNOWN. Static storage.
const char *
    pb_wire_command_name (pb_wire_cmd_t cmd);

//  The wire string of an ERROR code, or "" for none. Static storage.
const char *
    pb_wire_refusal_code (pb_wire_refusal_t code);

//  --------------------------------------------------------------------------
//  Encoders. Each writes one map into 'buf' ('size' bytes) and sets *len_p.
//  Returns 0, or PB_PROTO_TOO_LARGE if the map does not fit (nothing useful
//  is in buf then), or PB_EINVAL for arguments outside the contract (an id
//  over PB_WIRE_ID_MAX, a prefix over PB_WIRE_PREFIX_MAX, ...). Error
//  sentences are cut to PB_WIRE_TEXT_MAX bytes and any invalid UTF-8 in
//  them becomes '?', so a reply always decodes. PB_WIRE_REPLY_MAX bytes are
//  always enough for all but pb_wire_replay_encode.

//  ACK {id, seq}
int
    pb_wire_ack_encode (const char *id, size_t id_len, uint64_t seq,
                        uint8_t *buf, size_t size, size_t *len_p);

//  NAK {id?, code, error}: 'id' NULL when it could not be read
int
    pb_wire_nak_encode (const char *id, size_t id_len, pb_nak_t code,
                        const char *error, uint8_t *buf, size_t size,
                        size_t *len_p);

//  REPLAY {from, to?, prefixes?, credit?}: 'to' 0 for absent, 'credit' 0
//  for absent, 'prefixes' (nul-terminated strings) may be NULL when
//  'prefix_count' is 0. Needs up to PB_WIRE_REQUEST_MAX bytes.
int
    pb_wire_replay_encode (uint64_t from, uint64_t to,
                           const char *const *prefixes, size_t prefix_count,
                           uint32_t credit, uint8_t *buf, size_t size,
                           size_t *len_p);

//  IMPORT {after}: the log's head the importer saw; the events follow in
//  frames of their own. IMPORTED {head}: the head after the import.
int
    pb_wire_import_encode (uint64_t after, uint8_t *buf, size_t size,
                           size_t *len_p);
int
    pb_wire_imported_encode (uint64_t head, uint8_t *buf, size_t size,
                             size_t *len_p);
int
    pb_wire_import_decode (const void *bytes, size_t size, uint64_t *after_p,
                           char *error, size_t error_size);
int
    pb_wire_imported_decode (const void *bytes, size_t size, uint64_t *head_p,
                             char *error, size_t error_size);

//  CREDIT {n}
int
    pb_wire_credit_encode (uint32_t n, uint8_t *buf, size_t size,
                           size_t *len_p);

//  END {through, head, count}
int
    pb_wire_end_encode (const pb_wire_end_t *end, uint8_t *buf, size_t size,
                        size_t *len_p);

//  TICK {now}
int
    pb_wire_tick_encode (int64_t now, uint8_t *buf, size_t size,
                         size_t *len_p);

//  TICKED {seq, now}
int
    pb_wire_ticked_encode (uint64_t seq, int64_t now, uint8_t *buf,
                           size_t size, size_t *len_p);

//  STATUS reply {head, now, clock}
int
    pb_wire_status_encode (const pb_wire_status_t *status, uint8_t *buf,
                           size_t size, size_t *len_p);

//  ERROR {code, error}
int
    pb_wire_error_encode (pb_wire_refusal_t code, const char *error,
                          uint8_t *buf, size_t size, size_t *len_p);

//  Heartbeat of the fanout {head, ts}
int
    pb_wire_heartbeat_encode (uint64_t head, int64_t ts, uint8_t *buf,
                              size_t size, size_t *len_p);

//  --------------------------------------------------------------------------
//  Decoders. Each reads one map of 'size' untrusted bytes into its struct.
//  Returns 0; or PB_PROTO_TOO_LARGE (over PB_WIRE_REQUEST_MAX, never
//  read), PB_PROTO_TRUNCATED (the bytes end inside the map),
//  PB_PROTO_MALFORMED (not a map, trailing bytes, a field missing, of the
//  wrong type, out of range, repeated, or unknown in a request), and then
//  writes a sentence naming the field into 'error' (nul-terminated, cut to
//  error_size; 'error' may be NULL). The struct is undefined on failure.

int
    pb_wire_ack_decode (const void *bytes, size_t size, pb_wire_ack_t *ack,
                        char *error, size_t error_size);
int
    pb_wire_nak_decode (const void *bytes, size_t size, pb_wire_nak_t *nak,
                        char *error, size_t error_size);
//  Also refuses: to < from, from 0, credit outside 1..1000, more than 64
//  prefixes, a prefix that is not a str or is over 128 bytes.
int
    pb_wire_replay_decode (const void *bytes, size_t size,
                           pb_wire_replay_t *replay,
                           char *error, size_t error_size);
//  n must be 1..PB_WIRE_CREDIT_MAX
int
    pb_wire_credit_decode (const void *bytes, size_t size, uint32_t *n_p,
                           char *error, size_t error_size);
int
    pb_wire_end_decode (const void *bytes, size_t size, pb_wire_end_t *end,
                        char *error, size_t error_size);
int
    pb_wire_tick_decode (const void *bytes, size_t size, int64_t *now_p,
                         char *error, size_t error_size);
int
    pb_wire_ticked_decode (const void *bytes, size_t size, uint64_t *seq_p,
                           int64_t *now_p, char *error, size_t error_size);
int
    pb_wire_status_decode (const void *bytes, size_t size,
                           pb_wire_status_t *status,
                           char *error, size_t error_size);
int
    pb_wire_error_decode (const void *bytes, size_t size,
                          pb_wire_error_t *err, char *error,
                          size_t error_size);
int
    pb_wire_heartbeat_decode (const void *bytes, size_t size,
                              uint64_t *head_p, int64_t *ts_p,
                              char *error, size_t error_size);

//  --------------------------------------------------------------------------
//  REPLAY helpers

//  The i-th prefix of a decoded request (not nul-terminated); *len_p set.
//  Valid as long as 'replay'. i must be below prefix_count.
const char *
    pb_wire_replay_prefix (const pb_wire_replay_t *replay, uint32_t i,
                           size_t *len_p);

//  True if an event of type 'type' ('type_len' bytes) matches the request:
//  no prefixes, an empty prefix, or a prefix that 'type' starts with.
bool
    pb_wire_replay_matches (const pb_wire_replay_t *replay,
                            const char *type, size_t type_len);

//  Self test of this module
void
    pb_wire_test (bool verbose);

#endif
