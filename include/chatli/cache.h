/* cache.h - the shared-state port: fixed-window counters for rate limits
 * (later also a cache and revoked-token notices shared by instances).
 *
 * The in-process adapter (cache_mem.c) keeps state in this process; the
 * Redis adapter (later) shares it between instances.  Thread-safe. */
#ifndef CHATLI_CACHE_H
#define CHATLI_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "chatli/err.h"

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


#endif
