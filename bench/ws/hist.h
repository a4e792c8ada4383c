/* hist.h - a fixed-size latency histogram for the WebSocket load generator.
 *
 * Log-linear buckets (64 per power of two, so about 1.5% resolution) over
 * nanoseconds: recording is a few instructions, two histograms merge by adding
 * their counts, and a histogram is a flat array that a worker process can send
 * to its parent in one message.  Not thread-safe: one owner per histogram. */
#ifndef CHATLI_BENCH_HIST_H
#define CHATLI_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 6
#define HIST_SUB (1 << HIST_SUB_BITS)
/* Values up to 2^42 ns (about 73 minutes); larger ones land in the last bucket. */
#define HIST_MAX_BITS 42
#define HIST_BUCKETS ((HIST_MAX_BITS - HIST_SUB_BITS + 1) * HIST_SUB + HIST_SUB)

struct hist {
    uint64_t count;
    uint64_t max_ns;
    uint64_t buckets[HIST_BUCKETS];
};

void hist_init(struct hist *h);
void hist_record(struct hist *h, int64_t ns); /* negative values count as 0 */
void hist_merge(struct hist *into, const struct hist *from);
/* The value at quantile q (0..1], as the upper edge of its bucket; 0 when empty. */
uint64_t hist_quantile(const struct hist *h, double q);

#endif
