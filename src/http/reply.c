/* reply.c - statuses, error bodies and the headers of every response.
 *
 * http_status_of is the one place a domain code becomes an HTTP status
 * (STYLE.md section 4): it reads the status from each code's line of
 * CHAT_ERRORS, while core and the WebSocket gateway only use codes and
 * their wire strings.  Headers are added here, not by routes, so no
 * response can leave without its security headers or its RateLimit-*
 * numbers. */
#include "reply.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_internal.h"
#include "chatli/err.h"
#include "chatli/log.h"

int http_status_of(int code)
{
    switch (code) {
    case CHAT_OK:
        return 200;
#define STATUS(name, value, status, wire, msg) \
    case CHAT_E_##name:                        \
        return status;
        CHAT_ERRORS(STATUS)
#undef STATUS
    default: /* a positive or unlisted code is a bug of ours, not the client's */
        return 500;
    }
}

json_t *http_error_body(int code, const char *field, const char *msg)
{
    if (http_status_of(code) == 500)
        code = CHAT_E_INTERNAL; /* one shape for every unexpected code */
    if (code == CHAT_E_INTERNAL || !msg || !*msg)
        msg = chat_err_default_msg(code);
    json_t *e = json_pack("{s:s, s:s}", "code", chat_err_wire(code), "message", msg);
    if (!e) /* msg was not valid UTF-8: never echo it */
        e = json_pack("{s:s, s:s}", "code", chat_err_wire(code), "message", chat_err_default_msg(code));
    if (e && code == CHAT_E_VALIDATION && field && *field)
        json_object_set_new(e, "field", json_string(field));
    return e ? json_pack("{s:o}", "error", e) : NULL;
}

static void add(struct MHD_Response *r, const char *name, const char *value)
{
    if (MHD_add_response_header(r, name, value) != MHD_YES)
        log_warn("cannot add response header %s", name);
}

static void add_num(struct MHD_Response *r, const char *name, long long v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    add(r, name, buf);
}

static const char *origin_of(struct http_req *rq)
{
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ORIGIN);
}

/* The API's policy: its answers are data, never a page, and never cached. */
#define API_CSP "default-src 'none'; frame-ancestors 'none'"
#define API_CACHE "no-store"

/* Headers every response carries; `csp` and `cache` are API_CSP and
 * API_CACHE except for the web client's files (http_reply_static). */
static void add_common(struct http_req *rq, struct MHD_Response *r, int status, const char *csp,
                       const char *cache)
{
    add(r, "X-Content-Type-Options", "nosniff");
    add(r, "X-Frame-Options", "DENY");
    add(r, "Referrer-Policy", "no-referrer");
    add(r, "Content-Security-Policy", csp);
    add(r, "Cache-Control", cache);
    add(r, "X-Request-Id", rq->id);

    const struct cors *cors = &rq->srv->cors;
    const char *allow = cors_allow_origin(cors, origin_of(rq));
    if (allow) {
        add(r, "Access-Control-Allow-Origin", allow);
        add(r, "Access-Control-Expose-Headers",
            "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After, X-Request-Id");
    }
    if (!cors->any) /* the answer depends on Origin: caches must key on it */
        add(r, "Vary", "Origin");

    if (rq->rl_on) {
        add_num(r, "RateLimit-Limit", rq->rl_limit);
        add_num(r, "RateLimit-Remaining", rq->rl_remaining);
        add_num(r, "RateLimit-Reset", rq->rl_reset_s);
    }
    if (status == 429)
        add_num(r, "Retry-After", rq->retry_after_s > 0 ? rq->retry_after_s
                                  : rq->rl_reset_s > 0 ? rq->rl_reset_s : 1);
    if (status == 405 && rq->match.allow[0])
        add(r, "Allow", rq->match.allow);
    if (status == 401) /* RFC 9110 requires a challenge on every 401 */
        add(r, "WWW-Authenticate", "Bearer");
    /* While draining, finish this request and let the client reconnect
     * elsewhere instead of holding an idle keep-alive connection open; and
     * a connection whose body we did not read cannot carry another request. */
    if (rq->must_close || atomic_load(&rq->srv->draining))
        add(r, "Connection", "close");
}

static int queue_as(struct http_req *rq, int status, struct MHD_Response *r, const char *csp,
                    const char *cache)
{
    if (!r)
        return -1;
    add_common(rq, r, status, csp, cache);
    enum MHD_Result ok = MHD_queue_response(rq->conn, (unsigned)status, r);
    MHD_destroy_response(r); /* MHD keeps its own reference */
    if (ok != MHD_YES)
        return -1;
    rq->queued = true;
    rq->status = status;
    return 0;
}

static int queue(struct http_req *rq, int status, struct MHD_Response *r)
{
    return queue_as(rq, status, r, API_CSP, API_CACHE);
}

/* A growing output buffer for json_dump_callback. */
struct dump_buf {
    char *p;
    size_t len, cap;
};

static int dump_cb(const char *chunk, size_t n, void *arg)
{
    struct dump_buf *b = arg;
    if (n > b->cap - b->len) {
        size_t cap = b->cap;
        while (n > cap - b->len)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np)
            return -1;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, chunk, n);
    b->len += n;
    return 0;
}

/* Serializes `body` into a new malloc'd buffer of *len bytes (not
 * NUL-terminated), or NULL when out of memory.  Unlike json_dumps it
 * starts at a size that holds most bodies and skips json_dumps' final
 * copy and our strlen: the buffer goes to MHD as it is. */
static char *dump(json_t *body, size_t *len)
{
    struct dump_buf b = {.p = malloc(2048), .cap = 2048};
    if (!b.p)
        return NULL;
    if (json_dump_callback(body, dump_cb, &b, JSON_COMPACT) != 0) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

int http_reply_json(struct http_req *rq, int status, json_t *body)
{
    struct MHD_Response *r;
    if (!body) {
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    } else {
        size_t len = 0;
        char *s = dump(body, &len);
        json_decref(body);
        if (!s) {
            /* Out of memory: a static body still answers. */
            static const char oom[] = "{\"error\":{\"code\":\"internal\",\"message\":\"internal error\"}}";
            status = 500;
            r = MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
        } else {
            r = MHD_create_response_from_buffer(len, s, MHD_RESPMEM_MUST_FREE);
            if (!r)
                free(s);
        }
        if (r)
            add(r, "Content-Type", HTTP_JSON_TYPE);
    }
    return queue(rq, status, r);
}

int http_reply_error(struct http_req *rq, int code, const char *field, const char *msg)
{
    return http_reply_json(rq, http_status_of(code), http_error_body(code, field, msg));
}

int http_reply_err(struct http_req *rq, const struct chat_err *err)
{
    int code = err && err->code ? err->code : CHAT_E_INTERNAL;
    return http_reply_error(rq, code, err ? err->field : NULL, err ? err->msg : NULL);
}

int http_reply_text(struct http_req *rq, int status, const char *content_type, char *buf, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(buf);
        return -1;
    }
    add(r, "Content-Type", content_type);
    return queue(rq, status, r);
}

int http_reply_preflight(struct http_req *rq)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r)
        return -1;
    if (cors_allow_origin(&rq->srv->cors, origin_of(rq))) {
        add(r, "Access-Control-Allow-Methods", rq->match.allow);
        add(r, "Access-Control-Allow-Headers", "Authorization, Content-Type");
        add(r, "Access-Control-Max-Age", "600");
    }
    return queue(rq, 204, r);
}

int http_reply_static(struct http_req *rq, int status, const char *type, const void *data,
                      size_t len, const char *etag, const char *csp)
{
    /* MHD_RESPMEM_PERSISTENT: the bytes live in the binary, nothing to copy. */
    struct MHD_Response *r = MHD_create_response_from_buffer(status == 304 ? 0 : len, (void *)data,
                                                             MHD_RESPMEM_PERSISTENT);
    if (!r)
        return -1;
    if (status != 304)
        add(r, "Content-Type", type);
    add(r, "ETag", etag);
    /* "no-cache": keep the file but ask every time; the ETag makes the
     * answer a bodiless 304 until the next build changes the file. */
    return queue_as(rq, status, r, csp, "no-cache");
}

int http_reply_asset(struct http_req *rq, int status, const char *content_type, int fd,
                     uint64_t size, const char *etag)
{
    struct MHD_Response *r =
        fd >= 0 ? MHD_create_response_from_fd64(size, fd)
                : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (fd >= 0)
        add(r, "Content-Type", content_type);
    add(r, "ETag", etag);
    /* The name is the content's digest: it never changes meaning. */
    return queue_as(rq, status, r, API_CSP, "public, max-age=31536000, immutable");
}
