/* cache_redis_limit.c - the rate-limit window counter and the WebSocket
 * flood bucket on Redis, each atomic and in one round trip.
 *
 * A Lua script does what cache_mem does under its mutex: INCR the key,
 * start its window (PEXPIRE) on the first hit, and return the count with
 * the ms left (PTTL).  Redis runs a script atomically, so concurrent
 * instances never both see "first hit" or lose an expiry between two
 * commands (INCR then PEXPIRE from the client could leave a key without a
 * TTL if the client died between them: a limit that never resets).  The
 * script is loaded once (SCRIPT LOAD) and then called by its SHA with
 * EVALSHA, so each hit sends only the key and the window; a Redis that
 * restarted forgets scripts, answers NOSCRIPT, and the script is loaded
 * again and the call retried once. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

#include "cache_redis_internal.h"

static const char WINDOW_LUA[] =
    "local n = redis.call('INCR', KEYS[1])\n"
    "local t = redis.call('PTTL', KEYS[1])\n"
    "if n == 1 or t < 0 then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[1])\n"
    "  t = tonumber(ARGV[1])\n"
    "end\n"
    "return {n, t}\n";

/* The token bucket of the WebSocket flood limit (take): `tokens` and the
 * refill time `ts` in a hash.  The clock is Redis's own (TIME), so
 * instances whose clocks differ still refill one bucket the same way; the
 * key expires once the bucket would be full again, so idle users cost
 * nothing.  replicate_commands makes TIME legal before writes on Redis
 * before 5 (later versions replicate effects anyway). */
static const char BUCKET_LUA[] =
    "if redis.replicate_commands then redis.replicate_commands() end\n"
    "local rate = tonumber(ARGV[1])\n"
    "local burst = tonumber(ARGV[2])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local v = redis.call('HMGET', KEYS[1], 'tokens', 'ts')\n"
    "local tokens = tonumber(v[1]) or burst\n"
    "local ts = tonumber(v[2]) or now\n"
    "if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate / 1000) end\n"
    "local ok = 0\n"
    "if tokens >= 1 then tokens = tokens - 1; ok = 1 end\n"
    "redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))\n"
    "redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)\n"
    "return ok\n";

static const char *const scripts[CACHE_REDIS_SCRIPTS] = {WINDOW_LUA, BUCKET_LUA};

/* Loads script `which` on `rc` and remembers its SHA; 0 or -1. */
static int load_script(struct cache_redis *cr, redisContext *rc, int which)
{
    redisReply *r = redisCommand(rc, "SCRIPT LOAD %s", scripts[which]);
    int ok = r && r->type == REDIS_REPLY_STRING && r->len == 40;
    if (ok) {
        pthread_mutex_lock(&cr->mu);
        memcpy(cr->sha[which], r->str, 41);
        pthread_mutex_unlock(&cr->mu);
    }
    if (r)
        freeReplyObject(r);
    return ok ? 0 : -1;
}

/* One EVALSHA of script `which` on the key <prefix><key> with two
 * arguments.  Returns the reply (new), or NULL when the connection failed
 * or Redis does not know the script (*noscript). */
static redisReply *eval_once(struct cache_redis *cr, redisContext *rc, int which,
                             const char *key, const char *arg1, const char *arg2,
                             bool *noscript)
{
    char sha[41];
    pthread_mutex_lock(&cr->mu);
    memcpy(sha, cr->sha[which], sizeof sha);
    pthread_mutex_unlock(&cr->mu);
    *noscript = !sha[0];
    if (*noscript)
        return NULL;
    char full[256];
    snprintf(full, sizeof full, "%s%s", cr->prefix, key);
    const char *argv[] = {"EVALSHA", sha, "1", full, arg1, arg2};
    int argc = arg2 ? 6 : 5;
    redisReply *r = redisCommandArgv(rc, argc, argv, NULL);
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        *noscript = true;
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* eval_once, loading the script first when Redis does not know it (it was
 * never loaded, or Redis restarted and forgot it). */
static redisReply *eval_script(struct cache_redis *cr, redisContext *rc, int which,
                               const char *key, const char *arg1, const char *arg2)
{
    bool noscript;
    redisReply *r = eval_once(cr, rc, which, key, arg1, arg2, &noscript);
    if (!r && noscript && rc->err == 0 && load_script(cr, rc, which) == 0)
        r = eval_once(cr, rc, which, key, arg1, arg2, &noscript);
    return r;
}

static int read_result(redisReply *r, int64_t *count, int64_t *reset_ms)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_INTEGER)
        return -1;
    *count = r->element[0]->integer;
    *reset_ms = r->element[1]->integer;
    return 0;
}

int cache_redis__hit(struct cache_redis *cr, const char *key, int64_t window_ms,
                     int64_t *count, int64_t *reset_ms, struct chat_err *err)
{
    redisContext *rc;
    int ret = cache_redis__get(cr, &rc, err);
    if (ret != 0)
        return ret;
    char window[24];
    snprintf(window, sizeof window, "%lld", (long long)window_ms);
    redisReply *r = eval_script(cr, rc, CACHE_REDIS_SCRIPT_WINDOW, key, window, NULL);
    ret = read_result(r, count, reset_ms);
    bool conn_ok = rc->err == 0;
    if (r)
        freeReplyObject(r);
    cache_redis__put(cr, rc, conn_ok);
    if (ret != 0)
        return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "cache_redis: %s",
                            conn_ok ? "unexpected reply" : "connection failed");
    return 0;
}

int cache_redis__take(struct cache_redis *cr, const char *key, double rate_per_s, double burst,
                      bool *taken, struct chat_err *err)
{
    redisContext *rc;
    int ret = cache_redis__get(cr, &rc, err);
    if (ret != 0)
        return ret;
    char rate[32], cap[32];
    snprintf(rate, sizeof rate, "%.17g", rate_per_s);
    snprintf(cap, sizeof cap, "%.17g", burst);
    redisReply *r = eval_script(cr, rc, CACHE_REDIS_SCRIPT_BUCKET, key, rate, cap);
    bool ok = r && r->type == REDIS_REPLY_INTEGER;
    if (ok)
        *taken = r->integer == 1;
    bool conn_ok = rc->err == 0;
    if (r)
        freeReplyObject(r);
    cache_redis__put(cr, rc, conn_ok);
    if (!ok)
        return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "cache_redis: %s",
                            conn_ok ? "unexpected reply" : "connection failed");
    return 0;
}
