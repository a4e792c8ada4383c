/* cache_redis.c - the Redis adapter of the cache port: rate-limit windows,
 * the WebSocket flood bucket and a value cache (core's first feed pages) shared by every chatli
 * instance on the same Redis.
 *
 * Keys live under main's prefix ("chatli:") plus "rl:" (windows), "v:"
 * (values) or "p:" (presence, cache_redis_presence.c), so one Redis can
 * serve other programs too.  When Redis cannot
 * answer, a call fails fast (cache_redis_conn.c) and this adapter answers
 * from an in-process cache_mem instead: the caller still gets a count, and
 * the limits hold per instance (N instances allow up to N times the limit)
 * until Redis returns, rather than every request failing or waiting.  The
 * switch both ways is logged once; ping reports Redis itself, so /readyz
 * says "degraded" meanwhile.  /metrics counts the calls answered by Redis
 * and by the fallback.
 *
 * Files: this one -> cache_redis_limit.c (the atomic window),
 * cache_redis_values.c (GET/SET/INCR) -> cache_redis_conn.c (pool, fail
 * fast); URL and connect plumbing come from
 * redis/redis_conn.c. */
#include "chatli/adapters/cache_redis.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>

#include "cache_redis_internal.h"
#include "chatli/adapters/cache_mem.h"
#include "chatli/log.h"
#include "chatli/metrics.h"

static void cache_redis_close(struct cache *c)
{
    struct cache_redis *cr = (struct cache_redis *)c;
    cache_redis__pool_cleanup(cr);
    cache_close(cr->fallback);
    pthread_mutex_destroy(&cr->mu);
    redis_endpoint_cleanup(&cr->ep);
    free(cr);
}

static void note_state(struct cache_redis *cr, bool down)
{
    if (atomic_exchange(&cr->down, down) == down)
        return;
    if (down)
        log_warn("cache_redis: Redis unavailable: rate limits are per instance until it returns");
    else
        log_info("cache_redis: Redis is back: rate limits are shared again");
}

static int cache_redis_hit(struct cache *c, const char *key, int64_t window_ms, int64_t *count,
                           int64_t *reset_ms, struct chat_err *err)
{
    struct cache_redis *cr = (struct cache_redis *)c;
    struct chat_err rerr = {0};
    if (cache_redis__hit(cr, key, window_ms, count, reset_ms, &rerr) == 0) {
        note_state(cr, false);
        atomic_fetch_add(&cr->redis_calls, 1);
        return 0;
    }
    note_state(cr, true);
    atomic_fetch_add(&cr->fallback_calls, 1);
    return cache_hit(cr->fallback, key, window_ms, count, reset_ms, err);
}

/* The WebSocket flood bucket.  No fallback here: the gateway always keeps
 * a local bucket too, and relies on it alone while Redis cannot answer. */
static int cache_redis_take(struct cache *c, const char *key, double rate_per_s, double burst,
                            bool *taken, struct chat_err *err)
{
    struct cache_redis *cr = (struct cache_redis *)c;
    int rc = cache_redis__take(cr, key, rate_per_s, burst, taken, err);
    note_state(cr, rc != 0);
    atomic_fetch_add(rc == 0 ? &cr->redis_calls : &cr->fallback_calls, 1);
    return rc;
}

/* A real round trip (PING), failing fast while backing off. */
static int cache_redis_ping(struct cache *c, struct chat_err *err)
{
    struct cache_redis *cr = (struct cache_redis *)c;
    redisContext *rc;
    int ret = cache_redis__get(cr, &rc, err);
    if (ret != 0)
        return ret;
    redisReply *r = redisCommand(rc, "PING");
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    cache_redis__put(cr, rc, ok && rc->err == 0);
    note_state(cr, !ok);
    return ok ? 0 : chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "cache_redis: PING failed");
}

static int cache_redis_get(struct cache *c, const char *key, char **val, size_t *len,
                           struct chat_err *err)
{
    return cache_redis__get_value((struct cache_redis *)c, key, val, len, err);
}

static int cache_redis_set(struct cache *c, const char *key, const void *val, size_t len,
                           int64_t ttl_ms, struct chat_err *err)
{
    return cache_redis__set_value((struct cache_redis *)c, key, val, len, ttl_ms, err);
}

static int cache_redis_incr(struct cache *c, const char *key, int64_t *value,
                            struct chat_err *err)
{
    return cache_redis__incr_value((struct cache_redis *)c, key, value, err);
}

static int cache_redis_get_versioned(struct cache *c, const char *version_key,
                                     const char *key_prefix, const char *key, int64_t *version,
                                     char **val, size_t *len, struct chat_err *err)
{
    return cache_redis__get_versioned((struct cache_redis *)c, version_key, key_prefix, key,
                                      version, val, len, err);
}

/* sessions */
static int cache_redis_session_get(struct cache *c, const uint8_t hash[32],
                                   char user_id[OID_SIZE], int64_t *expires_at,
                                   struct chat_err *err)
{
    return cache_redis__session_get((struct cache_redis *)c, hash, user_id, expires_at, err);
}

static int cache_redis_session_put(struct cache *c, const uint8_t hash[32], const char *user_id,
                                   int64_t expires_at, int64_t ttl_ms, struct chat_err *err)
{
    return cache_redis__session_put((struct cache_redis *)c, hash, user_id, expires_at, ttl_ms,
                                    err);
}

static int cache_redis_session_revoke(struct cache *c, const uint8_t hash[32], int64_t ttl_ms,
                                      struct chat_err *err)
{
    return cache_redis__session_revoke((struct cache_redis *)c, hash, ttl_ms, err);
}

static int cache_redis_presence_set(struct cache *c, const char *user_id, bool online,
                                    int64_t gen, int *change, struct chat_err *err)
{
    return cache_redis__presence_set((struct cache_redis *)c, user_id, online, gen, change, err);
}

static int cache_redis_presence_get(struct cache *c, const char (*user_ids)[OID_SIZE], size_t n,
                                    bool *online, struct chat_err *err)
{
    return cache_redis__presence_get((struct cache_redis *)c, user_ids, n, online, err);
}

static int cache_redis_presence_beat(struct cache *c, int64_t ttl_ms, bool leave,
                                     bool beat_before, bool *lost, char (**gone)[OID_SIZE],
                                     size_t *n_gone, struct chat_err *err)
{
    return cache_redis__presence_beat((struct cache_redis *)c, ttl_ms, leave, beat_before, lost,
                                      gone, n_gone, err);
}

static const struct cache_ops cache_redis_ops = {
    .close = cache_redis_close,
    .hit = cache_redis_hit,
    .ping = cache_redis_ping,
    .get = cache_redis_get,
    .set = cache_redis_set,
    .incr = cache_redis_incr,
    .get_versioned = cache_redis_get_versioned,
    .take = cache_redis_take,
    /* sessions */
    .session_get = cache_redis_session_get,
    .session_put = cache_redis_session_put,
    .session_revoke = cache_redis_session_revoke,
    .presence_set = cache_redis_presence_set,
    .presence_get = cache_redis_presence_get,
    .presence_beat = cache_redis_presence_beat,
};

static double redis_calls(void *arg)
{
    return (double)atomic_load(&((struct cache_redis *)arg)->redis_calls);
}

static double fallback_calls(void *arg)
{
    return (double)atomic_load(&((struct cache_redis *)arg)->fallback_calls);
}

static double value_hits(void *arg)
{
    return (double)atomic_load(&((struct cache_redis *)arg)->value_hits);
}

static double value_misses(void *arg)
{
    return (double)atomic_load(&((struct cache_redis *)arg)->value_misses);
}

static double session_hits(void *arg)
{
    return (double)atomic_load(&((struct cache_redis *)arg)->session_hits);
}

static double session_misses(void *arg)
{
    return (double)atomic_load(&((struct cache_redis *)arg)->session_misses);
}

int cache_redis_open(const char *url, const char *prefix, struct cache **out,
                     struct chat_err *err)
{
    *out = NULL;
    struct cache_redis *cr = calloc(1, sizeof *cr);
    if (!cr)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "out of memory");
    int rc = redis_endpoint_parse(url, &cr->ep, err);
    if (rc != 0) {
        free(cr);
        return rc;
    }
    rc = cache_mem_new(&cr->fallback, err);
    if (rc != 0) {
        redis_endpoint_cleanup(&cr->ep);
        free(cr);
        return rc;
    }
    pthread_mutex_init(&cr->mu, NULL);
    snprintf(cr->prefix, sizeof cr->prefix, "%srl:", prefix ? prefix : "");
    snprintf(cr->prefix_values, sizeof cr->prefix_values, "%sv:", prefix ? prefix : "");
    snprintf(cr->prefix_sessions, sizeof cr->prefix_sessions, "%ss:", prefix ? prefix : "");
    cache_redis__presence_init(cr, prefix);
    cr->base.ops = &cache_redis_ops;
    cr->base.name = "redis";
    cr->base.remote = true;
    *out = &cr->base;
    return 0;
}

/* Registers this cache's counters with /metrics; the cache must then live
 * as long as the process's metrics (main's does). */
void cache_redis_register_metrics(struct cache *c)
{
    metrics_register_gauge("chatli_cache_redis_calls",
                           "Rate-limit checks answered by Redis since start.", redis_calls, c);
    metrics_register_gauge("chatli_cache_redis_fallback_calls",
                           "Rate-limit checks answered in-process because Redis was down.",
                           fallback_calls, c);
    metrics_register_gauge("chatli_cache_redis_hits",
                           "Shared values (first feed pages) found in Redis since start.",
                           value_hits, c);
    metrics_register_gauge("chatli_cache_redis_misses",
                           "Shared values (first feed pages) looked up in Redis and not found.",
                           value_misses, c);
    metrics_register_gauge("chatli_cache_redis_session_hits",
                           "Sessions found in Redis after a miss in this process's cache.",
                           session_hits, c);
    metrics_register_gauge("chatli_cache_redis_session_misses",
                           "Sessions looked up in Redis and not found (then asked of the store).",
                           session_misses, c);
}
