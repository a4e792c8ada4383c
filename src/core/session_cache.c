/* session_cache.c - token hash -> (user id, expiry), so that auth_check
 * does not ask the store on every request.
 *
 * Every authenticated REST request and WebSocket handshake resolves a
 * bearer token; with the store lookup that was a read transaction per
 * request (about 6% of a feed request's CPU).  This table remembers recent
 * answers, in core's slot cache (slotcache.h): CORE_SCACHE_SLOTS entries
 * in CORE_SCACHE_SHARDS locks, so the MHD workers do not queue on one
 * mutex, keyed by the 32-byte token hash.  Only sessions the store
 * confirmed are ever cached, so nobody can aim entries at a slot without
 * holding valid tokens for it.
 *
 * Staleness.  A logout through this core forgets the entry at once
 * (core__session_cache_forget), and the slot's epoch makes a lookup that
 * was already reading the store when the logout happened discard its
 * answer instead of caching a revoked token.  A logout through ANOTHER
 * instance arrives as the revocation event it published on the bus:
 * core's bus listener (bus_listen.c) calls auth_forget_token() for it.
 * Without a shared bus, or if that event is lost, an entry is trusted for
 * at most CORE_SCACHE_TTL_MS, then checked against the store again.
 * Expiry needs no hook: the session's own expires_at is kept and checked
 * on every hit.
 *
 * Shared level (REDIS_URL: the scaling guide's "Redis for sessions").
 * After a miss here, auth_check asks the shared cache (cache.h sessions)
 * before the store, and shares every session the store confirms, for
 * CORE_SSHARED_TTL_MS or until the session expires if sooner: a token used
 * on one instance costs the others one Redis round trip, not a store read.
 * Revocation (core__session_revoke) forgets the local entry and writes a
 * revocation mark over the shared one, which a put cannot overwrite, so a
 * lookup that read the store before the logout cannot share the session
 * again.  Redis down: the shared calls fail fast and auth_check asks the
 * store, as on a miss.  A logout that cannot reach Redis leaves the shared
 * entry for at most its TTL; the store no longer has the session, so any
 * instance that misses (or restarts) refuses it. */
#include <stdlib.h>
#include <string.h>

#include "chatli/cache.h"
#include "chatli/clock.h"
#include "chatli/log.h"
#include "core_internal.h"

/* The cached value: fixed size, so a hit is one memcpy. */
struct entry {
    char user_id[OID_SIZE];
    int64_t expires_at; /* the session's expiry, wall-clock ms */
};

int core__session_cache_init(struct slotcache *sc)
{
    return slotcache_init(sc, CORE_SCACHE_SLOTS, CORE_SCACHE_SHARDS, 32, CORE_SCACHE_TTL_MS);
}

/* Every value of this cache is one struct entry (only this file puts). */
static bool read_entry(void *arg, const void *val, size_t len)
{
    (void)len;
    memcpy(arg, val, sizeof(struct entry));
    return true;
}

bool core__session_cache_get(struct slotcache *sc, const uint8_t hash[32],
                             char user_id[OID_SIZE], int64_t *expires_at, uint64_t *epoch)
{
    struct entry e;
    if (!slotcache_get(sc, hash, 32, read_entry, &e, epoch))
        return false;
    memcpy(user_id, e.user_id, OID_SIZE);
    *expires_at = e.expires_at;
    return true;
}

void core__session_cache_put(struct slotcache *sc, const uint8_t hash[32],
                             const char *user_id, int64_t expires_at, uint64_t epoch)
{
    struct entry *e = malloc(sizeof *e);
    if (e) {
        memcpy(e->user_id, user_id, OID_LEN);
        e->user_id[OID_LEN] = '\0';
        e->expires_at = expires_at;
    }
    slotcache_put(sc, hash, 32, e, sizeof *e, epoch);
}

void core__session_cache_forget(struct slotcache *sc, const uint8_t hash[32])
{
    slotcache_forget(sc, hash, 32);
}

bool core__session_shared_get(struct core *c, const uint8_t hash[32], char user_id[OID_SIZE],
                              int64_t *expires_at)
{
    struct chat_err e = {0};
    return cache_session_get(c->cfg.shared, hash, user_id, expires_at, &e) == 0;
}

void core__session_shared_put(struct core *c, const uint8_t hash[32], const char *user_id,
                              int64_t expires_at)
{
    int64_t ttl = expires_at - clock_now_ms();
    if (ttl <= 0)
        return;
    struct chat_err e = {0};
    cache_session_put(c->cfg.shared, hash, user_id, expires_at,
                      ttl < CORE_SSHARED_TTL_MS ? ttl : CORE_SSHARED_TTL_MS, &e);
}

void core__session_revoke(struct core *c, const uint8_t hash[32])
{
    core__session_cache_forget(&c->priv->sessions, hash);
    struct chat_err e = {0};
    if (cache_shares_sessions(c->cfg.shared) &&
        cache_session_revoke(c->cfg.shared, hash, CORE_SSHARED_TTL_MS, &e) != 0)
        log_warn("auth: session not revoked in the shared cache (it expires there within %d s): "
                 "%s", CORE_SSHARED_TTL_MS / 1000, e.msg);
}
