/* test_cursor.c - core/cursor.c: opaque cursors round-trip exactly, and any
 * string that is not a cursor of the expected kind is 422 field "before". */
#include <sodium.h>
#include <string.h>

#include "check.h"
#include "core/cursor.h"

static void expect_bad_key(int kind, const char *s)
{
    struct chat_err err = {0};
    struct page_key k;
    int rc = cursor_decode_key(kind, s, &k, &err);
    CHECK_EQ_INT(rc, CHAT_E_VALIDATION);
    CHECK_EQ_STR(err.field, "before");
    if (rc != CHAT_E_VALIDATION)
        fprintf(stderr, "  cursor \"%s\" was accepted\n", s ? s : "(null)");
}

static void test_key(void)
{
    struct chat_err err = {0};
    char cur[CURSOR_MAX];
    struct page_key in = {.ts = 1795862362123, .id = "6929b0da0123456789abcdef"}, out;

    cursor_encode_key(CURSOR_POSTS, &in, cur);
    CHECK_EQ_INT(strlen(cur), 30);
    for (const char *p = cur; *p; p++)
        CHECK(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p));
    memset(&out, 0, sizeof out);
    CHECK_EQ_INT(cursor_decode_key(CURSOR_POSTS, cur, &out, &err), 0);
    CHECK_EQ_INT(out.ts, in.ts);
    CHECK_EQ_STR(out.id, in.id);

    /* Edge timestamps survive. */
    struct page_key z = {.ts = 0, .id = "000000000000000000000000"};
    cursor_encode_key(CURSOR_CHATS, &z, cur);
    CHECK_EQ_INT(cursor_decode_key(CURSOR_CHATS, cur, &out, &err), 0);
    CHECK_EQ_INT(out.ts, 0);
    CHECK_EQ_STR(out.id, z.id);
    struct page_key neg = {.ts = -5, .id = "ffffffffffffffffffffffff"};
    cursor_encode_key(CURSOR_COMMENTS, &neg, cur);
    CHECK_EQ_INT(cursor_decode_key(CURSOR_COMMENTS, cur, &out, &err), 0);
    CHECK_EQ_INT(out.ts, -5);
    CHECK_EQ_STR(out.id, neg.id);

    /* A posts cursor is not a chats or comments cursor. */
    cursor_encode_key(CURSOR_POSTS, &in, cur);
    expect_bad_key(CURSOR_CHATS, cur);
    expect_bad_key(CURSOR_COMMENTS, cur);

    /* Malformed strings. */
    expect_bad_key(CURSOR_POSTS, NULL);
    expect_bad_key(CURSOR_POSTS, "");
    expect_bad_key(CURSOR_POSTS, "null");
    expect_bad_key(CURSOR_POSTS, "6929b0da0123456789abcdef");
    expect_bad_key(CURSOR_POSTS, "!!!!");
    char tmp[CURSOR_MAX + 8];
    strcpy(tmp, cur);
    strcat(tmp, "=");
    expect_bad_key(CURSOR_POSTS, tmp); /* padding */
    strcpy(tmp, cur);
    tmp[5] = '+';
    expect_bad_key(CURSOR_POSTS, tmp); /* standard alphabet */
    strcpy(tmp, cur);
    tmp[strlen(tmp) - 1] = '\0';
    expect_bad_key(CURSOR_POSTS, tmp); /* truncated */
    strcpy(tmp, cur);
    strcat(tmp, "AA");
    expect_bad_key(CURSOR_POSTS, tmp); /* extra bytes */
    strcpy(tmp, " ");
    strcat(tmp, cur);
    expect_bad_key(CURSOR_POSTS, tmp); /* whitespace */
    /* Non-zero trailing bits: a second spelling of the same bytes. */
    strcpy(tmp, cur);
    size_t n = strlen(tmp);
    tmp[n - 1] = tmp[n - 1] == 'A' ? 'B' : (char)(tmp[n - 1] + 1);
    expect_bad_key(CURSOR_POSTS, tmp);
    /* Wrong version byte. */
    uint8_t bin[22] = {2, CURSOR_POSTS};
    sodium_bin2base64(tmp, sizeof tmp, bin, sizeof bin, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    expect_bad_key(CURSOR_POSTS, tmp);
    bin[0] = CURSOR_VERSION;
    sodium_bin2base64(tmp, sizeof tmp, bin, sizeof bin, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    CHECK_EQ_INT(cursor_decode_key(CURSOR_POSTS, tmp, &out, &err), 0);
    /* Too long to be any cursor. */
    char huge[200];
    memset(huge, 'A', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    expect_bad_key(CURSOR_POSTS, huge);

    /* An invalid id encodes to "", which never decodes. */
    struct page_key badid = {.ts = 1, .id = "XYZ"};
    cursor_encode_key(CURSOR_POSTS, &badid, cur);
    CHECK_EQ_STR(cur, "");
}

static void test_name(void)
{
    struct chat_err err = {0};
    char cur[CURSOR_MAX], name[33];
    cursor_encode_name("alice_01", cur);
    CHECK(cur[0] != '\0');
    CHECK_EQ_INT(cursor_decode_name(cur, name, &err), 0);
    CHECK_EQ_STR(name, "alice_01");
    cursor_encode_name("abcdefghijklmnopqrstuvwxyz012345", cur);
    CHECK_EQ_INT(cursor_decode_name(cur, name, &err), 0);
    CHECK_EQ_STR(name, "abcdefghijklmnopqrstuvwxyz012345");
    /* Upper case is not a lower-cased name. */
    cursor_encode_name("Alice", cur);
    CHECK_EQ_STR(cur, "");
    /* Forged payloads are refused. */
    char tmp[CURSOR_MAX];
    uint8_t bin[8] = {CURSOR_VERSION, CURSOR_USERS, 'a', '%', 'b'};
    sodium_bin2base64(tmp, sizeof tmp, bin, 5, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    CHECK_EQ_INT(cursor_decode_name(tmp, name, &err), CHAT_E_VALIDATION);
    CHECK_EQ_STR(err.field, "before");
    sodium_bin2base64(tmp, sizeof tmp, bin, 2, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    CHECK_EQ_INT(cursor_decode_name(tmp, name, &err), CHAT_E_VALIDATION);
    struct page_key k = {.ts = 1, .id = "6929b0da0123456789abcdef"};
    cursor_encode_key(CURSOR_POSTS, &k, tmp);
    CHECK_EQ_INT(cursor_decode_name(tmp, name, &err), CHAT_E_VALIDATION);
}

static void test_seq(void)
{
    struct chat_err err = {0};
    char cur[CURSOR_MAX];
    int64_t seq = 0;
    cursor_encode_seq(42, cur);
    CHECK_EQ_INT(cursor_decode_seq(cur, &seq, &err), 0);
    CHECK_EQ_INT(seq, 42);
    cursor_encode_seq(INT64_MAX, cur);
    CHECK_EQ_INT(cursor_decode_seq(cur, &seq, &err), 0);
    CHECK_EQ_INT(seq, INT64_MAX);
    cursor_encode_seq(0, cur);
    CHECK_EQ_STR(cur, "");
    CHECK_EQ_INT(cursor_decode_seq("", &seq, &err), CHAT_E_VALIDATION);
    CHECK_EQ_INT(cursor_decode_seq("42", &seq, &err), CHAT_E_VALIDATION);
    CHECK_EQ_STR(err.field, "before");
    /* seq 0 and seq >= 2^63 are never issued. */
    char tmp[CURSOR_MAX];
    uint8_t bin[10] = {CURSOR_VERSION, CURSOR_MESSAGES};
    sodium_bin2base64(tmp, sizeof tmp, bin, sizeof bin, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    CHECK_EQ_INT(cursor_decode_seq(tmp, &seq, &err), CHAT_E_VALIDATION);
    bin[2] = 0x80;
    sodium_bin2base64(tmp, sizeof tmp, bin, sizeof bin, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    CHECK_EQ_INT(cursor_decode_seq(tmp, &seq, &err), CHAT_E_VALIDATION);
}

/* libsodium 1.0.18 decodes any byte >= 0x80 as a base64 character (0xFF
 * as '_'): a cursor with such a byte was a second spelling of a real one,
 * and read as some page instead of 422 (found by fuzz/fuzz_cursor.c). */
static void test_high_bytes(void)
{
    struct chat_err err = {0};
    char cur[CURSOR_MAX], name[33];
    int64_t seq = 0;
    struct page_key k = {.ts = 1795862362123, .id = "6929b0da0123456789abcdef"};

    cursor_encode_key(CURSOR_POSTS, &k, cur);
    for (int b = 0x80; b <= 0xFF; b += 0x3F) {
        char tmp[CURSOR_MAX];
        strcpy(tmp, cur);
        tmp[12] = (char)b;
        expect_bad_key(CURSOR_POSTS, tmp);
    }
    /* The fuzzer's input: a messages cursor spelled with 0xFF for '_'. */
    CHECK_EQ_INT(cursor_decode_seq("AQUAAAA\xff\xff\xff\xff" "AAA", &seq, &err), CHAT_E_VALIDATION);
    cursor_encode_seq(0x3fffffc000LL, cur);
    CHECK_EQ_STR(cur, "AQUAAAA____AAA");
    cursor_encode_name("alice_01", cur);
    cur[4] = (char)0xC3;
    CHECK_EQ_INT(cursor_decode_name(cur, name, &err), CHAT_E_VALIDATION);
}

int main(void)
{
    if (sodium_init() < 0)
        return 2;
    test_key();
    test_name();
    test_seq();
    test_high_bytes();
    return check_done();
}
