/* test_redis_conn.c - redis/redis_conn.c without a server: REDIS_URL
 * parsing (userinfo, percent-encoding, IPv6, default port and db, refused
 * schemes and paths, no password in messages) and the reconnect backoff
 * (doubling from REDIS_BACKOFF_MIN_MS to REDIS_BACKOFF_MAX_MS, reset on
 * success).  A connect to a closed port fails with CHAT_E_UNAVAILABLE. */
#include <string.h>

#include "chatli/adapters/redis_conn.h"
#include "check.h"

static void test_parse_ok(void)
{
    struct redis_endpoint ep;
    struct chat_err err = {0};
    CHECK_EQ_INT(redis_endpoint_parse("redis://localhost", &ep, &err), 0);
    CHECK_EQ_STR(ep.host, "localhost");
    CHECK_EQ_INT(ep.port, 6379);
    CHECK_EQ_INT(ep.db, 0);
    CHECK(ep.user == NULL && ep.password == NULL);
    redis_endpoint_cleanup(&ep);

    CHECK_EQ_INT(redis_endpoint_parse("redis://:p%40ss%3Aw@10.0.0.5:6380/3", &ep, &err), 0);
    CHECK_EQ_STR(ep.host, "10.0.0.5");
    CHECK_EQ_INT(ep.port, 6380);
    CHECK_EQ_INT(ep.db, 3);
    CHECK(ep.user == NULL);
    CHECK_EQ_STR(ep.password, "p@ss:w");
    redis_endpoint_cleanup(&ep);

    CHECK_EQ_INT(redis_endpoint_parse("redis://app:secret@[::1]:7000/", &ep, &err), 0);
    CHECK_EQ_STR(ep.host, "::1"); /* bare, for getaddrinfo */
    CHECK_EQ_INT(ep.port, 7000);
    CHECK_EQ_STR(ep.user, "app");
    CHECK_EQ_STR(ep.password, "secret");
    redis_endpoint_cleanup(&ep);
}

static void test_parse_bad(void)
{
    struct redis_endpoint ep;
    struct chat_err err = {0};
    static const char *const bad[] = {
        "rediss://h:1", "http://h:1", "redis://h:1/x", "redis://h:1/1/2", "redis://h:1/-1",
        "not a url", "redis://", "redis://:topsecret@h:1/db",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        CHECK_EQ_INT(redis_endpoint_parse(bad[i], &ep, &err), CHAT_E_VALIDATION);
        CHECK(ep.host == NULL);
        CHECK(strstr(err.msg, "topsecret") == NULL);
    }
}

static void test_backoff(void)
{
    struct redis_backoff b = {0};
    CHECK(redis_backoff_ready(&b, 0));
    redis_backoff_failed(&b, 1000);
    CHECK_EQ_INT(b.delay_ms, REDIS_BACKOFF_MIN_MS);
    CHECK(!redis_backoff_ready(&b, 1000 + REDIS_BACKOFF_MIN_MS - 1));
    CHECK(redis_backoff_ready(&b, 1000 + REDIS_BACKOFF_MIN_MS));
    int64_t last = 0;
    for (int i = 0; i < 20; i++) {
        redis_backoff_failed(&b, 5000);
        CHECK(b.delay_ms >= last);
        last = b.delay_ms;
    }
    CHECK_EQ_INT(b.delay_ms, REDIS_BACKOFF_MAX_MS);
    redis_backoff_ok(&b);
    CHECK(redis_backoff_ready(&b, 0));
    CHECK_EQ_INT(b.delay_ms, 0);
}

static void test_connect_refused(void)
{
    struct redis_endpoint ep;
    struct chat_err err = {0};
    /* Port 1 on loopback: nothing listens there (not as an unprivileged
     * test server, and tcpmux is long gone). */
    CHECK_EQ_INT(redis_endpoint_parse("redis://127.0.0.1:1/0", &ep, &err), 0);
    struct redisContext *rc = (struct redisContext *)&ep; /* must be replaced */
    CHECK_EQ_INT(redis_connect(&ep, 200, 200, &rc, &err), CHAT_E_UNAVAILABLE);
    CHECK(rc == NULL);
    redis_endpoint_cleanup(&ep);
}

int main(void)
{
    test_parse_ok();
    test_parse_bad();
    test_backoff();
    test_connect_refused();
    return check_done();
}
