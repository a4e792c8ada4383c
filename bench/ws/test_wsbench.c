/* test_wsbench.c - checks the load generator's own pieces.
 *
 * A benchmark that miscounts or misframes produces confident wrong figures,
 * so the framing is tested against a hand-driven loopback peer (what the
 * client sends must be masked correctly; what the server sends, fragmented or
 * not, must come out whole), the skimmer against nested and escaped JSON, and
 * the histogram's quantiles against known data. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "../../tests/check.h"
#include "hist.h"
#include "skim.h"
#include "wsconn.h"

static void test_skim(void)
{
    const char *v;
    size_t n;
    const char *a = "{\"type\":\"message.ack\",\"clientId\":\"3-123\",\"message\":{\"id\":\"x\",\"type\":\"inner\","
                    "\"text\":\"t55\",\"sender\":{\"username\":\"a\\\"b\"}}}";
    CHECK(skim_is(a, strlen(a), "type", 1, "message.ack"));
    CHECK(skim_is(a, strlen(a), "type", 2, "inner"));
    CHECK(skim_is(a, strlen(a), "text", 2, "t55"));
    CHECK(!skim_get(a, strlen(a), "text", 1, &v, &n));
    CHECK(skim_get(a, strlen(a), "username", 0, &v, &n) && n == 4 && memcmp(v, "a\\\"b", 4) == 0);
    CHECK(skim_get(a, strlen(a), "message", 1, &v, &n) && v[0] == '{' && v[n - 1] == '}');

    /* A key-like string inside a value, arrays, spaces, a number. */
    const char *b = "{ \"a\" : \"\\\"type\\\":\\\"x\\\"\", \"online\" : [\"type\", {\"type\":\"z\"}] ,"
                    " \"type\" : \"ready\", \"seq\": 42 }";
    CHECK(skim_is(b, strlen(b), "type", 1, "ready"));
    CHECK(skim_get(b, strlen(b), "seq", 1, &v, &n) && n == 2 && memcmp(v, "42", 2) == 0);
    CHECK(skim_is(b, strlen(b), "type", 3, "z")); /* object in array in object */
    CHECK(!skim_get(b, strlen(b), "type", 2, &v, &n));

    /* Malformed or truncated input answers "absent", never reads past n. */
    const char *c = "{\"type\":\"rea";
    CHECK(!skim_get(c, strlen(c), "type", 1, &v, &n));
    CHECK(!skim_get("}}}", 3, "type", 0, &v, &n));
    CHECK(!skim_get("{\"type\" \"x\"}", 12, "type", 1, &v, &n));
    CHECK(!skim_get("", 0, "type", 1, &v, &n));
    CHECK(!skim_get("{\"seq\":42", 10, "seq", 1, &v, &n));
    CHECK(!skim_get("{\"m\":{\"a\":1", 12, "m", 1, &v, &n));
}

static void test_hist(void)
{
    struct hist h, g;
    hist_init(&h);
    hist_init(&g);
    CHECK_EQ_INT(hist_quantile(&h, 0.5), 0);
    for (int i = 1; i <= 1000; i++)
        hist_record(&h, (int64_t)i * 1000); /* 1 us .. 1 ms */
    uint64_t p50 = hist_quantile(&h, 0.5), p99 = hist_quantile(&h, 0.99);
    CHECK(p50 >= 500000 && p50 <= 500000 * 1.02);
    CHECK(p99 >= 990000 && p99 <= 990000 * 1.02);
    CHECK_EQ_INT(hist_quantile(&h, 1.0), 1000000);
    hist_record(&g, -5);
    hist_record(&g, 7);
    hist_merge(&g, &h);
    CHECK_EQ_INT(g.count, 1002);
    CHECK_EQ_INT(g.max_ns, 1000000);
    CHECK_EQ_INT(hist_quantile(&g, 0.0001), 0);
    hist_record(&g, (int64_t)1 << 50); /* beyond the range: the last bucket */
    CHECK_EQ_INT(hist_quantile(&g, 1.0), (int64_t)1 << 50);
}

/* ---- framing against a loopback peer ---- */

struct seen {
    int opened, closed, ntext;
    char text[8][512];
    size_t len[8];
};

static void cb(void *ud, struct wsconn *c, enum wsconn_event ev, const char *d, size_t len)
{
    struct seen *s = ud;
    (void)c;
    if (ev == WSCONN_EV_OPEN)
        s->opened++;
    else if (ev == WSCONN_EV_CLOSED)
        s->closed++;
    else if (s->ntext < 8 && len < 512) {
        memcpy(s->text[s->ntext], d, len);
        s->len[s->ntext++] = len;
    }
}

/* Runs the client's loop until `done` says so or about 3 s pass. */
static void pump(int ep, struct wsconn *c, struct seen *s, int (*done)(const struct seen *))
{
    for (int i = 0; i < 30 && !done(s); i++) {
        struct epoll_event ev[4];
        int k = epoll_wait(ep, ev, 4, 100);
        for (int j = 0; j < k; j++)
            wsconn_on_event(c, ev[j].events, cb, s);
    }
}

static int upgrade_seen(const struct seen *s) { return s->opened || s->closed; }
static int four_texts(const struct seen *s) { return s->ntext >= 4 || s->closed; }
static int closed(const struct seen *s) { return s->closed > 0; }

static int read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static size_t read_request(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        if (read(fd, buf + n, 1) != 1)
            break;
        n++;
        if (n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    buf[n] = '\0';
    return n;
}

/* Reads one client frame; checks it is masked and final; unmasks it. */
static int read_client_frame(int fd, int *op, char *out, size_t cap, size_t *len)
{
    unsigned char h[4];
    if (read_full(fd, h, 2) < 0)
        return -1;
    CHECK(h[0] & 0x80);
    CHECK(h[1] & 0x80);
    *op = h[0] & 0x0f;
    size_t n = h[1] & 0x7f;
    if (n == 126) {
        if (read_full(fd, h + 2, 2) < 0)
            return -1;
        n = (size_t)h[2] << 8 | h[3];
    }
    unsigned char key[4];
    if (n > cap || read_full(fd, key, 4) < 0 || read_full(fd, out, n) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)((unsigned char)out[i] ^ key[i & 3]);
    *len = n;
    return 0;
}

static int listen_loopback(struct sockaddr_in *addr)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof *addr;
    if (l < 0 || bind(l, (struct sockaddr *)addr, sizeof *addr) < 0 || listen(l, 4) < 0 ||
        getsockname(l, (struct sockaddr *)addr, &sl) < 0)
        return -1;
    return l;
}

static int accept_timed(int l)
{
    int s = accept(l, NULL, NULL);
    struct timeval tv = {.tv_sec = 3};
    if (s >= 0)
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return s;
}

static void test_framing(void)
{
    struct sockaddr_in addr;
    int l = listen_loopback(&addr);
    CHECK(l >= 0);
    if (l < 0)
        return;
    int ep = epoll_create1(0);
    struct wsconn c = {.id = 7};
    struct seen s = {0};
    CHECK_EQ_INT(wsconn_start(&c, ep, NULL, &addr, "127.0.0.1:1", "/ws?token=abc"), 0);
    int srv = accept_timed(l);
    CHECK(srv >= 0);
    pump(ep, &c, &s, upgrade_seen); /* sends the request */
    char req[2048];
    read_request(srv, req, sizeof req);
    CHECK(strncmp(req, "GET /ws?token=abc HTTP/1.1\r\n", 28) == 0);
    CHECK(strstr(req, "\r\nSec-WebSocket-Key: ") != NULL);
    CHECK(strstr(req, "\r\nUpgrade: websocket\r\n") != NULL);

    /* The 101, a text frame in the same write, a fragmented message with a
     * ping between its fragments, and a frame with a 16-bit length. */
    unsigned char out[1024];
    size_t n = 0;
    const char *resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    memcpy(out, resp, strlen(resp));
    n = strlen(resp);
    out[n++] = 0x81, out[n++] = 5, memcpy(out + n, "hello", 5), n += 5;
    out[n++] = 0x01, out[n++] = 2, memcpy(out + n, "ab", 2), n += 2;
    out[n++] = 0x89, out[n++] = 1, out[n++] = 'p';
    out[n++] = 0x80, out[n++] = 2, memcpy(out + n, "cd", 2), n += 2;
    out[n++] = 0x81, out[n++] = 126, out[n++] = 300 >> 8, out[n++] = 300 & 0xff;
    memset(out + n, 'z', 300), n += 300;
    out[n++] = 0x81, out[n++] = 3, memcpy(out + n, "{}x", 3), n += 3;
    /* Write in two pieces, splitting a frame header, to exercise buffering. */
    CHECK(write(srv, out, 90) == 90);
    pump(ep, &c, &s, upgrade_seen);
    CHECK(write(srv, out + 90, n - 90) == (ssize_t)(n - 90));
    pump(ep, &c, &s, four_texts);
    CHECK_EQ_INT(s.opened, 1);
    CHECK_EQ_INT(s.ntext, 4);
    CHECK(s.len[0] == 5 && memcmp(s.text[0], "hello", 5) == 0);
    CHECK(s.len[1] == 4 && memcmp(s.text[1], "abcd", 4) == 0);
    CHECK(s.len[2] == 300 && s.text[2][0] == 'z' && s.text[2][299] == 'z');
    CHECK(s.len[3] == 3 && memcmp(s.text[3], "{}x", 3) == 0);

    int op;
    char buf[512];
    size_t len;
    CHECK(read_client_frame(srv, &op, buf, sizeof buf, &len) == 0 && op == 10 && len == 1 && buf[0] == 'p');
    char big[400];
    memset(big, 'q', sizeof big);
    CHECK_EQ_INT(wsconn_send_text(&c, "xyz", 3), 0);
    CHECK_EQ_INT(wsconn_send_text(&c, big, sizeof big), 0);
    CHECK(read_client_frame(srv, &op, buf, sizeof buf, &len) == 0 && op == 1 && len == 3 && memcmp(buf, "xyz", 3) == 0);
    CHECK(read_client_frame(srv, &op, buf, sizeof buf, &len) == 0 && op == 1 && len == 400 && buf[399] == 'q');

    /* The server closes with 4401: the client reports it and echoes the close. */
    unsigned char cl[4] = {0x88, 2, 4401 >> 8, 4401 & 0xff};
    CHECK(write(srv, cl, 4) == 4);
    pump(ep, &c, &s, closed);
    CHECK_EQ_INT(s.closed, 1);
    CHECK_EQ_INT(c.state, WSCONN_CLOSED);
    CHECK_EQ_INT(c.close_code, 4401);
    CHECK(read_client_frame(srv, &op, buf, sizeof buf, &len) == 0 && op == 8 && len == 2);
    CHECK_EQ_INT(wsconn_send_text(&c, "x", 1), -1);
    close(srv);

    /* A refused upgrade reports its HTTP status. */
    struct wsconn d = {.id = 8};
    struct seen t = {0};
    CHECK_EQ_INT(wsconn_start(&d, ep, NULL, &addr, "127.0.0.1:1", "/ws?token=bad"), 0);
    srv = accept_timed(l);
    pump(ep, &d, &t, upgrade_seen);
    read_request(srv, req, sizeof req);
    const char *no = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n";
    CHECK(write(srv, no, strlen(no)) == (ssize_t)strlen(no));
    pump(ep, &d, &t, closed);
    CHECK_EQ_INT(t.opened, 0);
    CHECK_EQ_INT(d.close_code, WSCONN_CLOSE_UPGRADE_REFUSED);
    CHECK_EQ_INT(d.err, 401);
    close(srv);

    /* A peer that vanishes without a close frame: 1006. */
    struct wsconn e = {.id = 9};
    struct seen u = {0};
    CHECK_EQ_INT(wsconn_start(&e, ep, NULL, &addr, "127.0.0.1:1", "/ws"), 0);
    srv = accept_timed(l);
    pump(ep, &e, &u, upgrade_seen);
    read_request(srv, req, sizeof req);
    CHECK(write(srv, resp, strlen(resp)) == (ssize_t)strlen(resp));
    pump(ep, &e, &u, upgrade_seen);
    close(srv);
    pump(ep, &e, &u, closed);
    CHECK_EQ_INT(e.close_code, WSCONN_CLOSE_ABNORMAL);
    wsconn_close(&e);

    close(ep);
    close(l);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    test_skim();
    test_hist();
    test_framing();
    return check_done();
}
