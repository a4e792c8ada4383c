/* http_server.h - the REST transport: libmicrohttpd without a listening socket.
 *
 * The acceptor (net/) owns the port and hands each non-WebSocket
 * connection here with http_server_add_connection().  MHD runs a pool of
 * HTTP_THREADS epoll workers; each request is parsed, authenticated, rate
 * limited, routed to one core call and answered on its worker (a blocking
 * store call holds that worker).  Responses follow CONTRACT.md section 1. */
#ifndef CHATLI_ADAPTERS_HTTP_SERVER_H
#define CHATLI_ADAPTERS_HTTP_SERVER_H

#include <stdbool.h>
#include <sys/socket.h>

#include "chatli/err.h"

struct config;
struct core;
struct store;
struct cache;
struct bus;
struct media;
struct http_server;
struct sio_poll;

struct http_server_deps {
    const struct config *cfg; /* borrowed: outlives the server */
    struct core *core;        /* borrowed */
    struct store *store;      /* borrowed: /readyz store check */
    struct cache *cache;      /* borrowed: rate limits, /readyz redis check */
    struct bus *bus;          /* borrowed, may be NULL: /readyz redis check */
    struct media *media;      /* borrowed: uploads and /uploads/, /readyz media check */
    unsigned conn_limit;      /* the connection ceiling (MHD's own limit is set far above it) */
    /* Optional: called once for every socket given to
     * http_server_add_connection, when that connection closes (or could
     * not be added), with its peer address; on an MHD worker or the
     * caller's thread.  The acceptor's admission count lives on it. */
    void (*on_closed)(void *arg, const struct sockaddr *sa);
    void *on_closed_arg;
    /* The Socket.IO polling transport (borrowed, copied), NULL: none. */
    const struct sio_poll *sio_poll;
};

/* Checks a CORS_ORIGINS value ("*" or comma-separated "scheme://host[:port]")
 * the way http_server_open() will parse it, so config_load() can stop the
 * server at start with a message naming the variable.  Returns 0, or
 * CHAT_E_BAD_REQUEST with the offending entry in `err`. */
int http_server_check_origins(const char *list, struct chat_err *err);

/* Starts the MHD daemon and its worker pool.  *out is new:
 * http_server_close().  Errors: CHAT_E_BAD_REQUEST (a bad CORS_ORIGINS),
 * CHAT_E_INTERNAL. */
int http_server_open(const struct http_server_deps *deps, struct http_server **out,
                     struct chat_err *err);

/* Steals `fd`, an accepted socket whose first bytes (an HTTP request) are
 * unread; `sa` is the peer address (borrowed for the call).  Thread-safe;
 * does not block.  On failure the socket is closed. */
void http_server_add_connection(struct http_server *s, int fd, const struct sockaddr *sa,
                                socklen_t salen);

/* Steals `fd`, a fresh connection the acceptor refuses: answers `status`
 * with the usual JSON error and headers (400 bad_request, 413
 * payload_too_large, 426 bad_request with Sec-WebSocket-Version: 13, 431
 * bad_request, 503 unavailable with Retry-After: 1), then closes, through
 * the linger thread when request bytes are left unread.  Thread-safe; does
 * not block. */
void http_server_reject(struct http_server *s, int fd, int status);

/* Starts draining: /readyz answers 503 "draining", every response carries
 * Connection: close, and idle keep-alive connections are closed.  Then
 * waits until no connection is left or `deadline_ms` (CLOCK_MONOTONIC ms)
 * passes.  Returns true when every connection finished.  Call from main
 * after the acceptor stopped. */
bool http_server_drain(struct http_server *s, long long deadline_ms);

/* Open MHD connections (any thread). */
unsigned http_server_connections(struct http_server *s);

/* Stops MHD (cutting whatever is still open) and frees everything. */
void http_server_close(struct http_server *s);

#endif
