/* fuzz_cursor.c - pagination cursors (src/core/cursor.c).
 *
 * The input, as a `before` query value, goes through every decoder.  The
 * property cursor.c promises: decoding is strict, so a string that decodes
 * has exactly one spelling, and encoding what it decoded to gives the same
 * string back.  A bad cursor must be CHAT_E_VALIDATION with field "before"
 * (422), never a crash or a different page.  The same bytes, read as a
 * binary record (ts, id, name, seq), go the other way: encode, then decode
 * to the same values. */
#include "cursor.h"
#include "fuzz.h"

static const int key_kinds[] = {CURSOR_POSTS, CURSOR_COMMENTS, CURSOR_CHATS};

static void check_bad(int rc, const struct chat_err *err)
{
    FUZZ_CHECK(rc == CHAT_E_VALIDATION && err->code == rc && strcmp(err->field, "before") == 0);
}

static void decode_all(const char *s)
{
    char again[CURSOR_MAX];
    for (size_t i = 0; i < sizeof key_kinds / sizeof key_kinds[0]; i++) {
        struct page_key key;
        struct chat_err err = {0};
        int rc = cursor_decode_key(key_kinds[i], s, &key, &err);
        if (rc != 0) {
            check_bad(rc, &err);
            continue;
        }
        FUZZ_CHECK(oid_valid(key.id));
        cursor_encode_key(key_kinds[i], &key, again);
        FUZZ_CHECK(strcmp(again, s) == 0);
    }

    char name[33];
    struct chat_err err = {0};
    int rc = cursor_decode_name(s, name, &err);
    if (rc == 0) {
        cursor_encode_name(name, again);
        FUZZ_CHECK(strcmp(again, s) == 0);
    } else {
        check_bad(rc, &err);
    }

    int64_t seq = 0;
    struct chat_err err2 = {0};
    rc = cursor_decode_seq(s, &seq, &err2);
    if (rc == 0) {
        FUZZ_CHECK(seq >= 1);
        cursor_encode_seq(seq, again);
        FUZZ_CHECK(strcmp(again, s) == 0);
    } else {
        check_bad(rc, &err2);
    }
}

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* The input as a record: 8 bytes ts, 12 bytes id; or a name; or a seq. */
static void encode_all(const uint8_t *data, size_t size)
{
    char c[CURSOR_MAX];
    struct chat_err err = {0};
    if (size >= 20) {
        static const char hex[] = "0123456789abcdef";
        struct page_key key = {.ts = (int64_t)be64(data)}, back;
        for (int i = 0; i < 12; i++) {
            key.id[2 * i] = hex[data[8 + i] >> 4];
            key.id[2 * i + 1] = hex[data[8 + i] & 15];
        }
        key.id[OID_LEN] = '\0';
        cursor_encode_key(CURSOR_CHATS, &key, c);
        FUZZ_CHECK(cursor_decode_key(CURSOR_CHATS, c, &back, &err) == 0);
        FUZZ_CHECK(back.ts == key.ts && strcmp(back.id, key.id) == 0);
        FUZZ_CHECK(cursor_decode_key(CURSOR_POSTS, c, &back, &err) == CHAT_E_VALIDATION);
    }
    if (size >= 8) {
        int64_t seq = (int64_t)be64(data), back = 0;
        cursor_encode_seq(seq, c);
        if (seq >= 1)
            FUZZ_CHECK(cursor_decode_seq(c, &back, &err) == 0 && back == seq);
        else
            FUZZ_CHECK(c[0] == '\0');
    }
    char *name = fuzz_strdup(data, size < 40 ? size : 40), back[33];
    if (!name)
        return;
    cursor_encode_name(name, c);
    if (c[0])
        FUZZ_CHECK(cursor_decode_name(c, back, &err) == 0 && strcmp(back, name) == 0);
    free(name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_strdup(data, size);
    if (!s)
        return 0;
    decode_all(s);
    free(s);
    encode_all(data, size);
    return 0;
}
