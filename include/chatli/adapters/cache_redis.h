/* cache_redis.h - the Redis adapter of the cache port (N instances). */
#ifndef CHATLI_ADAPTERS_CACHE_REDIS_H
#define CHATLI_ADAPTERS_CACHE_REDIS_H

#include "chatli/cache.h"

/* Opens a cache on the Redis of `url` (redis://...), its keys under
 * `prefix`.  Connects lazily: Redis need not be up.  While it is down
 * every call fails fast (backoff, short timeouts) and is answered from an
 * in-process cache_mem instead, so limits become per instance until Redis
 * returns.  0 and *out new (cache_close), or CHAT_E_VALIDATION for a bad
 * URL / CHAT_E_INTERNAL, with nothing to free. */
int cache_redis_open(const char *url, const char *prefix, struct cache **out,
                     struct chat_err *err);

/* Adds the cache's counters (calls answered by Redis, by the fallback) to
 * /metrics.  Once per process, for a cache that lives until exit. */
void cache_redis_register_metrics(struct cache *c);

#endif
