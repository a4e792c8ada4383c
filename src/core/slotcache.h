/* slotcache.h - the one cache shape core uses: a bounded, sharded,
 * direct-mapped table of short-lived entries with an epoch per slot.
 *
 * Core keeps four caches of store answers (sessions, Authors, feed pages,
 * chat members).  All four want the same things: memory fixed at creation
 * (a key hashes to one slot, a collision simply evicts, nothing to sweep),
 * a lock per shard so concurrent requests rarely meet on one mutex, a TTL
 * that bounds how long a change made through ANOTHER instance goes unseen,
 * and protection against the race where a read of the store that began
 * before an invalidation installs its stale answer after it.  That last
 * one is the epoch: every slot counts the forgets that mapped to it;
 * slotcache_get hands out the count, and slotcache_put installs only if it
 * has not moved since.  A put after a store read is therefore never older
 * than a forget that returned before the get.
 *
 * Keys are bytes, hashed with a fast non-cryptographic hash: our keys are
 * ids we mint, token hashes and our own cursors, so nobody aims collisions
 * at a slot, and a collision only costs a store read.  A value is an opaque byte blob the
 * cache owns; the caller copies it out under the shard lock through a
 * read callback, so a hit costs no allocation the caller does not want.
 *
 * Threads: every function may run on any thread concurrently, except
 * slotcache_init and slotcache_cleanup. */
#ifndef CHATLI_CORE_SLOTCACHE_H
#define CHATLI_CORE_SLOTCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct slotcache_shard;
struct slotcache_slot;

/* Immutable after slotcache_init; the slots are guarded by their shard's
 * lock (slotcache.c). */
struct slotcache {
    size_t n_shards, per_shard;      /* n_shards x per_shard slots, powers of two */
    unsigned shard_bits;             /* log2(n_shards) */
    size_t key_max;                  /* bytes; longer keys are never cached */
    int64_t ttl_ms;                  /* an entry is served this long after its put */
    struct slotcache_shard *shards;
    struct slotcache_slot *slots;    /* shard-major */
    unsigned char *keys;             /* key_max bytes per slot */
};

/* Sets up `sc` (the caller's storage) with `slots` slots in `shards`
 * locks (both powers of two, shards <= slots), keys up to `key_max` bytes
 * and entries fresh for `ttl_ms`.  0, or CHAT_E_INTERNAL (also for a
 * geometry that breaks those rules) with nothing left to clean up. */
int slotcache_init(struct slotcache *sc, size_t slots, size_t shards, size_t key_max,
                   int64_t ttl_ms);
/* Frees every entry and the table.  A zeroed `sc` is fine. */
void slotcache_cleanup(struct slotcache *sc);

/* Reads a cached value: `val` and `len` are borrowed for the call, which
 * runs under the shard lock (so it must be short and must not use the
 * cache).  Returns true to count the lookup as a hit; false treats the
 * entry as a miss (not what the caller needs, or out of memory). */
typedef bool (*slotcache_read_cb)(void *arg, const void *val, size_t len);

/* When `key` is cached and fresh, calls `read` and returns what it
 * returns; otherwise false.  Always sets *epoch, to hand to slotcache_put
 * after asking the store on a miss. */
bool slotcache_get(struct slotcache *sc, const void *key, size_t key_len, slotcache_read_cb read,
                   void *arg, uint64_t *epoch);

/* Caches `val` (steals it: malloc()ed, freed by the cache, also when it is
 * not kept) as `key`'s value of `len` bytes, unless a forget of its slot
 * happened since the slotcache_get that gave `epoch`.  Replaces whatever
 * the slot held.  `val` NULL (a failed allocation) caches nothing. */
void slotcache_put(struct slotcache *sc, const void *key, size_t key_len, void *val, size_t len,
                   uint64_t epoch);

/* Drops `key` and voids the puts of lookups of its slot already in flight. */
void slotcache_forget(struct slotcache *sc, const void *key, size_t key_len);

/* slotcache_forget for every key at once (a bus gap: invalidations may
 * have been lost).  Locks each shard in turn; O(slots). */
void slotcache_forget_all(struct slotcache *sc);

#endif
