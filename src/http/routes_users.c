/* routes_users.c - /api/users/me (GET, PATCH, DELETE), /api/users/{id},
 * /api/users?q=. */
#include "http_internal.h"

int routes_users_me(struct http_req *rq, json_t *body, json_t **out, int *status,
                    struct chat_err *err)
{
    *status = 200;
    return users_me(rq->srv->core, &rq->session, out, err);
}

int routes_users_update_me(struct http_req *rq, json_t *body, json_t **out, int *status,
                           struct chat_err *err)
{
    *status = 200;
    return users_update_me(rq->srv->core, &rq->session, body, out, err);
}

int routes_users_get(struct http_req *rq, json_t *body, json_t **out, int *status,
                     struct chat_err *err)
{
    *status = 200;
    return users_get(rq->srv->core, &rq->session, rq->match.params[0], out, err);
}

int routes_users_search(struct http_req *rq, json_t *body, json_t **out, int *status,
                        struct chat_err *err)
{
    struct page_params pp;
    http_page_params(rq, &pp);
    *status = 200;
    return users_search(rq->srv->core, &rq->session, http_query(rq, "q"), &pp, out, err);
}

int routes_users_delete_me(struct http_req *rq, json_t *body, json_t **out, int *status,
                           struct chat_err *err)
{
    *status = 204;
    *out = NULL;
    return routes__password_checked(rq, body, auth_delete_account, err);
}
