/* bus_redis_pub.c - the publisher thread of the Redis bus.
 *
 * publish() may run on any thread, including ones that must never block
 * (the gateway's), so it only queues the encoded event; this thread owns a
 * hiredis context (not thread-safe) and pipelines what is queued: up to
 * BUS_REDIS_BATCH PUBLISH commands appended, then their replies read, one
 * round trip per batch.
 *
 * Delivery to other instances is at most once.  When Redis cannot take a
 * batch (down, timed out) the batch is dropped rather than retried: some of
 * it may already have gone out, and a retry would deliver those twice.
 * Instead the thread remembers the loss and, first thing on the next
 * working connection, publishes a GAP notice, so every other instance's
 * listeners learn that they may have missed events (the gateway answers
 * with `resync`, clients `sync` from the store, which has every acked
 * message).  While Redis is down, events queue until the backoff allows
 * the next connect (at most REDIS_BACKOFF_MAX_MS, and BUS_REDIS_QUEUE_MAX
 * events); a failed connect drops them, so memory stays bounded. */
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus_redis_internal.h"
#include "chatli/clock.h"
#include "chatli/log.h"

static void free_list(struct pub_msg *m)
{
    while (m) {
        struct pub_msg *next = m->next;
        free(m);
        m = next;
    }
}

void bus_redis__pub_push(struct bus_redis *br, struct pub_msg *m)
{
    struct bus_redis_pub *p = &br->pub;
    m->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->len >= BUS_REDIS_QUEUE_MAX || p->stop) {
        p->lost = true;
        pthread_mutex_unlock(&p->mu);
        free(m);
        return;
    }
    if (p->tail)
        p->tail->next = m;
    else
        p->head = m;
    p->tail = m;
    if (p->len++ == 0)
        pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Takes up to BUS_REDIS_BATCH queued events; call with mu held. */
static struct pub_msg *take_locked(struct bus_redis_pub *p, size_t *n)
{
    struct pub_msg *first = p->head, *last = NULL, *m = first;
    *n = 0;
    while (m && *n < BUS_REDIS_BATCH) {
        last = m;
        m = m->next;
        (*n)++;
    }
    if (last)
        last->next = NULL;
    p->head = m;
    if (!m)
        p->tail = NULL;
    p->len -= *n;
    return first;
}

static void drop_conn(struct bus_redis_pub *p, const char *why)
{
    log_warn("bus_redis: publisher lost Redis (%s); events go to this instance only until it "
             "returns", why);
    redisFree(p->rc);
    p->rc = NULL;
    redis_backoff_failed(&p->bo, clock_mono_ms());
}

static bool ensure_conn(struct bus_redis *br)
{
    struct bus_redis_pub *p = &br->pub;
    if (p->rc)
        return true;
    if (!redis_backoff_ready(&p->bo, clock_mono_ms()))
        return false;
    struct chat_err err = {0};
    if (redis_connect(&br->ep, BUS_REDIS_CONNECT_MS, BUS_REDIS_IO_MS, &p->rc, &err) != 0) {
        redis_backoff_failed(&p->bo, clock_mono_ms());
        return false;
    }
    redis_backoff_ok(&p->bo);
    return true;
}

/* Sends one batch (after a gap notice when `gap`); 0, or -1 when the
 * connection failed (it is then dropped). */
static int send_batch(struct bus_redis *br, struct pub_msg *batch, bool gap)
{
    struct bus_redis_pub *p = &br->pub;
    size_t sent = 0;
    struct pub_msg *notice = NULL;
    if (gap && bus_redis__encode(br, NULL, BUS_REDIS_KIND_GAP, &notice) == 0) {
        redisAppendCommand(p->rc, "PUBLISH %s %b", br->channel, notice->data, notice->len);
        sent++;
        free(notice);
    }
    for (struct pub_msg *m = batch; m; m = m->next, sent++)
        redisAppendCommand(p->rc, "PUBLISH %s %b", br->channel, m->data, m->len);
    for (size_t i = 0; i < sent; i++) {
        redisReply *r = NULL;
        if (redisGetReply(p->rc, (void **)&r) != REDIS_OK) {
            drop_conn(p, p->rc->errstr);
            return -1;
        }
        freeReplyObject(r);
    }
    return 0;
}

/* Without a connection, waits (mu held) until the backoff allows the next
 * attempt: events queue meanwhile, so a Redis that is back gets them after
 * the gap notice instead of their being dropped.  Returns false to stop. */
static bool wait_backoff_locked(struct bus_redis_pub *p)
{
    while (!p->stop && !p->rc) {
        int64_t left = p->bo.next_ms - clock_mono_ms();
        if (left <= 0)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    return !p->stop;
}

static void *pub_main(void *arg)
{
    struct bus_redis *br = arg;
    struct bus_redis_pub *p = &br->pub;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        if (!wait_backoff_locked(p))
            break;
        size_t n;
        struct pub_msg *batch = take_locked(p, &n);
        bool gap = p->lost;
        p->lost = false;
        pthread_mutex_unlock(&p->mu);
        bool ok = ensure_conn(br) && send_batch(br, batch, gap) == 0;
        free_list(batch);
        pthread_mutex_lock(&p->mu);
        if (!ok)
            p->lost = true;
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int bus_redis__pub_start(struct bus_redis *br, struct chat_err *err)
{
    struct bus_redis_pub *p = &br->pub;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pthread_create(&p->thread, NULL, pub_main, br) != 0)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "bus_redis: cannot start the publisher");
    p->started = true;
    return 0;
}

/* Stops the thread; events still queued are dropped (the process is going
 * away, and its connections with it). */
void bus_redis__pub_stop(struct bus_redis *br)
{
    struct bus_redis_pub *p = &br->pub;
    if (p->started) {
        pthread_mutex_lock(&p->mu);
        p->stop = true;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thread, NULL);
        p->started = false;
    }
    free_list(p->head);
    p->head = p->tail = NULL;
    if (p->rc)
        redisFree(p->rc);
    p->rc = NULL;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
}
