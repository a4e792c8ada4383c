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

enum net_head {
    NET_HEAD_MORE = 0,        /* the head has not ended yet */
    NET_HEAD_OK = 1,          /* complete, nothing we need to refuse */
    NET_HEAD_BAD_LENGTH = 2,  /* Content-Length is not a decimal number: 400 */
    NET_HEAD_HUGE_LENGTH = 3, /* Content-Length does not fit 64 bits: 413 */
};

/* Checks the head of a plain HTTP request for the one defect libmicrohttpd
 * 0.9.75 answers with a malformed response (its error path sends the
 * response head twice): a Content-Length MHD cannot parse.  Mirrors MHD:
 * with a Transfer-Encoding header the length is ignored; otherwise the
 * first Content-Length header counts, blanks around its value trimmed.
 * Returns NET_HEAD_MORE until the empty line that ends the head. */
enum net_head net_head_check(const char *buf, size_t len);

#endif
