/* cache_redis_values.c - the Redis cache's shared values: GET, SET with a
 * TTL (PX) and INCR, one round trip each, counted as hits and misses for
 * /metrics.
 *
 * Unlike the rate-limit window there is no in-process fallback here: a
 * caller that gets CHAT_E_UNAVAILABLE (fast, while the backoff runs)
 * builds the value from the store, which is what a miss costs anyway. */
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "cache_redis_internal.h"

/* Runs one command whose arguments are already formatted by the caller's
 * redisCommand; hands the reply (new) or NULL when the connection failed. */
static int finish(struct cache_redis *cr, redisContext *rc, redisReply *r, struct chat_err *err)
{
    bool ok = r && rc->err == 0 && r->type != REDIS_REPLY_ERROR;
    cache_redis__put(cr, rc, rc->err == 0);
    if (!ok)
        return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "cache_redis: command failed");
    return 0;
}

int cache_redis__get_value(struct cache_redis *cr, const char *key, char **val, size_t *len,
                           struct chat_err *err)
{
    *val = NULL;
    *len = 0;
    redisContext *rc;
    int ret = cache_redis__get(cr, &rc, err);
    if (ret != 0)
        return ret;
    redisReply *r = redisCommand(rc, "GET %s%s", cr->prefix_values, key);
    ret = finish(cr, rc, r, err);
    if (ret == 0 && r->type == REDIS_REPLY_STRING) {
        *val = malloc((size_t)r->len + 1);
        if (*val) {
            memcpy(*val, r->str, (size_t)r->len);
            (*val)[r->len] = '\0';
            *len = (size_t)r->len;
        }
    }
    if (r)
        freeReplyObject(r);
    if (ret != 0)
        return ret;
    atomic_fetch_add(*val ? &cr->value_hits : &cr->value_misses, 1);
    return *val ? 0 : chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "cache_redis: miss");
}

int cache_redis__set_value(struct cache_redis *cr, const char *key, const void *val, size_t len,
                           int64_t ttl_ms, struct chat_err *err)
{
    redisContext *rc;
    int ret = cache_redis__get(cr, &rc, err);
    if (ret != 0)
        return ret;
    redisReply *r = redisCommand(rc, "SET %s%s %b PX %lld", cr->prefix_values, key, val, len,
                                 (long long)(ttl_ms > 0 ? ttl_ms : 1));
    ret = finish(cr, rc, r, err);
    if (r)
        freeReplyObject(r);
    return ret;
}

int cache_redis__incr_value(struct cache_redis *cr, const char *key, int64_t *value,
                            struct chat_err *err)
{
    redisContext *rc;
    int ret = cache_redis__get(cr, &rc, err);
    if (ret != 0)
        return ret;
    redisReply *r = redisCommand(rc, "INCR %s%s", cr->prefix_values, key);
    ret = finish(cr, rc, r, err);
    if (ret == 0 && r->type == REDIS_REPLY_INTEGER)
        *value = r->integer;
    else if (ret == 0)
        ret = chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "cache_redis: INCR: not an integer");
    if (r)
        freeReplyObject(r);
    return ret;
}

/* The version and the value under it, atomically and in one round trip.
 * EVAL (not EVALSHA): the script is short, Redis keeps its compiled form
 * by hash anyway, and a restarted Redis needs no reload.  The value's key
 * is built inside the script, which a Redis Cluster would refuse (keys
 * must be declared); chatli uses one Redis. */
static const char VERSIONED_LUA[] =
    "local v = tonumber(redis.call('GET', KEYS[1]) or '0') or 0\n"
    "return {v, redis.call('GET', ARGV[1] .. v .. ':' .. ARGV[2])}\n";

static int read_versioned(redisReply *r, int64_t *version, char **val, size_t *len)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER)
        return -1;
    *version = r->element[0]->integer;
    redisReply *p = r->element[1];
    if (p->type != REDIS_REPLY_STRING)
        return 0; /* a miss */
    *val = malloc((size_t)p->len + 1);
    if (!*val)
        return 0; /* treated as a miss */
    memcpy(*val, p->str, (size_t)p->len);
    (*val)[p->len] = '\0';
    *len = (size_t)p->len;
    return 0;
}

int cache_redis__get_versioned(struct cache_redis *cr, const char *version_key,
                               const char *key_prefix, const char *key, int64_t *version,
                               char **val, size_t *len, struct chat_err *err)
{
    *version = -1;
    *val = NULL;
    *len = 0;
    redisContext *rc;
    int ret = cache_redis__get(cr, &rc, err);
    if (ret != 0)
        return ret;
    redisReply *r = redisCommand(rc, "EVAL %s 1 %s%s %s%s %s", VERSIONED_LUA, cr->prefix_values,
                                 version_key, cr->prefix_values, key_prefix, key);
    ret = finish(cr, rc, r, err);
    if (ret == 0 && read_versioned(r, version, val, len) != 0)
        ret = chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "cache_redis: unexpected reply");
    if (r)
        freeReplyObject(r);
    if (ret != 0) {
        *version = -1;
        return ret;
    }
    atomic_fetch_add(*val ? &cr->value_hits : &cr->value_misses, 1);
    return *val ? 0 : chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "cache_redis: miss");
}
