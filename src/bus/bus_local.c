/* bus_local.c - the in-process fan-out adapter: publish calls the one
 * subscriber (the WebSocket gateway) directly, on the publishing thread.
 *
 * There is nothing to queue here: the subscriber callback itself only copies
 * the frame into the gateway's inbox and wakes its loop, so it never blocks.
 * With no subscriber (no gateway running, or it is shutting down) an event
 * is dropped: nobody is connected to receive it, and clients that connect
 * later recover through sync / GET, the store being the source of truth.
 *
 * Threads: any thread publishes; subscribe() is called by the gateway at
 * start and stop.  The subscriber pointer sits under a writer-preferring
 * rwlock: publishers share the read side (so they never serialize on each
 * other), and because the callback runs under the read lock, when
 * subscribe(NULL) returns no callback is still running - the gateway can
 * then free what `arg` points to.  A callback must therefore never call
 * subscribe() or publish() itself (the lock is not recursive once a writer
 * waits). */
#include "chatli/adapters/bus_local.h"

#include <pthread.h>
#include <stdlib.h>

#include "chatli/log.h"

struct bus_local {
    struct bus base; /* must stay first */
    pthread_rwlock_t lock; /* guards cb and arg */
    bus_deliver_cb cb;
    void *arg;
};

static void bus_local_close(struct bus *b)
{
    struct bus_local *l = (struct bus_local *)b;
    pthread_rwlock_destroy(&l->lock);
    free(l);
}

static int bus_local_publish(struct bus *b, const struct bus_event *ev, struct chat_err *err)
{
    struct bus_local *l = (struct bus_local *)b;
    /* A cache invalidation is for other instances; there are none. */
    if (ev->kind == BUS_INVALIDATE)
        return 0;
    pthread_rwlock_rdlock(&l->lock);
    if (l->cb)
        l->cb(l->arg, ev);
    pthread_rwlock_unlock(&l->lock);
    return 0;
}

static void bus_local_subscribe(struct bus *b, bus_deliver_cb cb, void *arg)
{
    struct bus_local *l = (struct bus_local *)b;
    pthread_rwlock_wrlock(&l->lock);
    l->cb = cb;
    l->arg = cb ? arg : NULL;
    pthread_rwlock_unlock(&l->lock);
}

static int bus_local_ping(struct bus *b, struct chat_err *err)
{
    return 0;
}

static const struct bus_ops bus_local_ops = {
    .close = bus_local_close,
    .publish = bus_local_publish,
    .subscribe = bus_local_subscribe,
    .ping = bus_local_ping,
};

int bus_local_new(struct bus **out, struct chat_err *err)
{
    pthread_rwlockattr_t attr;
    *out = NULL;
    struct bus_local *l = calloc(1, sizeof *l);
    if (!l)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "out of memory");
    /* Writer preference, so a steady stream of publishes cannot starve the
     * gateway's unsubscribe at shutdown (glibc prefers readers by default). */
    if (pthread_rwlockattr_init(&attr) != 0) {
        free(l);
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "cannot create a lock");
    }
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    int rc = pthread_rwlock_init(&l->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (rc != 0) {
        log_error("bus_local: pthread_rwlock_init failed (%d)", rc);
        free(l);
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "cannot create a lock");
    }
    l->base.ops = &bus_local_ops;
    l->base.name = "local";
    l->base.remote = false; /* this process's connections only: /readyz says "disabled" */
    *out = &l->base;
    return 0;
}
