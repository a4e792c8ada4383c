/* cache_mem.h - the in-process adapter of the cache port (one instance). */
#ifndef CHATLI_ADAPTERS_CACHE_MEM_H
#define CHATLI_ADAPTERS_CACHE_MEM_H

#include "chatli/cache.h"

/* In-process adapter: a mutex-guarded hash table; expired windows are swept
 * as new ones are created, so memory stays bounded by active keys. */
int cache_mem_new(struct cache **out, struct chat_err *err);

#endif
