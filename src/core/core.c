/* core.c - the core handle: creating and freeing its private state.
 *
 * Three pieces of that state are special enough to describe here:
 * - A counting gate on Argon2id.  Each hash holds pwhash_memlimit bytes for
 *   its duration, so an unbounded login flood across the MHD pool would be an
 *   unbounded memory spike; at most pwhash_concurrency hashes run, the rest
 *   wait their turn (their requests just take longer).
 * - A dummy password hash, computed once with the configured parameters, so
 *   a login for an unknown user does the same verify work as a wrong
 *   password and timing does not reveal which accounts exist.
 * - The chat member cache (core/members.c), a slot cache (slotcache.h)
 *   embedded in the private state.
 * The session, author and feed page caches (core/session_cache.c,
 * author_cache.c, feed_cache.c) are created and freed here too; all four
 * are slot caches, the same bounded table with a per-slot epoch.
 *
 * This file sits at the top of core's calls: it calls into the caches and
 * common.c and none of them calls it, so core's files call each other in
 * one direction (auth.c uses the Argon2id gate, and nothing here uses
 * auth.c). */
#include "core_internal.h"

#include <stdlib.h>
#include <string.h>

#include "chatli/bus.h"
#include "chatli/log.h"

static void caches_cleanup(struct core_priv *p)
{
    slotcache_cleanup(&p->members);
    slotcache_cleanup(&p->sessions);
    slotcache_cleanup(&p->authors);
    slotcache_cleanup(&p->feed);
}

int core_new(const struct core_config *cfg, struct store *store, struct bus *bus,
             struct core **out, struct chat_err *err)
{
    *out = NULL;
    if (sodium_init() < 0)
        return core__internal(err, "core: sodium_init failed");

    struct core *c = calloc(1, sizeof *c);
    struct core_priv *p = calloc(1, sizeof *p);
    int inited = 0; /* how many of the two sync objects exist */
    int rc;
    if (!c || !p) {
        rc = core__internal(err, "core: out of memory in core_new");
        goto fail;
    }
    c->cfg = *cfg;
    c->store = store;
    c->bus = bus;
    c->priv = p;
    p->pw_max = cfg->pwhash_concurrency > 0 ? cfg->pwhash_concurrency : 1;

    if (pthread_mutex_init(&p->pw_lock, NULL) != 0)
        goto fail_locks;
    inited = 1;
    if (pthread_cond_init(&p->pw_cond, NULL) != 0)
        goto fail_locks;
    inited = 2;
    /* slotcache_cleanup is a no-op on a table whose init failed or never
     * ran (p is zeroed), so the failure path frees all four alike. */
    /* Alone: no other instance writes the store (see CORE_CACHE_ALONE_TTL_MS). */
    bool alone = !bus || !bus->remote;
    if (core__member_cache_init(&p->members, alone) != 0 ||
        core__session_cache_init(&p->sessions) != 0 ||
        core__author_cache_init(&p->authors, alone) != 0 || core__feed_cache_init(&p->feed) != 0)
        goto fail_locks;

    /* The password is irrelevant: nobody can log in as the dummy. */
    static const char dummy_pw[] = "chatli-dummy-password";
    if (crypto_pwhash_str(p->dummy_hash, dummy_pw, sizeof dummy_pw - 1, cfg->pwhash_opslimit,
                          cfg->pwhash_memlimit) != 0) {
        log_error("core: crypto_pwhash_str failed for the dummy hash (opslimit %llu, "
                  "memlimit %zu)", cfg->pwhash_opslimit, cfg->pwhash_memlimit);
        rc = chat_err_set(err, CHAT_E_INTERNAL, NULL, "password hashing parameters are unusable");
        goto fail;
    }
    *out = c;
    return 0;

fail_locks:
    rc = core__internal(err, "core: cannot create locks");
fail:
    if (p)
        caches_cleanup(p);
    if (inited > 1)
        pthread_cond_destroy(&p->pw_cond);
    if (inited > 0)
        pthread_mutex_destroy(&p->pw_lock);
    free(p);
    free(c);
    return rc;
}

void core_free(struct core *c)
{
    if (!c)
        return;
    struct core_priv *p = c->priv;
    caches_cleanup(p);
    pthread_cond_destroy(&p->pw_cond);
    pthread_mutex_destroy(&p->pw_lock);
    sodium_memzero(p->dummy_hash, sizeof p->dummy_hash);
    free(p);
    free(c);
}

void core__pw_enter(struct core *c)
{
    struct core_priv *p = c->priv;
    pthread_mutex_lock(&p->pw_lock);
    while (p->pw_active >= p->pw_max)
        pthread_cond_wait(&p->pw_cond, &p->pw_lock);
    p->pw_active++;
    pthread_mutex_unlock(&p->pw_lock);
}

void core__pw_leave(struct core *c)
{
    struct core_priv *p = c->priv;
    pthread_mutex_lock(&p->pw_lock);
    p->pw_active--;
    pthread_cond_signal(&p->pw_cond);
    pthread_mutex_unlock(&p->pw_lock);
}
