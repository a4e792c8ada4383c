/* core.c - the core handle and the machinery every service shares.
 *
 * Three pieces of private state live here:
 * - A counting gate on Argon2id.  Each hash holds pwhash_memlimit bytes for
 *   its duration, so an unbounded login flood across the MHD pool would be an
 *   unbounded memory spike; at most pwhash_concurrency hashes run, the rest
 *   wait their turn (their requests just take longer).
 * - A dummy password hash, computed once with the configured parameters, so
 *   a login for an unknown user does the same verify work as a wrong
 *   password and timing does not reveal which accounts exist.
 * - The chat member cache (see core_internal.h), invalidated on every
 *   membership change made through this core and guarded against the race
 *   where a fetch that started before an invalidation stores its stale
 *   result after it: each slot has an epoch, bumped by invalidation, and a
 *   fetch only installs its result if the epoch it saw is still current.
 * The session and author caches (core/session_cache.c, author_cache.c)
 * are created and freed here too; they use the same epoch scheme.  So is
 * the feed page cache (core/feed_cache.c), validated by one version
 * counter instead. */
#include "core_internal.h"

#include <stdlib.h>
#include <string.h>

#include "chatli/bus.h"
#include "chatli/store.h"
#include "chatli/clock.h"
#include "chatli/log.h"

int core_new(const struct core_config *cfg, struct store *store, struct bus *bus,
             struct core **out, struct chat_err *err)
{
    *out = NULL;
    if (sodium_init() < 0)
        return core__internal(err, "core: sodium_init failed");

    struct core *c = calloc(1, sizeof *c);
    struct core_priv *p = calloc(1, sizeof *p);
    int inited = 0; /* how many of the three sync objects exist */
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
    if (pthread_mutex_init(&p->mc_lock, NULL) != 0)
        goto fail_locks;
    inited = 3;
    if (core__session_cache_new(&p->sessions) != 0 || core__author_cache_new(&p->authors) != 0 ||
        core__feed_cache_new(&p->feed) != 0)
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
    if (p) {
        core__session_cache_free(p->sessions);
        core__author_cache_free(p->authors);
        core__feed_cache_free(p->feed);
    }
    if (inited > 2)
        pthread_mutex_destroy(&p->mc_lock);
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
    for (size_t i = 0; i < CORE_MCACHE_SLOTS; i++)
        free(p->mc[i].ids);
    core__session_cache_free(p->sessions);
    core__author_cache_free(p->authors);
    core__feed_cache_free(p->feed);
    pthread_mutex_destroy(&p->mc_lock);
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

int core__internal(struct chat_err *err, const char *what)
{
    log_error("%s", what);
    return chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
}

void core__publish_text(struct core *c, int scope, const char (*user_ids)[OID_SIZE], size_t n,
                        uint64_t skip_conn, const char *frame, size_t len)
{
    if (!c->bus || !frame)
        return;
    if (scope == BUS_TO_USERS && n == 0)
        return;
    struct bus_event ev = {
        .scope = scope,
        .user_ids = user_ids,
        .n_users = scope == BUS_TO_USERS ? n : 0,
        .skip_conn = skip_conn,
        .frame = frame,
        .len = len,
    };
    struct chat_err e = {0};
    if (bus_publish(c->bus, &ev, &e) != 0)
        log_warn("core: bus publish failed: %s", e.msg);
}

void core__publish(struct core *c, int scope, const char (*user_ids)[OID_SIZE], size_t n,
                   uint64_t skip_conn, json_t *frame)
{
    if (!c->bus || !frame)
        return;
    if (scope == BUS_TO_USERS && n == 0)
        return;
    char *text = json_dumps(frame, JSON_COMPACT);
    if (!text) {
        log_error("core: cannot serialize an event frame (out of memory)");
        return;
    }
    core__publish_text(c, scope, user_ids, n, skip_conn, text, strlen(text));
    free(text);
}

/* ---- member cache -------------------------------------------------------- */

static size_t slot_of(const char *chat_id)
{
    /* FNV-1a over the id: ids are minted by us, so no one can aim collisions
     * at a slot, and a collision only costs a store fetch anyway. */
    uint32_t h = 2166136261u;
    for (int i = 0; i < OID_LEN && chat_id[i]; i++) {
        h ^= (uint8_t)chat_id[i];
        h *= 16777619u;
    }
    return h % CORE_MCACHE_SLOTS;
}

static int64_t mono_ms(void)
{
    return clock_mono_ns() / 1000000;
}

static bool contains(const char (*ids)[OID_SIZE], size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i], id) == 0)
            return true;
    return false;
}

static char (*dup_ids(const char (*ids)[OID_SIZE], size_t n))[OID_SIZE]
{
    char(*v)[OID_SIZE] = malloc((n ? n : 1) * sizeof *v);
    if (v && n)
        memcpy(v, ids, n * sizeof *v);
    return v;
}

int core__chat_members(struct core *c, const char *chat_id, const char *member,
                       char (**ids)[OID_SIZE], size_t *n, struct chat_err *err)
{
    struct core_priv *p = c->priv;
    struct core_mcache_slot *slot = &p->mc[slot_of(chat_id)];
    *ids = NULL;
    *n = 0;

    pthread_mutex_lock(&p->mc_lock);
    uint64_t epoch = slot->epoch;
    if (strcmp(slot->chat_id, chat_id) == 0 && mono_ms() < slot->expires_ms &&
        (!member || contains((const char(*)[OID_SIZE])slot->ids, slot->n, member))) {
        *ids = dup_ids((const char(*)[OID_SIZE])slot->ids, slot->n);
        *n = slot->n;
        pthread_mutex_unlock(&p->mc_lock);
        if (!*ids)
            return core__internal(err, "core: out of memory copying members");
        return 0;
    }
    pthread_mutex_unlock(&p->mc_lock);

    /* A miss, or the cached list lacks `member` (who may have joined through
     * another instance): ask the store, which is authoritative. */
    struct chat ch = {0};
    int rc = store_get_chat(c->store, chat_id, member, &ch, err);
    if (rc)
        return rc;
    char(*mine)[OID_SIZE] = dup_ids((const char(*)[OID_SIZE])ch.member_ids, ch.n_members);
    char(*cached)[OID_SIZE] = dup_ids((const char(*)[OID_SIZE])ch.member_ids, ch.n_members);
    size_t count = ch.n_members;
    store_chat_cleanup(&ch);
    if (!mine) {
        free(cached);
        return core__internal(err, "core: out of memory copying members");
    }

    pthread_mutex_lock(&p->mc_lock);
    if (cached && slot->epoch == epoch) {
        free(slot->ids);
        memcpy(slot->chat_id, chat_id, OID_SIZE);
        slot->ids = cached;
        slot->n = count;
        slot->expires_ms = mono_ms() + CORE_MCACHE_TTL_MS;
        cached = NULL;
    }
    pthread_mutex_unlock(&p->mc_lock);
    free(cached);

    *ids = mine;
    *n = count;
    return 0;
}

void core__chat_members_invalidate(struct core *c, const char *chat_id)
{
    struct core_priv *p = c->priv;
    struct core_mcache_slot *slot = &p->mc[slot_of(chat_id)];
    pthread_mutex_lock(&p->mc_lock);
    slot->epoch++;
    if (strcmp(slot->chat_id, chat_id) == 0) {
        free(slot->ids);
        slot->ids = NULL;
        slot->n = 0;
        slot->chat_id[0] = '\0';
    }
    pthread_mutex_unlock(&p->mc_lock);
}

/* ---- id arrays ----------------------------------------------------------- */

int core__ids_push(struct core_ids *ids, const char *id)
{
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 16;
        void *v = realloc(ids->v, cap * sizeof *ids->v);
        if (!v)
            return CHAT_E_INTERNAL;
        ids->v = v;
        ids->cap = cap;
    }
    memcpy(ids->v[ids->n], id, OID_LEN);
    ids->v[ids->n][OID_LEN] = '\0';
    ids->n++;
    return 0;
}

void core__ids_cleanup(struct core_ids *ids)
{
    free(ids->v);
    ids->v = NULL;
    ids->n = ids->cap = 0;
}
