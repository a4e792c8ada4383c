/* classify.c - WebSocket upgrade or plain HTTP, from peeked bytes.
 *
 * The acceptor calls this on every edge of new data, re-reading the peeked
 * prefix from the start, so it keeps no state and decides as early as it
 * can: most REST requests are settled by their first bytes ("POST", or a
 * target that is not /ws or /socket.io/), and only a GET to a gateway path
 * waits for the end of the header block to look for Upgrade.  Anything
 * malformed goes to MHD, which answers 400 itself; only something that looks
 * exactly like a handshake reaches libwebsockets. */
#include "classify.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* Compares the available bytes with the start of `lit`: 1 when all of
 * `lit` matched, 0 when the bytes so far agree but are too few, -1 on a
 * mismatch. */
static int prefix_cmp(const char *p, size_t avail, const char *lit)
{
    size_t n = strlen(lit);
    size_t m = avail < n ? avail : n;
    if (memcmp(p, lit, m) != 0)
        return -1;
    return avail >= n ? 1 : 0;
}

/* Is `t[0..n)` a gateway target?  "/ws", "/ws?...", "/socket.io/...". */
static bool gateway_target(const char *t, size_t n)
{
    if (n >= 3 && memcmp(t, "/ws", 3) == 0 && (n == 3 || t[3] == '?'))
        return true;
    return n >= 11 && memcmp(t, "/socket.io/", 11) == 0;
}

/* Could `t[0..n)`, with more bytes to come, still become a gateway target? */
static bool gateway_target_prefix(const char *t, size_t n)
{
    if (gateway_target(t, n))
        return true;
    return prefix_cmp(t, n, "/ws") == 0 || prefix_cmp(t, n, "/socket.io/") == 0;
}

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

/* Does the header value `v[0..n)` list the token "websocket"? */
static bool lists_websocket(const char *v, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (is_ows(v[i]) || v[i] == ','))
            i++;
        size_t a = i;
        while (i < n && v[i] != ',')
            i++;
        size_t b = i;
        while (b > a && is_ows(v[b - 1]))
            b--;
        if (b - a == 9 && strncasecmp(v + a, "websocket", 9) == 0)
            return true;
    }
    return false;
}

enum net_class net_classify(const char *buf, size_t len)
{
    size_t i = 0;
    while (i < len && (buf[i] == '\r' || buf[i] == '\n'))
        i++;
    if (i == len)
        return NET_CLASS_MORE;

    int r = prefix_cmp(buf + i, len - i, "GET ");
    if (r < 0)
        return NET_CLASS_HTTP;
    if (r == 0)
        return NET_CLASS_MORE;
    i += 4;

    /* The request target runs to the next space. */
    const char *t = buf + i;
    const char *sp = memchr(t, ' ', len - i);
    if (!sp) {
        /* A CR/LF or NUL inside the target means this is no valid request line. */
        size_t n = len - i;
        if (memchr(t, '\r', n) || memchr(t, '\n', n) || memchr(t, '\0', n))
            return NET_CLASS_HTTP;
        return gateway_target_prefix(t, n) ? NET_CLASS_MORE : NET_CLASS_HTTP;
    }
    size_t tlen = (size_t)(sp - t);
    if (!gateway_target(t, tlen) || memchr(t, '\r', tlen) || memchr(t, '\n', tlen) ||
        memchr(t, '\0', tlen))
        return NET_CLASS_HTTP;
    i += tlen + 1;

    /* "HTTP/1.x" then the end of the line. */
    r = prefix_cmp(buf + i, len - i, "HTTP/1.");
    if (r < 0)
        return NET_CLASS_HTTP;
    if (r == 0)
        return NET_CLASS_MORE;
    i += 7;
    if (i == len)
        return NET_CLASS_MORE;
    if (buf[i] < '0' || buf[i] > '9')
        return NET_CLASS_HTTP;
    i++;
    if (i < len && buf[i] == '\r')
        i++;
    if (i == len)
        return NET_CLASS_MORE;
    if (buf[i] != '\n')
        return NET_CLASS_HTTP;
    i++;

    /* Header lines until an empty one.  A line is complete only with its
     * '\n'; "\r\n" and a bare "\n" both end it. */
    bool upgrade = false;
    for (;;) {
        const char *line = buf + i;
        const char *nl = memchr(line, '\n', len - i);
        if (!nl)
            return NET_CLASS_MORE;
        size_t n = (size_t)(nl - line);
        if (n > 0 && line[n - 1] == '\r')
            n--;
        i += (size_t)(nl - line) + 1;
        if (n == 0)
            break; /* end of the head */
        if (memchr(line, '\0', n))
            return NET_CLASS_HTTP;
        if (is_ows(line[0]))
            continue; /* obsolete line folding: part of the previous header */
        const char *colon = memchr(line, ':', n);
        if (!colon)
            return NET_CLASS_HTTP;
        size_t name_len = (size_t)(colon - line);
        if (name_len == 7 && strncasecmp(line, "Upgrade", 7) == 0 &&
            lists_websocket(colon + 1, n - name_len - 1))
            upgrade = true;
    }
    return upgrade ? NET_CLASS_WS : NET_CLASS_HTTP;
}

/* The value of the first header `name` (name_len bytes) in the complete
 * head `buf[0..end)`, trimmed; false when absent. */
static bool find_header(const char *buf, size_t end, const char *name, size_t name_len,
                        const char **val, size_t *val_len)
{
    const char *p = memchr(buf, '\n', end); /* skip the request line */
    while (p && (size_t)(p - buf) + 1 < end) {
        const char *line = p + 1;
        const char *nl = memchr(line, '\n', end - (size_t)(line - buf));
        if (!nl)
            return false;
        size_t n = (size_t)(nl - line);
        if (n > 0 && line[n - 1] == '\r')
            n--;
        const char *colon = memchr(line, ':', n);
        if (colon && (size_t)(colon - line) == name_len && strncasecmp(line, name, name_len) == 0) {
            const char *v = colon + 1, *e = line + n;
            while (v < e && is_ows(*v))
                v++;
            while (e > v && is_ows(e[-1]))
                e--;
            *val = v;
            *val_len = (size_t)(e - v);
            return true;
        }
        p = nl;
    }
    return false;
}

enum net_head net_head_check(const char *buf, size_t len)
{
    size_t i = 0;
    while (i < len && (buf[i] == '\r' || buf[i] == '\n'))
        i++;
    /* The head ends at the first empty line: "\n\n" or "\n\r\n". */
    size_t end = 0;
    for (size_t k = i; k < len; k++) {
        if (buf[k] != '\n')
            continue;
        if (k + 1 < len && buf[k + 1] == '\n') {
            end = k + 2;
            break;
        }
        if (k + 2 < len && buf[k + 1] == '\r' && buf[k + 2] == '\n') {
            end = k + 3;
            break;
        }
    }
    if (end == 0)
        return NET_HEAD_MORE;
    const char *v;
    size_t vl;
    if (find_header(buf + i, end - i, "Transfer-Encoding", 17, &v, &vl))
        return NET_HEAD_OK; /* MHD ignores Content-Length then */
    if (!find_header(buf + i, end - i, "Content-Length", 14, &v, &vl))
        return NET_HEAD_OK;
    if (vl == 0)
        return NET_HEAD_BAD_LENGTH;
    unsigned long long n = 0;
    bool huge = false;
    for (size_t k = 0; k < vl; k++) {
        if (v[k] < '0' || v[k] > '9')
            return NET_HEAD_BAD_LENGTH;
        unsigned d = (unsigned)(v[k] - '0');
        if (n > (~0ULL - d) / 10)
            huge = true;
        else
            n = n * 10 + d;
    }
    return huge ? NET_HEAD_HUGE_LENGTH : NET_HEAD_OK;
}
