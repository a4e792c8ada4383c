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
 * sees it.  Writes made through another instance are not counted here; a
 * page is trusted for at most CORE_FCACHE_TTL_MS, and posts_feed_changed()
 * in core.h is the hook a bus carrying post events between instances
 * should call.  One global counter is deliberately coarse: any like
 * invalidates every page.  Under a steady write load the hit rate drops
 * towards zero and the cost is one lookup per request; the cache pays off
 * for the reads between writes, which on a feed are most of them.
 *
 * Entries are keyed by everything the page depends on: viewer (likedByMe),
 * author filter, limit and cursor.  The table is direct-mapped (a key
 * hashes to one slot; a collision evicts) with CORE_FCACHE_SLOTS slots of
 * at most CORE_FCACHE_MAX_BYTES each, so its memory is bounded; larger
 * pages are simply not cached. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"
#include "chatli/clock.h"

#define SLOTS_PER_SHARD (CORE_FCACHE_SLOTS / CORE_FCACHE_SHARDS)

struct slot {
    char key[CORE_FCACHE_KEY_MAX];
    size_t key_len;         /* 0 when empty */
    char *text;             /* owned */
    size_t len;
    uint64_t version;       /* the feed version the page was built under */
    int64_t fresh_until_ms; /* CLOCK_MONOTONIC ms */
};

/* Threads: any thread that lists posts; `lock` guards every field of every
 * slot of the shard. */
struct shard {
    pthread_mutex_t lock;
    struct slot slots[SLOTS_PER_SHARD];
};

struct core_feed_cache {
    struct shard shards[CORE_FCACHE_SHARDS];
};

int core__feed_cache_new(struct core_feed_cache **out)
{
    struct core_feed_cache *fc = calloc(1, sizeof *fc);
    if (!fc)
        return CHAT_E_INTERNAL;
    for (int i = 0; i < CORE_FCACHE_SHARDS; i++) {
        if (pthread_mutex_init(&fc->shards[i].lock, NULL) != 0) {
            while (i-- > 0)
                pthread_mutex_destroy(&fc->shards[i].lock);
            free(fc);
            return CHAT_E_INTERNAL;
        }
    }
    *out = fc;
    return 0;
}

void core__feed_cache_free(struct core_feed_cache *fc)
{
    if (!fc)
        return;
    for (int i = 0; i < CORE_FCACHE_SHARDS; i++) {
        for (int k = 0; k < SLOTS_PER_SHARD; k++)
            free(fc->shards[i].slots[k].text);
        pthread_mutex_destroy(&fc->shards[i].lock);
    }
    free(fc);
}

static struct slot *slot_of(struct core_feed_cache *fc, const char *key, size_t key_len,
                            struct shard **sh)
{
    uint32_t h = 2166136261u; /* FNV-1a: keys are ids and our own cursors */
    for (size_t i = 0; i < key_len; i++) {
        h ^= (uint8_t)key[i];
        h *= 16777619u;
    }
    *sh = &fc->shards[h % CORE_FCACHE_SHARDS];
    return &(*sh)->slots[(h / CORE_FCACHE_SHARDS) % SLOTS_PER_SHARD];
}

static int64_t mono_ms(void)
{
    return clock_mono_ns() / 1000000;
}

bool core__feed_cache_get(struct core_feed_cache *fc, const char *key, size_t key_len,
                          uint64_t version, char **text, size_t *len)
{
    struct shard *sh;
    struct slot *s = slot_of(fc, key, key_len, &sh);
    bool hit = false;
    *text = NULL;
    *len = 0;
    pthread_mutex_lock(&sh->lock);
    if (s->key_len == key_len && memcmp(s->key, key, key_len) == 0 && s->version == version &&
        mono_ms() < s->fresh_until_ms) {
        /* A copy: the caller hands it to the transport, which frees it. */
        char *t = malloc(s->len + 1);
        if (t) {
            memcpy(t, s->text, s->len + 1);
            *text = t;
            *len = s->len;
            hit = true;
        }
    }
    pthread_mutex_unlock(&sh->lock);
    return hit;
}

void core__feed_cache_put(struct core_feed_cache *fc, const char *key, size_t key_len,
                          uint64_t version, const char *text, size_t len)
{
    if (key_len == 0 || key_len > CORE_FCACHE_KEY_MAX || len > CORE_FCACHE_MAX_BYTES)
        return;
    char *copy = malloc(len + 1);
    if (!copy)
        return; /* not cached; the request itself is unaffected */
    memcpy(copy, text, len);
    copy[len] = '\0';
    struct shard *sh;
    struct slot *s = slot_of(fc, key, key_len, &sh);
    pthread_mutex_lock(&sh->lock);
    char *old = s->text;
    memcpy(s->key, key, key_len);
    s->key_len = key_len;
    s->text = copy;
    s->len = len;
    s->version = version;
    s->fresh_until_ms = mono_ms() + CORE_FCACHE_TTL_MS;
    pthread_mutex_unlock(&sh->lock);
    free(old);
}

uint64_t core__feed_version(struct core *c)
{
    return atomic_load(&c->priv->feed_version);
}

void posts_feed_changed(struct core *c)
{
    atomic_fetch_add(&c->priv->feed_version, 1);
}
