/* routes_ops.c - /healthz, /readyz, /metrics (CONTRACT.md section 9).
 *
 * /healthz says only that the process answers.  /readyz asks each backing
 * service with its port's cheap ping: the store decides up or down, Redis
 * only degrades (the instance falls back to in-process state), and while
 * draining the answer is 503 so a load balancer stops sending traffic. */
#include <stdlib.h>

#include "chatli/bus.h"
#include "chatli/cache.h"
#include "chatli/config.h"
#include "http_internal.h"
#include "reply.h"
#include "chatli/store.h"
#include "chatli/log.h"
#include "chatli/metrics.h"

int routes_ops_healthz(struct http_req *rq, json_t *body, json_t **out, int *status,
                       struct chat_err *err)
{
    *status = 200;
    *out = json_pack("{s:s}", "status", "ok");
    return *out ? 0 : chat_err_set(err, CHAT_E_INTERNAL, NULL, "out of memory");
}

int routes_ops_readyz(struct http_req *rq, json_t *body, json_t **out, int *status,
                      struct chat_err *err)
{
    struct http_server *s = rq->srv;
    struct chat_err perr = {0};
    bool store_ok = store_ping(s->store, &perr) == 0;
    if (!store_ok)
        log_warn("readyz: store %s down: %s", s->store->name, perr.msg);
    const char *redis = "disabled";
    bool redis_ok = true;
    if (s->cfg->redis_url) {
        redis_ok = cache_ping(s->cache, &perr) == 0 && bus_ping(s->bus, &perr) == 0;
        if (!redis_ok)
            log_warn("readyz: redis down: %s", perr.msg);
        redis = redis_ok ? "ok" : "down";
    }
    const char *st;
    if (atomic_load(&s->draining))
        st = "draining";
    else if (!store_ok)
        st = "down";
    else if (!redis_ok)
        st = "degraded";
    else
        st = "ok";
    *status = (atomic_load(&s->draining) || !store_ok) ? 503 : 200;
    *out = json_pack("{s:s, s:{s:s, s:s, s:s}}", "status", st, "checks", "store",
                     store_ok ? "ok" : "down", "redis", redis, "media",
                     s->cfg->cloudinary_url ? "cloudinary" : "local");
    return *out ? 0 : chat_err_set(err, CHAT_E_INTERNAL, NULL, "out of memory");
}

int routes_ops_metrics(struct http_req *rq, json_t *body, json_t **out, int *status,
                       struct chat_err *err)
{
    size_t len = 0;
    char *text = metrics_render(&len);
    if (!text)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "out of memory");
    *out = NULL;
    *status = 200;
    if (http_reply_text(rq, 200, "text/plain; version=0.0.4; charset=utf-8", text, len) != 0)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "cannot queue the metrics response");
    return 0;
}
