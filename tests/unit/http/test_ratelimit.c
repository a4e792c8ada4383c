/* test_ratelimit.c - http/ratelimit.c: X-Forwarded-For parsing, peer
 * addresses, client-IP choice, and the fixed-window arithmetic on the real
 * in-process cache. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include "chatli/cache.h"
#include "chatli/adapters/cache_mem.h"
#include "check.h"
#include "http/ratelimit.h"

static const char *xff(const char *v)
{
    static char out[HTTP_IP_MAX];
    return http_xff_client(v, out, sizeof out) ? out : NULL;
}

static void test_xff(void)
{
    CHECK_EQ_STR(xff("203.0.113.7"), "203.0.113.7");
    CHECK_EQ_STR(xff("203.0.113.7, 10.0.0.1, 10.0.0.2"), "203.0.113.7");
    CHECK_EQ_STR(xff("  198.51.100.1\t,10.0.0.1"), "198.51.100.1");
    CHECK_EQ_STR(xff("2001:DB8::1"), "2001:db8::1");
    CHECK_EQ_STR(xff("::ffff:192.0.2.5"), "192.0.2.5");
    CHECK_EQ_STR(xff("[2001:db8::2]:443, 10.0.0.1"), "2001:db8::2");
    CHECK_EQ_STR(xff("[2001:db8::3]"), "2001:db8::3");
    CHECK_EQ_STR(xff("192.0.2.9:51234"), "192.0.2.9");
    CHECK(xff(NULL) == NULL);
    CHECK(xff("") == NULL);
    CHECK(xff(" , 10.0.0.1") == NULL); /* only the first entry counts */
    CHECK(xff("unknown") == NULL);
    CHECK(xff("example.com") == NULL);
    CHECK(xff("1.2.3") == NULL);
    CHECK(xff("1.2.3.4.5") == NULL);
    CHECK(xff("256.1.1.1") == NULL);
    CHECK(xff("1.2.3.4:") == NULL);
    CHECK(xff("1.2.3.4:99999999") == NULL);
    CHECK(xff("1.2.3.4:80:80") == NULL);
    CHECK(xff("[::1]x") == NULL);
    CHECK(xff("[::1") == NULL);
    CHECK(xff("[]") == NULL);
    CHECK(xff("1.2.3.4 5.6.7.8") == NULL);
    char longv[300];
    memset(longv, '1', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    CHECK(xff(longv) == NULL);
    CHECK(xff("\xff\xfe") == NULL);
}

static void test_peer_and_choice(void)
{
    char out[HTTP_IP_MAX];
    struct sockaddr_in v4 = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &v4.sin_addr);
    http_peer_ip((struct sockaddr *)&v4, out, sizeof out);
    CHECK_EQ_STR(out, "127.0.0.1");
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "::ffff:10.1.2.3", &v6.sin6_addr);
    http_peer_ip((struct sockaddr *)&v6, out, sizeof out);
    CHECK_EQ_STR(out, "10.1.2.3");
    inet_pton(AF_INET6, "fe80::1", &v6.sin6_addr);
    http_peer_ip((struct sockaddr *)&v6, out, sizeof out);
    CHECK_EQ_STR(out, "fe80::1");
    http_peer_ip(NULL, out, sizeof out);
    CHECK_EQ_STR(out, "unknown");

    http_client_ip("203.0.113.7", false, (struct sockaddr *)&v4, out, sizeof out);
    CHECK_EQ_STR(out, "127.0.0.1"); /* not trusted: the peer */
    http_client_ip("203.0.113.7", true, (struct sockaddr *)&v4, out, sizeof out);
    CHECK_EQ_STR(out, "203.0.113.7");
    http_client_ip("garbage", true, (struct sockaddr *)&v4, out, sizeof out);
    CHECK_EQ_STR(out, "127.0.0.1"); /* trusted but unparseable: the peer */
    http_client_ip(NULL, true, (struct sockaddr *)&v4, out, sizeof out);
    CHECK_EQ_STR(out, "127.0.0.1");
}

static void test_window(void)
{
    struct cache *c = NULL;
    CHECK_EQ_INT(cache_mem_new(&c, NULL), 0);
    if (!c)
        return;
    struct ratelimit_result r;
    for (int i = 1; i <= 3; i++) {
        CHECK_EQ_INT(http_ratelimit_hit(c, "ip:1.2.3.4", 3, 1500, &r, NULL), 0);
        CHECK_EQ_INT(r.limit, 3);
        CHECK_EQ_INT(r.remaining, 3 - i);
        CHECK(!r.exceeded);
        CHECK(r.reset_s >= 1 && r.reset_s <= 2);
    }
    CHECK_EQ_INT(http_ratelimit_hit(c, "ip:1.2.3.4", 3, 1500, &r, NULL), 0);
    CHECK(r.exceeded);
    CHECK_EQ_INT(r.remaining, 0);
    /* another key has its own budget */
    CHECK_EQ_INT(http_ratelimit_hit(c, "u:abc", 3, 1500, &r, NULL), 0);
    CHECK(!r.exceeded);
    CHECK_EQ_INT(r.remaining, 2);
    /* the window resets */
    usleep(1600 * 1000);
    CHECK_EQ_INT(http_ratelimit_hit(c, "ip:1.2.3.4", 3, 1500, &r, NULL), 0);
    CHECK(!r.exceeded);
    CHECK_EQ_INT(r.remaining, 2);
    cache_close(c);
}

int main(void)
{
    test_xff();
    test_peer_and_choice();
    test_window();
    return check_done();
}
