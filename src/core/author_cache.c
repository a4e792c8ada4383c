/* author_cache.c - user id -> the fields of an Author view, so that pages
 * and sends do not ask the store for the same few users on every request.
 *
 * Every feed page, comment page, message page and message send embeds
 * Author objects ({"id","username","displayName","avatarUrl"}); loading
 * them was a users query per request (about 5% of a feed page's CPU).  The
 * table keeps those three strings per user.  It holds strings, not json_t
 * objects: jansson's reference counts are not safe to share between threads
 * (see messages.c), so a hit builds a fresh Author for its caller.
 *
 * Same shape as the session cache (session_cache.c): direct-mapped by a
 * hash of the id (ids are minted by us, so nobody aims collisions at a
 * slot, and a collision only costs a store read), CORE_ACACHE_SLOTS entries
 * in CORE_ACACHE_SHARDS locks, and a per-slot epoch so a read of the store
 * that raced a profile edit never installs the old profile.  A profile
 * edited through this core (users_update_me) is forgotten at once; one
 * edited through another instance shows here within CORE_ACACHE_TTL_MS. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"
#include "views.h"
#include "chatli/clock.h"

#define SLOTS_PER_SHARD (CORE_ACACHE_SLOTS / CORE_ACACHE_SHARDS)

struct slot {
    char id[OID_SIZE];      /* "" when empty */
    char *username;         /* owned */
    char *display_name;     /* owned */
    char *avatar_url;       /* owned, NULL when unset */
    int64_t fresh_until_ms; /* CLOCK_MONOTONIC ms */
    uint64_t epoch;         /* bumped by every forget that maps here */
};

/* Threads: any thread that calls core; `lock` guards every field of every
 * slot of the shard. */
struct shard {
    pthread_mutex_t lock;
    struct slot slots[SLOTS_PER_SHARD];
};

struct core_author_cache {
    struct shard shards[CORE_ACACHE_SHARDS];
};

int core__author_cache_new(struct core_author_cache **out)
{
    struct core_author_cache *ac = calloc(1, sizeof *ac);
    if (!ac)
        return CHAT_E_INTERNAL;
    for (int i = 0; i < CORE_ACACHE_SHARDS; i++) {
        if (pthread_mutex_init(&ac->shards[i].lock, NULL) != 0) {
            while (i-- > 0)
                pthread_mutex_destroy(&ac->shards[i].lock);
            free(ac);
            return CHAT_E_INTERNAL;
        }
    }
    *out = ac;
    return 0;
}

static void slot_clear(struct slot *s)
{
    free(s->username);
    free(s->display_name);
    free(s->avatar_url);
    s->username = s->display_name = s->avatar_url = NULL;
    s->id[0] = '\0';
}

void core__author_cache_free(struct core_author_cache *ac)
{
    if (!ac)
        return;
    for (int i = 0; i < CORE_ACACHE_SHARDS; i++) {
        for (int k = 0; k < SLOTS_PER_SHARD; k++)
            slot_clear(&ac->shards[i].slots[k]);
        pthread_mutex_destroy(&ac->shards[i].lock);
    }
    free(ac);
}

static struct slot *slot_of(struct core_author_cache *ac, const char *id, struct shard **sh)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (int i = 0; i < OID_LEN && id[i]; i++) {
        h ^= (uint8_t)id[i];
        h *= 16777619u;
    }
    *sh = &ac->shards[h % CORE_ACACHE_SHARDS];
    return &(*sh)->slots[(h / CORE_ACACHE_SHARDS) % SLOTS_PER_SHARD];
}

static int64_t mono_ms(void)
{
    return clock_mono_ns() / 1000000;
}

json_t *core__author_cache_get(struct core_author_cache *ac, const char *id, uint64_t *epoch)
{
    struct shard *sh;
    struct slot *s = slot_of(ac, id, &sh);
    json_t *a = NULL;
    pthread_mutex_lock(&sh->lock);
    *epoch = s->epoch;
    if (s->id[0] && strncmp(s->id, id, OID_LEN) == 0 && mono_ms() < s->fresh_until_ms) {
        struct user u = {
            .username = s->username,
            .display_name = s->display_name,
            .avatar_url = s->avatar_url,
        };
        memcpy(u.id, s->id, OID_SIZE);
        a = views_author(&u); /* NULL when out of memory: the caller asks the store */
    }
    pthread_mutex_unlock(&sh->lock);
    return a;
}

void core__author_cache_put(struct core_author_cache *ac, const struct user *u, uint64_t epoch)
{
    /* Copies made before taking the lock; a failed copy just skips caching. */
    char *name = strdup(u->username ? u->username : "");
    char *display = strdup(u->display_name ? u->display_name : "");
    char *avatar = u->avatar_url ? strdup(u->avatar_url) : NULL;
    struct shard *sh;
    struct slot *s = slot_of(ac, u->id, &sh);
    bool ok = name && display && (avatar || !u->avatar_url);
    pthread_mutex_lock(&sh->lock);
    /* A forget since the caller's lookup means its store answer may
     * predate a profile edit: do not cache it. */
    if (ok && s->epoch == epoch) {
        slot_clear(s);
        memcpy(s->id, u->id, OID_LEN);
        s->id[OID_LEN] = '\0';
        s->username = name;
        s->display_name = display;
        s->avatar_url = avatar;
        s->fresh_until_ms = mono_ms() + CORE_ACACHE_TTL_MS;
        name = display = avatar = NULL;
    }
    pthread_mutex_unlock(&sh->lock);
    free(name);
    free(display);
    free(avatar);
}

void core__author_cache_forget(struct core_author_cache *ac, const char *id)
{
    struct shard *sh;
    struct slot *s = slot_of(ac, id, &sh);
    pthread_mutex_lock(&sh->lock);
    s->epoch++;
    if (s->id[0] && strncmp(s->id, id, OID_LEN) == 0)
        slot_clear(s);
    pthread_mutex_unlock(&sh->lock);
}

int core__author(struct core *c, const char *id, json_t **out, struct chat_err *err)
{
    struct views_authors a = {0};
    char ids[1][OID_SIZE];
    *out = NULL;
    memcpy(ids[0], id, OID_LEN);
    ids[0][OID_LEN] = '\0';
    int rc = views_authors_load(c, (const char(*)[OID_SIZE])ids, 1, &a, err);
    if (rc == 0 && a.n == 1)
        *out = json_incref(a.items[0].json);
    else if (rc == 0)
        rc = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such user");
    views_authors_cleanup(&a);
    return rc;
}
