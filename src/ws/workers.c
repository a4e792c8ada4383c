/* workers.c - the gateway's worker pool: every request that needs core.
 *
 * Core calls may block on the store, so they never run on the lws loop.  A
 * fixed pool of threads (WS_WORKERS, fewer per loop with several loops)
 * takes jobs from one FIFO; the loop
 * submits at most one job per connection at a time (conn.c), so a client's
 * frames are handled in order and one busy client cannot take the pool.
 * A worker never touches a `struct lws` or any loop-owned struct: it sends
 * frames and closes back as inbox messages addressed by connection id, and
 * ends every job by handing it back with its preallocated JOB_DONE message,
 * pushed in the same batch as its frames so nothing overtakes them.
 *
 * message.send is asynchronous past validation: messages_send_async queues
 * the append for the store's group commit and returns; the ack (or error)
 * is produced by send_cb on the store's writer thread, after core has
 * published message.new, and pushed to the inbox from there.
 *
 * The domain work is core's (users_contacts for presence, chats_typing,
 * messages_sync_page); a job only calls it and turns the result into
 * frames, errors and close messages for the loop. */
#include "ws_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatli/bus.h"
#include "chatli/cache.h"
#include "chatli/log.h"

/* ---- replies ----------------------------------------------------------- */

/* A batch of inbox messages, pushed at once. */
struct batch {
    struct ws_msg *head, *tail;
};

static void batch_add(struct batch *b, struct ws_msg *m)
{
    if (!m) {
        log_error("ws: out of memory building a reply frame; it is lost");
        return;
    }
    if (b->tail)
        b->tail->next = m;
    else
        b->head = m;
    b->tail = m;
}

static void batch_frame(struct batch *b, uint64_t conn_id, json_t *frame)
{
    batch_add(b, frame ? ws__msg_frame(conn_id, frame, 0) : NULL);
    json_decref(frame);
}

static void batch_error(struct batch *b, uint64_t conn_id, const struct chat_err *err, int rc,
                        const char *client_id)
{
    batch_frame(b, conn_id,
                ws__frame_error(rc, err->code == rc ? err->msg : NULL,
                                err->code == rc ? err->field : NULL, client_id));
}

/* Adds the job's JOB_DONE and pushes everything. */
static void batch_finish(struct ws_server *ws, struct batch *b, struct ws_job *j)
{
    struct ws_msg *d = j->done;
    j->done = NULL;
    d->job = j;
    batch_add(b, d);
    ws__inbox_push(ws, b->head);
}

/* ---- the jobs ------------------------------------------------------------ */

/* ---- cluster presence (conn.c "presence" says the design) ------------- */

/* The cluster-wide online state of the job's co[] (AUTH: for ready.online;
 * COPRES: a new chat's members) into co_online.  Left NULL when presence
 * is local or Redis does not answer: the loop then counts its own
 * connections only. */
static void presence_lookup(struct ws_server *ws, struct ws_job *j)
{
    if (!ws->cluster_presence || j->n_co == 0)
        return;
    bool *on = calloc(j->n_co, sizeof *on);
    struct chat_err err = {0};
    if (on && cache_presence_get(ws->cache, (const char(*)[OID_SIZE])j->co, j->n_co, on, &err) == 0) {
        j->co_online = on;
        return;
    }
    free(on);
}

/* Publishes {"type":"presence","userId","online"} to the connections of
 * `to` on every instance (the bus delivers here too). */
static void presence_publish(struct ws_server *ws, const char *user_id, bool online,
                             char (*to)[OID_SIZE], size_t n_to)
{
    if (n_to == 0)
        return;
    /* "type" first: ws__frame_is_ephemeral recognises it by that prefix. */
    json_t *f = json_pack("{s:s, s:s, s:b}", "type", "presence", "userId", user_id, "online",
                          online);
    char *text = f ? json_dumps(f, JSON_COMPACT) : NULL;
    json_decref(f);
    if (!text) {
        log_error("ws: out of memory: a presence frame was not published");
        return;
    }
    struct bus_event ev = {
        .scope = BUS_TO_USERS,
        .user_ids = (const char(*)[OID_SIZE])to,
        .n_users = n_to,
        .frame = text,
        .len = strlen(text),
    };
    struct chat_err err = {0};
    if (bus_publish(ws->bus, &ev, &err) != 0)
        log_warn("ws: presence reached this instance only: %s", err.msg);
    free(text);
}

/* Publishes `user_id` offline to its co-members (looked up now: chats may
 * have changed since it came online). */
static void presence_publish_offline(struct ws_server *ws, const char *user_id)
{
    struct session s = {0};
    memcpy(s.user_id, user_id, OID_SIZE);
    char(*co)[OID_SIZE] = NULL;
    size_t n_co = 0;
    struct chat_err err = {0};
    if (users_contacts(ws->core, &s, &co, &n_co, &err) < 0)
        log_warn("ws: presence offline not sent: %s", err.msg);
    else
        presence_publish(ws, user_id, false, co, n_co);
    free(co);
}

/* This instance gained (the user's first connection here) or lost (its
 * last) a user: recorded in Redis, which says whether that changed the
 * user's cluster-wide state; only then is the change announced, once,
 * by the instance that made it.  Without an answer from Redis the loop
 * falls back to local presence (change WS_PRES_FAILED); for an offline
 * the co-members are looked up here for it. */
static void run_presence(struct ws_server *ws, struct ws_job *j)
{
    struct chat_err err = {0};
    struct batch b = {0};
    int change = 0;
    if (cache_presence_set(ws->cache, j->sess.user_id, j->online, j->gen, &change, &err) != 0) {
        j->change = WS_PRES_FAILED;
        if (!j->online && users_contacts(ws->core, &j->sess, &j->co, &j->n_co, &err) < 0)
            log_warn("ws: presence offline not sent: %s", err.msg);
    } else {
        j->change = change;
        if (change > 0 && !j->co) /* set again after an outage: no contacts yet */
            users_contacts(ws->core, &j->sess, &j->co, &j->n_co, &err);
        if (change > 0)
            presence_publish(ws, j->sess.user_id, true, j->co, j->n_co);
        else if (change < 0)
            presence_publish_offline(ws, j->sess.user_id);
    }
    batch_finish(ws, &b, j);
}

/* The heartbeat: renews ours, retires dead instances and announces the
 * users that went offline with them. */
static void run_beat(struct ws_server *ws, struct ws_job *j)
{
    struct chat_err err = {0};
    struct batch b = {0};
    bool lost = false;
    j->rc = cache_presence_beat(ws->cache, WS_PRESENCE_TTL_MS, false, ws->beat_ok, &lost, &j->ids,
                                &j->n_ids, &err);
    if (j->rc == 0) {
        ws->beat_ok = true;
        j->lost = lost;
        for (size_t i = 0; i < j->n_ids; i++)
            presence_publish_offline(ws, j->ids[i]);
    }
    batch_finish(ws, &b, j);
}

static void run_copres(struct ws_server *ws, struct ws_job *j)
{
    struct batch b = {0};
    presence_lookup(ws, j);
    batch_finish(ws, &b, j);
}

/* Before `ready`: records that this instance holds the user, so that once
 * a client sees `ready` here, a connection of the same user closing on
 * another instance no longer makes the user look offline (without it, a
 * user moving between instances would flap offline/online for their
 * co-members).  A cluster-wide transition is announced here; the loop's
 * own WS_J_PRESENCE job for the user's first connection then finds the
 * state already set (change 0) unless a newer offline overtook this. */
static void presence_register(struct ws_server *ws, struct ws_job *j)
{
    int change = 0;
    struct chat_err err = {0};
    if (!ws->cluster_presence || j->gen <= 0 ||
        cache_presence_set(ws->cache, j->sess.user_id, true, j->gen, &change, &err) != 0)
        return;
    if (change > 0)
        presence_publish(ws, j->sess.user_id, true, j->co, j->n_co);
}

static void run_auth(struct ws_server *ws, struct ws_job *j)
{
    struct chat_err err = {0};
    struct batch b = {0};
    int rc = auth_check(ws->core, j->token, &j->sess, &err);
    if (rc == 0)
        rc = users_me(ws->core, &j->sess, &j->me, &err);
    if (rc == 0)
        rc = users_contacts(ws->core, &j->sess, &j->co, &j->n_co, &err);
    if (rc == 0) {
        presence_lookup(ws, j);
        presence_register(ws, j);
    }
    j->rc = rc;
    if (rc == CHAT_E_UNAVAILABLE)
        batch_add(&b, ws__msg_close(j->conn_id, WS_CLOSE_TRY_LATER, "try again later"));
    else if (rc == CHAT_E_INTERNAL)
        batch_add(&b, ws__msg_close(j->conn_id, WS_CLOSE_INTERNAL, "internal error"));
    else if (rc < 0) /* unauthorized, or the token's user is gone */
        batch_add(&b, ws__msg_close(j->conn_id, WS_CLOSE_UNAUTHORIZED, "unauthorized"));
    batch_finish(ws, &b, j);
}

/* What send_cb needs after the job went back to the loop. */
struct send_ctx {
    struct ws_server *ws;
    struct ws_msg *reply;  /* the answer's TO_CONN message (settles_send),
                              allocated up front so the answer that frees
                              the send's room (WS_SENDS_IN_CORE_MAX) always
                              reaches the loop */
    char client_id[];      /* "" when the frame had none */
};

/* The message.ack frame around the stored Message's text (`msg`, `len`):
 * core serialized the Message once for the message.new event, and the ack
 * reuses that text instead of serializing it again (one serialization per
 * message, on the store's writer thread).  The bytes are what json_dumps
 * of {"type":"message.ack","clientId","message"} gives.  NULL on OOM. */
static struct ws_buf *ack_frame(const char *cid, const char *msg, size_t len)
{
    static const char head[] = "{\"type\":\"message.ack\",";
    static const char cid_key[] = "\"clientId\":";
    static const char msg_key[] = "\"message\":";
    json_t *js = cid ? json_string(cid) : NULL;
    char *cid_json = js ? json_dumps(js, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(js);
    if (cid && !cid_json)
        return NULL;
    size_t cl = cid_json ? sizeof cid_key - 1 + strlen(cid_json) + 1 : 0;
    size_t n = sizeof head - 1 + cl + sizeof msg_key - 1 + len + 1;
    struct ws_buf *b = ws__buf_new(NULL, n, 0);
    if (b) {
        char *p = (char *)ws_buf_payload(b);
        memcpy(p, head, sizeof head - 1);
        p += sizeof head - 1;
        if (cid_json) {
            size_t vl = strlen(cid_json);
            memcpy(p, cid_key, sizeof cid_key - 1);
            p += sizeof cid_key - 1;
            memcpy(p, cid_json, vl);
            p[vl] = ',';
            p += vl + 1;
        }
        memcpy(p, msg_key, sizeof msg_key - 1);
        p += sizeof msg_key - 1;
        memcpy(p, msg, len);
        p[len] = '}';
    }
    free(cid_json);
    return b;
}

/* Store writer thread, after the commit (or a failure): must not block. */
static void send_cb(void *arg, int rc, const char *message, size_t len, bool created,
                    const struct chat_err *err)
{
    struct send_ctx *ctx = arg;
    struct ws_server *ws = ctx->ws;
    struct ws_msg *m = ctx->reply;
    const char *cid = ctx->client_id[0] ? ctx->client_id : NULL;
    (void)created;
    if (rc == 0) {
        m->buf = ack_frame(cid, message, len);
    } else {
        json_t *frame = ws__frame_error(rc, err && err->code == rc ? err->msg : NULL,
                                        err && err->code == rc ? err->field : NULL, cid);
        m->buf = ws__buf_from_json(frame, 0);
        json_decref(frame);
    }
    if (!m->buf)
        log_error("ws: out of memory building a message.ack; the client will retry");
    ws__inbox_push(ws, m);
    free(ctx);
    /* Settled only after the answer is in the inbox: shutdown sends 1001
     * behind it.  This is the last touch of `ws` (close waits for it). */
    ws__send_callback_settled(ws);
}

/* A send's completion context with its reply message, or NULL on OOM. */
static struct send_ctx *send_ctx_new(struct ws_server *ws, uint64_t conn_id, const char *cid)
{
    size_t cid_len = cid ? strlen(cid) : 0;
    struct send_ctx *ctx = malloc(sizeof *ctx + cid_len + 1);
    struct ws_msg *reply = ctx ? ws__msg_new(WS_M_TO_CONN, 0) : NULL;
    if (!reply) {
        free(ctx);
        return NULL;
    }
    reply->conn_id = conn_id;
    reply->settles_send = true;
    ctx->ws = ws;
    ctx->reply = reply;
    memcpy(ctx->client_id, cid ? cid : "", cid_len + 1);
    return ctx;
}

int ws__send_direct(struct ws_server *ws, uint64_t conn_id, const struct session *s,
                    const struct ws_frame *f, struct chat_err *err)
{
    struct send_ctx *ctx = send_ctx_new(ws, conn_id, f->client_id);
    if (!ctx)
        return 0; /* the worker path reports it */
    /* Counted before the call: send_cb may run on the writer thread
     * before messages_send_try returns. */
    pthread_mutex_lock(&ws->sd_lock);
    ws->sends_pending++;
    ws->callbacks_pending++;
    pthread_mutex_unlock(&ws->sd_lock);
    bool deferred = false;
    int rc = messages_send_try(ws->core, s, f->chat_id, f->body, true, conn_id, send_cb, ctx,
                               &deferred, err);
    if (rc == 0 && !deferred)
        return 1;
    free(ctx->reply);
    free(ctx);
    pthread_mutex_lock(&ws->sd_lock);
    ws->sends_pending--;
    ws->callbacks_pending--;
    pthread_cond_broadcast(&ws->sd_cond);
    pthread_mutex_unlock(&ws->sd_lock);
    return rc;
}

static void run_send(struct ws_server *ws, struct ws_job *j)
{
    struct chat_err err = {0};
    struct batch b = {0};
    const char *cid = j->frame.client_id;
    struct send_ctx *ctx = send_ctx_new(ws, j->conn_id, cid);
    if (!ctx) {
        chat_err_set(&err, CHAT_E_INTERNAL, NULL, NULL);
        batch_error(&b, j->conn_id, &err, CHAT_E_INTERNAL, cid);
        batch_finish(ws, &b, j);
        return;
    }
    struct ws_msg *reply = ctx->reply;

    pthread_mutex_lock(&ws->sd_lock);
    ws->callbacks_pending++;
    pthread_mutex_unlock(&ws->sd_lock);
    int rc = messages_send_async_text(ws->core, &j->sess, j->frame.chat_id, j->frame.body, true,
                                      j->conn_id, send_cb, ctx, &err);
    if (rc == 0) {
        j->send_handed = true;
        batch_finish(ws, &b, j);
        return;
    }
    free(reply);
    free(ctx);
    pthread_mutex_lock(&ws->sd_lock);
    ws->callbacks_pending--;
    pthread_cond_broadcast(&ws->sd_cond);
    pthread_mutex_unlock(&ws->sd_lock);
    batch_error(&b, j->conn_id, &err, rc, cid);
    /* The error is pushed (with the job) before the job settles the send
     * when the loop frees it. */
    batch_finish(ws, &b, j);
}

static void run_typing(struct ws_server *ws, struct ws_job *j)
{
    struct chat_err err = {0};
    struct batch b = {0};
    int rc = chats_typing(ws->core, &j->sess, j->frame.chat_id, &err);
    if (rc < 0)
        batch_error(&b, j->conn_id, &err, rc, j->frame.client_id);
    batch_finish(ws, &b, j);
}

static void run_read(struct ws_server *ws, struct ws_job *j)
{
    struct chat_err err = {0};
    struct batch b = {0};
    int rc = chats_read(ws->core, &j->sess, j->frame.chat_id, j->frame.body, j->conn_id, &err);
    if (rc < 0)
        batch_error(&b, j->conn_id, &err, rc, j->frame.client_id);
    batch_finish(ws, &b, j);
}

/* One page of a sync: up to WS_SYNC_PAGE messages of the current chat (chats
 * the caller does not belong to are skipped on the way), or sync.done. */
static void run_sync(struct ws_server *ws, struct ws_job *j)
{
    struct batch b = {0};
    struct ws_frame *f = &j->frame;
    while (j->sync_i < f->n_sync) {
        struct ws_sync_entry *e = &f->sync[j->sync_i];
        int64_t left = WS_SYNC_MAX_PER_CHAT - j->sync_sent;
        struct messages_sync_page page;
        struct chat_err err = {0};
        int rc = messages_sync_page(ws->core, &j->sess, e->chat_id, e->after_seq,
                                    (int)(left < WS_SYNC_PAGE ? left : WS_SYNC_PAGE), &page, &err);
        if (rc == CHAT_E_NOT_FOUND) { /* not a member (or no such chat): ignored */
            messages_sync_page_cleanup(&page);
            j->sync_i++;
            j->sync_sent = 0;
            continue;
        }
        if (rc < 0) {
            messages_sync_page_cleanup(&page);
            batch_error(&b, j->conn_id, &err, rc, j->frame.client_id);
            j->sync_incomplete = true;
            j->sync_i = f->n_sync;
            break;
        }
        size_t i;
        json_t *fr; /* message.new, .updated or .deleted, in position order */
        json_array_foreach(page.frames, i, fr)
            batch_frame(&b, j->conn_id, json_incref(fr));
        e->after_seq = page.last_seq;
        j->sync_sent += (int64_t)json_array_size(page.messages);
        bool more = page.more;
        messages_sync_page_cleanup(&page);
        /* At the cap with more left: this chat is cut, and sync.done says so. */
        if (more && j->sync_sent >= WS_SYNC_MAX_PER_CHAT) {
            j->sync_incomplete = true;
            more = false;
        }
        if (!more) {
            j->sync_i++;
            j->sync_sent = 0;
        }
        break; /* one page per run: the loop waits for the client to read it */
    }
    if (j->sync_i >= f->n_sync) {
        batch_frame(&b, j->conn_id,
                    json_pack("{s:s, s:b}", "type", "sync.done", "complete", !j->sync_incomplete));
        j->sync_done = true;
    }
    batch_finish(ws, &b, j);
}

static void run_offline(struct ws_server *ws, struct ws_job *j)
{
    struct chat_err err = {0};
    struct batch b = {0};
    if (users_contacts(ws->core, &j->sess, &j->co, &j->n_co, &err) < 0)
        log_warn("ws: presence offline not sent: %s", err.msg);
    batch_finish(ws, &b, j);
}

/* The flood limit shared by instances (ws_server.shared_flood): one token
 * from the user's bucket in the cache, after the loop's local bucket let
 * the frame through.  False (and the rate_limited error pushed with the
 * job) when the cluster-wide bucket is empty.  With the cache unreachable
 * the local bucket alone decides, so a Redis outage never refuses frames
 * by itself. */
static bool shared_flood_ok(struct ws_server *ws, struct ws_job *j)
{
    if (!ws->shared_flood ||
        (j->kind != WS_J_SEND && j->kind != WS_J_TYPING && j->kind != WS_J_READ))
        return true;
    char key[4 + OID_SIZE];
    snprintf(key, sizeof key, "ws:%s", j->sess.user_id);
    bool taken = true;
    struct chat_err err = {0};
    if (cache_take(ws->cache, key, ws->rate_per_s, ws->rate_burst, &taken, &err) != 0 || taken)
        return true;
    struct batch b = {0};
    chat_err_set(&err, CHAT_E_RATE_LIMITED, NULL, "too many frames, slow down");
    batch_error(&b, j->conn_id, &err, CHAT_E_RATE_LIMITED, j->frame.client_id);
    batch_finish(ws, &b, j);
    return false;
}

/* ---- the pool ------------------------------------------------------------ */

static void run(struct ws_server *ws, struct ws_job *j)
{
    if (!shared_flood_ok(ws, j))
        return;
    switch (j->kind) {
    case WS_J_AUTH: run_auth(ws, j); break;
    case WS_J_SEND: run_send(ws, j); break;
    case WS_J_TYPING: run_typing(ws, j); break;
    case WS_J_READ: run_read(ws, j); break;
    case WS_J_SYNC: run_sync(ws, j); break;
    case WS_J_OFFLINE: run_offline(ws, j); break;
    case WS_J_PRESENCE: run_presence(ws, j); break;
    case WS_J_BEAT: run_beat(ws, j); break;
    case WS_J_COPRES: run_copres(ws, j); break;
    default: { /* every kind is created by conn.c from the list above */
        struct batch b = {0};
        batch_finish(ws, &b, j);
        break;
    }
    }
}

static void *worker_main(void *arg)
{
    struct ws_server *ws = arg;
    pthread_mutex_lock(&ws->wk_lock);
    for (;;) {
        while (!ws->wk_head && !ws->wk_stop)
            pthread_cond_wait(&ws->wk_cond, &ws->wk_lock);
        if (ws->wk_stop)
            break;
        struct ws_job *j = ws->wk_head;
        ws->wk_head = j->next;
        if (!ws->wk_head)
            ws->wk_tail = NULL;
        j->next = NULL;
        pthread_mutex_unlock(&ws->wk_lock);
        run(ws, j);
        pthread_mutex_lock(&ws->wk_lock);
    }
    pthread_mutex_unlock(&ws->wk_lock);
    return NULL;
}

int ws__workers_start(struct ws_server *ws, struct chat_err *err)
{
    for (int i = 0; i < ws->n_workers_want && i < WS_WORKERS; i++) {
        if (pthread_create(&ws->workers[i], NULL, worker_main, ws) != 0)
            return chat_err_set(err, CHAT_E_INTERNAL, NULL, "ws: cannot start worker threads");
        ws->n_workers++;
    }
    return 0;
}

void ws__workers_stop(struct ws_server *ws)
{
    pthread_mutex_lock(&ws->wk_lock);
    ws->wk_stop = true;
    pthread_cond_broadcast(&ws->wk_cond);
    pthread_mutex_unlock(&ws->wk_lock);
    for (int i = 0; i < ws->n_workers; i++)
        pthread_join(ws->workers[i], NULL);
    ws->n_workers = 0;
    struct ws_job *j = ws->wk_head;
    ws->wk_head = ws->wk_tail = NULL;
    while (j) {
        struct ws_job *next = j->next;
        ws__job_free(ws, j);
        j = next;
    }
}

void ws__job_submit(struct ws_server *ws, struct ws_job *j)
{
    pthread_mutex_lock(&ws->wk_lock);
    if (ws->wk_stop) {
        pthread_mutex_unlock(&ws->wk_lock);
        ws__job_free(ws, j);
        return;
    }
    j->next = NULL;
    if (ws->wk_tail)
        ws->wk_tail->next = j;
    else
        ws->wk_head = j;
    ws->wk_tail = j;
    pthread_cond_signal(&ws->wk_cond);
    pthread_mutex_unlock(&ws->wk_lock);
}
