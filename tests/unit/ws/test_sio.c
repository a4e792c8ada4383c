/* test_sio.c - the Engine.IO v4 / Socket.IO v5 codec of /socket.io/
 * (src/ws/sio.c): which client packets parse to what, which are refused
 * and how, and the exact bytes of every server packet. */
#include <string.h>

#include "check.h"
#include "ws/sio.h"

static int parse(const char *s, struct sio_packet *p)
{
    return sio_parse(s, strlen(s), p, NULL);
}

static void check_buf(struct ws_buf *b, const char *want)
{
    CHECK(b != NULL);
    if (!b)
        return;
    CHECK(b->flags & WS_BUF_SIO);
    CHECK_EQ_INT((long long)b->len, (long long)strlen(want));
    CHECK_EQ_STR((const char *)ws_buf_payload(b), want);
    ws__buf_unref(b);
}

static void test_engineio(void)
{
    struct sio_packet p;
    CHECK_EQ_INT(parse("3", &p), 0);
    CHECK_EQ_INT(p.kind, SIO_K_PONG);
    CHECK(!p.probe);
    sio_packet_cleanup(&p);
    CHECK_EQ_INT(parse("2probe", &p), 0);
    CHECK_EQ_INT(p.kind, SIO_K_PING);
    CHECK(p.probe);
    sio_packet_cleanup(&p);
    CHECK_EQ_INT(parse("1", &p), 0);
    CHECK_EQ_INT(p.kind, SIO_K_CLOSE);
    sio_packet_cleanup(&p);
    CHECK_EQ_INT(parse("5", &p), 0);
    CHECK_EQ_INT(p.kind, SIO_K_UPGRADE);
    sio_packet_cleanup(&p);
    CHECK_EQ_INT(parse("6", &p), 0);
    CHECK_EQ_INT(p.kind, SIO_K_NOOP);
    sio_packet_cleanup(&p);
    static const char *bad[] = {"", "0", "7", "x", "3junk", "2prob", "4", "47", "44{}", "4x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = NULL;
        CHECK_EQ_INT(sio_parse(bad[i], strlen(bad[i]), &p, &why), SIO_E_PACKET);
        CHECK(why != NULL);
        sio_packet_cleanup(&p);
    }
}

static void test_connect(void)
{
    struct sio_packet p;
    CHECK_EQ_INT(parse("40", &p), 0);
    CHECK_EQ_INT(p.kind, SIO_K_CONNECT);
    CHECK(sio_connect_token(&p) == NULL);
    sio_packet_cleanup(&p);
    CHECK_EQ_INT(parse("40{\"token\":\"abc\"}", &p), 0);
    CHECK_EQ_STR(sio_connect_token(&p), "abc");
    sio_packet_cleanup(&p);
    CHECK_EQ_INT(parse("40/,{\"token\":\"abc\"}", &p), 0); /* "/" written out */
    CHECK_EQ_STR(sio_connect_token(&p), "abc");
    sio_packet_cleanup(&p);
    CHECK_EQ_INT(parse("40{\"token\":5}", &p), 0);
    CHECK(sio_connect_token(&p) == NULL);
    sio_packet_cleanup(&p);
    /* another namespace: reported with the namespace to echo */
    const char *why = NULL;
    CHECK_EQ_INT(sio_parse("40/admin,{\"token\":\"t\"}", 22, &p, &why), SIO_E_NAMESPACE);
    CHECK_EQ_INT(p.kind, SIO_K_CONNECT);
    CHECK_EQ_INT((long long)p.nsp_len, 6);
    CHECK(memcmp(p.nsp, "/admin", 6) == 0);
    CHECK_EQ_STR(why, "Invalid namespace");
    sio_packet_cleanup(&p);
    CHECK_EQ_INT(parse("40/admin", &p), SIO_E_NAMESPACE);
    sio_packet_cleanup(&p);
    static const char *bad[] = {"40[1]", "40\"t\"", "40{", "405{}", "41{}", "41x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(parse(bad[i], &p), SIO_E_PACKET);
        sio_packet_cleanup(&p);
    }
    CHECK_EQ_INT(parse("41", &p), 0);
    CHECK_EQ_INT(p.kind, SIO_K_DISCONNECT);
    sio_packet_cleanup(&p);
}

static void test_event(void)
{
    struct sio_packet p;
    CHECK_EQ_INT(parse("42[\"typing\",{\"chatId\":\"x\"}]", &p), 0);
    CHECK_EQ_INT(p.kind, SIO_K_EVENT);
    CHECK_EQ_INT(p.ack_id, -1);
    CHECK_EQ_STR(p.event, "typing");
    json_t *f = sio_event_frame(&p, NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(f, "type")), "typing");
    CHECK_EQ_STR(json_string_value(json_object_get(f, "chatId")), "x");
    json_decref(f);
    sio_packet_cleanup(&p);

    CHECK_EQ_INT(parse("4212[\"message.send\",{\"type\":\"evil\",\"clientId\":\"c\"}]", &p), 0);
    CHECK_EQ_INT(p.ack_id, 12);
    f = sio_event_frame(&p, NULL); /* the event name wins over a "type" field */
    CHECK_EQ_STR(json_string_value(json_object_get(f, "type")), "message.send");
    json_decref(f);
    sio_packet_cleanup(&p);

    CHECK_EQ_INT(parse("42/,7[\"ping\"]", &p), 0);
    CHECK_EQ_INT(p.ack_id, 7);
    CHECK(p.arg == NULL);
    f = sio_event_frame(&p, NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(f, "type")), "ping");
    CHECK_EQ_INT((long long)json_object_size(f), 1);
    json_decref(f);
    sio_packet_cleanup(&p);

    const char *why = NULL;
    CHECK_EQ_INT(parse("42[\"read\",5]", &p), 0);
    CHECK(sio_event_frame(&p, &why) == NULL);
    CHECK(why != NULL);
    sio_packet_cleanup(&p);

    static const char *bad[] = {"42", "42[]", "42[1]", "42{}", "42[\"x\"", "421234567890123456[\"x\"]",
                                "43[1]", "43", "42[\"x\"]]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(parse(bad[i], &p), SIO_E_PACKET);
        sio_packet_cleanup(&p);
    }
    CHECK_EQ_INT(parse("433[\"ok\"]", &p), 0);
    CHECK_EQ_INT(p.kind, SIO_K_ACK);
    CHECK_EQ_INT(p.ack_id, 3);
    sio_packet_cleanup(&p);
    CHECK_EQ_INT(parse("42/chat,[\"x\"]", &p), SIO_E_NAMESPACE);
    sio_packet_cleanup(&p);
    /* never reads past len: a complete packet followed by garbage */
    CHECK_EQ_INT(sio_parse("42[\"x\"]GARBAGE", 7, &p, NULL), 0);
    sio_packet_cleanup(&p);
}

static void test_binary(void)
{
    struct sio_packet p;
    const char *why = NULL;
    const char *s = "451-[\"x\",{\"_placeholder\":true,\"num\":0}]";
    CHECK_EQ_INT(sio_parse(s, strlen(s), &p, &why), SIO_E_BINARY);
    CHECK_EQ_INT(p.attachments, 1);
    CHECK_EQ_STR(why, "binary attachments are not supported");
    sio_packet_cleanup(&p);
    CHECK_EQ_INT(parse("462-/,3[]", &p), SIO_E_BINARY);
    CHECK_EQ_INT(p.attachments, 2);
    sio_packet_cleanup(&p);
    static const char *bad[] = {"45", "45-[]", "451[]", "45999-[]", "45x-[]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(parse(bad[i], &p), SIO_E_PACKET);
        sio_packet_cleanup(&p);
    }
}

static void test_server_packets(void)
{
    check_buf(sio_open_buf("abc", 25000, 20000, 65536),
              "0{\"sid\":\"abc\",\"upgrades\":[],\"pingInterval\":25000,\"pingTimeout\":20000,"
              "\"maxPayload\":65536}");
    check_buf(sio_connect_buf("s1"), "40{\"sid\":\"s1\"}");
    check_buf(sio_connect_error_buf("/", 1, "unauthorized"), "44{\"message\":\"unauthorized\"}");
    check_buf(sio_connect_error_buf("/admin", 6, "Invalid namespace"),
              "44/admin,{\"message\":\"Invalid namespace\"}");
    check_buf(sio_raw_buf("2"), "2");
}

static void check_event(const char *frame, const char *want)
{
    struct ws_buf *b = sio_event_buf(frame, strlen(frame), WS_BUF_EPHEMERAL);
    CHECK(b && (b->flags & WS_BUF_EPHEMERAL));
    check_buf(b, want);
}

static void test_event_form(void)
{
    /* the gateway's own frames: rewritten without a parse */
    check_event("{\"type\":\"pong\"}", "42[\"pong\",{}]");
    check_event("{\"type\":\"typing\",\"chatId\":\"c\",\"userId\":\"u\"}",
                "42[\"typing\",{\"chatId\":\"c\",\"userId\":\"u\"}]");
    /* anything else: parsed, "type" removed */
    check_event("{\"a\":[1,{\"b\":2}],\"type\":\"x\"}", "42[\"x\",{\"a\":[1,{\"b\":2}]}]");
    check_event("{\"type\":\"a\\\"b\",\"n\":1}", "42[\"a\\\"b\",{\"n\":1}]");
    CHECK(sio_event_buf("[1]", 3, 0) == NULL);
    CHECK(sio_event_buf("{\"type\":1}", 10, 0) == NULL);
    CHECK(sio_event_buf("{\"type\":\"x\"", 11, 0) == NULL);
}

static void test_acks(void)
{
    char cid[65];
    const char *ack = "{\"type\":\"message.ack\",\"clientId\":\"c1\",\"message\":{\"id\":\"m\"}}";
    const char *err = "{\"type\":\"error\",\"code\":\"validation_failed\",\"message\":\"bad\","
                      "\"field\":\"text\",\"clientId\":\"c2\"}";
    const char *err2 = "{\"type\":\"error\",\"code\":\"not_found\",\"message\":\"no\"}";
    CHECK(sio_frame_is_answer(ack, strlen(ack), cid));
    CHECK_EQ_STR(cid, "c1");
    CHECK(sio_frame_is_answer(err, strlen(err), cid));
    CHECK_EQ_STR(cid, "c2");
    CHECK(sio_frame_is_answer(err2, strlen(err2), cid));
    CHECK_EQ_STR(cid, "");
    const char *other = "{\"type\":\"message.new\",\"message\":{}}";
    CHECK(!sio_frame_is_answer(other, strlen(other), cid));
    check_buf(sio_ack_buf(5, ack, strlen(ack)),
              "435[{\"clientId\":\"c1\",\"message\":{\"id\":\"m\"}}]");
    check_buf(sio_ack_buf(0, err, strlen(err)),
              "430[{\"error\":{\"code\":\"validation_failed\",\"message\":\"bad\",\"field\":\"text\"}}]");
    check_buf(sio_ack_buf(12, err2, strlen(err2)),
              "4312[{\"error\":{\"code\":\"not_found\",\"message\":\"no\"}}]");
    CHECK(sio_ack_buf(1, other, strlen(other)) == NULL);
}

static void test_shared_alt(void)
{
    /* the EVENT form hangs off the plain buffer and dies with it */
    struct ws_buf *b = ws__buf_new("{\"type\":\"pong\"}", 15, 0);
    CHECK(b && b->alt == NULL);
    b->alt = sio_event_buf((const char *)ws_buf_payload(b), b->len, 0);
    CHECK(b->alt != NULL);
    ws__buf_ref(b->alt);
    struct ws_buf *alt = b->alt;
    ws__buf_unref(b); /* frees b, drops its reference to alt */
    CHECK_EQ_INT(alt->refs, 1);
    ws__buf_unref(alt);
}

int main(void)
{
    test_engineio();
    test_connect();
    test_event();
    test_binary();
    test_server_packets();
    test_event_form();
    test_acks();
    test_shared_alt();
    return check_done();
}
