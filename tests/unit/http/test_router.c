/* test_router.c - http/router.c: templates, parameters, 404 vs 405 + Allow,
 * and the table's Allow strings against its methods. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "http/router.h"

static struct route_match m;

static void match(const char *method, const char *path) { router_match(method, path, strlen(path), &m); }

static void test_templates(void)
{
    match("POST", "/api/auth/register");
    CHECK_EQ_INT(m.status, 0);
    CHECK_EQ_INT(m.op, ROUTE_AUTH_REGISTER);
    CHECK(m.flags & ROUTE_F_PUBLIC);
    CHECK(m.flags & ROUTE_F_BODY);
    CHECK(m.api);
    CHECK_EQ_STR(m.route, "/api/auth/register");

    match("POST", "/api/auth/logout");
    CHECK_EQ_INT(m.op, ROUTE_AUTH_LOGOUT);
    CHECK_EQ_INT(m.flags, 0);

    match("GET", "/api/users/me");
    CHECK_EQ_INT(m.op, ROUTE_USERS_ME);
    CHECK_EQ_INT(m.n_params, 0);
    match("PATCH", "/api/users/me");
    CHECK_EQ_INT(m.op, ROUTE_USERS_UPDATE_ME);
    CHECK(m.flags & ROUTE_F_BODY);
    /* "me" is literal: PATCH on an id is 405, not a match of {id}. */
    match("PATCH", "/api/users/0123456789abcdef01234567");
    CHECK_EQ_INT(m.status, 405);
    CHECK_EQ_STR(m.allow, "GET");
    match("GET", "/api/users/0123456789abcdef01234567");
    CHECK_EQ_INT(m.op, ROUTE_USERS_GET);
    CHECK_EQ_INT(m.n_params, 1);
    CHECK_EQ_STR(m.params[0], "0123456789abcdef01234567");
    CHECK_EQ_STR(m.route, "/api/users/{id}");

    match("DELETE", "/api/chats/aaa/members/bbb");
    CHECK_EQ_INT(m.op, ROUTE_CHATS_REMOVE_MEMBER);
    CHECK_EQ_INT(m.n_params, 2);
    CHECK_EQ_STR(m.params[0], "aaa");
    CHECK_EQ_STR(m.params[1], "bbb");
    CHECK_EQ_STR(m.route, "/api/chats/{id}/members/{userId}");

    match("PUT", "/api/posts/x/like");
    CHECK_EQ_INT(m.op, ROUTE_POSTS_LIKE);
    match("DELETE", "/api/posts/x/like");
    CHECK_EQ_INT(m.op, ROUTE_POSTS_UNLIKE);
    match("POST", "/api/chats/c1/messages");
    CHECK_EQ_INT(m.op, ROUTE_MESSAGES_SEND);
    match("GET", "/api/chats/c1/messages");
    CHECK_EQ_INT(m.op, ROUTE_MESSAGES_LIST);
    match("POST", "/api/chats/c1/read");
    CHECK_EQ_INT(m.op, ROUTE_CHATS_READ);

    /* Raw ids are passed as they are: escapes are not decoded, so %2F
     * stays inside its segment. */
    match("GET", "/api/posts/%27%20OR%201=1--");
    CHECK_EQ_INT(m.op, ROUTE_POSTS_GET);
    CHECK_EQ_STR(m.params[0], "%27%20OR%201=1--");
    match("GET", "/api/posts/a%2Fb");
    CHECK_EQ_INT(m.op, ROUTE_POSTS_GET);

    /* An over-long segment is cut, never to a valid id length. */
    char longp[600] = "/api/posts/";
    memset(longp + strlen(longp), 'a', 500);
    match("GET", longp);
    CHECK_EQ_INT(m.op, ROUTE_POSTS_GET);
    CHECK_EQ_INT(strlen(m.params[0]), ROUTE_PARAM_MAX - 1);

    /* HEAD is GET without a body. */
    match("HEAD", "/healthz");
    CHECK_EQ_INT(m.op, ROUTE_HEALTHZ);
    CHECK(!m.api);
    match("GET", "/metrics");
    CHECK_EQ_INT(m.op, ROUTE_METRICS);
    match("GET", "/readyz");
    CHECK_EQ_INT(m.op, ROUTE_READYZ);
}

static void test_404_405(void)
{
    static const char *unknown[] = {"/nope", "/api", "/api/", "/api/nope", "/api/posts/x/y/z",
                                    "/api/users/me/extra", "/api/chats/x/unknown", "/API/posts",
                                    "/api/auth", "/api/auth/register/x", "/healthzz",
                                    "/api/posts/x/like/x", "/api/posts/", "/api/posts//like",
                                    "/api//posts", "", "api/posts", "/ws", "/socket.io", "/socket.io/x",
                                    "/api/chats/x/members/", "/uploads", "/uploads/",
                                    "/api/uploads/x"};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        match("GET", unknown[i]);
        if (m.status != 404)
            fprintf(stderr, "  %s matched\n", unknown[i]);
        CHECK_EQ_INT(m.status, 404);
        CHECK_EQ_STR(m.route, "other");
        CHECK_EQ_STR(m.allow, "");
    }
    /* The prefix route takes the rest of the path, '/' and escapes kept. */
    match("GET", "/uploads/a/../b%2e%2e.png");
    CHECK_EQ_INT(m.status, 0);
    CHECK_EQ_INT(m.op, ROUTE_UPLOADS_GET);
    CHECK_EQ_STR(m.params[0], "a/../b%2e%2e.png");
    CHECK(!m.api);
    match("POST", "/uploads/x.png");
    CHECK_EQ_INT(m.status, 405);
    match("POST", "/api/uploads");
    CHECK_EQ_INT(m.status, 0);
    CHECK(m.flags & ROUTE_F_STREAM);
    match("GET", "/api/nope");
    CHECK(m.api);
    CHECK(!m.web);
    match("GET", "/apix");
    CHECK(!m.api);

    match("PUT", "/api/posts");
    CHECK_EQ_INT(m.status, 405);
    CHECK_EQ_STR(m.allow, "GET, POST");
    CHECK_EQ_STR(m.route, "/api/posts");
    match("GET", "/api/auth/login");
    CHECK_EQ_INT(m.status, 405);
    CHECK_EQ_STR(m.allow, "POST");
    match("OPTIONS", "/api/posts/x/like");
    CHECK_EQ_INT(m.status, 405);
    CHECK_EQ_STR(m.allow, "PUT, DELETE");
    match("get", "/api/posts");
    CHECK_EQ_INT(m.status, 405); /* methods are case-sensitive */
    match(NULL, "/api/posts");
    CHECK_EQ_INT(m.status, 405);
    match("POST", "/healthz");
    CHECK_EQ_INT(m.status, 405);
    CHECK_EQ_STR(m.allow, "GET");
}

/* For every template: the methods that match are exactly its Allow list. */
static void test_allow_consistent(void)
{
    static const char *methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
    for (size_t i = 0; i < router_count(); i++) {
        const char *allow;
        const char *t = router_template(i, &allow);
        char path[256];
        size_t o = 0;
        for (const char *p = t; *p && o < sizeof path - 30;) {
            if (*p == '{') {
                o += (size_t)snprintf(path + o, sizeof path - o, "0123456789abcdef01234567");
                p = strchr(p, '}') + 1;
            } else {
                path[o++] = *p++;
            }
        }
        path[o] = '\0';
        for (size_t k = 0; k < 5; k++) {
            match(methods[k], path);
            char needle[16];
            int listed = 0;
            /* Is methods[k] one of the comma-separated names in allow? */
            for (const char *a = allow; *a;) {
                size_t n = strcspn(a, ",");
                snprintf(needle, sizeof needle, "%.*s", (int)n, a);
                if (strcmp(needle, methods[k]) == 0)
                    listed = 1;
                a += n;
                while (*a == ',' || *a == ' ')
                    a++;
            }
            if ((m.status == 0) != listed)
                fprintf(stderr, "  %s %s: status %d, allow \"%s\"\n", methods[k], path, m.status, allow);
            CHECK_EQ_INT(m.status == 0, listed);
            CHECK(m.status == 0 || m.status == 405);
            CHECK_EQ_STR(m.route, t);
        }
    }
    CHECK(router_template(router_count(), NULL) == NULL);
}

/* The web client's routes: / and one segment under /web/, flagged so that
 * WEB_UI=0 can unmatch them into the plain 404. */
static void test_web(void)
{
    match("GET", "/");
    CHECK_EQ_INT(m.status, 0);
    CHECK_EQ_INT(m.op, ROUTE_WEB);
    CHECK(m.web && !m.api && (m.flags & ROUTE_F_PUBLIC));
    match("HEAD", "/web/app.js");
    CHECK_EQ_INT(m.op, ROUTE_WEB);
    CHECK_EQ_STR(m.params[0], "app.js");
    match("POST", "/");
    CHECK_EQ_INT(m.status, 405);
    CHECK(m.web);
    router_unmatch(&m);
    CHECK_EQ_INT(m.status, 404);
    CHECK(!m.web);
    CHECK_EQ_STR(m.route, "other");
    CHECK_EQ_STR(m.allow, "");
    static const char *not_web[] = {"/web", "/web/", "/web/a/b", "/index.html", "//"};
    for (size_t i = 0; i < sizeof not_web / sizeof not_web[0]; i++) {
        match("GET", not_web[i]);
        CHECK_EQ_INT(m.status, 404);
        CHECK(!m.web);
    }
    match("GET", "/api/posts");
    CHECK(!m.web);
}

int main(void)
{
    test_templates();
    test_web();
    test_404_405();
    test_allow_consistent();
    return check_done();
}
