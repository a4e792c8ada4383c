/* test_ws_index.c - the loop's hash tables (src/ws/index.c): lookups by
 * connection id and by user id across growth and deletions. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ws/ws_internal.h"

#define N 5000

static void test_conns(void)
{
    struct ws_conn_table t;
    CHECK_EQ_INT(ws__conns_init(&t), 0);
    struct ws_conn *c = calloc(N, sizeof *c);
    for (int i = 0; i < N; i++) {
        c[i].id = (uint64_t)i + 1;
        CHECK_EQ_INT(ws__conns_put(&t, &c[i]), 0);
    }
    CHECK_EQ_INT(t.n, N);
    int found = 0;
    for (int i = 0; i < N; i++)
        found += ws__conns_get(&t, (uint64_t)i + 1) == &c[i];
    CHECK_EQ_INT(found, N);
    CHECK(ws__conns_get(&t, 0) == NULL);
    CHECK(ws__conns_get(&t, N + 1) == NULL);
    for (int i = 0; i < N; i += 2)
        ws__conns_del(&t, &c[i]);
    CHECK_EQ_INT(t.n, N / 2);
    int ok = 0;
    for (int i = 0; i < N; i++)
        ok += (ws__conns_get(&t, (uint64_t)i + 1) == (i % 2 ? &c[i] : NULL));
    CHECK_EQ_INT(ok, N);
    ws__conns_cleanup(&t);
    free(c);
}

static void test_users(void)
{
    struct ws_user_table t;
    CHECK_EQ_INT(ws__users_init(&t), 0);
    char id[OID_SIZE];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "65%022x", i);
        struct ws_user *u = ws__users_get_or_add(&t, id);
        CHECK(u != NULL);
        if (u)
            u->n_conns = (uint32_t)i;
    }
    CHECK_EQ_INT(t.n, N);
    snprintf(id, sizeof id, "65%022x", 77);
    struct ws_user *u = ws__users_get(&t, id);
    CHECK(u && u->n_conns == 77 && strcmp(u->id, id) == 0);
    CHECK(ws__users_get_or_add(&t, id) == u); /* no duplicate */
    CHECK_EQ_INT(t.n, N);
    /* a fresh user has no registry entry yet (finish_auth sets it) */
    CHECK(u && u->reg == NULL);
    ws__users_del(&t, u);
    CHECK(ws__users_get(&t, id) == NULL);
    CHECK_EQ_INT(t.n, N - 1);
    CHECK(ws__users_get(&t, "ffffffffffffffffffffffff") == NULL);
    /* ids longer than an ObjectId are refused */
    CHECK(ws__users_get_or_add(&t, "0123456789012345678901234567") == NULL);
    ws__users_cleanup(&t); /* frees the rest */
}

int main(void)
{
    test_conns();
    test_users();
    return check_done();
}
