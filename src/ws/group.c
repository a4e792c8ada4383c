/* group.c - the gateway as a whole: WS_LOOPS loops (server.c) behind the
 * public ws_server_* functions (chatli/adapters/ws_server.h).
 *
 * Each loop is a complete single-threaded gateway of its own: an lws
 * context with its service thread, inbox, connections, indexes, output
 * batching, sweep and workers.  The group adds only what spans them:
 *   - placement: a new socket goes to the loop with the fewest
 *     connections (counting sockets queued for adoption, so a burst of
 *     connects spreads instead of landing where the count lagged), except
 *     a Socket.IO upgrade probe, which must join the polling session it
 *     names: its `sid=` starts with the session's connection id in hex,
 *     whose top byte is the loop (WS_CONN_LOOP).  Polling requests are
 *     routed by their sid the same way.
 *   - the bus: one subscriber per process (bus.h), so the group subscribes
 *     and gives every event to every loop, each its own copy (a buffer's
 *     refcount is loop-only); the loops then fan it out in parallel.  The
 *     gap listener (resync) and revocations take the same path.  An event
 *     for named users (message.new, typing, presence, ...) goes only to
 *     the loops that hold one of them (see on_bus_event).
 *   - the user registry (reg.c): presence, the per-user cap and the flood
 *     bucket, which the loops consult on their own (connect, disconnect,
 *     each flood-limited frame); the group only owns it.
 *   - shutdown: each step runs on every loop before the next, so the
 *     deadline is spent once, not once per loop.
 * Threads: ws_server_open / shutdown / close run on main; adopt on the
 * acceptor; poll on MHD workers; the bus callbacks on the publisher's
 * thread.  After open the group's fields are read-only (the rotation
 * counter is atomic), so none of these needs a lock here. */
#include "ws_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chatli/bus.h"
#include "chatli/config.h"
#include "chatli/log.h"
#include "chatli/metrics.h"

struct ws_gateway {
    struct bus *bus;
    bool subscribed, listening;
    int n;
    struct ws_server *loops[WS_LOOPS_MAX];
    struct ws_reg reg;
    atomic_uint rr;           /* where the search for the least loaded starts */
};

/* ---- placement ------------------------------------------------------------ */

static struct ws_server *least_loaded(struct ws_gateway *g)
{
    unsigned start = atomic_fetch_add(&g->rr, 1);
    struct ws_server *best = NULL;
    long best_load = 0;
    for (int k = 0; k < g->n; k++) {
        struct ws_server *ws = g->loops[(start + (unsigned)k) % (unsigned)g->n];
        long load = ws__shard_load(ws);
        if (!best || load < best_load) {
            best = ws;
            best_load = load;
        }
    }
    return best;
}

static int hexval(char ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* The loop a sid names (its first two hex digits are the top byte of the
 * session's connection id), or NULL when it names none. */
static struct ws_server *loop_of_sid(struct ws_gateway *g, const char *sid, size_t len)
{
    if (len < 2)
        return NULL;
    int hi = hexval(sid[0]), lo = hexval(sid[1]);
    if (hi < 0 || lo < 0 || hi * 16 + lo >= g->n)
        return NULL;
    return g->loops[hi * 16 + lo];
}

/* A Socket.IO upgrade probe's loop: the request line (already in the
 * socket: the acceptor peeked it before handing the fd over) is peeked
 * again for "sid=" in the query of /socket.io/.  NULL for anything else. */
static struct ws_server *probe_loop(struct ws_gateway *g, int fd)
{
    char line[1024];
    ssize_t n = recv(fd, line, sizeof line - 1, MSG_PEEK | MSG_DONTWAIT);
    if (n <= 0)
        return NULL;
    line[n] = '\0';
    char *eol = strpbrk(line, "\r\n");
    if (eol)
        *eol = '\0';
    static const char path[] = " /socket.io/?";
    char *q = strstr(line, path);
    if (!q)
        return NULL;
    q += sizeof path - 1;
    char *sp = strchr(q, ' ');
    if (sp)
        *sp = '\0';
    for (char *a = q; a; a = strchr(a, '&') ? strchr(a, '&') + 1 : NULL)
        if (strncmp(a, "sid=", 4) == 0)
            return loop_of_sid(g, a + 4, strcspn(a + 4, "&"));
    return NULL;
}

/* ---- the bus subscriber ----------------------------------------------------- */

/* One loop's copy of a bus event, or NULL on OOM. */
static struct ws_msg *event_msg(const struct ws_server *ws, const struct bus_event *ev,
                                size_t n_users)
{
    bool revoke = ev->revoked_token != NULL;
    struct ws_msg *m = ws__msg_new(revoke ? WS_M_REVOKE : WS_M_DELIVER, n_users);
    if (!m)
        return NULL;
    for (size_t i = 0; i < n_users; i++) {
        memcpy(m->users[i], ev->user_ids[i], OID_SIZE);
        m->users[i][OID_SIZE - 1] = '\0';
    }
    if (revoke) {
        memcpy(m->token_hash, ev->revoked_token, sizeof m->token_hash);
        return m;
    }
    m->scope = ev->scope;
    m->conn_id = ev->skip_conn;
    if (ws->order_on) /* the reorder buffer needs the chat and position */
        ws__frame_position(ev->frame, ev->len, m->chat, &m->seq);
    m->buf = ws__buf_new(ev->frame, ev->len,
                         ws__frame_is_ephemeral(ev->frame, ev->len) ? WS_BUF_EPHEMERAL : 0);
    if (!m->buf) {
        free(m);
        return NULL;
    }
    return m;
}

/* At most this many users are looked up to pick an event's loops; a
 * larger audience (a big group chat) goes to every loop. */
#define WS_ROUTE_MAX_USERS 64

/* The loops an event must reach, a bit per loop.  A delivery to named
 * users goes only to the loops where one of them has a READY connection
 * (the registry, one lock): a 1:1 message.new wakes the loops of its two
 * members, not every loop.  Measured with two loops before this: every
 * message woke both, and the closed loop ran 4-20% slower than with one
 * (docs/performance.md).  A connection that becomes READY on another loop
 * after the lookup misses only events committed before it was READY,
 * which its client's `sync` after `ready` reads from the store (as when
 * it connects a moment later).  With a shared bus every loop still gets
 * every positioned event: its reorder buffer (order.c) tracks each chat's
 * positions and would hold the next event for a skipped one.  A chat.new
 * also goes everywhere: each loop tells its own connections of the chat's
 * members about the recipients' presence (conn.c "co-member presence"),
 * and those members need not be among the recipients (a member added). */
static uint64_t event_loops(struct ws_gateway *g, const struct bus_event *ev, size_t n_users)
{
    uint64_t all = g->n >= 64 ? UINT64_MAX : ((uint64_t)1 << g->n) - 1;
    if (g->n == 1 || ev->revoked_token || ev->scope != BUS_TO_USERS ||
        n_users > WS_ROUTE_MAX_USERS || g->loops[0]->order_on ||
        ws__frame_is_chat_new(ev->frame, ev->len))
        return all;
    return ws__reg_loops_of(&g->reg, ev->user_ids, n_users) & all;
}

/* Called on the publishing thread (an MHD worker, a ws worker, the store's
 * writer): one inbox message per loop that must see it, each with its own
 * copy of the frame; the loops only add references to their copy. */
static void on_bus_event(void *arg, const struct bus_event *ev)
{
    struct ws_gateway *g = arg;
    bool revoke = ev->revoked_token != NULL;
    size_t n_users = ev->scope == BUS_TO_USERS || revoke ? ev->n_users : 0;
    if ((n_users && !ev->user_ids) || (!revoke && !ev->frame))
        return;
    uint64_t loops = event_loops(g, ev, n_users);
    for (int i = 0; i < g->n; i++) {
        if (!(loops >> i & 1))
            continue;
        struct ws_msg *m = event_msg(g->loops[i], ev, n_users);
        if (!m) {
            log_error("ws: out of memory copying a bus event; clients recover with sync");
            metrics_error("internal");
            continue;
        }
        ws__inbox_push(g->loops[i], m);
    }
}

/* ---- resync after a bus gap (CONTRACT v1.2) ---------------------------- */

static const char resync_frame[] = "{\"type\":\"resync\"}";

/* The bus's subscriber thread: events of other instances may have been lost
 * (Redis was down, or another instance dropped what it could not publish).
 * Any authenticated connection may have missed frames, and the gateway does
 * not know whose, so every one is told, on every loop; clients answer with
 * `sync`, which reads the store, where every acked message is.  Catching
 * them up here instead would mean a store read per connection and chat on
 * this thread, which must not block; the client knows its last seq per
 * chat, the server does not.  The frame goes through each inbox as a
 * delivery to everyone (never ephemeral: it must not be dropped under
 * backpressure), so it is queued behind what arrived before the gap and
 * ahead of what the bus delivers after it. */
static void on_bus_gap(void *arg)
{
    struct ws_gateway *g = arg;
    for (int i = 0; i < g->n; i++) {
        struct ws_msg *m = ws__msg_new(WS_M_DELIVER, 0);
        if (m)
            m->buf = ws__buf_new(resync_frame, sizeof resync_frame - 1, 0);
        if (!m || !m->buf) {
            log_error("ws: out of memory queueing resync; clients recover when they reconnect");
            metrics_error("internal");
            if (m)
                ws__msg_free(g->loops[i], m);
            continue;
        }
        m->scope = BUS_TO_ALL;
        ws__inbox_push(g->loops[i], m);
    }
}

/* ---- metrics ------------------------------------------------------------------- */

/* chatli_ws_loop_connections{loop="i"}: where the connections are. */
static bool loop_connections(void *arg, int i, double *value)
{
    struct ws_gateway *g = arg;
    if (i >= g->n)
        return false;
    *value = (double)atomic_load(&g->loops[i]->n_conns_approx);
    return true;
}

/* ---- public API ------------------------------------------------------- */

int ws_server_open(const struct config *cfg, struct core *core, struct bus *bus,
                   struct cache *cache, struct ws_gateway **out, struct chat_err *err)
{
    *out = NULL;
    struct ws_gateway *g = calloc(1, sizeof *g);
    if (!g)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "ws: out of memory");
    g->bus = bus;
    int n = cfg && cfg->ws_loops > 0 ? cfg->ws_loops : 1;
    if (n > WS_LOOPS_MAX)
        n = WS_LOOPS_MAX;
    atomic_init(&g->rr, 0);
    if (ws__reg_init(&g->reg) < 0) {
        chat_err_set(err, CHAT_E_INTERNAL, NULL, "ws: out of memory");
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        if (ws__shard_open(cfg, core, bus, cache, &g->reg, g->loops, n, i, &g->loops[i], err) != 0)
            goto fail;
        g->n = i + 1;
    }
    struct bus_listener gap_listener = {.on_gap = on_bus_gap, .arg = g};
    if (bus_listen(bus, &gap_listener, err) != 0)
        goto fail;
    g->listening = true;
    bus_subscribe(bus, on_bus_event, g);
    g->subscribed = true;
    metrics_register_family("chatli_ws_loop_connections",
                            "Open WebSocket connections (and polling sessions) per event loop.",
                            "loop", loop_connections, g);
    log_info("ws: %d event loop(s), %d worker(s) each", n, g->loops[0]->n_workers);
    *out = g;
    return 0;

fail:
    ws_server_close(g);
    return err ? err->code : CHAT_E_INTERNAL;
}

void ws_server_adopt(struct ws_gateway *g, int fd)
{
    struct ws_server *ws = g->n > 1 ? probe_loop(g, fd) : NULL;
    ws__shard_adopt(ws ? ws : least_loaded(g), fd);
}

void ws_server_poll(struct ws_gateway *g, bool post, const char *sid, const char *body,
                    size_t len, sio_poll_done_fn done, void *arg)
{
    /* A sid that names no loop still goes to one, which answers it as an
     * unknown session (400), as with one loop. */
    struct ws_server *ws = sid ? loop_of_sid(g, sid, strlen(sid)) : NULL;
    ws__shard_poll(ws ? ws : sid ? g->loops[0] : least_loaded(g), post, sid, body, len, done,
                   arg);
}

void ws_server_poll_release(struct ws_gateway *g)
{
    for (int i = 0; i < g->n; i++)
        ws__shard_poll_release(g->loops[i]);
}

long ws_server_connections(struct ws_gateway *g)
{
    long n = 0;
    for (int i = 0; g && i < g->n; i++)
        n += atomic_load(&g->loops[i]->n_conns_approx);
    return n;
}

void ws_server_shutdown(struct ws_gateway *g, long long deadline_ms)
{
    if (!g)
        return;
    for (int i = 0; i < g->n; i++)
        ws__shard_refuse(g->loops[i]);
    /* The deadline is absolute: waiting on the loops one after the other
     * spends it once. */
    for (int i = 0; i < g->n; i++)
        ws__shard_wait_sends(g->loops[i], deadline_ms);
    for (int i = 0; i < g->n; i++)
        ws__shard_close_all(g->loops[i]);
    for (int i = 0; i < g->n; i++)
        ws__shard_wait_conns(g->loops[i], deadline_ms);
}

void ws_server_close(struct ws_gateway *g)
{
    if (!g)
        return;
    metrics_unregister_family("chatli_ws_loop_connections", g);
    if (g->subscribed)
        bus_subscribe(g->bus, NULL, NULL);
    if (g->listening)
        bus_unlisten(g->bus, g);
    for (int i = 0; i < g->n; i++)
        ws__shard_refuse(g->loops[i]);
    /* Every loop stops before any is freed: a loop closing its connections
     * may still push to a sibling's inbox (presence, a cap eviction); a
     * stopped loop's inbox frees what it gets. */
    for (int i = 0; i < g->n; i++)
        ws__shard_stop(g->loops[i]);
    for (int i = 0; i < g->n; i++)
        ws__shard_free(g->loops[i]);
    ws__reg_cleanup(&g->reg);
    free(g);
}
