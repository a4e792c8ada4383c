/* server.c - the MHD daemon and the request pipeline.
 *
 * MHD runs with no listening socket (the acceptor owns the port and calls
 * MHD_add_connection, which MHD_USE_ITC makes safe from another thread), an
 * epoll worker pool of HTTP_THREADS, and a connection limit near the fd
 * ceiling (its default, ~1020, would refuse connections long before we run
 * out of descriptors).
 *
 * One request's life:
 *   1. URI log callback (request line parsed): allocate `struct http_req`,
 *      keep the raw target (MHD hands us the path unescaped, but ids go to
 *      core raw, and the log needs the query to redact it).
 *   2. First access-handler call (headers parsed): route.  We return MHD_YES
 *      without queueing, because MHD 0.9.75 adds "Connection: close" to a
 *      response queued on the first call, which would end keep-alive for
 *      every request (measured 25k vs 145k req/s).  The exception is a
 *      declared Content-Length over 1 MiB: we do want to answer before the
 *      body (and close), so the client is not left uploading into a 413.
 *      Streamed routes (POST /api/uploads) run the gate and their own checks
 *      here too (stream_begin), before any of their body is read.
 *   3. Upload calls: collect the body up to 1 MiB; past that keep reading
 *      and discarding, so the client can finish sending and read our 413
 *      instead of being reset mid-upload.  A streamed route gets every piece
 *      instead (routes_uploads_feed), with its own cap.
 *   4. Final call: the pipeline, in the contract's precedence order:
 *      malformed target (400) -> preflight -> (for /api) session + rate
 *      limit -> 404 -> 405 -> 401 -> 413 -> body checks (400/415/400) ->
 *      one core call -> reply.
 *   5. Request-completed callback: log line, metrics, free.
 * Rate limiting runs before 404/405 on /api, as Express's limiter mounted on
 * /api does, so every /api response carries RateLimit-* and a client past
 * its limit gets 429 whatever it asks for.
 *
 * Connections are tracked (NOTIFY_CONNECTION) for two reasons: draining
 * closes idle keep-alive connections, which would otherwise hold
 * shutdown until MHD's idle timeout; and a connection answered before its
 * body was read is handed to the linger thread instead of being closed
 * with unread input (which would reset it).
 *
 * MHD 0.9.75's own error responses (for heads it refuses before calling
 * us) repeat their response head.  We keep out of that path where we can:
 * no MHD strict mode; the acceptor checks every connection's first head
 * (strict HTTP/1.1, contract v1.2) and sends what it refuses to
 * http_server_reject() instead of to MHD; later heads on a keep-alive
 * connection are checked on the first handler call (strict_request); bad
 * targets get our JSON 400.  Request deadlines: deadline.h.
 *
 * This file holds the route table, so it calls every routes_*.c handler;
 * what a handler needs of its request (query values, async answers) lives
 * in request.c, below the handlers, so no handler calls back up here. */
#include "chatli/adapters/http_server.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "chatli/cache.h"
#include "chatli/config.h"
#include "chatli/core.h"
#include "deadline.h"
#include "http_internal.h"
#include "linger.h"
#include "ratelimit.h"
#include "reply.h"
#include "reqlog.h"
#include "chatli/clock.h"
#include "chatli/log.h"
#include "chatli/metrics.h"

#define CONNECTION_TIMEOUT_S 60  /* MHD closes a connection idle this long */
/* MHD's per-connection pool holds the request head and its read buffer;
 * bodies go to our own buffer (HTTP_BODY_MAX), so this only has to exceed
 * the largest head we accept: 8 KiB (NET_HEAD_MAX, nginx's default line
 * buffer), plus room.  Keep it small: MHD 0.9.75 zeroes the whole pool
 * after every request (MHD_pool_reset) and the unused half of its read
 * buffer again, which at 64 KiB was 22% of a cached feed request's CPU
 * (perf), and a keep-alive connection keeps the whole pool touched: an idle
 * REST connection costs the pool in RSS (measured with
 * bench/http/rss_idle.py: 31.8 KiB at 32 KiB, 16.2 KiB at 16 KiB).  Heads
 * between half the pool and the pool (8-16 KiB) reach MHD 0.9.75's error
 * path, which answers 431 with its head sent twice or closes without an
 * answer; larger ones get a clean 431.  The acceptor answers a
 * connection's first head over 8 KiB with 431 itself, so only later
 * requests on a keep-alive connection can meet that path. */
#define CONNECTION_MEMORY (16 * 1024)
#define LINGER_MS 5000

static const http_route_fn handlers[ROUTE__COUNT] = {
    [ROUTE_AUTH_REGISTER] = routes_auth_register,
    [ROUTE_AUTH_LOGIN] = routes_auth_login,
    [ROUTE_AUTH_LOGOUT] = routes_auth_logout,
    [ROUTE_USERS_ME] = routes_users_me,
    [ROUTE_USERS_UPDATE_ME] = routes_users_update_me,
    [ROUTE_USERS_GET] = routes_users_get,
    [ROUTE_USERS_SEARCH] = routes_users_search,
    [ROUTE_POSTS_CREATE] = routes_posts_create,
    [ROUTE_POSTS_LIST] = routes_posts_list,
    [ROUTE_POSTS_GET] = routes_posts_get,
    [ROUTE_POSTS_DELETE] = routes_posts_delete,
    [ROUTE_POSTS_UPDATE] = routes_posts_update,
    [ROUTE_POSTS_LIKE] = routes_posts_like,
    [ROUTE_POSTS_UNLIKE] = routes_posts_unlike,
    [ROUTE_COMMENTS_CREATE] = routes_comments_create,
    [ROUTE_COMMENTS_LIST] = routes_comments_list,
    [ROUTE_CHATS_CREATE] = routes_chats_create,
    [ROUTE_CHATS_LIST] = routes_chats_list,
    [ROUTE_CHATS_GET] = routes_chats_get,
    [ROUTE_CHATS_UPDATE] = routes_chats_update,
    [ROUTE_CHATS_ADD_MEMBER] = routes_chats_add_member,
    [ROUTE_CHATS_REMOVE_MEMBER] = routes_chats_remove_member,
    [ROUTE_MESSAGES_LIST] = routes_messages_list,
    [ROUTE_MESSAGES_SEND] = routes_messages_send,
    [ROUTE_CHATS_READ] = routes_chats_read,
    [ROUTE_MESSAGES_EDIT] = routes_messages_edit,
    [ROUTE_MESSAGES_DELETE] = routes_messages_delete,
    [ROUTE_HEALTHZ] = routes_ops_healthz,
    [ROUTE_READYZ] = routes_ops_readyz,
    [ROUTE_METRICS] = routes_ops_metrics,
    [ROUTE_WEB] = routes_web_get,
    [ROUTE_UPLOADS_CREATE] = routes_uploads_create,
    [ROUTE_UPLOADS_GET] = routes_uploads_get,
};

/* Every server's open connections, for /metrics: a process-wide counter so
 * the gauge never points into a freed server. */
static _Atomic long total_connections;
static pthread_once_t gauge_once = PTHREAD_ONCE_INIT;

static double connections_gauge(void *arg) { return (double)atomic_load(&total_connections); }

static void register_gauge(void)
{
    metrics_register_gauge("chatli_http_connections", "Open REST (libmicrohttpd) connections.",
                           connections_gauge, NULL);
}

/* Moves a connection's deadline (deadline.h): `secs` from now, or none. */
static void set_deadline(struct http_conn *hc, int64_t secs)
{
    if (hc)
        atomic_store_explicit(&hc->deadline_ms, secs > 0 ? clock_mono_ms() + secs * 1000 : 0,
                              memory_order_relaxed);
}

/* ---- async answers ------------------------------------------------------- */

/* Sends the answer an async completion stored (http_async_finish, in
 * request.c).  Returns 0, or -1 when MHD refused the response. */
static int async_reply(struct http_req *rq)
{
    char *body = rq->async_body;
    rq->async_body = NULL;
    if (rq->async_rc != 0) {
        const struct chat_err *err = &rq->async_err;
        if (err->code == CHAT_E_INTERNAL) {
            log_error("%s %s: internal error: %s", rq->method, rq->match.route, err->msg);
            metrics_error("internal");
        } else if (err->code == CHAT_E_UNAVAILABLE) {
            log_warn("%s %s: unavailable: %s", rq->method, rq->match.route, err->msg);
            metrics_error("unavailable");
        }
        return http_reply_err(rq, err);
    }
    return http_reply_text(rq, rq->async_status, HTTP_JSON_TYPE, body, rq->async_len);
}

/* ---- the pipeline -------------------------------------------------------- */

static const char *method_label(const char *m)
{
    static const char *known[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(m, known[i]) == 0)
            return known[i];
    return "OTHER";
}

/* The method as logged: MHD's own string when it is a short run of
 * printable ASCII (the JSON log line needs valid UTF-8), else the label. */
static const char *method_for_log(const struct http_req *rq)
{
    const char *m = rq->method;
    if (!m)
        return rq->method_label ? rq->method_label : "";
    size_t n = 0;
    for (; m[n]; n++)
        if (n >= 32 || (unsigned char)m[n] <= 0x20 || (unsigned char)m[n] >= 0x7f)
            return rq->method_label;
    return m;
}

static const char *header(struct http_req *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

/* The token of "Authorization: Bearer <token>", or NULL. */
static const char *bearer_token(const char *h)
{
    if (!h || strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
        return NULL;
    h += 6;
    while (*h == ' ' || *h == '\t')
        h++;
    return *h ? h : NULL;
}

/* True for "application/json", with any parameters ("; charset=utf-8"). */
static bool is_json_type(const char *ct)
{
    if (!ct)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    return n == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

static void resolve_session(struct http_req *rq)
{
    const char *tok = bearer_token(header(rq, MHD_HTTP_HEADER_AUTHORIZATION));
    if (!tok) {
        rq->auth_rc = CHAT_E_UNAUTHORIZED;
        return;
    }
    struct chat_err err = {0};
    rq->auth_rc = auth_check(rq->srv->core, tok, &rq->session, &err);
    rq->authed = rq->auth_rc == 0;
    if (rq->auth_rc == CHAT_E_UNAVAILABLE || rq->auth_rc == CHAT_E_INTERNAL)
        log_warn("auth check failed: %s", err.msg);
}

static void count_rate(struct http_req *rq)
{
    const struct config *cfg = rq->srv->cfg;
    char key[OID_SIZE + HTTP_IP_MAX + 8];
    /* Every /api/auth/ route is counted per client IP: with a user's bucket
     * a valid token would buy another user's worth of password guesses. */
    bool auth_route = strncmp(rq->path, "/api/auth/", 10) == 0;
    if (rq->authed && !auth_route)
        snprintf(key, sizeof key, "rl:u:%s", rq->session.user_id);
    else
        snprintf(key, sizeof key, "rl:ip:%s", rq->client_ip);
    struct ratelimit_result res;
    struct chat_err err = {0};
    if (http_ratelimit_hit(rq->srv->cache, key, cfg->rate_limit_max, cfg->rate_limit_window_ms, &res,
                           &err) != 0) {
        /* Fail open: a cache outage must not take the API down with it. */
        log_warn("rate limit: cache %s failed: %s", rq->srv->cache->name, err.msg);
        metrics_error("rate_limit_cache");
        return;
    }
    rq->rl_on = true;
    rq->rl_limit = res.limit;
    rq->rl_remaining = res.remaining;
    rq->rl_reset_s = res.reset_s;
    rq->rl_exceeded = res.exceeded;
}

/* An origin-form request target ("/path?query"): it starts with '/' and
 * holds no blank, control or non-ASCII byte (those must be %-escaped).
 * `raw` is the target exactly as received. */
static bool target_ok(const char *raw)
{
    if (raw[0] != '/')
        return false;
    for (const unsigned char *p = (const unsigned char *)raw; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return false;
    return true;
}

static int answered(int reply_rc) { return reply_rc == 0 ? 1 : -1; }

/* The checks that need no body, in the contract's order: malformed target
 * (400) -> preflight -> (for /api) session + rate limit -> 404 -> 405 ->
 * 401.  Runs once per request: on the first call for a streamed body
 * (uploads), else from dispatch.  Returns 0 to go on, 1 when it answered,
 * -1 when MHD refused the answer. */
static int gate(struct http_req *rq)
{
    struct route_match *m = &rq->match;
    if (rq->gated)
        return 0;
    rq->gated = true;
    if (!rq->target_ok)
        return answered(http_reply_error(rq, CHAT_E_BAD_REQUEST, NULL,
                                         "malformed request target (expected /path?query, escaped)"));
    if (strcmp(rq->method, MHD_HTTP_METHOD_OPTIONS) == 0 && m->status != 404)
        return answered(http_reply_preflight(rq)); /* never authenticated or limited */
    if (m->api) {
        resolve_session(rq);
        if (rq->srv->cfg->rate_limit_max > 0) {
            count_rate(rq);
            if (rq->rl_exceeded)
                return answered(http_reply_error(rq, CHAT_E_RATE_LIMITED, NULL,
                                                 "too many requests: retry after the window resets"));
        }
    }
    if (m->status == 404)
        return answered(http_reply_error(rq, CHAT_E_NOT_FOUND, NULL, "no such route"));
    if (m->status == 405)
        return answered(
            http_reply_error(rq, CHAT_E_METHOD_NOT_ALLOWED, NULL, "method not allowed on this route"));
    if (!(m->flags & ROUTE_F_PUBLIC) && !rq->authed)
        return answered(rq->auth_rc == CHAT_E_UNAVAILABLE
                            ? http_reply_error(rq, CHAT_E_UNAVAILABLE, NULL, NULL)
                            : http_reply_error(rq, CHAT_E_UNAUTHORIZED, NULL, NULL));
    return 0;
}

/* Answers the request.  Returns 0, or -1 when MHD refused the response. */
static int dispatch(struct http_req *rq)
{
    struct route_match *m = &rq->match;
    int g = gate(rq);
    if (g != 0)
        return g > 0 ? 0 : -1;
    if (rq->too_large)
        return http_reply_error(rq, CHAT_E_PAYLOAD_TOO_LARGE, NULL, "request body is larger than 1 MiB");

    json_t *body = NULL;
    if (m->flags & ROUTE_F_BODY) {
        if (rq->body_len == 0)
            return http_reply_error(rq, CHAT_E_INVALID_JSON, NULL, "a JSON object body is required");
        if (!is_json_type(header(rq, MHD_HTTP_HEADER_CONTENT_TYPE)))
            return http_reply_error(rq, CHAT_E_UNSUPPORTED_MEDIA, NULL,
                                    "Content-Type must be application/json");
        json_error_t jerr;
        /* jansson rejects invalid UTF-8 and, without JSON_DECODE_ANY, any
         * top-level value but an object or array; duplicate keys are refused
         * so that no two parsers can read one body differently.  An escaped
         * \u0000 is valid JSON, so it is let through (JSON_ALLOW_NUL) for
         * core to refuse as 422 on the field that holds it (docs/api.md). */
        body = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
        if (!body || !json_is_object(body)) {
            json_decref(body);
            return http_reply_error(rq, CHAT_E_INVALID_JSON, NULL,
                                    "request body is not a valid JSON object");
        }
    }

    json_t *out = NULL;
    int status = 200;
    struct chat_err err = {0};
    int rc = handlers[m->op](rq, body, &out, &status, &err);
    json_decref(body);
    if (rq->queued || atomic_load(&rq->async) != HTTP_ASYNC_NONE) {
        /* The handler answered itself (/metrics, the feed), or the answer
         * comes later (http_async_begin). */
        json_decref(out);
        return 0;
    }
    if (rc != 0) {
        json_decref(out);
        if (err.code == 0)
            chat_err_set(&err, rc, NULL, NULL);
        if (rc == CHAT_E_INTERNAL) {
            log_error("%s %s: internal error: %s", rq->method, m->route, err.msg);
            metrics_error("internal");
        } else if (rc == CHAT_E_UNAVAILABLE) {
            log_warn("%s %s: unavailable: %s", rq->method, m->route, err.msg);
            metrics_error("unavailable");
        }
        return http_reply_err(rq, &err);
    }
    if (status == 204) {
        json_decref(out);
        out = NULL;
    }
    return http_reply_json(rq, status, out);
}

/* ---- MHD callbacks ------------------------------------------------------- */

/* A request id: 16 hex characters, unique per process with overwhelming
 * probability.  Ids correlate log lines; they guard nothing, so they need
 * not be unpredictable: a per-thread splitmix64 stream, seeded once from
 * the system's randomness, spares every request a getrandom() system call
 * (~10% of a cached feed request's syscall time, strace). */
static void request_id(char out[17])
{
    static _Thread_local uint64_t state;
    static _Thread_local bool seeded;
    if (!seeded) {
        randombytes_buf(&state, sizeof state);
        seeded = true;
    }
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(z >> (56 - 8 * i));
    sodium_bin2hex(out, 17, b, sizeof b);
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct http_server *s = cls;
    struct http_req *rq = calloc(1, sizeof *rq);
    if (!rq)
        return NULL;
    rq->srv = s;
    rq->conn = conn;
    rq->t0_ns = clock_mono_ns();
    request_id(rq->id);
    rq->target_ok = target_ok(uri);
    size_t plen = strcspn(uri, "?");
    rq->path = strndup(uri, plen);
    rq->log_target = http_redact_target(uri);
    if (!rq->path || !rq->log_target) {
        free(rq->path);
        free(rq->log_target);
        free(rq);
        return NULL;
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    rq->hc = ci ? ci->socket_context : NULL;
    if (rq->hc)
        atomic_store(&rq->hc->busy, true);
    set_deadline(rq->hc, s->cfg->head_timeout_s); /* the rest of the head */
    return rq;
}

static void body_append(struct http_req *rq, const char *data, size_t n)
{
    if (rq->too_large)
        return; /* discarding */
    if (n > HTTP_BODY_MAX - rq->body_len) {
        rq->too_large = true;
        free(rq->body);
        rq->body = NULL;
        rq->body_len = rq->body_cap = 0;
        return;
    }
    if (rq->body_len + n > rq->body_cap) {
        size_t cap = rq->body_cap ? rq->body_cap * 2 : 4096;
        while (cap < rq->body_len + n)
            cap *= 2;
        if (cap > HTTP_BODY_MAX)
            cap = HTTP_BODY_MAX;
        char *nb = realloc(rq->body, cap);
        if (!nb) { /* answer 413 rather than crash: the body is not kept */
            rq->too_large = true;
            free(rq->body);
            rq->body = NULL;
            rq->body_len = rq->body_cap = 0;
            return;
        }
        rq->body = nb;
        rq->body_cap = cap;
    }
    memcpy(rq->body + rq->body_len, data, n);
    rq->body_len += n;
}

/* A declared Content-Length over the limit.  Malformed values never get
 * here: MHD answers them with 400 itself. */
static bool declared_too_large(struct http_req *rq)
{
    const char *cl = header(rq, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!cl)
        return false;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(cl, &end, 10);
    return errno == ERANGE || n > HTTP_BODY_MAX;
}

/* A streamed body (uploads): the gate and the route's own checks run on
 * the first call, before any of the body is read, so a client without a
 * token or over a limit is answered at once (and its body lingered away)
 * instead of making us read megabytes first.  Returns 0, or -1 when MHD
 * refused the answer. */
static int stream_begin(struct http_req *rq)
{
    rq->must_close = true; /* an answer now leaves the body unread */
    int g = gate(rq);
    if (g == 0) {
        struct chat_err err = {0};
        if (routes_uploads_begin(rq, &err) == 0) {
            rq->must_close = false;
            return 0;
        }
        g = answered(http_reply_err(rq, &err));
    }
    if (rq->hc)
        rq->hc->linger = true;
    return g > 0 ? 0 : -1;
}

/* ---- strict HTTP on every request of a connection ------------------------
 *
 * The acceptor checks a connection's first head byte by byte
 * (net_head_check) before MHD sees it; later requests on a keep-alive
 * connection reach only MHD, so the first access-handler call of every
 * request (head complete, body unread) checks what MHD parsed.  What MHD
 * 0.9.75 keeps is enough for most rules (measured: a second Content-Length
 * or Host stays in the list, "Content-Length : 5" becomes a header named
 * "Content-Length " that MHD does not treat as a length), but a NUL ends
 * MHD's copy of a value ("a\0b\1c" reads as "a").  MHD parses the head in
 * place in its read buffer, writing NULs over each ':' and line end, so
 * the raw bytes are still there: between the end of one value and the
 * next header's name there must be nothing but the one or two NULs of the
 * line end, and between a name and its value only the colon's NUL and
 * blanks.  Anything else was a NUL or a line break inside the header.  One
 * case stays unseen: a NUL directly followed by another NUL and more bytes
 * in the last header of a request (its line end cannot be told from the
 * empty line then); the first request of a connection is fully checked. */

struct strict_state {
    const char *why;
    const char *prev_end; /* the end of the previous header's value */
    int cl, te, host;
    const char *te_val;
};

static bool token(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(c >= '0' && c <= '9') && !((c | 0x20) >= 'a' && (c | 0x20) <= 'z') &&
            !strchr("!#$%&'*+-.^_`|~", c))
            return false;
    }
    return true;
}

static bool only(const char *a, const char *b, const char *set, size_t max)
{
    if (b < a || (size_t)(b - a) > max)
        return false;
    for (; a < b; a++)
        if (!memchr(set, *a, strlen(set) + 1)) /* the set's NUL counts */
            return false;
    return true;
}

static enum MHD_Result strict_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                     size_t ks, const char *val, size_t vs)
{
    struct strict_state *st = cls;
    if (!token(key, ks)) {
        st->why = "a header name that is not a token (or blanks before its colon)";
        return MHD_NO;
    }
    for (size_t i = 0; i < vs; i++)
        if ((unsigned char)val[i] < 0x20 ? val[i] != '\t' : val[i] == 0x7f) {
            st->why = "a control character in a header";
            return MHD_NO;
        }
    if ((st->prev_end && !only(st->prev_end, key, "", 2)) ||
        (vs > 0 && !only(key + ks + 1, val, " \t", 4096))) {
        st->why = "a NUL or a stray line break in a header";
        return MHD_NO;
    }
    st->prev_end = val + vs;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
        st->cl++;
    else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0)
        st->te++, st->te_val = val;
    else if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0)
        st->host++;
    return MHD_YES;
}

/* NULL when the request's head is acceptable, else why not. */
static const char *strict_request(struct MHD_Connection *conn, const char *method,
                                  const char *version)
{
    if (!token(method, strlen(method)))
        return "a method that is not a token";
    bool v11 = strcmp(version, MHD_HTTP_VERSION_1_1) == 0;
    if (!v11 && strcmp(version, MHD_HTTP_VERSION_1_0) != 0)
        return "an HTTP version other than 1.0 or 1.1";
    struct strict_state st = {0};
    MHD_get_connection_values_n(conn, MHD_HEADER_KIND, strict_header, &st);
    if (st.why)
        return st.why;
    if (st.prev_end && (st.prev_end[0] != '\0' || st.prev_end[1] != '\0'))
        return "a NUL in a header";
    if ((v11 && st.host != 1) || st.host > 1)
        return "a missing or repeated Host";
    if (st.cl > 1)
        return "more than one Content-Length";
    if (st.te && (st.cl || st.te > 1 || strncasecmp(st.te_val, "chunked", 7) != 0 ||
                  st.te_val[7 + strspn(st.te_val + 7, " \t")] != '\0'))
        return "Transfer-Encoding with Content-Length, or other than one chunked";
    return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct http_req *rq = *con_cls;
    if (!rq)
        return MHD_NO; /* on_uri ran out of memory: drop the connection */
    if (!rq->called) {
        rq->called = true;
        rq->method = method;
        rq->method_label = method_label(method);
        router_match(method, rq->path, strlen(rq->path), &rq->match);
        if (rq->match.web && !rq->srv->cfg->web_ui)
            router_unmatch(&rq->match); /* WEB_UI=0: no web client, / is 404 */
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        http_client_ip(header(rq, "X-Forwarded-For"), rq->srv->cfg->trust_proxy,
                       ci ? ci->client_addr : NULL, rq->client_ip, sizeof rq->client_ip);
        const char *why = strict_request(conn, method, version);
        if (why) {
            /* Answer now and close: the body, if any, cannot be framed. */
            log_info("refused a request head (400): %s", why);
            rq->must_close = true;
            if (rq->hc)
                rq->hc->linger = true;
            return http_reply_error(rq, CHAT_E_BAD_REQUEST, NULL,
                                    "malformed or ambiguous request head") == 0
                       ? MHD_YES : MHD_NO;
        }
        bool body = header(rq, MHD_HTTP_HEADER_TRANSFER_ENCODING) ||
                    (header(rq, MHD_HTTP_HEADER_CONTENT_LENGTH) &&
                     strcmp(header(rq, MHD_HTTP_HEADER_CONTENT_LENGTH), "0") != 0);
        set_deadline(rq->hc, body ? rq->srv->cfg->body_timeout_s : 0);
        if (rq->match.status == 0 && (rq->match.flags & ROUTE_F_STREAM))
            return stream_begin(rq) == 0 ? MHD_YES : MHD_NO;
        if (declared_too_large(rq)) {
            /* Answer now, before the body: MHD will not send 100 Continue,
             * closes after the answer, and the linger thread drains what
             * the client still sends. */
            rq->too_large = true;
            rq->must_close = true;
            if (rq->hc)
                rq->hc->linger = true;
            return dispatch(rq) == 0 ? MHD_YES : MHD_NO;
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (rq->upload)
            routes_uploads_feed(rq, upload_data, *upload_data_size);
        else
            body_append(rq, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    set_deadline(rq->hc, 0); /* the whole request is in: the rest is ours */
    if (rq->queued)
        return MHD_YES;
    switch (atomic_load_explicit(&rq->async, memory_order_acquire)) {
    case HTTP_ASYNC_PENDING:
        return MHD_YES; /* not resumed by us: keep waiting */
    case HTTP_ASYNC_DONE:
        return async_reply(rq) == 0 ? MHD_YES : MHD_NO;
    default:
        return dispatch(rq) == 0 ? MHD_YES : MHD_NO;
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_req *rq = *con_cls;
    *con_cls = NULL;
    if (!rq)
        return;
    double secs = (double)(clock_mono_ns() - rq->t0_ns) / 1e9;
    const char *method = rq->method_label ? rq->method_label : "OTHER";
    if (rq->queued)
        metrics_http_request(rq->match.route ? rq->match.route : "other", method, rq->status, secs);
    int level = rq->status >= 500 ? LOG_WARN : LOG_INFO;
    if (log_enabled(level)) {
        json_t *f = json_pack("{s:s, s:s, s:s, s:s, s:i, s:f, s:s}", "msg", "request", "reqId", rq->id,
                              "method", method_for_log(rq), "path", rq->log_target,
                              "status", rq->status, "durationMs", secs * 1000.0, "ip", rq->client_ip);
        if (f) {
            if (rq->authed)
                json_object_set_new(f, "userId", json_string(rq->session.user_id));
            if (!rq->queued)
                json_object_set_new(f, "aborted", json_true());
            log_json(level, f);
            json_decref(f);
        }
    }
    if (rq->hc) {
        atomic_fetch_add(&rq->hc->served, 1);
        atomic_store(&rq->hc->busy, false);
        set_deadline(rq->hc, CONNECTION_TIMEOUT_S); /* for the next request line */
    }
    if (rq->upload)
        routes_uploads_free(rq);
    free(rq->body);
    free(rq->async_body);
    free(rq->path);
    free(rq->log_target);
    free(rq);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&total_connections, 1);
        atomic_fetch_add(&s->n_conns, 1);
        struct http_conn *hc = calloc(1, sizeof *hc);
        if (!hc)
            return; /* untracked: drains by timeout, closes without lingering */
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        hc->fd = ci ? ci->connect_fd : -1;
        set_deadline(hc, s->cfg->head_timeout_s); /* its first head */
        pthread_mutex_lock(&s->conns_mu);
        LIST_INSERT_HEAD(&s->conns, hc, link);
        pthread_mutex_unlock(&s->conns_mu);
        *socket_context = hc;
        return;
    }
    /* MHD_CONNECTION_NOTIFY_CLOSED: MHD calls this before it closes the fd,
     * so the fd is still ours to dup, and draining (which holds conns_mu
     * while it shuts fds down) never touches a closed or reused number. */
    atomic_fetch_sub(&total_connections, 1);
    atomic_fetch_sub(&s->n_conns, 1);
    if (s->on_closed) {
        const union MHD_ConnectionInfo *ai =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        s->on_closed(s->on_closed_arg, ai ? ai->client_addr : NULL);
    }
    struct http_conn *hc = *socket_context;
    *socket_context = NULL;
    if (!hc)
        return;
    pthread_mutex_lock(&s->conns_mu);
    LIST_REMOVE(hc, link);
    pthread_mutex_unlock(&s->conns_mu);
    if (hc->linger && hc->fd >= 0) {
        int dup_fd = fcntl(hc->fd, F_DUPFD_CLOEXEC, 0);
        if (dup_fd >= 0)
            http_linger_add(s->linger, dup_fd);
    }
    free(hc);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    /* At run time these are nearly all client mistakes (malformed heads,
     * bad Content-Length) that MHD has already answered: info, not warn. */
    log_info("libmicrohttpd: %s", buf);
}

/* ---- life cycle ---------------------------------------------------------- */

int http_server_open(const struct http_server_deps *deps, struct http_server **out,
                     struct chat_err *err)
{
    *out = NULL;
    int rc;
    struct http_server *s = calloc(1, sizeof *s);
    if (!s)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "out of memory");
    s->cfg = deps->cfg;
    s->core = deps->core;
    s->store = deps->store;
    s->cache = deps->cache;
    s->bus = deps->bus;
    s->media = deps->media;
    s->on_closed = deps->on_closed;
    s->on_closed_arg = deps->on_closed_arg;
    pthread_mutex_init(&s->conns_mu, NULL);
    LIST_INIT(&s->conns);
    if ((rc = cors_init(&s->cors, s->cfg->cors_origins, err)) != 0)
        goto fail_cors;
    if ((rc = http_linger_open(LINGER_MS, &s->linger, err)) != 0)
        goto fail_linger;
    pthread_once(&gauge_once, register_gauge);
    unsigned threads = s->cfg->http_threads > 0 ? (unsigned)s->cfg->http_threads : 4;
    /* MHD splits its limit among the pool's workers, and MHD 0.9.75 at a
     * worker's limit leaks a mutex and stops serving: the acceptor admits
     * at most conn_limit connections, so give every worker room for all. */
    unsigned limit = (deps->conn_limit ? deps->conn_limit : 10000) * threads + threads;
    s->daemon = MHD_start_daemon(
        MHD_USE_NO_LISTEN_SOCKET | MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC |
            MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
        0,
        NULL, NULL, on_request, s,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s, /* first, or MHD logs earlier options to stderr */
        MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_CONNECTION_LIMIT, limit,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
        /* Not MHD_OPTION_STRICT_FOR_CLIENT: its extra refusals (a missing
         * Host, stray spaces) go through MHD 0.9.75's error path, which
         * sends the response head twice.  Malformed targets are refused
         * by target_ok() instead, with a proper JSON 400. */
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_END);
    if (!s->daemon) {
        rc = chat_err_set(err, CHAT_E_INTERNAL, NULL, "MHD_start_daemon failed");
        goto fail_mhd;
    }
    if ((rc = http_deadlines_open(s, &s->deadlines, err)) != 0) {
        MHD_stop_daemon(s->daemon);
        goto fail_mhd;
    }
    *out = s;
    return 0;
fail_mhd:
    http_linger_close(s->linger);
fail_linger:
    cors_cleanup(&s->cors);
fail_cors:
    pthread_mutex_destroy(&s->conns_mu);
    free(s);
    return rc;
}

void http_server_add_connection(struct http_server *s, int fd, const struct sockaddr *sa,
                                socklen_t salen)
{
    /* MHD closes the socket itself when it cannot take it. */
    if (MHD_add_connection(s->daemon, fd, sa, salen) != MHD_YES) {
        log_warn("MHD refused a connection: %s", strerror(errno));
        metrics_error("http_add_connection");
        if (s->on_closed)
            s->on_closed(s->on_closed_arg, sa);
    }
}

/* What a refusal by status says: the error code, reason phrase, message
 * and any extra header line. */
struct reject_kind {
    int status, code;
    const char *reason, *msg, *extra;
};

static const struct reject_kind reject_kinds[] = {
    {400, CHAT_E_BAD_REQUEST, "Bad Request", "malformed or ambiguous request head", ""},
    {413, CHAT_E_PAYLOAD_TOO_LARGE, "Content Too Large", "Content-Length is too large", ""},
    {426, CHAT_E_BAD_REQUEST, "Upgrade Required", "only WebSocket version 13 is supported",
     "Sec-WebSocket-Version: 13\r\n"},
    {431, CHAT_E_BAD_REQUEST, "Request Header Fields Too Large",
     "request head larger than 8 KiB", ""},
    {503, CHAT_E_UNAVAILABLE, "Service Unavailable",
     "the server is at its connection limit: retry later", "Retry-After: 1\r\n"},
};

static const struct reject_kind *reject_kind(int status)
{
    for (size_t i = 0; i < sizeof reject_kinds / sizeof reject_kinds[0]; i++)
        if (reject_kinds[i].status == status)
            return &reject_kinds[i];
    return &reject_kinds[0];
}

/* Reads and discards what the client has sent so far; true when nothing
 * is left unread (a bounded effort: a few reads, never a wait). */
static bool drained(int fd)
{
    char buf[16384];
    for (int i = 0; i < 4; i++) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)))
            return true;
        if (n < 0)
            return errno != EINTR;
    }
    return false;
}

void http_server_reject(struct http_server *s, int fd, int status)
{
    const struct reject_kind *k = reject_kind(status);
    json_t *body = http_error_body(k->code, NULL, k->msg);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        close(fd);
        return;
    }
    unsigned char rnd[8];
    char id[17];
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(id, sizeof id, rnd, sizeof rnd);
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: " HTTP_JSON_TYPE "\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n%s"
                     "X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n"
                     "Referrer-Policy: no-referrer\r\n"
                     "Content-Security-Policy: default-src 'none'; frame-ancestors 'none'\r\n"
                     "Cache-Control: no-store\r\nX-Request-Id: %s\r\n%s\r\n",
                     k->status, k->reason, strlen(text), k->extra, id,
                     s->cors.any ? "Access-Control-Allow-Origin: *\r\n" : "");
    /* A fresh socket's send buffer takes these few hundred bytes at once;
     * if it somehow does not, the client gets a truncated answer and the
     * close, which is all a malformed request can expect. */
    struct iovec iov[2] = {{head, (size_t)n}, {text, strlen(text)}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w;
    free(text);
    shutdown(fd, SHUT_WR);
    if (k->status == 503 && drained(fd)) {
        /* At the ceiling a lingering socket would hold a descriptor for
         * seconds; with nothing unread the close sends FIN, not a reset. */
        close(fd);
    } else {
        http_linger_add(s->linger, fd); /* unread bytes must not turn the close into a reset */
    }
    metrics_http_request("other", "OTHER", k->status, 0.0);
    if (k->status != 503) /* admission refusals can come by the thousand: metrics only */
        log_info("refused a connection's first request head (%d, reqId %s)", k->status, id);
}

unsigned http_server_connections(struct http_server *s)
{
    long n = atomic_load(&s->n_conns);
    return n > 0 ? (unsigned)n : 0;
}

/* Shuts the read side of every keep-alive connection that is between
 * requests.  MHD then reads end-of-file and closes it; bytes already
 * received are still read first.  Connections that never completed a
 * request are left alone: the acceptor hands over only sockets whose
 * request has begun to arrive, and that request must be served. */
static void close_idle(struct http_server *s)
{
    pthread_mutex_lock(&s->conns_mu);
    struct http_conn *hc;
    LIST_FOREACH(hc, &s->conns, link) {
        if (hc->shut || hc->fd < 0 || atomic_load(&hc->busy) || atomic_load(&hc->served) == 0)
            continue;
        shutdown(hc->fd, SHUT_RD);
        hc->shut = true;
    }
    pthread_mutex_unlock(&s->conns_mu);
}

bool http_server_drain(struct http_server *s, long long deadline_ms)
{
    atomic_store(&s->draining, true);
    /* A socket the acceptor handed over just before it stopped may still sit
     * in MHD's queue of new connections (counted only once a worker takes
     * it), so "none left" must hold on two looks 20 ms apart. */
    int zero_seen = 0;
    for (;;) {
        close_idle(s);
        if (atomic_load(&s->n_conns) <= 0) {
            if (++zero_seen >= 2)
                return true;
        } else {
            zero_seen = 0;
        }
        if (clock_mono_ns() / 1000000 >= deadline_ms)
            return false;
        usleep(zero_seen ? 20000 : 10000);
    }
}

void http_server_close(struct http_server *s)
{
    if (!s)
        return;
    /* MHD must not stop with a suspended connection (its API forbids it;
     * 0.9.75 aborts).  Every begun async answer finishes: the store calls
     * back every queued append, even failed or during its own shutdown,
     * which comes after ours, and a stuck statement gives up after its
     * busy timeout. */
    for (int waited_ms = 0; atomic_load(&s->n_async) > 0; waited_ms += 5) {
        if (waited_ms > 0 && waited_ms % 5000 == 0)
            log_warn("http: waiting for %ld async answers before stopping",
                     atomic_load(&s->n_async));
        usleep(5000);
    }
    http_deadlines_close(s->deadlines); /* it walks the connection list */
    MHD_stop_daemon(s->daemon); /* calls on_completed / on_connection for what is left */
    http_linger_close(s->linger);
    cors_cleanup(&s->cors);
    pthread_mutex_destroy(&s->conns_mu);
    free(s);
}
