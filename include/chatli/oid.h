/* oid.h - MongoDB ObjectId-form ids (24 lowercase hex characters).
 *
 * chatli mints its own ids on every backend so that ids, and the cursors that
 * embed them, look the same whatever the store.  The layout is MongoDB's:
 * 4 bytes of big-endian seconds, 5 random bytes chosen once per process, and
 * a 3-byte counter, so ids minted by one process sort by creation time. */
#ifndef CHATLI_OID_H
#define CHATLI_OID_H

#include <stdbool.h>
#include <stdint.h>

#define OID_LEN 24
#define OID_SIZE 25 /* with the NUL */

/* Mints a new id into `out` (NUL-terminated).  Thread-safe.  `now_ms` is
 * the creation time to embed. */
void oid_new(char out[OID_SIZE], int64_t now_ms);

/* True when `s` is exactly 24 lowercase hex characters and a NUL. */
bool oid_valid(const char *s);

#endif
