/* reply.h - every REST response goes out through here.
 *
 * reply.c is the only reader of the HTTP status of a CHAT_E_* code, builds
 * the contract's error body, and adds the headers every response carries:
 * Content-Type, security headers, X-Request-Id, CORS, RateLimit-*, Allow
 * (405), Retry-After (429), and Connection: close while draining.
 * Threads: called on the MHD worker that owns the request. */
#ifndef CHATLI_HTTP_REPLY_H
#define CHATLI_HTTP_REPLY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct http_req;
struct chat_err;

#define HTTP_JSON_TYPE "application/json; charset=utf-8"

/* The HTTP status for a CHAT_E_* code (200 for 0, 500 for unknown codes). */
int http_status_of(int code);

/* {"error":{"code","message","field"?}}: `field` is included only for
 * CHAT_E_VALIDATION; `msg` NULL or empty takes the code's default text, and
 * CHAT_E_INTERNAL always does (its details belong in the log).  New. */
json_t *http_error_body(int code, const char *field, const char *msg);

/* Queues `status` with `body` (steals it; NULL for an empty body) as JSON.
 * Returns 0, or -1 when MHD refused (the caller drops the connection). */
int http_reply_json(struct http_req *rq, int status, json_t *body);

/* Queues the error response for `code`. */
int http_reply_error(struct http_req *rq, int code, const char *field, const char *msg);
int http_reply_err(struct http_req *rq, const struct chat_err *err);

/* Queues a non-JSON body: steals `buf` (malloc'd, `len` bytes). */
int http_reply_text(struct http_req *rq, int status, const char *content_type, char *buf, size_t len);

/* Queues one of the web client's files: `len` bytes at `data` (borrowed,
 * must outlive the response: the embedded files do) as `type`, with its
 * `etag`, `Cache-Control: no-cache` and the page's own
 * Content-Security-Policy `csp` instead of the API's.  Status 304 sends
 * no body.  Returns 0, or -1 when MHD refused. */
int http_reply_static(struct http_req *rq, int status, const char *type, const void *data,
                      size_t len, const char *etag, const char *csp);

/* Answers a CORS preflight (OPTIONS on a known route): 204, with the allow
 * headers only when the Origin is listed. */
int http_reply_preflight(struct http_req *rq);

/* A public file: `fd` (stolen, closed by MHD or here on failure) of
 * `size` bytes with `content_type`, or no body when fd is -1 (a 304).
 * Carries `etag` and a one-year immutable Cache-Control instead of
 * no-store.  Returns 0, or -1 when MHD refused the response. */
int http_reply_asset(struct http_req *rq, int status, const char *content_type, int fd,
                     uint64_t size, const char *etag);

#endif
