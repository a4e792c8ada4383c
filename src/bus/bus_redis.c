/* bus_redis.c - the Redis adapter of the bus port: one fan-out shared by
 * every chatli instance on the same Redis.
 *
 * An event published here is delivered to this instance's subscriber at
 * once, on the publishing thread (exactly as bus_local does, so local
 * delivery costs nothing more and survives a Redis outage), and queued for
 * the publisher thread, which PUBLISHes it once on `<prefix>bus`.  Every
 * instance's subscriber thread receives every message; it drops its own
 * (the origin field, a random 16-hex-digit instance id drawn at open) and
 * delivers the others to its subscriber with `origin` set and skip_conn 0.
 * Revocations and cache invalidations from other instances also go to the
 * listeners (core's caches); when the subscription comes back after a
 * failure, or another instance says it dropped events, listeners get
 * on_gap.  Ordering: Redis delivers one connection's PUBLISHes in order, so
 * one instance's events reach another in the order they were published;
 * events of different instances interleave in arrival order.
 *
 * Files: this one (open, close, ops) -> bus_redis_pub.c (publisher thread),
 * bus_redis_sub.c (subscriber thread) -> bus_redis_event.c (wire format,
 * dispatch); Redis URL and connect plumbing come from redis/redis_conn.c. */
#include "chatli/adapters/bus_redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "bus_redis_internal.h"
#include "chatli/log.h"

static void bus_redis_close(struct bus *b)
{
    struct bus_redis *br = (struct bus_redis *)b;
    bus_redis__sub_stop(br);
    bus_redis__pub_stop(br);
    pthread_rwlock_destroy(&br->lock);
    redis_endpoint_cleanup(&br->ep);
    free(br);
}

static int bus_redis_publish(struct bus *b, const struct bus_event *ev, struct chat_err *err)
{
    struct bus_redis *br = (struct bus_redis *)b;
    if (ev->kind == BUS_FRAME)
        bus_redis__deliver_local(br, ev);
    struct pub_msg *m = NULL;
    if (bus_redis__encode(br, ev, ev->kind, &m) != 0)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "bus_redis: out of memory");
    bus_redis__pub_push(br, m);
    if (!atomic_load(&br->sub.up))
        return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL,
                            "bus_redis: Redis is down; delivered on this instance only");
    return 0;
}

static void bus_redis_subscribe(struct bus *b, bus_deliver_cb cb, void *arg)
{
    struct bus_redis *br = (struct bus_redis *)b;
    pthread_rwlock_wrlock(&br->lock);
    br->cb = cb;
    br->cb_arg = cb ? arg : NULL;
    pthread_rwlock_unlock(&br->lock);
}

static int bus_redis_listen(struct bus *b, const struct bus_listener *l, struct chat_err *err)
{
    struct bus_redis *br = (struct bus_redis *)b;
    int rc = 0;
    pthread_rwlock_wrlock(&br->lock);
    if (br->n_listeners == BUS_LISTENERS_MAX)
        rc = chat_err_set(err, CHAT_E_INTERNAL, NULL, "bus_redis: too many listeners");
    else
        br->listeners[br->n_listeners++] = *l;
    pthread_rwlock_unlock(&br->lock);
    return rc;
}

/* Compacts the table over the removed entries; the write lock waits for
 * any dispatch (which holds the read side) to finish its calls. */
static void bus_redis_unlisten(struct bus *b, void *arg)
{
    struct bus_redis *br = (struct bus_redis *)b;
    pthread_rwlock_wrlock(&br->lock);
    size_t kept = 0;
    for (size_t i = 0; i < br->n_listeners; i++)
        if (br->listeners[i].arg != arg)
            br->listeners[kept++] = br->listeners[i];
    br->n_listeners = kept;
    pthread_rwlock_unlock(&br->lock);
}

/* The subscriber's state, without a round trip: it is what decides whether
 * other instances' events reach this one. */
static int bus_redis_ping(struct bus *b, struct chat_err *err)
{
    struct bus_redis *br = (struct bus_redis *)b;
    if (atomic_load(&br->sub.up))
        return 0;
    return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "bus_redis: not subscribed to Redis");
}

static const struct bus_ops bus_redis_ops = {
    .close = bus_redis_close,
    .publish = bus_redis_publish,
    .subscribe = bus_redis_subscribe,
    .ping = bus_redis_ping,
    .listen = bus_redis_listen,
    .unlisten = bus_redis_unlisten,
};

static int make_origin(char out[BUS_ORIGIN_LEN + 1])
{
    unsigned char raw[BUS_ORIGIN_LEN / 2];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
        return -1;
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

static int init_lock(pthread_rwlock_t *lock)
{
    pthread_rwlockattr_t attr;
    if (pthread_rwlockattr_init(&attr) != 0)
        return -1;
    /* Writer preference, as in bus_local: a publish storm must not starve
     * the gateway's unsubscribe at shutdown. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    int rc = pthread_rwlock_init(lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    return rc == 0 ? 0 : -1;
}

int bus_redis_open(const char *url, const char *prefix, struct bus **out, struct chat_err *err)
{
    *out = NULL;
    struct bus_redis *br = calloc(1, sizeof *br);
    if (!br)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "out of memory");
    int rc = redis_endpoint_parse(url, &br->ep, err);
    if (rc != 0) {
        free(br);
        return rc;
    }
    if (make_origin(br->origin) != 0 || init_lock(&br->lock) != 0) {
        redis_endpoint_cleanup(&br->ep);
        free(br);
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "bus_redis: cannot initialise");
    }
    snprintf(br->channel, sizeof br->channel, "%sbus", prefix ? prefix : "");
    br->base.ops = &bus_redis_ops;
    br->base.name = "redis";
    br->base.remote = true;
    /* From here bus_redis_close undoes whatever started. */
    if (bus_redis__pub_start(br, err) != 0 || bus_redis__sub_start(br, err) != 0) {
        bus_redis_close(&br->base);
        return CHAT_E_INTERNAL;
    }
    log_info("bus_redis: instance %s on channel %s", br->origin, br->channel);
    *out = &br->base;
    return 0;
}

const char *bus_redis_origin(struct bus *b)
{
    return ((struct bus_redis *)b)->origin;
}
