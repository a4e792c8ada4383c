/* test_cors.c - http/cors.c: CORS_ORIGINS parsing and Origin matching. */
#include <string.h>

#include "check.h"
#include "http/cors.h"

static void test_any(void)
{
    struct cors c;
    CHECK_EQ_INT(cors_init(&c, "*", NULL), 0);
    CHECK(c.any);
    CHECK_EQ_STR(cors_allow_origin(&c, "https://a.example"), "*");
    CHECK_EQ_STR(cors_allow_origin(&c, NULL), "*");
    cors_cleanup(&c);
    CHECK_EQ_INT(cors_init(&c, "https://a.example, *", NULL), 0);
    CHECK(c.any);
    CHECK_EQ_STR(cors_allow_origin(&c, "https://zzz.example"), "*");
    cors_cleanup(&c);
}

static void test_list(void)
{
    struct cors c;
    struct chat_err err = {0};
    CHECK_EQ_INT(cors_init(&c, " https://A.example ,http://localhost:5173/,,capacitor://localhost", &err), 0);
    CHECK(!c.any);
    CHECK_EQ_INT(c.n, 3);
    const char *o = "https://a.example";
    CHECK(cors_allow_origin(&c, o) == o); /* echoed, not copied */
    CHECK_EQ_STR(cors_allow_origin(&c, "HTTPS://A.EXAMPLE"), "HTTPS://A.EXAMPLE");
    CHECK_EQ_STR(cors_allow_origin(&c, "http://localhost:5173"), "http://localhost:5173");
    CHECK_EQ_STR(cors_allow_origin(&c, "capacitor://localhost"), "capacitor://localhost");
    CHECK(cors_allow_origin(&c, "http://localhost:5174") == NULL);
    CHECK(cors_allow_origin(&c, "https://a.example.evil.example") == NULL);
    CHECK(cors_allow_origin(&c, "https://a.exampl") == NULL);
    CHECK(cors_allow_origin(&c, "http://a.example") == NULL);
    CHECK(cors_allow_origin(&c, "null") == NULL);
    CHECK(cors_allow_origin(&c, "") == NULL);
    CHECK(cors_allow_origin(&c, NULL) == NULL);
    cors_cleanup(&c);
    CHECK_EQ_INT(c.n, 0);

    CHECK_EQ_INT(cors_init(&c, "", NULL), 0); /* allows nothing */
    CHECK(cors_allow_origin(&c, "https://a.example") == NULL);
    cors_cleanup(&c);
    CHECK_EQ_INT(cors_init(&c, "https://[::1]:8443", NULL), 0);
    CHECK_EQ_STR(cors_allow_origin(&c, "https://[::1]:8443"), "https://[::1]:8443");
    cors_cleanup(&c);
}

static void test_bad(void)
{
    static const char *bad[] = {"a.example", "https://a.example/path", "https://", "://x",
                                "https://a.example:", "https://a.example:123456", "https://a b",
                                "https://a.example, nope", "https://[::1", "1http://x",
                                "https://a.example?q=1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct cors c;
        struct chat_err err = {0};
        CHECK_EQ_INT(cors_init(&c, bad[i], &err), CHAT_E_BAD_REQUEST);
        CHECK(strstr(err.msg, "not an origin") != NULL);
        CHECK(c.origins == NULL && c.n == 0);
    }
}

int main(void)
{
    test_any();
    test_list();
    test_bad();
    return check_done();
}
