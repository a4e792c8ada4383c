/* test_ws_outq.c - outbound queue policy and the flood bucket
 * (src/ws/outq.c): order, ephemeral drops past the soft limit, overflow past
 * the hard limit (frames and bytes), memory released when a queue empties,
 * and token bucket refill, burst and the 0-disables rule. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ws/ws_internal.h"

static struct ws_buf *mk(size_t len, unsigned flags)
{
    char *s = malloc(len + 1);
    memset(s, 'x', len);
    struct ws_buf *b = ws__buf_new(s, len, flags);
    free(s);
    return b;
}

static void test_order_and_refs(void)
{
    struct ws_outq q = {0};
    struct ws_buf *b[20];
    for (int i = 0; i < 20; i++) {
        b[i] = mk((size_t)i + 1, 0);
        CHECK_EQ_INT(ws__outq_push(&q, b[i]), WS_OUTQ_QUEUED);
        CHECK_EQ_INT(b[i]->refs, 2);
    }
    CHECK_EQ_INT(q.n, 20);
    CHECK_EQ_INT(q.bytes, 210);
    /* interleave pops and pushes so the ring wraps */
    for (int i = 0; i < 10; i++) {
        struct ws_buf *p = ws__outq_pop(&q);
        CHECK(p == b[i]);
        ws__buf_unref(p);
    }
    struct ws_buf *more[10];
    for (int i = 0; i < 10; i++) {
        more[i] = mk(1, 0);
        CHECK_EQ_INT(ws__outq_push(&q, more[i]), WS_OUTQ_QUEUED);
    }
    for (int i = 10; i < 20; i++) {
        struct ws_buf *p = ws__outq_pop(&q);
        CHECK(p == b[i]);
        ws__buf_unref(p);
    }
    for (int i = 0; i < 10; i++) {
        struct ws_buf *p = ws__outq_pop(&q);
        CHECK(p == more[i]);
        ws__buf_unref(p);
    }
    CHECK(ws__outq_pop(&q) == NULL);
    CHECK(q.v == NULL); /* an empty queue holds no memory */
    CHECK_EQ_INT(q.bytes, 0);
    for (int i = 0; i < 20; i++) {
        CHECK_EQ_INT(b[i]->refs, 1);
        ws__buf_unref(b[i]);
    }
    for (int i = 0; i < 10; i++)
        ws__buf_unref(more[i]);
}

static void test_soft_limit(void)
{
    struct ws_outq q = {0};
    struct ws_buf *plain = mk(10, 0), *eph = mk(10, WS_BUF_EPHEMERAL);
    for (int i = 0; i < WS_OUT_SOFT_FRAMES - 1; i++)
        CHECK_EQ_INT(ws__outq_push(&q, plain), WS_OUTQ_QUEUED);
    CHECK_EQ_INT(ws__outq_push(&q, eph), WS_OUTQ_QUEUED); /* the last below the soft limit */
    CHECK_EQ_INT(ws__outq_push(&q, eph), WS_OUTQ_DROPPED);
    CHECK_EQ_INT(ws__outq_push(&q, plain), WS_OUTQ_QUEUED); /* durable frames still go */
    CHECK_EQ_INT(q.n, WS_OUT_SOFT_FRAMES + 1);
    ws__outq_clear(&q);
    CHECK(q.v == NULL && q.n == 0 && q.bytes == 0);
    CHECK_EQ_INT(plain->refs, 1);
    CHECK_EQ_INT(eph->refs, 1);

    /* the soft limit by bytes */
    struct ws_buf *big = mk(WS_OUT_SOFT_BYTES, 0);
    CHECK_EQ_INT(ws__outq_push(&q, big), WS_OUTQ_QUEUED);
    CHECK_EQ_INT(ws__outq_push(&q, eph), WS_OUTQ_DROPPED);
    ws__outq_clear(&q);
    ws__buf_unref(big);
    ws__buf_unref(plain);
    ws__buf_unref(eph);
}

static void test_hard_limit(void)
{
    struct ws_outq q = {0};
    struct ws_buf *one = mk(1, 0);
    for (int i = 0; i < WS_OUT_HARD_FRAMES; i++)
        CHECK_EQ_INT(ws__outq_push(&q, one), WS_OUTQ_QUEUED);
    CHECK_EQ_INT(ws__outq_push(&q, one), WS_OUTQ_OVERFLOW);
    CHECK_EQ_INT(q.n, WS_OUT_HARD_FRAMES);
    ws__outq_clear(&q);
    CHECK_EQ_INT(one->refs, 1);
    ws__buf_unref(one);

    struct ws_buf *half = mk(WS_OUT_HARD_BYTES / 2, 0);
    CHECK_EQ_INT(ws__outq_push(&q, half), WS_OUTQ_QUEUED);
    CHECK_EQ_INT(ws__outq_push(&q, half), WS_OUTQ_QUEUED); /* exactly at the limit */
    struct ws_buf *b1 = mk(1, 0);
    CHECK_EQ_INT(ws__outq_push(&q, b1), WS_OUTQ_OVERFLOW);
    CHECK(!ws__outq_below(&q, 1000, WS_SYNC_RESUME_BYTES));
    ws__buf_unref(ws__outq_pop(&q));
    ws__buf_unref(ws__outq_pop(&q));
    CHECK(ws__outq_below(&q, 1, 1));
    ws__buf_unref(half);
    ws__buf_unref(b1);
}

static void test_bucket(void)
{
    struct ws_bucket b = {0};
    int64_t t = 1000000;
    /* burst 3, 2 per second */
    CHECK(ws__bucket_take(&b, 2, 3, t));
    CHECK(ws__bucket_take(&b, 2, 3, t));
    CHECK(ws__bucket_take(&b, 2, 3, t));
    CHECK(!ws__bucket_take(&b, 2, 3, t));
    CHECK(!ws__bucket_take(&b, 2, 3, t + 499)); /* 0.998 tokens */
    CHECK(ws__bucket_take(&b, 2, 3, t + 500));
    CHECK(!ws__bucket_take(&b, 2, 3, t + 500));
    /* a long pause refills only up to the burst */
    CHECK(ws__bucket_take(&b, 2, 3, t + 60000));
    CHECK(ws__bucket_take(&b, 2, 3, t + 60000));
    CHECK(ws__bucket_take(&b, 2, 3, t + 60000));
    CHECK(!ws__bucket_take(&b, 2, 3, t + 60000));
    /* a clock that goes backwards adds nothing */
    CHECK(!ws__bucket_take(&b, 2, 3, t));

    /* 0 disables, either way */
    struct ws_bucket z = {0};
    for (int i = 0; i < 1000; i++) {
        CHECK(ws__bucket_take(&z, 0, 40, t));
        CHECK(ws__bucket_take(&z, 20, 0, t));
    }
}

int main(void)
{
    test_order_and_refs();
    test_soft_limit();
    test_hard_limit();
    test_bucket();
    return check_done();
}
