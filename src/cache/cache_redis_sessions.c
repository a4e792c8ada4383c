/* cache_redis_sessions.c - the shared session cache (cache.h "sessions"):
 * one Redis string per session, one round trip per call, counted as hits
 * and misses for /metrics.
 *
 * Key "<prefix>s:<64 hex digits of the token hash>" (the hash, never the
 * token: the same thing the store keeps).  Value "<user id>:<expiry ms>",
 * e.g. "5f0c...e1:1767225600000", or "-" for a revocation mark.  A value is
 * parsed strictly (24 lowercase hex, a colon, 1 to 19 digits, nothing
 * else): anything else - another program's key, a truncated write - is a
 * miss, and the caller asks the store.
 *
 * Revocation writes the mark (SET, overwriting) instead of deleting the
 * key, and a put is SET ... NX: a lookup that read the store just before a
 * logout on another instance cannot put the session back while the mark
 * lives.  The caller picks both TTLs (core: CORE_SSHARED_TTL_MS). */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_redis_internal.h"
#include "chatli/oid.h"

#define REVOKED "-"
#define VALUE_MAX (OID_LEN + 1 + 19)

/* "<prefix>s:" + 64 hex digits. */
static void session_key(const struct cache_redis *cr, const uint8_t hash[32], char *out,
                        size_t size)
{
    static const char hex[] = "0123456789abcdef";
    char h[65];
    for (int i = 0; i < 32; i++) {
        h[2 * i] = hex[hash[i] >> 4];
        h[2 * i + 1] = hex[hash[i] & 15];
    }
    h[64] = '\0';
    snprintf(out, size, "%s%s", cr->prefix_sessions, h);
}

/* Parses "<oid>:<digits>" exactly; false for anything else (the mark too). */
static bool decode(const char *val, size_t len, char user_id[OID_SIZE], int64_t *expires_at)
{
    if (len < OID_LEN + 2 || len > VALUE_MAX || val[OID_LEN] != ':')
        return false;
    char id[OID_SIZE];
    memcpy(id, val, OID_LEN);
    id[OID_LEN] = '\0';
    if (!oid_valid(id))
        return false;
    int64_t v = 0;
    for (size_t i = OID_LEN + 1; i < len; i++) {
        if (val[i] < '0' || val[i] > '9')
            return false;
        int d = val[i] - '0';
        if (v > (INT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    memcpy(user_id, id, OID_SIZE);
    *expires_at = v;
    return true;
}

/* Returns the context; a NULL reply, a connection error or an error reply
 * is CHAT_E_UNAVAILABLE (and closes a broken context). */
static int finish(struct cache_redis *cr, redisContext *rc, redisReply *r, struct chat_err *err)
{
    bool ok = r && rc->err == 0 && r->type != REDIS_REPLY_ERROR;
    cache_redis__put(cr, rc, rc->err == 0);
    if (!ok)
        return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "cache_redis: session command failed");
    return 0;
}

/* SET `key` `val` with a time to live of `ttl_ms` (at least 1 ms), only
 * when the key is absent if `nx`.  0 or CHAT_E_UNAVAILABLE. */
static int set_px(struct cache_redis *cr, const char *key, const char *val, int64_t ttl_ms,
                  bool nx, struct chat_err *err)
{
    redisContext *rc;
    int ret = cache_redis__get(cr, &rc, err);
    if (ret != 0)
        return ret;
    redisReply *r = redisCommand(rc, nx ? "SET %s %s PX %lld NX" : "SET %s %s PX %lld", key, val,
                                 (long long)(ttl_ms > 0 ? ttl_ms : 1));
    ret = finish(cr, rc, r, err);
    if (r)
        freeReplyObject(r);
    return ret;
}

int cache_redis__session_get(struct cache_redis *cr, const uint8_t hash[32],
                             char user_id[OID_SIZE], int64_t *expires_at, struct chat_err *err)
{
    char key[64 + 80];
    session_key(cr, hash, key, sizeof key);
    redisContext *rc;
    int ret = cache_redis__get(cr, &rc, err);
    if (ret != 0)
        return ret;
    redisReply *r = redisCommand(rc, "GET %s", key);
    ret = finish(cr, rc, r, err);
    bool found = ret == 0 && r->type == REDIS_REPLY_STRING &&
                 decode(r->str, (size_t)r->len, user_id, expires_at);
    if (r)
        freeReplyObject(r);
    if (ret != 0)
        return ret;
    atomic_fetch_add(found ? &cr->session_hits : &cr->session_misses, 1);
    return found ? 0 : chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "cache_redis: session miss");
}

int cache_redis__session_put(struct cache_redis *cr, const uint8_t hash[32], const char *user_id,
                             int64_t expires_at, int64_t ttl_ms, struct chat_err *err)
{
    char key[64 + 80], val[VALUE_MAX + 1];
    if (!oid_valid(user_id) || expires_at < 0)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "cache_redis: bad session");
    session_key(cr, hash, key, sizeof key);
    snprintf(val, sizeof val, "%s:%lld", user_id, (long long)expires_at);
    /* NX: never over a revocation mark (nor over the same session). */
    return set_px(cr, key, val, ttl_ms, true, err);
}

int cache_redis__session_revoke(struct cache_redis *cr, const uint8_t hash[32], int64_t ttl_ms,
                                struct chat_err *err)
{
    char key[64 + 80];
    session_key(cr, hash, key, sizeof key);
    return set_px(cr, key, REVOKED, ttl_ms, false, err);
}
