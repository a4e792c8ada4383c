/* test_slotcache.c - core/slotcache.c, the table behind core's four caches.
 *
 * What must hold: an entry is served until its TTL runs out and not after;
 * a put carrying an epoch from before a forget of its slot is dropped (the
 * race the caches exist to close); a key that lands in an occupied slot
 * evicts the old entry; keys longer than key_max are never cached; a read
 * callback can refuse a hit; and threads hammering shared slots with gets,
 * puts and forgets never see one key's value under another key.  Values
 * are owned by the cache, so ASan's leak check covers the frees. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "chatli/err.h"
#include "core/slotcache.h"

/* Copies a hit into the caller's buffer (a NUL-terminated string). */
static bool read_str(void *arg, const void *val, size_t len)
{
    memcpy(arg, val, len);
    ((char *)arg)[len] = '\0';
    return true;
}

static bool refuse(void *arg, const void *val, size_t len)
{
    (void)arg;
    (void)val;
    (void)len;
    return false;
}

/* Puts the string `v` under the string key `k` with `epoch`. */
static void put_str(struct slotcache *sc, const char *k, const char *v, uint64_t epoch)
{
    slotcache_put(sc, k, strlen(k), strdup(v), strlen(v), epoch);
}

/* The value of key `k`, or NULL on a miss (in `buf`).  Sets *epoch. */
static const char *get_str(struct slotcache *sc, const char *k, char buf[64], uint64_t *epoch)
{
    return slotcache_get(sc, k, strlen(k), read_str, buf, epoch) ? buf : NULL;
}

static void test_init(void)
{
    struct slotcache sc;
    /* Geometry: powers of two, at least one slot per shard, some key. */
    CHECK_EQ_INT(slotcache_init(&sc, 12, 4, 8, 1000), CHAT_E_INTERNAL);
    CHECK_EQ_INT(slotcache_init(&sc, 16, 3, 8, 1000), CHAT_E_INTERNAL);
    CHECK_EQ_INT(slotcache_init(&sc, 4, 8, 8, 1000), CHAT_E_INTERNAL);
    CHECK_EQ_INT(slotcache_init(&sc, 16, 0, 8, 1000), CHAT_E_INTERNAL);
    CHECK_EQ_INT(slotcache_init(&sc, 16, 4, 0, 1000), CHAT_E_INTERNAL);
    slotcache_cleanup(&sc); /* zeroed by the failed init: a no-op */
    CHECK_EQ_INT(slotcache_init(&sc, 16, 4, 8, 1000), 0);
    slotcache_cleanup(&sc);
    slotcache_cleanup(&sc); /* twice is harmless too */
}

static void test_hit_and_expiry(void)
{
    struct slotcache sc;
    char buf[64];
    uint64_t e;
    CHECK_EQ_INT(slotcache_init(&sc, 64, 4, 16, 100), 0);
    CHECK(get_str(&sc, "alpha", buf, &e) == NULL);
    put_str(&sc, "alpha", "one", e);
    CHECK_EQ_STR(get_str(&sc, "alpha", buf, &e), "one");
    put_str(&sc, "alpha", "two", e); /* a later put replaces the value */
    CHECK_EQ_STR(get_str(&sc, "alpha", buf, &e), "two");
    CHECK(get_str(&sc, "beta", buf, &e) == NULL);
    usleep(150 * 1000);
    CHECK(get_str(&sc, "alpha", buf, &e) == NULL); /* past the TTL */
    put_str(&sc, "alpha", "three", e);             /* a fresh put serves again */
    CHECK_EQ_STR(get_str(&sc, "alpha", buf, &e), "three");
    slotcache_cleanup(&sc); /* frees the value still cached */
}

/* A store read that began before a forget must not install its answer. */
static void test_epoch_voids_racing_put(void)
{
    struct slotcache sc;
    char buf[64];
    uint64_t e1, e2;
    CHECK_EQ_INT(slotcache_init(&sc, 64, 4, 16, 10000), 0);
    CHECK(get_str(&sc, "user", buf, &e1) == NULL); /* miss: the caller reads the store */
    slotcache_forget(&sc, "user", 4);              /* meanwhile, a change */
    put_str(&sc, "user", "stale", e1);             /* the old answer arrives */
    CHECK(get_str(&sc, "user", buf, &e2) == NULL);
    CHECK(e2 != e1);
    put_str(&sc, "user", "fresh", e2);
    CHECK_EQ_STR(get_str(&sc, "user", buf, &e2), "fresh");

    /* A forget drops the entry itself, and a put with the epoch from
     * before it is dropped even when the slot was empty by then. */
    slotcache_forget(&sc, "user", 4);
    CHECK(get_str(&sc, "user", buf, &e1) == NULL);
    put_str(&sc, "user", "stale", e2);
    CHECK(get_str(&sc, "user", buf, &e1) == NULL);

    /* Forgetting a key that is not cached still voids in-flight puts. */
    CHECK(get_str(&sc, "other", buf, &e1) == NULL);
    slotcache_forget(&sc, "other", 5);
    put_str(&sc, "other", "stale", e1);
    CHECK(get_str(&sc, "other", buf, &e2) == NULL);
    slotcache_cleanup(&sc);
}

/* A bus gap forgets everything: every entry goes, and a store read that
 * began before it cannot install its answer after it. */
static void test_forget_all(void)
{
    struct slotcache sc;
    char buf[64], k[16];
    uint64_t e, racing;
    CHECK_EQ_INT(slotcache_init(&sc, 64, 4, 16, 10000), 0);
    for (int i = 0; i < 40; i++) {
        snprintf(k, sizeof k, "key%d", i);
        CHECK(get_str(&sc, k, buf, &e) == NULL);
        put_str(&sc, k, "v", e);
    }
    CHECK(get_str(&sc, "late", buf, &racing) == NULL); /* a read in flight */
    int cached = 0;
    for (int i = 0; i < 40; i++) {
        snprintf(k, sizeof k, "key%d", i);
        cached += get_str(&sc, k, buf, &e) != NULL;
    }
    CHECK(cached > 20); /* some collide in 64 slots; most stay */
    slotcache_forget_all(&sc);
    for (int i = 0; i < 40; i++) {
        snprintf(k, sizeof k, "key%d", i);
        CHECK(get_str(&sc, k, buf, &e) == NULL);
    }
    put_str(&sc, "late", "stale", racing);
    CHECK(get_str(&sc, "late", buf, &e) == NULL);
    put_str(&sc, "late", "fresh", e); /* a read after the gap caches again */
    CHECK_EQ_STR(get_str(&sc, "late", buf, &e), "fresh");
    slotcache_forget_all(&sc);
    slotcache_cleanup(&sc);
}

/* One slot: every key collides, and the last put wins. */
static void test_collision_evicts(void)
{
    struct slotcache sc;
    char buf[64];
    uint64_t e;
    CHECK_EQ_INT(slotcache_init(&sc, 1, 1, 16, 10000), 0);
    get_str(&sc, "a", buf, &e);
    put_str(&sc, "a", "value a", e);
    CHECK_EQ_STR(get_str(&sc, "a", buf, &e), "value a");
    get_str(&sc, "b", buf, &e);
    put_str(&sc, "b", "value b", e);
    CHECK(get_str(&sc, "a", buf, &e) == NULL);
    CHECK_EQ_STR(get_str(&sc, "b", buf, &e), "value b");
    /* Forgetting the evicted key still bumps the shared slot's epoch, but
     * leaves the entry that is there now. */
    slotcache_forget(&sc, "a", 1);
    CHECK_EQ_STR(get_str(&sc, "b", buf, &e), "value b");
    /* A prefix of a cached key is another key. */
    put_str(&sc, "bb", "value bb", e);
    CHECK(get_str(&sc, "b", buf, &e) == NULL);
    CHECK_EQ_STR(get_str(&sc, "bb", buf, &e), "value bb");
    slotcache_cleanup(&sc);
}

static void test_keys_and_values(void)
{
    struct slotcache sc;
    char buf[64];
    uint64_t e;
    CHECK_EQ_INT(slotcache_init(&sc, 16, 1, 4, 10000), 0);
    get_str(&sc, "toolong", buf, &e);
    put_str(&sc, "toolong", "x", e); /* over key_max: freed, not kept */
    CHECK(get_str(&sc, "toolong", buf, &e) == NULL);
    get_str(&sc, "", buf, &e);
    put_str(&sc, "", "x", e); /* the empty key marks an empty slot */
    CHECK(get_str(&sc, "", buf, &e) == NULL);
    get_str(&sc, "nul", buf, &e);
    slotcache_put(&sc, "nul", 3, NULL, 0, e); /* a failed allocation */
    CHECK(get_str(&sc, "nul", buf, &e) == NULL);

    /* Keys are bytes: an embedded NUL is part of them. */
    get_str(&sc, "k", buf, &e);
    slotcache_put(&sc, "k\0x", 3, strdup("bytes"), 5, e);
    CHECK(get_str(&sc, "k", buf, &e) == NULL);
    CHECK(slotcache_get(&sc, "k\0x", 3, read_str, buf, &e));
    CHECK_EQ_STR(buf, "bytes");
    /* A callback that refuses turns a hit into a miss. */
    CHECK(!slotcache_get(&sc, "k\0x", 3, refuse, NULL, &e));
    slotcache_cleanup(&sc);
}

/* Threads share 32 keys over 8 slots, so they collide, evict and forget
 * each other's entries all the time; a value is always its key repeated
 * four times, so a torn or misplaced entry shows. */
#define RACE_KEYS 32
#define RACE_ROUNDS 20000

struct verify {
    const char *key;
    bool intact; /* the hit's value was its key repeated */
};

static bool read_verify(void *arg, const void *val, size_t len)
{
    struct verify *v = arg;
    size_t klen = strlen(v->key);
    v->intact = len == 4 * klen;
    for (size_t i = 0; v->intact && i < 4; i++)
        v->intact = memcmp((const char *)val + i * klen, v->key, klen) == 0;
    return true;
}

struct race {
    struct slotcache *sc;
    unsigned seed;
    int hits, wrong;
};

static void *racer(void *arg)
{
    struct race *r = arg;
    for (int i = 0; i < RACE_ROUNDS; i++) {
        char key[16];
        snprintf(key, sizeof key, "key%d", rand_r(&r->seed) % RACE_KEYS);
        size_t klen = strlen(key);
        if (rand_r(&r->seed) % 8 == 0) {
            slotcache_forget(r->sc, key, klen);
            continue;
        }
        struct verify v = {.key = key};
        uint64_t e;
        if (slotcache_get(r->sc, key, klen, read_verify, &v, &e)) {
            r->hits++;
            r->wrong += !v.intact;
            continue;
        }
        char *val = malloc(4 * klen);
        for (size_t k = 0; val && k < 4; k++)
            memcpy(val + k * klen, key, klen);
        slotcache_put(r->sc, key, klen, val, 4 * klen, e);
    }
    return NULL;
}

static void test_threads(void)
{
    struct slotcache sc;
    CHECK_EQ_INT(slotcache_init(&sc, 8, 2, 16, 10000), 0);
    struct race r[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (struct race){.sc = &sc, .seed = 1234u + (unsigned)i};
        CHECK_EQ_INT(pthread_create(&th[i], NULL, racer, &r[i]), 0);
    }
    int hits = 0, wrong = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        hits += r[i].hits;
        wrong += r[i].wrong;
    }
    CHECK_EQ_INT(wrong, 0);
    CHECK(hits > 0);
    /* Whatever survived is intact too. */
    for (int k = 0; k < RACE_KEYS; k++) {
        char key[16];
        snprintf(key, sizeof key, "key%d", k);
        struct verify v = {.key = key, .intact = true};
        uint64_t e;
        slotcache_get(&sc, key, strlen(key), read_verify, &v, &e);
        CHECK(v.intact);
    }
    slotcache_cleanup(&sc);
}

int main(void)
{
    test_init();
    test_hit_and_expiry();
    test_epoch_voids_racing_put();
    test_forget_all();
    test_collision_evicts();
    test_keys_and_values();
    test_threads();
    return check_done();
}
