/* request.c - what a route handler may ask of its request: query values,
 * paging parameters, and answering from another thread (http_async_*).
 *
 * These sit in their own file, below everything else in http/, so the
 * calls go one way: server.c holds the route table and calls routes_*.c,
 * and routes_*.c call down into here and reply.c, never back into
 * server.c.  Nothing here calls another file of this folder. */
#include <microhttpd.h>
#include <stdlib.h>

#include "http_internal.h"
#include "chatli/core.h"
#include "chatli/err.h"

const char *http_query(struct http_req *rq, const char *key)
{
    return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, key);
}

void http_page_params(struct http_req *rq, struct page_params *pp)
{
    pp->limit = http_query(rq, "limit");
    pp->before = http_query(rq, "before");
    pp->after_seq = http_query(rq, "afterSeq");
}

void http_async_begin(struct http_req *rq)
{
    atomic_fetch_add(&rq->srv->n_async, 1);
    atomic_store(&rq->async, HTTP_ASYNC_PENDING);
    /* Suspended before the core call starts, so its completion can never
     * resume a connection that is not suspended yet. */
    MHD_suspend_connection(rq->conn);
}

void http_async_finish(struct http_req *rq, int rc, int status, char *body, size_t len,
                       const struct chat_err *err)
{
    struct http_server *s = rq->srv;
    struct MHD_Connection *conn = rq->conn;
    rq->async_rc = rc;
    rq->async_status = status;
    rq->async_body = rc == 0 ? body : NULL;
    rq->async_len = rc == 0 ? len : 0;
    if (rc != 0) {
        free(body);
        if (err)
            rq->async_err = *err;
        else
            chat_err_set(&rq->async_err, rc, NULL, NULL);
    }
    atomic_store_explicit(&rq->async, HTTP_ASYNC_DONE, memory_order_release);
    /* From here the worker may run the request to its end and free it, so
     * `s` and `conn` were read above.  The reply itself goes out on the
     * worker (server.c), which sends the fields stored here. */
    MHD_resume_connection(conn);
    atomic_fetch_sub(&s->n_async, 1);
}
