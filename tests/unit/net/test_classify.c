/* test_classify.c - net/classify.c: WebSocket upgrade or HTTP, from the
 * first bytes; every prefix of a handshake must ask for more bytes, and
 * malformed input must go to HTTP (never crash, never WS). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "net/classify.h"

static enum net_class cls(const char *s) { return net_classify(s, strlen(s)); }

static const char *ws_req =
    "GET /ws?token=abc HTTP/1.1\r\n"
    "Host: localhost:8080\r\n"
    "Connection: Upgrade\r\n"
    "Upgrade: websocket\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "\r\n";

static const char *sio_req =
    "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
    "Host: x\r\n"
    "upgrade:   h2c ,  WebSocket \r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "\r\n";

/* Every strict prefix of a WS handshake is MORE, the whole is WS. */
static void check_prefixes(const char *req, enum net_class whole)
{
    size_t n = strlen(req);
    int more = 0;
    for (size_t i = 0; i < n; i++)
        more += net_classify(req, i) == NET_CLASS_MORE;
    CHECK_EQ_INT(more, n);
    CHECK_EQ_INT(net_classify(req, n), whole);
}

static void test_ws(void)
{
    CHECK_EQ_INT(cls(ws_req), NET_CLASS_WS);
    CHECK_EQ_INT(cls(sio_req), NET_CLASS_WS);
    check_prefixes(ws_req, NET_CLASS_WS);
    check_prefixes(sio_req, NET_CLASS_WS);
    CHECK_EQ_INT(cls("GET /ws HTTP/1.1\nUpgrade: websocket\n\n"), NET_CLASS_WS);
    CHECK_EQ_INT(cls("\r\nGET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"), NET_CLASS_WS);
    /* Bytes after the head (a pipelined frame) do not matter. */
    CHECK_EQ_INT(cls("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n\x81\x85garbage"), NET_CLASS_WS);
}

static void test_http(void)
{
    /* Settled by the first bytes. */
    CHECK_EQ_INT(cls("P"), NET_CLASS_HTTP);
    CHECK_EQ_INT(cls("POST /api/auth/login HTTP/1.1\r\n"), NET_CLASS_HTTP);
    CHECK_EQ_INT(cls("GET /api/posts"), NET_CLASS_HTTP);
    CHECK_EQ_INT(cls("GET /w"), NET_CLASS_MORE);
    CHECK_EQ_INT(cls("GET /wx"), NET_CLASS_HTTP);
    CHECK_EQ_INT(cls("GET /ws/ HTTP/1.1\r\n"), NET_CLASS_HTTP);
    CHECK_EQ_INT(cls("GET /wss HTTP/1.1\r\n"), NET_CLASS_HTTP);
    CHECK_EQ_INT(cls("GET /socket.io HTTP/1.1\r\n"), NET_CLASS_HTTP);
    CHECK_EQ_INT(cls("GET /socket.iox"), NET_CLASS_HTTP);
    CHECK_EQ_INT(cls("get /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"), NET_CLASS_HTTP);
    CHECK_EQ_INT(cls("OPTIONS /ws HTTP/1.1\r\n"), NET_CLASS_HTTP);
    /* A gateway path without an upgrade is a plain request (MHD 404s it). */
    CHECK_EQ_INT(cls("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"), NET_CLASS_HTTP);
    CHECK_EQ_INT(cls("GET /ws HTTP/1.1\r\nUpgrade: h2c\r\n\r\n"), NET_CLASS_HTTP);
    CHECK_EQ_INT(cls("GET /ws HTTP/1.1\r\nUpgrade: websockets\r\n\r\n"), NET_CLASS_HTTP);
    CHECK_EQ_INT(cls("GET /ws HTTP/1.1\r\nX-Upgrade: websocket\r\n\r\n"), NET_CLASS_HTTP);
    CHECK_EQ_INT(cls("GET /ws HTTP/1.1\r\nUpgradeX: websocket\r\n\r\n"), NET_CLASS_HTTP);
    /* A folded continuation line is not an Upgrade header of its own. */
    CHECK_EQ_INT(cls("GET /ws HTTP/1.1\r\nX-A: b\r\n Upgrade: websocket\r\n\r\n"), NET_CLASS_HTTP);
}

static void test_malformed(void)
{
    CHECK_EQ_INT(net_classify("", 0), NET_CLASS_MORE);
    CHECK_EQ_INT(cls("\r\n\r\n"), NET_CLASS_MORE);
    CHECK_EQ_INT(net_classify("\0\0\0\0", 4), NET_CLASS_HTTP);
    CHECK_EQ_INT(net_classify("GET /ws\0 HTTP/1.1\r\n", 19), NET_CLASS_HTTP);
    CHECK_EQ_INT(net_classify("GET /w\0", 7), NET_CLASS_HTTP);
    CHECK_EQ_INT(cls("GET /ws\r\n"), NET_CLASS_HTTP);
    CHECK_EQ_INT(cls("GET /ws HTTP/2.0\r\n"), NET_CLASS_HTTP);
    CHECK_EQ_INT(cls("GET /ws HTTP/1.x\r\n"), NET_CLASS_HTTP);
    CHECK_EQ_INT(cls("GET /ws HTTP/1.1 extra\r\n"), NET_CLASS_HTTP);
    CHECK_EQ_INT(cls("GET /ws HTTP/1.1\r\nno colon here\r\n\r\n"), NET_CLASS_HTTP);
    CHECK_EQ_INT(net_classify("GET /ws HTTP/1.1\r\nUpgrade: web\0socket\r\n\r\n", 41), NET_CLASS_HTTP);
    CHECK_EQ_INT(cls("GET  /ws HTTP/1.1\r\n"), NET_CLASS_HTTP);
    CHECK_EQ_INT(cls("GET /ws HTTP/1.1\rX"), NET_CLASS_HTTP);
    /* An unfinished head stays MORE (the acceptor's size cap and timeout end it). */
    CHECK_EQ_INT(cls("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n"), NET_CLASS_MORE);
    CHECK_EQ_INT(cls("GET /socket.io/?EIO=4"), NET_CLASS_MORE);

    /* Random bytes: never WS, never a crash (ASan watches the reads). */
    unsigned seed = 12345;
    char buf[256];
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(rand_r(&seed) % sizeof buf);
        for (size_t k = 0; k < n; k++)
            buf[k] = (char)(rand_r(&seed) & 0xff);
        if (round % 2) /* half of them start like a handshake */
            memcpy(buf, "GET /ws HTTP/1.1\r\n", n < 18 ? n : 18);
        enum net_class c = net_classify(buf, n);
        /* Random headers never spell a complete Upgrade: websocket line. */
        CHECK(c == NET_CLASS_MORE || c == NET_CLASS_HTTP);
    }
}

static enum net_head head(const char *s) { return net_head_check(s, strlen(s), NULL); }

#define H "Host: x\r\n"

static void test_head_check(void)
{
    const char *why = NULL;
    CHECK_EQ_INT(head("POST /a HTTP/1.1\r\nHost: x\r\n"), NET_HEAD_MORE);
    CHECK_EQ_INT(head("POST /a HTTP/1.1\r\nContent-Length: -5\r\n"), NET_HEAD_MORE);
    CHECK_EQ_INT(head("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"), NET_HEAD_OK);
    CHECK_EQ_INT(head("POST /a HTTP/1.1\r\n" H "Content-Length: 12\r\n\r\n{\"text\":\"x\"}"), NET_HEAD_OK);
    CHECK_EQ_INT(head("POST /a HTTP/1.1\r\n" H "content-length:\t007 \r\n\r\n"), NET_HEAD_OK);
    CHECK_EQ_INT(head("POST /a HTTP/1.1\nHost: x\nContent-Length: 5\n\n"), NET_HEAD_OK);
    CHECK_EQ_INT(head("\r\nPOST /a HTTP/1.1\r\n" H "Content-Length: 5\r\n\r\n"), NET_HEAD_OK);
    CHECK_EQ_INT(head("POST /a HTTP/1.1\r\n" H "Content-Length: 18446744073709551615\r\n\r\n"), NET_HEAD_OK);
    CHECK_EQ_INT(head("POST /a HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"), NET_HEAD_OK);
    CHECK_EQ_INT(head("POST /a HTTP/1.1\r\n" H "Transfer-Encoding:  Chunked \r\n\r\n"), NET_HEAD_OK);
    CHECK_EQ_INT(head("GET /a HTTP/1.0\r\n\r\n"), NET_HEAD_OK); /* Host is optional on 1.0 */
    CHECK_EQ_INT(head("GET /a?x=%20 HTTP/1.1\r\n" H "X-A: caf\xc3\xa9\tb\r\nX-B:\r\n\r\n"), NET_HEAD_OK);
    /* Content-Length values */
    CHECK_EQ_INT(head("POST /a HTTP/1.1\r\n" H "Content-Length: -5\r\n\r\n"), NET_HEAD_BAD);
    CHECK_EQ_INT(head("POST /a HTTP/1.1\r\n" H "Content-Length: abc\r\n\r\n"), NET_HEAD_BAD);
    CHECK_EQ_INT(head("POST /a HTTP/1.1\r\n" H "Content-Length: +5\r\n\r\n"), NET_HEAD_BAD);
    CHECK_EQ_INT(head("POST /a HTTP/1.1\r\n" H "Content-Length: 5 5\r\n\r\n"), NET_HEAD_BAD);
    CHECK_EQ_INT(head("POST /a HTTP/1.1\r\n" H "Content-Length:\r\n\r\n"), NET_HEAD_BAD);
    CHECK_EQ_INT(head("POST /a HTTP/1.1\r\n" H "Content-Length: 0x10\r\n\r\n"), NET_HEAD_BAD);
    CHECK_EQ_INT(head("POST /a HTTP/1.1\r\n" H "Content-Length: 18446744073709551616\r\n\r\n"),
                 NET_HEAD_HUGE_LENGTH);
    CHECK_EQ_INT(head("POST /a HTTP/1.1\r\n" H "Content-Length: 99999999999999999999999\r\n\r\n"),
                 NET_HEAD_HUGE_LENGTH);
    /* ambiguous framing (issue 8, defect 4) */
    CHECK_EQ_INT(head("POST /a HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 5\r\n\r\n"), NET_HEAD_BAD);
    CHECK_EQ_INT(head("POST /a HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: x\r\n\r\n"), NET_HEAD_BAD);
    CHECK_EQ_INT(head("POST /a HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
                 NET_HEAD_BAD);
    CHECK_EQ_INT(head("POST /a HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n"), NET_HEAD_BAD);
    CHECK_EQ_INT(head("POST /a HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\n\r\n"), NET_HEAD_BAD);
    CHECK_EQ_INT(head("POST /a HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n"), NET_HEAD_BAD);
    static const char sp[] = "POST /a HTTP/1.1\r\n" H "Content-Length : 5\r\n\r\n";
    CHECK_EQ_INT(net_head_check(sp, sizeof sp - 1, &why), NET_HEAD_BAD);
    CHECK(why && strstr(why, "colon"));
    /* a 100 KiB chunk extension (defect 9); a short one is fine */
    static char ext[8192];
    int m = snprintf(ext, sizeof ext, "POST /a HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n2;");
    memset(ext + m, 'e', sizeof ext - (size_t)m);
    CHECK_EQ_INT(net_head_check(ext, sizeof ext, NULL), NET_HEAD_BAD);
    memcpy(ext + m + 10, "\r\n", 2);
    CHECK_EQ_INT(net_head_check(ext, sizeof ext, NULL), NET_HEAD_OK);
    /* header syntax */
    CHECK_EQ_INT(head("GET /a HTTP/1.1\r\n" H "Bad Name: v\r\n\r\n"), NET_HEAD_BAD);
    CHECK_EQ_INT(head("GET /a HTTP/1.1\r\n" H "X(a): v\r\n\r\n"), NET_HEAD_BAD);
    CHECK_EQ_INT(head("GET /a HTTP/1.1\r\n" H ": v\r\n\r\n"), NET_HEAD_BAD);
    CHECK_EQ_INT(head("GET /a HTTP/1.1\r\n" H "NoColon\r\n\r\n"), NET_HEAD_BAD);
    CHECK_EQ_INT(head("GET /a HTTP/1.1\r\n" H "X-A: a\x01" "b\r\n\r\n"), NET_HEAD_BAD);
    CHECK_EQ_INT(head("GET /a HTTP/1.1\r\n" H "X-A: a\x7f\r\n\r\n"), NET_HEAD_BAD);
    CHECK_EQ_INT(head("GET /a HTTP/1.1\r\n" H "X-A: a\rb\r\n\r\n"), NET_HEAD_BAD);
    CHECK_EQ_INT(head("GET /a HTTP/1.1\r\n" H "X-A: a\r\n folded\r\n\r\n"), NET_HEAD_BAD);
    static const char nul[] = "GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n";
    CHECK_EQ_INT(net_head_check(nul, sizeof nul - 1, NULL), NET_HEAD_BAD);
    /* Host */
    CHECK_EQ_INT(head("GET /a HTTP/1.1\r\n\r\n"), NET_HEAD_BAD);
    CHECK_EQ_INT(head("GET /a HTTP/1.1\r\nHost: x\r\nhost: y\r\n\r\n"), NET_HEAD_BAD);
    CHECK_EQ_INT(head("GET /a HTTP/1.0\r\nHost: x\r\nHost: x\r\n\r\n"), NET_HEAD_BAD);
    /* request lines */
    CHECK_EQ_INT(head("GET\t/a HTTP/1.1\r\n" H "\r\n"), NET_HEAD_BAD);
    CHECK_EQ_INT(head("GET /a\tHTTP/1.1\r\n" H "\r\n"), NET_HEAD_BAD);
    CHECK_EQ_INT(head("GET  /a HTTP/1.1\r\n" H "\r\n"), NET_HEAD_BAD);
    CHECK_EQ_INT(head("GET /a HTTP/1.1 \r\n" H "\r\n"), NET_HEAD_BAD);
    CHECK_EQ_INT(head("GET /a HTTP/2.0\r\n" H "\r\n"), NET_HEAD_BAD);
    CHECK_EQ_INT(head("GET /a\r\n" H "\r\n"), NET_HEAD_BAD);
    CHECK_EQ_INT(head("G(T /a HTTP/1.1\r\n" H "\r\n"), NET_HEAD_BAD);
    /* Not a header: a request line or a body that mentions it. */
    CHECK_EQ_INT(head("POST /Content-Length:x HTTP/1.1\r\n" H "\r\nContent-Length: x\r\n"), NET_HEAD_OK);
    CHECK_EQ_INT(head("POST /a HTTP/1.1\r\n" H "X-Content-Length: x\r\n\r\n"), NET_HEAD_OK);
    CHECK_EQ_INT(net_head_check("", 0, NULL), NET_HEAD_MORE);
    CHECK_EQ_INT(head("\r\n\r\n"), NET_HEAD_MORE);
    /* NET_HEAD_MAX: ended or not */
    static char big[NET_HEAD_MAX + 64];
    int bn = snprintf(big, sizeof big, "GET /a HTTP/1.1\r\n" H "X-Big: ");
    memset(big + bn, 'v', sizeof big - (size_t)bn);
    CHECK_EQ_INT(net_head_check(big, sizeof big, NULL), NET_HEAD_TOO_LARGE);
    memcpy(big + NET_HEAD_MAX - 8, "\r\n\r\n", 4);
    CHECK_EQ_INT(net_head_check(big, sizeof big, NULL), NET_HEAD_OK);
    memcpy(big + NET_HEAD_MAX - 8, "vvvv", 4);
    memcpy(big + NET_HEAD_MAX + 8, "\r\n\r\n", 4);
    CHECK_EQ_INT(net_head_check(big, sizeof big, NULL), NET_HEAD_TOO_LARGE);

    unsigned seed = 777;
    char buf[256];
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(rand_r(&seed) % sizeof buf);
        for (size_t k = 0; k < n; k++)
            buf[k] = "\r\n:Content-Lgth 0123456789xTE"[rand_r(&seed) % 30];
        enum net_head h = net_head_check(buf, n, &why);
        CHECK(h >= NET_HEAD_MORE && h <= NET_HEAD_TOO_LARGE);
        CHECK((h != NET_HEAD_MORE && h != NET_HEAD_OK) == (why != NULL));
    }
}

static int ws(const char *s) { return net_ws_check(s, strlen(s), NULL); }

#define WSREQ(ver, extra) "GET /ws " ver "\r\nHost: x\r\nUpgrade: websocket\r\n" extra "\r\n"
#define KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define CONN "Connection: keep-alive, Upgrade\r\n"
#define V13 "Sec-WebSocket-Version: 13\r\n"

static void test_ws_check(void)
{
    CHECK_EQ_INT(ws(WSREQ("HTTP/1.1", CONN V13 KEY)), 200);
    CHECK_EQ_INT(ws(WSREQ("HTTP/1.1", CONN V13)), 0 + 400);                 /* no key */
    CHECK_EQ_INT(ws(WSREQ("HTTP/1.1", CONN V13 KEY KEY)), 400);             /* two keys */
    CHECK_EQ_INT(ws(WSREQ("HTTP/1.1", CONN V13 "Sec-WebSocket-Key: abc\r\n")), 400);
    CHECK_EQ_INT(ws(WSREQ("HTTP/1.1", CONN V13 "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n")),
                 400);                                                          /* 21 bytes */
    CHECK_EQ_INT(ws(WSREQ("HTTP/1.1", V13 KEY)), 400);                      /* no Connection */
    CHECK_EQ_INT(ws(WSREQ("HTTP/1.1", "Connection: keep-alive\r\n" V13 KEY)), 400);
    CHECK_EQ_INT(ws(WSREQ("HTTP/1.0", CONN V13 KEY)), 400);
    CHECK_EQ_INT(ws(WSREQ("HTTP/1.1", CONN KEY)), 400);                     /* no version */
    CHECK_EQ_INT(ws(WSREQ("HTTP/1.1", CONN "Sec-WebSocket-Version: 12\r\n" KEY)), 426);
    CHECK_EQ_INT(ws(WSREQ("HTTP/1.1", CONN "Sec-WebSocket-Version: 99999999\r\n" KEY)), 426);
    CHECK_EQ_INT(ws(WSREQ("HTTP/1.1", CONN V13 V13 KEY)), 426);
    CHECK_EQ_INT(ws("GET /ws HTTP/1.1\r\nHost: x\r\n"), 0);                  /* incomplete */
}

int main(void)
{
    test_head_check();
    test_ws_check();
    test_ws();
    test_http();
    test_malformed();
    return check_done();
}
