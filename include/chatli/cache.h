/* cache.h - the shared-state port: fixed-window counters for rate limits
 * and, with the Redis adapter, a value cache shared by instances (core keeps
 * the first feed pages there) and token buckets (the WebSocket flood limit).
 *
 * The in-process adapter (cache_mem.c) keeps state in this process and has
 * no value cache (core's own caches are in-process already); the Redis
 * adapter shares both between instances.  Thread-safe. */
#ifndef CHATLI_CACHE_H
#define CHATLI_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chatli/err.h"
#include "chatli/oid.h"

struct cache;

struct cache_ops {
    void (*close)(struct cache *c);
    /* Adds one hit to `key`'s current window of `window_ms` (the window
     * starts at the first hit and ends window_ms later, like Redis
     * INCR + PEXPIRE NX).  Returns the hit count including this one and the
     * ms left until the window resets. */
    int (*hit)(struct cache *c, const char *key, int64_t window_ms, int64_t *count,
               int64_t *reset_ms, struct chat_err *err);
    int (*ping)(struct cache *c, struct chat_err *err);
    /* Optional (NULL: no shared value cache).  Values are opaque bytes.
     * get: 0 with *val new (free(); NUL-terminated for convenience) and
     * *len, CHAT_E_NOT_FOUND on a miss, CHAT_E_UNAVAILABLE when the server
     * cannot answer (fast: callers then build the value themselves). */
    int (*get)(struct cache *c, const char *key, char **val, size_t *len, struct chat_err *err);
    /* Stores `val` (borrowed) under `key` for `ttl_ms`.  0 or
     * CHAT_E_UNAVAILABLE. */
    int (*set)(struct cache *c, const char *key, const void *val, size_t len, int64_t ttl_ms,
               struct chat_err *err);
    /* Adds one to the integer at `key` (0 when absent, no expiry); *value
     * is the result.  0 or CHAT_E_UNAVAILABLE. */
    int (*incr)(struct cache *c, const char *key, int64_t *value, struct chat_err *err);
    /* A versioned lookup in one round trip: reads the integer at
     * `version_key` (0 when absent) into *version, then the value at
     * "<key_prefix><version>:<key>".  0 with *val new (free()), or
     * CHAT_E_NOT_FOUND on a miss (*version still set), or
     * CHAT_E_UNAVAILABLE (*version -1).  Pair it with incr(version_key) on
     * writes and set("<key_prefix><version>:<key>") after building the
     * value: a write orphans every older value at once. */
    int (*get_versioned)(struct cache *c, const char *version_key, const char *key_prefix,
                         const char *key, int64_t *version, char **val, size_t *len,
                         struct chat_err *err);
    /* Optional (NULL: no shared bucket; callers keep their own).  Takes
     * one token from the token bucket at `key`, which refills at
     * `rate_per_s` tokens per second up to `burst` (full when absent), in
     * one round trip; *taken says whether a token was left.  0, or
     * CHAT_E_UNAVAILABLE when the server cannot answer (fast: callers then
     * rely on a local bucket).  Blocks for that round trip: never call it
     * on an event loop. */
    int (*take)(struct cache *c, const char *key, double rate_per_s, double burst,
                bool *taken, struct chat_err *err);
    /* sessions */
    /* Optional (NULL: no shared session cache; see cache_shares_sessions).
     * Sessions the store confirmed, shared by instances: the token's hash
     * (32 bytes) -> its user id and expiry (wall-clock ms).
     * session_get: 0 with user_id (NUL-terminated) and *expires_at set;
     * CHAT_E_NOT_FOUND on a miss, a revoked entry or a value that does not
     * parse; CHAT_E_UNAVAILABLE when the server cannot answer (fast: the
     * caller then asks the store).  Counted as hits and misses. */
    int (*session_get)(struct cache *c, const uint8_t hash[32], char user_id[OID_SIZE],
                       int64_t *expires_at, struct chat_err *err);
    /* Stores a confirmed session for `ttl_ms`, unless the key holds a
     * revocation mark (so a lookup that read the store before a logout
     * cannot bring the session back).  0 or CHAT_E_UNAVAILABLE. */
    int (*session_put)(struct cache *c, const uint8_t hash[32], const char *user_id,
                       int64_t expires_at, int64_t ttl_ms, struct chat_err *err);
    /* Replaces the entry by a revocation mark kept for `ttl_ms` (a miss for
     * session_get, and session_put cannot overwrite it).  0 or
     * CHAT_E_UNAVAILABLE. */
    int (*session_revoke)(struct cache *c, const uint8_t hash[32], int64_t ttl_ms,
                          struct chat_err *err);
    /* Optional, all three or none (NULL: presence is counted per process).
     * Cluster-wide presence: a user is online while any live instance holds
     * one of their connections.  Each instance records, per user, whether
     * it holds any (with a generation, so a late call never undoes a newer
     * one) and keeps a heartbeat; an instance whose heartbeat lapsed is
     * dead and its users stop counting.  All three block for one round
     * trip (never on an event loop) and return 0 or CHAT_E_UNAVAILABLE.
     *
     * presence_set: this instance now holds (`online`) or no longer holds
     * connections of `user_id`; `gen` grows with every call of this
     * instance (a call with a gen not above the last one applied is
     * ignored: *change 0).  *change is +1 when the user just came online
     * cluster-wide, -1 when they just went offline, else 0. */
    int (*presence_set)(struct cache *c, const char *user_id, bool online, int64_t gen,
                        int *change, struct chat_err *err);
    /* online[i] = whether user_ids[i] (n of them, borrowed) is online on
     * some live instance. */
    int (*presence_get)(struct cache *c, const char (*user_ids)[OID_SIZE], size_t n,
                        bool *online, struct chat_err *err);
    /* Renews this instance's heartbeat for `ttl_ms` (with `leave`: drops
     * it, so other instances count its users out at their next beat), and
     * retires instances whose heartbeat lapsed: *gone (new, free(); NULL
     * when none) lists the n_gone users that went offline cluster-wide
     * with them.  *lost is set when this instance's own heartbeat had
     * lapsed since its last successful beat (`beat_before`): its users
     * may have been counted out and must be set again. */
    int (*presence_beat)(struct cache *c, int64_t ttl_ms, bool leave, bool beat_before,
                         bool *lost, char (**gone)[OID_SIZE], size_t *n_gone,
                         struct chat_err *err);
};

struct cache {
    const struct cache_ops *ops;
    const char *name; /* "memory", "redis" */
    bool remote;      /* state lives in a server shared by instances (Redis):
                         /readyz pings it and reports it as "redis" */
};

static inline void cache_close(struct cache *c) { if (c) c->ops->close(c); }
static inline int cache_hit(struct cache *c, const char *key, int64_t window_ms, int64_t *count,
                            int64_t *reset_ms, struct chat_err *err)
{ return c->ops->hit(c, key, window_ms, count, reset_ms, err); }
static inline int cache_ping(struct cache *c, struct chat_err *err)
{ return c->ops->ping ? c->ops->ping(c, err) : 0; }
/* Whether `c` has a shared value cache (get/set/incr). */
static inline bool cache_shares_values(const struct cache *c)
{ return c && c->ops->get && c->ops->set && c->ops->incr && c->ops->get_versioned; }
static inline int cache_get(struct cache *c, const char *key, char **val, size_t *len,
                            struct chat_err *err)
{ return cache_shares_values(c) ? c->ops->get(c, key, val, len, err) : CHAT_E_UNAVAILABLE; }
static inline int cache_set(struct cache *c, const char *key, const void *val, size_t len,
                            int64_t ttl_ms, struct chat_err *err)
{ return cache_shares_values(c) ? c->ops->set(c, key, val, len, ttl_ms, err) : CHAT_E_UNAVAILABLE; }
static inline int cache_incr(struct cache *c, const char *key, int64_t *value, struct chat_err *err)
{ return cache_shares_values(c) ? c->ops->incr(c, key, value, err) : CHAT_E_UNAVAILABLE; }
static inline int cache_get_versioned(struct cache *c, const char *version_key,
                                      const char *key_prefix, const char *key, int64_t *version,
                                      char **val, size_t *len, struct chat_err *err)
{
    if (!cache_shares_values(c)) {
        *version = -1;
        return CHAT_E_UNAVAILABLE;
    }
    return c->ops->get_versioned(c, version_key, key_prefix, key, version, val, len, err);
}
/* Whether `c` has a shared token bucket (take). */
static inline bool cache_shares_buckets(const struct cache *c) { return c && c->ops->take; }
static inline int cache_take(struct cache *c, const char *key, double rate_per_s, double burst,
                             bool *taken, struct chat_err *err)
{
    return cache_shares_buckets(c) ? c->ops->take(c, key, rate_per_s, burst, taken, err)
                                   : CHAT_E_UNAVAILABLE;
}
/* Whether `c` shares presence between instances (presence_*). */
static inline bool cache_shares_presence(const struct cache *c)
{ return c && c->ops->presence_set && c->ops->presence_get && c->ops->presence_beat; }
static inline int cache_presence_set(struct cache *c, const char *user_id, bool online,
                                     int64_t gen, int *change, struct chat_err *err)
{
    return cache_shares_presence(c) ? c->ops->presence_set(c, user_id, online, gen, change, err)
                                    : CHAT_E_UNAVAILABLE;
}
static inline int cache_presence_get(struct cache *c, const char (*user_ids)[OID_SIZE], size_t n,
                                     bool *online, struct chat_err *err)
{
    return cache_shares_presence(c) ? c->ops->presence_get(c, user_ids, n, online, err)
                                    : CHAT_E_UNAVAILABLE;
}
static inline int cache_presence_beat(struct cache *c, int64_t ttl_ms, bool leave,
                                      bool beat_before, bool *lost, char (**gone)[OID_SIZE],
                                      size_t *n_gone, struct chat_err *err)
{
    *gone = NULL;
    *n_gone = 0;
    *lost = false;
    return cache_shares_presence(c) ? c->ops->presence_beat(c, ttl_ms, leave, beat_before, lost,
                                                            gone, n_gone, err)
                                    : CHAT_E_UNAVAILABLE;
}

/* sessions */
/* Whether `c` has a shared session cache (session_get/put/revoke). */
static inline bool cache_shares_sessions(const struct cache *c)
{ return c && c->ops->session_get && c->ops->session_put && c->ops->session_revoke; }
static inline int cache_session_get(struct cache *c, const uint8_t hash[32],
                                    char user_id[OID_SIZE], int64_t *expires_at,
                                    struct chat_err *err)
{
    return cache_shares_sessions(c) ? c->ops->session_get(c, hash, user_id, expires_at, err)
                                    : CHAT_E_UNAVAILABLE;
}
static inline int cache_session_put(struct cache *c, const uint8_t hash[32], const char *user_id,
                                    int64_t expires_at, int64_t ttl_ms, struct chat_err *err)
{
    return cache_shares_sessions(c)
               ? c->ops->session_put(c, hash, user_id, expires_at, ttl_ms, err)
               : CHAT_E_UNAVAILABLE;
}
static inline int cache_session_revoke(struct cache *c, const uint8_t hash[32], int64_t ttl_ms,
                                       struct chat_err *err)
{
    return cache_shares_sessions(c) ? c->ops->session_revoke(c, hash, ttl_ms, err)
                                    : CHAT_E_UNAVAILABLE;
}

#endif
