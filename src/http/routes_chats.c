/* routes_chats.c - /api/chats, members, messages and read marks.
 *
 * POST messages answers only after the store's writer has committed the
 * message, so a 201 means the message is durable, the same promise as the
 * WebSocket ack.  It does not hold its MHD worker meanwhile: the
 * connection is suspended (http_async_begin) and resumed by the commit's
 * callback, so a worker keeps serving other connections and one group
 * commit can take every send in flight, not just one per worker (with
 * blocking workers a batch was at most HTTP_THREADS messages). */
#include <stdlib.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

int routes_chats_create(struct http_req *rq, json_t *body, json_t **out, int *status,
                        struct chat_err *err)
{
    bool created = false;
    int rc = chats_create(rq->srv->core, &rq->session, body, out, &created, err);
    *status = created ? 201 : 200; /* 200: the existing direct chat */
    return rc;
}

int routes_chats_list(struct http_req *rq, json_t *body, json_t **out, int *status,
                      struct chat_err *err)
{
    struct page_params pp;
    http_page_params(rq, &pp);
    *status = 200;
    return chats_list(rq->srv->core, &rq->session, &pp, out, err);
}

int routes_chats_get(struct http_req *rq, json_t *body, json_t **out, int *status,
                     struct chat_err *err)
{
    *status = 200;
    return chats_get(rq->srv->core, &rq->session, rq->match.params[0], out, err);
}

int routes_chats_update(struct http_req *rq, json_t *body, json_t **out, int *status,
                        struct chat_err *err)
{
    *status = 200;
    return chats_rename(rq->srv->core, &rq->session, rq->match.params[0], body, out, err);
}

int routes_chats_add_member(struct http_req *rq, json_t *body, json_t **out, int *status,
                            struct chat_err *err)
{
    *status = 200;
    return chats_add_member(rq->srv->core, &rq->session, rq->match.params[0], body, out, err);
}

int routes_chats_remove_member(struct http_req *rq, json_t *body, json_t **out, int *status,
                               struct chat_err *err)
{
    *status = 204;
    *out = NULL;
    return chats_remove_member(rq->srv->core, &rq->session, rq->match.params[0],
                               rq->match.params[1], err);
}

int routes_messages_list(struct http_req *rq, json_t *body, json_t **out, int *status,
                         struct chat_err *err)
{
    struct page_params pp;
    http_page_params(rq, &pp);
    *status = 200;
    return messages_list(rq->srv->core, &rq->session, rq->match.params[0], &pp, out, err);
}

/* The send's completion, on the store's writer thread (or on the worker
 * when it failed before queueing).  The message text is borrowed for the
 * call: copied for the answer. */
static void on_sent(void *arg, int rc, const char *message, size_t len, bool created,
                    const struct chat_err *err)
{
    struct http_req *rq = arg;
    char *body = NULL;
    struct chat_err oom = {0};
    if (rc == 0) {
        body = malloc(len);
        if (body) {
            memcpy(body, message, len);
        } else {
            rc = chat_err_set(&oom, CHAT_E_INTERNAL, NULL, "out of memory copying a message");
            err = &oom;
        }
    }
    /* 200: a repeated clientId returns the first message */
    http_async_finish(rq, rc, created ? 201 : 200, body, len, err);
}

int routes_messages_send(struct http_req *rq, json_t *body, json_t **out, int *status,
                         struct chat_err *err)
{
    *out = NULL;
    http_async_begin(rq);
    int rc = messages_send_async_text(rq->srv->core, &rq->session, rq->match.params[0], body,
                                      false, 0, on_sent, rq, err);
    if (rc != 0) {
        if (err->code == 0)
            chat_err_set(err, rc, NULL, NULL);
        http_async_finish(rq, rc, 0, NULL, 0, err);
    }
    return 0;
}

/* PATCH and DELETE of one message (issue 13): the change is committed
 * before the answer. */
int routes_messages_edit(struct http_req *rq, json_t *body, json_t **out, int *status,
                         struct chat_err *err)
{
    *status = 200;
    return messages_edit(rq->srv->core, &rq->session, rq->match.params[0], rq->match.params[1],
                         body, out, err);
}

int routes_messages_delete(struct http_req *rq, json_t *body, json_t **out, int *status,
                           struct chat_err *err)
{
    *status = 204;
    *out = NULL;
    return messages_delete(rq->srv->core, &rq->session, rq->match.params[0],
                           rq->match.params[1], err);
}

int routes_chats_read(struct http_req *rq, json_t *body, json_t **out, int *status,
                      struct chat_err *err)
{
    *status = 204;
    *out = NULL;
    return chats_read(rq->srv->core, &rq->session, rq->match.params[0], body, 0, err);
}
