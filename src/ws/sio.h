/* sio.h - the Engine.IO v4 / Socket.IO v5 packet codec of /socket.io/
 * (CONTRACT 7).  Pure: jansson and the refcounted buffer of frames.c, no
 * lws or core calls, so every rule is unit-tested and fuzzed
 * (fuzz/fuzz_sio.c) without a socket.
 *
 * Over the WebSocket transport one text frame is one Engine.IO packet: a
 * type digit (0 open, 1 close, 2 ping, 3 pong, 4 message, 5 upgrade, 6
 * noop) and its data.  A message carries one Socket.IO packet: a type digit
 * (0 CONNECT, 1 DISCONNECT, 2 EVENT, 3 ACK, 4 CONNECT_ERROR, 5 BINARY_EVENT,
 * 6 BINARY_ACK), for the binary ones `<attachments>-`, then an optional
 * namespace (`/name,`), an optional ack id (decimal digits) and JSON data.
 *
 * The gateway speaks the namespace "/" only and no binary attachments:
 * both are recognised and reported (SIO_E_NAMESPACE, SIO_E_BINARY) so the
 * caller can refuse them with a Socket.IO error instead of leaving the
 * client waiting. */
#ifndef CHATLI_WS_SIO_H
#define CHATLI_WS_SIO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ws_internal.h"

/* Buffers already in Socket.IO form (never converted again). */
#define WS_BUF_SIO 2u

/* Longest namespace echoed back in a CONNECT_ERROR; longer is malformed. */
#define SIO_NSP_MAX 128
/* Largest ack id accepted (socket.io-client counts up from 0). */
#define SIO_ACK_MAX 999999999999999LL
/* Attachments a refused binary packet may announce (their frames are
 * skipped); more is malformed. */
#define SIO_ATTACH_MAX 64

enum sio_kind {
    SIO_K_CLOSE = 1,  /* Engine.IO 1 */
    SIO_K_PING,       /* Engine.IO 2 (the upgrade probe `2probe` from a client) */
    SIO_K_PONG,       /* Engine.IO 3 */
    SIO_K_UPGRADE,    /* Engine.IO 5 */
    SIO_K_NOOP,       /* Engine.IO 6 */
    SIO_K_CONNECT,    /* 40 */
    SIO_K_DISCONNECT, /* 41 */
    SIO_K_EVENT,      /* 42 */
    SIO_K_ACK,        /* 43 */
};

enum sio_rc {
    SIO_E_PACKET = -1,    /* not a packet a client may send */
    SIO_E_NAMESPACE = -2, /* a namespace other than "/" (nsp, nsp_len set) */
    SIO_E_BINARY = -3,    /* BINARY_EVENT / BINARY_ACK (attachments set) */
};

/* One parsed client packet.  `data` is owned (sio_packet_cleanup);
 * `event`, `arg` are borrowed from it and `nsp` from the input bytes. */
struct sio_packet {
    int kind;             /* enum sio_kind */
    bool probe;           /* PING / PONG with the payload "probe" */
    int64_t ack_id;       /* EVENT / ACK: -1 when absent */
    unsigned attachments; /* SIO_E_BINARY: binary frames that follow */
    const char *nsp;      /* the namespace as written ("/" when absent) */
    size_t nsp_len;
    json_t *data;         /* CONNECT: the auth object or NULL; EVENT, ACK: the array */
    const char *event;    /* EVENT: the event name */
    json_t *arg;          /* EVENT: the first argument, NULL when none */
};

/* Parses one text frame.  0, or an enum sio_rc; `*why` (when not NULL)
 * gets a static explanation on failure.  Call sio_packet_cleanup in every
 * case.  Never reads past `len`. */
int sio_parse(const char *s, size_t len, struct sio_packet *p, const char **why);
void sio_packet_cleanup(struct sio_packet *p);

/* The plain gateway frame (CONTRACT 6) an EVENT stands for: its argument
 * object with "type" set to the event name.  NULL when the argument is
 * present and not an object (`*why` set) or on OOM.  New reference. */
json_t *sio_event_frame(const struct sio_packet *p, const char **why);

/* The token of a CONNECT's auth object ({"token":"..."}), borrowed, or NULL. */
const char *sio_connect_token(const struct sio_packet *p);

/* ---- a connection's Socket.IO state (the loop's, conn.c) --------------- */

/* message.send events with an ack id whose answer has not gone out, at
 * most per connection (one more is answered at once with rate_limited). */
#define SIO_PENDING_MAX 64

struct sio_pending {
    int64_t ack_id;
    char cid[65];         /* the frame's clientId */
};

/* Allocated at the upgrade of a /socket.io/ connection, freed with it. */
struct ws_sio {
    int64_t ping_ms;      /* clock_mono_ms() of the last ping (or of the open) */
    bool await_pong;      /* a ping went out and its pong has not come */
    unsigned attach_skip; /* binary frames of a refused packet still to skip */
    int64_t cur_ack;      /* the ack id of the message.send being handled, else -1 */
    uint32_t n_pending;
    struct sio_pending *pending; /* SIO_PENDING_MAX entries, lazily */
};

/* ---- the polling transport (conn.c "polling") -------------------------- */

/* Engine.IO's default maxPayload: the most bytes one POST may carry (more:
 * 413 and the session closes).  REST's own 1 MiB body limit is above it. */
#define SIO_POLL_MAX_PAYLOAD 1000000
/* Polling sessions not connected yet (no CONNECT accepted), at most, per
 * instance; one more handshake is answered 503 (socket.io-client retries).
 * A handshake costs no socket, so TCP admission does not bound them; a
 * real client is unconnected for one token check, a few ms. */
#define SIO_POLL_MAX_UNAUTH 1024
/* The most bytes one GET answer carries (the rest waits for the next GET). */
#define SIO_POLL_MAX_ANSWER 1000000

/* A polling session's transport state, on its struct ws_conn (wsi NULL).
 * The session id is 16 hex digits of the connection id (so a request finds
 * its session in the id table) and 16 random ones (so it cannot be
 * guessed). */
struct ws_poll {
    char sid[33];
    sio_poll_done_fn get_done;  /* the held GET, NULL when none */
    void *get_arg;
    bool upgrading;             /* 3probe went out on a WebSocket for it */
    uint64_t probe_id;          /* that WebSocket's connection id */
    bool close_sent;            /* CLOSING: the close packet went out */
    bool unauth;                /* counted in ws_reg.poll_unauth */
    int64_t closed_ms;          /* CLOSING: clock_mono_ms() of the close */
};

/* ---- server packets (new buffers flagged WS_BUF_SIO, NULL on OOM) ------ */

/* 0{"sid","upgrades":[],"pingInterval","pingTimeout","maxPayload"}; with
 * `upgrade` (the polling transport) "upgrades" is ["websocket"]. */
struct ws_buf *sio_open_buf(const char *sid, int64_t ping_interval_ms, int64_t ping_timeout_ms,
                            size_t max_payload, bool upgrade);
/* 40{"sid":sid} */
struct ws_buf *sio_connect_buf(const char *sid);
/* 44[/nsp,]{"message":msg}: the namespace echoed unless it is "/". */
struct ws_buf *sio_connect_error_buf(const char *nsp, size_t nsp_len, const char *msg);
/* A packet of fixed text: "2" (ping), "3probe", "41", ... */
struct ws_buf *sio_raw_buf(const char *text);

/* The EVENT form 42["<type>",{...rest}] of a plain server frame
 * {"type":"<type>",...rest} (`frame`, `len`), with `flags` | WS_BUF_SIO.
 * The frames this gateway builds start with their "type", and are
 * rewritten without a parse; anything else is parsed.  `frame` must be
 * valid JSON (every server frame is: the gateway serialized it).  NULL
 * when it is not an object with a string "type", or on OOM. */
struct ws_buf *sio_event_buf(const char *frame, size_t len, unsigned flags);

/* When `frame` is the answer to a message.send - {"type":"message.ack",...}
 * or {"type":"error",...} - copies its "clientId" (up to 64 bytes) into
 * `cid` (NUL-terminated; "" when the frame has none) and returns true. */
bool sio_frame_is_answer(const char *frame, size_t len, char cid[65]);

/* The ACK packet 43<ack_id>[arg] answering a message.send with the answer
 * frame `frame`: a message.ack gives {"clientId","message"}, an error
 * {"error":{"code","message","field"?}}.  NULL when `frame` is neither,
 * or on OOM. */
struct ws_buf *sio_ack_buf(int64_t ack_id, const char *frame, size_t len);

#endif
