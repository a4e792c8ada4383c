/* cache_redis_conn.c - the Redis cache's connections: a pool of hiredis
 * contexts (each used by one thread at a time: hiredis contexts are not
 * thread-safe) and the fail-fast rule.
 *
 * After a failed call or connect, no caller touches Redis until the
 * backoff's time has come (REDIS_BACKOFF_MIN_MS doubling to _MAX_MS):
 * while Redis is down a rate-limit check costs a mutex and a clock read
 * before it falls back to the in-process counter, never a connect
 * timeout.  The first caller after the wait tries a connect; success
 * resets the backoff, and everybody uses Redis again. */
#include <hiredis/hiredis.h>
#include <stdlib.h>

#include "cache_redis_internal.h"
#include "chatli/clock.h"
#include "chatli/log.h"

int cache_redis__get(struct cache_redis *cr, struct redisContext **out, struct chat_err *err)
{
    *out = NULL;
    pthread_mutex_lock(&cr->mu);
    if (cr->n_idle > 0) {
        *out = cr->idle[--cr->n_idle];
        pthread_mutex_unlock(&cr->mu);
        return 0;
    }
    bool ready = redis_backoff_ready(&cr->bo, clock_mono_ms());
    if (ready) /* one caller tries; the others keep failing fast meanwhile */
        redis_backoff_failed(&cr->bo, clock_mono_ms());
    pthread_mutex_unlock(&cr->mu);
    if (!ready)
        return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "cache_redis: backing off");
    int rc = redis_connect(&cr->ep, CACHE_REDIS_CONNECT_MS, CACHE_REDIS_IO_MS, out, err);
    pthread_mutex_lock(&cr->mu);
    if (rc == 0)
        redis_backoff_ok(&cr->bo);
    pthread_mutex_unlock(&cr->mu);
    return rc;
}

void cache_redis__put(struct cache_redis *cr, struct redisContext *rc, bool ok)
{
    struct redisContext *dead[CACHE_REDIS_POOL];
    int n_dead = 0;
    pthread_mutex_lock(&cr->mu);
    if (!ok) {
        /* The idle ones talk to the same Redis: most likely dead too, and
         * a hung Redis would make each cost a full timeout.  Drop them. */
        redis_backoff_failed(&cr->bo, clock_mono_ms());
        while (cr->n_idle > 0)
            dead[n_dead++] = cr->idle[--cr->n_idle];
    } else if (cr->n_idle < CACHE_REDIS_POOL) {
        cr->idle[cr->n_idle++] = rc;
        rc = NULL;
    }
    pthread_mutex_unlock(&cr->mu);
    if (rc)
        redisFree(rc);
    for (int i = 0; i < n_dead; i++)
        redisFree(dead[i]);
}

void cache_redis__pool_cleanup(struct cache_redis *cr)
{
    for (int i = 0; i < cr->n_idle; i++)
        redisFree(cr->idle[i]);
    cr->n_idle = 0;
}
