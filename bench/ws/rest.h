/* rest.h - the generator's REST calls (seeding and the broadcast post).
 *
 * Seeding registers thousands of users and creates hundreds of chats, so
 * requests run as a batch over libcurl's multi interface, `parallel` at a
 * time on kept-alive connections.  Not on any measured path except the one
 * POST that starts a broadcast.  Threads: one owner per struct rest. */
#ifndef CHATLI_BENCH_REST_H
#define CHATLI_BENCH_REST_H

#include <stddef.h>

struct rest_req {
    const char *method; /* borrowed: "GET", "POST", ... */
    char *path;         /* new (freed by rest_req_cleanup): "/api/..." */
    char *body;         /* new or NULL: a JSON body */
    const char *token;  /* borrowed or NULL: the bearer token */
    long status;        /* out: HTTP status, 0 when the transfer failed */
    char *resp;         /* out, new: the response body, NUL-terminated */
    size_t resp_len;
};

struct rest;

/* base: "http://127.0.0.1:8080".  Returns NULL on allocation failure. */
struct rest *rest_new(const char *base);
void rest_free(struct rest *r);

/* Runs every request, at most `parallel` at once.  Returns 0 when every
 * transfer completed (whatever its status), -1 otherwise; statuses and
 * bodies are in reqs[]. */
int rest_run(struct rest *r, struct rest_req *reqs, size_t n, int parallel);

void rest_req_cleanup(struct rest_req *q);

#endif
