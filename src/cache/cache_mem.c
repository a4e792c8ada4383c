/* cache_mem.c - the in-process cache adapter: fixed-window hit counters for
 * rate limiting, in a mutex-guarded chained hash table.
 *
 * A key's window starts at its first hit and lasts window_ms (Redis
 * INCR + PEXPIRE NX semantics, so switching to the Redis adapter changes
 * nothing a client sees); the first hit after the window ends starts a new
 * one.  Time is CLOCK_MONOTONIC, so a wall-clock step never resets or
 * freezes a window.
 *
 * Keys include client IPs, which a client chooses within limits, so bucket
 * indexes come from SipHash (crypto_shorthash) with a random per-process
 * key: nobody can aim many keys at one chain.
 *
 * Memory stays bounded by the keys active in their window: when the entry
 * count reaches `sweep_at` (twice what survived the previous sweep, at
 * least SWEEP_MIN), or a minute has passed, an insert first sweeps out every
 * expired entry.  The sweep is O(entries) but runs after the table doubled,
 * so its cost is amortized O(1) per insert.  The table grows at load 1.
 *
 * Threads: any thread; one mutex guards the whole table (a hit is a few
 * hundred nanoseconds, far below the request cost it guards). */
#include "chatli/adapters/cache_mem.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "chatli/clock.h"
#include "chatli/log.h"

#define KEY_MAX 1024          /* bytes; rate-limit keys are ids and IPs */
#define SWEEP_MIN 1024        /* entries before the first count-driven sweep */
#define SWEEP_EVERY_MS 60000  /* a time-driven sweep at least this often */
#define BUCKETS_MIN 64

struct entry {
    struct entry *next;
    uint64_t hash;
    int64_t count;
    int64_t end_ms;   /* monotonic ms when the window ends */
    size_t klen;
    char key[];       /* klen bytes + NUL */
};

struct cache_mem {
    struct cache base; /* must stay first */
    pthread_mutex_t lock; /* guards everything below except sipkey */
    struct entry **buckets;
    size_t nbuckets;  /* a power of two */
    size_t n;
    size_t sweep_at;
    int64_t last_sweep_ms;
    unsigned char sipkey[crypto_shorthash_KEYBYTES]; /* immutable after new */
};

static uint64_t hash_key(const struct cache_mem *m, const char *key, size_t len)
{
    unsigned char out[crypto_shorthash_BYTES];
    crypto_shorthash(out, (const unsigned char *)key, len, m->sipkey);
    uint64_t h;
    memcpy(&h, out, sizeof h);
    return h;
}

static void sweep_locked(struct cache_mem *m, int64_t now)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct entry **pp = &m->buckets[i];
        while (*pp) {
            struct entry *e = *pp;
            if (now >= e->end_ms) {
                *pp = e->next;
                free(e);
                m->n--;
            } else {
                pp = &e->next;
            }
        }
    }
    m->sweep_at = m->n * 2 > SWEEP_MIN ? m->n * 2 : SWEEP_MIN;
    m->last_sweep_ms = now;
}

/* Doubles the bucket array; on allocation failure keeps the old one (longer
 * chains, still correct). */
static void grow_locked(struct cache_mem *m)
{
    size_t nb = m->nbuckets * 2;
    struct entry **b = calloc(nb, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct entry *e = m->buckets[i];
        while (e) {
            struct entry *next = e->next;
            size_t j = e->hash & (nb - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
}

static int cache_mem_hit(struct cache *c, const char *key, int64_t window_ms, int64_t *count,
                         int64_t *reset_ms, struct chat_err *err)
{
    struct cache_mem *m = (struct cache_mem *)c;
    if (!key || window_ms <= 0)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "cache: bad key or window");
    size_t len = strnlen(key, KEY_MAX + 1);
    if (len > KEY_MAX)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "cache: key too long");
    uint64_t h = hash_key(m, key, len);

    pthread_mutex_lock(&m->lock);
    int64_t now = clock_mono_ms();
    struct entry *e = m->buckets[h & (m->nbuckets - 1)];
    while (e && !(e->hash == h && e->klen == len && memcmp(e->key, key, len) == 0))
        e = e->next;
    if (e) {
        if (now >= e->end_ms) {
            e->count = 0;
            e->end_ms = now + window_ms;
        }
    } else {
        if (m->n >= m->sweep_at || now - m->last_sweep_ms >= SWEEP_EVERY_MS)
            sweep_locked(m, now);
        if (m->n >= m->nbuckets)
            grow_locked(m);
        e = malloc(sizeof *e + len + 1);
        if (!e) {
            pthread_mutex_unlock(&m->lock);
            log_error("cache_mem: out of memory");
            return chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
        }
        e->hash = h;
        e->count = 0;
        e->end_ms = now + window_ms;
        e->klen = len;
        memcpy(e->key, key, len + 1);
        size_t i = h & (m->nbuckets - 1);
        e->next = m->buckets[i];
        m->buckets[i] = e;
        m->n++;
    }
    e->count++;
    *count = e->count;
    *reset_ms = e->end_ms - now;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

static int cache_mem_ping(struct cache *c, struct chat_err *err)
{
    return 0;
}

static void cache_mem_close(struct cache *c)
{
    struct cache_mem *m = (struct cache_mem *)c;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct entry *e = m->buckets[i];
        while (e) {
            struct entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static const struct cache_ops cache_mem_ops = {
    .close = cache_mem_close,
    .hit = cache_mem_hit,
    .ping = cache_mem_ping,
};

int cache_mem_new(struct cache **out, struct chat_err *err)
{
    *out = NULL;
    if (sodium_init() < 0)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "cache: sodium_init failed");
    struct cache_mem *m = calloc(1, sizeof *m);
    if (!m)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "out of memory");
    m->nbuckets = BUCKETS_MIN;
    m->buckets = calloc(m->nbuckets, sizeof *m->buckets);
    if (!m->buckets || pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m->buckets);
        free(m);
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "out of memory");
    }
    m->sweep_at = SWEEP_MIN;
    m->last_sweep_ms = clock_mono_ms();
    crypto_shorthash_keygen(m->sipkey);
    m->base.ops = &cache_mem_ops;
    m->base.name = "memory";
    m->base.remote = false; /* this process's state only: /readyz says "disabled" */
    *out = &m->base;
    return 0;
}
