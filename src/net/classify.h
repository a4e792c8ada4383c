/* classify.h - decide, from the first bytes a client sent, whether a new
 * connection is a WebSocket upgrade (for libwebsockets) or anything else
 * (for libmicrohttpd).
 *
 * Pure and allocation-free, so the acceptor can call it on every peek and
 * the unit tests can feed it malformed input. */
#ifndef CHATLI_NET_CLASSIFY_H
#define CHATLI_NET_CLASSIFY_H

#include <stddef.h>

enum net_class {
    NET_CLASS_MORE = 0, /* cannot tell yet: wait for more bytes */
    NET_CLASS_HTTP = 1, /* anything that is not a WebSocket upgrade (also garbage) */
    NET_CLASS_WS = 2,   /* GET /ws or /socket.io/ with Upgrade: websocket */
};

/* The acceptor peeks at most this many bytes; a request whose head has not
 * ended by then is given to MHD (which answers it or refuses it). */
#define NET_PEEK_MAX 16384

/* Classifies the bytes `buf[0..len)` (not NUL-terminated; may hold any
 * bytes).  A connection is WS when its request line is `GET <target>
 * HTTP/1.x` with target "/ws" or "/socket.io/" (either optionally followed
 * by "?query"), and its header block, complete (ended by an empty line),
 * has an Upgrade header listing the token "websocket" (any case).  Leading
 * CR/LF before the request line are skipped, as RFC 9112 allows.  Returns
 * NET_CLASS_MORE only while the bytes so far could still start such a
 * request and the head has not ended. */
enum net_class net_classify(const char *buf, size_t len);

/* The largest request head net_head_check accepts (NET_HEAD_TOO_LARGE
 * past it): half of MHD's per-connection pool (http/server.c
 * CONNECTION_MEMORY), the most MHD 0.9.75 answers cleanly. */
#define NET_HEAD_MAX 8192

/* The longest chunk-size line (size and extensions) net_head_check lets
 * through in the bytes that follow a chunked head. */
#define NET_CHUNK_LINE_MAX 4096

enum net_head {
    NET_HEAD_MORE = 0,        /* the head has not ended yet */
    NET_HEAD_OK = 1,          /* complete, nothing we need to refuse */
    NET_HEAD_BAD = 2,         /* malformed or ambiguous: 400 bad_request, then close */
    NET_HEAD_HUGE_LENGTH = 3, /* Content-Length does not fit 64 bits: 413 */
    NET_HEAD_TOO_LARGE = 4,   /* the head is over NET_HEAD_MAX bytes: 431 */
};

/* The strict HTTP/1.1 check of one request head (CONTRACT.md section 1,
 * v1.2), over the bytes `buf[0..len)` (no I/O, no allocation; any bytes).
 * Leading CR/LF are skipped.  Refused (NET_HEAD_BAD): a request line that
 * is not "TOKEN SP target SP HTTP/1.d" with single spaces (tabs, extra
 * blanks); a header name that is not a token or is followed by whitespace
 * before its colon; obsolete line folding; a control character, a CR or a
 * NUL in a header line (HT excepted); a missing or repeated Host on
 * HTTP/1.1 (repeated on 1.0); two Content-Length; Content-Length with
 * Transfer-Encoding; a Transfer-Encoding other than one "chunked"; a
 * Content-Length that is not decimal digits.  NET_HEAD_HUGE_LENGTH for a
 * Content-Length over 2^64-1.  NET_HEAD_TOO_LARGE when the head (leading
 * CR/LF not counted) runs past NET_HEAD_MAX bytes, ended or not.  With chunked, a first chunk line seen
 * longer than NET_CHUNK_LINE_MAX is NET_HEAD_BAD too.  Returns NET_HEAD_MORE until the empty line
 * that ends the head.  *why (may be NULL) gets a static string saying why
 * a head is refused, NULL otherwise. */
enum net_head net_head_check(const char *buf, size_t len, const char **why);

/* The WebSocket handshake rules (CONTRACT.md section 6, v1.2) over a
 * complete head that net_classify() called NET_CLASS_WS.  Returns 200 when
 * it may be upgraded, 426 for a Sec-WebSocket-Version other than one "13"
 * (the answer must carry Sec-WebSocket-Version: 13), 400 for HTTP/1.0, no
 * "Connection: upgrade", no version, or not exactly one Sec-WebSocket-Key
 * that decodes (standard base64) to 16 bytes; 0 while the head is
 * incomplete.  *why as for net_head_check. */
int net_ws_check(const char *buf, size_t len, const char **why);

#endif
