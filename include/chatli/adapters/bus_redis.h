/* bus_redis.h - the Redis adapter of the bus port (N instances). */
#ifndef CHATLI_ADAPTERS_BUS_REDIS_H
#define CHATLI_ADAPTERS_BUS_REDIS_H

#include "chatli/bus.h"

/* Opens a bus on the Redis of `url` (redis://...), publishing and
 * subscribing on channel `<prefix>bus`.  Starts a publisher and a
 * subscriber thread; Redis need not be up (both retry with backoff, and
 * meanwhile events are delivered on this instance only).  0 and *out new
 * (bus_close), or CHAT_E_VALIDATION for a bad URL / CHAT_E_INTERNAL, with
 * nothing to free. */
int bus_redis_open(const char *url, const char *prefix, struct bus **out, struct chat_err *err);

/* This bus's instance id (the `origin` other instances see), borrowed for
 * the bus's life. */
const char *bus_redis_origin(struct bus *b);

#endif
