/* routes_posts.c - /api/posts, /api/posts/{id}, its like and comments. */
#include "http_internal.h"
#include "reply.h"

int routes_posts_create(struct http_req *rq, json_t *body, json_t **out, int *status,
                        struct chat_err *err)
{
    *status = 201;
    return posts_create(rq->srv->core, &rq->session, body, out, err);
}

/* The feed comes from core as text (its page cache keeps pages serialized),
 * so this handler queues the response itself. */
int routes_posts_list(struct http_req *rq, json_t *body, json_t **out, int *status,
                      struct chat_err *err)
{
    struct page_params pp;
    char *text = NULL;
    size_t len = 0;
    http_page_params(rq, &pp);
    *status = 200;
    *out = NULL;
    int rc = posts_list_text(rq->srv->core, &rq->session, http_query(rq, "author"), &pp, &text,
                             &len, err);
    if (rc)
        return rc;
    if (http_reply_text(rq, 200, HTTP_JSON_TYPE, text, len) != 0)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "cannot queue the response");
    return 0;
}

int routes_posts_get(struct http_req *rq, json_t *body, json_t **out, int *status,
                     struct chat_err *err)
{
    *status = 200;
    return posts_get(rq->srv->core, &rq->session, rq->match.params[0], out, err);
}

int routes_posts_delete(struct http_req *rq, json_t *body, json_t **out, int *status,
                        struct chat_err *err)
{
    *status = 204;
    *out = NULL;
    return posts_delete(rq->srv->core, &rq->session, rq->match.params[0], err);
}

int routes_posts_update(struct http_req *rq, json_t *body, json_t **out, int *status,
                        struct chat_err *err)
{
    *status = 200;
    return posts_update(rq->srv->core, &rq->session, rq->match.params[0], body, out, err);
}

int routes_posts_like(struct http_req *rq, json_t *body, json_t **out, int *status,
                      struct chat_err *err)
{
    *status = 200;
    return posts_like(rq->srv->core, &rq->session, rq->match.params[0], true, out, err);
}

int routes_posts_unlike(struct http_req *rq, json_t *body, json_t **out, int *status,
                        struct chat_err *err)
{
    *status = 200;
    return posts_like(rq->srv->core, &rq->session, rq->match.params[0], false, out, err);
}

int routes_comments_create(struct http_req *rq, json_t *body, json_t **out, int *status,
                           struct chat_err *err)
{
    *status = 201;
    return comments_create(rq->srv->core, &rq->session, rq->match.params[0], body, out, err);
}

int routes_comments_list(struct http_req *rq, json_t *body, json_t **out, int *status,
                         struct chat_err *err)
{
    struct page_params pp;
    http_page_params(rq, &pp);
    *status = 200;
    return comments_list(rq->srv->core, &rq->session, rq->match.params[0], &pp, out, err);
}
