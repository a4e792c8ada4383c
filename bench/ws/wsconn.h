/* wsconn.h - the load generator's client side of one WebSocket connection.
 *
 * A benchmark needs tens of thousands of client connections in one process
 * with almost no CPU per frame, so this is a small non-blocking state machine
 * over one socket driven by the caller's edge-triggered epoll loop, not a
 * general client: it speaks RFC 6455 from the client side (masked frames out,
 * unmasked frames in, fragments reassembled, ping answered with pong, close
 * echoed) and reports whole text messages through one callback.  It checks
 * the upgrade's status line (101) but not Sec-WebSocket-Accept, which would
 * need SHA-1 for no benchmarking value; the server under test is ours.
 *
 * Threads: none; each connection belongs to the single loop that drives it. */
#ifndef CHATLI_BENCH_WSCONN_H
#define CHATLI_BENCH_WSCONN_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

enum wsconn_state {
    WSCONN_IDLE = 0,   /* not started, or reset */
    WSCONN_CONNECTING, /* TCP connect in progress */
    WSCONN_UPGRADING,  /* upgrade request sent, waiting for "101" */
    WSCONN_OPEN,       /* WebSocket frames flow */
    WSCONN_CLOSED,     /* socket closed; close_code says why */
};

/* Close codes this layer invents for failures that carry none on the wire. */
#define WSCONN_CLOSE_NO_STATUS 1005     /* a close frame without a code */
#define WSCONN_CLOSE_ABNORMAL 1006      /* EOF or reset without a close frame */
#define WSCONN_CLOSE_CONNECT_FAILED 1   /* connect() failed; see err */
#define WSCONN_CLOSE_UPGRADE_REFUSED 2  /* the server answered other than 101 */
#define WSCONN_CLOSE_PROTOCOL 3         /* a frame we cannot accept */
#define WSCONN_CLOSE_LOCAL 4            /* wsconn_close() was called */

enum wsconn_event {
    WSCONN_EV_OPEN,   /* the upgrade succeeded */
    WSCONN_EV_TEXT,   /* a whole text message: data/len (borrowed until return) */
    WSCONN_EV_CLOSED, /* the socket is gone; close_code is set */
};

struct wsconn;
typedef void (*wsconn_cb)(void *ud, struct wsconn *c, enum wsconn_event ev, const char *data, size_t len);

struct wsconn {
    int fd;
    enum wsconn_state state;
    int close_code; /* valid in WSCONN_CLOSED */
    int err;        /* errno of a failed connect/read/write, else 0 */
    uint32_t id;    /* the caller's index, echoed in epoll data */
    char *rx;       /* bytes read and not yet consumed */
    size_t rx_len, rx_cap;
    char *msg; /* a fragmented message being reassembled */
    size_t msg_len, msg_cap;
    int msg_op; /* opcode of the message in msg, 0 when none */
    char *tx;   /* bytes queued for the socket, from tx_off */
    size_t tx_off, tx_len, tx_cap;
};

/* Starts a connection to `dst` from `src` (port 0; the kernel picks it at
 * connect time), registering the socket with `epfd` edge-triggered for both
 * directions with data.u64 = c->id.  `host` and `target` (path and query)
 * make the upgrade request; both are copied.  Returns 0, or -1 with c->err set
 * and c->state WSCONN_CLOSED. */
int wsconn_start(struct wsconn *c, int epfd, const struct sockaddr_in *src, const struct sockaddr_in *dst,
                 const char *host, const char *target);

/* Handles epoll `events` for c, calling cb for what happened.  cb may call
 * wsconn_send_text on any connection, and wsconn_close on c. */
void wsconn_on_event(struct wsconn *c, uint32_t events, wsconn_cb cb, void *ud);

/* Queues one masked text frame and writes what the socket takes now.
 * Returns 0, or -1 when the connection is not open (nothing queued). */
int wsconn_send_text(struct wsconn *c, const char *data, size_t len);

/* Bytes queued and not yet written (back-pressure). */
static inline size_t wsconn_pending(const struct wsconn *c) { return c->tx_len - c->tx_off; }

/* Closes the socket now (no closing handshake) and frees the buffers;
 * state becomes WSCONN_CLOSED with close_code WSCONN_CLOSE_LOCAL unless one
 * was set.  Safe to call twice. */
void wsconn_close(struct wsconn *c);

/* Seeds the frame-mask generator (call once per process, after fork). */
void wsconn_seed(uint64_t seed);

#endif
