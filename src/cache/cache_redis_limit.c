/* cache_redis_limit.c - the rate-limit window counter on Redis, atomic and
 * in one round trip.
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

/* Loads the script on `rc` and remembers its SHA; 0 or -1. */
static int load_script(struct cache_redis *cr, redisContext *rc)
{
    redisReply *r = redisCommand(rc, "SCRIPT LOAD %s", WINDOW_LUA);
    int ok = r && r->type == REDIS_REPLY_STRING && r->len == 40;
    if (ok) {
        pthread_mutex_lock(&cr->mu);
        memcpy(cr->sha, r->str, 41);
        pthread_mutex_unlock(&cr->mu);
    }
    if (r)
        freeReplyObject(r);
    return ok ? 0 : -1;
}

/* One EVALSHA.  Returns the reply (new), or NULL when the connection
 * failed; *noscript says Redis does not know the script. */
static redisReply *eval_window(struct cache_redis *cr, redisContext *rc, const char *key,
                               int64_t window_ms, bool *noscript)
{
    char sha[41];
    pthread_mutex_lock(&cr->mu);
    memcpy(sha, cr->sha, sizeof sha);
    pthread_mutex_unlock(&cr->mu);
    *noscript = !sha[0];
    if (*noscript)
        return NULL;
    redisReply *r = redisCommand(rc, "EVALSHA %s 1 %s%s %lld", sha, cr->prefix, key,
                                 (long long)window_ms);
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        *noscript = true;
        freeReplyObject(r);
        return NULL;
    }
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
    bool noscript;
    redisReply *r = eval_window(cr, rc, key, window_ms, &noscript);
    if (!r && noscript && rc->err == 0 && load_script(cr, rc) == 0)
        r = eval_window(cr, rc, key, window_ms, &noscript);
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
