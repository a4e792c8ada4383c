/* test_async_send.c - POST /api/chats/{id}/messages answered through MHD
 * suspend/resume (http_async_begin/finish in http/request.c), over loopback
 * behind the real acceptor, with core on SQLite :memory:.
 *
 * What must hold: every send gets exactly one well-formed answer on a
 * connection that stays usable (201, a clientId repeat's 200, and the
 * errors refused before the store - 404, 422 - which take the same
 * suspended path); many concurrent senders all get 201s and each 201 is a
 * stored message with its own seq; and shutdown while sends are in flight
 * neither hangs nor aborts (MHD must not stop with a suspended connection),
 * and loses no message a client was told was stored. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
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

static int start(void)
{
    memset(&cfg, 0, sizeof cfg);
    cfg.host = "127.0.0.1";
    cfg.cors_origins = "*";
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

/* Stops the transport (acceptor, drain, MHD), leaving core and store up. */
static void stop_http(void)
{
    acceptor_stop(acc);
    http_server_drain(srv, clock_mono_ns() / 1000000 + 3000);
    http_server_close(srv);
    acceptor_close(acc);
    srv = NULL;
    acc = NULL;
}

static void stop_rest(void)
{
    core_free(core);
    bus_close(bus);
    cache_close(cache);
    store_close(store);
}

/* ---- a tiny HTTP/1.1 client ---------------------------------------------- */

struct resp {
    int status;
    char head[4096];
    char body[16384];
    size_t body_len;
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
    static _Thread_local char val[512];
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

/* Reads one Content-Length framed response.  0, or -1 on EOF, a reset, a
 * timeout or a malformed answer (such as a second status line in the
 * body). */
static int read_resp(int fd, struct resp *r)
{
    memset(r, 0, sizeof *r);
    char buf[16384];
    size_t have = 0;
    char *end = NULL;
    while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
        if (have == sizeof buf)
            return -1;
        ssize_t n = recv(fd, buf + have, sizeof buf - have, 0);
        if (n <= 0)
            return -1;
        have += (size_t)n;
    }
    size_t hl = (size_t)(end - buf) + 4;
    if (hl >= sizeof r->head || strncmp(buf, "HTTP/1.1 ", 9) != 0)
        return -1;
    memcpy(r->head, buf, hl);
    r->status = atoi(r->head + 9);
    const char *cl = hdr(r, "Content-Length");
    size_t want = cl ? (size_t)atol(cl) : 0;
    if (want >= sizeof r->body)
        return -1;
    size_t got = have - hl;
    if (got > want)
        return -1; /* pipelining is not used here: extra bytes are a defect */
    memcpy(r->body, buf + hl, got);
    while (got < want) {
        ssize_t n = recv(fd, r->body + got, want - got, 0);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    r->body_len = want;
    r->body[want] = '\0';
    return strncmp(r->body, "HTTP/", 5) == 0 ? -1 : 0;
}

static int request(int fd, const char *method, const char *path, const char *auth, const char *body,
                   struct resp *r)
{
    char req[4096];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: x\r\n", method, path);
    if (auth)
        n += snprintf(req + n, sizeof req - (size_t)n, "Authorization: Bearer %s\r\n", auth);
    if (body)
        n += snprintf(req + n, sizeof req - (size_t)n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n", strlen(body));
    n += snprintf(req + n, sizeof req - (size_t)n, "\r\n");
    if (n >= (int)sizeof req || send_all(fd, req, (size_t)n) || (body && send_all(fd, body, strlen(body))))
        return -1;
    return read_resp(fd, r);
}

/* The string value of "key" in a flat JSON text (test data only). */
static void json_field(const char *json, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(json, pat);
    out[0] = '\0';
    if (p) {
        p += strlen(pat);
        snprintf(out, cap, "%.*s", (int)strcspn(p, "\""), p);
    }
}

static char tok_a[128], tok_b[128], user_b[32], chat_id[32];

static void setup_users(void)
{
    int fd = dial();
    struct resp r;
    CHECK_EQ_INT(request(fd, "POST", "/api/auth/register", NULL,
                         "{\"username\":\"anna\",\"email\":\"anna@example.com\",\"password\":\"password123\"}",
                         &r), 0);
    json_field(r.body, "token", tok_a, sizeof tok_a);
    CHECK_EQ_INT(request(fd, "POST", "/api/auth/register", NULL,
                         "{\"username\":\"ben\",\"email\":\"ben@example.com\",\"password\":\"password123\"}",
                         &r), 0);
    json_field(r.body, "token", tok_b, sizeof tok_b);
    json_field(strstr(r.body, "\"user\""), "id", user_b, sizeof user_b);
    char body[128];
    snprintf(body, sizeof body, "{\"memberIds\":[\"%s\"]}", user_b);
    CHECK_EQ_INT(request(fd, "POST", "/api/chats", tok_a, body, &r), 0);
    CHECK_EQ_INT(r.status, 201);
    json_field(r.body, "id", chat_id, sizeof chat_id);
    close(fd);
}

/* Answers of every kind on ONE keep-alive connection: each arrives whole
 * and the connection carries the next request. */
static void test_answers_on_one_connection(void)
{
    int fd = dial();
    struct resp r;
    char path[128], first_id[32], again_id[32];
    snprintf(path, sizeof path, "/api/chats/%s/messages", chat_id);

    CHECK_EQ_INT(request(fd, "POST", path, tok_a, "{\"text\":\"hello\",\"clientId\":\"c-1\"}", &r), 0);
    CHECK_EQ_INT(r.status, 201);
    CHECK_EQ_STR(hdr(&r, "Content-Type"), "application/json; charset=utf-8");
    CHECK(hdr(&r, "X-Request-Id") && strlen(hdr(&r, "X-Request-Id")) == 16);
    CHECK(hdr(&r, "Connection") == NULL);
    CHECK(strstr(r.body, "\"seq\":1,") != NULL);
    CHECK(strstr(r.body, "\"text\":\"hello\"") != NULL);
    CHECK(strstr(r.body, "\"username\":\"anna\"") != NULL);
    json_field(r.body, "id", first_id, sizeof first_id);

    /* The same clientId again: 200 with the first message. */
    CHECK_EQ_INT(request(fd, "POST", path, tok_a, "{\"text\":\"hello\",\"clientId\":\"c-1\"}", &r), 0);
    CHECK_EQ_INT(r.status, 200);
    json_field(r.body, "id", again_id, sizeof again_id);
    CHECK_EQ_STR(again_id, first_id);

    /* Refused before the store: the same suspended path, a normal error. */
    CHECK_EQ_INT(request(fd, "POST", path, tok_a, "{\"clientId\":\"c-2\"}", &r), 0);
    CHECK_EQ_INT(r.status, 422);
    CHECK(strstr(r.body, "\"validation_failed\"") != NULL && strstr(r.body, "\"field\":\"text\"") != NULL);
    CHECK_EQ_INT(request(fd, "POST", "/api/chats/0123456789abcdef01234567/messages", tok_a,
                         "{\"text\":\"x\"}", &r), 0);
    CHECK_EQ_INT(r.status, 404);
    CHECK_EQ_INT(request(fd, "POST", "/api/chats/nope/messages", tok_a, "{\"text\":\"x\"}", &r), 0);
    CHECK_EQ_INT(r.status, 404);

    /* And the connection still serves ordinary requests. */
    CHECK_EQ_INT(request(fd, "GET", "/api/users/me", tok_b, NULL, &r), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_INT(request(fd, "POST", path, tok_b, "{\"text\":\"reply\"}", &r), 0);
    CHECK_EQ_INT(r.status, 201);
    CHECK(strstr(r.body, "\"seq\":2,") != NULL);
    close(fd);
}

/* Senders on their own connections, as fast as they can. */
struct sender {
    int id;
    int count;           /* how many to send; 0: until `stop` */
    atomic_bool *stop;
    int created;         /* 201s received */
    int failed;          /* anything else, before the connection ended */
    int ended;           /* the connection ended (shutdown) */
};

static void *send_loop(void *arg)
{
    struct sender *s = arg;
    char path[128], body[128];
    snprintf(path, sizeof path, "/api/chats/%s/messages", chat_id);
    int fd = dial();
    if (fd < 0) {
        s->ended = 1;
        return NULL;
    }
    for (int i = 0; s->count ? i < s->count : !atomic_load(s->stop); i++) {
        struct resp r;
        snprintf(body, sizeof body, "{\"text\":\"m %d %d\",\"clientId\":\"s%d-%d\"}", s->id, i, s->id, i);
        if (request(fd, "POST", path, s->id % 2 ? tok_a : tok_b, body, &r) != 0) {
            s->ended = 1;
            break;
        }
        if (r.status == 201)
            s->created++;
        else
            s->failed++;
        if (hdr(&r, "Connection") && strcasecmp(hdr(&r, "Connection"), "close") == 0) {
            s->ended = 1;
            break;
        }
    }
    close(fd);
    return NULL;
}

/* How many messages the chat holds, checking seqs are 1..n without gaps. */
static int64_t stored_messages(void)
{
    struct session s = {0};
    struct chat_err err = {0};
    int64_t n = 0;
    char after[32] = "0";
    CHECK_EQ_INT(auth_check(core, tok_a, &s, &err), 0);
    for (;;) {
        struct page_params pp = {.limit = "100", .after_seq = after};
        json_t *page = NULL;
        if (messages_list(core, &s, chat_id, &pp, &page, &err) != 0) {
            CHECK(!"messages_list failed");
            return -1;
        }
        json_t *items = json_object_get(page, "items");
        for (size_t i = 0; i < json_array_size(items); i++) {
            int64_t seq = json_integer_value(json_object_get(json_array_get(items, i), "seq"));
            CHECK_EQ_INT(seq, n + 1);
            n = seq;
        }
        const char *next = json_string_value(json_object_get(page, "nextCursor"));
        if (!next) {
            json_decref(page);
            return n;
        }
        snprintf(after, sizeof after, "%s", next);
        json_decref(page);
    }
}

static void test_concurrent_senders(void)
{
    enum { N = 16, EACH = 40 };
    int64_t before = stored_messages();
    struct sender s[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        s[i] = (struct sender){.id = i, .count = EACH};
        pthread_create(&th[i], NULL, send_loop, &s[i]);
    }
    int created = 0, failed = 0, ended = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        created += s[i].created;
        failed += s[i].failed;
        ended += s[i].ended;
    }
    CHECK_EQ_INT(created, N * EACH);
    CHECK_EQ_INT(failed, 0);
    CHECK_EQ_INT(ended, 0);
    CHECK_EQ_INT(stored_messages() - before, N * EACH);
}

/* Shutdown in the middle of a flood: bounded, no abort, and every 201 a
 * client got is stored (more may be stored: answers lost to the close). */
static void test_shutdown_while_sending(void)
{
    enum { N = 16 };
    int64_t before = stored_messages();
    atomic_bool stop_flag = false;
    struct sender s[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        s[i] = (struct sender){.id = 100 + i, .stop = &stop_flag};
        pthread_create(&th[i], NULL, send_loop, &s[i]);
    }
    usleep(300000);
    int64_t t0 = clock_mono_ns();
    stop_http();
    int64_t took_ms = (clock_mono_ns() - t0) / 1000000;
    atomic_store(&stop_flag, true);
    int created = 0, failed = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        created += s[i].created;
        failed += s[i].failed;
    }
    CHECK(took_ms < 4000);
    CHECK_EQ_INT(failed, 0);
    CHECK(created > 0);
    int64_t stored = stored_messages() - before;
    CHECK(stored >= created);
    CHECK(stored <= created + N);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    log_set_level(LOG_ERROR);
    acceptor_raise_fd_limit();
    CHECK_EQ_INT(start(), 0);
    if (srv) {
        setup_users();
        test_answers_on_one_connection();
        test_concurrent_senders();
        test_shutdown_while_sending();
    }
    if (srv)
        stop_http();
    stop_rest();
    return check_done();
}
