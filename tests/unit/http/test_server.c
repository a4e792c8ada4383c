/* test_server.c - http/server.c end to end over loopback, behind the real
 * acceptor, with core on SQLite :memory:.  What only this layer can get
 * wrong: keep-alive survives (MHD's first-call Connection: close trap),
 * the pipeline's precedence, a 2 MiB body gets a readable 413 (drained or
 * lingered, never reset), RateLimit-* headers, and draining (idle
 * keep-alive connections closed, an in-flight upload finished). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chatli/bus.h"
#include "chatli/adapters/bus_local.h"
#include "chatli/cache.h"
#include "chatli/adapters/cache_mem.h"
#include "check.h"
#include "chatli/config.h"
#include "chatli/core.h"
#include "chatli/adapters/http_server.h"
#include "chatli/adapters/acceptor.h"
#include "chatli/adapters/store_sqlite.h"
#include "chatli/clock.h"
#include "chatli/log.h"

static struct config cfg;
static struct store *store;
static struct bus *bus;
static struct cache *cache;
static struct core *core;
static struct http_server *srv;
static struct acceptor *acc;
static int port;

static void to_http(void *arg, int fd, const struct sockaddr *sa, socklen_t l)
{
    http_server_add_connection(arg, fd, sa, l);
}
static void to_ws(void *arg, int fd, const struct sockaddr *sa, socklen_t l) { close(fd); }
static void to_reject(void *arg, int fd, int status) { http_server_reject(arg, fd, status); }

static int start(int64_t rate_limit_max)
{
    memset(&cfg, 0, sizeof cfg);
    cfg.host = "127.0.0.1";
    cfg.cors_origins = "https://a.example";
    cfg.rate_limit_max = rate_limit_max;
    cfg.rate_limit_window_ms = 60000;
    cfg.http_threads = 2;
    cfg.shutdown_grace_s = 5;
    struct chat_err err = {0};
    struct core_config cc = {.token_ttl_s = 3600, .pwhash_opslimit = 1, .pwhash_memlimit = 8192,
                             .pwhash_concurrency = 2};
    if (store_sqlite_open(":memory:", &store, &err) || bus_local_new(&bus, &err) ||
        cache_mem_new(&cache, &err) || core_new(&cc, store, bus, &core, &err)) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    struct http_server_deps deps = {.cfg = &cfg, .core = core, .store = store, .cache = cache,
                                    .bus = bus, .conn_limit = 1000};
    if (http_server_open(&deps, &srv, &err)) {
        fprintf(stderr, "http_server_open: %s\n", err.msg);
        return -1;
    }
    struct acceptor_config ac = {.host = "127.0.0.1", .to_http = to_http, .http_arg = srv,
                                 .to_ws = to_ws, .to_reject = to_reject, .reject_arg = srv};
    if (acceptor_open(&ac, &acc, &err)) {
        fprintf(stderr, "acceptor_open: %s\n", err.msg);
        return -1;
    }
    port = acceptor_port(acc);
    return 0;
}

static void stop(void)
{
    acceptor_stop(acc);
    http_server_close(srv);
    acceptor_close(acc);
    core_free(core);
    bus_close(bus);
    cache_close(cache);
    store_close(store);
    srv = NULL;
    acc = NULL;
}

/* ---- a tiny HTTP/1.1 client ---------------------------------------------- */

struct resp {
    int status;
    char head[4096];
    char body[65536];
    size_t body_len;
    int eof_after; /* the server closed after the response */
};

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static const char *hdr(const struct resp *r, const char *name)
{
    static char val[512];
    size_t nl = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            size_t l = strcspn(v, "\r");
            snprintf(val, sizeof val, "%.*s", (int)l, v);
            return val;
        }
    }
    return NULL;
}

/* Reads one response (Content-Length framed).  Returns 0, or -1 on a reset,
 * timeout or malformed answer. */
static int read_resp(int fd, struct resp *r)
{
    memset(r, 0, sizeof *r);
    char buf[16384];
    size_t have = 0;
    char *end = NULL;
    while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
        ssize_t n = recv(fd, buf + have, sizeof buf - have, 0);
        if (n <= 0)
            return -1;
        have += (size_t)n;
    }
    size_t hl = (size_t)(end - buf) + 4;
    if (hl >= sizeof r->head)
        return -1;
    memcpy(r->head, buf, hl);
    r->status = atoi(r->head + 9);
    const char *cl = hdr(r, "Content-Length");
    size_t want = cl ? (size_t)atol(cl) : 0;
    if (want >= sizeof r->body)
        return -1;
    size_t got = have - hl;
    memcpy(r->body, buf + hl, got < want ? got : want);
    while (got < want) {
        ssize_t n = recv(fd, r->body + got, want - got, 0);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    r->body_len = want;
    r->body[want] = '\0';
    return 0;
}

/* One request on `fd`; `extra` holds more header lines ("K: v\r\n..."). */
static int request(int fd, const char *method, const char *path, const char *extra, const char *body,
                   struct resp *r)
{
    char req[4096];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: x\r\n%s", method, path, extra ? extra : "");
    if (body)
        n += snprintf(req + n, sizeof req - (size_t)n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n", strlen(body));
    n += snprintf(req + n, sizeof req - (size_t)n, "\r\n");
    if (n >= (int)sizeof req || send_all(fd, req, (size_t)n) || (body && send_all(fd, body, strlen(body))))
        return -1;
    return read_resp(fd, r);
}

static int closed_within(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, ms) <= 0)
        return 0;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

static char token[128];

static void test_basics(void)
{
    int fd = dial();
    struct resp r;
    CHECK_EQ_INT(request(fd, "POST", "/api/auth/register", NULL,
                         "{\"username\":\"alice\",\"email\":\"alice@example.com\",\"password\":\"password123\"}",
                         &r), 0);
    CHECK_EQ_INT(r.status, 201);
    CHECK_EQ_STR(hdr(&r, "Content-Type"), "application/json; charset=utf-8");
    /* Keep-alive must survive a normal request (MHD's first-call trap). */
    CHECK(hdr(&r, "Connection") == NULL || strcasecmp(hdr(&r, "Connection"), "close") != 0);
    const char *t = strstr(r.body, "\"token\":\"");
    CHECK(t != NULL);
    if (t)
        snprintf(token, sizeof token, "%.*s", (int)strcspn(t + 9, "\""), t + 9);
    char auth[256];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);

    /* Same connection, next request. */
    CHECK_EQ_INT(request(fd, "GET", "/api/users/me", auth, NULL, &r), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK(strstr(r.body, "\"email\":\"alice@example.com\"") != NULL);
    CHECK_EQ_STR(hdr(&r, "X-Content-Type-Options"), "nosniff");
    CHECK_EQ_STR(hdr(&r, "Cache-Control"), "no-store");
    CHECK(hdr(&r, "X-Request-Id") && strlen(hdr(&r, "X-Request-Id")) == 16);
    CHECK(hdr(&r, "RateLimit-Limit") == NULL); /* disabled in this server */

    /* Precedence: 404, then 405 (even without a token), then 401. */
    CHECK_EQ_INT(request(fd, "GET", "/api/nope", NULL, NULL, &r), 0);
    CHECK_EQ_INT(r.status, 404);
    CHECK(strstr(r.body, "\"not_found\"") != NULL);
    CHECK_EQ_INT(request(fd, "PUT", "/api/posts", NULL, NULL, &r), 0);
    CHECK_EQ_INT(r.status, 405);
    CHECK_EQ_STR(hdr(&r, "Allow"), "GET, POST");
    CHECK_EQ_INT(request(fd, "POST", "/api/posts", NULL, "{bad", &r), 0);
    CHECK_EQ_INT(r.status, 401);
    CHECK_EQ_STR(hdr(&r, "WWW-Authenticate"), "Bearer");
    /* Then body checks: 415, 400, and core's 422. */
    CHECK_EQ_INT(request(fd, "POST", "/api/posts", auth, "{bad", &r), 0);
    CHECK_EQ_INT(r.status, 400);
    char raw[512];
    int rl = snprintf(raw, sizeof raw,
                      "POST /api/posts HTTP/1.1\r\nHost: x\r\n%sContent-Type: text/plain\r\n"
                      "Content-Length: 2\r\n\r\n{}", auth);
    CHECK_EQ_INT(send_all(fd, raw, (size_t)rl), 0);
    CHECK_EQ_INT(read_resp(fd, &r), 0);
    CHECK_EQ_INT(r.status, 415);
    close(fd);

    fd = dial();
    CHECK_EQ_INT(request(fd, "POST", "/api/posts", auth, "{\"text\":\"\"}", &r), 0);
    CHECK_EQ_INT(r.status, 422);
    CHECK(strstr(r.body, "\"field\":\"text\"") != NULL);
    CHECK_EQ_INT(request(fd, "POST", "/api/posts", auth, "{\"text\":\"hello\"}", &r), 0);
    CHECK_EQ_INT(r.status, 201);
    CHECK_EQ_INT(request(fd, "POST", "/api/posts", auth, "[1]", &r), 0);
    CHECK_EQ_INT(r.status, 400);
    CHECK_EQ_INT(request(fd, "POST", "/api/posts", auth, "{\"text\":\"a\",\"text\":\"b\"}", &r), 0);
    CHECK_EQ_INT(r.status, 400); /* duplicate keys */

    /* CORS: a listed origin is echoed, others get nothing; preflight. */
    CHECK_EQ_INT(request(fd, "GET", "/healthz", "Origin: https://a.example\r\n", NULL, &r), 0);
    CHECK_EQ_STR(hdr(&r, "Access-Control-Allow-Origin"), "https://a.example");
    CHECK_EQ_STR(hdr(&r, "Vary"), "Origin");
    CHECK_EQ_INT(request(fd, "GET", "/healthz", "Origin: https://b.example\r\n", NULL, &r), 0);
    CHECK(hdr(&r, "Access-Control-Allow-Origin") == NULL);
    CHECK_EQ_INT(request(fd, "OPTIONS", "/api/posts/x/like",
                         "Origin: https://a.example\r\nAccess-Control-Request-Method: PUT\r\n", NULL, &r),
                 0);
    CHECK_EQ_INT(r.status, 204);
    CHECK_EQ_STR(hdr(&r, "Access-Control-Allow-Methods"), "PUT, DELETE");
    CHECK_EQ_STR(hdr(&r, "Access-Control-Allow-Headers"), "Authorization, Content-Type");
    CHECK_EQ_INT(request(fd, "OPTIONS", "/api/posts", "Origin: https://evil.example\r\n", NULL, &r), 0);
    CHECK_EQ_INT(r.status, 204);
    CHECK(hdr(&r, "Access-Control-Allow-Methods") == NULL);
    CHECK(hdr(&r, "Access-Control-Allow-Origin") == NULL);

    /* A malformed target is a JSON 400 from us, not MHD's HTML. */
    int fd2 = dial();
    const char *bad = "GET  /healthz  HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK_EQ_INT(send_all(fd2, bad, strlen(bad)), 0);
    CHECK_EQ_INT(read_resp(fd2, &r), 0);
    CHECK_EQ_INT(r.status, 400);
    CHECK(strstr(r.body, "\"bad_request\"") != NULL);
    close(fd2);
    /* A Content-Length MHD 0.9.75 cannot parse: one clean JSON answer
     * (MHD's own would repeat its head). */
    fd2 = dial();
    const char *badcl = "POST /api/posts HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}";
    CHECK_EQ_INT(send_all(fd2, badcl, strlen(badcl)), 0);
    CHECK_EQ_INT(read_resp(fd2, &r), 0);
    CHECK_EQ_INT(r.status, 400);
    CHECK(strstr(r.body, "\"bad_request\"") != NULL);
    CHECK_EQ_STR(hdr(&r, "Content-Type"), "application/json; charset=utf-8");
    CHECK(closed_within(fd2, 1000)); /* and nothing after it */
    close(fd2);
    /* HTTP/1.1 without Host is refused by us (contract v1.2), with one
     * JSON answer, not MHD's strict mode and its doubled response head. */
    fd2 = dial();
    const char *nohost = "GET /healthz HTTP/1.1\r\n\r\n";
    CHECK_EQ_INT(send_all(fd2, nohost, strlen(nohost)), 0);
    CHECK_EQ_INT(read_resp(fd2, &r), 0);
    CHECK_EQ_INT(r.status, 400);
    CHECK(strstr(r.body, "\"bad_request\"") != NULL);
    CHECK(closed_within(fd2, 1000));
    close(fd2);

    /* Ops. */
    CHECK_EQ_INT(request(fd, "GET", "/readyz", NULL, NULL, &r), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK(strstr(r.body, "\"redis\":\"disabled\"") && strstr(r.body, "\"media\":\"local\""));
    CHECK_EQ_INT(request(fd, "GET", "/metrics", NULL, NULL, &r), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK(strncmp(hdr(&r, "Content-Type"), "text/plain; version=0.0.4", 25) == 0);
    close(fd);
}

struct writer {
    int fd;
    size_t total;
};

static void *write_body(void *arg)
{
    struct writer *w = arg;
    char chunk[65536];
    memset(chunk, 'a', sizeof chunk);
    for (size_t sent = 0; sent < w->total;) {
        size_t n = w->total - sent < sizeof chunk ? w->total - sent : sizeof chunk;
        if (send_all(w->fd, chunk, n))
            break; /* the server may close once it has answered */
        sent += n;
    }
    return NULL;
}

static void big_body(const char *extra_head, size_t total, size_t declared)
{
    char auth[512];
    snprintf(auth, sizeof auth,
             "POST /api/posts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
             "Content-Type: application/json\r\n%s",
             token, extra_head);
    char head[1024];
    if (declared)
        snprintf(head, sizeof head, "%sContent-Length: %zu\r\n\r\n", auth, declared);
    else
        snprintf(head, sizeof head, "%s\r\n", auth);
    int fd = dial();
    send_all(fd, head, strlen(head));
    struct writer w = {fd, total};
    pthread_t th;
    pthread_create(&th, NULL, write_body, &w);
    struct resp r;
    int rc = read_resp(fd, &r);
    pthread_join(th, NULL);
    CHECK_EQ_INT(rc, 0); /* read in full: no reset under the client */
    CHECK_EQ_INT(r.status, 413);
    CHECK(strstr(r.body, "\"payload_too_large\"") != NULL);
    close(fd);
}

static void test_413(void)
{
    /* Declared over 1 MiB: answered before the body, lingered. */
    big_body("", 2 * 1024 * 1024, 2 * 1024 * 1024);
    /* Declared, but the client sends only a little and waits. */
    big_body("", 100, 50 * 1024 * 1024);
    /* Chunked, no length: drained to the end, then answered. */
    int fd = dial();
    char head[512];
    snprintf(head, sizeof head,
             "POST /api/posts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
             "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", token);
    send_all(fd, head, strlen(head));
    char chunk[65536 + 16];
    int hl = snprintf(chunk, sizeof chunk, "10000\r\n");
    memset(chunk + hl, 'a', 65536);
    memcpy(chunk + hl + 65536, "\r\n", 2);
    for (int i = 0; i < 20; i++) /* 1.25 MiB */
        send_all(fd, chunk, (size_t)hl + 65536 + 2);
    send_all(fd, "0\r\n\r\n", 5);
    struct resp r;
    CHECK_EQ_INT(read_resp(fd, &r), 0);
    CHECK_EQ_INT(r.status, 413);
    /* The body was drained, so the connection is still usable. */
    CHECK_EQ_INT(request(fd, "GET", "/healthz", NULL, NULL, &r), 0);
    CHECK_EQ_INT(r.status, 200);
    close(fd);
    /* Exactly 1 MiB is not too large (core then refuses the long text). */
    fd = dial();
    size_t n = 1024 * 1024;
    char *body = malloc(n + 1);
    memcpy(body, "{\"text\":\"", 9);
    memset(body + 9, 'a', n - 11);
    memcpy(body + n - 2, "\"}", 2);
    body[n] = '\0';
    char extra[256];
    snprintf(extra, sizeof extra, "Authorization: Bearer %s\r\n", token);
    CHECK_EQ_INT(request(fd, "POST", "/api/posts", extra, body, &r), 0);
    CHECK_EQ_INT(r.status, 422);
    free(body);
    close(fd);
}

struct drain_arg {
    bool result;
    long long ms;
};

static void *drain_thread(void *arg)
{
    struct drain_arg *d = arg;
    int64_t t0 = clock_mono_ns() / 1000000;
    acceptor_stop(acc);
    d->result = http_server_drain(srv, t0 + 4000);
    d->ms = clock_mono_ns() / 1000000 - t0;
    return NULL;
}

static void test_drain(void)
{
    char auth[256];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
    /* An idle keep-alive connection ... */
    int idle = dial();
    struct resp r;
    CHECK_EQ_INT(request(idle, "GET", "/healthz", NULL, NULL, &r), 0);
    /* ... and a request whose body is still arriving. */
    int busy = dial();
    const char *body = "{\"text\":\"in flight\"}";
    char head[512];
    int hl = snprintf(head, sizeof head,
                      "POST /api/posts HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n", auth, strlen(body));
    send_all(busy, head, (size_t)hl);
    send_all(busy, body, 5);
    usleep(100000);

    struct drain_arg d = {0};
    pthread_t th;
    pthread_create(&th, NULL, drain_thread, &d);
    CHECK(closed_within(idle, 2000)); /* the idle one goes at once */
    usleep(300000);
    CHECK(send_all(busy, body + 5, strlen(body) - 5) == 0);
    CHECK_EQ_INT(read_resp(busy, &r), 0);
    CHECK_EQ_INT(r.status, 201); /* the in-flight one finishes */
    CHECK(hdr(&r, "Connection") && strcasecmp(hdr(&r, "Connection"), "close") == 0);
    CHECK(closed_within(busy, 2000));
    pthread_join(th, NULL);
    CHECK(d.result);
    CHECK(d.ms < 3000);
    close(idle);
    close(busy);
}

static void test_rate_limit(void)
{
    int fd = dial();
    struct resp r;
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(request(fd, "GET", "/api/nope", NULL, NULL, &r), 0);
        CHECK_EQ_INT(r.status, 404);
        CHECK_EQ_STR(hdr(&r, "RateLimit-Limit"), "3");
        CHECK_EQ_INT(atoi(hdr(&r, "RateLimit-Remaining")), 2 - i);
        CHECK(atoi(hdr(&r, "RateLimit-Reset")) >= 1);
    }
    CHECK_EQ_INT(request(fd, "GET", "/api/users/me", NULL, NULL, &r), 0);
    CHECK_EQ_INT(r.status, 429);
    CHECK(hdr(&r, "Retry-After") && atoi(hdr(&r, "Retry-After")) >= 1);
    CHECK(strstr(r.body, "\"rate_limited\"") != NULL);
    /* Ops and preflight are not limited. */
    CHECK_EQ_INT(request(fd, "GET", "/healthz", NULL, NULL, &r), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK(hdr(&r, "RateLimit-Limit") == NULL);
    CHECK_EQ_INT(request(fd, "OPTIONS", "/api/posts", NULL, NULL, &r), 0);
    CHECK_EQ_INT(r.status, 204);
    close(fd);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    log_set_level(LOG_ERROR);
    acceptor_raise_fd_limit();
    CHECK_EQ_INT(start(0), 0);
    if (srv) {
        test_basics();
        test_413();
        test_drain();
    }
    stop();
    CHECK_EQ_INT(start(3), 0);
    if (srv)
        test_rate_limit();
    stop();
    return check_done();
}
