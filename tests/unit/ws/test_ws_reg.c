/* test_ws_reg.c - the process-wide user registry (src/ws/reg.c): first and
 * last connection over all loops, the per-user cap evicting the oldest
 * READY connection wherever it is (and not one already closing), one flood
 * bucket per user, the retry list, and which loops hold a set of users
 * (the group routes a delivery to those only). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ws/ws_internal.h"

/* A connection id on loop `loop` (its top byte), like server.c makes. */
static uint64_t cid(unsigned loop, uint64_t n)
{
    return ((uint64_t)loop << WS_CONN_LOOP_SHIFT) | n;
}

static void test_first_last(void)
{
    struct ws_reg r;
    CHECK_EQ_INT(ws__reg_init(&r), 0);
    const char *a = "aaaaaaaaaaaaaaaaaaaaaaaa";
    bool first;
    uint64_t gen = 0, g2 = 0, evict;
    struct ws_reg_user *u = ws__reg_attach(&r, a, cid(0, 1), 0, &first, &gen, &evict);
    CHECK(u != NULL && first && gen > 0 && evict == 0);
    CHECK(ws__reg_online(&r, a));
    /* the same user on another loop: not first */
    CHECK(ws__reg_attach(&r, a, cid(2, 1), 0, &first, &g2, &evict) == u);
    CHECK(!first && evict == 0);
    CHECK(!ws__reg_detach(&r, u, cid(0, 1), &g2));
    CHECK(ws__reg_online(&r, a)); /* still on loop 2 */
    CHECK(ws__reg_detach(&r, u, cid(2, 1), &g2));
    CHECK(g2 > gen); /* a newer generation for the offline */
    CHECK(!ws__reg_online(&r, a));
    ws__reg_cleanup(&r);
}

static void test_cap(void)
{
    struct ws_reg r;
    CHECK_EQ_INT(ws__reg_init(&r), 0);
    const char *a = "bbbbbbbbbbbbbbbbbbbbbbbb";
    bool first;
    uint64_t gen, evict;
    struct ws_reg_user *u = ws__reg_attach(&r, a, cid(0, 1), 2, &first, &gen, &evict);
    ws__reg_attach(&r, a, cid(1, 1), 2, &first, &gen, &evict);
    CHECK_EQ_INT(evict, 0);
    ws__reg_attach(&r, a, cid(2, 1), 2, &first, &gen, &evict);
    CHECK(evict == cid(0, 1)); /* the oldest, on another loop */
    CHECK_EQ_INT(WS_CONN_LOOP(evict), 0);
    /* the one on loop 1 starts closing: no longer counted */
    ws__reg_unready(&r, u, cid(1, 1));
    ws__reg_attach(&r, a, cid(0, 2), 2, &first, &gen, &evict);
    CHECK_EQ_INT(evict, 0);
    ws__reg_attach(&r, a, cid(1, 2), 2, &first, &gen, &evict);
    CHECK(evict == cid(2, 1));
    /* all five are still attached until their detach */
    CHECK_EQ_INT(u->n_attached, 5);
    uint64_t ids[] = {cid(0, 1), cid(1, 1), cid(2, 1), cid(0, 2)};
    for (size_t i = 0; i < 4; i++)
        CHECK(!ws__reg_detach(&r, u, ids[i], &gen));
    CHECK(ws__reg_detach(&r, u, cid(1, 2), &gen));
    ws__reg_cleanup(&r);
}

static void test_bucket_and_retry(void)
{
    struct ws_reg r;
    CHECK_EQ_INT(ws__reg_init(&r), 0);
    const char *a = "cccccccccccccccccccccccc";
    bool first;
    uint64_t gen, evict;
    struct ws_reg_user *u = ws__reg_attach(&r, a, cid(0, 1), 0, &first, &gen, &evict);
    ws__reg_attach(&r, a, cid(1, 1), 0, &first, &gen, &evict);
    /* burst 3 at rate 1/s, shared by both connections */
    int ok = 0;
    for (int i = 0; i < 6; i++)
        ok += ws__reg_take(&r, u, 1, 3, 1000);
    CHECK_EQ_INT(ok, 3);
    CHECK(ws__reg_take(&r, u, 0, 3, 1000)); /* rate 0: no limit */
    CHECK(ws__reg_retry_add(&r, a));
    CHECK(ws__reg_retry_add(&r, a)); /* once */
    CHECK(ws__reg_retry_add(&r, "dddddddddddddddddddddddd"));
    size_t n;
    char(*v)[OID_SIZE] = ws__reg_retry_take(&r, &n);
    CHECK_EQ_INT(n, 2);
    free(v);
    CHECK(ws__reg_retry_all(&r));
    v = ws__reg_retry_take(&r, &n);
    CHECK(n == 1 && v && strcmp(v[0], a) == 0);
    free(v);
    /* many users: the table grows and finds them all */
    char id[OID_SIZE];
    for (int i = 0; i < 500; i++) {
        snprintf(id, sizeof id, "%024x", i);
        CHECK(ws__reg_attach(&r, id, cid(0, 100 + (uint64_t)i), 0, &first, &gen, &evict));
    }
    snprintf(id, sizeof id, "%024x", 321);
    CHECK(ws__reg_online(&r, id));
    ws__reg_cleanup(&r); /* frees what is left */
}

static void test_loops_of(void)
{
    struct ws_reg r;
    CHECK_EQ_INT(ws__reg_init(&r), 0);
    char ids[3][OID_SIZE];
    snprintf(ids[0], OID_SIZE, "%s", "aaaaaaaaaaaaaaaaaaaaaaaa");
    snprintf(ids[1], OID_SIZE, "%s", "bbbbbbbbbbbbbbbbbbbbbbbb");
    snprintf(ids[2], OID_SIZE, "%s", "cccccccccccccccccccccccc"); /* never connected */
    bool first;
    uint64_t gen, evict;
    CHECK_EQ_INT(ws__reg_loops_of(&r, (const char(*)[OID_SIZE])ids, 3), 0);
    struct ws_reg_user *a = ws__reg_attach(&r, ids[0], cid(1, 1), 0, &first, &gen, &evict);
    struct ws_reg_user *b = ws__reg_attach(&r, ids[1], cid(3, 2), 0, &first, &gen, &evict);
    ws__reg_attach(&r, ids[1], cid(63, 3), 0, &first, &gen, &evict);
    CHECK(a && b);
    CHECK(ws__reg_loops_of(&r, (const char(*)[OID_SIZE])ids, 1) == (uint64_t)1 << 1);
    CHECK(ws__reg_loops_of(&r, (const char(*)[OID_SIZE])ids + 1, 2) ==
          ((uint64_t)1 << 3 | (uint64_t)1 << 63));
    CHECK(ws__reg_loops_of(&r, (const char(*)[OID_SIZE])ids, 3) ==
          ((uint64_t)1 << 1 | (uint64_t)1 << 3 | (uint64_t)1 << 63));
    /* A closing connection (no longer READY) no longer routes to its loop. */
    ws__reg_unready(&r, b, cid(3, 2));
    CHECK(ws__reg_loops_of(&r, (const char(*)[OID_SIZE])ids + 1, 1) == (uint64_t)1 << 63);
    /* Ids that fill all OID_SIZE bytes (a bus event's are not terminated). */
    char raw[1][OID_SIZE];
    memset(raw[0], 'a', OID_SIZE);
    CHECK(ws__reg_loops_of(&r, (const char(*)[OID_SIZE])raw, 1) == (uint64_t)1 << 1);
    ws__reg_cleanup(&r);
}

int main(void)
{
    test_first_last();
    test_cap();
    test_bucket_and_retry();
    test_loops_of();
    return check_done();
}
