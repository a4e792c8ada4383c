/* ws_server.h - the WebSocket gateway (/ws and /socket.io/) on libwebsockets.
 *
 * WS_LOOPS event loops (config.h), each an lws service thread that owns
 * the `struct lws` of its connections.  The acceptor (net/) classifies
 * each new socket and hands WebSocket upgrades here with
 * ws_server_adopt(), which picks a loop, queues the fd there and wakes
 * that loop with lws_cancel_service(); the loop adopts it.  Work that touches the store
 * (auth, message.send, sync, read) runs on the gateway's worker threads and
 * comes back through the same queue.  Deliveries arrive from the bus. */
#ifndef CHATLI_ADAPTERS_WS_SERVER_H
#define CHATLI_ADAPTERS_WS_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "chatli/err.h"
#include "chatli/sio_poll.h"

struct config;
struct core;
struct bus;
struct cache;
struct ws_gateway;

/* Starts the loops (each an lws context with no listen socket of its own,
 * its service thread and its workers) and subscribes to `bus`.  When `cache` shares token
 * buckets (Redis), the flood limit is one bucket per user across instances.
 * `cfg`, `core`, `bus` and `cache` (may be NULL) are borrowed and must
 * outlive the server.  *out is new: ws_server_close().
 * Errors: CHAT_E_INTERNAL. */
int ws_server_open(const struct config *cfg, struct core *core, struct bus *bus,
                   struct cache *cache, struct ws_gateway **out, struct chat_err *err);

/* Steals `fd`, an accepted socket whose unread bytes start an HTTP request
 * for /ws or /socket.io/ (peeked, not consumed).  Thread-safe; returns at
 * once.  On failure (server stopping) the fd is closed. */
void ws_server_adopt(struct ws_gateway *ws, int fd);

/* The Engine.IO polling transport (chatli/sio_poll.h; main.c puts these
 * two in the table http gets).  ws_server_poll copies `sid` and `body`,
 * queues the request on the loop and returns; `done` runs exactly once,
 * on the loop (or at once when the gateway cannot take it: 503).
 * ws_server_poll_release: shutdown began, close every polling session
 * (a held GET gets the close packet) and refuse new ones. */
void ws_server_poll(struct ws_gateway *ws, bool post, const char *sid, const char *body,
                    size_t len, sio_poll_done_fn done, void *arg);
void ws_server_poll_release(struct ws_gateway *ws);

/* Number of open WebSocket connections (any thread; approximate). */
long ws_server_connections(struct ws_gateway *ws);

/* Graceful stop: refuses new connections, waits (until `deadline_ms`,
 * CLOCK_MONOTONIC ms) for in-flight message.send to be acked, sends close
 * 1001 to every connection and waits for them to go.  Call from main. */
void ws_server_shutdown(struct ws_gateway *ws, long long deadline_ms);

/* Stops the thread and frees everything (after shutdown, or instead). */
void ws_server_close(struct ws_gateway *ws);

#endif
