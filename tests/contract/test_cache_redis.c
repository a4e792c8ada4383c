/* test_cache_redis.c - cache/cache_redis*.c against a real redis-server:
 * the window counter shared by two instances (one atomic round trip each),
 * key prefixes, window expiry, bad URLs, and a Redis killed and restarted:
 * every call still answers (from the in-process fallback) while ping says
 * down, and after the restart (scripts forgotten: NOSCRIPT, loaded again)
 * the instances share their counts again.  The value cache: get/set with a
 * TTL, incr, and the versioned lookup (a write orphans older values),
 * shared by instances, failing fast with Redis down; cache_mem has none.
 * The flood bucket (take): one token bucket per key across instances.
 * The session cache: a session put by one instance is found by the other,
 * a revocation mark hides it and no put brings it back, TTLs, malformed
 * values written behind chatli's back are misses, hits and misses are
 * counted, and Redis down fails fast; cache_mem has none.
 * Presence: cluster-wide transitions seen by exactly one instance, late
 * generations ignored, a dead instance's users retired by another's beat,
 * and an instance that finds its heartbeat lapsed is told (lost).
 *
 * Needs CHATLI_TEST_REDIS_URL (scripts/test.sh) and redis-server on PATH
 * for the outage case; without them it exits 77 (skipped). */
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "chatli/adapters/cache_mem.h"
#include "chatli/adapters/cache_redis.h"
#include "check.h"
#include "contract/redis_helper.h"

static int64_t hit(struct cache *c, const char *key, int64_t window_ms, int64_t *reset_ms)
{
    int64_t count = -1, reset = -1;
    struct chat_err err = {0};
    CHECK_EQ_INT(cache_hit(c, key, window_ms, &count, &reset, &err), 0);
    if (reset_ms)
        *reset_ms = reset;
    return count;
}

static struct cache *open_cache(const char *url, const char *prefix)
{
    struct cache *c = NULL;
    struct chat_err err = {0};
    CHECK_EQ_INT(cache_redis_open(url, prefix, &c, &err), 0);
    if (!c)
        abort();
    CHECK(c->remote);
    CHECK_EQ_STR(c->name, "redis");
    return c;
}

static bool wait_ping(struct cache *c, bool up)
{
    for (int i = 0; i < 1000; i++) {
        struct chat_err e = {0};
        if ((cache_ping(c, &e) == 0) == up)
            return true;
        test_sleep_ms(10);
    }
    return false;
}

static void test_shared(const char *url)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "t%d:", (int)getpid());
    struct cache *a = open_cache(url, prefix), *b = open_cache(url, prefix);
    CHECK(wait_ping(a, true));
    int64_t reset;
    CHECK_EQ_INT(hit(a, "k", 60000, &reset), 1);
    CHECK(reset > 59000 && reset <= 60000);
    CHECK_EQ_INT(hit(b, "k", 60000, NULL), 2);
    CHECK_EQ_INT(hit(a, "k", 60000, NULL), 3);
    CHECK_EQ_INT(hit(b, "other", 60000, NULL), 1);
    /* The window does not move with later hits. */
    int64_t reset2;
    hit(b, "k", 60000, &reset2);
    CHECK(reset2 <= reset);
    /* Another prefix is another namespace. */
    char other[80];
    snprintf(other, sizeof other, "%sx:", prefix);
    struct cache *c = open_cache(url, other);
    CHECK_EQ_INT(hit(c, "k", 60000, NULL), 1);
    /* A window ends and the next hit starts a new one. */
    CHECK_EQ_INT(hit(a, "short", 100, NULL), 1);
    CHECK_EQ_INT(hit(b, "short", 100, NULL), 2);
    test_sleep_ms(150);
    CHECK_EQ_INT(hit(b, "short", 100, NULL), 1);
    /* Concurrent-looking interleaving across many keys stays exact. */
    int64_t last = 0;
    for (int i = 0; i < 200; i++)
        last = hit(i % 2 ? a : b, "many", 60000, NULL);
    CHECK_EQ_INT(last, 200);
    cache_close(a);
    cache_close(b);
    cache_close(c);
}

static void test_values(const char *url)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "v%d:", (int)getpid());
    struct cache *a = open_cache(url, prefix), *b = open_cache(url, prefix);
    struct chat_err err = {0};
    char *val = NULL;
    size_t len = 0;
    CHECK(cache_shares_values(a));
    CHECK_EQ_INT(cache_get(a, "k", &val, &len, &err), CHAT_E_NOT_FOUND);
    CHECK(val == NULL);
    CHECK_EQ_INT(cache_set(a, "k", "a\0b", 3, 60000, &err), 0);
    CHECK_EQ_INT(cache_get(b, "k", &val, &len, &err), 0);
    CHECK_EQ_INT(len, 3);
    CHECK(val && memcmp(val, "a\0b", 3) == 0 && val[3] == '\0');
    free(val);
    /* TTL. */
    CHECK_EQ_INT(cache_set(a, "short", "x", 1, 50, &err), 0);
    test_sleep_ms(120);
    CHECK_EQ_INT(cache_get(b, "short", &val, &len, &err), CHAT_E_NOT_FOUND);
    /* incr and the versioned lookup. */
    int64_t v = -1;
    CHECK_EQ_INT(cache_get_versioned(b, "ver", "p:", "page", &v, &val, &len, &err),
                 CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(v, 0);
    CHECK_EQ_INT(cache_set(a, "p:0:page", "old", 3, 60000, &err), 0);
    CHECK_EQ_INT(cache_get_versioned(b, "ver", "p:", "page", &v, &val, &len, &err), 0);
    CHECK_EQ_STR(val, "old");
    free(val);
    CHECK_EQ_INT(cache_incr(a, "ver", &v, &err), 0);
    CHECK_EQ_INT(v, 1);
    /* The write orphaned the old value. */
    CHECK_EQ_INT(cache_get_versioned(b, "ver", "p:", "page", &v, &val, &len, &err),
                 CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(v, 1);
    CHECK_EQ_INT(cache_set(b, "p:1:page", "new", 3, 60000, &err), 0);
    CHECK_EQ_INT(cache_get_versioned(a, "ver", "p:", "page", &v, &val, &len, &err), 0);
    CHECK_EQ_STR(val, "new");
    free(val);
    cache_close(a);
    cache_close(b);

    /* The in-process adapter has no value cache. */
    struct cache *m = NULL;
    CHECK_EQ_INT(cache_mem_new(&m, &err), 0);
    CHECK(!cache_shares_values(m));
    CHECK_EQ_INT(cache_get(m, "k", &val, &len, &err), CHAT_E_UNAVAILABLE);
    CHECK_EQ_INT(cache_get_versioned(m, "ver", "p:", "page", &v, &val, &len, &err),
                 CHAT_E_UNAVAILABLE);
    CHECK_EQ_INT(v, -1);
    cache_close(m);
}

static void test_outage(void)
{
    struct test_redis srv = {0};
    if (test_redis_start(&srv) != 0) {
        CHECK(!"cannot start a private redis-server");
        return;
    }
    struct cache *a = open_cache(srv.url, "o:"), *b = open_cache(srv.url, "o:");
    CHECK_EQ_INT(hit(a, "k", 60000, NULL), 1);
    CHECK_EQ_INT(hit(b, "k", 60000, NULL), 2);

    test_redis_kill(&srv);
    /* Down: the value cache says so (callers build the value themselves). */
    struct chat_err err = {0};
    char *val = NULL;
    size_t len;
    int64_t v = 7;
    CHECK_EQ_INT(cache_get_versioned(b, "ver", "p:", "x", &v, &val, &len, &err),
                 CHAT_E_UNAVAILABLE);
    CHECK_EQ_INT(v, -1);
    CHECK_EQ_INT(cache_set(b, "x", "y", 1, 1000, &err), CHAT_E_UNAVAILABLE);
    CHECK_EQ_INT(cache_incr(b, "ver", &v, &err), CHAT_E_UNAVAILABLE);
    /* Every rate-limit call still answers, from each instance's own counter. */
    CHECK_EQ_INT(hit(a, "k", 60000, NULL), 1);
    CHECK_EQ_INT(hit(a, "k", 60000, NULL), 2);
    CHECK_EQ_INT(hit(b, "k", 60000, NULL), 1);
    CHECK(wait_ping(a, false));

    CHECK_EQ_INT(test_redis_start(&srv), 0);
    CHECK(wait_ping(a, true));
    CHECK(wait_ping(b, true));
    /* Back: a fresh Redis (no persistence) forgot keys and scripts; the
     * script is loaded again and both instances share one count. */
    CHECK_EQ_INT(hit(a, "k", 60000, NULL), 1);
    CHECK_EQ_INT(hit(b, "k", 60000, NULL), 2);
    cache_close(a);
    cache_close(b);
    test_redis_kill(&srv);
}

static bool take(struct cache *c, const char *key, double rate, double burst)
{
    bool taken = false;
    struct chat_err err = {0};
    CHECK_EQ_INT(cache_take(c, key, rate, burst, &taken, &err), 0);
    return taken;
}

/* The flood bucket: one bucket per key shared by two instances (a burst
 * of 3 is 3 tokens in all, not per instance), refilling at its rate; other
 * keys are separate; with Redis gone, take says so at once (the gateway
 * then uses its local bucket); cache_mem has no shared bucket. */
static void test_buckets(void)
{
    struct test_redis srv = {0};
    if (test_redis_start(&srv) != 0) {
        CHECK(!"cannot start a private redis-server");
        return;
    }
    struct cache *a = open_cache(srv.url, "b:"), *b = open_cache(srv.url, "b:");
    CHECK(cache_shares_buckets(a));
    /* 0.01/s: no token comes back while this runs. */
    CHECK(take(a, "u1", 0.01, 3));
    CHECK(take(b, "u1", 0.01, 3));
    CHECK(take(a, "u1", 0.01, 3));
    CHECK(!take(b, "u1", 0.01, 3));
    CHECK(!take(a, "u1", 0.01, 3));
    CHECK(take(b, "u2", 0.01, 3)); /* another user's bucket is full */
    /* 10/s: at least two tokens are back after 250 ms. */
    CHECK(take(a, "u3", 10, 2));
    CHECK(take(b, "u3", 10, 2));
    test_sleep_ms(250);
    CHECK(take(a, "u3", 10, 2));
    CHECK(take(b, "u3", 10, 2));

    test_redis_kill(&srv);
    bool taken = true;
    struct chat_err err = {0};
    CHECK_EQ_INT(cache_take(a, "u1", 10, 3, &taken, &err), CHAT_E_UNAVAILABLE);
    cache_close(a);
    cache_close(b);
    test_redis_kill(&srv);

    struct cache *m = NULL;
    CHECK_EQ_INT(cache_mem_new(&m, NULL), 0);
    CHECK(!cache_shares_buckets(m));
    CHECK_EQ_INT(cache_take(m, "u1", 10, 3, &taken, &err), CHAT_E_UNAVAILABLE);
    cache_close(m);
}

/* Redis never up: opening works (connects are lazy), calls fall back. */
static void test_never_up(void)
{
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", test_free_port());
    struct cache *a = open_cache(url, "n:");
    CHECK_EQ_INT(hit(a, "k", 60000, NULL), 1);
    CHECK_EQ_INT(hit(a, "k", 60000, NULL), 2);
    struct chat_err err = {0};
    CHECK_EQ_INT(cache_ping(a, &err), CHAT_E_UNAVAILABLE);
    cache_close(a);
}

static void test_bad_urls(void)
{
    struct cache *c = NULL;
    struct chat_err err = {0};
    CHECK_EQ_INT(cache_redis_open("rediss://h:1", "x:", &c, &err), CHAT_E_VALIDATION);
    CHECK(c == NULL);
    CHECK(strstr(err.msg, "TLS") != NULL);
    CHECK_EQ_INT(cache_redis_open("redis://h:1/x", "x:", &c, &err), CHAT_E_VALIDATION);
    CHECK_EQ_INT(cache_redis_open("http://h:1/", "x:", &c, &err), CHAT_E_VALIDATION);
    CHECK(c == NULL);
    /* A password is accepted (and never echoed in errors). */
    CHECK_EQ_INT(cache_redis_open("redis://:s3cret@h:1/2", "x:", &c, &err), 0);
    cache_close(c);
}

static int set_pres(struct cache *c, const char *user, bool online, int64_t gen)
{
    int change = 99;
    struct chat_err err = {0};
    CHECK_EQ_INT(cache_presence_set(c, user, online, gen, &change, &err), 0);
    return change;
}

static bool pres_online(struct cache *c, const char *user)
{
    char ids[1][OID_SIZE];
    snprintf(ids[0], OID_SIZE, "%s", user);
    bool on = false;
    struct chat_err err = {0};
    CHECK_EQ_INT(cache_presence_get(c, (const char(*)[OID_SIZE])ids, 1, &on, &err), 0);
    return on;
}

static size_t beat(struct cache *c, int64_t ttl_ms, bool before, bool *lost,
                   char (**gone)[OID_SIZE])
{
    size_t n = 0;
    struct chat_err err = {0};
    CHECK_EQ_INT(cache_presence_beat(c, ttl_ms, false, before, lost, gone, &n, &err), 0);
    return n;
}

static void test_presence(const char *url)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "tp%d:", (int)getpid());
    struct cache *a = open_cache(url, prefix), *b = open_cache(url, prefix);
    CHECK(cache_shares_presence(a));
    bool lost = true;
    char(*gone)[OID_SIZE] = NULL;
    CHECK_EQ_INT(beat(a, 60000, false, &lost, &gone), 0);
    CHECK(!lost);
    CHECK_EQ_INT(beat(b, 300, false, &lost, &gone), 0);
    /* u1 comes online on A: a transition; on B too: none. */
    CHECK_EQ_INT(set_pres(a, "u1", true, 1), 1);
    CHECK(pres_online(b, "u1"));
    CHECK_EQ_INT(set_pres(b, "u1", true, 1), 0);
    /* A loses it: still online through B; B loses it: offline. */
    CHECK_EQ_INT(set_pres(a, "u1", false, 2), 0);
    CHECK(pres_online(a, "u1"));
    CHECK_EQ_INT(set_pres(b, "u1", false, 2), -1);
    CHECK(!pres_online(a, "u1"));
    /* A late call (older generation) changes nothing. */
    CHECK_EQ_INT(set_pres(a, "u1", true, 1), 0);
    CHECK(!pres_online(a, "u1"));
    CHECK_EQ_INT(set_pres(a, "u1", true, 3), 1);
    CHECK_EQ_INT(set_pres(a, "u1", false, 4), -1);
    /* Several users in one call. */
    CHECK_EQ_INT(set_pres(a, "u2", true, 5), 1);
    char ids[3][OID_SIZE] = {"u1", "u2", "nobody"};
    bool on[3] = {true, false, true};
    struct chat_err err = {0};
    CHECK_EQ_INT(cache_presence_get(b, (const char(*)[OID_SIZE])ids, 3, on, &err), 0);
    CHECK(!on[0] && on[1] && !on[2]);
    /* B holds u3 alone, and u2 with A; B stops beating (a crash): after its
     * TTL A's beat retires it and reports u3 gone, not u2. */
    CHECK_EQ_INT(set_pres(b, "u3", true, 3), 1);
    CHECK_EQ_INT(set_pres(b, "u2", true, 4), 0);
    CHECK(pres_online(a, "u3"));
    test_sleep_ms(400);
    CHECK(!pres_online(a, "u3")); /* B's heartbeat lapsed: u3 no longer counts */
    size_t n = beat(a, 60000, true, &lost, &gone);
    CHECK(!lost);
    CHECK_EQ_INT(n, 1);
    CHECK(gone && strcmp(gone[0], "u3") == 0);
    free(gone);
    gone = NULL;
    CHECK_EQ_INT(beat(a, 60000, true, &lost, &gone), 0); /* retired once */
    CHECK(pres_online(b, "u2"));
    /* B comes back: its beat says it was lost, and its users must be set
     * again (u3 with a new generation comes online again). */
    CHECK_EQ_INT(beat(b, 60000, true, &lost, &gone), 0);
    CHECK(lost);
    CHECK_EQ_INT(set_pres(b, "u3", true, 10), 1);
    CHECK_EQ_INT(set_pres(b, "u2", true, 12), 0); /* online through A all along */
    /* A graceful leave: A's heartbeat goes, B's next beat retires A: u4,
     * on A only, goes; u2, on B too, stays. */
    CHECK_EQ_INT(set_pres(a, "u4", true, 11), 1);
    size_t ng = 0;
    CHECK_EQ_INT(cache_presence_beat(a, 0, true, true, &lost, &gone, &ng, &err), 0);
    n = beat(b, 60000, true, &lost, &gone);
    CHECK_EQ_INT(n, 1);
    CHECK(gone && strcmp(gone[0], "u4") == 0);
    CHECK(pres_online(b, "u2"));
    free(gone);
    cache_close(a);
    cache_close(b);
    /* cache_mem has no shared presence: the gateway keeps it local. */
    struct cache *m = NULL;
    CHECK_EQ_INT(cache_mem_new(&m, &err), 0);
    CHECK(!cache_shares_presence(m));
    int change = 0;
    CHECK_EQ_INT(cache_presence_set(m, "u", true, 1, &change, &err), CHAT_E_UNAVAILABLE);
    cache_close(m);
}

static int sget(struct cache *c, const uint8_t hash[32], char user[OID_SIZE], int64_t *exp)
{
    struct chat_err err = {0};
    return cache_session_get(c, hash, user, exp, &err);
}

/* Raw SET of a session key, behind the adapter's back. */
static void raw_set(redisContext *rc, const char *prefix, const uint8_t hash[32],
                    const char *val, size_t len)
{
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", hash[i]);
    redisReply *r = redisCommand(rc, "SET %ss:%s %b", prefix, hex, val, len);
    CHECK(r && r->type == REDIS_REPLY_STATUS);
    if (r)
        freeReplyObject(r);
}

static void test_sessions(void)
{
    struct test_redis srv = {0};
    if (test_redis_start(&srv) != 0) {
        CHECK(!"cannot start a private redis-server");
        return;
    }
    struct cache *a = open_cache(srv.url, "s1:"), *b = open_cache(srv.url, "s1:");
    struct chat_err err = {0};
    uint8_t h1[32], h2[32];
    memset(h1, 0xa1, sizeof h1);
    memset(h2, 0x07, sizeof h2);
    const char *uid = "5f0c1a2b3c4d5e6f70819203";
    char user[OID_SIZE] = "";
    int64_t exp = 0;
    CHECK(cache_shares_sessions(a));

    /* A miss, then a put by one instance is a hit on the other. */
    CHECK_EQ_INT(sget(b, h1, user, &exp), CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(cache_session_put(a, h1, uid, 1767225600123LL, 60000, &err), 0);
    CHECK_EQ_INT(sget(b, h1, user, &exp), 0);
    CHECK_EQ_STR(user, uid);
    CHECK(exp == 1767225600123LL);
    CHECK_EQ_INT(sget(a, h2, user, &exp), CHAT_E_NOT_FOUND); /* another token */

    /* Revocation: a miss everywhere, and a late put cannot undo it. */
    CHECK_EQ_INT(cache_session_revoke(b, h1, 60000, &err), 0);
    CHECK_EQ_INT(sget(a, h1, user, &exp), CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(cache_session_put(a, h1, uid, 1767225600123LL, 60000, &err), 0);
    CHECK_EQ_INT(sget(b, h1, user, &exp), CHAT_E_NOT_FOUND);
    /* The mark has a TTL too; after it, a put works again. */
    CHECK_EQ_INT(cache_session_revoke(a, h2, 50, &err), 0);
    test_sleep_ms(120);
    CHECK_EQ_INT(cache_session_put(a, h2, uid, 99, 50, &err), 0);
    CHECK_EQ_INT(sget(b, h2, user, &exp), 0);
    CHECK(exp == 99);
    test_sleep_ms(120);
    CHECK_EQ_INT(sget(b, h2, user, &exp), CHAT_E_NOT_FOUND); /* the entry's TTL */
    /* A put refuses what it could not read back. */
    CHECK_EQ_INT(cache_session_put(a, h2, "not-an-id", 1, 1000, &err), CHAT_E_INTERNAL);

    /* Malformed values are misses, never a crash or a wrong user. */
    redisContext *rc = redisConnect("127.0.0.1", srv.port);
    CHECK(rc && rc->err == 0);
    static const char *bad[] = {
        "", "-", ":", "5f0c1a2b3c4d5e6f70819203", "5f0c1a2b3c4d5e6f70819203:",
        "5f0c1a2b3c4d5e6f70819203:12x", "5f0c1a2b3c4d5e6f70819203:-5",
        "5F0C1A2B3C4D5E6F70819203:1", "5f0c1a2b3c4d5e6f7081920:11",
        "5f0c1a2b3c4d5e6f70819203;1", "5f0c1a2b3c4d5e6f70819203:99999999999999999999",
        "5f0c1a2b3c4d5e6f70819203:1 ", "zz0c1a2b3c4d5e6f70819203:1",
    };
    for (size_t i = 0; rc && rc->err == 0 && i < sizeof bad / sizeof bad[0]; i++) {
        raw_set(rc, "s1:", h2, bad[i], strlen(bad[i]));
        CHECK_EQ_INT(sget(a, h2, user, &exp), CHAT_E_NOT_FOUND);
    }
    raw_set(rc, "s1:", h2, "5f0c1a2b3c4d5e6f70819203:1\0x", 28); /* an embedded NUL */
    CHECK_EQ_INT(sget(a, h2, user, &exp), CHAT_E_NOT_FOUND);
    raw_set(rc, "s1:", h2, "5f0c1a2b3c4d5e6f70819203:9223372036854775807", 44);
    CHECK_EQ_INT(sget(a, h2, user, &exp), 0);
    CHECK(exp == INT64_MAX);
    if (rc)
        redisFree(rc);

    /* Another prefix is another cluster. */
    struct cache *other = open_cache(srv.url, "s2:");
    CHECK_EQ_INT(cache_session_put(a, h1, uid, 5, 60000, &err), 0); /* h1 is still marked */
    CHECK_EQ_INT(cache_session_put(other, h2, uid, 5, 60000, &err), 0);
    CHECK_EQ_INT(sget(other, h2, user, &exp), 0);
    CHECK(exp == 5);

    /* Redis down: fast CHAT_E_UNAVAILABLE, no fallback (the store answers). */
    test_redis_kill(&srv);
    CHECK_EQ_INT(sget(a, h1, user, &exp), CHAT_E_UNAVAILABLE);
    CHECK_EQ_INT(cache_session_put(a, h1, uid, 5, 1000, &err), CHAT_E_UNAVAILABLE);
    CHECK_EQ_INT(cache_session_revoke(a, h1, 1000, &err), CHAT_E_UNAVAILABLE);
    cache_close(other);
    cache_close(a);
    cache_close(b);

    /* The in-process adapter has no session cache (core's slot cache is
     * this process's already). */
    struct cache *m = NULL;
    CHECK_EQ_INT(cache_mem_new(&m, &err), 0);
    CHECK(!cache_shares_sessions(m));
    CHECK_EQ_INT(sget(m, h1, user, &exp), CHAT_E_UNAVAILABLE);
    CHECK_EQ_INT(cache_session_put(m, h1, uid, 5, 1000, &err), CHAT_E_UNAVAILABLE);
    CHECK_EQ_INT(cache_session_revoke(m, h1, 1000, &err), CHAT_E_UNAVAILABLE);
    cache_close(m);
}

int main(void)
{
    const char *url = getenv("CHATLI_TEST_REDIS_URL");
    if (!url || !*url) {
        printf("test_cache_redis: skipped (CHATLI_TEST_REDIS_URL not set)\n");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    test_bad_urls();
    test_never_up();
    test_shared(url);
    test_values(url);
    test_outage();
    test_buckets();
    test_sessions();
    test_presence(url);
    return check_done();
}
