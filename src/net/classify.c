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
#include <sodium.h>
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

/* Does the comma-separated value `v[0..n)` list `tok` (any case)? */
static bool lists_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok), i = 0;
    while (i < n) {
        while (i < n && (is_ows(v[i]) || v[i] == ','))
            i++;
        size_t a = i;
        while (i < n && v[i] != ',')
            i++;
        size_t b = i;
        while (b > a && is_ows(v[b - 1]))
            b--;
        if (b - a == tl && strncasecmp(v + a, tok, tl) == 0)
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
            lists_token(colon + 1, n - name_len - 1, "websocket"))
            upgrade = true;
    }
    return upgrade ? NET_CLASS_WS : NET_CLASS_HTTP;
}

/* RFC 9110 tchar: the bytes of a method or a header name. */
static bool is_tchar(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return true;
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A field-value byte: HT, visible ASCII, SP, or obs-text (0x80-0xff). */
static bool is_vchar(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

/* Where the head of `buf[i..len)` ends (just past its empty line), or 0. */
static size_t head_end(const char *buf, size_t i, size_t len)
{
    for (size_t k = i; k < len; k++) {
        if (buf[k] != '\n')
            continue;
        if (k + 1 < len && buf[k + 1] == '\n')
            return k + 2;
        if (k + 2 < len && buf[k + 1] == '\r' && buf[k + 2] == '\n')
            return k + 3;
    }
    return 0;
}

/* The line at `buf[*i..end)` without its "\r\n" or "\n"; advances *i past
 * it.  A CR anywhere but before the LF is left in the line (and refused). */
static size_t next_line(const char *buf, size_t *i, size_t end, const char **line)
{
    *line = buf + *i;
    const char *nl = memchr(*line, '\n', end - *i);
    size_t n = (size_t)(nl - *line);
    *i += n + 1;
    if (n > 0 && (*line)[n - 1] == '\r')
        n--;
    return n;
}

/* "METHOD SP origin-or-absolute-target SP HTTP/1.d": single spaces, a
 * token method, a target of visible ASCII.  Sets *minor to d. */
static bool request_line_ok(const char *l, size_t n, int *minor)
{
    size_t k = 0;
    while (k < n && is_tchar((unsigned char)l[k]))
        k++;
    if (k == 0 || k == n || l[k] != ' ')
        return false;
    size_t t = ++k;
    while (k < n && (unsigned char)l[k] > 0x20 && (unsigned char)l[k] < 0x7f)
        k++;
    if (k == t || k == n || l[k] != ' ')
        return false;
    k++;
    if (n - k != 8 || memcmp(l + k, "HTTP/1.", 7) != 0 || l[k + 7] < '0' || l[k + 7] > '9')
        return false;
    *minor = l[k + 7] - '0';
    return true;
}

/* What the framing headers said, for the checks after the last line. */
struct head_seen {
    int content_length, transfer_encoding, host;
    const char *cl_val, *te_val;
    size_t cl_len, te_len;
};

static void trim(const char **v, size_t *n)
{
    while (*n > 0 && is_ows(**v))
        (*v)++, (*n)--;
    while (*n > 0 && is_ows((*v)[*n - 1]))
        (*n)--;
}

/* Checks one header line; returns NULL or why it is refused. */
static const char *header_line(const char *l, size_t n, struct head_seen *seen)
{
    if (is_ows(l[0]))
        return "obsolete line folding";
    size_t k = 0;
    while (k < n && is_tchar((unsigned char)l[k]))
        k++;
    if (k == n || l[k] != ':')
        return k < n && is_ows(l[k]) ? "whitespace before a header's colon"
                                     : "a header name that is not a token";
    if (k == 0)
        return "an empty header name";
    for (size_t j = k + 1; j < n; j++)
        if (!is_vchar((unsigned char)l[j]))
            return "a control character or NUL in a header";
    const char *v = l + k + 1;
    size_t vn = n - k - 1;
    trim(&v, &vn);
    if (k == 14 && strncasecmp(l, "Content-Length", 14) == 0) {
        seen->content_length++;
        seen->cl_val = v, seen->cl_len = vn;
    } else if (k == 17 && strncasecmp(l, "Transfer-Encoding", 17) == 0) {
        seen->transfer_encoding++;
        seen->te_val = v, seen->te_len = vn;
    } else if (k == 4 && strncasecmp(l, "Host", 4) == 0) {
        seen->host++;
    }
    return NULL;
}

/* The framing rules (RFC 9112 6.1-6.3 and 3.2, made strict). */
static enum net_head framing(const struct head_seen *s, int minor, const char **why)
{
    if ((minor == 1 && s->host != 1) || s->host > 1) {
        *why = s->host ? "more than one Host header" : "no Host header on HTTP/1.1";
        return NET_HEAD_BAD;
    }
    if (s->transfer_encoding) {
        *why = s->content_length ? "both Content-Length and Transfer-Encoding"
               : s->transfer_encoding > 1 || s->te_len != 7 ||
                         strncasecmp(s->te_val, "chunked", 7) != 0
                   ? "a Transfer-Encoding other than a single chunked"
                   : NULL;
        return *why ? NET_HEAD_BAD : NET_HEAD_OK;
    }
    if (s->content_length == 0)
        return NET_HEAD_OK;
    if (s->content_length > 1 || s->cl_len == 0) {
        *why = s->cl_len ? "more than one Content-Length" : "an empty Content-Length";
        return NET_HEAD_BAD;
    }
    unsigned long long n = 0;
    for (size_t k = 0; k < s->cl_len; k++) {
        if (s->cl_val[k] < '0' || s->cl_val[k] > '9') {
            *why = "a Content-Length that is not a decimal number";
            return NET_HEAD_BAD;
        }
        unsigned d = (unsigned)(s->cl_val[k] - '0');
        if (n > (~0ULL - d) / 10) {
            *why = "a Content-Length that does not fit 64 bits";
            return NET_HEAD_HUGE_LENGTH;
        }
        n = n * 10 + d;
    }
    return NET_HEAD_OK;
}

enum net_head net_head_check(const char *buf, size_t len, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = NULL;
    size_t i = 0;
    while (i < len && (buf[i] == '\r' || buf[i] == '\n'))
        i++;
    size_t end = head_end(buf, i, len);
    if (end == 0 ? len - i > NET_HEAD_MAX : end - i > NET_HEAD_MAX) {
        *why = "a request head over 8 KiB";
        return NET_HEAD_TOO_LARGE;
    }
    if (end == 0)
        return NET_HEAD_MORE;
    const char *l;
    size_t n = next_line(buf, &i, end, &l);
    int minor = 0;
    if (!request_line_ok(l, n, &minor)) {
        *why = "a malformed request line";
        return NET_HEAD_BAD;
    }
    struct head_seen seen = {0};
    while ((n = next_line(buf, &i, end, &l)) > 0) {
        if ((*why = header_line(l, n, &seen)) != NULL)
            return NET_HEAD_BAD;
    }
    enum net_head h = framing(&seen, minor, why);
    /* A chunked body's first chunk line (size and extensions) must end
     * within NET_CHUNK_LINE_MAX bytes: MHD 0.9.75 answers a longer one
     * with 500 once it outgrows its buffer. */
    if (h == NET_HEAD_OK && seen.transfer_encoding && len - end >= NET_CHUNK_LINE_MAX &&
        !memchr(buf + end, '\n', NET_CHUNK_LINE_MAX)) {
        *why = "a chunk line (size and extensions) longer than 4 KiB";
        return NET_HEAD_BAD;
    }
    return h;
}

/* How many `name` headers the complete head `buf[0..end)` has; the value
 * of the first, trimmed, in *val. */
static int find_headers(const char *buf, size_t end, const char *name, const char **val,
                        size_t *val_len)
{
    int count = 0;
    size_t i = 0, name_len = strlen(name);
    const char *l;
    next_line(buf, &i, end, &l); /* the request line */
    size_t n;
    while (i < end && (n = next_line(buf, &i, end, &l)) > 0) {
        const char *colon = memchr(l, ':', n);
        if (!colon || (size_t)(colon - l) != name_len || strncasecmp(l, name, name_len) != 0)
            continue;
        if (count++ == 0) {
            *val = colon + 1;
            *val_len = n - name_len - 1;
            trim(val, val_len);
        }
    }
    return count;
}


int net_ws_check(const char *buf, size_t len, const char **why)
{
    const char *dummy, *v;
    size_t vn;
    if (!why)
        why = &dummy;
    size_t i = 0;
    while (i < len && (buf[i] == '\r' || buf[i] == '\n'))
        i++;
    size_t end = head_end(buf, i, len);
    if (end == 0)
        return 0;
    buf += i, end -= i;
    const char *lf = memchr(buf, '\n', end);
    size_t rl = (size_t)(lf - buf);
    if (rl < 9 || memcmp(buf + rl - (buf[rl - 1] == '\r' ? 9 : 8), "HTTP/1.1", 8) != 0) {
        *why = "a WebSocket upgrade must be HTTP/1.1";
        return 400;
    }
    if (!find_headers(buf, end, "Connection", &v, &vn) || !lists_token(v, vn, "upgrade")) {
        *why = "a WebSocket upgrade needs Connection: Upgrade";
        return 400;
    }
    int nver = find_headers(buf, end, "Sec-WebSocket-Version", &v, &vn);
    if (nver == 0) {
        *why = "no Sec-WebSocket-Version";
        return 400;
    }
    if (nver > 1 || vn != 2 || memcmp(v, "13", 2) != 0) {
        *why = "only Sec-WebSocket-Version 13 is supported";
        return 426;
    }
    unsigned char key[32];
    size_t kn = 0;
    if (find_headers(buf, end, "Sec-WebSocket-Key", &v, &vn) != 1 ||
        sodium_base642bin(key, sizeof key, v, vn, NULL, &kn, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        kn != 16) {
        *why = "Sec-WebSocket-Key must be one base64 value of 16 bytes";
        return 400;
    }
    return 200;
}
