/* cache_redis_internal.h - what the files of the Redis cache adapter share.
 *
 * cache_redis.c (open, close, ops) -> cache_redis_limit.c (the atomic
 * window counter and flood bucket), cache_redis_values.c (shared values),
 * cache_redis_sessions.c (shared sessions), cache_redis_presence.c (cluster-wide
 * presence) -> cache_redis_conn.c (a small pool of hiredis contexts
 * with fail-fast reconnects).  Calls go down that list only. */
#ifndef CHATLI_CACHE_REDIS_INTERNAL_H
#define CHATLI_CACHE_REDIS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "chatli/adapters/redis_conn.h"
#include "chatli/cache.h"

/* Idle contexts kept for reuse; more callers at once connect extra ones,
 * which are closed when returned to a full pool. */
#define CACHE_REDIS_POOL 16
/* Timeouts (ms): connect and each round trip.  A rate-limit check sits on
 * every REST request, so Redis trouble must cost little: a hung Redis
 * delays the requests of one backoff step by at most this, then the
 * backoff makes the rest skip Redis without waiting. */
#define CACHE_REDIS_CONNECT_MS 200
#define CACHE_REDIS_IO_MS 200

/* The Lua scripts (cache_redis_limit.c), by index into sha[]. */
#define CACHE_REDIS_SCRIPT_WINDOW 0 /* rate-limit window (hit) */
#define CACHE_REDIS_SCRIPT_BUCKET 1 /* WebSocket flood bucket (take) */
#define CACHE_REDIS_SCRIPTS 2

/* Threads: any.  mu guards idle, n_idle, bo and sha; the counters are
 * atomics; ep, prefix and fallback are immutable after open (fallback is
 * thread-safe itself). */
struct cache_redis {
    struct cache base; /* must stay first */
    struct redis_endpoint ep;
    char prefix[64];        /* rate-limit keys: <prefix>rl: */
    char prefix_values[64]; /* shared values: <prefix>v: */
    char prefix_sessions[64]; /* shared sessions: <prefix>s: */
    char prefix_presence[64]; /* presence: <prefix>p: (cache_redis_presence.c) */
    char instance[17];      /* this process's presence id: 16 hex digits */
    struct cache *fallback; /* cache_mem: answers while Redis is down */
    pthread_mutex_t mu;
    struct redisContext *idle[CACHE_REDIS_POOL];
    int n_idle;
    struct redis_backoff bo;
    char sha[CACHE_REDIS_SCRIPTS][41]; /* each script's SHA1, once loaded; "" before */
    atomic_bool down;         /* the last attempt failed (for the log) */
    atomic_uint_fast64_t redis_calls, fallback_calls;
    atomic_uint_fast64_t value_hits, value_misses;
    atomic_uint_fast64_t session_hits, session_misses;
};

/* cache_redis_limit.c */
/* The window counter on Redis, one round trip; 0, or CHAT_E_UNAVAILABLE. */
int cache_redis__hit(struct cache_redis *cr, const char *key, int64_t window_ms,
                     int64_t *count, int64_t *reset_ms, struct chat_err *err);

/* The token bucket on Redis (cache.h take), one round trip; 0, or
 * CHAT_E_UNAVAILABLE. */
int cache_redis__take(struct cache_redis *cr, const char *key, double rate_per_s, double burst,
                      bool *taken, struct chat_err *err);

/* cache_redis_values.c: the value ops of the port (cache.h says their
 * contract). */
int cache_redis__get_value(struct cache_redis *cr, const char *key, char **val, size_t *len,
                           struct chat_err *err);
int cache_redis__set_value(struct cache_redis *cr, const char *key, const void *val, size_t len,
                           int64_t ttl_ms, struct chat_err *err);
int cache_redis__incr_value(struct cache_redis *cr, const char *key, int64_t *value,
                            struct chat_err *err);
int cache_redis__get_versioned(struct cache_redis *cr, const char *version_key,
                               const char *key_prefix, const char *key, int64_t *version,
                               char **val, size_t *len, struct chat_err *err);

/* cache_redis_sessions.c: the session ops of the port (cache.h says their
 * contract). */
int cache_redis__session_get(struct cache_redis *cr, const uint8_t hash[32],
                             char user_id[OID_SIZE], int64_t *expires_at, struct chat_err *err);
int cache_redis__session_put(struct cache_redis *cr, const uint8_t hash[32], const char *user_id,
                             int64_t expires_at, int64_t ttl_ms, struct chat_err *err);
int cache_redis__session_revoke(struct cache_redis *cr, const uint8_t hash[32], int64_t ttl_ms,
                                struct chat_err *err);

/* cache_redis_presence.c: the presence ops of the port (cache.h says
 * their contract).  init sets the key prefix and a random instance id. */
void cache_redis__presence_init(struct cache_redis *cr, const char *prefix);
int cache_redis__presence_set(struct cache_redis *cr, const char *user_id, bool online,
                              int64_t gen, int *change, struct chat_err *err);
int cache_redis__presence_get(struct cache_redis *cr, const char (*user_ids)[OID_SIZE], size_t n,
                              bool *online, struct chat_err *err);
int cache_redis__presence_beat(struct cache_redis *cr, int64_t ttl_ms, bool leave,
                               bool beat_before, bool *lost, char (**gone)[OID_SIZE],
                               size_t *n_gone, struct chat_err *err);

/* cache_redis_conn.c */
/* A context for one call: an idle one, or a new connection when the
 * backoff allows.  0, or CHAT_E_UNAVAILABLE at once while backing off. */
int cache_redis__get(struct cache_redis *cr, struct redisContext **out, struct chat_err *err);
/* Returns a context after a call: `ok` false closes it and starts (or
 * extends) the backoff. */
void cache_redis__put(struct cache_redis *cr, struct redisContext *rc, bool ok);
void cache_redis__pool_cleanup(struct cache_redis *cr);

#endif
