/* session_cache.c - token hash -> (user id, expiry), so that auth_check
 * does not ask the store on every request.
 *
 * Every authenticated REST request and WebSocket handshake resolves a
 * bearer token; with the store lookup that was a read transaction per
 * request (about 6% of a feed request's CPU).  This table remembers recent
 * answers.  It is direct-mapped (a token hash picks one slot; a collision
 * simply evicts), so its memory is fixed at CORE_SCACHE_SLOTS entries, and it
 * is split into CORE_SCACHE_SHARDS locks so the MHD workers do not queue
 * on one mutex.  Token hashes are BLAKE2b outputs, uniformly spread, and
 * only sessions the store confirmed are ever cached, so nobody can aim
 * entries at a slot without holding valid tokens for it.
 *
 * Staleness.  A logout through this core forgets the entry at once
 * (core__session_cache_forget), and the slot's epoch makes a lookup that
 * was already reading the store when the logout happened discard its
 * answer instead of caching a revoked token.  A logout through ANOTHER
 * instance (MongoDB deployments) is not seen here: an entry is trusted for
 * CORE_SCACHE_TTL_MS, then checked against the store again.  The hook for
 * making that immediate is auth_forget_token() in core.h: the bus adapter
 * that carries revocations between instances (the Redis issue) should call
 * it for every revocation it receives.  Expiry needs no hook: the session's
 * own expires_at is kept and checked on every hit. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"
#include "chatli/clock.h"

#define SLOTS_PER_SHARD (CORE_SCACHE_SLOTS / CORE_SCACHE_SHARDS)

struct slot {
    bool used;
    uint8_t hash[32];
    char user_id[OID_SIZE];
    int64_t expires_at;     /* the session's expiry, wall-clock ms */
    int64_t fresh_until_ms; /* CLOCK_MONOTONIC ms: trusted until then */
    uint64_t epoch;         /* bumped by every forget that maps here */
};

/* Threads: any thread that calls auth_check / auth_logout; `lock` guards
 * every field of every slot of the shard. */
struct shard {
    pthread_mutex_t lock;
    struct slot slots[SLOTS_PER_SHARD];
};

struct core_session_cache {
    struct shard shards[CORE_SCACHE_SHARDS];
};

int core__session_cache_new(struct core_session_cache **out)
{
    struct core_session_cache *sc = calloc(1, sizeof *sc);
    if (!sc)
        return CHAT_E_INTERNAL;
    for (int i = 0; i < CORE_SCACHE_SHARDS; i++) {
        if (pthread_mutex_init(&sc->shards[i].lock, NULL) != 0) {
            while (i-- > 0)
                pthread_mutex_destroy(&sc->shards[i].lock);
            free(sc);
            return CHAT_E_INTERNAL;
        }
    }
    *out = sc;
    return 0;
}

void core__session_cache_free(struct core_session_cache *sc)
{
    if (!sc)
        return;
    for (int i = 0; i < CORE_SCACHE_SHARDS; i++)
        pthread_mutex_destroy(&sc->shards[i].lock);
    free(sc);
}

/* The hash is already uniform: its first bytes pick shard and slot. */
static struct slot *slot_of(struct core_session_cache *sc, const uint8_t hash[32],
                            struct shard **sh)
{
    uint32_t h;
    memcpy(&h, hash, sizeof h);
    *sh = &sc->shards[h % CORE_SCACHE_SHARDS];
    return &(*sh)->slots[(h / CORE_SCACHE_SHARDS) % SLOTS_PER_SHARD];
}

static int64_t mono_ms(void)
{
    return clock_mono_ns() / 1000000;
}

bool core__session_cache_get(struct core_session_cache *sc, const uint8_t hash[32],
                             char user_id[OID_SIZE], int64_t *expires_at, uint64_t *epoch)
{
    struct shard *sh;
    struct slot *s = slot_of(sc, hash, &sh);
    bool hit = false;
    pthread_mutex_lock(&sh->lock);
    *epoch = s->epoch;
    if (s->used && memcmp(s->hash, hash, 32) == 0 && mono_ms() < s->fresh_until_ms) {
        memcpy(user_id, s->user_id, OID_SIZE);
        *expires_at = s->expires_at;
        hit = true;
    }
    pthread_mutex_unlock(&sh->lock);
    return hit;
}

void core__session_cache_put(struct core_session_cache *sc, const uint8_t hash[32],
                             const char *user_id, int64_t expires_at, uint64_t epoch)
{
    struct shard *sh;
    struct slot *s = slot_of(sc, hash, &sh);
    pthread_mutex_lock(&sh->lock);
    /* A forget since the caller's lookup means its store answer may
     * predate a logout: do not cache it. */
    if (s->epoch == epoch) {
        s->used = true;
        memcpy(s->hash, hash, 32);
        memcpy(s->user_id, user_id, OID_LEN);
        s->user_id[OID_LEN] = '\0';
        s->expires_at = expires_at;
        s->fresh_until_ms = mono_ms() + CORE_SCACHE_TTL_MS;
    }
    pthread_mutex_unlock(&sh->lock);
}

void core__session_cache_forget(struct core_session_cache *sc, const uint8_t hash[32])
{
    struct shard *sh;
    struct slot *s = slot_of(sc, hash, &sh);
    pthread_mutex_lock(&sh->lock);
    s->epoch++;
    if (s->used && memcmp(s->hash, hash, 32) == 0)
        s->used = false;
    pthread_mutex_unlock(&sh->lock);
}
