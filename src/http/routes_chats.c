/* routes_chats.c - /api/chats, members, messages and read marks.
 *
 * POST messages uses the blocking messages_send: it holds this MHD worker
 * until the store's writer has committed the message, so a 201 means the
 * message is durable, the same promise as the WebSocket ack. */
#include "http/http_internal.h"

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

int routes_messages_send(struct http_req *rq, json_t *body, json_t **out, int *status,
                         struct chat_err *err)
{
    bool created = false;
    int rc = messages_send(rq->srv->core, &rq->session, rq->match.params[0], body, out, &created,
                           err);
    *status = created ? 201 : 200; /* 200: a repeated clientId returns the first message */
    return rc;
}

int routes_chats_read(struct http_req *rq, json_t *body, json_t **out, int *status,
                      struct chat_err *err)
{
    *status = 204;
    *out = NULL;
    return chats_read(rq->srv->core, &rq->session, rq->match.params[0], body, 0, err);
}
