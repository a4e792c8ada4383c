/* validate.h - the input rules of CONTRACT.md, shared by core's services.
 *
 * Pure functions over bytes (no store, no globals), so they are unit tested
 * exhaustively and fuzzed (fuzz/fuzz_validate.c, docs/fuzzing.md).  Strings handed in come from jansson, which has
 * already checked that they are valid UTF-8; the code-point routines still
 * stay in bounds on invalid input (an invalid byte counts as one point). */
#ifndef CHATLI_CORE_VALIDATE_H
#define CHATLI_CORE_VALIDATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chatli/err.h"

#define VALIDATE_URL_MAX 2048   /* bytes; URLs are ASCII in practice */
#define VALIDATE_EMAIL_MAX 254  /* RFC 5321 path limit */

/* Number of Unicode code points in the `len` bytes at `s`. */
size_t validate_cp_len(const char *s, size_t len);

/* Narrows [*s, *s + *len) to drop surrounding Unicode whitespace (ASCII
 * space, \t\n\v\f\r, U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028,
 * U+2029, U+202F, U+205F, U+3000 and U+FEFF, like JavaScript's trim). */
void validate_trim(const char **s, size_t *len);

/* 3..32 characters of [A-Za-z0-9_]. */
bool validate_username(const char *s);

/* `local@domain.tld`: one '@'; a dot-atom local part of 1..64 characters;
 * two or more domain labels of [A-Za-z0-9-] (1..63, no '-' at either end);
 * a top-level label of 2+ characters that is not all digits; 254 bytes in
 * all. */
bool validate_email(const char *s);

/* An absolute http:// or https:// URL (scheme case-insensitive) of at most
 * VALIDATE_URL_MAX bytes with a non-empty host, an optional numeric port
 * 1..65535, and no spaces, control characters or any of "<>\^`{|} (which
 * would let a stored URL break out of an HTML attribute). */
bool validate_url(const char *s);

/* True when the `len` bytes of `s` are all of the base64url alphabet
 * (A-Z a-z 0-9 - _).  libsodium 1.0.18's decoder also takes every byte
 * >= 0x80 as a base64 character, so a strict decode checks this first:
 * otherwise one token or cursor has many spellings. */
bool validate_base64url(const char *s, size_t len);

/* Lower-cases ASCII letters in place. */
void validate_ascii_lower(char *s);

/* True when `s` is 1..`max_digits` decimal digits (no sign, no spaces);
 * stores the value in *out. */
bool validate_decimal(const char *s, int max_digits, int64_t *out);

/* ?limit=: NULL -> 20; else a decimal integer 1..100, or CHAT_E_VALIDATION
 * with field "limit". */
int validate_limit(const char *raw, int *out, struct chat_err *err);

/* Flags for validate_string_field. */
enum {
    VALIDATE_REQUIRED = 1, /* absent or null is an error */
    VALIDATE_TRIM = 2,     /* trim surrounding whitespace before the length check */
};

/* Reads the string field `name` (a string literal: it becomes err->field)
 * of the object `body`.  Absent or null: *out = NULL and 0, or
 * CHAT_E_VALIDATION with VALIDATE_REQUIRED.  Any other non-string, or a
 * string holding U+0000: CHAT_E_VALIDATION.  Otherwise the (trimmed) value
 * must be min_cp..max_cp code points, and *out is a new copy (free()). */
int validate_string_field(json_t *body, const char *name, unsigned flags, size_t min_cp,
                          size_t max_cp, char **out, struct chat_err *err);

/* Reads the optional URL field `name`: absent, null or blank -> *out = NULL;
 * a string that is not a valid URL (after trimming) or any other type ->
 * CHAT_E_VALIDATION with field `name`.  *out is new (free()). */
int validate_url_field(json_t *body, const char *name, char **out, struct chat_err *err);

#endif
