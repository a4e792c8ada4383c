/* sio_poll.h - the Engine.IO polling transport of /socket.io/, as http
 * sees it (CONTRACT 7, docs/api.md section 5).
 *
 * The REST server (http/routes_sio.c) takes the HTTP requests of
 * /socket.io/?EIO=4&transport=polling; the sessions they belong to live in
 * the WebSocket gateway (ws/), as gateway connections without a socket of
 * their own.  http knows nothing of ws: main.c fills this table with the
 * gateway's functions (ws_server_poll, ws_server_poll_release) and hands it
 * to http_server_open.
 *
 * Threads: `request` is called on an MHD worker and returns at once (it
 * only queues the request on the gateway's inbox).  `done` is called
 * exactly once per request, later, on the gateway's loop thread (or, when
 * the gateway is already stopped, on the calling thread before `request`
 * returns): a handshake or a POST is answered on the loop's next turn, a
 * GET is held until a packet is queued for its session, the session
 * closes, the upgrade needs it back (noop) or shutdown releases it.  So
 * the caller suspends its connection before `request` and resumes it in
 * `done`: no MHD worker waits for a held GET. */
#ifndef CHATLI_SIO_POLL_H
#define CHATLI_SIO_POLL_H

#include <stdbool.h>
#include <stddef.h>

/* The answer: `status` (200, 400, 413, 503), `content_type` (a string
 * literal) and `body` (malloc'd, stolen by the callee; NULL when `len` 0). */
typedef void (*sio_poll_done_fn)(void *arg, int status, const char *content_type, char *body,
                                 size_t len);

struct sio_poll {
    void *impl;
    /* One polling request: a GET (`post` false) or a POST of `body`
     * (`len` bytes, copied), for the session `sid` (NULL: a GET is the
     * handshake).  EIO and transport were checked by the caller. */
    void (*request)(void *impl, bool post, const char *sid, const char *body, size_t len,
                    sio_poll_done_fn done, void *arg);
    /* Shutdown began: every held GET is answered with the close packet
     * and its session closed; later requests get 503.  Returns at once. */
    void (*release)(void *impl);
};

#endif
