/* http_internal.h - what server.c, request.c, reply.c and routes_*.c
 * share: the server and per-request structs, the route handler signature,
 * the request helpers handlers call (request.c) and the handlers
 * themselves (routes_*.c, listed in server.c's route table).  Not a public
 * header: main.c uses chatli/adapters/http_server.h only. */
#ifndef CHATLI_HTTP_HTTP_INTERNAL_H
#define CHATLI_HTTP_HTTP_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "chatli/core.h"
#include "cors.h"
#include "router.h"
#include "chatli/err.h"

struct MHD_Daemon;
struct MHD_Connection;
struct config;
struct store;
struct cache;
struct bus;
struct media;
struct http_linger;
struct http_upload;
struct http_deadlines;
struct sockaddr;

/* Largest JSON request body we buffer (CONTRACT.md section 1). */
#define HTTP_BODY_MAX (1024 * 1024)

/* One MHD connection, tracked so that shutdown can close idle keep-alive
 * connections and so that a connection whose request body was left unread
 * can linger before it closes.
 * Threads: created and freed by the MHD worker that owns the connection
 * (NOTIFY_CONNECTION), linked into http_server.conns under conns_mu, which
 * main also takes to walk the list while draining.  `busy` and `served`
 * are written by the owning worker and read by main, hence atomic; `fd`
 * is immutable; `linger` is touched by the owning worker only. */
struct http_conn {
    int fd;
    _Atomic bool busy;  /* a request has begun and not completed */
    _Atomic long served; /* requests completed on this connection */
    bool linger;        /* an answer went out before the body was read */
    bool shut;          /* draining shut its read side (main, under conns_mu) */
    /* deadline.h: CLOCK_MONOTONIC ms by which the current state must end,
     * 0 = none; written by the owning worker, read by the deadline thread. */
    _Atomic int64_t deadline_ms;
    bool expired;       /* the deadline thread shut it (under conns_mu) */
    LIST_ENTRY(http_conn) link; /* in http_server.conns */
};

/* Threads: every field is set in http_server_open and immutable after,
 * except `draining` (set once by main, read by every worker), the
 * connection list (conns_mu), and the daemon, which MHD makes thread-safe. */
struct http_server {
    const struct config *cfg; /* borrowed */
    struct core *core;        /* borrowed */
    struct store *store;      /* borrowed: /readyz */
    struct cache *cache;      /* borrowed: rate limits, /readyz */
    struct bus *bus;          /* borrowed, may be NULL: /readyz */
    struct media *media;      /* borrowed: uploads, /uploads/, /readyz */
    struct cors cors;
    struct MHD_Daemon *daemon;
    struct http_linger *linger;
    struct http_deadlines *deadlines;
    _Atomic bool draining;
    _Atomic long n_conns;     /* open MHD connections (NOTIFY_CONNECTION) */
    _Atomic long n_async;     /* requests suspended for an async answer (http_async_*) */
    void (*on_closed)(void *arg, const struct sockaddr *sa); /* admission give-back, may be NULL */
    void *on_closed_arg;
    pthread_mutex_t conns_mu;
    LIST_HEAD(, http_conn) conns;
};

enum http_async_state {
    HTTP_ASYNC_NONE = 0,    /* answered on the worker, as usual */
    HTTP_ASYNC_PENDING = 1, /* the connection is suspended, the answer is being made elsewhere */
    HTTP_ASYNC_DONE = 2,    /* the async_* fields hold the answer; the connection is resuming */
};

/* One request, from the URI log callback to the request-completed
 * callback (which frees it).  Owned by the MHD worker that serves the
 * connection; no other thread sees it, except that while `async` is
 * PENDING one completion (http_async_finish, on any thread) writes the
 * async_* fields and then stores DONE (release); the worker reads them only
 * after it loads DONE (acquire), when MHD calls the handler again after
 * the resume. */
struct http_req {
    struct http_server *srv;
    struct http_conn *hc;         /* may be NULL if tracking failed */
    struct MHD_Connection *conn;
    char id[17];                  /* X-Request-Id: 16 random hex characters */
    int64_t t0_ns;
    const char *method;           /* MHD's string, valid until completion */
    const char *method_label;     /* a literal for metrics ("GET", ..., "OTHER") */
    char *path;                   /* new: the raw path, without the query */
    char *log_target;             /* new: path + query with token values redacted */
    bool target_ok;               /* the raw target is origin-form and escaped */
    struct route_match match;
    bool called;                  /* the access handler ran at least once */
    bool gated;                   /* the checks before the body ran (server.c gate) */
    struct http_upload *upload;   /* new: a streamed upload (routes_uploads.c), else NULL */
    bool queued;                  /* a response was queued */
    bool must_close;              /* answered before the body was read: close after */
    int status;                   /* the queued status */
    /* the body */
    char *body;                   /* new */
    size_t body_len, body_cap;
    bool too_large;
    /* auth */
    bool authed;
    int auth_rc;                  /* auth_check's result when a token was sent */
    struct session session;
    /* rate limit, when counted */
    bool rl_on;
    int64_t rl_limit, rl_remaining, rl_reset_s;
    bool rl_exceeded;
    int64_t retry_after_s;        /* a 429 from another limit (failed logins); 0 = rl_reset_s */
    char client_ip[64];
    /* an answer completed on another thread (http_async_begin/finish) */
    _Atomic int async;            /* enum http_async_state */
    int async_rc;                 /* 0, or the CHAT_E_* to answer */
    int async_status;             /* the status when async_rc is 0 */
    char *async_body;             /* new: the JSON body when async_rc is 0 */
    size_t async_len;
    struct chat_err async_err;    /* when async_rc is not 0 */
};

/* A route handler: calls core and returns 0 with *out (a new reference, or
 * NULL for an empty 204) and *status set, or a CHAT_E_* code with `err`
 * filled.  A handler may instead queue a response itself (http_reply_*),
 * then returns 0 with *out NULL: the caller sees rq->queued. */
typedef int (*http_route_fn)(struct http_req *rq, json_t *body, json_t **out, int *status,
                             struct chat_err *err);

/* request.c: what a handler may ask of its request.
 *
 * Answering on another thread, for a handler whose core call completes
 * through a callback (POST messages: the store's group commit).  The
 * handler calls http_async_begin, which suspends the connection so the
 * worker serves other connections meanwhile, starts the core call, and
 * returns 0 with *out NULL.  Exactly one http_async_finish follows, from
 * the core callback on whatever thread it runs, or from the handler itself
 * when the core call failed before queueing; it stores the answer and
 * resumes the connection, and `rq` must not be touched after it.  MHD then
 * calls the handler again on the worker, which sends the stored answer.
 * http_async_finish steals `body` (a malloc'd JSON text) when rc is 0; `err`
 * is copied when rc is not 0.  Shutdown waits for every begun request to
 * finish before it stops MHD (MHD must not stop with a suspended
 * connection). */
void http_async_begin(struct http_req *rq);
void http_async_finish(struct http_req *rq, int rc, int status, char *body, size_t len,
                       const struct chat_err *err);

/* A query-string value (decoded by MHD), NULL when absent. */
const char *http_query(struct http_req *rq, const char *key);
/* The ?limit, ?before, ?afterSeq values. */
void http_page_params(struct http_req *rq, struct page_params *pp);

/* routes_*.c */
int routes_auth_register(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_auth_login(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_auth_logout(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_users_me(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_users_update_me(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_users_get(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_users_search(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_posts_create(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_posts_list(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_posts_get(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_posts_delete(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_posts_update(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_posts_like(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_posts_unlike(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_comments_create(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_comments_list(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_chats_create(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_chats_list(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_chats_get(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_chats_update(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_chats_add_member(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_chats_remove_member(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_messages_list(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_messages_send(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_messages_edit(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_messages_delete(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_chats_read(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_ops_healthz(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_ops_readyz(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_ops_metrics(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_web_get(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_uploads_create(struct http_req *, json_t *, json_t **, int *, struct chat_err *);
int routes_uploads_get(struct http_req *, json_t *, json_t **, int *, struct chat_err *);

/* routes_uploads.c: the streamed body of POST /api/uploads.  server.c
 * calls begin on the first access-handler call (after auth and the REST
 * rate limit, before any of the body is read): 0 to read the body, or an
 * error to answer at once.  feed gets every piece of the body, then the
 * final call runs routes_uploads_create; free runs when MHD completes the
 * request (any outcome) and removes a temp file left behind. */
int routes_uploads_begin(struct http_req *rq, struct chat_err *err);
void routes_uploads_feed(struct http_req *rq, const char *data, size_t n);
void routes_uploads_free(struct http_req *rq);

#endif
