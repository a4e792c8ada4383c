/* cursor.h - opaque pagination cursors (the `nextCursor` / `before` strings).
 *
 * A cursor is base64url (no padding) of a small versioned binary record:
 *   byte 0   CURSOR_VERSION (1)
 *   byte 1   the list it belongs to (enum cursor_kind)
 *   then     page_key lists: 8-byte big-endian ts + the id's 12 raw bytes
 *            users:          the lower-cased username (1..32 of [a-z0-9_])
 *            messages:       8-byte big-endian seq (>= 1)
 * Clients must treat it as opaque; the kind byte makes a cursor from one list
 * fail cleanly on another, and the version byte lets the layout change later
 * without misreading old cursors.  Decoding is strict: anything that is not
 * exactly what cursor_encode_* produces is CHAT_E_VALIDATION, field
 * "before". */
#ifndef CHATLI_CORE_CURSOR_H
#define CHATLI_CORE_CURSOR_H

#include <stdint.h>

#include "chatli/store.h"
#include "chatli/err.h"

#define CURSOR_VERSION 1
/* Large enough for the longest encoding (2 + 32 bytes -> 46 chars) + NUL. */
#define CURSOR_MAX 64

enum cursor_kind {
    CURSOR_POSTS = 1,
    CURSOR_COMMENTS = 2,
    CURSOR_CHATS = 3,
    CURSOR_USERS = 4,
    CURSOR_MESSAGES = 5,
};

/* Encoders write a NUL-terminated cursor into `out`; they cannot fail on
 * valid input (an invalid id or username is a bug in the caller and yields
 * the empty string, which never decodes). */
void cursor_encode_key(int kind, const struct page_key *key, char out[CURSOR_MAX]);
void cursor_encode_name(const char *username_lower, char out[CURSOR_MAX]);
void cursor_encode_seq(int64_t seq, char out[CURSOR_MAX]);

/* Decoders: 0, or CHAT_E_VALIDATION (field "before") for a string that is
 * not a cursor of that kind. */
int cursor_decode_key(int kind, const char *s, struct page_key *out, struct chat_err *err);
int cursor_decode_name(const char *s, char out[33], struct chat_err *err);
int cursor_decode_seq(const char *s, int64_t *out, struct chat_err *err);

#endif
