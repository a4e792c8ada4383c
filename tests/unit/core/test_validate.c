/* test_validate.c - core/validate.c: trimming, code-point lengths, the
 * username, email and URL rules, limits, and the JSON field readers. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/validate.h"

/* Trims `in` and compares with `want`. */
static void check_trim(const char *in, const char *want)
{
    const char *s = in;
    size_t len = strlen(in);
    validate_trim(&s, &len);
    bool ok = len == strlen(want) && memcmp(s, want, len) == 0;
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "  trim(\"%s\") gave \"%.*s\", want \"%s\"\n", in, (int)len, s, want);
}

static void test_trim(void)
{
    check_trim("hello", "hello");
    check_trim("  hello  ", "hello");
    check_trim("\t\n\v\f\r hi \r\n", "hi");
    check_trim("", "");
    check_trim("   ", "");
    check_trim("a b", "a b");
    check_trim("\xC2\xA0x\xC2\xA0", "x");                 /* U+00A0 */
    check_trim("\xE3\x80\x80x y\xE3\x80\x80", "x y");     /* U+3000 */
    check_trim("\xEF\xBB\xBFx", "x");                     /* U+FEFF */
    check_trim("\xE2\x80\xA8x\xE2\x80\xA9", "x");         /* U+2028, U+2029 */
    check_trim("\xE2\x80\x80\xE2\x80\x8A" "x", "x");      /* U+2000, U+200A */
    check_trim("\xE2\x80\x8Bx", "\xE2\x80\x8Bx");         /* U+200B is not space */
    check_trim("\xC2\x85x", "x");                         /* U+0085 */
    check_trim("x\xE1\x9A\x80", "x");                     /* U+1680 */
    check_trim("\xC3\xA9 ", "\xC3\xA9");                  /* é kept */
    check_trim(" \xF0\x9F\x98\x80 ", "\xF0\x9F\x98\x80");  /* emoji kept */
    /* Invalid bytes stop the trim without reading out of bounds. */
    check_trim(" \x80 ", "\x80");
    check_trim("\xE3\x80", "\xE3\x80");
    check_trim("x\xA0", "x\xA0");
}

static void test_cp_len(void)
{
    CHECK_EQ_INT(validate_cp_len("", 0), 0);
    CHECK_EQ_INT(validate_cp_len("abc", 3), 3);
    CHECK_EQ_INT(validate_cp_len("\xC3\xA9", 2), 1);
    CHECK_EQ_INT(validate_cp_len("\xE2\x82\xAC", 3), 1);
    CHECK_EQ_INT(validate_cp_len("\xF0\x9F\x98\x80" "a", 5), 2);
}

static void test_username(void)
{
    CHECK(validate_username("abc"));
    CHECK(validate_username("Alice_99"));
    CHECK(validate_username("___"));
    CHECK(validate_username("abcdefghijklmnopqrstuvwxyz012345")); /* 32 */
    CHECK(!validate_username("abcdefghijklmnopqrstuvwxyz0123456")); /* 33 */
    CHECK(!validate_username("ab"));
    CHECK(!validate_username(""));
    CHECK(!validate_username("a b"));
    CHECK(!validate_username("al-ice"));
    CHECK(!validate_username("al.ice"));
    CHECK(!validate_username("\xC3\xA9t\xC3\xA9"));
    CHECK(!validate_username("alice@x"));
}

static void test_email(void)
{
    CHECK(validate_email("a@b.co"));
    CHECK(validate_email("first.last+tag@mail.example.com"));
    CHECK(validate_email("x@xn--p1ai.xn--p1ai"));
    CHECK(validate_email("user@sub-domain.example.org"));
    CHECK(!validate_email(""));
    CHECK(!validate_email("plain"));
    CHECK(!validate_email("@b.co"));
    CHECK(!validate_email("a@"));
    CHECK(!validate_email("a@b"));
    CHECK(!validate_email("a@b."));
    CHECK(!validate_email("a@.b.co"));
    CHECK(!validate_email("a@b..co"));
    CHECK(!validate_email("a@b.c"));
    CHECK(!validate_email("a@1.23"));
    CHECK(!validate_email("a@-b.co"));
    CHECK(!validate_email("a@b-.co"));
    CHECK(!validate_email("a@@b.co"));
    CHECK(!validate_email("a@b@c.co"));
    CHECK(!validate_email("a b@c.co"));
    CHECK(!validate_email(".a@b.co"));
    CHECK(!validate_email("a.@b.co"));
    CHECK(!validate_email("a..b@c.co"));
    CHECK(!validate_email("a@b_c.co"));
    CHECK(!validate_email("\xC3\xA9@b.co"));
    char local[80];
    memset(local, 'a', 64);
    strcpy(local + 64, "@b.co");
    CHECK(validate_email(local));
    memset(local, 'a', 65);
    strcpy(local + 65, "@b.co");
    CHECK(!validate_email(local));
    /* 254 bytes total is the maximum. */
    char big[300];
    strcpy(big, "a@");
    size_t n = 2;
    while (n < 240) {
        memcpy(big + n, "abcdefghi.", 10);
        n += 10;
    }
    CHECK_EQ_INT(n, 242);
    strcpy(big + n, "examples.com"); /* 254 */
    CHECK_EQ_INT(strlen(big), 254);
    CHECK(validate_email(big));
    strcpy(big + n, "examples.comx"); /* 255 */
    CHECK(!validate_email(big));
}

static void test_url(void)
{
    CHECK(validate_url("http://example.com"));
    CHECK(validate_url("https://example.com/a/b?c=d#e"));
    CHECK(validate_url("HTTPS://Example.com/x.png"));
    CHECK(validate_url("http://127.0.0.1:8080/uploads/a.png"));
    CHECK(validate_url("http://[::1]:80/"));
    CHECK(validate_url("http://user:pw@host/"));
    CHECK(validate_url("https://res.cloudinary.com/demo/image/upload/v1/sample.jpg"));
    CHECK(validate_url("https://example.com/caf\xC3\xA9"));
    CHECK(!validate_url(""));
    CHECK(!validate_url("example.com"));
    CHECK(!validate_url("ftp://example.com"));
    CHECK(!validate_url("javascript:alert(1)"));
    CHECK(!validate_url("data:image/png;base64,AAAA"));
    CHECK(!validate_url("http://"));
    CHECK(!validate_url("http:///path"));
    CHECK(!validate_url("http://user@/"));
    CHECK(!validate_url("http://:80/"));
    CHECK(!validate_url("http://host:/"));
    CHECK(!validate_url("http://host:0/"));
    CHECK(!validate_url("http://host:65536/"));
    CHECK(!validate_url("http://host:123456/"));
    CHECK(!validate_url("http://host:8a/"));
    CHECK(!validate_url("http://[]/"));
    CHECK(!validate_url("http://[::1/"));
    CHECK(!validate_url("http://[::1]x/"));
    CHECK(!validate_url("http://exa mple.com"));
    CHECK(!validate_url("http://example.com/\"onerror=x"));
    CHECK(!validate_url("http://example.com/<script>"));
    CHECK(!validate_url("http://example.com/\x01"));
    CHECK(!validate_url("http://example.com/\x7f"));
    CHECK(!validate_url("http//example.com"));

    char url[VALIDATE_URL_MAX + 2];
    strcpy(url, "http://e.com/");
    memset(url + 13, 'a', VALIDATE_URL_MAX - 13);
    url[VALIDATE_URL_MAX] = '\0';
    CHECK(validate_url(url));
    url[VALIDATE_URL_MAX] = 'a';
    url[VALIDATE_URL_MAX + 1] = '\0';
    CHECK(!validate_url(url));
}

static void test_limit_decimal(void)
{
    struct chat_err err = {0};
    int limit = 0;
    int64_t v = 0;
    CHECK_EQ_INT(validate_limit(NULL, &limit, &err), 0);
    CHECK_EQ_INT(limit, 20);
    CHECK_EQ_INT(validate_limit("1", &limit, &err), 0);
    CHECK_EQ_INT(limit, 1);
    CHECK_EQ_INT(validate_limit("100", &limit, &err), 0);
    CHECK_EQ_INT(limit, 100);
    CHECK_EQ_INT(validate_limit("050", &limit, &err), 0);
    CHECK_EQ_INT(limit, 50);
    const char *bad[] = {"0", "101", "", "-1", "+5", " 5", "5 ", "1e2", "abc", "99999999999999999999",
                         "10.0", "0x10", "1000"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        memset(&err, 0, sizeof err);
        CHECK_EQ_INT(validate_limit(bad[i], &limit, &err), CHAT_E_VALIDATION);
        CHECK_EQ_STR(err.field, "limit");
    }
    CHECK(validate_decimal("0", 18, &v) && v == 0);
    CHECK(validate_decimal("123456789012345678", 18, &v) && v == 123456789012345678LL);
    CHECK(!validate_decimal("1234567890123456789", 18, &v));
    CHECK(!validate_decimal("", 18, &v));
    CHECK(!validate_decimal(NULL, 18, &v));
    CHECK(!validate_decimal("-1", 18, &v));
}

static void test_fields(void)
{
    struct chat_err err = {0};
    char *out = (char *)"sentinel";
    json_t *body = json_pack("{s:s, s:i, s:n, s:s, s:s, s:s}", "text", "  hi  ", "num", 5, "nul",
                             "blank", " \t ", "long", "\xC3\xA9\xC3\xA9\xC3\xA9", "url",
                             " https://x.io/a ");

    CHECK_EQ_INT(validate_string_field(body, "text", VALIDATE_TRIM, 1, 10, &out, &err), 0);
    CHECK_EQ_STR(out, "hi");
    free(out);
    CHECK_EQ_INT(validate_string_field(body, "text", 0, 1, 10, &out, &err), 0);
    CHECK_EQ_STR(out, "  hi  ");
    free(out);
    /* Absent / null: fine when optional, an error when required. */
    CHECK_EQ_INT(validate_string_field(body, "missing", 0, 1, 10, &out, &err), 0);
    CHECK(out == NULL);
    CHECK_EQ_INT(validate_string_field(body, "nul", 0, 1, 10, &out, &err), 0);
    CHECK(out == NULL);
    CHECK_EQ_INT(validate_string_field(body, "missing", VALIDATE_REQUIRED, 1, 10, &out, &err),
                 CHAT_E_VALIDATION);
    CHECK_EQ_STR(err.field, "missing");
    CHECK_EQ_INT(validate_string_field(body, "nul", VALIDATE_REQUIRED, 1, 10, &out, &err),
                 CHAT_E_VALIDATION);
    CHECK_EQ_STR(err.field, "nul");
    /* Wrong type. */
    CHECK_EQ_INT(validate_string_field(body, "num", 0, 1, 10, &out, &err), CHAT_E_VALIDATION);
    CHECK_EQ_STR(err.field, "num");
    CHECK(out == NULL);
    /* Blank after trimming is empty. */
    CHECK_EQ_INT(validate_string_field(body, "blank", VALIDATE_TRIM, 1, 10, &out, &err),
                 CHAT_E_VALIDATION);
    CHECK_EQ_STR(err.field, "blank");
    /* Lengths count code points: 3 x é is 6 bytes but 3 characters. */
    CHECK_EQ_INT(validate_string_field(body, "long", 0, 3, 3, &out, &err), 0);
    CHECK_EQ_STR(out, "\xC3\xA9\xC3\xA9\xC3\xA9");
    free(out);
    CHECK_EQ_INT(validate_string_field(body, "long", 0, 1, 2, &out, &err), CHAT_E_VALIDATION);
    CHECK_EQ_INT(validate_string_field(body, "long", 0, 4, 9, &out, &err), CHAT_E_VALIDATION);
    /* An embedded U+0000 is refused. */
    json_object_set_new(body, "zero", json_stringn("a\0b", 3));
    CHECK_EQ_INT(validate_string_field(body, "zero", 0, 0, 10, &out, &err), CHAT_E_VALIDATION);
    CHECK_EQ_STR(err.field, "zero");

    /* URL fields: trimmed, blank is null, invalid is 422. */
    CHECK_EQ_INT(validate_url_field(body, "url", &out, &err), 0);
    CHECK_EQ_STR(out, "https://x.io/a");
    free(out);
    CHECK_EQ_INT(validate_url_field(body, "blank", &out, &err), 0);
    CHECK(out == NULL);
    CHECK_EQ_INT(validate_url_field(body, "nul", &out, &err), 0);
    CHECK(out == NULL);
    CHECK_EQ_INT(validate_url_field(body, "text", &out, &err), CHAT_E_VALIDATION);
    CHECK_EQ_STR(err.field, "text");
    CHECK_EQ_INT(validate_url_field(body, "num", &out, &err), CHAT_E_VALIDATION);
    CHECK_EQ_STR(err.field, "num");
    json_decref(body);
}

static void test_ascii_lower(void)
{
    char s[] = "MiXeD@Example.COM\xC3\x89";
    validate_ascii_lower(s);
    CHECK_EQ_STR(s, "mixed@example.com\xC3\x89");
}

int main(void)
{
    test_trim();
    test_cp_len();
    test_username();
    test_email();
    test_url();
    test_limit_decimal();
    test_fields();
    test_ascii_lower();
    return check_done();
}
