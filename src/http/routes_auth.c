/* routes_auth.c - POST /api/auth/register, /login, /logout.
 *
 * Each handler is one core call; the pipeline in server.c has already
 * routed, authenticated (logout), rate limited and parsed the body. */
#include "http_internal.h"

int routes_auth_register(struct http_req *rq, json_t *body, json_t **out, int *status,
                         struct chat_err *err)
{
    *status = 201;
    return auth_register(rq->srv->core, body, out, err);
}

int routes_auth_login(struct http_req *rq, json_t *body, json_t **out, int *status,
                      struct chat_err *err)
{
    *status = 200;
    return auth_login(rq->srv->core, body, out, err);
}

int routes_auth_logout(struct http_req *rq, json_t *body, json_t **out, int *status,
                       struct chat_err *err)
{
    *status = 204;
    *out = NULL;
    return auth_logout(rq->srv->core, &rq->session, err);
}
