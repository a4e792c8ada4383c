/* deadline.c - the thread that enforces request deadlines (deadline.h).
 *
 * It wakes every TICK_MS, walks the server's connection list under
 * conns_mu (the same lock draining takes) and shuts down each socket whose
 * deadline passed.  The walk is O(connections) per tick: at 10,000
 * connections that is a few microseconds per tick, and it keeps the
 * workers' per-request cost to one atomic store. */
#include "deadline.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "chatli/clock.h"
#include "chatli/log.h"
#include "chatli/metrics.h"
#include "http_internal.h"

#define TICK_MS 250 /* deadlines are enforced to within this */

/* Threads: `stop` under `mu` (main sets it, the thread reads it);
 * `srv` immutable. */
struct http_deadlines {
    struct http_server *srv;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stop;
};

static void expire(struct http_server *s, int64_t now)
{
    int n = 0;
    pthread_mutex_lock(&s->conns_mu);
    struct http_conn *hc;
    LIST_FOREACH(hc, &s->conns, link) {
        int64_t dl = atomic_load_explicit(&hc->deadline_ms, memory_order_relaxed);
        if (dl == 0 || dl > now || hc->expired || hc->fd < 0)
            continue;
        shutdown(hc->fd, SHUT_RDWR);
        hc->expired = true;
        n++;
    }
    pthread_mutex_unlock(&s->conns_mu);
    if (n > 0) {
        log_info("http: closed %d connection(s) past their request deadline", n);
        for (int i = 0; i < n; i++)
            metrics_error("request_deadline");
    }
}

static void *deadline_main(void *arg)
{
    struct http_deadlines *d = arg;
    pthread_mutex_lock(&d->mu);
    while (!d->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&d->cond, &d->mu, &ts);
        if (d->stop)
            break;
        pthread_mutex_unlock(&d->mu);
        expire(d->srv, clock_mono_ms());
        pthread_mutex_lock(&d->mu);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

int http_deadlines_open(struct http_server *s, struct http_deadlines **out, struct chat_err *err)
{
    *out = NULL;
    struct http_deadlines *d = calloc(1, sizeof *d);
    if (!d)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "out of memory");
    d->srv = s;
    pthread_mutex_init(&d->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cond, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&d->thread, NULL, deadline_main, d);
    if (rc != 0) {
        pthread_cond_destroy(&d->cond);
        pthread_mutex_destroy(&d->mu);
        free(d);
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "pthread_create: deadlines");
    }
    *out = d;
    return 0;
}

void http_deadlines_close(struct http_deadlines *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    d->stop = true;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->mu);
    free(d);
}
