/* linger.c - read-and-discard until the client is done, then close.
 *
 * One thread and one epoll set.  Entries are added from MHD worker threads
 * (under `mu`) and only ever removed and freed by the linger thread, so an
 * epoll event's pointer is valid while the thread handles it.  All entries
 * share one timeout, so the list in insertion order is also deadline
 * order and expiry looks only at its head.  Bounds: MAX_ENTRIES sockets at
 * once, MAX_BYTES discarded per socket. */
#include "linger.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chatli/clock.h"

#define MAX_ENTRIES 1024
#define MAX_BYTES (64LL * 1024 * 1024)

struct entry {
    int fd;
    int64_t deadline_ms;
    int64_t discarded;
    TAILQ_ENTRY(entry) link; /* in http_linger.entries */
};

/* Threads: `entries`, `n` and `stopped` under `mu` (writers: any
 * thread adding, the linger thread removing); `epfd`, `evfd` and
 * `timeout_ms` immutable after open. */
struct http_linger {
    int epfd, evfd;
    int timeout_ms;
    pthread_t thread;
    pthread_mutex_t mu;
    TAILQ_HEAD(, entry) entries; /* insertion order = deadline order */
    int n;
    bool stopped;
};

static char tag_stop;


static void unlink_locked(struct http_linger *l, struct entry *e)
{
    TAILQ_REMOVE(&l->entries, e, link);
    l->n--;
}

static void finish(struct http_linger *l, struct entry *e)
{
    pthread_mutex_lock(&l->mu);
    unlink_locked(l, e);
    pthread_mutex_unlock(&l->mu);
    /* Our fd is a dup: MHD may not have closed its own yet, and epoll drops
     * a registration only when the last fd of the socket closes, so without
     * the DEL a later event could still carry the freed `e`. */
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, e->fd, NULL);
    close(e->fd);
    free(e);
}

/* Reads what is there.  True when the entry is done (EOF, error, budget). */
static bool drain(struct entry *e)
{
    char buf[16384];
    for (;;) {
        ssize_t r = recv(e->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r > 0) {
            e->discarded += r;
            if (e->discarded > MAX_BYTES)
                return true;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return false;
        return true; /* EOF or a socket error */
    }
}

static void *linger_main(void *arg)
{
    struct http_linger *l = arg;
    struct epoll_event evs[64];
    for (;;) {
        pthread_mutex_lock(&l->mu);
        struct entry *first = TAILQ_FIRST(&l->entries);
        int64_t t = first ? first->deadline_ms - clock_mono_ms() : 1000;
        pthread_mutex_unlock(&l->mu);
        if (t < 0)
            t = 0;
        int n = epoll_wait(l->epfd, evs, 64, t > 1000 ? 1000 : (int)t);
        bool stop = false;
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &tag_stop) {
                stop = true;
                continue;
            }
            struct entry *e = evs[i].data.ptr;
            if (drain(e))
                finish(l, e);
        }
        if (stop)
            break;
        int64_t now = clock_mono_ms();
        for (;;) {
            pthread_mutex_lock(&l->mu);
            struct entry *e = TAILQ_FIRST(&l->entries);
            bool expired = e && e->deadline_ms <= now;
            pthread_mutex_unlock(&l->mu);
            if (!expired)
                break;
            finish(l, e);
        }
    }
    return NULL;
}

int http_linger_open(int timeout_ms, struct http_linger **out, struct chat_err *err)
{
    *out = NULL;
    struct http_linger *l = calloc(1, sizeof *l);
    if (!l)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "out of memory");
    TAILQ_INIT(&l->entries);
    l->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &tag_stop};
    if (l->epfd < 0 || l->evfd < 0 || epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->evfd, &ev) != 0)
        goto fail;
    pthread_mutex_init(&l->mu, NULL);
    if (pthread_create(&l->thread, NULL, linger_main, l) != 0) {
        pthread_mutex_destroy(&l->mu);
        goto fail;
    }
    *out = l;
    return 0;
fail:
    if (l->epfd >= 0)
        close(l->epfd);
    if (l->evfd >= 0)
        close(l->evfd);
    free(l);
    return chat_err_set(err, CHAT_E_INTERNAL, NULL, "linger thread: %s", strerror(errno));
}

void http_linger_add(struct http_linger *l, int fd)
{
    struct entry *e = l ? calloc(1, sizeof *e) : NULL;
    if (!e) {
        close(fd);
        return;
    }
    e->fd = fd;
    e->deadline_ms = clock_mono_ms() + l->timeout_ms;
    pthread_mutex_lock(&l->mu);
    if (l->stopped || l->n >= MAX_ENTRIES) {
        pthread_mutex_unlock(&l->mu);
        close(fd);
        free(e);
        return;
    }
    TAILQ_INSERT_TAIL(&l->entries, e, link);
    l->n++;
    /* Registered while holding `mu`, so the thread cannot expire and free
     * the entry before it is in the set. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = e};
    bool ok = epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) == 0;
    if (!ok) {
        unlink_locked(l, e);
        pthread_mutex_unlock(&l->mu);
        close(fd);
        free(e);
        return;
    }
    pthread_mutex_unlock(&l->mu);
}

void http_linger_close(struct http_linger *l)
{
    if (!l)
        return;
    uint64_t one = 1;
    ssize_t w = write(l->evfd, &one, sizeof one);
    (void)w; /* an eventfd write cannot fail short of overflow */
    pthread_join(l->thread, NULL);
    pthread_mutex_lock(&l->mu);
    l->stopped = true;
    struct entry *e;
    while ((e = TAILQ_FIRST(&l->entries))) {
        unlink_locked(l, e);
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, e->fd, NULL);
        close(e->fd);
        free(e);
    }
    pthread_mutex_unlock(&l->mu);
    close(l->epfd);
    close(l->evfd);
    pthread_mutex_destroy(&l->mu);
    free(l);
}
