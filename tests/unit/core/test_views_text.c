/* test_views_text.c - views_message_text (core/views.c) against the object
 * path it replaces on the gateway's send path.
 *
 * What must hold: for every Message, the text is byte for byte
 * json_dumps(views_message(m, sender), JSON_COMPACT) - whatever its strings
 * hold (quotes, backslashes, control characters, U+2028, astral
 * characters, long texts), with and without the optional fields, edited or
 * deleted, any seq, with a sender (whose own strings need escaping) or
 * none; and a string that is not UTF-8 fails both ways. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/views.h"

static void check_same(const struct message *m, json_t *sender)
{
    json_t *o = views_message(m, sender);
    char *want = o ? json_dumps(o, JSON_COMPACT) : NULL;
    size_t len = 0;
    char *got = views_message_text(m, sender, &len);
    if (!want) {
        CHECK(got == NULL);
    } else {
        CHECK(got != NULL);
        if (got) {
            CHECK_EQ_STR(got, want);
            CHECK(len == strlen(want));
        }
    }
    free(want);
    free(got);
    json_decref(o);
}

static struct message base(void)
{
    struct message m = {0};
    snprintf(m.id, sizeof m.id, "%s", "65f0c1a2b3c4d5e6f7a8b9c0");
    snprintf(m.chat_id, sizeof m.chat_id, "%s", "65f0c1a2b3c4d5e6f7a8b9c1");
    snprintf(m.sender_id, sizeof m.sender_id, "%s", "65f0c1a2b3c4d5e6f7a8b9c2");
    m.seq = 1;
    m.created_at = 1765000000123;
    return m;
}

static json_t *author(const char *name, const char *avatar)
{
    return json_pack("{s:s, s:s, s:s, s:o}", "id", "65f0c1a2b3c4d5e6f7a8b9c2", "username", "ann",
                     "displayName", name, "avatarUrl", avatar ? json_string(avatar) : json_null());
}

static const char *texts[] = {
    "",
    "hello",
    "quote \" backslash \\ slash / tab \t newline \n cr \r",
    "\x01\x02\x1f control \x7f del",
    "caf\xc3\xa9 \xe2\x80\xa8 line sep \xe2\x80\xa9 para sep",
    "astral \xf0\x9f\x98\x80 emoji \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd",
    "<script>alert('x')</script> & \xef\xbb\xbf bom",
};

static void test_fields(void)
{
    json_t *plain = author("Ann", NULL);
    json_t *odd = author("A \"quoted\" \\ name \xe2\x80\xa8", "https://example.com/a.png?x=1&y=\"2\"");
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        for (int variant = 0; variant < 8; variant++) {
            struct message m = base();
            m.text = (char *)texts[i];
            m.attachment_url = variant & 1 ? "https://res.cloudinary.com/x/image/upload/v1/a b.png" : NULL;
            m.client_id = variant & 2 ? (char *)texts[(i + 1) % (sizeof texts / sizeof texts[0])] : NULL;
            m.edited_at = variant & 4 ? 1765000000999 : 0;
            m.deleted = variant == 7;
            m.seq = variant * 1000000007LL + (int64_t)i;
            check_same(&m, variant & 1 ? odd : plain);
            check_same(&m, NULL);
        }
    }
    json_decref(plain);
    json_decref(odd);
}

static void test_long_and_limits(void)
{
    json_t *a = author("Ann", NULL);
    /* A text far past the first buffer guess, full of escapes (each byte
     * may become six), so the writer must grow and dump again. */
    size_t n = 4000;
    char *t = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        t[i] = (char)(i % 3 == 0 ? '\x01' : i % 3 == 1 ? '"' : 'x');
    t[n] = '\0';
    struct message m = base();
    m.text = t;
    m.client_id = "c";
    check_same(&m, a);
    m.seq = INT64_MAX;
    m.created_at = 0;
    check_same(&m, a);
    m.text = NULL; /* "" as the view gives */
    check_same(&m, a);
    free(t);
    json_decref(a);
}

static void test_not_utf8(void)
{
    struct message m = base();
    m.text = "bad \xc3\x28 byte";
    size_t len = 0;
    CHECK(views_message(&m, NULL) == NULL);
    CHECK(views_message_text(&m, NULL, &len) == NULL);
    m.text = "ok";
    m.client_id = "\xff";
    CHECK(views_message_text(&m, NULL, &len) == NULL);
}

int main(void)
{
    test_fields();
    test_long_and_limits();
    test_not_utf8();
    return check_done();
}
