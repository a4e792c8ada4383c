/* slotcache.c - the sharded, direct-mapped TTL table behind every cache of
 * core (see slotcache.h for the contract and the epoch rule).
 *
 * Layout.  Slots are one array, shard by shard, and keys sit in a second
 * array beside them (key_max bytes per slot), so a lookup compares its key
 * without following a pointer; only the value is a separate allocation,
 * because values differ in size (a 40-byte session, a feed page of up to
 * 64 KB).
 * Each shard's mutex gets a cache line of its own: the callers are MHD and
 * gateway workers hitting different shards at once, and neighbouring
 * mutexes on one line would make them contend anyway.
 *
 * Allocation and freeing happen outside the locks: a put's value was
 * allocated by its caller, and the value a put or forget replaces is freed
 * after the unlock.  Only the read callback runs under the lock. */
#include "slotcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "chatli/clock.h"
#include "chatli/err.h"

#define SHARD_ALIGN 64 /* bytes of a cache line on every CPU we run on */

struct slotcache_shard {
    _Alignas(SHARD_ALIGN) pthread_mutex_t lock; /* guards the shard's slots and keys */
};

struct slotcache_slot {
    void *val;              /* owned; NULL when empty */
    size_t len;
    size_t key_len;         /* 0 when empty */
    int64_t fresh_until_ms; /* CLOCK_MONOTONIC ms */
    uint64_t epoch;         /* bumped by every forget that maps here */
};

static bool power_of_two(size_t n)
{
    return n != 0 && (n & (n - 1)) == 0;
}

int slotcache_init(struct slotcache *sc, size_t slots, size_t shards, size_t key_max,
                   int64_t ttl_ms)
{
    memset(sc, 0, sizeof *sc);
    if (!power_of_two(shards) || !power_of_two(slots) || slots < shards || key_max == 0)
        return CHAT_E_INTERNAL;
    sc->n_shards = shards;
    sc->per_shard = slots / shards;
    while (((size_t)1 << sc->shard_bits) < shards)
        sc->shard_bits++;
    sc->key_max = key_max;
    sc->ttl_ms = ttl_ms;
    sc->shards = aligned_alloc(SHARD_ALIGN, shards * sizeof *sc->shards);
    sc->slots = calloc(slots, sizeof *sc->slots);
    sc->keys = calloc(slots, key_max);
    size_t inited = 0;
    if (sc->shards && sc->slots && sc->keys) {
        for (; inited < shards; inited++)
            if (pthread_mutex_init(&sc->shards[inited].lock, NULL) != 0)
                break;
        if (inited == shards)
            return 0;
    }
    while (inited-- > 0)
        pthread_mutex_destroy(&sc->shards[inited].lock);
    free(sc->shards);
    free(sc->slots);
    free(sc->keys);
    memset(sc, 0, sizeof *sc);
    return CHAT_E_INTERNAL;
}

void slotcache_cleanup(struct slotcache *sc)
{
    if (!sc->shards)
        return;
    for (size_t i = 0; i < sc->n_shards * sc->per_shard; i++)
        free(sc->slots[i].val);
    for (size_t i = 0; i < sc->n_shards; i++)
        pthread_mutex_destroy(&sc->shards[i].lock);
    free(sc->shards);
    free(sc->slots);
    free(sc->keys);
    memset(sc, 0, sizeof *sc);
}

/* A 64-bit hash of the key, eight bytes per step: a session lookup hashes
 * 32 bytes on every request, where the table this replaced just took the
 * token hash's first bytes.  Byte-at-a-time FNV-1a plus divisions by the
 * run-time geometry made a session hit cost 82 ns against the old 37 ns;
 * this hash and the masks in locate() bring it to ~50 ns.  Each word is folded in with a multiply,
 * and the result gets splitmix64's finalizer so that every output bit
 * depends on every input bit (shard and slot are taken from the low bits).
 * Not a defence against chosen collisions; see slotcache.h for why none is
 * needed. */
static uint64_t hash_key(const void *key, size_t len)
{
    const unsigned char *k = key;
    uint64_t h = 0x9e3779b97f4a7c15u ^ len, w;
    for (; len >= 8; k += 8, len -= 8) {
        memcpy(&w, k, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdu;
        h ^= h >> 32;
    }
    if (len) {
        w = 0;
        memcpy(&w, k, len);
        h = (h ^ w) * 0xff51afd7ed558ccdu;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9u;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebu;
    return h ^ (h >> 31);
}

/* The slot index of `key` and, in *sh, the shard that guards it. */
static size_t locate(const struct slotcache *sc, const void *key, size_t key_len,
                     struct slotcache_shard **sh)
{
    /* Powers of two (slotcache_init checks): masks and a shift instead of
     * divisions by a run-time count. */
    uint64_t h = hash_key(key, key_len);
    size_t shard = h & (sc->n_shards - 1);
    *sh = &sc->shards[shard];
    return shard * sc->per_shard + ((h >> sc->shard_bits) & (sc->per_shard - 1));
}

/* True when slot `i` holds `key`.  Shard lock held. */
static bool holds_locked(const struct slotcache *sc, size_t i, const void *key, size_t key_len)
{
    return key_len != 0 && sc->slots[i].key_len == key_len &&
           memcmp(sc->keys + i * sc->key_max, key, key_len) == 0;
}

bool slotcache_get(struct slotcache *sc, const void *key, size_t key_len, slotcache_read_cb read,
                   void *arg, uint64_t *epoch)
{
    int64_t now = clock_mono_ms();
    struct slotcache_shard *sh;
    size_t i = locate(sc, key, key_len, &sh);
    struct slotcache_slot *s = &sc->slots[i];
    bool hit = false;
    pthread_mutex_lock(&sh->lock);
    *epoch = s->epoch;
    if (holds_locked(sc, i, key, key_len) && now < s->fresh_until_ms)
        hit = read(arg, s->val, s->len);
    pthread_mutex_unlock(&sh->lock);
    return hit;
}

void slotcache_put(struct slotcache *sc, const void *key, size_t key_len, void *val, size_t len,
                   uint64_t epoch)
{
    if (!val || key_len == 0 || key_len > sc->key_max) {
        free(val);
        return;
    }
    int64_t fresh_until = clock_mono_ms() + sc->ttl_ms;
    struct slotcache_shard *sh;
    size_t i = locate(sc, key, key_len, &sh);
    struct slotcache_slot *s = &sc->slots[i];
    pthread_mutex_lock(&sh->lock);
    /* A forget since the caller's lookup means its store answer may
     * predate the change that forget announced: do not cache it. */
    if (s->epoch == epoch) {
        void *old = s->val;
        s->val = val;
        s->len = len;
        memcpy(sc->keys + i * sc->key_max, key, key_len);
        s->key_len = key_len;
        s->fresh_until_ms = fresh_until;
        val = old;
    }
    pthread_mutex_unlock(&sh->lock);
    free(val);
}

void slotcache_forget(struct slotcache *sc, const void *key, size_t key_len)
{
    struct slotcache_shard *sh;
    size_t i = locate(sc, key, key_len, &sh);
    struct slotcache_slot *s = &sc->slots[i];
    void *old = NULL;
    pthread_mutex_lock(&sh->lock);
    s->epoch++;
    if (holds_locked(sc, i, key, key_len)) {
        old = s->val;
        s->val = NULL;
        s->len = 0;
        s->key_len = 0;
    }
    pthread_mutex_unlock(&sh->lock);
    free(old);
}

void slotcache_forget_all(struct slotcache *sc)
{
    for (size_t sh = 0; sh < sc->n_shards; sh++) {
        pthread_mutex_lock(&sc->shards[sh].lock);
        for (size_t i = sh * sc->per_shard; i < (sh + 1) * sc->per_shard; i++) {
            struct slotcache_slot *s = &sc->slots[i];
            s->epoch++;
            free(s->val);
            s->val = NULL;
            s->len = 0;
            s->key_len = 0;
        }
        pthread_mutex_unlock(&sc->shards[sh].lock);
    }
}
