/* acceptor.h - the one listening socket, shared by REST and WebSocket.
 *
 * The acceptor binds HOST:PORT, accepts on its own epoll thread, peeks at
 * each new socket (recv MSG_PEEK, edge-triggered) until net_classify() can
 * tell a WebSocket upgrade from anything else, and hands the socket, with
 * its bytes still unread, to one of two sinks (libwebsockets or
 * libmicrohttpd).  It never reads a request itself; with a reject sink it
 * checks the first head (strict HTTP/1.1, the WebSocket handshake) and
 * admits connections against the ceiling, and the reject sink answers
 * what it refuses.
 *
 * Routing is per connection, not per request: a keep-alive connection
 * that starts with a REST request stays with MHD even if it later sends an
 * Upgrade (MHD answers that as a plain request).  Browsers and proxies open
 * a fresh socket for a WebSocket, so this does not arise in practice. */
#ifndef CHATLI_ADAPTERS_ACCEPTOR_H
#define CHATLI_ADAPTERS_ACCEPTOR_H

#include <sys/socket.h>

#include "chatli/err.h"

/* Takes ownership of `fd` (an accepted, non-blocking socket whose first
 * bytes are unread) and must close it on failure.  `sa` is the peer address,
 * borrowed for the call.  Runs on the acceptor thread: must not block. */
typedef void (*acceptor_sink_cb)(void *arg, int fd, const struct sockaddr *sa, socklen_t salen);

/* Takes ownership of `fd`, a connection the acceptor refuses: its first
 * request head breaks the strict HTTP/1.1 rules (400, 413 or 431; see
 * net_head_check), its WebSocket handshake is not acceptable (400 or 426,
 * net_ws_check), or admission refused it (503).  The sink answers `status`
 * itself and closes.  Runs on the acceptor thread: must not block. */
typedef void (*acceptor_reject_cb)(void *arg, int fd, int status);

struct acceptor_config {
    const char *host;     /* HOST: address or name to bind */
    int port;             /* PORT; 0 = any free port (see acceptor_port) */
    int pending_max;      /* sockets being classified at once; 0 = default (4096) */
    int peek_timeout_ms;  /* a socket silent this long is closed; 0 = default (5000) */
    acceptor_sink_cb to_http;
    void *http_arg;
    acceptor_sink_cb to_ws;
    void *ws_arg;
    /* Optional.  When set, plain HTTP sockets are held until their first
     * head is complete (within the same bounds) and checked; only the
     * first request of a connection can be checked this way. */
    acceptor_reject_cb to_reject;
    void *reject_arg;
    /* Admission (0 = off).  conn_max: the connection ceiling (see
     * acceptor_raise_fd_limit); max_per_addr: REST connections plus sockets
     * being classified, per client address (MAX_CONNS_PER_ADDR).  Past either, a classified socket is
     * answered 503 with Retry-After through to_reject and closed.  With
     * conn_max set, the REST sink must call acceptor_release_http once for
     * every socket it was given, when that connection closes. */
    int conn_max;
    int max_per_addr;
};

struct acceptor;

/* Raises RLIMIT_NOFILE's soft limit to its hard limit and returns how many
 * connections the process can hold: the limit minus a reserve for the
 * store, logs, pipes, epoll sets, lingering sockets and the WebSocket
 * library, of max(128, limit / 8) descriptors (at least 16 are returned).
 * Call once at start, before threads exist. */
long acceptor_raise_fd_limit(void);

/* Gives back the admission of one REST connection handed to to_http, from
 * `sa` (its peer address): call when it closes, or when the sink could not
 * take it.  Any thread. */
void acceptor_release_http(struct acceptor *a, const struct sockaddr *sa);

/* Binds and listens on cfg->host:cfg->port and starts the acceptor thread.
 * `cfg` is copied (host is duplicated).  *out is new: acceptor_close().
 * Errors: CHAT_E_UNAVAILABLE when the address cannot be resolved or bound
 * (err->msg says why), CHAT_E_INTERNAL otherwise. */
int acceptor_open(const struct acceptor_config *cfg, struct acceptor **out, struct chat_err *err);

/* The bound TCP port (useful with PORT=0).  Any thread. */
int acceptor_port(const struct acceptor *a);

/* Sockets accepted and still being classified (approximate; any thread). */
long acceptor_pending(const struct acceptor *a);

/* Stops accepting: joins the thread, closes the listening socket and the
 * sockets still being classified (they have not completed a request).
 * Sockets already handed off are unaffected.  Idempotent; call from main. */
void acceptor_stop(struct acceptor *a);

/* Stops (if needed) and frees. */
void acceptor_close(struct acceptor *a);

#endif
