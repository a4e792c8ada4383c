/* cache_redis_presence.c - cluster-wide presence on Redis (cache.h
 * presence_*): which users hold a connection on some live instance.
 *
 * Keys, under <prefix>p: (docs/architecture.md "Presence across
 * instances" says why this shape):
 *   u:<user>     hash: instance id -> generation, positive while that
 *                instance holds connections of the user, negative after
 *                it lost them (kept, so a late call with an older
 *                generation cannot revive them)
 *   iu:<inst>    set: the users the instance ever set (what to clean when
 *                it dies)
 *   hb:<inst>    the instance's heartbeat, a key with a TTL
 *   insts        set: instances that ever beat (what to check for death)
 * A user is online when some field of u:<user> is positive and its
 * instance's heartbeat is alive (the caller's own instance always is).
 * Each call is one Lua script, so the before/after comparison that decides
 * "came online" / "went offline" is atomic across instances: exactly one
 * instance sees each cluster-wide transition and announces it.  The
 * scripts name keys they build from the prefix (not only KEYS[]), which a
 * single Redis allows; Redis Cluster would need one hash tag for them all.
 * They are sent with EVAL: presence calls are per connect and disconnect
 * and one beat a second, so the script text costs nothing worth caching.
 *
 * Beat: renew our heartbeat, and retire every instance whose heartbeat
 * lapsed: drop its fields and report the users who were online only
 * through it, so the caller announces them offline.  Instances retire
 * each other (SREM decides which beat does it), so a crashed instance's
 * users stop counting within the heartbeat TTL plus one beat. */
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache_redis_internal.h"

/* Lua: whether the hash `k` has a live positive field. */
#define LUA_LIVE                                                                           \
    "local function live(k)\n"                                                             \
    "  local v = redis.call('HGETALL', k)\n"                                               \
    "  local n = 0\n"                                                                      \
    "  for i = 1, #v, 2 do\n"                                                              \
    "    if tonumber(v[i + 1]) > 0 and (v[i] == me or\n"                                   \
    "        redis.call('EXISTS', p .. 'hb:' .. v[i]) == 1) then n = n + 1 end\n"          \
    "  end\n"                                                                              \
    "  return n\n"                                                                         \
    "end\n"

/* ARGV: prefix, me, user, gen, online (1/0).  Returns +1, -1 or 0. */
static const char SET_LUA[] =
    "local p, me, u = ARGV[1], ARGV[2], ARGV[3]\n"
    "local gen = tonumber(ARGV[4])\n"
    LUA_LIVE
    "local k = p .. 'u:' .. u\n"
    "local old = tonumber(redis.call('HGET', k, me) or '0')\n"
    "if math.abs(old) >= gen then return 0 end\n"
    "local before = live(k)\n"
    "if ARGV[5] == '1' then redis.call('HSET', k, me, gen) else redis.call('HSET', k, me, -gen) end\n"
    "redis.call('SADD', p .. 'iu:' .. me, u)\n"
    "local after = live(k)\n"
    "if before == 0 and after > 0 then return 1 end\n"
    "if before > 0 and after == 0 then return -1 end\n"
    "return 0\n";

/* ARGV: prefix, me, users...  Returns one 0/1 per user. */
static const char GET_LUA[] =
    "local p, me = ARGV[1], ARGV[2]\n"
    LUA_LIVE
    "local out = {}\n"
    "for j = 3, #ARGV do\n"
    "  out[#out + 1] = live(p .. 'u:' .. ARGV[j]) > 0 and 1 or 0\n"
    "end\n"
    "return out\n";

/* ARGV: prefix, me, ttl ms, leave (1/0), beat before (1/0).  Returns
 * {lost, gone users...}. */
static const char BEAT_LUA[] =
    "local p, me = ARGV[1], ARGV[2]\n"
    LUA_LIVE
    "local hb = p .. 'hb:' .. me\n"
    "if ARGV[4] == '1' then redis.call('DEL', hb); return {0} end\n"
    "local lost = 0\n"
    "if redis.call('EXISTS', hb) == 0 and ARGV[5] == '1' then lost = 1 end\n"
    "redis.call('SET', hb, '1', 'PX', ARGV[3])\n"
    "redis.call('SADD', p .. 'insts', me)\n"
    "local out = {lost}\n"
    "for _, d in ipairs(redis.call('SMEMBERS', p .. 'insts')) do\n"
    "  if d ~= me and redis.call('EXISTS', p .. 'hb:' .. d) == 0 then\n"
    "    redis.call('SREM', p .. 'insts', d)\n"
    "    local iu = p .. 'iu:' .. d\n"
    "    for _, u in ipairs(redis.call('SMEMBERS', iu)) do\n"
    "      local k = p .. 'u:' .. u\n"
    "      local old = tonumber(redis.call('HGET', k, d) or '0')\n"
    "      redis.call('HDEL', k, d)\n"
    "      if old > 0 and live(k) == 0 then out[#out + 1] = u end\n"
    "    end\n"
    "    redis.call('DEL', iu)\n"
    "  end\n"
    "end\n"
    "return out\n";

void cache_redis__presence_init(struct cache_redis *cr, const char *prefix)
{
    snprintf(cr->prefix_presence, sizeof cr->prefix_presence, "%sp:", prefix ? prefix : "");
    /* The instance id: random, so a restarted process is a new instance
     * (its predecessor's entries are retired with it, never reused). */
    unsigned char rnd[8] = {0};
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, rnd, sizeof rnd) : -1;
    if (fd >= 0)
        close(fd);
    if (n != (ssize_t)sizeof rnd) {
        /* Cannot happen on Linux short of fd exhaustion; pid and time
         * still tell instances apart. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t v = ((uint64_t)getpid() << 40) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec;
        memcpy(rnd, &v, sizeof rnd);
    }
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(cr->instance + 2 * i, 3, "%02x", rnd[i]);
}

/* Runs `script` with ARGV = prefix, instance, then `extra` (n_extra
 * strings).  The reply (new), or NULL with the context marked for
 * closing. */
static redisReply *run(struct cache_redis *cr, redisContext *rc, const char *script,
                       const char **extra, size_t n_extra, bool *conn_ok)
{
    size_t argc = 5 + n_extra;
    const char **argv = malloc(argc * sizeof *argv);
    if (!argv) {
        *conn_ok = true;
        return NULL;
    }
    argv[0] = "EVAL";
    argv[1] = script;
    argv[2] = "0";
    argv[3] = cr->prefix_presence;
    argv[4] = cr->instance;
    for (size_t i = 0; i < n_extra; i++)
        argv[5 + i] = extra[i];
    redisReply *r = redisCommandArgv(rc, (int)argc, argv, NULL);
    free(argv);
    *conn_ok = rc->err == 0;
    if (r && r->type == REDIS_REPLY_ERROR) {
        freeReplyObject(r);
        r = NULL;
    }
    return r;
}

static int unavailable(struct chat_err *err, bool conn_ok)
{
    return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "cache_redis: presence: %s",
                        conn_ok ? "unexpected reply" : "connection failed");
}

int cache_redis__presence_set(struct cache_redis *cr, const char *user_id, bool online,
                              int64_t gen, int *change, struct chat_err *err)
{
    *change = 0;
    redisContext *rc;
    int ret = cache_redis__get(cr, &rc, err);
    if (ret != 0)
        return ret;
    char g[24];
    snprintf(g, sizeof g, "%lld", (long long)gen);
    const char *extra[] = {user_id, g, online ? "1" : "0"};
    bool conn_ok;
    redisReply *r = run(cr, rc, SET_LUA, extra, 3, &conn_ok);
    bool ok = r && r->type == REDIS_REPLY_INTEGER;
    if (ok)
        *change = r->integer > 0 ? 1 : r->integer < 0 ? -1 : 0;
    if (r)
        freeReplyObject(r);
    cache_redis__put(cr, rc, conn_ok);
    return ok ? 0 : unavailable(err, conn_ok);
}

int cache_redis__presence_get(struct cache_redis *cr, const char (*user_ids)[OID_SIZE], size_t n,
                              bool *online, struct chat_err *err)
{
    for (size_t i = 0; i < n; i++)
        online[i] = false;
    if (n == 0)
        return 0;
    const char **extra = malloc(n * sizeof *extra);
    if (!extra)
        return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "cache_redis: out of memory");
    for (size_t i = 0; i < n; i++)
        extra[i] = user_ids[i];
    redisContext *rc;
    int ret = cache_redis__get(cr, &rc, err);
    if (ret != 0) {
        free(extra);
        return ret;
    }
    bool conn_ok;
    redisReply *r = run(cr, rc, GET_LUA, extra, n, &conn_ok);
    free(extra);
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == n;
    for (size_t i = 0; ok && i < n; i++)
        online[i] = r->element[i]->type == REDIS_REPLY_INTEGER && r->element[i]->integer == 1;
    if (r)
        freeReplyObject(r);
    cache_redis__put(cr, rc, conn_ok);
    return ok ? 0 : unavailable(err, conn_ok);
}

int cache_redis__presence_beat(struct cache_redis *cr, int64_t ttl_ms, bool leave,
                               bool beat_before, bool *lost, char (**gone)[OID_SIZE],
                               size_t *n_gone, struct chat_err *err)
{
    *gone = NULL;
    *n_gone = 0;
    *lost = false;
    redisContext *rc;
    int ret = cache_redis__get(cr, &rc, err);
    if (ret != 0)
        return ret;
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%lld", (long long)(ttl_ms > 0 ? ttl_ms : 1));
    const char *extra[] = {ttl, leave ? "1" : "0", beat_before ? "1" : "0"};
    bool conn_ok;
    redisReply *r = run(cr, rc, BEAT_LUA, extra, 3, &conn_ok);
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
              r->element[0]->type == REDIS_REPLY_INTEGER;
    if (ok) {
        *lost = r->element[0]->integer == 1;
        size_t n = r->elements - 1;
        char(*v)[OID_SIZE] = n ? calloc(n, OID_SIZE) : NULL;
        size_t k = 0;
        for (size_t i = 0; v && i < n; i++) {
            redisReply *e = r->element[i + 1];
            /* Ids this adapter wrote itself; anything else is skipped. */
            if (e->type == REDIS_REPLY_STRING && e->len > 0 && e->len < OID_SIZE) {
                memcpy(v[k], e->str, e->len);
                v[k][e->len] = '\0';
                k++;
            }
        }
        if (k == 0) {
            free(v);
            v = NULL;
        }
        *gone = v;
        *n_gone = k;
    }
    if (r)
        freeReplyObject(r);
    cache_redis__put(cr, rc, conn_ok);
    return ok ? 0 : unavailable(err, conn_ok);
}
