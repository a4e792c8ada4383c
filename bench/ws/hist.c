/* hist.c - log-linear latency buckets; see hist.h for why this shape. */
#include "hist.h"

#include <string.h>

void hist_init(struct hist *h) { memset(h, 0, sizeof *h); }

/* Values below HIST_SUB get one bucket each; above, each power of two is
 * split into HIST_SUB equal buckets indexed by the bits below the top one. */
static unsigned bucket_of(uint64_t v)
{
    if (v < HIST_SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    if (msb > HIST_MAX_BITS)
        return HIST_BUCKETS - 1;
    unsigned shift = msb - HIST_SUB_BITS;
    return (shift + 1) * HIST_SUB + (unsigned)((v >> shift) & (HIST_SUB - 1));
}

static uint64_t bucket_upper(unsigned b)
{
    if (b < HIST_SUB)
        return b;
    unsigned shift = b / HIST_SUB - 1;
    uint64_t sub = b % HIST_SUB;
    return ((HIST_SUB + sub + 1) << shift) - 1;
}

void hist_record(struct hist *h, int64_t ns)
{
    uint64_t v = ns < 0 ? 0 : (uint64_t)ns;
    h->buckets[bucket_of(v)]++;
    h->count++;
    if (v > h->max_ns)
        h->max_ns = v;
}

void hist_merge(struct hist *into, const struct hist *from)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        into->buckets[i] += from->buckets[i];
    into->count += from->count;
    if (from->max_ns > into->max_ns)
        into->max_ns = from->max_ns;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.5);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            if (i == HIST_BUCKETS - 1)
                return h->max_ns; /* the overflow bucket has no upper edge */
            uint64_t up = bucket_upper(i);
            return up < h->max_ns ? up : h->max_ns;
        }
    }
    return h->max_ns;
}
