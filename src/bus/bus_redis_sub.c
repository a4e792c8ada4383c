/* bus_redis_sub.c - the subscriber thread of the Redis bus.
 *
 * One blocking connection: SUBSCRIBE to the channel, then a redisGetReply
 * loop that hands each message to bus_redis__dispatch (which only queues
 * into the gateway's inbox or drops cache entries, so it never blocks).
 * The connection has no read timeout - a quiet channel is normal - but TCP
 * keep-alive, and a Redis that stops or restarts closes the socket, which
 * ends the read at once.  Then the thread reconnects with backoff
 * (REDIS_BACKOFF_MIN_MS doubling to _MAX_MS), subscribes again and, since
 * messages published meanwhile are gone (Redis pub/sub keeps nothing),
 * calls every listener's on_gap.  close() wakes a blocked read by shutting
 * the socket down (shutdown(2) is safe from another thread; the thread
 * itself frees the context) and a backoff wait through the condition
 * variable. */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "bus_redis_internal.h"
#include "chatli/clock.h"
#include "chatli/log.h"

/* Sleeps until the backoff allows a new attempt or close() asks to stop.
 * Returns false when stopping. */
static bool wait_backoff(struct bus_redis_sub *s)
{
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        int64_t left = s->bo.next_ms - clock_mono_ms();
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
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    bool go = !s->stop;
    pthread_mutex_unlock(&s->mu);
    return go;
}

/* Connects and subscribes; publishes the context under mu.  0 or -1. */
static int subscribe(struct bus_redis *br)
{
    struct bus_redis_sub *s = &br->sub;
    redisContext *rc = NULL;
    struct chat_err err = {0};
    if (redis_connect(&br->ep, BUS_REDIS_CONNECT_MS, BUS_REDIS_IO_MS, &rc, &err) != 0)
        return -1;
    redisReply *r = redisCommand(rc, "SUBSCRIBE %s", br->channel);
    bool ok = r && r->type == REDIS_REPLY_ARRAY;
    if (r)
        freeReplyObject(r);
    /* Subscribed: from now on a quiet channel must not time the read out. */
    struct timeval none = {0, 0};
    if (!ok || redisSetTimeout(rc, none) != REDIS_OK) {
        redisFree(rc);
        return -1;
    }
    pthread_mutex_lock(&s->mu);
    if (s->stop) {
        pthread_mutex_unlock(&s->mu);
        redisFree(rc);
        return -1;
    }
    s->rc = rc;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void handle(struct bus_redis *br, redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3)
        return;
    redisReply *kind = r->element[0], *data = r->element[2];
    if (kind->type == REDIS_REPLY_STRING && strcmp(kind->str, "message") == 0 &&
        data->type == REDIS_REPLY_STRING)
        bus_redis__dispatch(br, data->str, (size_t)data->len);
}

/* Reads messages until the connection fails or close() shuts it down. */
static void read_loop(struct bus_redis *br)
{
    struct bus_redis_sub *s = &br->sub;
    for (;;) {
        redisReply *r = NULL;
        if (redisGetReply(s->rc, (void **)&r) != REDIS_OK || !r)
            return;
        handle(br, r);
        freeReplyObject(r);
    }
}

static void disconnect(struct bus_redis_sub *s)
{
    pthread_mutex_lock(&s->mu);
    redisContext *rc = s->rc;
    s->rc = NULL;
    pthread_mutex_unlock(&s->mu);
    redisFree(rc);
}

static void *sub_main(void *arg)
{
    struct bus_redis *br = arg;
    struct bus_redis_sub *s = &br->sub;
    while (wait_backoff(s)) {
        if (subscribe(br) != 0) {
            s->missed = true;
            redis_backoff_failed(&s->bo, clock_mono_ms());
            continue;
        }
        redis_backoff_ok(&s->bo);
        atomic_store(&s->up, true);
        if (s->missed) {
            log_info("bus_redis: subscribed again after a gap: telling listeners");
            bus_redis__gap(br);
        }
        read_loop(br);
        atomic_store(&s->up, false);
        s->missed = true;
        disconnect(s);
        log_warn("bus_redis: subscriber lost Redis; reconnecting with backoff");
        redis_backoff_failed(&s->bo, clock_mono_ms());
    }
    return NULL;
}

int bus_redis__sub_start(struct bus_redis *br, struct chat_err *err)
{
    struct bus_redis_sub *s = &br->sub;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    atomic_init(&s->up, false);
    if (pthread_create(&s->thread, NULL, sub_main, br) != 0)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "bus_redis: cannot start the subscriber");
    s->started = true;
    return 0;
}

void bus_redis__sub_stop(struct bus_redis *br)
{
    struct bus_redis_sub *s = &br->sub;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        if (s->rc)
            shutdown(s->rc->fd, SHUT_RDWR);
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        s->started = false;
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
}
