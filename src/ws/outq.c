/* outq.c - a connection's outbound queue and the per-user flood bucket.
 *
 * The queue is a ring of references to shared frame buffers.  It is
 * allocated on the first push and released when it empties, so the tens of
 * thousands of idle connections a gateway holds cost no queue memory; a
 * busy connection keeps a ring that doubles as needed up to the hard limit.
 *
 * The policy (numbers in ws_internal.h): a client that reads slower than
 * frames arrive first loses ephemeral frames (typing, presence: stale within
 * seconds anyway), and past the hard limit it is cut off rather than allowed
 * to grow the server's memory without bound; it reconnects and sends `sync`,
 * which recovers every message exactly because the store is the source of
 * truth.  Both limits count frames and bytes: many tiny frames cost ring
 * slots and headers, a few big ones cost bytes. */
#include "ws_internal.h"

#include <stdlib.h>

#define OUTQ_MIN_CAP 8u

static int grow(struct ws_outq *q)
{
    uint32_t cap = q->cap ? q->cap * 2 : OUTQ_MIN_CAP;
    struct ws_buf **v = malloc(cap * sizeof *v);
    if (!v)
        return -1;
    for (uint32_t i = 0; i < q->n; i++)
        v[i] = q->v[(q->head + i) % q->cap];
    free(q->v);
    q->v = v;
    q->cap = cap;
    q->head = 0;
    return 0;
}

int ws__outq_push(struct ws_outq *q, struct ws_buf *b)
{
    bool soft = q->n >= WS_OUT_SOFT_FRAMES || q->bytes >= WS_OUT_SOFT_BYTES;
    if ((b->flags & WS_BUF_EPHEMERAL) && soft)
        return WS_OUTQ_DROPPED;
    if (q->n + 1 > WS_OUT_HARD_FRAMES || q->bytes + b->len > WS_OUT_HARD_BYTES)
        return WS_OUTQ_OVERFLOW;
    if (q->n == q->cap && grow(q) < 0)
        return WS_OUTQ_OVERFLOW;
    q->v[(q->head + q->n) % q->cap] = b;
    q->n++;
    q->bytes += b->len;
    ws__buf_ref(b);
    return WS_OUTQ_QUEUED;
}

struct ws_buf *ws__outq_pop(struct ws_outq *q)
{
    if (q->n == 0)
        return NULL;
    struct ws_buf *b = q->v[q->head];
    q->head = (q->head + 1) % q->cap;
    q->n--;
    q->bytes -= b->len;
    if (q->n == 0) {
        /* Idle connections hold no ring. */
        free(q->v);
        q->v = NULL;
        q->cap = q->head = 0;
    }
    return b;
}

struct ws_buf *ws__outq_peek(const struct ws_outq *q)
{
    return q->n ? q->v[q->head] : NULL;
}

void ws__outq_clear(struct ws_outq *q)
{
    for (uint32_t i = 0; i < q->n; i++)
        ws__buf_unref(q->v[(q->head + i) % q->cap]);
    free(q->v);
    q->v = NULL;
    q->cap = q->head = q->n = 0;
    q->bytes = 0;
}

bool ws__outq_below(const struct ws_outq *q, uint32_t frames, size_t bytes)
{
    return q->n < frames && q->bytes < bytes;
}

bool ws__bucket_take(struct ws_bucket *b, double rate, double burst, int64_t now_ms)
{
    if (rate <= 0 || burst <= 0)
        return true;
    if (b->last_ms == 0) {
        b->tokens = burst;
    } else if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * rate / 1000.0;
        if (b->tokens > burst)
            b->tokens = burst;
    }
    b->last_ms = now_ms;
    if (b->tokens < 1.0)
        return false;
    b->tokens -= 1.0;
    return true;
}
