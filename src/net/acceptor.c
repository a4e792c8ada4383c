/* acceptor.c - one listening socket, classified per connection.
 *
 * Design.  One thread, one epoll set holding the listening socket
 * (level-triggered, so a partly drained backlog wakes us again), an eventfd
 * for stop, and every accepted socket that is still being classified
 * ("pending").  A pending socket is registered edge-triggered: with
 * level-triggered polling a socket holding half a request line would be
 * reported ready on every wait and spin a core, while with EPOLLET we hear
 * about it again only when new bytes arrive.  Each event re-peeks the whole
 * prefix (MSG_PEEK leaves it for MHD or lws to read) and asks
 * net_classify() again.
 *
 * Most sockets never reach epoll: TCP_DEFER_ACCEPT makes accept() return
 * only once the client has sent data, so the first peek right after accept
 * usually settles it.
 *
 * With a reject sink configured, a plain HTTP socket is also held until its
 * first head is complete, so that a Content-Length libmicrohttpd 0.9.75
 * cannot parse is answered by us: MHD's own error path for it sends the
 * response head twice.  Heads almost always arrive in one segment, so this
 * rarely costs a wait.
 *
 * Bounds.  A pending socket gets `peek_timeout_ms` to show a classifiable
 * head, at most MAX_PEEKS edges (a client dribbling one byte per packet
 * would otherwise cost us a 16 KiB copy per byte), and at most NET_PEEK_MAX
 * bytes; past the size or edge bound it goes to MHD, which has its own
 * timeouts, and past the time bound it is closed.  Pending sockets sit in a
 * list in accept order, and since all share one timeout the list is also
 * deadline order: expiry only ever looks at the head.
 *
 * Back-pressure.  When `pending_max` sockets are pending, or accept() fails
 * with EMFILE/ENFILE (out of descriptors), we stop watching the listening
 * socket (EPOLL_CTL_MOD to no events) and let the kernel backlog hold new
 * connections, instead of accepting and closing them (which made half of a
 * 2000-connection burst fail) or spinning on a level-triggered error.  We
 * resume when pending sockets drain, or after a short pause for EMFILE.
 *
 * Every accepted descriptor ends in exactly one place: closed here (silent,
 * reset, stop) or handed to a sink, which owns it from then on. */
#include "chatli/adapters/acceptor.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/queue.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "classify.h"
#include "chatli/clock.h"
#include "chatli/log.h"
#include "chatli/metrics.h"

#define DEFAULT_PENDING_MAX 4096
#define DEFAULT_PEEK_TIMEOUT_MS 5000
#define MAX_PEEKS 64           /* edges per socket before MHD takes it as is */
#define ACCEPT_BATCH 128       /* accepts per wake-up, so pending sockets get a turn */
#define EMFILE_PAUSE_MS 100    /* how long to stop accepting when out of fds */
#define FD_RESERVE_MIN 128     /* fds kept for the store, logs, pipes, epoll sets ... */
#define FD_RESERVE_DIV 8       /* ... or 1/8 of the limit, whichever is more */
#define ADDR_BUCKETS 4096      /* per-address table (power of two) */
#define EVENTS_PER_WAIT 256

/* A socket being classified.  Owned by the acceptor thread alone. */
struct pending {
    int fd;
    bool in_epoll;     /* registered in a->epfd */
    bool peer_done;    /* EPOLLRDHUP seen: no more bytes will come */
    int peeks;
    bool addr_counted; /* counted in its address's `pending` */
    int64_t deadline_ms; /* CLOCK_MONOTONIC ms */
    TAILQ_ENTRY(pending) link; /* in acceptor.pending, deadline order */
    socklen_t salen;
    struct sockaddr_storage sa;
};

/* Threads: everything below is owned by the acceptor thread while it runs,
 * except `npending` (atomic, read by /metrics), `port` and the config,
 * which are immutable after acceptor_open.  acceptor_stop runs on main and
 * touches the rest only after joining the thread. */
struct acceptor {
    struct acceptor_config cfg;
    char *host;
    int port;
    int lfd, epfd, evfd;
    pthread_t thread;
    bool running;
    TAILQ_HEAD(, pending) pending; /* oldest (first to expire) first */
    _Atomic long npending;
    bool listen_armed;
    int64_t resume_at_ms;   /* EMFILE pause end; 0 when not paused */
    int64_t last_emfile_log_ms;
    int64_t last_full_log_ms;
    /* Admission (see admit()).  `n_http` and the address table are given
     * back by MHD workers (acceptor_release_http), hence the atomic and
     * addr_mu; everything else here is the acceptor thread's. */
    _Atomic long n_http;              /* REST connections handed to MHD and not closed */
    pthread_mutex_t addr_mu;
    struct addr_count *addrs[ADDR_BUCKETS];
    char peekbuf[NET_PEEK_MAX];
};

/* Connections from one client address (key: IPv6 or v4-mapped bytes):
 * REST connections open in MHD, and sockets still being classified (which
 * may become REST or WebSocket).  Under acceptor.addr_mu; freed when both
 * counts are 0. */
struct addr_count {
    unsigned char addr[16];
    long n;       /* REST connections handed to MHD and not closed */
    long pending; /* sockets from it in acceptor.pending */
    struct addr_count *next;
};

static _Atomic long total_pending; /* see register_gauge */

/* Distinct addresses that tag the two non-pending epoll entries. */
static char tag_listen, tag_stop;


long acceptor_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024 - FD_RESERVE_MIN;
    rlim_t want = rl.rlim_max;
    if (want == RLIM_INFINITY) {
        /* Linux refuses RLIM_INFINITY for NOFILE; fs.nr_open is the real cap. */
        want = 1048576;
        FILE *f = fopen("/proc/sys/fs/nr_open", "r");
        if (f) {
            unsigned long long v;
            if (fscanf(f, "%llu", &v) == 1 && v > 0)
                want = (rlim_t)v;
            fclose(f);
        }
    }
    if (rl.rlim_cur < want) {
        struct rlimit nl = {want, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &nl) == 0)
            rl.rlim_cur = want;
    }
    long reserve = (long)rl.rlim_cur / FD_RESERVE_DIV;
    if (reserve < FD_RESERVE_MIN)
        reserve = FD_RESERVE_MIN;
    long n = (long)rl.rlim_cur - reserve;
    return n > 16 ? n : 16;
}

/* The 16-byte key of a peer address (IPv4 as v4-mapped IPv6); false for
 * other families. */
static bool addr_key(const struct sockaddr *sa, unsigned char key[16])
{
    if (sa && sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return true;
    }
    if (sa && sa->sa_family == AF_INET) {
        memset(key, 0, 10);
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    return false;
}

static struct addr_count **addr_slot_locked(struct acceptor *a, const unsigned char key[16])
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 16777619u;
    struct addr_count **pp = &a->addrs[h & (ADDR_BUCKETS - 1)];
    while (*pp && memcmp((*pp)->addr, key, 16) != 0)
        pp = &(*pp)->next;
    return pp;
}

/* Adds `dn` REST connections and `dp` pending sockets to the address of
 * `sa`.  With `limit`, adds nothing and returns false when the address
 * already holds `limit` (REST + pending when dp > 0, REST alone
 * otherwise).  Returns true without counting when the cap is off or the
 * address has no key.  Any thread. */
static bool addr_add(struct acceptor *a, const struct sockaddr *sa, int dn, int dp, long limit)
{
    unsigned char key[16];
    if (a->cfg.max_per_addr <= 0 || !addr_key(sa, key))
        return true;
    bool ok = true;
    pthread_mutex_lock(&a->addr_mu);
    struct addr_count **pp = addr_slot_locked(a, key);
    if (!*pp && (dn > 0 || dp > 0) && (*pp = calloc(1, sizeof **pp)) != NULL)
        memcpy((*pp)->addr, key, 16);
    struct addr_count *e = *pp;
    if (e && limit > 0 && e->n + (dp > 0 ? e->pending : 0) >= limit)
        ok = false;
    else if (e) {
        e->n += dn;
        e->pending += dp;
    }
    if (e && e->n <= 0 && e->pending <= 0) {
        *pp = e->next;
        free(e);
    }
    pthread_mutex_unlock(&a->addr_mu);
    return ok;
}

/* Counts one more REST connection from `sa`, unless the address already
 * holds max_per_addr of them (then false).  Acceptor thread. */
static bool addr_take(struct acceptor *a, const struct sockaddr *sa)
{
    return addr_add(a, sa, 1, 0, a->cfg.max_per_addr);
}

void acceptor_release_http(struct acceptor *a, const struct sockaddr *sa)
{
    atomic_fetch_sub(&a->n_http, 1);
    addr_add(a, sa, -1, 0, 0);
}

static void set_listen(struct acceptor *a, bool on)
{
    if (a->listen_armed == on)
        return;
    struct epoll_event ev = {.events = on ? EPOLLIN : 0, .data.ptr = &tag_listen};
    if (epoll_ctl(a->epfd, EPOLL_CTL_MOD, a->lfd, &ev) == 0)
        a->listen_armed = on;
}

/* Re-arms the listening socket when neither bound holds any more. */
static void maybe_resume(struct acceptor *a, int64_t now)
{
    if (a->resume_at_ms && now < a->resume_at_ms)
        return;
    a->resume_at_ms = 0;
    if (atomic_load(&a->npending) < a->cfg.pending_max)
        set_listen(a, true);
}

static void unlink_pending(struct acceptor *a, struct pending *p)
{
    if (p->addr_counted)
        addr_add(a, (struct sockaddr *)&p->sa, 0, -1, 0);
    TAILQ_REMOVE(&a->pending, p, link);
    atomic_fetch_sub(&a->npending, 1);
    atomic_fetch_sub(&total_pending, 1);
}

/* Closes a pending socket that will never be handed off. */
static void drop(struct acceptor *a, struct pending *p)
{
    unlink_pending(a, p);
    if (p->in_epoll) /* explicit: close() alone unregisters only the last fd of a socket */
        epoll_ctl(a->epfd, EPOLL_CTL_DEL, p->fd, NULL);
    close(p->fd);
    free(p);
}

/* Gives a classified socket to its sink, which owns it from now on. */
static void hand_off(struct acceptor *a, struct pending *p, enum net_class c)
{
    unlink_pending(a, p);
    /* The registration belongs to the open file, not the fd number: leave
     * it behind and epoll would keep reporting a socket MHD or lws owns,
     * with `p` freed. */
    if (p->in_epoll)
        epoll_ctl(a->epfd, EPOLL_CTL_DEL, p->fd, NULL);
    if (c == NET_CLASS_WS) {
        a->cfg.to_ws(a->cfg.ws_arg, p->fd, (struct sockaddr *)&p->sa, p->salen);
    } else {
        atomic_fetch_add(&a->n_http, 1);
        a->cfg.to_http(a->cfg.http_arg, p->fd, (struct sockaddr *)&p->sa, p->salen);
    }
    free(p);
}

/* Admission (CONTRACT.md section 1, v1.2): may this classified socket be
 * handed on?  Past `conn_max` a socket is refused: the descriptor number
 * tells how many are open (the kernel hands out the lowest free one, so
 * fd >= conn_max means at least conn_max descriptors are in use, REST,
 * WebSocket, lingering or pending alike), and REST connections are also
 * counted here and given back by MHD's close notification, so MHD never
 * reaches its own limit (libmicrohttpd 0.9.75 leaks a mutex there and REST
 * stops for good).  A REST connection is also refused when its address
 * already holds max_per_addr.  On success the address is counted. */
static bool admit(struct acceptor *a, struct pending *p, enum net_class c)
{
    if (a->cfg.conn_max <= 0)
        return true;
    if (p->fd >= a->cfg.conn_max ||
        (c != NET_CLASS_WS && atomic_load(&a->n_http) >= a->cfg.conn_max))
        return false;
    return c == NET_CLASS_WS || addr_take(a, (struct sockaddr *)&p->sa);
}

static bool only_empty_lines(const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != '\r' && b[i] != '\n')
            return false;
    return true;
}

/* Gives a socket with a defective head to the reject sink. */
static void reject(struct acceptor *a, struct pending *p, int status)
{
    unlink_pending(a, p);
    if (p->in_epoll)
        epoll_ctl(a->epfd, EPOLL_CTL_DEL, p->fd, NULL);
    a->cfg.to_reject(a->cfg.reject_arg, p->fd, status);
    free(p);
}

/* Answers 503 with Retry-After through the reject sink (or closes, without
 * one), logging at most once a second. */
static void refuse_full(struct acceptor *a, struct pending *p)
{
    int64_t now = clock_mono_ms();
    if (now - a->last_full_log_ms > 1000) {
        a->last_full_log_ms = now;
        log_warn("admission: at the connection ceiling (%d) or an address's cap (%d): "
                 "answering 503", a->cfg.conn_max, a->cfg.max_per_addr);
    }
    metrics_error("admission_refused");
    if (a->cfg.to_reject)
        reject(a, p, 503);
    else
        drop(a, p);
}

/* The strict checks of a first request head (net_head_check, and
 * net_ws_check for an upgrade): 200 to hand it on, 0 to wait for the rest
 * of the head, else the status to refuse it with (400 also for a head the
 * client stopped sending before it ended).  A head over
 * NET_HEAD_MAX is refused with 431 here: MHD 0.9.75 would answer heads
 * between half its pool and the pool with its doubled error head, or not
 * at all.  A head still incomplete after the edge bound, or
 * when the client stopped sending, goes to MHD, which times it out. */
static int strict_check(const char *buf, size_t n, enum net_class c, bool bounded,
                        bool peer_done)
{
    const char *why = NULL;
    enum net_head h = net_head_check(buf, n, &why);
    if (h == NET_HEAD_MORE && peer_done) {
        /* The head can never end.  MHD 0.9.75 would hold such a socket
         * until a timeout instead of closing it, so answer it here. */
        log_info("refused a request head (400): the client stopped sending before it ended");
        return 400;
    }
    if (h == NET_HEAD_MORE)
        return bounded ? 200 : 0;
    int status = h == NET_HEAD_BAD            ? 400
                 : h == NET_HEAD_HUGE_LENGTH  ? 413
                 : h == NET_HEAD_TOO_LARGE    ? 431
                                              : 200;
    if (status == 200 && c == NET_CLASS_WS)
        status = net_ws_check(buf, n, &why);
    if (status != 200)
        log_info("refused a request head (%d): %s", status, why ? why : "too large");
    return status;
}

/* Peeks and classifies.  Returns true while `p` is still pending. */
static bool peek(struct acceptor *a, struct pending *p)
{
    ssize_t n;
    do
        n = recv(p->fd, a->peekbuf, sizeof a->peekbuf, MSG_PEEK);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return true; /* nothing yet; the next edge will tell */
        drop(a, p);      /* reset or other socket error */
        return false;
    }
    if (n == 0) { /* closed before saying anything */
        drop(a, p);
        return false;
    }
    enum net_class c = net_classify(a->peekbuf, (size_t)n);
    /* Past these bounds MHD takes the socket as it is: it reads
     * incrementally, has its own timeout, and answers a malformed head. */
    bool bounded = (size_t)n >= sizeof a->peekbuf || ++p->peeks > MAX_PEEKS || p->peer_done;
    if (c == NET_CLASS_MORE && p->peer_done && only_empty_lines(a->peekbuf, (size_t)n)) {
        /* Nothing but blank lines and the client is done: no request will
         * ever come.  MHD 0.9.75 skips the blank lines and then waits for
         * its idle timeout instead of closing, so close it here. */
        drop(a, p);
        return false;
    }
    if (c == NET_CLASS_MORE) {
        if (!bounded)
            return true;
        c = NET_CLASS_HTTP;
    }
    if (a->cfg.to_reject) {
        int status = strict_check(a->peekbuf, (size_t)n, c, bounded, p->peer_done);
        if (status == 0)
            return true; /* the head has not ended yet */
        if (status != 200) {
            reject(a, p, status);
            return false;
        }
    }
    if (!admit(a, p, c)) {
        refuse_full(a, p);
        return false;
    }
    hand_off(a, p, c);
    return false;
}

static void accept_some(struct acceptor *a)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        if (atomic_load(&a->npending) >= a->cfg.pending_max) {
            set_listen(a, false); /* the backlog holds the rest */
            return;
        }
        struct sockaddr_storage sa;
        socklen_t salen = sizeof sa;
        int fd = accept4(a->lfd, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            if (e == EAGAIN || e == EWOULDBLOCK)
                return;
            if (e == EINTR || e == ECONNABORTED || e == EPROTO)
                continue;
            if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
                int64_t now = clock_mono_ms();
                a->resume_at_ms = now + EMFILE_PAUSE_MS;
                set_listen(a, false);
                if (now - a->last_emfile_log_ms > 1000) {
                    a->last_emfile_log_ms = now;
                    log_warn("accept: %s; pausing new connections for %d ms", strerror(e),
                             EMFILE_PAUSE_MS);
                    metrics_error("accept_fd_limit");
                }
                return;
            }
            log_error("accept: %s", strerror(e));
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct pending *p = calloc(1, sizeof *p);
        if (!p) {
            close(fd);
            continue;
        }
        p->fd = fd;
        p->sa = sa;
        p->salen = salen;
        p->deadline_ms = clock_mono_ms() + a->cfg.peek_timeout_ms;
        TAILQ_INSERT_TAIL(&a->pending, p, link);
        atomic_fetch_add(&a->npending, 1);
        atomic_fetch_add(&total_pending, 1);
        /* One address may hold at most max_per_addr sockets being
         * classified plus REST connections, so it cannot fill the pending
         * list (pending_max, shared by everyone) with slow heads. */
        if (!addr_add(a, (struct sockaddr *)&sa, 0, 1, a->cfg.max_per_addr)) {
            refuse_full(a, p);
            continue;
        }
        p->addr_counted = true;
        if (!peek(a, p))
            continue; /* settled at once: the usual case */
        /* Bytes that arrive between the peek and the ADD are not lost:
         * EPOLL_CTL_ADD reports a socket that is already readable. */
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = p};
        if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            drop(a, p);
            continue;
        }
        p->in_epoll = true;
    }
}

static int wait_timeout(struct acceptor *a, int64_t now)
{
    int64_t t = -1;
    if (!TAILQ_EMPTY(&a->pending))
        t = TAILQ_FIRST(&a->pending)->deadline_ms - now;
    if (a->resume_at_ms && (t < 0 || a->resume_at_ms - now < t))
        t = a->resume_at_ms - now;
    if (t < 0 && (!TAILQ_EMPTY(&a->pending) || a->resume_at_ms))
        t = 0;
    return t > 60000 ? 60000 : (int)t;
}

static void *acceptor_main(void *arg)
{
    struct acceptor *a = arg;
    struct epoll_event evs[EVENTS_PER_WAIT];
    for (;;) {
        int n = epoll_wait(a->epfd, evs, EVENTS_PER_WAIT, wait_timeout(a, clock_mono_ms()));
        if (n < 0 && errno != EINTR) {
            log_error("acceptor: epoll_wait: %s", strerror(errno));
            break;
        }
        bool stop = false;
        for (int i = 0; i < n; i++) {
            void *ptr = evs[i].data.ptr;
            if (ptr == &tag_stop) {
                stop = true;
            } else if (ptr == &tag_listen) {
                accept_some(a);
            } else {
                struct pending *p = ptr;
                if (evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                    p->peer_done = true;
                peek(a, p);
            }
        }
        if (stop)
            break;
        int64_t now = clock_mono_ms();
        while (!TAILQ_EMPTY(&a->pending) && TAILQ_FIRST(&a->pending)->deadline_ms <= now)
            drop(a, TAILQ_FIRST(&a->pending)); /* silent too long */
        maybe_resume(a, now);
    }
    return NULL;
}

static int bind_listen(struct acceptor *a, struct chat_err *err)
{
    char port[16];
    snprintf(port, sizeof port, "%d", a->cfg.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(a->host, port, &hints, &res);
    if (rc != 0)
        return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "HOST %s: %s", a->host, gai_strerror(rc));
    int last_errno = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        int one = 1, zero = 0;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6) /* "::" serves IPv4 clients too */
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        /* Wake accept() only once the client has sent its first bytes, so
         * the first peek usually classifies; silent clients wait in the
         * kernel, not in our pending list. */
        int defer_s = a->cfg.peek_timeout_ms / 1000 > 0 ? a->cfg.peek_timeout_ms / 1000 : 1;
        setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_s, sizeof defer_s);
        /* The kernel caps the backlog at net.core.somaxconn. */
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 65535) == 0) {
            struct sockaddr_storage ss;
            socklen_t sl = sizeof ss;
            if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
                a->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                         : ((struct sockaddr_in *)&ss)->sin_port);
            a->lfd = fd;
            freeaddrinfo(res);
            return 0;
        }
        last_errno = errno;
        close(fd);
    }
    freeaddrinfo(res);
    return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "cannot listen on %s:%d: %s", a->host,
                        a->cfg.port, strerror(last_errno));
}

/* All acceptors' pending sockets, for /metrics.  A process-wide counter
 * rather than a pointer to one acceptor, so the gauge can never read an
 * acceptor that was freed. */
static pthread_once_t gauge_once = PTHREAD_ONCE_INIT;

static double pending_gauge(void *arg) { return (double)atomic_load(&total_pending); }

static void register_gauge(void)
{
    metrics_register_gauge("chatli_acceptor_pending",
                           "Accepted sockets still being classified as REST or WebSocket.",
                           pending_gauge, NULL);
}

int acceptor_open(const struct acceptor_config *cfg, struct acceptor **out, struct chat_err *err)
{
    *out = NULL;
    int rc;
    struct acceptor *a = calloc(1, sizeof *a);
    if (!a)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "out of memory");
    a->cfg = *cfg;
    a->lfd = a->epfd = a->evfd = -1;
    TAILQ_INIT(&a->pending);
    pthread_mutex_init(&a->addr_mu, NULL);
    if (a->cfg.pending_max <= 0)
        a->cfg.pending_max = DEFAULT_PENDING_MAX;
    if (a->cfg.peek_timeout_ms <= 0)
        a->cfg.peek_timeout_ms = DEFAULT_PEEK_TIMEOUT_MS;
    a->host = strdup(cfg->host ? cfg->host : "0.0.0.0");
    if (!a->host) {
        rc = chat_err_set(err, CHAT_E_INTERNAL, NULL, "out of memory");
        goto fail;
    }
    a->cfg.host = a->host;
    if ((rc = bind_listen(a, err)) != 0)
        goto fail;
    a->epfd = epoll_create1(EPOLL_CLOEXEC);
    a->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (a->epfd < 0 || a->evfd < 0) {
        rc = chat_err_set(err, CHAT_E_INTERNAL, NULL, "epoll/eventfd: %s", strerror(errno));
        goto fail;
    }
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &tag_listen};
    struct epoll_event sev = {.events = EPOLLIN, .data.ptr = &tag_stop};
    if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->lfd, &lev) != 0 ||
        epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->evfd, &sev) != 0) {
        rc = chat_err_set(err, CHAT_E_INTERNAL, NULL, "epoll_ctl: %s", strerror(errno));
        goto fail;
    }
    a->listen_armed = true;
    /* Published before the thread starts: a REST sink's close callback
     * (acceptor_release_http) may need *out as soon as a socket is handed on. */
    *out = a;
    int prc = pthread_create(&a->thread, NULL, acceptor_main, a);
    if (prc != 0) {
        *out = NULL;
        rc = chat_err_set(err, CHAT_E_INTERNAL, NULL, "pthread_create: %s", strerror(prc));
        goto fail;
    }
    a->running = true;
    pthread_once(&gauge_once, register_gauge);
    return 0;
fail:
    if (a->lfd >= 0)
        close(a->lfd);
    if (a->epfd >= 0)
        close(a->epfd);
    if (a->evfd >= 0)
        close(a->evfd);
    pthread_mutex_destroy(&a->addr_mu);
    free(a->host);
    free(a);
    return rc;
}

int acceptor_port(const struct acceptor *a) { return a->port; }

long acceptor_pending(const struct acceptor *a)
{
    return atomic_load(&((struct acceptor *)a)->npending);
}

void acceptor_stop(struct acceptor *a)
{
    if (!a || !a->running)
        return;
    uint64_t one = 1;
    ssize_t w = write(a->evfd, &one, sizeof one);
    (void)w; /* an eventfd write cannot fail short of overflow */
    pthread_join(a->thread, NULL);
    a->running = false;
    close(a->lfd); /* the kernel now refuses new connections */
    a->lfd = -1;
    while (!TAILQ_EMPTY(&a->pending))
        drop(a, TAILQ_FIRST(&a->pending));
    close(a->epfd);
    close(a->evfd);
    a->epfd = a->evfd = -1;
}

void acceptor_close(struct acceptor *a)
{
    if (!a)
        return;
    acceptor_stop(a);
    for (int i = 0; i < ADDR_BUCKETS; i++)
        while (a->addrs[i]) {
            struct addr_count *e = a->addrs[i];
            a->addrs[i] = e->next;
            free(e);
        }
    pthread_mutex_destroy(&a->addr_mu);
    free(a->host);
    free(a);
}
