/*  =========================================================================
    pb_be64 - 64-bit unsigned integers as 8 big-endian bytes

    The layout of every seq in an LMDB key or value (the log's keys, its
    chain anchor, a worker's applied_seq and outbox keys, export blocks):
    big-endian, so that LMDB's byte order is the numbers' order.
    =========================================================================
*/
#ifndef PB_BE64_H_INCLUDED
#define PB_BE64_H_INCLUDED

#include <stdint.h>

static inline void
pb_be64_put (uint8_t *bytes, uint64_t value)
{
    for (int i = 7; i >= 0; i--, value >>= 8)
        bytes [i] = (uint8_t) value;
}

static inline uint64_t
pb_be64_get (const uint8_t *bytes)
{
    uint64_t value = 0;
    for (int i = 0; i < 8; i++)
        value = (value << 8) | bytes [i];
    return value;
}

#endif
