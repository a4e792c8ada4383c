/* ratelimit.c - client keys and the fixed-window check.
 *
 * X-Forwarded-For is client-controlled text: we take only its first entry,
 * accept it only when inet_pton says it is an address, and re-print it, so
 * a key is always a canonical address (no "1.2.3.4 " vs "1.2.3.4" split,
 * no unbounded strings in the cache). */
#include "ratelimit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "chatli/cache.h"

/* Parses `s[0..n)` as an address (no port); canonical text into out. */
static bool parse_addr(const char *s, size_t n, char *out, size_t out_len)
{
    char buf[HTTP_IP_MAX];
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    unsigned char bin[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, buf, bin) == 1)
        return inet_ntop(AF_INET, bin, out, (socklen_t)out_len) != NULL;
    if (inet_pton(AF_INET6, buf, bin) == 1) {
        if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)bin))
            return inet_ntop(AF_INET, bin + 12, out, (socklen_t)out_len) != NULL;
        return inet_ntop(AF_INET6, bin, out, (socklen_t)out_len) != NULL;
    }
    return false;
}

static bool all_digits(const char *s, size_t n)
{
    if (n == 0 || n > 5)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

bool http_xff_client(const char *xff, char *out, size_t out_len)
{
    if (!xff)
        return false;
    const char *a = xff;
    const char *b = strchr(a, ',');
    if (!b)
        b = a + strlen(a);
    while (a < b && (*a == ' ' || *a == '\t'))
        a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
        b--;
    size_t n = (size_t)(b - a);
    if (parse_addr(a, n, out, out_len))
        return true;
    /* "[v6]" or "[v6]:port" */
    if (n > 2 && a[0] == '[') {
        const char *close = memchr(a, ']', n);
        if (!close)
            return false;
        size_t rest = (size_t)(b - close - 1);
        if (rest != 0 && !(close[1] == ':' && all_digits(close + 2, rest - 1)))
            return false;
        return parse_addr(a + 1, (size_t)(close - a - 1), out, out_len);
    }
    /* "v4:port" (a v6 address has several colons and parsed above) */
    const char *colon = memchr(a, ':', n);
    if (colon && !memchr(colon + 1, ':', (size_t)(b - colon - 1)) &&
        all_digits(colon + 1, (size_t)(b - colon - 1))) {
        char tmp[HTTP_IP_MAX];
        size_t l = (size_t)(colon - a);
        if (l == 0 || l >= sizeof tmp)
            return false;
        memcpy(tmp, a, l);
        tmp[l] = '\0';
        unsigned char bin[4];
        if (inet_pton(AF_INET, tmp, bin) != 1)
            return false;
        return inet_ntop(AF_INET, bin, out, (socklen_t)out_len) != NULL;
    }
    return false;
}

void http_peer_ip(const struct sockaddr *sa, char *out, size_t out_len)
{
    if (sa && sa->sa_family == AF_INET) {
        if (inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)out_len))
            return;
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        const void *p = a6;
        int fam = AF_INET6;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            p = (const unsigned char *)a6 + 12;
            fam = AF_INET;
        }
        if (inet_ntop(fam, p, out, (socklen_t)out_len))
            return;
    }
    snprintf(out, out_len, "unknown");
}

void http_client_ip(const char *xff, bool trust, const struct sockaddr *peer, char *out,
                    size_t out_len)
{
    if (trust && http_xff_client(xff, out, out_len))
        return;
    http_peer_ip(peer, out, out_len);
}

int http_ratelimit_hit(struct cache *cache, const char *key, int64_t max, int64_t window_ms,
                       struct ratelimit_result *res, struct chat_err *err)
{
    int64_t count = 0, reset_ms = 0;
    int rc = cache_hit(cache, key, window_ms, &count, &reset_ms, err);
    if (rc != 0)
        return rc;
    res->limit = max;
    res->remaining = count >= max ? 0 : max - count;
    res->reset_s = (reset_ms + 999) / 1000;
    if (res->reset_s < 1)
        res->reset_s = 1;
    res->exceeded = count > max;
    return 0;
}

/* ---- accounts blocked after too many failed logins ------------------------
 *
 * Threads: every MHD worker, under blocks_mu.  A process-wide table (all
 * servers of the process share it, which only a test would notice): open
 * addressing over BLOCK_SLOTS entries, BLOCK_PROBES probes; an insert takes
 * a free, expired or equal slot, else evicts the probe window's soonest
 * expiry.  Filling it takes LOGIN_FAIL_MAX failed logins per entry, each
 * paid with an Argon2id verify and the client IP's rate limit. */
#define BLOCK_SLOTS 16384
#define BLOCK_PROBES 32

struct block_slot {
    unsigned char account[16];
    int64_t until_ms; /* CLOCK_MONOTONIC ms; 0 = free */
};

static pthread_mutex_t blocks_mu = PTHREAD_MUTEX_INITIALIZER;
static struct block_slot blocks[BLOCK_SLOTS];

static size_t slot_of(const unsigned char account[16])
{
    size_t h;
    memcpy(&h, account, sizeof h);
    return h % BLOCK_SLOTS;
}

int64_t http_login_blocked_ms(const unsigned char account[16], int64_t now_ms)
{
    int64_t left = 0;
    pthread_mutex_lock(&blocks_mu);
    for (size_t i = 0, s = slot_of(account); i < BLOCK_PROBES; i++, s = (s + 1) % BLOCK_SLOTS) {
        struct block_slot *b = &blocks[s];
        if (b->until_ms > now_ms && memcmp(b->account, account, 16) == 0) {
            left = b->until_ms - now_ms;
            break;
        }
    }
    pthread_mutex_unlock(&blocks_mu);
    return left;
}

void http_login_block(const unsigned char account[16], int64_t until_ms, int64_t now_ms)
{
    pthread_mutex_lock(&blocks_mu);
    struct block_slot *victim = NULL;
    for (size_t i = 0, s = slot_of(account); i < BLOCK_PROBES; i++, s = (s + 1) % BLOCK_SLOTS) {
        struct block_slot *b = &blocks[s];
        if (b->until_ms <= now_ms || memcmp(b->account, account, 16) == 0) {
            victim = b;
            break;
        }
        if (!victim || b->until_ms < victim->until_ms)
            victim = b;
    }
    memcpy(victim->account, account, 16);
    victim->until_ms = until_ms;
    pthread_mutex_unlock(&blocks_mu);
}
