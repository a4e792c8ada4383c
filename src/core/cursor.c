/* cursor.c - opaque cursors: base64url of a versioned binary record.
 *
 * Binary rather than text so a cursor stays short (30 characters for a
 * post) and has exactly one valid spelling: libsodium's decoder with no
 * ignored characters rejects padding, whitespace and non-zero trailing bits,
 * we check the alphabet ourselves (that decoder takes bytes >= 0x80 for
 * base64 characters) and the exact length per kind, so decode(s)
 * succeeding implies encode(decode(s)) == s.  fuzz/fuzz_cursor.c checks
 * exactly that, and that a bad cursor is 422 field "before", never a crash
 * or another page. */
#include "cursor.h"
#include "validate.h"

#include <sodium.h>
#include <string.h>

#define VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static void encode(const uint8_t *bin, size_t n, char out[CURSOR_MAX])
{
    sodium_bin2base64(out, CURSOR_MAX, bin, n, VARIANT);
}

/* Decodes `s` into `bin` (room for `cap` bytes) and checks the header.
 * Returns the payload length after the 2 header bytes, or -1. */
static int decode(const char *s, int kind, uint8_t *bin, size_t cap)
{
    size_t n;
    if (!s)
        return -1;
    size_t len = strnlen(s, CURSOR_MAX);
    if (len == 0 || len >= CURSOR_MAX)
        return -1;
    if (!validate_base64url(s, len))
        return -1;
    if (sodium_base642bin(bin, cap, s, len, NULL, &n, NULL, VARIANT) != 0)
        return -1;
    if (n < 2 || bin[0] != CURSOR_VERSION || bin[1] != kind)
        return -1;
    return (int)(n - 2);
}

static int bad(struct chat_err *err)
{
    return chat_err_set(err, CHAT_E_VALIDATION, "before", "before is not a valid cursor");
}

void cursor_encode_key(int kind, const struct page_key *key, char out[CURSOR_MAX])
{
    uint8_t bin[2 + 8 + 12];
    out[0] = '\0';
    if (!oid_valid(key->id))
        return;
    bin[0] = CURSOR_VERSION;
    bin[1] = (uint8_t)kind;
    put_be64(bin + 2, (uint64_t)key->ts);
    if (sodium_hex2bin(bin + 10, 12, key->id, OID_LEN, NULL, NULL, NULL) != 0)
        return;
    encode(bin, sizeof bin, out);
}

int cursor_decode_key(int kind, const char *s, struct page_key *out, struct chat_err *err)
{
    uint8_t bin[CURSOR_MAX];
    if (decode(s, kind, bin, sizeof bin) != 8 + 12)
        return bad(err);
    out->ts = (int64_t)get_be64(bin + 2);
    sodium_bin2hex(out->id, OID_SIZE, bin + 10, 12);
    return 0;
}

static bool name_ok(const char *s, size_t n)
{
    if (n < 1 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

void cursor_encode_name(const char *name, char out[CURSOR_MAX])
{
    uint8_t bin[2 + 32];
    size_t n = strnlen(name, 33);
    out[0] = '\0';
    if (!name_ok(name, n))
        return;
    bin[0] = CURSOR_VERSION;
    bin[1] = CURSOR_USERS;
    memcpy(bin + 2, name, n);
    encode(bin, 2 + n, out);
}

int cursor_decode_name(const char *s, char out[33], struct chat_err *err)
{
    uint8_t bin[CURSOR_MAX];
    int n = decode(s, CURSOR_USERS, bin, sizeof bin);
    if (n < 1 || !name_ok((const char *)bin + 2, (size_t)n))
        return bad(err);
    memcpy(out, bin + 2, (size_t)n);
    out[n] = '\0';
    return 0;
}

void cursor_encode_seq(int64_t seq, char out[CURSOR_MAX])
{
    uint8_t bin[2 + 8];
    out[0] = '\0';
    if (seq < 1)
        return;
    bin[0] = CURSOR_VERSION;
    bin[1] = CURSOR_MESSAGES;
    put_be64(bin + 2, (uint64_t)seq);
    encode(bin, sizeof bin, out);
}

int cursor_decode_seq(const char *s, int64_t *out, struct chat_err *err)
{
    uint8_t bin[CURSOR_MAX];
    if (decode(s, CURSOR_MESSAGES, bin, sizeof bin) != 8)
        return bad(err);
    uint64_t v = get_be64(bin + 2);
    /* seq 0 would mean "first page" to the store, and above INT64_MAX it
     * would turn negative: neither is a cursor we ever issue. */
    if (v < 1 || v > (uint64_t)INT64_MAX)
        return bad(err);
    *out = (int64_t)v;
    return 0;
}
