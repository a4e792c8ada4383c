/* test_ws_frames.c - the gateway's frame rules (src/ws/frames.c): what is
 * bad_request, what is validation_failed and with which field, what core
 * receives, the error frame's shape, and the shared outbound buffer. */
#include <string.h>

#include "check.h"
#include "ws/ws_internal.h"

static int parse(const char *s, struct ws_frame *f, struct chat_err *err)
{
    memset(err, 0, sizeof *err);
    return ws__frame_parse(s, strlen(s), f, err);
}

static void test_bad_request(void)
{
    static const char *bad[] = {
        "", "not json", "[1,2]", "\"str\"", "42", "{}", "{\"type\":7}", "{\"type\":null}",
        "{\"type\":\"nope\"}", "{\"type\":\"ping\"} trailing", "{\"type\":\"ping\",\"type\":\"ping\"}",
        "{\"type\":\"ping\"", "{\"type\":\"PING\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ws_frame f;
        struct chat_err err;
        int rc = parse(bad[i], &f, &err);
        CHECK_EQ_INT(rc, CHAT_E_BAD_REQUEST);
        CHECK_EQ_INT(err.code, CHAT_E_BAD_REQUEST);
        CHECK(err.field == NULL);
        ws__frame_cleanup(&f);
    }
    /* Bytes past `len` are never read: a prefix that is complete JSON. */
    struct ws_frame f;
    struct chat_err err = {0};
    const char *s = "{\"type\":\"ping\"}GARBAGE";
    CHECK_EQ_INT(ws__frame_parse(s, 15, &f, &err), 0);
    CHECK_EQ_INT(f.type, WS_F_PING);
    ws__frame_cleanup(&f);
    /* Invalid UTF-8 is malformed JSON. */
    CHECK_EQ_INT(ws__frame_parse("{\"type\":\"p\xffng\"}", 15, &f, &err), CHAT_E_BAD_REQUEST);
    ws__frame_cleanup(&f);
}

static void test_auth(void)
{
    struct ws_frame f;
    struct chat_err err;
    CHECK_EQ_INT(parse("{\"type\":\"auth\",\"token\":\"abc\"}", &f, &err), 0);
    CHECK_EQ_INT(f.type, WS_F_AUTH);
    CHECK_EQ_STR(f.token, "abc");
    ws__frame_cleanup(&f);
    CHECK_EQ_INT(parse("{\"type\":\"auth\",\"token\":5}", &f, &err), CHAT_E_VALIDATION);
    CHECK_EQ_STR(err.field, "token");
    ws__frame_cleanup(&f);
    CHECK_EQ_INT(parse("{\"type\":\"auth\"}", &f, &err), CHAT_E_VALIDATION);
    ws__frame_cleanup(&f);
}

static void test_send(void)
{
    struct ws_frame f;
    struct chat_err err;
    CHECK_EQ_INT(parse("{\"type\":\"message.send\",\"chatId\":\"c1\",\"text\":\"hi\","
                       "\"clientId\":\"k1\",\"extra\":1}", &f, &err), 0);
    CHECK_EQ_INT(f.type, WS_F_SEND);
    CHECK_EQ_STR(f.chat_id, "c1");
    CHECK_EQ_STR(f.client_id, "k1");
    /* core gets the parsed frame itself (it ignores fields it does not know) */
    CHECK_EQ_INT(json_object_size(f.body), 5);
    CHECK_EQ_STR(json_string_value(json_object_get(f.body, "text")), "hi");
    CHECK_EQ_STR(json_string_value(json_object_get(f.body, "clientId")), "k1");
    ws__frame_cleanup(&f);

    /* wrong types pass through to core, which answers like REST */
    CHECK_EQ_INT(parse("{\"type\":\"message.send\",\"chatId\":\"c1\",\"text\":5,"
                       "\"attachmentUrl\":null}", &f, &err), 0);
    CHECK(json_is_integer(json_object_get(f.body, "text")));
    CHECK(json_is_null(json_object_get(f.body, "attachmentUrl")));
    CHECK(json_object_get(f.body, "clientId") == NULL);
    CHECK(f.client_id == NULL);
    ws__frame_cleanup(&f);

    /* no chatId: validation_failed on chatId, clientId kept for the echo */
    CHECK_EQ_INT(parse("{\"type\":\"message.send\",\"text\":\"x\",\"clientId\":\"k2\"}", &f, &err),
                 CHAT_E_VALIDATION);
    CHECK_EQ_STR(err.field, "chatId");
    CHECK_EQ_STR(f.client_id, "k2");
    ws__frame_cleanup(&f);
    CHECK_EQ_INT(parse("{\"type\":\"message.send\",\"chatId\":[],\"clientId\":3}", &f, &err),
                 CHAT_E_VALIDATION);
    CHECK(f.client_id == NULL);
    ws__frame_cleanup(&f);
}

static void test_typing_read_ping(void)
{
    struct ws_frame f;
    struct chat_err err;
    CHECK_EQ_INT(parse("{\"type\":\"typing\",\"chatId\":\"c\"}", &f, &err), 0);
    CHECK_EQ_INT(f.type, WS_F_TYPING);
    ws__frame_cleanup(&f);
    CHECK_EQ_INT(parse("{\"type\":\"typing\"}", &f, &err), CHAT_E_VALIDATION);
    CHECK_EQ_STR(err.field, "chatId");
    ws__frame_cleanup(&f);

    CHECK_EQ_INT(parse("{\"type\":\"read\",\"chatId\":\"c\",\"messageId\":\"m\"}", &f, &err), 0);
    CHECK_EQ_INT(f.type, WS_F_READ);
    CHECK_EQ_STR(json_string_value(json_object_get(f.body, "messageId")), "m");
    CHECK_EQ_INT(json_object_size(f.body), 3);
    ws__frame_cleanup(&f);
    CHECK_EQ_INT(parse("{\"type\":\"read\",\"chatId\":\"c\"}", &f, &err), 0);
    CHECK(json_object_get(f.body, "messageId") == NULL); /* core answers messageId */
    ws__frame_cleanup(&f);

    CHECK_EQ_INT(parse("{\"type\":\"ping\",\"x\":[1]}", &f, &err), 0);
    CHECK_EQ_INT(f.type, WS_F_PING);
    ws__frame_cleanup(&f);
}

static void test_sync(void)
{
    struct ws_frame f;
    struct chat_err err;
    CHECK_EQ_INT(parse("{\"type\":\"sync\",\"chats\":{\"aaaaaaaaaaaaaaaaaaaaaaaa\":3,"
                       "\"not-an-id\":1,\"bbbbbbbbbbbbbbbbbbbbbbbb\":0}}", &f, &err), 0);
    CHECK_EQ_INT(f.type, WS_F_SYNC);
    CHECK_EQ_INT(f.n_sync, 2);
    if (f.n_sync == 2) {
        CHECK_EQ_STR(f.sync[0].chat_id, "aaaaaaaaaaaaaaaaaaaaaaaa");
        CHECK_EQ_INT(f.sync[0].after_seq, 3);
        CHECK_EQ_STR(f.sync[1].chat_id, "bbbbbbbbbbbbbbbbbbbbbbbb");
        CHECK_EQ_INT(f.sync[1].after_seq, 0);
    }
    ws__frame_cleanup(&f);

    CHECK_EQ_INT(parse("{\"type\":\"sync\",\"chats\":{}}", &f, &err), 0);
    CHECK_EQ_INT(f.n_sync, 0);
    ws__frame_cleanup(&f);

    static const char *bad[] = {
        "{\"type\":\"sync\"}",
        "{\"type\":\"sync\",\"chats\":[]}",
        "{\"type\":\"sync\",\"chats\":{\"aaaaaaaaaaaaaaaaaaaaaaaa\":-1}}",
        "{\"type\":\"sync\",\"chats\":{\"aaaaaaaaaaaaaaaaaaaaaaaa\":1.5}}",
        "{\"type\":\"sync\",\"chats\":{\"aaaaaaaaaaaaaaaaaaaaaaaa\":\"3\"}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(parse(bad[i], &f, &err), CHAT_E_VALIDATION);
        CHECK_EQ_STR(err.field, "chats");
        ws__frame_cleanup(&f);
    }

    /* more than WS_SYNC_MAX_CHATS entries */
    json_t *chats = json_object();
    char key[OID_SIZE];
    for (int i = 0; i <= WS_SYNC_MAX_CHATS; i++) {
        snprintf(key, sizeof key, "%024x", i);
        json_object_set_new(chats, key, json_integer(1));
    }
    json_t *root = json_pack("{s:s, s:o}", "type", "sync", "chats", chats);
    char *s = json_dumps(root, JSON_COMPACT);
    CHECK_EQ_INT(parse(s, &f, &err), CHAT_E_VALIDATION);
    ws__frame_cleanup(&f);
    free(s);
    json_decref(root);
}

static void test_error_frame(void)
{
    json_t *e = ws__frame_error(CHAT_E_VALIDATION, "text is too long", "text", "k9");
    CHECK_EQ_STR(json_string_value(json_object_get(e, "type")), "error");
    CHECK_EQ_STR(json_string_value(json_object_get(e, "code")), "validation_failed");
    CHECK_EQ_STR(json_string_value(json_object_get(e, "message")), "text is too long");
    CHECK_EQ_STR(json_string_value(json_object_get(e, "field")), "text");
    CHECK_EQ_STR(json_string_value(json_object_get(e, "clientId")), "k9");
    json_decref(e);

    /* field only for validation_failed; default message; no clientId */
    e = ws__frame_error(CHAT_E_NOT_FOUND, NULL, "chatId", NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(e, "code")), "not_found");
    CHECK(json_object_get(e, "field") == NULL);
    CHECK(json_object_get(e, "clientId") == NULL);
    CHECK(json_string_length(json_object_get(e, "message")) > 0);
    CHECK_EQ_INT(json_object_size(e), 3);
    json_decref(e);

    e = ws__frame_error(CHAT_E_RATE_LIMITED, "", NULL, "c");
    CHECK_EQ_STR(json_string_value(json_object_get(e, "code")), "rate_limited");
    CHECK(json_string_length(json_object_get(e, "message")) > 0);
    json_decref(e);
}

static void test_buffers(void)
{
    struct ws_buf *b = ws__buf_new("{\"a\":1}", 7, 0);
    CHECK(b != NULL);
    CHECK_EQ_INT(b->len, 7);
    CHECK_EQ_INT(b->refs, 1);
    CHECK(memcmp(ws_buf_payload(b), "{\"a\":1}", 8) == 0); /* NUL-terminated */
    ws__buf_ref(b);
    CHECK_EQ_INT(b->refs, 2);
    ws__buf_unref(b);
    ws__buf_unref(b);
    ws__buf_unref(NULL);

    json_t *j = json_pack("{s:s, s:s, s:b}", "type", "presence", "userId", "u", "online", 1);
    b = ws__buf_from_json(j, WS_BUF_EPHEMERAL);
    json_decref(j);
    CHECK(b && strcmp((char *)ws_buf_payload(b), "{\"type\":\"presence\",\"userId\":\"u\",\"online\":true}") == 0);
    CHECK(b && b->flags == WS_BUF_EPHEMERAL);
    ws__buf_unref(b);

    const char *typing = "{\"type\":\"typing\",\"chatId\":\"c\",\"userId\":\"u\"}";
    const char *pres = "{\"type\":\"presence\",\"userId\":\"u\",\"online\":false}";
    const char *msg = "{\"type\":\"message.new\",\"message\":{}}";
    CHECK(ws__frame_is_ephemeral(typing, strlen(typing)));
    CHECK(ws__frame_is_ephemeral(pres, strlen(pres)));
    CHECK(!ws__frame_is_ephemeral(msg, strlen(msg)));
    CHECK(!ws__frame_is_ephemeral("{\"type\":\"typ", 12));
    CHECK(!ws__frame_is_ephemeral("", 0));
    const char *chat_new = "{\"type\":\"chat.new\",\"chat\":{}}";
    CHECK(ws__frame_is_chat_new(chat_new, strlen(chat_new)));
    CHECK(!ws__frame_is_chat_new(msg, strlen(msg)));
    CHECK(!ws__frame_is_chat_new(chat_new, 12)); /* cut before the type ends */
    CHECK(!ws__frame_is_chat_new("", 0));
}

static bool utf8(const char *s, size_t n)
{
    return ws__utf8_valid((const unsigned char *)s, n);
}

static void test_utf8(void)
{
    CHECK(utf8("", 0));
    CHECK(utf8("plain ascii", 11));
    CHECK(utf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9)); /* e-acute, euro, emoji */
    CHECK(utf8("\xed\x9f\xbf", 3));                         /* U+D7FF */
    CHECK(utf8("\xf4\x8f\xbf\xbf", 4));                     /* U+10FFFF */
    CHECK(!utf8("\xff", 1));
    CHECK(!utf8("\x80", 1));                                 /* lone continuation */
    CHECK(!utf8("\xc0\xaf", 2));                             /* overlong "/" */
    CHECK(!utf8("\xc1\xbf", 2));
    CHECK(!utf8("\xe0\x9f\xbf", 3));                         /* overlong */
    CHECK(!utf8("\xed\xa0\x80", 3));                         /* surrogate U+D800 */
    CHECK(!utf8("\xf0\x8f\xbf\xbf", 4));                     /* overlong */
    CHECK(!utf8("\xf4\x90\x80\x80", 4));                     /* above U+10FFFF */
    CHECK(!utf8("\xf5\x80\x80\x80", 4));
    CHECK(!utf8("\xe2\x82", 2));                             /* cut short */
    CHECK(!utf8("a\xc3", 2));
    CHECK(!utf8("\xc3\x28", 2));                             /* bad continuation */
    CHECK(!utf8("\xe2\x28\xa1", 3));
}

static int close_check(unsigned code, const char *reason)
{
    unsigned char p[64] = {(unsigned char)(code >> 8), (unsigned char)code};
    size_t n = strlen(reason);
    memcpy(p + 2, reason, n);
    return ws__close_check(p, 2 + n);
}

static void test_close_payload(void)
{
    CHECK_EQ_INT(ws__close_check(NULL, 0), 0);
    CHECK_EQ_INT(ws__close_check((const unsigned char *)"\x03", 1), WS_CLOSE_PROTOCOL);
    static const unsigned good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                                    3000, 4000, 4999};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        CHECK_EQ_INT(close_check(good[i], "bye"), 0);
    static const unsigned bad[] = {0, 999, 1004, 1005, 1006, 1012, 1015, 1016, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_INT(close_check(bad[i], ""), WS_CLOSE_PROTOCOL);
    CHECK_EQ_INT(close_check(1000, "\xc3\xa9t\xc3\xa9"), 0);
    CHECK_EQ_INT(close_check(1000, "\xff\xfe"), WS_CLOSE_BAD_DATA);
    CHECK_EQ_INT(close_check(5000, "\xff"), WS_CLOSE_PROTOCOL); /* the code first */
}

int main(void)
{
    test_bad_request();
    test_auth();
    test_send();
    test_typing_read_ping();
    test_sync();
    test_error_frame();
    test_buffers();
    test_utf8();
    test_close_payload();
    return check_done();
}
