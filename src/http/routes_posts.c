/* routes_posts.c - /api/posts, /api/posts/{id}, its like and comments. */
#include "http/http_internal.h"

int routes_posts_create(struct http_req *rq, json_t *body, json_t **out, int *status,
                        struct chat_err *err)
{
    *status = 201;
    return posts_create(rq->srv->core, &rq->session, body, out, err);
}

int routes_posts_list(struct http_req *rq, json_t *body, json_t **out, int *status,
                      struct chat_err *err)
{
    struct page_params pp;
    http_page_params(rq, &pp);
    *status = 200;
    return posts_list(rq->srv->core, &rq->session, http_query(rq, "author"), &pp, out, err);
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
