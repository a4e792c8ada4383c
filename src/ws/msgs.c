/* msgs.c - what crosses threads in the gateway: inbox messages, the inbox
 * push (with its wake-up), job objects and the send accounting.
 *
 * The bottom of src/ws/: the loop (conn.c), the workers (workers.c), the
 * store's writer thread (send callbacks) and the bus subscriber (server.c)
 * all hand their results to the loop through here, and this file calls
 * nothing above it, so the folder's files call each other in one
 * direction: server.c -> conn.c -> workers.c -> msgs.c, each also using
 * the pure files (frames.c, outq.c, index.c).
 *
 * Inbox wake-ups: lws_cancel_service() writes to an eventfd (a pipe on
 * some builds) and costs the pusher a syscall and the loop a pass through
 * epoll, so it is called only when a push finds the inbox empty.  That is
 * enough: the loop takes the whole list at once under the lock (server.c
 * inbox_drain), so a push that finds the list non-empty is covered by the
 * wake-up of the push that made it non-empty, and a push after the loop
 * took the list finds it empty and wakes again. */
#include "ws_internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chatli/clock.h"

uint32_t ws__now_s(void)
{
    return (uint32_t)(clock_mono_ms() / 1000);
}

/* ---- messages ------------------------------------------------------- */

struct ws_msg *ws__msg_new(int kind, size_t n_users)
{
    if (n_users > (SIZE_MAX - sizeof(struct ws_msg)) / OID_SIZE)
        return NULL;
    struct ws_msg *m = calloc(1, sizeof *m + n_users * OID_SIZE);
    if (!m)
        return NULL;
    m->kind = kind;
    m->fd = -1;
    m->n_users = n_users;
    return m;
}

struct ws_msg *ws__msg_frame(uint64_t conn_id, json_t *frame, unsigned flags)
{
    struct ws_msg *m = ws__msg_new(WS_M_TO_CONN, 0);
    if (!m)
        return NULL;
    m->conn_id = conn_id;
    m->buf = ws__buf_from_json(frame, flags);
    if (!m->buf) {
        free(m);
        return NULL;
    }
    return m;
}

struct ws_msg *ws__msg_close(uint64_t conn_id, uint16_t code, const char *reason)
{
    struct ws_msg *m = ws__msg_new(WS_M_CLOSE_CONN, 0);
    if (!m)
        return NULL;
    m->conn_id = conn_id;
    m->close_code = code;
    m->close_reason = reason;
    return m;
}

void ws__msg_free(struct ws_server *ws, struct ws_msg *m)
{
    if (m->kind == WS_M_ADOPT && m->fd >= 0)
        close(m->fd);
    if (m->kind == WS_M_POLL && m->done) {
        /* Never handled (the loop is gone): the request is still answered,
         * so http never stops with a suspended connection. */
        static const char busy[] = "{\"code\":3,\"message\":\"Bad request\"}";
        char *b = strdup(busy);
        m->done(m->done_arg, 503, "application/json", b, b ? strlen(b) : 0);
    }
    free(m->body);
    ws__buf_unref(m->buf);
    if (m->job)
        ws__job_free(ws, m->job);
    free(m);
}

/* Appends head..tail to the inbox; wakes the loop if it was empty. */
static void inbox_append(struct ws_server *ws, struct ws_msg *head, struct ws_msg *tail)
{
    pthread_mutex_lock(&ws->in_lock);
    if (ws->in_closed) {
        pthread_mutex_unlock(&ws->in_lock);
        while (head) {
            struct ws_msg *next = head->next;
            ws__msg_free(ws, head);
            head = next;
        }
        return;
    }
    bool was_empty = ws->in_head == NULL;
    if (was_empty)
        ws->in_head = head;
    else
        ws->in_tail->next = head;
    ws->in_tail = tail;
    pthread_mutex_unlock(&ws->in_lock);
    if (was_empty)
        lws_cancel_service(ws->ctx);
}

/* ---- completion batches (the store's writer thread) ----------------------
 * The store runs the append callbacks of one commit between its
 * completions_begin and completions_end hooks (store.h).  In between, what
 * this thread pushes (the acks, and the message.new events core publishes
 * from the same callbacks, in their order) is held here and goes to each
 * loop's inbox as one chain at the end: one lock and at most one wake-up
 * per loop and commit batch instead of per message.  One slot per loop
 * the batch touches (an event goes to every loop, an ack to its
 * connection's), so alternating loops does not cut the chains short.
 * The sends those acks settle are settled after that push (shutdown's
 * 1001 must come behind them), and each held chain counts once in its
 * loop's callbacks_pending so the loop outlives it. */
struct held_slot {
    struct ws_server *ws;
    struct ws_msg *head, *tail;
    long settles;             /* sends to settle after the push */
};

static _Thread_local struct held {
    bool active;              /* between the hooks */
    unsigned n;               /* slots in use */
    struct held_slot s[WS_LOOPS_MAX];
} held;

static void held_push(void)
{
    for (unsigned i = 0; i < held.n; i++) {
        struct held_slot *h = &held.s[i];
        struct ws_server *ws = h->ws;
        inbox_append(ws, h->head, h->tail);
        pthread_mutex_lock(&ws->sd_lock);
        ws->sends_pending -= h->settles;
        ws->callbacks_pending -= h->settles + 1;
        pthread_cond_broadcast(&ws->sd_cond);
        pthread_mutex_unlock(&ws->sd_lock);
        *h = (struct held_slot){0};
    }
    held.n = 0;
}

static struct held_slot *held_find(struct ws_server *ws)
{
    for (unsigned i = 0; i < held.n; i++)
        if (held.s[i].ws == ws)
            return &held.s[i];
    return NULL;
}

static void held_add(struct ws_server *ws, struct ws_msg *head, struct ws_msg *tail)
{
    struct held_slot *h = held_find(ws);
    if (!h) {
        if (held.n == WS_LOOPS_MAX)
            held_push(); /* more gateways than slots (tests run several) */
        h = &held.s[held.n++];
        pthread_mutex_lock(&ws->sd_lock);
        ws->callbacks_pending++;
        pthread_mutex_unlock(&ws->sd_lock);
        h->ws = ws;
    }
    if (h->tail)
        h->tail->next = head;
    else
        h->head = head;
    h->tail = tail;
}

void ws__completions_begin(void)
{
    held.active = true;
}

void ws__completions_end(void)
{
    held.active = false;
    held_push();
}

void ws__inbox_push(struct ws_server *ws, struct ws_msg *head)
{
    if (!head)
        return;
    struct ws_msg *tail = head;
    while (tail->next)
        tail = tail->next;
    if (held.active)
        held_add(ws, head, tail);
    else
        inbox_append(ws, head, tail);
}

void ws__send_callback_settled(struct ws_server *ws)
{
    struct held_slot *h = held.active ? held_find(ws) : NULL;
    if (h) {
        h->settles++;
        return;
    }
    pthread_mutex_lock(&ws->sd_lock);
    ws->sends_pending--;
    ws->callbacks_pending--;
    pthread_cond_broadcast(&ws->sd_cond);
    pthread_mutex_unlock(&ws->sd_lock);
}

void ws__send_settled(struct ws_server *ws)
{
    pthread_mutex_lock(&ws->sd_lock);
    ws->sends_pending--;
    pthread_cond_broadcast(&ws->sd_cond);
    pthread_mutex_unlock(&ws->sd_lock);
}

/* ---- job objects (created on the loop, run by workers) ------------------------------------------------------ */

struct ws_job *ws__job_new(int kind)
{
    struct ws_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->done = ws__msg_new(WS_M_JOB_DONE, 0);
    if (!j->done) {
        free(j);
        return NULL;
    }
    j->kind = kind;
    return j;
}

void ws__job_free(struct ws_server *ws, struct ws_job *j)
{
    if (!j)
        return;
    if (j->kind == WS_J_SEND && !j->send_handed)
        ws__send_settled(ws);
    if (j->token) {
        explicit_bzero(j->token, strlen(j->token));
        free(j->token);
    }
    ws__frame_cleanup(&j->frame);
    json_decref(j->me);
    free(j->co);
    free(j->co_online);
    free(j->ids);
    if (j->done) {
        j->done->job = NULL;
        free(j->done);
    }
    free(j);
}

