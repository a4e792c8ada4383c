/* conn.c - the loop side of the gateway: a connection's life from upgrade
 * to close, frames in, frames out, and every inbox message.
 *
 * Everything here runs on the lws service thread and never blocks: work
 * that needs core becomes a job for a worker.  A connection runs one job at
 * a time, in the order its frames arrived (so two message.send frames from
 * one client reach the store's writer in order), and the results come back
 * as inbox messages.
 *
 * Closing: conn_close() only marks the connection, frees what it no longer
 * needs and asks lws for a writeable callback, where the close frame goes
 * out (lws_close_reason + return -1).  A peer that does not read would never
 * make us writeable, so a timeout kills the socket after WS_CLOSE_GRACE_S.
 * The connection leaves the indexes only in LWS_CALLBACK_CLOSED, so a close
 * requested while iterating a user's connections (a slow reader cut off
 * during a delivery) never changes the list being walked.
 *
 * Presence: a user's READY connections are counted in its `struct
 * ws_user`.  The first one broadcasts `online` to the co-members the token
 * check found; losing the last one runs a WS_J_OFFLINE job that looks the
 * co-members up again (chats may have changed meanwhile) and broadcasts
 * `offline` unless the user came back in between.  Without a shared cache
 * and bus that is all: presence is counted per instance.
 *
 * Several loops (group.c): "first" and "last" are the process's, not this
 * loop's: the registry (reg.c) counts a user's connections on every loop,
 * and a presence frame goes to the co-members on every loop (the other
 * loops get it through their inboxes).  "Online" below always means
 * online in the process (the registry); "here" means on this loop, which
 * is what a delivery to a local recipient needs.  The per-user cap and
 * the flood bucket are the registry's too, so they hold across loops.
 *
 * Cluster presence (REDIS_URL): the same local transitions (first
 * connection here, last one gone) become WS_J_PRESENCE jobs that record
 * them in Redis (cache presence_set, with a generation from pres_gen so a
 * late job never undoes a newer one); Redis answers whether the user's
 * cluster-wide state changed, and only then does the worker publish the
 * presence frame on the bus, to co-members on every instance.  ready.online
 * adds the users Redis says are online elsewhere.  A heartbeat job every
 * WS_PRESENCE_BEAT_MS keeps this instance alive in Redis and retires dead
 * ones (their users go offline for everyone).  When Redis does not answer,
 * the job comes back WS_PRES_FAILED and the loop does what the local mode
 * does; the user is remembered and set again after the next good beat, as
 * is everyone here when the beat finds our heartbeat had lapsed (Redis
 * restarted, or another instance retired us during an outage).
 *
 * Co-members (CONTRACT 6 v1.2): when chat.new passes through (a chat
 * created, or a member added), each local member gets the presence of the
 * members online that the chat is new to, and each local newcomer that of
 * every online member; online means connected here, or (cluster) online in
 * Redis, asked by a WS_J_COPRES job. */
#include "ws_internal.h"
#include "sio.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatli/bus.h"
#include "chatli/clock.h"
#include "chatli/log.h"
#include "chatli/metrics.h"

static struct ws_server *server_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

/* ---- sending ---------------------------------------------------------- */

static void conn_close(struct ws_server *ws, struct ws_conn *c, uint16_t code,
                       const char *reason, bool drain);
static struct ws_buf *sio_outbound(struct ws_conn *c, struct ws_buf *b);
static void poll_kick(struct ws_server *ws, struct ws_conn *c);
static void poll_authed(struct ws_server *ws, struct ws_conn *c);
static void probe_gone(struct ws_server *ws, struct ws_conn *c);
static void poll_closed(struct ws_server *ws, struct ws_conn *c);

/* Queues `b` (borrowed: the queue takes its own reference) on `c`.
 *
 * During a batch (the inbox drain) the connection joins ws->flush and is
 * written directly when the batch ends (ws__loop_flush), all its new frames
 * in one send().  Outside a batch (frames answering a received frame, the
 * sweep's pings) it asks lws for a writeable callback, as lws intends.
 * Writing from the drain instead of from LWS_CALLBACK_SERVER_WRITEABLE
 * spares two epoll_ctl() calls and an epoll_wait() wake-up per delivery
 * (measured on this box: 15.2 us of CPU per 300-byte send() on loopback,
 * 20.2 us with that POLLOUT round trip); redis writes its replies the
 * same way before it sleeps (beforeSleep, handleClientsWithPendingWrites)
 * and installs a write handler only when the socket is full.  lws keeps
 * what the kernel does not take (lws_write buffers the rest and asks for
 * POLLOUT itself), so a direct write never blocks and never loses bytes. */
static void conn_send(struct ws_server *ws, struct ws_conn *c, struct ws_buf *b)
{
    if (c->state == WS_C_CLOSING)
        return;
    struct ws_buf *sb = NULL; /* the Socket.IO form queued instead of `b` */
    if (c->sio && !(b->flags & WS_BUF_SIO)) {
        if (!(sb = sio_outbound(c, b))) {
            conn_close(ws, c, WS_CLOSE_INTERNAL, "out of memory", false);
            return;
        }
        b = sb;
    }
    switch (ws__outq_push(&c->out, b)) {
    case WS_OUTQ_QUEUED:
        if (ws->batching) {
            if (!c->flush_queued) {
                c->flush_queued = true;
                c->flush_next = ws->flush;
                ws->flush = c;
            }
        } else if (c->poll) {
            poll_kick(ws, c); /* a held GET takes it now */
        } else if (c->out.n == 1 && !c->flush_queued) {
            /* A non-empty queue already has a writeable callback coming
             * (the writer re-arms while frames remain) or a flush. */
            lws_callback_on_writable(c->wsi);
        }
        break;
    case WS_OUTQ_DROPPED:
        break;
    default:
        log_info("ws: connection %llu cannot keep up (%u frames, %zu bytes queued): closing",
                 (unsigned long long)c->id, c->out.n, c->out.bytes);
        metrics_error("ws_slow_consumer");
        conn_close(ws, c, WS_CLOSE_POLICY, "slow consumer", false);
        break;
    }
    ws__buf_unref(sb);
}

/* Writes queued frames, several per send(): up to WS_WRITE_BATCH bytes at a
 * time, again while the kernel takes everything, until the queue is empty
 * or WS_WRITE_BUDGET bytes went out.  A frame alone (or too big to
 * coalesce) is sent from its shared buffer, its header written into the
 * headroom (the same bytes for every recipient); several are copied into
 * ws->wbuf.  lws_write(LWS_WRITE_RAW) sends the bytes as they are and
 * buffers what the socket refuses.  -1 when the socket failed. */
static int conn_write(struct ws_server *ws, struct ws_conn *c)
{
    size_t budget = WS_WRITE_BUDGET;
    while (c->out.n > 0 && budget > 0) {
        struct ws_buf *b = ws__outq_peek(&c->out);
        unsigned char hdr[WS_FRAME_HDR_MAX];
        size_t total;
        int n;
        if (c->out.n == 1 || WS_FRAME_HDR_MAX + b->len > WS_WRITE_BATCH) {
            b = ws__outq_pop(&c->out);
            size_t hl = ws__frame_header(hdr, b->len);
            unsigned char *p = ws_buf_payload(b) - hl;
            memcpy(p, hdr, hl);
            total = hl + b->len;
            n = lws_write(c->wsi, p, total, LWS_WRITE_RAW);
            ws__buf_unref(b);
        } else {
            total = 0;
            while ((b = ws__outq_peek(&c->out)) &&
                   total + WS_FRAME_HDR_MAX + b->len <= WS_WRITE_BATCH) {
                b = ws__outq_pop(&c->out);
                total += ws__frame_header(ws->wbuf + total, b->len);
                memcpy(ws->wbuf + total, ws_buf_payload(b), b->len);
                total += b->len;
                ws__buf_unref(b);
            }
            n = lws_write(c->wsi, ws->wbuf, total, LWS_WRITE_RAW);
        }
        if (n < 0)
            return -1;
        budget = total >= budget ? 0 : budget - total;
        if (lws_partial_buffered(c->wsi))
            break; /* the socket is full: lws sends the rest on POLLOUT */
    }
    return 0;
}

/* Serializes and queues `frame` (stolen) on `c`. */
static void conn_send_json(struct ws_server *ws, struct ws_conn *c, json_t *frame, unsigned flags)
{
    struct ws_buf *b = ws__buf_from_json(frame, flags);
    json_decref(frame);
    if (!b) {
        conn_close(ws, c, WS_CLOSE_INTERNAL, "out of memory", false);
        return;
    }
    conn_send(ws, c, b);
    ws__buf_unref(b);
}

static void conn_send_error(struct ws_server *ws, struct ws_conn *c, int code, const char *msg,
                            const char *field, const char *client_id)
{
    conn_send_json(ws, c, ws__frame_error(code, msg, field, client_id), 0);
}

/* Stops or resumes reading the socket (see WS_CONN_MAX_JOBS). */
static void rx_pause(struct ws_conn *c, bool pause)
{
    if (c->rx_paused == pause)
        return;
    c->rx_paused = pause;
    if (c->wsi) /* a polling session has no socket: its POSTs are answered anyway */
        lws_rx_flow_control(c->wsi, pause ? 0 : 1);
}

/* ---- jobs ------------------------------------------------------------- */

static void jobs_free_waiting(struct ws_server *ws, struct ws_conn *c)
{
    struct ws_job *j = c->jobs_head;
    while (j) {
        struct ws_job *next = j->next;
        ws__job_free(ws, j);
        j = next;
    }
    c->jobs_head = c->jobs_tail = NULL;
}

/* The send-bound FIFO (WS_SENDS_IN_CORE_MAX): connections whose next job is
 * a send that found no room, served in arrival order as answers come back. */
static void send_wait(struct ws_server *ws, struct ws_conn *c)
{
    if (c->send_waiting)
        return;
    c->send_waiting = true;
    c->sw_next = NULL;
    c->sw_prev = ws->sw_tail;
    if (ws->sw_tail)
        ws->sw_tail->sw_next = c;
    else
        ws->sw_head = c;
    ws->sw_tail = c;
}

static void send_unwait(struct ws_server *ws, struct ws_conn *c)
{
    if (!c->send_waiting)
        return;
    if (c->sw_prev)
        c->sw_prev->sw_next = c->sw_next;
    else
        ws->sw_head = c->sw_next;
    if (c->sw_next)
        c->sw_next->sw_prev = c->sw_prev;
    else
        ws->sw_tail = c->sw_prev;
    c->sw_prev = c->sw_next = NULL;
    c->send_waiting = false;
}

static void conn_dispatch(struct ws_server *ws, struct ws_conn *c);

/* One dispatched send was answered (or refused before core took it): its
 * room goes to the connections waiting, oldest first. */
static void send_answered(struct ws_server *ws)
{
    if (ws->sends_in_core > 0)
        ws->sends_in_core--;
    while (ws->sw_head && ws->sends_in_core < WS_SENDS_IN_CORE_MAX) {
        struct ws_conn *c = ws->sw_head;
        send_unwait(ws, c);
        conn_dispatch(ws, c);
    }
}

/* Starts the connection's next job, unless one runs, the next sync page
 * must wait for the client to read what is queued, or the next send must
 * wait for room (WS_SENDS_IN_CORE_MAX). */
static void conn_dispatch(struct ws_server *ws, struct ws_conn *c)
{
    struct ws_job *j = c->jobs_head;
    if (c->job_running || !j || c->state == WS_C_CLOSING)
        return;
    if (j->kind == WS_J_SYNC &&
        !ws__outq_below(&c->out, WS_SYNC_RESUME_FRAMES, WS_SYNC_RESUME_BYTES)) {
        c->sync_parked = true;
        return;
    }
    c->sync_parked = false;
    if (j->kind == WS_J_SEND) {
        if (ws->sends_in_core >= WS_SENDS_IN_CORE_MAX) {
            send_wait(ws, c);
            return;
        }
        ws->sends_in_core++;
    }
    c->jobs_head = j->next;
    if (!c->jobs_head)
        c->jobs_tail = NULL;
    j->next = NULL;
    c->job_running = true;
    ws__job_submit(ws, j);
}

static void conn_enqueue_job(struct ws_server *ws, struct ws_conn *c, struct ws_job *j, bool front)
{
    if (front) {
        j->next = c->jobs_head;
        c->jobs_head = j;
        if (!c->jobs_tail)
            c->jobs_tail = j;
    } else {
        j->next = NULL;
        if (c->jobs_tail)
            c->jobs_tail->next = j;
        else
            c->jobs_head = j;
        c->jobs_tail = j;
    }
    conn_dispatch(ws, c);
}

/* ---- presence and users ------------------------------------------------ */

static json_t *presence_frame(const char *user_id, bool online)
{
    /* "type" first: ws__frame_is_ephemeral recognises it by that prefix. */
    return json_pack("{s:s, s:s, s:b}", "type", "presence", "userId", user_id, "online", online);
}

/* Queues the presence of `user_id` on the READY connections of `co`:
 * here at once, on the other loops as a delivery through their inboxes
 * (each its own copy of the frame: buffers are loop-owned). */
static void presence_broadcast(struct ws_server *ws, const char *user_id, bool online,
                               char (*co)[OID_SIZE], size_t n_co)
{
    if (n_co == 0)
        return;
    json_t *f = presence_frame(user_id, online);
    struct ws_buf *b = ws__buf_from_json(f, WS_BUF_EPHEMERAL);
    json_decref(f);
    if (!b)
        return;
    for (size_t i = 0; i < n_co; i++) {
        struct ws_user *u = ws__users_get(&ws->users, co[i]);
        for (struct ws_conn *c = u ? u->conns : NULL; c; c = c->u_next)
            if (c->state == WS_C_READY)
                conn_send(ws, c, b);
    }
    for (int k = 0; k < ws->n_loops; k++) {
        struct ws_server *o = ws->loops[k];
        if (!o || o == ws)
            continue;
        struct ws_msg *m = ws__msg_new(WS_M_DELIVER, n_co);
        if (m)
            m->buf = ws__buf_new((const char *)ws_buf_payload(b), b->len, WS_BUF_EPHEMERAL);
        if (!m || !m->buf) {
            free(m);
            log_error("ws: out of memory: a presence frame missed a loop");
            continue;
        }
        m->scope = BUS_TO_USERS;
        memcpy(m->users, co, n_co * OID_SIZE);
        ws__inbox_push(o, m);
    }
    ws__buf_unref(b);
}

/* ---- cluster presence ---------------------------------------------------- */

/* The user has a READY (or closing) connection on this loop. */
static bool user_here(struct ws_server *ws, const char *user_id)
{
    struct ws_user *u = ws__users_get(&ws->users, user_id);
    return u && u->n_conns > 0;
}

/* The user has one on some loop of this process. */
static bool user_online(struct ws_server *ws, const char *user_id)
{
    return ws__reg_online(ws->reg, user_id);
}

/* Remembers a user whose presence Redis missed (see the file comment). */
static void presence_retry_add(struct ws_server *ws, const char *user_id)
{
    if (!ws__reg_retry_add(ws->reg, user_id))
        log_error("ws: out of memory: a user's cluster presence may stay stale");
}

/* Sets `user_id`'s presence on this instance in Redis again, as it is now
 * (online: with `co`, stolen, to announce to). */
static void presence_submit(struct ws_server *ws, const char *user_id, char (*co)[OID_SIZE],
                            size_t n_co)
{
    struct ws_job *j = ws__job_new(WS_J_PRESENCE);
    if (!j) {
        free(co);
        presence_retry_add(ws, user_id);
        return;
    }
    memcpy(j->sess.user_id, user_id, OID_SIZE);
    uint64_t gen;
    j->online = ws__reg_presence(ws->reg, user_id, &gen);
    j->gen = (int64_t)gen;
    j->co = co;
    j->n_co = co ? n_co : 0;
    ws__job_submit(ws, j);
}

/* The user's first connection in the process is READY (finish_auth). */
static void presence_came_online(struct ws_server *ws, struct ws_user *u, struct ws_job *auth)
{
    if (!ws->cluster_presence) {
        presence_broadcast(ws, u->id, true, auth->co, auth->n_co);
        return;
    }
    char(*co)[OID_SIZE] = auth->co;
    size_t n_co = auth->n_co;
    auth->co = NULL; /* the presence job takes the contacts */
    auth->n_co = 0;
    presence_submit(ws, u->id, co, n_co);
}

static void beat_cb(lws_sorted_usec_list_t *sul)
{
    struct ws_server *ws = lws_container_of(sul, struct ws_server, beat);
    if (!ws->beat_running && !atomic_load(&ws->stopping)) {
        struct ws_job *j = ws__job_new(WS_J_BEAT);
        if (j) {
            ws->beat_running = true;
            ws__job_submit(ws, j);
        }
    }
    lws_sul_schedule(ws->ctx, 0, &ws->beat, beat_cb, (lws_usec_t)WS_PRESENCE_BEAT_MS * 1000);
}

/* A good beat (loop 0 runs them): users Redis missed, on any loop, are
 * set again; after our heartbeat had lapsed, every user of the process is. */
static void beat_done(struct ws_server *ws, struct ws_job *j)
{
    ws->beat_running = false;
    if (j->rc != 0)
        return;
    if (j->lost) {
        log_info("ws: this instance's presence heartbeat had lapsed: its users are set again");
        if (!ws__reg_retry_all(ws->reg))
            log_error("ws: out of memory: a user's cluster presence may stay stale");
    }
    size_t n;
    char(*retry)[OID_SIZE] = ws__reg_retry_take(ws->reg, &n);
    /* Set again as they are now; when that changes their cluster-wide
     * state, the worker looks their co-members up and announces it. */
    for (size_t i = 0; i < n; i++)
        presence_submit(ws, retry[i], NULL, 0);
    free(retry);
}

/* A WS_J_PRESENCE job came back. */
static void presence_done(struct ws_server *ws, struct ws_job *j)
{
    if (j->change != WS_PRES_FAILED)
        return;
    /* Redis did not answer: local presence, as without Redis. */
    bool here = user_online(ws, j->sess.user_id);
    if (j->online && here)
        presence_broadcast(ws, j->sess.user_id, true, j->co, j->n_co);
    else if (!j->online && !here)
        presence_broadcast(ws, j->sess.user_id, false, j->co, j->n_co);
    presence_retry_add(ws, j->sess.user_id);
}

/* ---- co-member presence (chat.new) ---------------------------------------- */

/* Sends `r` (a user on this loop) the presence of member `x` when x is
 * online (on any loop, or elsewhere in the cluster). */
static void copres_send(struct ws_server *ws, const char *r, const char *x, bool x_cluster_online)
{
    if (strcmp(r, x) == 0 || !(x_cluster_online || user_online(ws, x)))
        return;
    struct ws_user *u = ws__users_get(&ws->users, r);
    if (!u)
        return;
    json_t *f = presence_frame(x, true);
    struct ws_buf *b = ws__buf_from_json(f, WS_BUF_EPHEMERAL);
    json_decref(f);
    if (!b)
        return;
    for (struct ws_conn *c = u->conns; c; c = c->u_next)
        if (c->state == WS_C_READY)
            conn_send(ws, c, b);
    ws__buf_unref(b);
}

static bool in_ids(char (*ids)[OID_SIZE], size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i], id) == 0)
            return true;
    return false;
}

/* The chat's members (co) and those it is new to (ids): each local member
 * gets the online newcomers, each local newcomer every online member. */
static void copres_announce(struct ws_server *ws, struct ws_job *j)
{
    for (size_t r = 0; r < j->n_co; r++) {
        if (!user_here(ws, j->co[r]))
            continue;
        bool r_new = in_ids(j->ids, j->n_ids, j->co[r]);
        for (size_t x = 0; x < j->n_co; x++)
            if (r_new || in_ids(j->ids, j->n_ids, j->co[x]))
                copres_send(ws, j->co[r], j->co[x], j->co_online && j->co_online[x]);
    }
}

/* A chat.new delivery (m): when a member of the chat is connected here,
 * its co-members' presence follows (at once, or after a WS_J_COPRES job
 * asked Redis who is online elsewhere). */
static void copres_on_deliver(struct ws_server *ws, const struct ws_msg *m)
{
    if (m->scope != BUS_TO_USERS || m->n_users == 0 || !m->buf ||
        !ws__frame_is_chat_new((const char *)ws_buf_payload(m->buf), m->buf->len))
        return;
    json_t *root = json_loadb((const char *)ws_buf_payload(m->buf), m->buf->len, 0, NULL);
    json_t *members = json_object_get(json_object_get(root, "chat"), "members");
    size_t n = json_array_size(members);
    struct ws_job *j = NULL;
    bool any_here = false;
    if (n > 0)
        j = ws__job_new(WS_J_COPRES);
    if (j) {
        j->co = calloc(n, OID_SIZE);
        j->ids = calloc(m->n_users, OID_SIZE);
    }
    if (j && j->co && j->ids) {
        size_t i;
        json_t *a;
        json_array_foreach(members, i, a) {
            const char *id = json_string_value(json_object_get(a, "id"));
            if (!id || strlen(id) >= OID_SIZE)
                continue;
            strcpy(j->co[j->n_co++], id);
            any_here = any_here || user_here(ws, id);
        }
        memcpy(j->ids, m->users, m->n_users * OID_SIZE);
        j->n_ids = m->n_users;
    }
    json_decref(root);
    if (!j || !j->co || !j->ids || !any_here) {
        ws__job_free(ws, j);
        return;
    }
    if (ws->cluster_presence) {
        ws__job_submit(ws, j); /* back in job_done: copres_announce */
        return;
    }
    copres_announce(ws, j);
    ws__job_free(ws, j);
}

/* An AUTH job is done with: its worker registered the user here before
 * `ready` (presence_register); when no connection of the user became READY
 * after all (closed meanwhile, token revoked), that is undone. */
static void presence_auth_settled(struct ws_server *ws, struct ws_job *j)
{
    if (ws->cluster_presence && j->kind == WS_J_AUTH && j->rc == 0 && j->gen > 0 &&
        !user_online(ws, j->sess.user_id))
        presence_submit(ws, j->sess.user_id, NULL, 0);
}

/* Jobs with no connection: presence and heartbeat.  True when `j` was one
 * (and is freed). */
static bool presence_job_done(struct ws_server *ws, struct ws_job *j)
{
    switch (j->kind) {
    case WS_J_PRESENCE:
        presence_done(ws, j);
        break;
    case WS_J_BEAT:
        beat_done(ws, j);
        break;
    case WS_J_COPRES:
        copres_announce(ws, j);
        break;
    default:
        return false;
    }
    ws__job_free(ws, j);
    return true;
}

static void user_detach(struct ws_server *ws, struct ws_conn *c)
{
    struct ws_user *u = c->user;
    if (!u)
        return;
    if (c->u_prev)
        c->u_prev->u_next = c->u_next;
    else
        u->conns = c->u_next;
    if (c->u_next)
        c->u_next->u_prev = c->u_prev;
    c->u_prev = c->u_next = NULL;
    c->user = NULL;
    char id[OID_SIZE];
    memcpy(id, u->id, OID_SIZE);
    uint64_t gen = 0;
    /* The registry entry outlives every loop's ws_user of the user, so it
     * is still valid here; the last detach anywhere frees it. */
    bool last = ws__reg_detach(ws->reg, u->reg, c->id, &gen);
    if (--u->n_conns == 0)
        ws__users_del(&ws->users, u);
    if (!last || atomic_load(&ws->stopping))
        return;
    struct ws_job *j = ws__job_new(ws->cluster_presence ? WS_J_PRESENCE : WS_J_OFFLINE);
    if (!j) {
        log_error("ws: out of memory: presence offline for a user not sent");
        return;
    }
    memcpy(j->sess.user_id, id, OID_SIZE);
    j->gen = (int64_t)gen; /* PRESENCE: going offline */
    ws__job_submit(ws, j);
}

/* ---- closing -------------------------------------------------------------- */

/* Socket.IO: the packet a close starts with (see sio_close_packet). */
static bool sio_close_packet(struct ws_conn *c, uint16_t code, bool drain);

static void conn_close(struct ws_server *ws, struct ws_conn *c, uint16_t code,
                       const char *reason, bool drain)
{
    if (c->state == WS_C_CLOSING)
        return;
    if (c->sio)
        drain = sio_close_packet(c, code, drain);
    if (c->state == WS_C_READY && c->user) /* no longer counted by the cap */
        ws__reg_unready(ws->reg, c->user->reg, c->id);
    c->state = WS_C_CLOSING;
    c->close_code = code;
    c->close_reason = reason;
    c->drain_then_close = drain;
    if (!drain)
        ws__outq_clear(&c->out);
    send_unwait(ws, c);
    jobs_free_waiting(ws, c);
    for (unsigned i = 0; i < c->n_early; i++)
        ws__buf_unref(c->early[i]);
    free(c->early);
    c->early = NULL;
    c->n_early = 0;
    free(c->rx);
    c->rx = NULL;
    c->rx_len = c->rx_cap = 0;
    /* Read again, so the client's close reply (and anything before it) is
     * taken and the closing handshake can finish. */
    rx_pause(c, false);
    if (c->poll) {
        poll_closed(ws, c);
        return;
    }
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, WS_CLOSE_GRACE_S);
    lws_callback_on_writable(c->wsi);
}

/* LWS_CALLBACK_CLOSED: the connection leaves every index. */
static void conn_teardown(struct ws_server *ws, struct ws_conn *c)
{
    if (c->id == 0)
        return;
    c->state = WS_C_CLOSING;
    if (c->flush_queued) {
        /* Cannot happen today (nothing a drain calls makes lws close a
         * connection there and then), but lws frees `c` after this
         * callback, so it must not stay on the list. */
        struct ws_conn **pp = &ws->flush;
        while (*pp && *pp != c)
            pp = &(*pp)->flush_next;
        if (*pp)
            *pp = c->flush_next;
        c->flush_queued = false;
    }
    ws__conns_del(&ws->conns, c);
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        ws->all = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    user_detach(ws, c);
    send_unwait(ws, c);
    jobs_free_waiting(ws, c);
    for (unsigned i = 0; i < c->n_early; i++)
        ws__buf_unref(c->early[i]);
    free(c->early);
    free(c->rx);
    ws__outq_clear(&c->out);
    if (c->sio) {
        free(c->sio->pending);
        free(c->sio);
        c->sio = NULL;
    }
    if (c->probe_of)
        probe_gone(ws, c);
    c->id = 0;
    metrics_ws_connections_add(-1);
    atomic_fetch_sub(&ws->n_conns_approx, 1);
    pthread_mutex_lock(&ws->sd_lock);
    ws->n_conns--;
    pthread_cond_broadcast(&ws->sd_cond);
    pthread_mutex_unlock(&ws->sd_lock);
}

/* ---- auth ------------------------------------------------------------------- */

static void start_auth(struct ws_server *ws, struct ws_conn *c, const char *token, size_t len)
{
    if (len == 0 || len > WS_TOKEN_MAX) {
        conn_close(ws, c, WS_CLOSE_UNAUTHORIZED, "unauthorized", false);
        return;
    }
    struct ws_job *j = ws__job_new(WS_J_AUTH);
    char *t = j ? malloc(len + 1) : NULL;
    if (!t) {
        ws__job_free(ws, j);
        conn_close(ws, c, WS_CLOSE_INTERNAL, "out of memory", false);
        return;
    }
    memcpy(t, token, len);
    t[len] = '\0';
    j->conn_id = c->id;
    j->token = t;
    if (ws->cluster_presence) /* the worker registers the user before ready */
        j->gen = (int64_t)ws__reg_next_gen(ws->reg);
    c->state = WS_C_AUTHING;
    c->n_jobs++;
    conn_enqueue_job(ws, c, j, false);
}

static void on_frame(struct ws_server *ws, struct ws_conn *c, const char *data, size_t len);
static struct ws_conn *poll_find(struct ws_server *ws, const char *sid);
static void preset_close_reason(struct lws *wsi);
static void sio_connected(struct ws_server *ws, struct ws_conn *c);

/* The token check came back good: the connection joins its user, gets
 * `ready`, and the frames it sent meanwhile are handled in order. */
static bool recently_revoked(const struct ws_server *ws, const uint8_t hash[32])
{
    unsigned n = ws->n_revoked < WS_REVOKED_RING ? ws->n_revoked : WS_REVOKED_RING;
    for (unsigned i = 0; i < n; i++)
        if (memcmp(ws->revoked[i], hash, 32) == 0)
            return true;
    return false;
}

/* WS_MAX_CONNS_PER_USER: the registry named `id`, the user's oldest READY
 * connection in the process, to make room: closed with 4429 here, or by
 * its own loop (a CLOSE_CONN through that loop's inbox). */
static void conns_evict(struct ws_server *ws, uint64_t id)
{
    static const char why[] = "too many connections for this user";
    unsigned k = WS_CONN_LOOP(id);
    if (k == (unsigned)ws->index) {
        struct ws_conn *o = ws__conns_get(&ws->conns, id);
        if (o)
            conn_close(ws, o, WS_CLOSE_TOO_MANY, why, false);
        return;
    }
    struct ws_msg *m = k < (unsigned)ws->n_loops && ws->loops[k]
                           ? ws__msg_close(id, WS_CLOSE_TOO_MANY, why)
                           : NULL;
    if (m)
        ws__inbox_push(ws->loops[k], m);
    else
        log_error("ws: out of memory: a connection over WS_MAX_CONNS_PER_USER stays open");
}

static void finish_auth(struct ws_server *ws, struct ws_conn *c, struct ws_job *j)
{
    if (recently_revoked(ws, j->sess.token_hash)) {
        conn_close(ws, c, WS_CLOSE_UNAUTHORIZED, "token revoked", false);
        return;
    }
    struct ws_user *u = ws__users_get_or_add(&ws->users, j->sess.user_id);
    json_t *online = json_array();
    bool *co_on = j->n_co ? calloc(j->n_co, sizeof *co_on) : NULL;
    bool first = false;
    uint64_t gen = 0, evict = 0;
    struct ws_reg_user *ru =
        u && online && (co_on || j->n_co == 0)
            ? ws__reg_attach(ws->reg, j->sess.user_id, c->id, ws->max_conns_per_user, &first,
                             &gen, &evict)
            : NULL;
    if (!ru) {
        free(co_on);
        json_decref(online);
        if (u && u->n_conns == 0)
            ws__users_del(&ws->users, u);
        conn_close(ws, c, WS_CLOSE_INTERNAL, "out of memory", false);
        return;
    }
    u->reg = ru;
    memcpy(c->token_hash, j->sess.token_hash, sizeof c->token_hash);
    c->user = u;
    c->u_prev = NULL;
    c->u_next = u->conns;
    if (u->conns)
        u->conns->u_prev = c;
    u->conns = c;
    u->n_conns++;
    c->state = WS_C_READY;
    c->expires_s = (uint32_t)((j->sess.expires_ms + 999) / 1000);
    if (evict)
        conns_evict(ws, evict);

    /* Online: connected to some loop here, or (cluster) elsewhere. */
    ws__reg_online_many(ws->reg, j->co, j->n_co, co_on);
    for (size_t i = 0; i < j->n_co; i++)
        if (co_on[i] || (j->co_online && j->co_online[i]))
            json_array_append_new(online, json_string(j->co[i]));
    free(co_on);
    json_t *ready = json_pack("{s:s, s:O, s:o}", "type", "ready", "user", j->me, "online", online);
    if (!ready) {
        conn_close(ws, c, WS_CLOSE_INTERNAL, "out of memory", false);
        return;
    }
    if (c->sio)
        sio_connected(ws, c);
    conn_send_json(ws, c, ready, 0);
    if (first)
        presence_came_online(ws, u, j);

    struct ws_buf **early = c->early;
    unsigned n_early = c->n_early;
    c->early = NULL;
    c->n_early = 0;
    for (unsigned i = 0; i < n_early; i++) {
        if (c->state == WS_C_READY)
            on_frame(ws, c, (const char *)ws_buf_payload(early[i]), early[i]->len);
        ws__buf_unref(early[i]);
    }
    free(early);
    if (c->state == WS_C_READY && c->n_jobs < WS_CONN_MAX_JOBS)
        rx_pause(c, false);
}

/* ---- frames in ------------------------------------------------------------- */

/* A frame that arrived while the token check runs: kept (a few) and
 * handled right after `ready`. */
static void stash_early(struct ws_server *ws, struct ws_conn *c, const char *data, size_t len)
{
    if (c->n_early >= 2 * WS_EARLY_MAX) {
        conn_close(ws, c, WS_CLOSE_POLICY, "too many frames before ready", false);
        return;
    }
    if (!c->early) {
        c->early = calloc(2 * WS_EARLY_MAX, sizeof *c->early);
        if (!c->early) {
            conn_close(ws, c, WS_CLOSE_INTERNAL, "out of memory", false);
            return;
        }
    }
    struct ws_buf *b = ws__buf_new(data, len, 0);
    if (!b) {
        conn_close(ws, c, WS_CLOSE_INTERNAL, "out of memory", false);
        return;
    }
    c->early[c->n_early++] = b;
    if (c->n_early >= WS_EARLY_MAX)
        rx_pause(c, true);
}

static bool flood_ok(struct ws_server *ws, struct ws_conn *c)
{
    /* One bucket per user in the process (the registry's), whichever loops
     * its connections are on. */
    return ws__reg_take(ws->reg, c->user->reg, ws->rate_per_s, ws->rate_burst, clock_mono_ms());
}

static const int job_of_frame[] = {
    [WS_F_SEND] = WS_J_SEND,
    [WS_F_TYPING] = WS_J_TYPING,
    [WS_F_READ] = WS_J_READ,
    [WS_F_SYNC] = WS_J_SYNC,
};

/* message.send without a worker hop (ws__send_direct) when nothing of the
 * connection's is queued or running, so its sends still reach the store in
 * the order they arrived, and the gateway-wide bound has room.  Saves per
 * message the job, the worker's wake-up and the JOB_DONE trip back through
 * the inbox.  True when handled (taken by core, or refused with its error
 * frame); false when the frame goes the worker way. */
static bool send_direct(struct ws_server *ws, struct ws_conn *c, const struct ws_frame *f)
{
    if (c->job_running || c->jobs_head || ws->sends_in_core >= WS_SENDS_IN_CORE_MAX)
        return false;
    struct session s = {0};
    memcpy(s.user_id, c->user->id, OID_SIZE);
    memcpy(s.token_hash, c->token_hash, sizeof s.token_hash);
    struct chat_err err = {0};
    int rc = ws__send_direct(ws, c->id, &s, f, &err);
    if (rc == 0)
        return false;
    if (rc > 0)
        ws->sends_in_core++; /* given back by its settles_send answer */
    else
        conn_send_error(ws, c, rc, err.code == rc ? err.msg : NULL,
                        err.code == rc ? err.field : NULL, f->client_id);
    return true;
}

/* One complete text message from the client. */
static void on_frame(struct ws_server *ws, struct ws_conn *c, const char *data, size_t len)
{
    if (c->state == WS_C_AUTHING) {
        stash_early(ws, c, data, len);
        return;
    }
    struct ws_frame f;
    struct chat_err err = {0};
    int rc = ws__frame_parse(data, len, &f, &err);

    if (c->state == WS_C_NEW) {
        if (rc == 0 && f.type == WS_F_AUTH)
            start_auth(ws, c, f.token, strlen(f.token));
        else
            conn_close(ws, c, WS_CLOSE_UNAUTHORIZED, "the first frame must be auth", false);
        ws__frame_cleanup(&f);
        return;
    }
    if (c->state != WS_C_READY) {
        ws__frame_cleanup(&f);
        return;
    }
    if (rc < 0) {
        conn_send_error(ws, c, err.code, err.msg, err.field, f.client_id);
        ws__frame_cleanup(&f);
        return;
    }

    switch (f.type) {
    case WS_F_AUTH:
        conn_send_error(ws, c, CHAT_E_BAD_REQUEST, "already authenticated", NULL,
                        f.client_id);
        ws__frame_cleanup(&f);
        return;
    case WS_F_PING:
        conn_send_json(ws, c, json_pack("{s:s}", "type", "pong"), 0);
        ws__frame_cleanup(&f);
        return;
    case WS_F_SEND:
        if (atomic_load(&ws->stopping)) {
            conn_send_error(ws, c, CHAT_E_UNAVAILABLE, "the server is shutting down", NULL,
                            f.client_id);
            ws__frame_cleanup(&f);
            return;
        }
        /* fall through */
    case WS_F_TYPING:
    case WS_F_READ:
        if (!flood_ok(ws, c)) {
            conn_send_error(ws, c, CHAT_E_RATE_LIMITED, "too many frames, slow down", NULL,
                            f.client_id);
            ws__frame_cleanup(&f);
            return;
        }
        break;
    default:
        break;
    }

    /* A shared flood limit needs its round trip on a worker first. */
    if (f.type == WS_F_SEND && !ws->shared_flood && send_direct(ws, c, &f)) {
        ws__frame_cleanup(&f);
        return;
    }
    if (c->n_jobs >= 2 * WS_CONN_MAX_JOBS) {
        conn_send_error(ws, c, CHAT_E_RATE_LIMITED, "too many requests in flight", NULL,
                        f.client_id);
        ws__frame_cleanup(&f);
        return;
    }
    struct ws_job *j = ws__job_new(job_of_frame[f.type]);
    if (!j) {
        conn_send_error(ws, c, CHAT_E_INTERNAL, NULL, NULL, f.client_id);
        ws__frame_cleanup(&f);
        return;
    }
    j->conn_id = c->id;
    memcpy(j->sess.user_id, c->user->id, OID_SIZE);
    memcpy(j->sess.token_hash, c->token_hash, sizeof j->sess.token_hash);
    j->frame = f; /* the job owns the parsed frame now */
    if (j->kind == WS_J_SEND) {
        pthread_mutex_lock(&ws->sd_lock);
        ws->sends_pending++;
        pthread_mutex_unlock(&ws->sd_lock);
    }
    c->n_jobs++;
    if (c->n_jobs >= WS_CONN_MAX_JOBS)
        rx_pause(c, true);
    conn_enqueue_job(ws, c, j, false);
}

/* A complete text message must be UTF-8 (RFC 6455 8.1): else 1007.  Checked
 * here rather than with LWS_SERVER_OPTION_VALIDATE_UTF8 because lws 4.1.6
 * then also checks close reasons itself and drops the socket without a close
 * frame; on_peer_close does that check with the right code. */
static bool utf8_ok(struct ws_server *ws, struct ws_conn *c, const unsigned char *s, size_t n)
{
    if (ws__utf8_valid(s, n))
        return true;
    metrics_error("ws_protocol");
    conn_close(ws, c, WS_CLOSE_BAD_DATA, "invalid UTF-8", false);
    return false;
}

/* ---- Socket.IO (CONTRACT 7) ------------------------------------------------- */

/* A /socket.io/ connection is a gateway connection like any other: the
 * same states, jobs, flood bucket, presence and fan-out.  Only its bytes
 * differ, and they are translated at the edges: a client EVENT becomes
 * the plain frame it stands for and goes through on_frame; a plain frame
 * queued on it goes out as its EVENT form (sio_event_buf), made once per
 * buffer and shared by every Socket.IO recipient (ws_buf.alt), or as the
 * ACK a message.send with an ack id waits for.  Its liveness is Engine.IO's:
 * the server pings every SIO_PING_INTERVAL_MS and closes the connection
 * when no pong came SIO_PING_TIMEOUT_MS after. */

static int64_t sio_take_pending(struct ws_sio *s, const char *cid, int64_t ack_id)
{
    for (uint32_t i = 0; i < s->n_pending; i++) {
        struct sio_pending *p = &s->pending[i];
        if (ack_id >= 0 ? p->ack_id == ack_id : (cid[0] && strcmp(p->cid, cid) == 0)) {
            int64_t id = p->ack_id;
            memmove(p, p + 1, (s->n_pending - i - 1) * sizeof *p);
            s->n_pending--;
            return id;
        }
    }
    return ack_id;
}

/* The Socket.IO form of `b` (a new reference), NULL on OOM.  An answer to
 * a message.send that asked for an ack becomes that ACK: the frame being
 * handled (cur_ack: its errors are sent before on_frame returns) or the
 * oldest pending one with the answer's clientId. */
static struct ws_buf *sio_outbound(struct ws_conn *c, struct ws_buf *b)
{
    struct ws_sio *s = c->sio;
    const char *f = (const char *)ws_buf_payload(b);
    char cid[65];
    if ((s->cur_ack >= 0 || s->n_pending > 0) && sio_frame_is_answer(f, b->len, cid)) {
        int64_t id = sio_take_pending(s, cid, s->cur_ack);
        s->cur_ack = -1;
        if (id >= 0)
            return sio_ack_buf(id, f, b->len);
    }
    if (!b->alt)
        b->alt = sio_event_buf(f, b->len, b->flags & WS_BUF_EPHEMERAL);
    if (b->alt)
        ws__buf_ref(b->alt);
    return b->alt;
}

/* Queues a packet built by sio.c (stolen); OOM closes. */
static void sio_send(struct ws_server *ws, struct ws_conn *c, struct ws_buf *b)
{
    if (!b) {
        conn_close(ws, c, WS_CLOSE_INTERNAL, "out of memory", false);
        return;
    }
    conn_send(ws, c, b);
    ws__buf_unref(b);
}

/* A random Engine.IO / Socket.IO session id (hex). */
static void sio_sid(struct ws_server *ws, char out[33])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t r[16];
    if (lws_get_random(ws->ctx, r, sizeof r) != sizeof r)
        oid_new(out, clock_now_ms()); /* still unique: the fallback */
    else
        for (size_t i = 0; i < sizeof r; i++) {
            out[2 * i] = hex[r[i] >> 4];
            out[2 * i + 1] = hex[r[i] & 15];
        }
    out[32] = '\0';
}

/* The upgrade at /socket.io/: ?EIO=4&transport=websocket, then the open
 * packet.  Anything else (another protocol version, a polling session's
 * sid, which this transport cannot join) closes with 1008. */
static void sio_open(struct ws_server *ws, struct ws_conn *c)
{
    /* lws copies the whole "name=value" into each buffer. */
    char eio[32], tr[48], sid[96];
    const char *e = lws_get_urlarg_by_name(c->wsi, "EIO=", eio, sizeof eio);
    const char *t = lws_get_urlarg_by_name(c->wsi, "transport=", tr, sizeof tr);
    if (!e || strcmp(e, "4") != 0 || !t || strcmp(t, "websocket") != 0) {
        conn_close(ws, c, WS_CLOSE_POLICY, "Engine.IO 4 over transport=websocket only", false);
        return;
    }
    const char *sv = lws_get_urlarg_by_name(c->wsi, "sid=", sid, sizeof sid);
    if (sv) {
        /* The upgrade of a polling session: this socket is its probe. */
        struct ws_conn *s = poll_find(ws, sv);
        if (!s || s->state == WS_C_CLOSING || s->poll->upgrading) {
            conn_close(ws, c, WS_CLOSE_POLICY, "Session ID unknown", false);
            return;
        }
        c->probe_of = s->id;
        return;
    }
    c->sio = calloc(1, sizeof *c->sio);
    if (!c->sio) {
        conn_close(ws, c, WS_CLOSE_INTERNAL, "out of memory", false);
        return;
    }
    c->sio->cur_ack = -1;
    c->sio->ping_ms = clock_mono_ms();
    char id[33];
    sio_sid(ws, id);
    sio_send(ws, c, sio_open_buf(id, ws->sio_ping_interval_ms, ws->sio_ping_timeout_ms,
                                  WS_MAX_FRAME, false));
}

/* finish_auth, before `ready`: the CONNECT is accepted. */
static void sio_connected(struct ws_server *ws, struct ws_conn *c)
{
    if (c->poll)
        poll_authed(ws, c);
    char id[33];
    sio_sid(ws, id);
    sio_send(ws, c, sio_connect_buf(id));
}

/* conn_close: a refused CONNECT (4401 before ready) is told with
 * CONNECT_ERROR "unauthorized"; a READY connection the server ends for
 * good (token revoked or expired, 4401; the user's oldest past the cap,
 * 4429) gets a DISCONNECT, so the client does not reconnect into the same
 * refusal.  Shutdown (1001), liveness and protocol closes send nothing:
 * the client sees the transport close and reconnects, as with the
 * Socket.IO server.  Returns whether the queue must drain first. */
static bool sio_close_packet(struct ws_conn *c, uint16_t code, bool drain)
{
    struct ws_buf *b = NULL;
    if (code == WS_CLOSE_UNAUTHORIZED && c->state != WS_C_READY)
        b = sio_connect_error_buf("/", 1, "unauthorized");
    else if (code == WS_CLOSE_UNAUTHORIZED || code == WS_CLOSE_TOO_MANY)
        b = sio_raw_buf("41");
    if (!b)
        return drain;
    if (!drain)
        ws__outq_clear(&c->out);
    (void)ws__outq_push(&c->out, b); /* refused only on OOM: the close still goes */
    ws__buf_unref(b);
    return true;
}

/* The sweep's Engine.IO liveness: a ping every interval, and a close when
 * its pong is later than the timeout.  `ping` is the sweep's shared
 * packet, made on first use. */
static void sio_sweep(struct ws_server *ws, struct ws_conn *c, int64_t now_ms,
                      struct ws_buf **ping)
{
    struct ws_sio *s = c->sio;
    if (s->await_pong) {
        if (now_ms - s->ping_ms >= ws->sio_ping_timeout_ms)
            conn_close(ws, c, WS_CLOSE_GOING_AWAY, "ping timeout", false);
        return;
    }
    if (now_ms - s->ping_ms < ws->sio_ping_interval_ms)
        return;
    if (!*ping && !(*ping = sio_raw_buf("2")))
        return; /* OOM: tried again next sweep */
    s->ping_ms = now_ms;
    s->await_pong = true;
    conn_send(ws, c, *ping);
}

/* A binary frame: skipped while a refused binary packet's attachments
 * arrive; otherwise (false) it closes the connection like on /ws. */
static bool sio_skip_binary(struct ws_conn *c)
{
    if (c->sio->attach_skip == 0)
        return false;
    if (lws_is_final_fragment(c->wsi) && lws_remaining_packet_payload(c->wsi) == 0)
        c->sio->attach_skip--;
    return true;
}

/* An error the client must see: the `error` event once connected (the
 * same frame as on /ws), else a CONNECT_ERROR. */
static void sio_refuse(struct ws_server *ws, struct ws_conn *c, const char *why)
{
    if (c->state == WS_C_READY)
        conn_send_error(ws, c, CHAT_E_BAD_REQUEST, why, NULL, NULL);
    else
        sio_send(ws, c, sio_connect_error_buf("/", 1, why));
}

/* An EVENT: the plain frame it stands for goes through on_frame.  A
 * message.send with an ack id is remembered by its clientId until its
 * answer (sio_outbound) comes. */
static void sio_event(struct ws_server *ws, struct ws_conn *c, const struct sio_packet *p)
{
    struct ws_sio *s = c->sio;
    const char *why = NULL;
    json_t *f = sio_event_frame(p, &why);
    if (!f) {
        sio_refuse(ws, c, why ? why : "out of memory");
        return;
    }
    bool acked = p->ack_id >= 0 && strcmp(p->event, "message.send") == 0;
    if (acked) {
        const char *cid = json_string_value(json_object_get(f, "clientId"));
        if (s->n_pending >= SIO_PENDING_MAX ||
            (!s->pending && !(s->pending = calloc(SIO_PENDING_MAX, sizeof *s->pending)))) {
            s->cur_ack = p->ack_id;
            conn_send_error(ws, c, CHAT_E_RATE_LIMITED, "too many unanswered acks", NULL, cid);
            s->cur_ack = -1;
            json_decref(f);
            return;
        }
        struct sio_pending *e = &s->pending[s->n_pending++];
        e->ack_id = p->ack_id;
        e->cid[0] = '\0';
        if (cid && strlen(cid) < sizeof e->cid)
            memcpy(e->cid, cid, strlen(cid) + 1);
    }
    char *text = json_dumps(f, JSON_COMPACT);
    json_decref(f);
    if (!text) {
        conn_close(ws, c, WS_CLOSE_INTERNAL, "out of memory", false);
        return;
    }
    s->cur_ack = acked ? p->ack_id : -1;
    on_frame(ws, c, text, strlen(text));
    if (c->sio)
        c->sio->cur_ack = -1;
    free(text);
}

/* One complete text message on a /socket.io/ connection. */
static void sio_on_text(struct ws_server *ws, struct ws_conn *c, const char *data, size_t len)
{
    struct sio_packet p;
    const char *why = NULL;
    int rc = sio_parse(data, len, &p, &why);
    if (rc == SIO_E_BINARY) {
        c->sio->attach_skip = p.attachments;
        sio_refuse(ws, c, why);
    } else if (rc == SIO_E_NAMESPACE) {
        if (p.kind == SIO_K_CONNECT)
            sio_send(ws, c, sio_connect_error_buf(p.nsp, p.nsp_len, why));
        /* other packets of a namespace never connected are ignored */
    } else if (rc < 0) {
        metrics_error("ws_protocol");
        if (c->state == WS_C_READY)
            sio_refuse(ws, c, why);
        else
            conn_close(ws, c, WS_CLOSE_POLICY, "invalid Socket.IO packet", false);
    } else {
        switch (p.kind) {
        case SIO_K_PONG:
            c->sio->await_pong = false;
            break;
        case SIO_K_PING:
            sio_send(ws, c, sio_raw_buf(p.probe ? "3probe" : "3"));
            break;
        case SIO_K_CLOSE:
        case SIO_K_DISCONNECT:
            conn_close(ws, c, 1000, "client disconnected", true);
            break;
        case SIO_K_CONNECT:
            if (c->state == WS_C_NEW) {
                const char *token = sio_connect_token(&p);
                if (token)
                    start_auth(ws, c, token, strlen(token));
                else
                    conn_close(ws, c, WS_CLOSE_UNAUTHORIZED, "unauthorized", false);
            }
            break;
        case SIO_K_EVENT:
            if (c->state != WS_C_NEW) /* before CONNECT: not in the namespace */
                sio_event(ws, c, &p);
            break;
        default: /* UPGRADE, NOOP, a client's ACK: nothing to do */
            break;
        }
    }
    sio_packet_cleanup(&p);
}

/* ---- Socket.IO over HTTP long-polling --------------------------------------- */

/* A polling session (Engine.IO transport "polling", CONTRACT 7) is a
 * gateway connection like the others - the same states, jobs, flood
 * bucket, presence and fan-out, in the same indexes - with no lws wsi: it
 * is allocated here (ws_conn.poll set, wsi NULL) and freed by the sweep
 * once closed.  Its requests come from http (routes_sio.c) as WS_M_POLL
 * inbox messages; each carries a `done` callback called exactly once on
 * this thread.  A POST's packets go through sio_on_text one by one and are
 * answered "ok" at once; a GET is held (its MHD connection suspended) until
 * the queue has a packet - conn_send kicks it, or the flush at the end of
 * the drain - and is then answered with the queued packets joined by
 * \x1e.  The server's pings (sio_sweep) go the same way, so a held GET
 * never waits longer than the ping interval.  Closing answers the held GET
 * with what is queued and the close packet "1" (or keeps them for the next
 * GET, WS_CLOSE_GRACE_S at most); the sweep frees the session after. */

static const char poll_text_type[] = "text/plain; charset=UTF-8";
static const char poll_json_type[] = "application/json";

/* Answers a request with a fixed text (copied). */
static void poll_reply(sio_poll_done_fn done, void *arg, int status, const char *type,
                       const char *text)
{
    char *b = strdup(text);
    done(arg, b ? status : 503, type, b, b ? strlen(b) : 0);
}

/* Engine.IO's error answer: 400 {"code","message"}. */
static void poll_error(sio_poll_done_fn done, void *arg, int code, const char *msg)
{
    char body[96];
    snprintf(body, sizeof body, "{\"code\":%d,\"message\":\"%s\"}", code, msg);
    poll_reply(done, arg, 400, poll_json_type, body);
}

/* The session `sid` names, or NULL. */
static struct ws_conn *poll_find(struct ws_server *ws, const char *sid)
{
    if (strlen(sid) != 32)
        return NULL;
    uint64_t id = 0;
    for (int i = 0; i < 16; i++) {
        char ch = sid[i];
        int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (v < 0)
            return NULL;
        id = id << 4 | (uint64_t)v;
    }
    struct ws_conn *c = ws__conns_get(&ws->conns, id);
    if (!c || !c->poll || sodium_memcmp(c->poll->sid, sid, 32) != 0)
        return NULL;
    return c;
}

/* Answers the held GET with the queued packets (at most
 * SIO_POLL_MAX_ANSWER bytes, always at least one), and the close packet
 * when `close` (then everything queued goes). */
static void poll_answer(struct ws_server *ws, struct ws_conn *c, bool close)
{
    struct ws_poll *p = c->poll;
    size_t total = 0;
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->out.n; i++) {
        struct ws_buf *b = c->out.v[(c->out.head + i) % c->out.cap];
        if (n > 0 && !close && total + 1 + b->len > SIO_POLL_MAX_ANSWER)
            break;
        total += (n > 0) + b->len;
        n++;
    }
    char *body = malloc(total + 3);
    if (!body) {
        sio_poll_done_fn done = p->get_done;
        p->get_done = NULL;
        done(p->get_arg, 503, poll_text_type, NULL, 0);
        return;
    }
    size_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct ws_buf *b = ws__outq_pop(&c->out);
        if (i > 0)
            body[off++] = '\x1e';
        memcpy(body + off, ws_buf_payload(b), b->len);
        off += b->len;
        ws__buf_unref(b);
    }
    if (close) {
        ws__outq_clear(&c->out);
        if (off > 0)
            body[off++] = '\x1e';
        body[off++] = '1';
        p->close_sent = true;
    } else if (off == 0) {
        body[off++] = '6'; /* noop: nothing to say, the GET is given back */
    }
    body[off] = '\0';
    sio_poll_done_fn done = p->get_done;
    p->get_done = NULL;
    done(p->get_arg, 200, poll_text_type, body, off);
    if (c->sync_parked && c->state != WS_C_CLOSING)
        conn_dispatch(ws, c);
}

/* Something was queued (or an upgrade began): the held GET takes it. */
static void poll_kick(struct ws_server *ws, struct ws_conn *c)
{
    if (c->poll->get_done && c->state != WS_C_CLOSING &&
        (c->out.n > 0 || c->poll->upgrading))
        poll_answer(ws, c, false);
}

/* conn_close of a polling session: the close packet goes with the held
 * GET, or with the next one (the sweep frees it after the grace). */
static void poll_closed(struct ws_server *ws, struct ws_conn *c)
{
    c->poll->closed_ms = clock_mono_ms();
    if (c->poll->get_done)
        poll_answer(ws, c, true);
}

/* SIO_POLL_MAX_UNAUTH: a session stops counting once connected (or gone). */
static void poll_authed(struct ws_server *ws, struct ws_conn *c)
{
    if (c->poll->unauth) {
        c->poll->unauth = false;
        atomic_fetch_sub(&ws->reg->poll_unauth, 1);
    }
}

/* Frees a polling session: out of every index, its held GET answered. */
static void poll_destroy(struct ws_server *ws, struct ws_conn *c)
{
    struct ws_poll *p = c->poll;
    poll_authed(ws, c);
    if (p->get_done) {
        sio_poll_done_fn done = p->get_done;
        p->get_done = NULL;
        poll_reply(done, p->get_arg, 200, poll_text_type, "1");
    }
    conn_teardown(ws, c);
    free(p);
    free(c);
}

/* The sweep: frees a closed session once its close packet went out or
 * the grace ran out (true: `c` is gone). */
static bool poll_sweep(struct ws_server *ws, struct ws_conn *c, int64_t now_ms)
{
    if (c->state != WS_C_CLOSING)
        return false;
    if (!c->poll->close_sent && now_ms - c->poll->closed_ms < WS_CLOSE_GRACE_S * 1000)
        return false;
    poll_destroy(ws, c);
    return true;
}

/* Enters the new connection `c` (a WebSocket or a polling session) in the
 * id index and the list of all connections, and counts it. */
static void conn_register(struct ws_server *ws, struct ws_conn *c)
{
    ws__conns_put(&ws->conns, c);
    c->all_next = ws->all;
    if (ws->all)
        ws->all->all_prev = c;
    ws->all = c;
    metrics_ws_connections_add(1);
    atomic_fetch_add(&ws->n_conns_approx, 1);
    pthread_mutex_lock(&ws->sd_lock);
    ws->n_conns++;
    pthread_mutex_unlock(&ws->sd_lock);
}

/* GET without sid: a new session and its open packet. */
static void poll_handshake(struct ws_server *ws, struct ws_msg *m)
{
    if (atomic_load(&ws->stopping) || ws->poll_released) {
        poll_reply(m->done, m->done_arg, 503, poll_json_type,
                   "{\"code\":3,\"message\":\"Bad request\"}");
        return;
    }
    /* Counted over every loop (the registry's), so the bound is the
     * process's whatever the number of loops. */
    if (atomic_fetch_add(&ws->reg->poll_unauth, 1) >= SIO_POLL_MAX_UNAUTH) {
        atomic_fetch_sub(&ws->reg->poll_unauth, 1);
        /* A handshake costs no socket: without this bound one client could
         * open sessions as fast as it can send requests. */
        metrics_error("ws_poll_busy");
        poll_reply(m->done, m->done_arg, 503, poll_json_type,
                   "{\"code\":3,\"message\":\"Too many sessions waiting to connect\"}");
        return;
    }
    struct ws_conn *c = calloc(1, sizeof *c);
    struct ws_poll *p = c ? calloc(1, sizeof *p) : NULL;
    struct ws_sio *sio = p ? calloc(1, sizeof *sio) : NULL;
    if (!sio) {
        free(p);
        free(c);
        atomic_fetch_sub(&ws->reg->poll_unauth, 1);
        poll_reply(m->done, m->done_arg, 503, poll_json_type,
                   "{\"code\":3,\"message\":\"Bad request\"}");
        return;
    }
    c->id = ws->next_conn_id++;
    c->born_s = c->rx_s = ws__now_s();
    c->is_sio = true;
    c->poll = p;
    c->sio = sio;
    sio->cur_ack = -1;
    sio->ping_ms = clock_mono_ms();
    char rnd[33];
    sio_sid(ws, rnd);
    snprintf(p->sid, sizeof p->sid, "%016llx%.16s", (unsigned long long)c->id, rnd);
    struct ws_buf *open = sio_open_buf(p->sid, ws->sio_ping_interval_ms, ws->sio_ping_timeout_ms,
                                       SIO_POLL_MAX_PAYLOAD, true);
    char *body = open ? strndup((const char *)ws_buf_payload(open), open->len) : NULL;
    ws__buf_unref(open);
    if (!body) {
        free(sio);
        free(p);
        free(c);
        atomic_fetch_sub(&ws->reg->poll_unauth, 1);
        m->done(m->done_arg, 503, poll_text_type, NULL, 0);
        return;
    }
    conn_register(ws, c);
    p->unauth = true;
    m->done(m->done_arg, 200, poll_text_type, body, strlen(body));
}

/* A POST: its \x1e-separated packets, in order.  A binary attachment
 * ("b" + base64) of a refused binary packet is skipped; any other is
 * refused like a binary frame on the WebSocket. */
static void poll_post(struct ws_server *ws, struct ws_conn *c, const char *body, size_t len)
{
    const char *end = body + len;
    const char *pk = body;
    while (c->state != WS_C_CLOSING) {
        const char *sep = memchr(pk, '\x1e', (size_t)(end - pk));
        const char *pe = sep ? sep : end;
        size_t n = (size_t)(pe - pk);
        if (n > 0 && pk[0] == 'b') {
            if (c->sio->attach_skip > 0) {
                c->sio->attach_skip--;
            } else {
                metrics_error("ws_protocol");
                conn_close(ws, c, WS_CLOSE_UNSUPPORTED, "binary frames are not supported", false);
            }
        } else if (!ws__utf8_valid((const unsigned char *)pk, n)) {
            metrics_error("ws_protocol");
            conn_close(ws, c, WS_CLOSE_BAD_DATA, "invalid UTF-8", false);
        } else {
            sio_on_text(ws, c, pk, n);
        }
        if (!sep)
            break;
        pk = sep + 1;
    }
}

/* One WS_M_POLL message: answers it through m->done (exactly once). */
static void poll_request(struct ws_server *ws, struct ws_msg *m)
{
    if (!m->has_sid) {
        if (m->post)
            poll_error(m->done, m->done_arg, 2, "Bad handshake method");
        else
            poll_handshake(ws, m);
        return;
    }
    struct ws_conn *c = poll_find(ws, m->sid);
    if (!c || (c->state == WS_C_CLOSING && c->poll->close_sent)) {
        poll_error(m->done, m->done_arg, 1, "Session ID unknown");
        return;
    }
    c->rx_s = ws__now_s();
    if (m->post) {
        if (c->state == WS_C_CLOSING) {
            poll_error(m->done, m->done_arg, 1, "Session ID unknown");
        } else if (m->body_len > SIO_POLL_MAX_PAYLOAD) {
            metrics_error("ws_protocol");
            conn_close(ws, c, WS_CLOSE_TOO_BIG, "payload too large", false);
            poll_reply(m->done, m->done_arg, 413, poll_json_type,
                       "{\"code\":3,\"message\":\"Payload too large\"}");
        } else {
            poll_post(ws, c, m->body, m->body_len);
            poll_reply(m->done, m->done_arg, 200, poll_text_type, "ok");
        }
        return;
    }
    if (c->poll->get_done) {
        /* Engine.IO allows one pending GET: a second one is an error that
         * ends the session (the first gets the close packet). */
        metrics_error("ws_protocol");
        poll_error(m->done, m->done_arg, 3, "Bad request");
        conn_close(ws, c, WS_CLOSE_POLICY, "overlapping GET", false);
        return;
    }
    c->poll->get_done = m->done;
    c->poll->get_arg = m->done_arg;
    if (c->state == WS_C_CLOSING)
        poll_answer(ws, c, true);
    else
        poll_kick(ws, c);
}

/* ---- the upgrade: a polling session moves onto a WebSocket ------------------ */

/* A WebSocket opened with the sid of a polling session is a probe: it
 * answers "2probe" with "3probe" (and gives the session's held GET back
 * with a noop, so the client can pause polling), and on "5" the session
 * moves onto it.  The move copies the session into the probe's struct
 * (lws owns that one, and frees it after LWS_CALLBACK_CLOSED) and puts
 * the copy in the session's place in every list it is on; the jobs,
 * pending acks and queued packets go along, and the jobs find it by its
 * id, which it keeps. */
static void poll_move(struct ws_server *ws, struct ws_conn *probe, struct ws_conn *s)
{
    struct lws *wsi = probe->wsi;
    if (s->poll->get_done) {
        sio_poll_done_fn done = s->poll->get_done;
        s->poll->get_done = NULL;
        poll_reply(done, s->poll->get_arg, 200, poll_text_type, "6");
    }
    poll_authed(ws, s);
    free(s->poll);
    s->poll = NULL;
    /* The probe leaves the indexes; it was a connection of its own. */
    conn_teardown(ws, probe);
    /* The session's place: the id table, the all list, its user's list,
     * the flush list and the send FIFO. */
    ws__conns_del(&ws->conns, s);
    memcpy(probe, s, sizeof *s);
    probe->wsi = wsi;
    probe->id_next = NULL;
    ws__conns_put(&ws->conns, probe);
    if (probe->all_prev)
        probe->all_prev->all_next = probe;
    else
        ws->all = probe;
    if (probe->all_next)
        probe->all_next->all_prev = probe;
    if (probe->user) {
        if (probe->u_prev)
            probe->u_prev->u_next = probe;
        else
            probe->user->conns = probe;
        if (probe->u_next)
            probe->u_next->u_prev = probe;
    }
    if (probe->flush_queued) {
        struct ws_conn **pp = &ws->flush;
        while (*pp && *pp != s)
            pp = &(*pp)->flush_next;
        if (*pp)
            *pp = probe;
    }
    if (probe->send_waiting) {
        if (probe->sw_prev)
            probe->sw_prev->sw_next = probe;
        else
            ws->sw_head = probe;
        if (probe->sw_next)
            probe->sw_next->sw_prev = probe;
        else
            ws->sw_tail = probe;
    }
    free(s); /* the probe's teardown above counted the two as one */
    preset_close_reason(wsi);
    if (probe->rx_paused)
        lws_rx_flow_control(wsi, 0);
    if (probe->out.n > 0 || probe->state == WS_C_CLOSING)
        lws_callback_on_writable(wsi);
    if (probe->state == WS_C_CLOSING)
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, WS_CLOSE_GRACE_S);
}

/* conn_teardown of a probe that did not move its session: the session
 * polls again (its GETs are held again instead of answered with noop). */
static void probe_gone(struct ws_server *ws, struct ws_conn *c)
{
    struct ws_conn *s = ws__conns_get(&ws->conns, c->probe_of);
    if (s && s->poll && s->poll->probe_id == c->id)
        s->poll->upgrading = false;
}

/* A text frame on a probe WebSocket. */
static void probe_text(struct ws_server *ws, struct ws_conn *c, const char *data, size_t len)
{
    struct ws_conn *s = ws__conns_get(&ws->conns, c->probe_of);
    if (!s || !s->poll || s->state == WS_C_CLOSING) {
        conn_close(ws, c, WS_CLOSE_POLICY, "Session ID unknown", false);
        return;
    }
    if (len == 6 && memcmp(data, "2probe", 6) == 0) {
        sio_send(ws, c, sio_raw_buf("3probe"));
        s->poll->upgrading = true;
        s->poll->probe_id = c->id;
        poll_kick(ws, s);
    } else if (len == 1 && data[0] == '5' && s->poll->upgrading) {
        poll_move(ws, c, s);
    } else {
        metrics_error("ws_protocol");
        conn_close(ws, c, WS_CLOSE_POLICY, "invalid upgrade", false);
    }
}

/* A complete text message: Engine.IO on /socket.io/, a frame on /ws. */
static void on_text(struct ws_server *ws, struct ws_conn *c, const char *data, size_t len)
{
    if (c->sio)
        sio_on_text(ws, c, data, len);
    else if (c->probe_of)
        probe_text(ws, c, data, len);
    else if (!c->is_sio)
        on_frame(ws, c, data, len);
}

/* LWS_CALLBACK_RECEIVE: lws hands us at most WS_RX_BUFFER bytes at a time;
 * a message larger than that, or sent in fragments, is accumulated. */
static void on_receive(struct ws_server *ws, struct ws_conn *c, const char *in, size_t len)
{
    if (c->state == WS_C_CLOSING)
        return;
    c->rx_s = ws__now_s();
    c->pinged = false;
    if (lws_frame_is_binary(c->wsi)) {
        if (c->sio && sio_skip_binary(c))
            return;
        metrics_error("ws_protocol");
        conn_close(ws, c, WS_CLOSE_UNSUPPORTED, "binary frames are not supported", false);
        return;
    }
    size_t remaining = lws_remaining_packet_payload(c->wsi);
    bool complete = lws_is_final_fragment(c->wsi) && remaining == 0;
    if (lws_is_first_fragment(c->wsi))
        c->rx_len = 0;
    if (complete && c->rx_len == 0) {
        /* the common case: no copy */
        if (utf8_ok(ws, c, (const unsigned char *)in, len))
            on_text(ws, c, in, len);
        return;
    }
    if (c->rx_len + len + remaining > WS_MAX_FRAME) {
        metrics_error("ws_protocol");
        conn_close(ws, c, WS_CLOSE_TOO_BIG, "frame larger than 64 KiB", false);
        return;
    }
    if (c->rx_len + len > c->rx_cap) {
        size_t cap = c->rx_cap ? c->rx_cap : 4096;
        while (cap < c->rx_len + len + remaining && cap < WS_MAX_FRAME)
            cap *= 2;
        if (cap > WS_MAX_FRAME)
            cap = WS_MAX_FRAME;
        char *rx = realloc(c->rx, cap);
        if (!rx) {
            conn_close(ws, c, WS_CLOSE_INTERNAL, "out of memory", false);
            return;
        }
        c->rx = rx;
        c->rx_cap = cap;
    }
    memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    if (complete) {
        char *rx = c->rx;
        size_t n = c->rx_len;
        c->rx = NULL;
        c->rx_len = c->rx_cap = 0;
        if (utf8_ok(ws, c, (const unsigned char *)rx, n))
            on_text(ws, c, rx, n);
        free(rx);
    }
}

/* ---- connection life cycle -------------------------------------------------- */

static int on_filter(struct lws *wsi)
{
    char uri[32];
    int n = lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI);
    if (n > 0 && (strcmp(uri, "/ws") == 0 || strcmp(uri, "/socket.io/") == 0))
        return 0;
    return 1; /* lws refuses the upgrade and drops the socket */
}

/* lws 4.1.6 drops a connection on some protocol errors it finds itself (a
 * control frame over 125 bytes) without a close frame, unless a close
 * reason is already set: so the one RFC 6455 asks for is preset, and every
 * close we start sets its own over it (on_writeable).  lws keeps the reason
 * in the buffer it also stashes a client ping's payload in for the pong, so
 * it is set again on every writeable callback, which lws runs right after
 * that pong went out (POLLOUT stays on).  Left open: when lws reads a ping
 * and then, before that callback, an oversized control frame or the
 * client's EOF, its close carries the ping's bytes as the payload. */
static void preset_close_reason(struct lws *wsi)
{
    static const char r[] = "protocol error";
    lws_close_reason(wsi, (enum lws_close_status)WS_CLOSE_PROTOCOL, (unsigned char *)r,
                     sizeof r - 1);
}

static void on_established(struct ws_server *ws, struct ws_conn *c, struct lws *wsi)
{
    memset(c, 0, sizeof *c);
    c->wsi = wsi;
    preset_close_reason(wsi);
    c->id = ws->next_conn_id++;
    c->born_s = c->rx_s = ws__now_s();
    conn_register(ws, c);

    if (atomic_load(&ws->stopping)) {
        conn_close(ws, c, WS_CLOSE_GOING_AWAY, "server shutting down", false);
        return;
    }
    char uri[32];
    if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) > 0 &&
        strcmp(uri, "/socket.io/") == 0) {
        c->is_sio = true;
        sio_open(ws, c);
        return;
    }

    /* ?token=...: lws has URL-decoded the arguments.  A query string too
     * long to hold a real token is a bad token. */
    int args = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
    if (args <= 0)
        return;
    char buf[WS_TOKEN_MAX + 16];
    if (args >= (int)sizeof buf) {
        conn_close(ws, c, WS_CLOSE_UNAUTHORIZED, "unauthorized", false);
        return;
    }
    const char *token = lws_get_urlarg_by_name(wsi, "token=", buf, sizeof buf);
    if (token)
        start_auth(ws, c, token, strlen(token));
}

/* LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: lws 4.1.6 answers codes below 3000
 * that a peer may not send with 1002 itself, but echoes 5000 or 65535, a
 * 1-byte payload and any reason.  A bad close is answered with the code of
 * RFC 6455 (1002, or 1007 for a reason that is not UTF-8); returning -1
 * makes lws close at once, sending the close frame set here. */
static int on_peer_close(struct lws *wsi, const unsigned char *in, size_t len)
{
    int code = ws__close_check(in, len);
    if (code == 0)
        return 0; /* lws echoes the peer's close */
    metrics_error("ws_protocol");
    const char *r = code == WS_CLOSE_BAD_DATA ? "invalid UTF-8" : "invalid close frame";
    lws_close_reason(wsi, (enum lws_close_status)code, (unsigned char *)r, strlen(r));
    return -1;
}

static int on_writeable(struct ws_server *ws, struct ws_conn *c)
{
    if (c->state == WS_C_CLOSING && (!c->drain_then_close || c->out.n == 0)) {
        const char *r = c->close_reason ? c->close_reason : "";
        lws_close_reason(c->wsi, (enum lws_close_status)c->close_code, (unsigned char *)r,
                         strlen(r));
        return -1;
    }
    preset_close_reason(c->wsi);
    if (c->ping_due) {
        /* A payload, because lws 4.1 does not report an empty pong
         * (LWS_CALLBACK_RECEIVE_PONG) and the pong is what proves the peer
         * is alive. */
        unsigned char ping[LWS_PRE + 2];
        memcpy(ping + LWS_PRE, "ka", 2);
        c->ping_due = false;
        if (lws_write(c->wsi, ping + LWS_PRE, 2, LWS_WRITE_PING) < 0)
            return -1;
        if (c->out.n > 0)
            lws_callback_on_writable(c->wsi);
        return 0;
    }
    if (c->out.n == 0)
        return 0;
    if (conn_write(ws, c) < 0)
        return -1;
    if (c->out.n > 0 || c->state == WS_C_CLOSING)
        lws_callback_on_writable(c->wsi);
    if (c->sync_parked)
        conn_dispatch(ws, c);
    return 0;
}

int ws__callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                 size_t len)
{
    struct ws_conn *c = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        /* A plain HTTP request reached the gateway (the acceptor sends only
         * upgrades here, so a client without Upgrade headers). */
        lws_return_http_status(wsi, HTTP_STATUS_BAD_REQUEST,
                               "this endpoint expects a WebSocket upgrade");
        return -1;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return on_filter(wsi);
    case LWS_CALLBACK_ESTABLISHED:
        if (!c)
            return -1;
        on_established(server_of(wsi), c, wsi);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        if (c && c->id)
            on_receive(server_of(wsi), c, in, len);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return c && c->id ? on_writeable(server_of(wsi), c) : 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        return c && c->id ? on_peer_close(wsi, in, len) : 0;
    case LWS_CALLBACK_RECEIVE_PONG:
        if (c && c->id) {
            c->rx_s = ws__now_s();
            c->pinged = false;
        }
        return 0;
    case LWS_CALLBACK_CLOSED:
        if (c)
            conn_teardown(server_of(wsi), c);
        return 0;
    default:
        return 0;
    }
}

static void order_sweep(struct ws_server *ws);

/* ---- the sweep ------------------------------------------------------------------ */

/* Every WS_SWEEP_MS: the auth deadline of connections still waiting for
 * their auth frame, 4401 for those whose token expired (CONTRACT 6 v1.2),
 * pings for quiet connections, hang-ups for dead ones.
 * O(connections) per sweep, nothing per frame. */
static void sweep_cb(lws_sorted_usec_list_t *sul)
{
    struct ws_server *ws = lws_container_of(sul, struct ws_server, sweep);
    uint32_t now = ws__now_s();
    int64_t wall_ms = clock_now_ms();
    int64_t mono_ms = clock_mono_ms();
    struct ws_buf *sio_ping = NULL; /* one "2" packet shared by every ping of this sweep */
    struct ws_conn *next;
    for (struct ws_conn *c = ws->all; c; c = next) {
        next = c->all_next;
        if (c->poll && poll_sweep(ws, c, mono_ms))
            continue; /* a closed polling session, freed */
        if (c->state == WS_C_CLOSING)
            continue;
        if (c->state == WS_C_READY && wall_ms >= (int64_t)c->expires_s * 1000) {
            conn_close(ws, c, WS_CLOSE_UNAUTHORIZED, "token expired", false);
            continue;
        }
        if (c->state == WS_C_NEW && now - c->born_s >= WS_AUTH_TIMEOUT_S) {
            conn_close(ws, c, WS_CLOSE_AUTH_TIMEOUT, "authentication timeout", false);
            continue;
        }
        if (c->sio) { /* Engine.IO's own ping/pong replaces the idle rule */
            sio_sweep(ws, c, mono_ms, &sio_ping);
            continue;
        }
        uint32_t idle = now - c->rx_s;
        if (idle >= WS_HANGUP_IDLE_S) {
            conn_close(ws, c, WS_CLOSE_GOING_AWAY, "idle timeout", false);
        } else if (idle >= WS_PING_IDLE_S && !c->pinged) {
            c->pinged = c->ping_due = true; /* once per quiet spell */
            lws_callback_on_writable(c->wsi);
        }
    }
    ws__buf_unref(sio_ping);
    order_sweep(ws);
    lws_sul_schedule(ws->ctx, 0, &ws->sweep, sweep_cb, (lws_usec_t)WS_SWEEP_MS * 1000);
}

void ws__sweep_start(struct ws_server *ws)
{
    lws_sul_schedule(ws->ctx, 0, &ws->sweep, sweep_cb, (lws_usec_t)WS_SWEEP_MS * 1000);
    if (ws->cluster_presence && ws->index == 0) /* one heartbeat per process */
        beat_cb(&ws->beat); /* the first beat now, then every WS_PRESENCE_BEAT_MS */
}

/* ---- inbox messages ----------------------------------------------------------- */

static void deliver(struct ws_server *ws, struct ws_msg *m)
{
    if (m->scope == BUS_TO_ALL) {
        for (struct ws_conn *c = ws->all; c; c = c->all_next)
            if (c->state == WS_C_READY && c->id != m->conn_id)
                conn_send(ws, c, m->buf);
        return;
    }
    for (size_t i = 0; i < m->n_users; i++) {
        struct ws_user *u = ws__users_get(&ws->users, m->users[i]);
        for (struct ws_conn *c = u ? u->conns : NULL; c; c = c->u_next)
            if (c->state == WS_C_READY && c->id != m->conn_id)
                conn_send(ws, c, m->buf);
    }
}

/* ---- order across instances (order.c) ------------------------------------ */

/* The reorder buffer lets a positioned event go: delivered, then freed. */
static void order_emit(void *arg, void *data)
{
    struct ws_server *ws = arg;
    struct ws_msg *m = data;
    deliver(ws, m);
    ws__msg_free(ws, m);
}

static void order_drop(void *arg, void *data)
{
    ws__msg_free(arg, data);
}

static void order_timer_cb(lws_sorted_usec_list_t *sul);

static void order_arm(struct ws_server *ws, int64_t now)
{
    int64_t d = ws__order_next_deadline(&ws->order);
    if (d >= 0)
        lws_sul_schedule(ws->ctx, 0, &ws->order_timer, order_timer_cb,
                         (lws_usec_t)(d > now ? d - now : 0) * 1000);
}

static void order_timer_cb(lws_sorted_usec_list_t *sul)
{
    struct ws_server *ws = lws_container_of(sul, struct ws_server, order_timer);
    int64_t now = clock_mono_ms();
    ws__loop_batch_begin(ws);
    ws__order_expire(&ws->order, now, order_emit, ws);
    ws__loop_flush(ws);
    order_arm(ws, now);
}

/* A DELIVER message with a position, on a shared bus: offered to the
 * reorder buffer, which delivers it now or later.  True when it took `m`. */
static bool order_hold(struct ws_server *ws, struct ws_msg *m)
{
    if (!ws->order_on || m->seq <= 0)
        return false;
    int64_t now = clock_mono_ms();
    ws__order_offer(&ws->order, m->chat, m->seq, m, now, order_emit, ws);
    order_arm(ws, now);
    return true;
}

/* From the sweep: forgets idle chats, once a minute. */
static void order_sweep(struct ws_server *ws)
{
    int64_t now = clock_mono_ms();
    if (!ws->order_on || now - ws->order_evicted_ms < 60 * 1000)
        return;
    ws->order_evicted_ms = now;
    ws__order_evict(&ws->order, now, WS_ORDER_IDLE_MS);
}

static void revoke_token(struct ws_server *ws, struct ws_msg *m)
{
    memcpy(ws->revoked[ws->n_revoked++ % WS_REVOKED_RING], m->token_hash, 32);
    for (size_t i = 0; i < m->n_users; i++) {
        struct ws_user *u = ws__users_get(&ws->users, m->users[i]);
        for (struct ws_conn *c = u ? u->conns : NULL; c; c = c->u_next)
            if (memcmp(c->token_hash, m->token_hash, sizeof c->token_hash) == 0)
                conn_close(ws, c, WS_CLOSE_UNAUTHORIZED, "token revoked", false);
    }
}

static void job_done(struct ws_server *ws, struct ws_job *j)
{
    /* A send core refused before queueing was answered in the same batch
     * (its error frame); one core took is answered by its settles_send
     * message.  Either way it leaves the bound once. */
    if (j->kind == WS_J_SEND && !j->send_handed)
        send_answered(ws);
    if (presence_job_done(ws, j))
        return;
    if (j->kind == WS_J_OFFLINE) {
        if (!user_online(ws, j->sess.user_id)) /* unless it came back meanwhile */
            presence_broadcast(ws, j->sess.user_id, false, j->co, j->n_co);
        ws__job_free(ws, j);
        return;
    }
    struct ws_conn *c = ws__conns_get(&ws->conns, j->conn_id);
    if (!c || c->state == WS_C_CLOSING) {
        presence_auth_settled(ws, j);
        ws__job_free(ws, j);
        return;
    }
    c->job_running = false;
    if (j->kind == WS_J_SYNC && !j->sync_done) {
        conn_enqueue_job(ws, c, j, true); /* the next page, when the queue allows */
        return;
    }
    c->n_jobs--;
    if (c->rx_paused && c->n_jobs <= WS_CONN_MAX_JOBS / 2 && c->n_early == 0)
        rx_pause(c, false);
    if (j->kind == WS_J_AUTH && c->state == WS_C_AUTHING) {
        if (j->rc == 0)
            finish_auth(ws, c, j);
        else /* the worker chose the close code; this is a fallback */
            conn_close(ws, c, WS_CLOSE_UNAUTHORIZED, "unauthorized", false);
        presence_auth_settled(ws, j);
    }
    ws__job_free(ws, j);
    conn_dispatch(ws, c);
}

void ws__loop_handle(struct ws_server *ws, struct ws_msg *m)
{
    switch (m->kind) {
    case WS_M_ADOPT:
        atomic_fetch_sub(&ws->adopting, 1);
        if (!atomic_load(&ws->stopping)) {
            /* lws closes the fd itself when adoption fails. */
            if (!lws_adopt_socket_vhost(ws->vh, m->fd))
                log_warn("ws: lws could not adopt a connection");
            m->fd = -1;
        }
        break;
    case WS_M_DELIVER:
        if (order_hold(ws, m))
            return; /* the reorder buffer owns it now */
        deliver(ws, m);
        copres_on_deliver(ws, m);
        break;
    case WS_M_TO_CONN: {
        struct ws_conn *c = ws__conns_get(&ws->conns, m->conn_id);
        if (c && c->state == WS_C_READY && m->buf)
            conn_send(ws, c, m->buf);
        if (m->settles_send)
            send_answered(ws);
        break;
    }
    case WS_M_CLOSE_CONN: {
        struct ws_conn *c = ws__conns_get(&ws->conns, m->conn_id);
        if (c)
            conn_close(ws, c, m->close_code, m->close_reason, false);
        break;
    }
    case WS_M_JOB_DONE: {
        /* The job keeps its hand-back message for its next run (sync). */
        struct ws_job *j = m->job;
        m->job = NULL;
        m->next = NULL;
        j->done = m;
        job_done(ws, j);
        return;
    }
    case WS_M_REVOKE:
        revoke_token(ws, m);
        break;
    case WS_M_CLOSE_ALL:
        for (struct ws_conn *c = ws->all; c; c = c->all_next)
            conn_close(ws, c, WS_CLOSE_GOING_AWAY, "server shutting down", true);
        break;
    case WS_M_POLL:
        poll_request(ws, m);
        m->done = NULL; /* answered */
        break;
    case WS_M_POLL_RELEASE:
        ws->poll_released = true;
        for (struct ws_conn *c = ws->all; c; c = c->all_next)
            if (c->poll)
                conn_close(ws, c, WS_CLOSE_GOING_AWAY, "server shutting down", true);
        break;
    default:
        break;
    }
    ws__msg_free(ws, m);
}

void ws__loop_batch_begin(struct ws_server *ws)
{
    ws->batching = true;
}

void ws__loop_flush(struct ws_server *ws)
{
    ws->batching = false;
    struct ws_conn *c = ws->flush;
    ws->flush = NULL;
    while (c) {
        struct ws_conn *next = c->flush_next;
        c->flush_next = NULL;
        c->flush_queued = false;
        if (c->poll) {
            poll_kick(ws, c);
        } else if (c->out.n > 0) {
            /* Only a READY connection with nothing of lws's still buffered
             * is written here; a closing one goes through its writeable
             * callback (the close frame comes from there), and a
             * connection whose socket was full waits for POLLOUT. */
            if (c->state != WS_C_READY || lws_partial_buffered(c->wsi)) {
                lws_callback_on_writable(c->wsi);
            } else if (conn_write(ws, c) < 0) {
                conn_close(ws, c, WS_CLOSE_GOING_AWAY, "write failed", false);
            } else {
                if (c->out.n > 0)
                    lws_callback_on_writable(c->wsi);
                if (c->sync_parked)
                    conn_dispatch(ws, c);
            }
        }
        c = next;
    }
}

void ws__loop_cleanup(struct ws_server *ws)
{
    /* lws_context_destroy delivered LWS_CALLBACK_CLOSED for every
     * established connection, so the lists are empty; anything left would
     * be a connection lws forgot, and its memory is lws's to free -
     * except polling sessions, which are ours: their held GET is answered
     * and they are freed. */
    struct ws_conn *next;
    for (struct ws_conn *c = ws->all; c; c = next) {
        next = c->all_next;
        if (c->poll)
            poll_destroy(ws, c);
    }
    ws->all = NULL;
    ws__order_cleanup(&ws->order, order_drop, ws);
}
