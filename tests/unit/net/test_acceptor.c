/* test_acceptor.c - net/acceptor.c over loopback: REST and WebSocket
 * handshakes reach the right sink with their bytes unread, handshakes that
 * arrive in pieces are classified once complete, silent sockets are closed,
 * a burst larger than pending_max waits in the backlog instead of failing,
 * stop refuses new connections, and no descriptor leaks. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "chatli/adapters/acceptor.h"

#define MAX_GOT 64

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int fd;
    int ws;
} got[MAX_GOT];
static int n_got;

static void sink(int fd, int ws)
{
    pthread_mutex_lock(&mu);
    if (n_got < MAX_GOT) {
        got[n_got].fd = fd;
        got[n_got].ws = ws;
        n_got++;
    } else {
        close(fd);
    }
    pthread_mutex_unlock(&mu);
}
static void to_http(void *arg, int fd, const struct sockaddr *sa, socklen_t l) { sink(fd, 0); }
static void to_ws(void *arg, int fd, const struct sockaddr *sa, socklen_t l) { sink(fd, 1); }

static int rejected_status[MAX_GOT];
static int n_rejected;

static void to_reject(void *arg, int fd, int status)
{
    pthread_mutex_lock(&mu);
    if (n_rejected < MAX_GOT)
        rejected_status[n_rejected++] = status;
    pthread_mutex_unlock(&mu);
    close(fd);
}

static int count_rejected(void)
{
    pthread_mutex_lock(&mu);
    int n = n_rejected;
    pthread_mutex_unlock(&mu);
    return n;
}

static int count_got(void)
{
    pthread_mutex_lock(&mu);
    int n = n_got;
    pthread_mutex_unlock(&mu);
    return n;
}

/* Waits up to `ms` for at least `n` handed-off sockets. */
static int wait_got(int n, int ms)
{
    for (int i = 0; i < ms / 10 && count_got() < n; i++)
        usleep(10000);
    return count_got();
}

static void reset_got(void)
{
    pthread_mutex_lock(&mu);
    for (int i = 0; i < n_got; i++)
        close(got[i].fd);
    n_got = 0;
    pthread_mutex_unlock(&mu);
}

static int open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void send_all(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* Reads exactly strlen(want) bytes from a handed-off socket (blocking, 2 s
 * at most) and compares: the acceptor must only have peeked. */
static int reads_back(int fd, const char *want)
{
    size_t n = strlen(want), have = 0;
    char buf[4096];
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (have < n && have < sizeof buf) {
        ssize_t r = recv(fd, buf + have, n - have, 0);
        if (r <= 0)
            break;
        have += (size_t)r;
    }
    return have == n && memcmp(buf, want, n) == 0;
}

/* True when the peer closed `fd` within `ms`. */
static int closed_within(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, ms) <= 0)
        return 0;
    char c;
    ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno == ECONNRESET);
}

static const char *http_req = "GET /api/posts HTTP/1.1\r\nHost: x\r\n\r\n";
static const char *ws_req = "GET /ws?token=t HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Key: a2V5\r\n"
                            "Sec-WebSocket-Version: 13\r\n\r\n";

static struct acceptor *start(int pending_max, int timeout_ms)
{
    struct acceptor_config cfg = {.host = "127.0.0.1", .port = 0, .pending_max = pending_max,
                                  .peek_timeout_ms = timeout_ms, .to_http = to_http,
                                  .to_ws = to_ws};
    struct acceptor *a = NULL;
    struct chat_err err = {0};
    int rc = acceptor_open(&cfg, &a, &err);
    if (rc)
        fprintf(stderr, "acceptor_open: %s\n", err.msg);
    CHECK_EQ_INT(rc, 0);
    return a;
}

static void test_routing(void)
{
    struct acceptor *a = start(0, 1000);
    if (!a)
        return;
    int port = acceptor_port(a);
    CHECK(port > 0);

    int c1 = dial(port);
    send_all(c1, http_req);
    int c2 = dial(port);
    send_all(c2, ws_req);
    CHECK_EQ_INT(wait_got(2, 3000), 2);
    for (int i = 0; i < count_got(); i++)
        CHECK(reads_back(got[i].fd, got[i].ws ? ws_req : http_req));
    CHECK_EQ_INT(got[0].ws + got[1].ws, 1);
    reset_got();

    /* A handshake in three pieces, with pauses: classified only at the end. */
    int c3 = dial(port);
    send_all(c3, "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHo");
    usleep(100000);
    send_all(c3, "st: x\r\nUpgrade: websocket\r\n");
    usleep(100000);
    CHECK_EQ_INT(count_got(), 0);
    CHECK_EQ_INT(acceptor_pending(a), 1);
    send_all(c3, "\r\n");
    CHECK_EQ_INT(wait_got(1, 2000), 1);
    CHECK_EQ_INT(got[0].ws, 1);
    CHECK_EQ_INT(acceptor_pending(a), 0);
    reset_got();

    /* Half a request line, then the client gives up: the partial head goes
     * to MHD, which can answer it. */
    int c4 = dial(port);
    send_all(c4, "GET /w");
    usleep(50000);
    shutdown(c4, SHUT_WR);
    CHECK_EQ_INT(wait_got(1, 2000), 1);
    CHECK_EQ_INT(got[0].ws, 0);
    reset_got();

    /* Blank lines only, then the client is done: closed here, handed to
     * no one (MHD would wait for its idle timeout). */
    int c5 = dial(port);
    send_all(c5, "\r\n\r\n\r\n");
    usleep(50000);
    shutdown(c5, SHUT_WR);
    CHECK(closed_within(c5, 1000));
    CHECK_EQ_INT(count_got(), 0);

    close(c1);
    close(c2);
    close(c3);
    close(c4);
    close(c5);
    acceptor_close(a);
}

static void test_timeouts(void)
{
    struct acceptor *a = start(0, 300);
    if (!a)
        return;
    int port = acceptor_port(a);
    /* Partial head, then silence: closed after the peek timeout. */
    int c1 = dial(port);
    send_all(c1, "GET /ws HTTP/1.1\r\n");
    /* Completely silent: TCP_DEFER_ACCEPT keeps it in the kernel for about
     * a second, then the acceptor's own timeout closes it. */
    int c2 = dial(port);
    CHECK(closed_within(c1, 2000));
    CHECK(closed_within(c2, 6000));
    CHECK_EQ_INT(count_got(), 0);
    CHECK_EQ_INT(acceptor_pending(a), 0);
    close(c1);
    close(c2);
    acceptor_close(a);
}

static void test_burst_backlog(void)
{
    /* pending_max 4, 24 clients that each send half a head: 4 are pending,
     * the rest wait in the backlog; then every client completes its request
     * and every one must reach the sink (none refused or reset). */
    enum { N = 24 };
    struct acceptor *a = start(4, 3000);
    if (!a)
        return;
    int port = acceptor_port(a);
    int c[N];
    for (int i = 0; i < N; i++) {
        c[i] = dial(port);
        CHECK(c[i] >= 0);
        send_all(c[i], "GET /ws HTTP/1.1\r\n");
    }
    usleep(200000);
    CHECK(acceptor_pending(a) <= 4);
    for (int i = 0; i < N; i++)
        send_all(c[i], i % 2 ? "Upgrade: websocket\r\n\r\n" : "Host: x\r\n\r\n");
    CHECK_EQ_INT(wait_got(N, 5000), N);
    int ws = 0;
    for (int i = 0; i < count_got(); i++)
        ws += got[i].ws;
    CHECK_EQ_INT(ws, N / 2);
    reset_got();
    for (int i = 0; i < N; i++)
        close(c[i]);
    acceptor_close(a);
}

static void test_reject(void)
{
    struct acceptor_config cfg = {.host = "127.0.0.1", .port = 0, .peek_timeout_ms = 2000,
                                  .to_http = to_http, .to_ws = to_ws, .to_reject = to_reject};
    struct acceptor *a = NULL;
    CHECK_EQ_INT(acceptor_open(&cfg, &a, NULL), 0);
    if (!a)
        return;
    int port = acceptor_port(a);
    int c1 = dial(port);
    send_all(c1, "POST /api/posts HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n");
    int c2 = dial(port);
    send_all(c2, "POST /api/posts HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n");
    for (int i = 0; i < 200 && count_rejected() < 2; i++)
        usleep(10000);
    CHECK_EQ_INT(count_rejected(), 2);
    CHECK_EQ_INT(rejected_status[0] + rejected_status[1], 400 + 413);
    CHECK_EQ_INT(count_got(), 0);

    /* A plain head in two pieces waits for its end, then goes to HTTP with
     * its bytes unread. */
    const char *req = "POST /api/posts HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
    int c3 = dial(port);
    send_all(c3, "POST /api/posts HTTP/1.1\r\nHo");
    usleep(100000);
    CHECK_EQ_INT(count_got(), 0);
    send_all(c3, req + strlen("POST /api/posts HTTP/1.1\r\nHo"));
    CHECK_EQ_INT(wait_got(1, 2000), 1);
    CHECK(reads_back(got[0].fd, req));
    reset_got();
    close(c1);
    close(c2);
    close(c3);
    acceptor_close(a);
    n_rejected = 0;
}

static void test_stop(void)
{
    struct acceptor *a = start(0, 2000);
    if (!a)
        return;
    int port = acceptor_port(a);
    int pending = dial(port);
    send_all(pending, "GET /ws HTTP/1.1\r\n");
    usleep(100000);
    CHECK_EQ_INT(acceptor_pending(a), 1);
    acceptor_stop(a);
    CHECK(closed_within(pending, 1000)); /* closed, not leaked */
    CHECK_EQ_INT(dial(port), -1);         /* no longer listening */
    acceptor_stop(a);                     /* idempotent */
    acceptor_close(a);
    close(pending);

    /* A port in use is a clear error. */
    struct acceptor *b = start(0, 1000);
    if (!b)
        return;
    struct acceptor_config cfg = {.host = "127.0.0.1", .port = acceptor_port(b),
                                  .to_http = to_http, .to_ws = to_ws};
    struct acceptor *dup = NULL;
    struct chat_err err = {0};
    /* SO_REUSEADDR does not allow two listeners on one port. */
    CHECK_EQ_INT(acceptor_open(&cfg, &dup, &err), CHAT_E_UNAVAILABLE);
    CHECK(dup == NULL);
    CHECK(strstr(err.msg, "cannot listen") != NULL);
    cfg.host = "no-such-host.invalid";
    CHECK_EQ_INT(acceptor_open(&cfg, &dup, &err), CHAT_E_UNAVAILABLE);
    acceptor_close(b);
}

int main(void)
{
    CHECK(acceptor_raise_fd_limit() > 0);
    int fds0 = open_fds();
    test_routing();
    test_timeouts();
    test_burst_backlog();
    test_reject();
    test_stop();
    int fds1 = open_fds();
    if (fds0 != fds1)
        fprintf(stderr, "fds before %d, after %d\n", fds0, fds1);
    CHECK_EQ_INT(fds1, fds0);
    return check_done();
}
