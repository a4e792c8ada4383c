/* author_cache.c - the Authors that pages and sends embed: user id -> the
 * fields of an Author view, and the batch load every page uses.
 *
 * Every feed page, comment page, message page and message send embeds
 * Author objects ({"id","username","displayName","avatarUrl"}); loading
 * them was a users query per request (about 5% of a feed page's CPU).  The
 * cache keeps those three strings per user, in core's slot cache
 * (slotcache.h): CORE_ACACHE_SLOTS entries in CORE_ACACHE_SHARDS locks,
 * keyed by the user id.  It holds strings, not json_t objects: jansson's
 * decref is a release-only atomic with no acquire fence before the free,
 * so one refcounted tree shared by several threads races (ThreadSanitizer
 * reports it), and a hit builds a fresh Author for its caller instead.
 *
 * The slot's epoch makes a read of the store that raced a profile edit
 * never install the old profile.  A profile edited through this core
 * (users_update_me) is forgotten at once, and core__author_changed
 * publishes the edit on the bus so that core's bus listener (bus_listen.c)
 * forgets it on every other instance; CORE_ACACHE_TTL_MS bounds what a
 * lost invalidation costs.
 *
 * core__authors_load serves a whole page: the cache first, then ONE
 * store_get_users call for every id it lacks, so a page costs at most one
 * users query however many items it has. */
#include <stdlib.h>
#include <string.h>

#include "chatli/bus.h"
#include "core_internal.h"
#include "views.h"
#include "chatli/store.h"

int core__author_cache_init(struct slotcache *sc, bool alone)
{
    return slotcache_init(sc, CORE_ACACHE_SLOTS, CORE_ACACHE_SHARDS, OID_LEN,
                          alone ? CORE_CACHE_ALONE_TTL_MS : CORE_ACACHE_TTL_MS);
}

/* A cached value is the three strings back to back, each NUL-terminated,
 * after one byte that tells whether avatarUrl is set (an unset one is
 * null in the view, not ""). */
struct author_read {
    const char *id;
    json_t *author; /* new: the view built from the hit */
};

static bool read_author(void *arg, const void *val, size_t len)
{
    struct author_read *r = arg;
    const char *v = val;
    struct user u = {.username = (char *)v + 1};
    (void)len;
    memcpy(u.id, r->id, OID_LEN);
    u.display_name = u.username + strlen(u.username) + 1;
    if (v[0])
        u.avatar_url = u.display_name + strlen(u.display_name) + 1;
    r->author = views_author(&u); /* NULL when out of memory: the caller asks the store */
    return r->author != NULL;
}

json_t *core__author_cache_get(struct slotcache *ac, const char *id, uint64_t *epoch)
{
    struct author_read r = {.id = id};
    slotcache_get(ac, id, strnlen(id, OID_LEN), read_author, &r, epoch);
    return r.author;
}

void core__author_cache_put(struct slotcache *ac, const struct user *u, uint64_t epoch)
{
    const char *name = u->username ? u->username : "";
    const char *display = u->display_name ? u->display_name : "";
    size_t n1 = strlen(name) + 1, n2 = strlen(display) + 1;
    size_t n3 = u->avatar_url ? strlen(u->avatar_url) + 1 : 0;
    char *v = malloc(1 + n1 + n2 + n3); /* a failed copy just skips caching */
    if (v) {
        v[0] = u->avatar_url != NULL;
        memcpy(v + 1, name, n1);
        memcpy(v + 1 + n1, display, n2);
        if (n3)
            memcpy(v + 1 + n1 + n2, u->avatar_url, n3);
    }
    slotcache_put(ac, u->id, strnlen(u->id, OID_LEN), v, 1 + n1 + n2 + n3, epoch);
}

void core__author_changed(struct core *c, const char *id)
{
    core__author_cache_forget(&c->priv->authors, id);
    core__publish_inval(c, BUS_INV_AUTHOR, id);
}

void core__author_cache_forget(struct slotcache *ac, const char *id)
{
    slotcache_forget(ac, id, strnlen(id, OID_LEN));
}

/* ---- loading a page's Authors -------------------------------------------- */

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, OID_LEN);
}

/* An id of the page whose Author the cache did not have. */
struct miss {
    char id[OID_SIZE];
    uint64_t epoch; /* the cache slot's epoch before the store read */
};

static int cmp_miss(const void *a, const void *b)
{
    return memcmp(((const struct miss *)a)->id, ((const struct miss *)b)->id, OID_LEN);
}

/* Sorts `ids` and drops repeats (a page often has one author many times);
 * returns how many are left. */
static size_t uniq_ids(char (*ids)[OID_SIZE], size_t n)
{
    qsort(ids, n, sizeof *ids, cmp_id);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || memcmp(ids[m - 1], ids[i], OID_LEN) != 0)
            memcpy(ids[m++], ids[i], OID_SIZE);
    return m;
}

/* Asks the store for the `n_miss` ids of `miss` (sorted, for bsearch) and
 * adds the Authors found to `out`, which has room for `cap`, caching each. */
static int load_missing(struct core *c, const struct miss *miss, size_t n_miss, size_t cap,
                        struct views_authors *out, struct chat_err *err)
{
    char(*want)[OID_SIZE] = malloc(n_miss * sizeof *want);
    struct user_list users = {0};
    if (!want)
        return core__internal(err, "authors: out of memory");
    for (size_t i = 0; i < n_miss; i++)
        memcpy(want[i], miss[i].id, OID_SIZE);
    int rc = store_get_users(c->store, (const char(*)[OID_SIZE])want, n_miss, &users, err);
    free(want);
    /* Each user answers one miss; `cap` guards against an adapter that
     * returned one twice. */
    for (size_t i = 0; rc == 0 && i < users.n && out->n < cap; i++) {
        const struct user *u = &users.items[i];
        json_t *a = views_author(u);
        if (!a) {
            rc = core__internal(err, "authors: out of memory");
            break;
        }
        struct miss key;
        memcpy(key.id, u->id, OID_SIZE);
        const struct miss *hit = bsearch(&key, miss, n_miss, sizeof *miss, cmp_miss);
        if (hit)
            core__author_cache_put(&c->priv->authors, u, hit->epoch);
        memcpy(out->items[out->n].id, u->id, OID_SIZE);
        out->items[out->n++].json = a;
    }
    store_user_list_cleanup(&users);
    return rc;
}

int core__authors_load(struct core *c, const char (*ids)[OID_SIZE], size_t n,
                       struct views_authors *out, struct chat_err *err)
{
    out->items = NULL;
    out->n = 0;
    if (n == 0)
        return 0;

    char(*uniq)[OID_SIZE] = malloc(n * sizeof *uniq);
    if (!uniq)
        return core__internal(err, "authors: out of memory");
    memcpy(uniq, ids, n * sizeof *uniq);
    size_t m = uniq_ids(uniq, n);

    /* The author cache first; one store call for whatever it lacks. */
    struct miss *miss = malloc(m * sizeof *miss);
    out->items = calloc(m, sizeof *out->items);
    int rc = 0;
    size_t n_miss = 0;
    if (!miss || !out->items)
        rc = core__internal(err, "authors: out of memory");
    for (size_t i = 0; rc == 0 && i < m; i++) {
        uint64_t epoch;
        json_t *a = core__author_cache_get(&c->priv->authors, uniq[i], &epoch);
        if (a) {
            memcpy(out->items[out->n].id, uniq[i], OID_SIZE);
            out->items[out->n++].json = a;
        } else {
            memcpy(miss[n_miss].id, uniq[i], OID_SIZE);
            miss[n_miss++].epoch = epoch;
        }
    }
    free(uniq);
    if (rc == 0 && n_miss > 0)
        rc = load_missing(c, miss, n_miss, m, out, err);
    free(miss);
    if (rc) {
        views_authors_cleanup(out);
        return rc;
    }
    qsort(out->items, out->n, sizeof *out->items, cmp_id);
    return 0;
}

int core__author(struct core *c, const char *id, json_t **out, struct chat_err *err)
{
    struct views_authors a = {0};
    char ids[1][OID_SIZE];
    *out = NULL;
    memcpy(ids[0], id, OID_LEN);
    ids[0][OID_LEN] = '\0';
    int rc = core__authors_load(c, (const char(*)[OID_SIZE])ids, 1, &a, err);
    if (rc == 0 && a.n == 1)
        *out = json_incref(a.items[0].json);
    else if (rc == 0)
        rc = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such user");
    views_authors_cleanup(&a);
    return rc;
}
