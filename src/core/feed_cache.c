/* feed_cache.c - recently served feed pages, as the JSON text sent.
 *
 * A 20-post feed page costs ~1.1M instructions to build, and ~600k of them
 * are jansson serializing its ~6.9 KB (jansson walks every string one code
 * point at a time, ~85 instructions per output byte).  No reshuffling of
 * the page's JSON gets that near the ~50 us per request the feed target
 * allows, so pages are kept as text and served again while nothing that
 * could change them has happened.
 *
 * Validity is one counter, the feed version (core_priv.feed_version):
 * every write that can change any feed page - a post created or deleted, a
 * like or unlike, a comment, a profile edit (authors are embedded) - bumps
 * it after its store write returned, and a cached page is served only if
 * it was built under the current version.  A page build reads the version
 * BEFORE its store reads, so a page that might predate a write is stored
 * under an already outdated version and never served.  Within this process
 * that makes the cache exact: a request that starts after a write returned
 * sees it.  Across instances, posts_feed_changed also publishes a feed
 * invalidation on the bus, and core's bus listener (bus_listen.c) bumps the
 * version of every other instance when it arrives (milliseconds later with
 * Redis); a page is trusted for at most CORE_FCACHE_TTL_MS whatever
 * happens, which bounds what a lost invalidation costs.  One global
 * counter is deliberately coarse: any like invalidates every page.  Under
 * a steady write load the hit rate drops towards zero and the cost is one
 * lookup per request; the cache pays off for the reads between writes,
 * which on a feed are most of them.
 *
 * Shared level (REDIS_URL): first pages (no cursor) are also kept in the
 * shared cache, so a page one instance built serves the others.  There the
 * version is a shared counter (key "feed:ver", INCR by every feed write on
 * any instance) and a page's key embeds the version it was built under
 * ("feed:<ver>:<key>"): a write orphans every older page at once, and
 * orphans expire after CORE_FSHARED_TTL_MS.  The same read-the-version-
 * first rule makes it exact.  Redis down: the shared calls fail fast and
 * pages are built from the store, as on a miss.
 *
 * Entries are keyed by everything the page depends on: viewer (likedByMe),
 * author filter, limit and cursor.  They live in core's slot cache
 * (slotcache.h), CORE_FCACHE_SLOTS slots of at most CORE_FCACHE_MAX_BYTES
 * each, so memory is bounded; larger pages are simply not cached.  Nothing
 * forgets a feed entry (the version does that job for every slot at once),
 * so the slot epochs stay 0 and every put is kept. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "chatli/bus.h"
#include "chatli/cache.h"
#include "chatli/log.h"
#include "core_internal.h"

/* A cached value: the version the page was built under, then its text and
 * a NUL. */
struct page {
    uint64_t version;
    char text[];
};

int core__feed_cache_init(struct slotcache *sc)
{
    return slotcache_init(sc, CORE_FCACHE_SLOTS, CORE_FCACHE_SHARDS, CORE_FCACHE_KEY_MAX,
                          CORE_FCACHE_TTL_MS);
}

struct page_read {
    uint64_t version; /* the current feed version */
    char *text;       /* new: a copy of the hit */
    size_t len;
};

static bool read_page(void *arg, const void *val, size_t len)
{
    struct page_read *r = arg;
    const struct page *p = val;
    if (p->version != r->version)
        return false;
    /* A copy: the caller hands it to the transport, which frees it. */
    size_t n = len - sizeof *p; /* the text and its NUL */
    r->text = malloc(n);
    if (!r->text)
        return false;
    memcpy(r->text, p->text, n);
    r->len = n - 1;
    return true;
}

bool core__feed_cache_get(struct slotcache *fc, const char *key, size_t key_len,
                          uint64_t version, char **text, size_t *len)
{
    struct page_read r = {.version = version};
    uint64_t epoch;
    bool hit = slotcache_get(fc, key, key_len, read_page, &r, &epoch);
    *text = r.text;
    *len = r.len;
    return hit;
}

void core__feed_cache_put(struct slotcache *fc, const char *key, size_t key_len,
                          uint64_t version, const char *text, size_t len)
{
    if (len > CORE_FCACHE_MAX_BYTES)
        return;
    struct page *p = malloc(sizeof *p + len + 1);
    if (p) { /* else not cached; the request itself is unaffected */
        p->version = version;
        memcpy(p->text, text, len);
        p->text[len] = '\0';
    }
    /* The epoch of a feed slot is always 0: nothing forgets feed pages. */
    slotcache_put(fc, key, key_len, p, sizeof *p + len + 1, 0);
}

uint64_t core__feed_version(struct core *c)
{
    return atomic_load(&c->priv->feed_version);
}

void core__feed_bump(struct core *c)
{
    atomic_fetch_add(&c->priv->feed_version, 1);
}

/* The shared feed version's key, and a page's key under version `sv`. */
#define SHARED_VERSION_KEY "feed:ver"

bool core__feed_shared_get(struct core *c, const char *key, int64_t *sv, char **text,
                           size_t *len)
{
    struct chat_err e = {0};
    *text = NULL;
    /* One round trip: the version and the page under it (cache.h). */
    return cache_get_versioned(c->cfg.shared, SHARED_VERSION_KEY, "feed:", key, sv, text, len,
                               &e) == 0;
}

void core__feed_shared_put(struct core *c, const char *key, int64_t sv, const char *text,
                           size_t len)
{
    if (sv < 0 || len > CORE_FCACHE_MAX_BYTES)
        return;
    char pkey[CORE_FCACHE_KEY_MAX + 48];
    snprintf(pkey, sizeof pkey, "feed:%lld:%s", (long long)sv, key); /* get_versioned's */
    struct chat_err e = {0};
    cache_set(c->cfg.shared, pkey, text, len, CORE_FSHARED_TTL_MS, &e);
}

/* Order matters: the shared version moves before the local one, so a
 * reader that sees the new local version also reads the new shared one
 * (it reads local first) and never installs an older shared page under
 * the new local version. */
void posts_feed_changed(struct core *c)
{
    int64_t v;
    struct chat_err e = {0};
    if (cache_shares_values(c->cfg.shared) &&
        cache_incr(c->cfg.shared, SHARED_VERSION_KEY, &v, &e) != 0)
        log_warn("core: cannot bump the shared feed version: %s", e.msg);
    core__feed_bump(c);
    core__publish_inval(c, BUS_INV_FEED, NULL);
}
