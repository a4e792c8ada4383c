/* ws_internal.h - what the gateway's .c files share and nothing else sees.
 *
 * The gateway is WS_LOOPS "loops" (shards), each one lws context with one
 * service thread plus a small pool of worker threads, under a thin group
 * (group.c) that implements the public API: it spreads new sockets over
 * the loops, subscribes to the bus once and hands every event to every
 * loop, and starts and stops them together.  A loop (struct ws_server)
 * owns its `struct lws`, `struct ws_conn` and `struct ws_user`, its id ->
 * connection and user -> connections indexes; it never blocks.  Workers
 * run whatever needs core (and so the store): token checks, the ready
 * frame's data, message.send, read, typing membership, sync, presence
 * lists.  Everything that crosses threads is a `struct ws_msg` pushed on a
 * loop's inbox (a mutex protected FIFO) followed by lws_cancel_service();
 * the loop drains its inbox in LWS_CALLBACK_EVENT_WAIT_CANCELLED.  Outside
 * its loop a connection is only ever named by its 64-bit id, whose top
 * byte is the loop's index (WS_CONN_LOOP).  What the loops must agree on
 * about a user (presence, the per-user cap, the flood bucket) is the
 * registry (reg.c), one mutex for the process.
 *
 * Files:
 *   frames.c   parsing and validating client frames, building server frames,
 *              the refcounted outbound buffer (pure: no lws or core calls)
 *   outq.c     per-connection outbound queue and its backpressure policy,
 *              the per-user token bucket (pure)
 *   index.c    id -> connection and user id -> user hash tables (pure)
 *   reg.c      the process-wide user registry (a mutex; no lws or core)
 *   conn.c     the loop side: connection life cycle, frames in, frames
 *              out, delivery, presence, per-connection job order
 *   workers.c  the worker pool and every job that calls core
 *   msgs.c     what crosses threads: inbox messages and the inbox push,
 *              job objects, send accounting (the bottom: calls nothing
 *              above it)
 *   server.c   one loop: its context, service thread and inbox drain
 *   group.c    the loops together: the public ws_server_* functions, the
 *              bus subscriber and gap listener
 * Calls go one way (scripts/check-calls.py): group.c -> server.c ->
 * conn.c -> workers.c -> msgs.c, all of them using the pure files and
 * reg.c.  A loop reaches its siblings only through their inboxes
 * (ws_server.loops, ws__inbox_push). */
#ifndef CHATLI_WS_WS_INTERNAL_H
#define CHATLI_WS_WS_INTERNAL_H

#include <jansson.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chatli/core.h"
#include "chatli/err.h"
#include "chatli/oid.h"
#include "chatli/adapters/ws_server.h"
#include "chatli/sio_poll.h"

/* ---- limits (the numbers the contract leaves to us; docs/api.md) -------- */

#define WS_MAX_FRAME (64 * 1024)   /* bytes of one client message; more: 1009 */
#define WS_AUTH_TIMEOUT_S 10       /* no auth by then: 4408 (CONTRACT 6) */
#define WS_TOKEN_MAX 512           /* longer tokens cannot be ours: 4401 */

/* lws allocates rx_buffer_size (+ LWS_PRE + 4) per connection for its whole
 * life; measured here (heaptrack, 2,000 idle connections): 1,035 bytes each
 * at 1024.  256 holds a whole message.send with a 64-byte text (~180 bytes),
 * so the common frame still needs no copy; larger client frames arrive in
 * pieces and are accumulated (lazily allocated, freed after each message).
 * 1024 -> 256 took an idle connection from 3,265 to 2,500 bytes of RSS at
 * 19,900 (docs/performance.md). */
#define WS_RX_BUFFER 256
/* One send() may carry a whole frame; 0 would cap sends at WS_RX_BUFFER and
 * make lws copy the rest of every larger frame into its own buffer. */
#define WS_TX_PACKET (256 * 1024)

/* Outbound backpressure, per connection.  Past the soft limit, ephemeral
 * frames (typing, presence) are dropped; past the hard limit the reader is
 * too slow to keep up and is closed with 1008, its queue freed at once.  A
 * healthy client's queue is near empty; the hard limit is sized so that a
 * sync page (WS_SYNC_PAGE frames of at most ~20 KiB) always fits on top of
 * WS_SYNC_RESUME_BYTES. */
#define WS_OUT_SOFT_FRAMES 512
#define WS_OUT_SOFT_BYTES (256 * 1024)
#define WS_OUT_HARD_FRAMES 4096
#define WS_OUT_HARD_BYTES (2 * 1024 * 1024)

/* sync: messages per store read, at most per chat (CONTRACT 6), at most
 * chats per frame, and the queue level under which the next page is read
 * (so a big sync never piles up in memory faster than the client reads). */
#define WS_SYNC_PAGE 50
#define WS_SYNC_MAX_PER_CHAT 500
#define WS_SYNC_MAX_CHATS 1000
#define WS_SYNC_RESUME_BYTES (128 * 1024)
#define WS_SYNC_RESUME_FRAMES 128

/* Per-connection request backlog.  At WS_CONN_MAX_JOBS queued requests (or
 * WS_EARLY_MAX frames held while the token check runs) the gateway stops
 * reading the socket (lws_rx_flow_control), so a client that pipelines
 * faster than its requests complete is slowed by TCP, not refused; reading
 * resumes at half.  Frames lws had already read past the pause are still
 * taken, up to twice the limit; beyond that (which a pause prevents) a
 * request is refused with rate_limited, or, before ready, the connection
 * closed with 1008. */
#define WS_CONN_MAX_JOBS 32
/* message.send frames handed to core whose answer (ack or error) has not
 * come back, over the whole gateway.  At the limit a connection's next send
 * waits in the gateway (its connection joins a FIFO, and its job queue
 * fills until reading pauses), so under overload the store's append queue
 * holds at most this many of our messages: four of its group-commit
 * batches (STORE_SQLITE_BATCH_MAX 256), enough to keep its writer busy.
 * Without the bound the queue grew with whatever clients sent (measured:
 * at 25,000 msg/s offered, acks 29 s late, throughput down to 1,500-3,000
 * msg/s and a SIGTERM drain past 15 s). */
#define WS_SENDS_IN_CORE_MAX 1024
#define WS_EARLY_MAX 16
#define WS_REVOKED_RING 64
#define WS_WORKERS 4               /* worker threads of one loop (they block on the store);
                                      with N loops each has max(2, WS_WORKERS / N) */
#define WS_LOOPS_MAX 64            /* WS_LOOPS: 1..64 */
#define WS_CLOSE_GRACE_S 3         /* time for a close frame to get out */
#define WS_HANDSHAKE_TIMEOUT_S 10  /* timeout_secs_ah_idle: stalled handshakes */

/* Liveness and the auth deadline are checked by one sweep over every
 * connection each WS_SWEEP_MS, not by per-connection lws timers: lws 4.1
 * keeps its timers in one sorted list, so its ping/pong policy
 * (retry_and_idle_policy) re-inserted a timer, walking the list, on every
 * frame in or out - measured as the loop's top cost with thousands of
 * connections.  A connection silent for WS_PING_IDLE_S gets a ping; one
 * silent (not even a pong) for WS_HANGUP_IDLE_S is closed.  So the auth
 * deadline is WS_AUTH_TIMEOUT_S plus at most one sweep. */
#define WS_SWEEP_MS 500
#define WS_PING_IDLE_S 30
#define WS_HANGUP_IDLE_S 75

/* Close codes (RFC 6455 and CONTRACT 6). */
#define WS_CLOSE_GOING_AWAY 1001
#define WS_CLOSE_PROTOCOL 1002
#define WS_CLOSE_UNSUPPORTED 1003
#define WS_CLOSE_BAD_DATA 1007
#define WS_CLOSE_POLICY 1008
#define WS_CLOSE_TOO_BIG 1009
#define WS_CLOSE_INTERNAL 1011
#define WS_CLOSE_TRY_LATER 1013
#define WS_CLOSE_UNAUTHORIZED 4401
#define WS_CLOSE_AUTH_TIMEOUT 4408
#define WS_CLOSE_TOO_MANY 4429     /* WS_MAX_CONNS_PER_USER: the oldest goes */

/* Output batching (conn.c).  Frames queued on one connection go out in one
 * send() as far as they fit in WS_WRITE_BATCH bytes (measured here: two
 * 300-byte send()s on loopback cost 24.5 us of CPU, one 600-byte send()
 * 14.6 us), and one connection gets at most WS_WRITE_BUDGET bytes per turn
 * before the others are served. */
#define WS_WRITE_BATCH (64 * 1024)
#define WS_WRITE_BUDGET (256 * 1024)

/* ---- refcounted outbound buffer (frames.c) ------------------------------- */

#define WS_BUF_EPHEMERAL 1u /* typing / presence: first to go under pressure */

/* One serialized server frame with LWS_PRE bytes of headroom, shared by
 * every connection it is queued on.  Created on any thread with refs = 1
 * and handed to the loop through the inbox; from then on only the loop
 * touches `refs` (so it needs no atomics).  lws_write writes the frame
 * header into the headroom: the same bytes for every recipient, and the
 * loop writes one connection at a time. */
struct ws_buf {
    uint32_t refs;
    uint32_t flags;       /* WS_BUF_* */
    struct ws_buf *alt;   /* the same frame as a Socket.IO EVENT (sio.h), made
                             on the loop for the first /socket.io/ recipient
                             and shared by the others; freed with this one */
    size_t len;           /* payload bytes */
    unsigned char mem[];  /* LWS_PRE headroom, the payload, a NUL */
};

static inline unsigned char *ws_buf_payload(struct ws_buf *b) { return b->mem + LWS_PRE; }

/* New buffer holding a copy of `data` (refs 1), or NULL on OOM.  With
 * `data` NULL the `len` payload bytes are left for the caller to fill. */
struct ws_buf *ws__buf_new(const char *data, size_t len, unsigned flags);
/* New buffer holding `frame` (borrowed) serialized compactly, or NULL. */
struct ws_buf *ws__buf_from_json(json_t *frame, unsigned flags);
void ws__buf_ref(struct ws_buf *b);
/* Drops one reference; frees at zero.  NULL is ignored. */
void ws__buf_unref(struct ws_buf *b);

/* The longest header of an unmasked server frame (RFC 6455 5.2). */
#define WS_FRAME_HDR_MAX 10
_Static_assert(LWS_PRE >= WS_FRAME_HDR_MAX, "a frame header must fit in the headroom");

/* Writes the header of one unmasked, final text frame of `len` payload
 * bytes into `hdr` and returns its length (2, 4 or 10).  The gateway frames
 * its own output so that several queued frames leave in one send()
 * (lws_write frames exactly one message per call); no extension is ever
 * negotiated (the context offers none), so a text frame is these bytes and
 * the payload, nothing else. */
size_t ws__frame_header(unsigned char hdr[WS_FRAME_HDR_MAX], size_t len);

/* True for the frames that may be dropped under backpressure: typing and
 * presence.  Recognised by their first key, which every producer of those
 * frames (this gateway) writes first. */
bool ws__frame_is_ephemeral(const char *frame, size_t len);
/* True for a chat.new frame (core writes "type" first), which co-member
 * presence acts on (conn.c) and the group sends to every loop (group.c). */
bool ws__frame_is_chat_new(const char *frame, size_t len);

/* ---- RFC 6455 checks (frames.c) ---------------------------------------- */

/* True when `s` (n bytes) is well-formed UTF-8 (RFC 3629). */
bool ws__utf8_valid(const unsigned char *s, size_t n);

/* Checks the payload of a client's close frame (RFC 6455 5.5.1, 7.4):
 * 0 when it is empty or a code a peer may send (1000-1003, 1007-1011,
 * 3000-4999) with a UTF-8 reason; WS_CLOSE_PROTOCOL for one byte or
 * another code; WS_CLOSE_BAD_DATA for a reason that is not UTF-8. */
int ws__close_check(const unsigned char *payload, size_t len);

/* ---- client frames (frames.c) ------------------------------------------ */

enum ws_ftype {
    WS_F_AUTH = 1,
    WS_F_SEND,    /* message.send */
    WS_F_TYPING,
    WS_F_READ,
    WS_F_PING,
    WS_F_SYNC,
};

struct ws_sync_entry {
    char chat_id[OID_SIZE];
    int64_t after_seq;    /* advanced by the worker as pages go out */
};

/* A parsed client frame.  All pointers are owned by the frame (root) and
 * released together by ws__frame_cleanup. */
struct ws_frame {
    int type;                   /* enum ws_ftype, 0 when unknown */
    json_t *root;               /* new: the frame as received */
    const char *chat_id;        /* borrowed from root: SEND, TYPING, READ */
    const char *client_id;      /* borrowed from root when "clientId" is a string */
    const char *token;          /* borrowed from root: AUTH */
    json_t *body;               /* new: what core gets for SEND and READ: the frame
                                   object itself (a second reference to root);
                                   core reads only its fields (text,
                                   attachmentUrl, clientId / messageId) */
    struct ws_sync_entry *sync; /* new: SYNC, n_sync entries in frame order */
    size_t n_sync;
};

/* Parses one text frame.  Returns 0; CHAT_E_BAD_REQUEST when it is not one
 * JSON object with a string "type", or the type is unknown; or
 * CHAT_E_VALIDATION (err->field set) when a known frame lacks a required
 * field or has one of the wrong type.  On failure `out` still holds what
 * was parsed (client_id, for the error frame's echo).  Call
 * ws__frame_cleanup in every case.  Never reads past `len`. */
int ws__frame_parse(const char *data, size_t len, struct ws_frame *out, struct chat_err *err);
void ws__frame_cleanup(struct ws_frame *f);

/* {"type":"error","code","message","field"? (validation only),
 *  "clientId"? (when not NULL)}.  New reference, NULL on OOM. */
json_t *ws__frame_error(int code, const char *msg, const char *field, const char *client_id);

/* ---- outbound queue and flood bucket (outq.c) --------------------------- */

/* A ring of buffer references, allocated on first use and shrunk back when
 * it empties, so an idle connection holds no queue memory. */
struct ws_outq {
    struct ws_buf **v;
    uint32_t cap, head, n;
    size_t bytes;         /* payload bytes queued */
};

enum ws_outq_result {
    WS_OUTQ_QUEUED = 0,   /* queued (a reference taken) */
    WS_OUTQ_DROPPED = 1,  /* ephemeral frame dropped: past the soft limit */
    WS_OUTQ_OVERFLOW = 2, /* past the hard limit (or OOM): close the connection */
};

int ws__outq_push(struct ws_outq *q, struct ws_buf *b);
/* Removes the oldest buffer and returns its reference (unref it after the
 * write), or NULL when empty. */
struct ws_buf *ws__outq_pop(struct ws_outq *q);
/* The oldest buffer (borrowed: still queued), or NULL when empty. */
struct ws_buf *ws__outq_peek(const struct ws_outq *q);
/* Drops every queued reference and the ring. */
void ws__outq_clear(struct ws_outq *q);
/* True when fewer than `frames` frames and `bytes` bytes are queued. */
bool ws__outq_below(const struct ws_outq *q, uint32_t frames, size_t bytes);

/* Token bucket: `rate` tokens per second up to `burst`.  Starts full. */
struct ws_bucket {
    double tokens;
    int64_t last_ms;      /* CLOCK_MONOTONIC ms of the last refill; 0 = never */
};
/* Takes one token at `now_ms`; false when empty.  rate <= 0 or burst <= 0
 * disables the limit (always true). */
bool ws__bucket_take(struct ws_bucket *b, double rate, double burst, int64_t now_ms);

/* ---- loop-owned state ---------------------------------------------------- */

enum ws_conn_state {
    WS_C_NEW = 0,   /* upgraded, waiting for the auth frame */
    WS_C_AUTHING,   /* token check running on a worker */
    WS_C_READY,     /* ready sent: gets deliveries, may send frames */
    WS_C_CLOSING,   /* close requested: nothing more is read or queued */
};

struct ws_user;
struct ws_job;
struct ws_sio;

/* One WebSocket connection: lws's per-session data (allocated zeroed by
 * lws, freed by lws after LWS_CALLBACK_CLOSED).  Loop thread only. */
struct ws_conn {
    struct lws *wsi;
    uint64_t id;                    /* never 0 once established */
    struct ws_conn *id_next;        /* index.c id table chain */
    struct ws_conn *all_prev, *all_next; /* every established connection */
    struct ws_conn *flush_next;     /* ws_server.flush list, while flush_queued */
    struct ws_conn *sw_prev, *sw_next; /* ws_server.sw_* FIFO, while send_waiting */
    struct ws_user *user;           /* set while READY (and CLOSING after it) */
    struct ws_conn *u_prev, *u_next;/* the user's connections */
    struct ws_outq out;
    char *rx;                       /* partial client message, lazily */
    size_t rx_len, rx_cap;
    struct ws_job *jobs_head, *jobs_tail; /* waiting for their turn */
    struct ws_buf **early;          /* frames received while AUTHING, lazily */
    uint8_t n_early;
    uint8_t state;                  /* enum ws_conn_state */
    uint16_t n_jobs;                /* waiting + running */
    uint16_t close_code;
    bool job_running;               /* one job per connection at a time */
    bool sync_parked;               /* next sync page waits for the queue to drain */
    bool drain_then_close;          /* 1001: flush the queue first */
    bool is_sio;                    /* came in on /socket.io/ */
    bool rx_paused;                 /* reading stopped: too many requests queued */
    bool ping_due;                  /* the sweep asked for a ping */
    bool flush_queued;              /* on ws_server.flush: written when the drain ends */
    bool send_waiting;              /* its next job, a send, waits for WS_SENDS_IN_CORE_MAX */
    bool pinged;                    /* a ping went out since the last rx */
    uint32_t born_s;                /* ws__now_s() at upgrade */
    uint32_t rx_s;                  /* ws__now_s() of the last frame or pong received */
    uint32_t expires_s;             /* wall-clock s when the token expires (rounded up);
                                       the sweep closes it with 4401 then */
    const char *close_reason;       /* string literal */
    uint8_t token_hash[32];         /* the session's, for revocation */
    struct ws_sio *sio;             /* Socket.IO state (sio.h) when is_sio */
    /* Socket.IO over HTTP long-polling (conn.c "polling"): a session with
     * no lws wsi (wsi NULL), allocated and freed by the gateway. */
    struct ws_poll *poll;
    uint64_t probe_of;              /* a WebSocket upgrading that polling session */
};

/* A user with at least one READY connection.  Loop thread only. */
struct ws_reg_user;

/* A user with at least one READY connection on this loop.  Loop thread
 * only.  `reg` is the user's registry entry (reg.c): it lives while any
 * loop holds a connection of the user, so at least as long as this. */
struct ws_user {
    char id[OID_SIZE];
    struct ws_user *next;           /* index.c user table chain */
    struct ws_conn *conns;          /* READY (or CLOSING) connections here */
    uint32_t n_conns;
    struct ws_reg_user *reg;
};

/* Chained hash tables, power-of-two sized, growing at load 1 (index.c). */
struct ws_conn_table {
    struct ws_conn **b;
    size_t mask, n;
};
struct ws_user_table {
    struct ws_user **b;
    size_t mask, n;
};

/* 0, or CHAT_E_INTERNAL on OOM. */
int ws__conns_init(struct ws_conn_table *t);
void ws__conns_cleanup(struct ws_conn_table *t);
/* Inserts `c` (its id must be new).  0 or CHAT_E_INTERNAL (OOM while growing
 * is not an error: the table just stays denser). */
int ws__conns_put(struct ws_conn_table *t, struct ws_conn *c);
struct ws_conn *ws__conns_get(const struct ws_conn_table *t, uint64_t id);
void ws__conns_del(struct ws_conn_table *t, struct ws_conn *c);

int ws__users_init(struct ws_user_table *t);
/* Frees every user still in the table. */
void ws__users_cleanup(struct ws_user_table *t);
struct ws_user *ws__users_get(const struct ws_user_table *t, const char *id);
/* The user `id`, created (zeroed, bucket full) when absent; NULL on OOM. */
struct ws_user *ws__users_get_or_add(struct ws_user_table *t, const char *id);
/* Unlinks and frees `u`. */
void ws__users_del(struct ws_user_table *t, struct ws_user *u);

/* ---- the process-wide user registry (reg.c) ------------------------------ */

/* A connection id names its loop in its top byte: ids are unique in the
 * process (a bus event's skip_conn, a cap eviction and a Socket.IO sid,
 * which starts with the id in hex, all name a connection without its loop). */
#define WS_CONN_LOOP_SHIFT 56
#define WS_CONN_LOOP(id) ((unsigned)((id) >> WS_CONN_LOOP_SHIFT))

/* A user with at least one attached connection (READY, or CLOSING after
 * READY) on some loop.  Every field is guarded by ws_reg.lock; the entry
 * is freed by the detach of its last connection. */
struct ws_reg_user {
    char id[OID_SIZE];
    struct ws_reg_user *next;       /* hash chain */
    uint32_t n_attached;            /* over all loops */
    uint64_t *ready;                /* READY connection ids, oldest first */
    uint32_t n_ready, cap_ready;
    struct ws_bucket bucket;        /* message.send, typing, read (flood limit) */
};

/* Shared by every loop.  `lock` guards everything below it; `inited` is
 * written before the loops start; poll_unauth is an atomic. */
struct ws_reg {
    bool inited;
    atomic_uint poll_unauth;        /* polling sessions not connected yet, all loops (sio.h) */
    pthread_mutex_t lock;
    struct ws_reg_user **b;
    size_t mask, n;
    uint64_t pres_gen;              /* cluster presence generations */
    /* Users whose cluster presence Redis missed (it did not answer): set
     * again after the next good beat (conn.c "presence"). */
    char (*retry)[OID_SIZE];
    size_t n_retry, cap_retry;
};

/* 0, or CHAT_E_INTERNAL on OOM. */
int ws__reg_init(struct ws_reg *r);
void ws__reg_cleanup(struct ws_reg *r);
/* Connection `conn_id` of `user_id` became READY.  Returns the user's
 * entry (borrowed until the connection's ws__reg_detach), or NULL on OOM.
 * *first: the user had no attached connection in the process (then *gen
 * is a new presence generation).  *evict: with `cap` > 0, the oldest
 * READY connection of the user, wherever it is, when the user now holds
 * more than `cap`: it is no longer counted, and the caller closes it with
 * 4429; else 0.  Any thread. */
struct ws_reg_user *ws__reg_attach(struct ws_reg *r, const char *user_id, uint64_t conn_id,
                                   uint32_t cap, bool *first, uint64_t *gen, uint64_t *evict);
/* The connection left READY (it is closing): no longer counted by the cap. */
void ws__reg_unready(struct ws_reg *r, struct ws_reg_user *u, uint64_t conn_id);
/* The connection left its user (closed).  True when it was the user's
 * last in the process: then `u` is freed and *gen is a new generation. */
bool ws__reg_detach(struct ws_reg *r, struct ws_reg_user *u, uint64_t conn_id, uint64_t *gen);
/* True while some loop holds an attached connection of the user. */
bool ws__reg_online(struct ws_reg *r, const char *user_id);
/* The loops holding a READY connection of any of the `n` users `ids` (not
 * necessarily NUL-terminated within OID_SIZE), as a bit per loop index
 * (WS_CONN_LOOP), under one lock. */
uint64_t ws__reg_loops_of(struct ws_reg *r, const char (*ids)[OID_SIZE], size_t n);
/* out[i] = ws__reg_online(ids[i]), under one lock. */
void ws__reg_online_many(struct ws_reg *r, char (*ids)[OID_SIZE], size_t n, bool *out);
/* ws__reg_online, and a new generation taken at the same instant. */
bool ws__reg_presence(struct ws_reg *r, const char *user_id, uint64_t *gen);
uint64_t ws__reg_next_gen(struct ws_reg *r);
/* The user's flood bucket (ws__bucket_take under the lock). */
bool ws__reg_take(struct ws_reg *r, struct ws_reg_user *u, double rate, double burst,
                  int64_t now_ms);
/* The cluster presence retry list: add one user (false on OOM), every
 * online user (after our heartbeat lapsed), or take the list (new: free). */
bool ws__reg_retry_add(struct ws_reg *r, const char *user_id);
bool ws__reg_retry_all(struct ws_reg *r);
char (*ws__reg_retry_take(struct ws_reg *r, size_t *n))[OID_SIZE];

/* ---- order across instances (order.c) --------------------------------------- */

/* How long a chat's event waits for the positions before it (docs/api.md),
 * how many events one chat may hold (more: all go at once), and how long
 * a chat's state is kept without events.  Used only with a shared bus
 * (REDIS_URL): one instance's own events are already in order. */
#define WS_ORDER_HOLD_MS 1000
#define WS_ORDER_HELD_MAX 256
#define WS_ORDER_IDLE_MS (10 * 60 * 1000)

struct ws_order_item {
    struct ws_order_item *next;  /* ascending seq */
    int64_t seq;
    void *data;                  /* the caller's (a DELIVER message) */
};

/* One chat's delivery position.  Loop only, like the table. */
struct ws_order_chat {
    char id[OID_SIZE];
    struct ws_order_chat *next;          /* hash chain */
    struct ws_order_chat *p_prev, *p_next; /* the pending list, while held */
    int64_t last;                        /* last position delivered */
    int64_t deadline_ms;                 /* held events go then; 0: none held */
    int64_t used_ms;                     /* the last event (eviction) */
    struct ws_order_item *held;
    uint32_t n_held;
    bool known;                          /* `last` is a real position */
    bool pending;
};

struct ws_order {
    struct ws_order_chat **b;
    size_t mask, n;
    struct ws_order_chat *pending;       /* chats holding events */
};

/* Called for each event released, in the order it must be delivered. */
typedef void (*ws_order_emit_cb)(void *arg, void *data);

/* 0, or CHAT_E_INTERNAL on OOM. */
int ws__order_init(struct ws_order *o);
/* Frees the table; `drop` (may be NULL) gets every event still held. */
void ws__order_cleanup(struct ws_order *o, ws_order_emit_cb drop, void *arg);
/* Offers the event `data` at position `seq` of `chat` at `now_ms`
 * (monotonic): `emit` runs, before this returns, for every event that may
 * go now (this one and held ones it unblocks), in position order; the
 * others are held.  Never fails: on OOM the event is emitted at once. */
void ws__order_offer(struct ws_order *o, const char *chat, int64_t seq, void *data,
                     int64_t now_ms, ws_order_emit_cb emit, void *arg);
/* Emits, in order, the held events of every chat whose hold ran out. */
void ws__order_expire(struct ws_order *o, int64_t now_ms, ws_order_emit_cb emit, void *arg);
/* The earliest deadline of a held event (monotonic ms), or -1 for none. */
int64_t ws__order_next_deadline(const struct ws_order *o);
/* Forgets the chats with nothing held and no event for `idle_ms`. */
void ws__order_evict(struct ws_order *o, int64_t now_ms, int64_t idle_ms);

/* The position of a positioned frame (message.new: message.seq;
 * message.updated, message.deleted: the top-level "seq") and its chat id.
 * False for any other frame or a malformed one (then *seq is 0). */
bool ws__frame_position(const char *frame, size_t len, char chat[OID_SIZE], int64_t *seq);

/* ---- jobs (objects: msgs.c; the pool: workers.c) ------------------------- */

enum ws_job_kind {
    WS_J_AUTH = 1, /* token -> session, users_me, co-members; then ready */
    WS_J_SEND,     /* message.send */
    WS_J_TYPING,
    WS_J_READ,
    WS_J_SYNC,     /* one page per run; the loop runs it again until done */
    WS_J_OFFLINE,  /* co-members of a user who just lost its last connection */
    WS_J_PRESENCE, /* cluster presence: this instance gained / lost a user */
    WS_J_BEAT,     /* cluster presence: heartbeat, retiring dead instances */
    WS_J_COPRES,   /* cluster presence of a new chat's members (chat.new) */
};

/* Cluster presence (REDIS_URL, conn.c "presence"): a beat every
 * WS_PRESENCE_BEAT_MS renews a heartbeat that lives WS_PRESENCE_TTL_MS, so
 * a crashed instance's users stop counting after at most TTL + one beat
 * (about 6 s).  The TTL leaves room for a beat delayed by busy workers. */
#define WS_PRESENCE_BEAT_MS 1000
#define WS_PRESENCE_TTL_MS 5000

/* Created on the loop, run on a worker, handed back to the loop in a
 * WS_M_JOB_DONE message.  Exactly one thread owns it at a time (the hand
 * offs go through the mutex-protected queues), so it needs no lock. */
struct ws_job {
    struct ws_job *next;
    int kind;                 /* enum ws_job_kind */
    uint64_t conn_id;         /* 0 for WS_J_OFFLINE */
    struct session sess;      /* AUTH: filled by the worker; OFFLINE: user_id only */
    char *token;              /* AUTH: new, wiped when freed */
    struct ws_frame frame;    /* SEND, TYPING, READ, SYNC */
    /* results */
    int rc;                   /* AUTH: 0 when the session and `me` are good */
    json_t *me;               /* AUTH: User+email, new */
    char (*co)[OID_SIZE];     /* AUTH, OFFLINE: users sharing a chat, new */
    size_t n_co;
    /* SYNC progress */
    size_t sync_i;            /* entry being read */
    int64_t sync_sent;        /* messages sent for that entry */
    bool sync_incomplete;     /* some chat had more than WS_SYNC_MAX_PER_CHAT */
    bool sync_done;           /* sync.done went out: the job is finished */
    bool send_handed;         /* SEND: core took it; its callback settles it */
    /* cluster presence */
    bool online;              /* PRESENCE: gained (true) or lost the user */
    bool lost;                /* BEAT: our heartbeat had lapsed */
    int change;               /* PRESENCE: +1 / -1 / 0 cluster-wide, or
                                 WS_PRES_FAILED: Redis did not answer */
    int64_t gen;              /* PRESENCE, AUTH (cluster): ws_server.pres_gen at
                                 the change */
    bool *co_online;          /* AUTH, COPRES: co[i] online on some instance,
                                 new; NULL when unknown (local only) */
    char (*ids)[OID_SIZE];    /* BEAT: users gone with dead instances;
                                 COPRES: the users the chat is new to; new */
    size_t n_ids;
    struct ws_msg *done;      /* the WS_M_JOB_DONE message that carries the job
                                 back, allocated up front so the hand-back
                                 cannot fail */
};

#define WS_PRES_FAILED 2

struct ws_server;
struct cache;
struct ev_loop;

/* A zeroed job of `kind` with its `done` message, or NULL on OOM.  Loop. */
struct ws_job *ws__job_new(int kind);

int ws__workers_start(struct ws_server *ws, struct chat_err *err);
/* Stops and joins the workers; frees jobs still queued (settling sends). */
void ws__workers_stop(struct ws_server *ws);
/* Loop thread: message.send `f` (borrowed) straight to core, skipping the
 * worker, when core can take it without blocking (messages_send_try: the
 * chat's members and the sender's Author are cached).  1 when core took it:
 * its answer comes back as a settles_send TO_CONN message, like a worker's
 * (the caller counts it in sends_in_core); 0 when it needs a worker
 * (nothing was done); a negative code when core refused it (nothing is
 * pending: the caller sends the error frame). */
int ws__send_direct(struct ws_server *ws, uint64_t conn_id, const struct session *s,
                    const struct ws_frame *f, struct chat_err *err);
/* Queues `job` for a worker (steals it).  Any thread. */
void ws__job_submit(struct ws_server *ws, struct ws_job *job);
/* Frees a job and everything it owns.  A SEND job that never reached core
 * is settled (see ws__send_settled). */
void ws__job_free(struct ws_server *ws, struct ws_job *job);

/* ---- inbox messages (msgs.c) --------------------------------------------- */

enum ws_msg_kind {
    WS_M_ADOPT = 1,  /* fd: adopt the socket */
    WS_M_DELIVER,    /* a bus event: buf to users[] (or everyone), minus conn_id */
    WS_M_TO_CONN,    /* buf to connection conn_id */
    WS_M_CLOSE_CONN, /* close connection conn_id with close_code */
    WS_M_JOB_DONE,   /* job comes back to the loop */
    WS_M_REVOKE,     /* close users[]' connections authenticated with token_hash */
    WS_M_CLOSE_ALL,  /* shutdown: close every connection with 1001 */
    WS_M_POLL,       /* a Socket.IO polling request (sio_poll.h): answer through done */
    WS_M_POLL_RELEASE, /* shutdown began: close every polling session */
};

struct ws_msg {
    struct ws_msg *next;
    int kind;                /* enum ws_msg_kind */
    int fd;                  /* ADOPT */
    int scope;               /* DELIVER: enum bus_scope */
    uint64_t conn_id;        /* TO_CONN, CLOSE_CONN; DELIVER: the one to skip */
    uint16_t close_code;     /* CLOSE_CONN */
    const char *close_reason;/* CLOSE_CONN: string literal */
    struct ws_buf *buf;      /* DELIVER, TO_CONN: one reference, owned */
    struct ws_job *job;      /* JOB_DONE: owned */
    bool settles_send;       /* TO_CONN: the answer to a send core took (buf may
                                be NULL when building the frame failed) */
    uint8_t token_hash[32];  /* REVOKE */
    /* POLL: the request (body owned, NUL-terminated) and its answer, called
     * exactly once: on the loop, or by ws__msg_free (503) if never handled */
    bool post;
    bool has_sid;
    char sid[40];
    char *body;
    size_t body_len;
    sio_poll_done_fn done;
    void *done_arg;
    char chat[OID_SIZE];     /* DELIVER: the chat of a positioned frame */
    int64_t seq;             /* DELIVER: its position (order.c), 0 for none */
    size_t n_users;
    char users[][OID_SIZE];  /* DELIVER (BUS_TO_USERS), REVOKE */
};

/* A new message with room for `n_users` ids (zeroed), or NULL on OOM. */
struct ws_msg *ws__msg_new(int kind, size_t n_users);
/* A TO_CONN message carrying `frame` (borrowed) serialized, or NULL on OOM. */
struct ws_msg *ws__msg_frame(uint64_t conn_id, json_t *frame, unsigned flags);
/* A CLOSE_CONN message, or NULL on OOM. */
struct ws_msg *ws__msg_close(uint64_t conn_id, uint16_t code, const char *reason);
/* Frees a message that will not be processed (closes an ADOPT fd). */
void ws__msg_free(struct ws_server *ws, struct ws_msg *m);

/* Appends the chain head..tail (linked by ->next) to the inbox and wakes the
 * loop.  Any thread; steals the messages.  After close they are freed. */
void ws__inbox_push(struct ws_server *ws, struct ws_msg *head);
/* The store's completion hooks (store.h): between them, this thread's
 * pushes are held and go to the inbox as one chain, with one wake-up. */
void ws__completions_begin(void);
void ws__completions_end(void);
/* A send callback's answer is pushed: settles the send (sends_pending,
 * callbacks_pending), now or, in a held batch, right after its push. */
void ws__send_callback_settled(struct ws_server *ws);

/* ---- the server ------------------------------------------------------------ */

/* One loop's state.  Threads: the loop (lws service), its workers, the
 * store's writer thread (message.send callbacks), any bus publisher (the
 * group's subscriber callback), the sibling loops (presence frames and cap
 * evictions through the inbox) and main (open, adopt from the acceptor,
 * shutdown, close).
 * - index, n_loops, loops, reg, n_workers_want, cfg, core, bus, cache,
 *   shared_flood, ctx, vh, evloop, rate_*: written in ws__shard_open,
 *   read-only after (ctx and evloop are cleared by ws__shard_stop, after
 *   the service thread was joined).
 * - in_lock guards in_head/in_tail/in_closed.
 * - wk_lock guards wk_head/wk_tail/wk_stop; wk_cond signals new jobs.
 * - sd_lock guards sends_pending, callbacks_pending, n_conns; sd_cond is
 *   signalled when any of them drops.
 * - stopping, loop_stop, n_conns_approx and adopting are atomics read
 *   anywhere.
 * - everything under "loop only" belongs to the service thread (and to
 *   ws__shard_stop after that thread was joined). */
struct ws_server {
    /* The group (group.c), set at open, read-only after: this loop's
     * index, its siblings (loops[index] is this one; an entry is NULL
     * until that loop opened) and the shared user registry. */
    int index;
    int n_loops;
    struct ws_server *const *loops;
    struct ws_reg *reg;
    int n_workers_want;       /* max(2, WS_WORKERS / n_loops) */
    atomic_long adopting;     /* sockets handed to this loop, not yet adopted */

    const struct config *cfg;
    struct core *core;
    struct bus *bus;
    double rate_per_s, rate_burst;
    uint32_t max_conns_per_user; /* WS_MAX_CONNS_PER_USER; 0 = no cap */
    /* The flood limit shared by instances (REDIS_URL): besides the local
     * bucket, which the loop checks first, a worker takes a token from the
     * user's bucket in the cache before a message.send, typing or read runs
     * (one round trip, off the loop).  With Redis unreachable the local
     * bucket alone applies. */
    struct cache *cache;
    bool shared_flood;
    struct lws_context *ctx;
    struct lws_vhost *vh;

    pthread_t loop_thread;
    bool loop_started;
    bool evlib;               /* libev event loop (else lws's poll loop) */
    struct ev_loop *evloop;   /* that loop: ours, foreign to lws (server.c) */
    bool ctx_dying;           /* loop: lws_context_destroy's first phase ran */
    atomic_bool loop_stop;
    atomic_bool stopping;     /* shutdown began: refuse new sockets and sends */
    atomic_long n_conns_approx;

    pthread_mutex_t in_lock;
    struct ws_msg *in_head, *in_tail;
    bool in_closed;

    pthread_mutex_t wk_lock;
    pthread_cond_t wk_cond;
    struct ws_job *wk_head, *wk_tail;
    bool wk_stop;
    pthread_t workers[WS_WORKERS];
    int n_workers;

    pthread_mutex_t sd_lock;
    pthread_cond_t sd_cond;   /* CLOCK_MONOTONIC */
    long sends_pending;       /* accepted message.send frames not yet answered */
    long callbacks_pending;   /* messages_send_async callbacks still to come */
    long n_conns;             /* established connections */

    /* loop only */
    lws_sorted_usec_list_t sweep; /* the liveness / auth-deadline sweep */
    /* The last WS_REVOKED_RING revoked token hashes: a token checked by a
     * worker just before its logout is refused when its check comes back. */
    uint8_t revoked[WS_REVOKED_RING][32];
    unsigned n_revoked;           /* total ever added; slot = n % RING */
    uint64_t next_conn_id;
    struct ws_conn_table conns;
    struct ws_user_table users;
    struct ws_conn *all;      /* every established connection */
    /* While the inbox is drained, connections that get frames are listed
     * here instead of each asking lws for a writeable callback, and are
     * written when the drain ends (see conn.c "sending"). */
    bool batching;
    struct ws_conn *flush;
    unsigned char *wbuf;      /* WS_WRITE_BATCH bytes: frames coalesced for one send */
    /* Sends dispatched to workers and not answered yet (WS_SENDS_IN_CORE_MAX),
     * and the connections waiting for room, oldest first. */
    uint32_t sends_in_core;
    struct ws_conn *sw_head, *sw_tail;
    /* Socket.IO (CONTRACT 7): Engine.IO ping period and pong deadline,
     * from the config, read-only after open. */
    int64_t sio_ping_interval_ms, sio_ping_timeout_ms;
    bool poll_released;       /* loop: shutdown closed the polling sessions */

    /* Order across instances (order.c): with a shared bus, positioned
     * frames pass the reorder buffer.  order_on is set at open; the rest
     * is loop only. */
    bool order_on;
    struct ws_order order;
    lws_sorted_usec_list_t order_timer;
    int64_t order_evicted_ms;
    /* Cluster presence (conn.c "presence"): on with a shared presence
     * cache and a shared bus, set at open.  Generations and the retry
     * list are the registry's (one instance in Redis, not one per loop);
     * loop 0 alone runs the heartbeat.  beat, beat_running are loop only;
     * beat_ok is touched only by the one beat job out at a time (the
     * queues' locks order its runs). */
    bool cluster_presence;
    lws_sorted_usec_list_t beat;
    bool beat_running;
    bool beat_ok;
};

/* msgs.c: one accepted message.send was answered (ack or error frame
 * pushed) or dropped.  Any thread. */
void ws__send_settled(struct ws_server *ws);

/* msgs.c: monotonic seconds (fits 32 bits for 136 years of uptime). */
uint32_t ws__now_s(void);

/* ---- one loop (server.c), driven by the group (group.c) ------------------- */

/* Opens loop `index` of `n_loops` (its context, service thread and
 * workers).  `loops` and `reg` are the group's and outlive the loop; the
 * rest as ws_server_open.  *out is new: ws__shard_stop, then
 * ws__shard_free.  Errors: CHAT_E_INTERNAL. */
int ws__shard_open(const struct config *cfg, struct core *core, struct bus *bus,
                   struct cache *cache, struct ws_reg *reg, struct ws_server *const *loops,
                   int n_loops, int index, struct ws_server **out, struct chat_err *err);
/* Queues `fd` (steals it) for adoption on this loop.  Any thread. */
void ws__shard_adopt(struct ws_server *ws, int fd);
/* As ws_server_poll / ws_server_poll_release, on this loop. */
void ws__shard_poll(struct ws_server *ws, bool post, const char *sid, const char *body,
                    size_t len, sio_poll_done_fn done, void *arg);
void ws__shard_poll_release(struct ws_server *ws);
/* Load for placing a new connection: established plus queued adoptions. */
long ws__shard_load(struct ws_server *ws);
/* Shutdown in steps, so the group runs each step on every loop before the
 * next: refuse new sockets and sends; wait (until `deadline_ms`) for the
 * accepted sends to be answered; close every connection with 1001; wait
 * for them to go. */
void ws__shard_refuse(struct ws_server *ws);
void ws__shard_wait_sends(struct ws_server *ws, long long deadline_ms);
void ws__shard_close_all(struct ws_server *ws);
void ws__shard_wait_conns(struct ws_server *ws, long long deadline_ms);
/* Stops the workers and the service thread and closes the inbox (pushes
 * after that are freed); the struct stays valid for the siblings' pushes
 * until ws__shard_free, called once every loop is stopped. */
void ws__shard_stop(struct ws_server *ws);
void ws__shard_free(struct ws_server *ws);

/* ---- the loop side (conn.c) ------------------------------------------------ */

/* The lws protocol callback. */
int ws__callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                 size_t len);
/* Handles one inbox message on the loop (steals it). */
void ws__loop_handle(struct ws_server *ws, struct ws_msg *m);
/* Starts a batch (the inbox drain): frames queued from here on are written
 * by ws__loop_flush instead of from writeable callbacks. */
void ws__loop_batch_begin(struct ws_server *ws);
/* Ends the batch: writes what the batch queued. */
void ws__loop_flush(struct ws_server *ws);
/* Frees loop-owned state left after the context is destroyed. */
void ws__loop_cleanup(struct ws_server *ws);
/* Starts the periodic sweep (on the loop thread, before serving). */
void ws__sweep_start(struct ws_server *ws);

#endif
