/* server.c - one loop of the gateway: its lws context and service thread,
 * the inbox every other thread talks to the loop through, and the steps
 * the group (group.c) drives it with: open, adopt, poll, shutdown, stop.
 *
 * The context has no listen socket of its own (CONTEXT_PORT_NO_LISTEN_SERVER):
 * the acceptor owns the port and hands the group upgrade requests with
 * ws_server_adopt(), whose bytes are still unread in the socket, so lws
 * reads the HTTP request and performs the handshake itself.
 *
 * Inbox wake-ups: see msgs.c (ws__inbox_push).
 *
 * Each drain is one output batch (conn.c): frames it queues are written
 * when it ends, several per send(), without a writeable callback each.
 *
 * Order: the bus subscriber (group.c), the workers and the store callbacks
 * all append to the same FIFO, and the loop appends to each connection's queue in
 * inbox order, so the order in which core publishes (a chat's messages in
 * seq order, from the store's writer thread) is the order every client
 * receives. */
#include "ws_internal.h"

#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chatli/bus.h"
#include "chatli/cache.h"
#include "chatli/clock.h"
#include "chatli/config.h"
#include "chatli/log.h"
#include "chatli/metrics.h"

/* Loop thread: takes the inbox and handles it in order, then writes what
 * it queued. */
static void inbox_drain(struct ws_server *ws)
{
    pthread_mutex_lock(&ws->in_lock);
    struct ws_msg *m = ws->in_head;
    ws->in_head = ws->in_tail = NULL;
    pthread_mutex_unlock(&ws->in_lock);
    ws__loop_batch_begin(ws);
    while (m) {
        struct ws_msg *next = m->next;
        m->next = NULL;
        ws__loop_handle(ws, m);
        m = next;
    }
    ws__loop_flush(ws);
}

/* ---- the service thread --------------------------------------------- */

/* lws's own log lines go to our JSON log (lws may log from this thread
 * only, but log_msg is thread-safe anyway). */
static void lws_log_emit(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    log_msg(level == LLL_ERR ? LOG_ERROR : LOG_WARN, "lws: %.*s", (int)n, line);
}

static void *loop_main(void *arg)
{
    struct ws_server *ws = arg;
    ws__sweep_start(ws);
    while (!atomic_load(&ws->loop_stop)) {
        /* With libev, lws_service runs the event loop until the context
         * is destroyed (see callback()).  With lws's poll loop it returns
         * after each wake-up; its timeout argument is ignored (lws 4.x
         * sleeps until the next event or timer). */
        if (lws_service(ws->ctx, 0) != 0 || ws->ctx_dying)
            break;
    }
    return NULL;
}

/* The protocol callback's entry: the inbox is drained here, once per wake
 * (the event reaches every protocol; we have one).  A wake with loop_stop
 * set ends the loop: under libev, lws_service only returns once
 * lws_context_destroy has run on the loop thread, so its first phase runs
 * here (closing every connection, with their CLOSED callbacks, on this
 * thread); ws_server_close completes it after the join. */
static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    if (reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED) {
        struct lws_context *ctx = lws_get_context(wsi);
        struct ws_server *ws = ctx ? lws_context_user(ctx) : NULL;
        if (!ws)
            return 0;
        if (!atomic_load(&ws->loop_stop)) {
            inbox_drain(ws);
        } else if (ws->evlib && !ws->ctx_dying) {
            ws->ctx_dying = true;
            lws_sul_cancel(&ws->sweep);
            lws_sul_cancel(&ws->order_timer);
            lws_sul_cancel(&ws->beat);
            lws_context_destroy(ctx);
            /* The loop is ours (foreign to lws), so lws does not break it. */
            ev_break(ws->evloop, EVBREAK_ALL);
        }
        return 0;
    }
    return ws__callback(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    {
        .name = "chatli",
        .callback = callback,
        .per_session_data_size = sizeof(struct ws_conn),
        .rx_buffer_size = WS_RX_BUFFER,
        .tx_packet_size = WS_TX_PACKET,
    },
    {0},
};

/* All zero: lws's own validity timers off (its default policy would ping
 * after 300 s, at the cost described at WS_SWEEP_MS); conn.c's sweep does
 * liveness instead. */
static const lws_retry_bo_t no_lws_validity_policy = {0};

/* ---- one loop, driven by the group ------------------------------------ */

int ws__shard_open(const struct config *cfg, struct core *core, struct bus *bus,
                   struct cache *cache, struct ws_reg *reg, struct ws_server *const *loops,
                   int n_loops, int index, struct ws_server **out, struct chat_err *err)
{
    *out = NULL;
    struct ws_server *ws = calloc(1, sizeof *ws);
    if (!ws)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "ws: out of memory");
    ws->index = index;
    ws->n_loops = n_loops;
    ws->loops = loops;
    ws->reg = reg;
    ws->n_workers_want = WS_WORKERS / n_loops > 2 ? WS_WORKERS / n_loops : 2;
    ws->cfg = cfg;
    ws->core = core;
    ws->bus = bus;
    ws->rate_per_s = cfg ? cfg->ws_rate_per_s : 0;
    ws->rate_burst = cfg ? (double)cfg->ws_rate_burst : 0;
    ws->max_conns_per_user = cfg ? cfg->ws_max_conns_per_user : 0;
    ws->sio_ping_interval_ms = cfg ? cfg->sio_ping_interval_ms : 25000;
    ws->sio_ping_timeout_ms = cfg ? cfg->sio_ping_timeout_ms : 20000;
    ws->cache = cache;
    ws->shared_flood = cache_shares_buckets(cache) && ws->rate_per_s > 0 && ws->rate_burst > 0;
    /* Several instances: presence is counted in Redis and a chat's events,
     * which reach us by two paths, are put back in order (conn.c). */
    ws->order_on = bus && bus->remote;
    ws->cluster_presence = ws->order_on && cache_shares_presence(cache);
    /* The loop's index in the id's top byte (WS_CONN_LOOP). */
    ws->next_conn_id = ((uint64_t)index << WS_CONN_LOOP_SHIFT) | 1;
    if (core) /* the store's commit batches reach the loop as one push each */
        messages_set_completion_hooks(core, ws__completions_begin, ws__completions_end);
    atomic_init(&ws->loop_stop, false);
    atomic_init(&ws->stopping, false);
    atomic_init(&ws->n_conns_approx, 0);
    atomic_init(&ws->adopting, 0);

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&ws->in_lock, NULL);
    pthread_mutex_init(&ws->wk_lock, NULL);
    pthread_cond_init(&ws->wk_cond, NULL);
    pthread_mutex_init(&ws->sd_lock, NULL);
    pthread_cond_init(&ws->sd_cond, &ca);
    pthread_condattr_destroy(&ca);

    ws->wbuf = malloc(WS_WRITE_BATCH);
    if (!ws->wbuf || ws__conns_init(&ws->conns) < 0 || ws__users_init(&ws->users) < 0 ||
        ws__order_init(&ws->order) < 0) {
        chat_err_set(err, CHAT_E_INTERNAL, NULL, "ws: out of memory");
        goto fail;
    }

    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = protocols;
    info.user = ws;
    info.gid = -1;
    info.uid = -1;
    info.retry_and_idle_policy = &no_lws_validity_policy;
    info.timeout_secs_ah_idle = WS_HANDSHAKE_TIMEOUT_S;
    /* Header tables are held only during handshakes; more lets a burst of
     * connects proceed at once (each is max_http_header_data, 4 KiB). */
    info.max_http_header_pool = 128;
    /* libev (epoll): lws's own loop calls poll() over every socket on each
     * wake-up, which with thousands of idle connections costs more than the
     * traffic (measured: 8000 idle connections cut chat throughput by 40%).
     * lws loads libev as a plugin; without it, fall back to poll(). */
    info.options = LWS_SERVER_OPTION_LIBEV;
    /* The libev loop is made here and handed to lws as a foreign loop:
     * a loop lws makes itself gets a SIGINT watcher, and libev refuses
     * (asserts) a signal watched by two loops, so a second context would
     * abort the process.  Our signals are taken by main (signalfd), so no
     * loop needs one.  lws_service still runs it (ev_run). */
    ws->evloop = ev_loop_new(EVFLAG_AUTO);
    void *foreign[1] = {ws->evloop};
    info.foreign_loops = ws->evloop ? foreign : NULL;
    ws->ctx = ws->evloop ? lws_create_context(&info) : NULL;
    ws->evlib = ws->ctx != NULL;
    if (!ws->ctx) {
        log_warn("ws: the libev event loop is unavailable; using poll()");
        info.options = 0;
        info.foreign_loops = NULL;
        if (ws->evloop)
            ev_loop_destroy(ws->evloop);
        ws->evloop = NULL;
        ws->ctx = lws_create_context(&info);
    }
    if (!ws->ctx) {
        chat_err_set(err, CHAT_E_INTERNAL, NULL, "ws: cannot create the lws context");
        goto fail;
    }
    ws->vh = lws_get_vhost_by_name(ws->ctx, "default");
    if (!ws->vh) {
        chat_err_set(err, CHAT_E_INTERNAL, NULL, "ws: lws has no default vhost");
        goto fail;
    }
    if (ws__workers_start(ws, err) < 0)
        goto fail;
    if (pthread_create(&ws->loop_thread, NULL, loop_main, ws) != 0) {
        chat_err_set(err, CHAT_E_INTERNAL, NULL, "ws: cannot start the service thread");
        goto fail;
    }
    ws->loop_started = true;
    *out = ws;
    return 0;

fail:
    ws__shard_stop(ws);
    ws__shard_free(ws);
    return err ? err->code : CHAT_E_INTERNAL;
}

void ws__shard_adopt(struct ws_server *ws, int fd)
{
    if (atomic_load(&ws->stopping)) {
        close(fd);
        return;
    }
    struct ws_msg *m = ws__msg_new(WS_M_ADOPT, 0);
    if (!m) {
        close(fd);
        return;
    }
    m->fd = fd;
    atomic_fetch_add(&ws->adopting, 1); /* given back by the loop (conn.c) */
    ws__inbox_push(ws, m);
}

long ws__shard_load(struct ws_server *ws)
{
    return atomic_load(&ws->n_conns_approx) + atomic_load(&ws->adopting);
}

void ws__shard_poll(struct ws_server *ws, bool post, const char *sid, const char *body,
                    size_t len, sio_poll_done_fn done, void *arg)
{
    struct ws_msg *m = ws__msg_new(WS_M_POLL, 0);
    char *copy = m ? malloc(len + 1) : NULL;
    if (!copy) {
        free(m);
        static const char oom[] = "{\"code\":3,\"message\":\"Bad request\"}";
        char *b = strdup(oom);
        done(arg, 503, "application/json", b, b ? strlen(b) : 0);
        return;
    }
    if (len)
        memcpy(copy, body, len);
    copy[len] = '\0';
    m->post = post;
    m->body = copy;
    m->body_len = len;
    m->done = done;
    m->done_arg = arg;
    if (sid) {
        /* Longer than any sid we hand out: kept cut, so it matches none. */
        m->has_sid = true;
        snprintf(m->sid, sizeof m->sid, "%s", sid);
    }
    ws__inbox_push(ws, m); /* inbox closed: ws__msg_free answers 503 */
}

void ws__shard_poll_release(struct ws_server *ws)
{
    struct ws_msg *m = ws__msg_new(WS_M_POLL_RELEASE, 0);
    if (m)
        ws__inbox_push(ws, m);
    else
        log_error("ws: out of memory: polling sessions not released before the drain");
}

/* Waits on sd_cond until `done` or the deadline (CLOCK_MONOTONIC ms). */
static void wait_until(struct ws_server *ws, long *counter, long long deadline_ms)
{
    pthread_mutex_lock(&ws->sd_lock);
    while (*counter > 0 && clock_mono_ms() < deadline_ms) {
        struct timespec ts = {.tv_sec = deadline_ms / 1000,
                              .tv_nsec = (deadline_ms % 1000) * 1000000L};
        int rc = pthread_cond_timedwait(&ws->sd_cond, &ws->sd_lock, &ts);
        if (rc != 0 && rc != ETIMEDOUT && rc != EINTR)
            break;
    }
    pthread_mutex_unlock(&ws->sd_lock);
}

void ws__shard_refuse(struct ws_server *ws)
{
    /* From here new sockets are closed unread and new message.send frames
     * are refused with `unavailable`; the ones already accepted finish. */
    atomic_store(&ws->stopping, true);
}

void ws__shard_wait_sends(struct ws_server *ws, long long deadline_ms)
{
    wait_until(ws, &ws->sends_pending, deadline_ms);
}

void ws__shard_close_all(struct ws_server *ws)
{
    /* Every ack is in the inbox ahead of this message (a send is settled
     * only after its answer was pushed), so clients get their acks, then
     * the 1001. */
    struct ws_msg *m = ws__msg_new(WS_M_CLOSE_ALL, 0);
    if (m)
        ws__inbox_push(ws, m);
}

void ws__shard_wait_conns(struct ws_server *ws, long long deadline_ms)
{
    wait_until(ws, &ws->n_conns, deadline_ms);
}

void ws__shard_stop(struct ws_server *ws)
{
    if (!ws)
        return;
    atomic_store(&ws->stopping, true);
    ws__workers_stop(ws);
    if (ws->cluster_presence && ws->loop_started && ws->index == 0) {
        /* Our heartbeat (loop 0's) goes now, so the other instances count
         * our users out at their next beat instead of after the TTL. */
        bool lost;
        char(*gone)[OID_SIZE];
        size_t n_gone;
        struct chat_err e = {0};
        cache_presence_beat(ws->cache, 0, true, false, &lost, &gone, &n_gone, &e);
        free(gone);
    }
    /* messages_send_async calls back exactly once for every accepted send
     * (the store guarantees it, also when it closes): wait, since the
     * callback's argument points into this loop. */
    pthread_mutex_lock(&ws->sd_lock);
    while (ws->callbacks_pending > 0)
        pthread_cond_wait(&ws->sd_cond, &ws->sd_lock);
    pthread_mutex_unlock(&ws->sd_lock);

    if (ws->loop_started) {
        atomic_store(&ws->loop_stop, true);
        lws_cancel_service(ws->ctx);
        pthread_join(ws->loop_thread, NULL);
        ws->loop_started = false;
    }
    /* Destroying the context closes what is left (with libev its first
     * phase already did, on the loop thread); CLOSED callbacks that run here
     * are safe now that the service thread is gone. */
    if (ws->ctx)
        lws_context_destroy(ws->ctx);
    ws->ctx = NULL;
    if (ws->evloop) /* after lws let go of it */
        ev_loop_destroy(ws->evloop);
    ws->evloop = NULL;

    pthread_mutex_lock(&ws->in_lock);
    struct ws_msg *m = ws->in_head;
    ws->in_head = ws->in_tail = NULL;
    ws->in_closed = true;
    pthread_mutex_unlock(&ws->in_lock);
    while (m) {
        struct ws_msg *next = m->next;
        ws__msg_free(ws, m);
        m = next;
    }
    ws__loop_cleanup(ws);
}

void ws__shard_free(struct ws_server *ws)
{
    if (!ws)
        return;
    ws__conns_cleanup(&ws->conns);
    ws__users_cleanup(&ws->users);
    free(ws->wbuf);
    pthread_mutex_destroy(&ws->in_lock);
    pthread_mutex_destroy(&ws->wk_lock);
    pthread_cond_destroy(&ws->wk_cond);
    pthread_mutex_destroy(&ws->sd_lock);
    pthread_cond_destroy(&ws->sd_cond);
    free(ws);
}
