/* routes_ops.c - /healthz, /readyz, /metrics (CONTRACT.md section 9).
 *
 * /healthz says only that the process answers.  /readyz reports what main
 * wired, never what the environment asked for: it asks each wired adapter
 * with its port's cheap ping.  The store decides up or down; a remote
 * (Redis) cache or bus only degrades (the instance falls back to
 * in-process state); and while draining the answer is 503 so a load
 * balancer stops sending traffic. */
#include <stdlib.h>

#include "chatli/bus.h"
#include "chatli/cache.h"
#include "chatli/media.h"
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

/* The "redis" check: "disabled" unless a wired cache or bus adapter says
 * it is remote, else "ok" or "down" from the remote ones' pings.  It asks
 * the adapters, not REDIS_URL: this build has no Redis adapter and main
 * wires in-process ones whatever the environment says, so a Redis that is
 * configured but unused must not make the instance look degraded. */
static const char *redis_check(struct http_server *s, bool *ok)
{
    struct chat_err perr = {0};
    bool any = false;
    *ok = true;
    if (s->cache && s->cache->remote) {
        any = true;
        if (cache_ping(s->cache, &perr) != 0) {
            *ok = false;
            log_warn("readyz: cache %s down: %s", s->cache->name, perr.msg);
        }
    }
    if (s->bus && s->bus->remote) {
        any = true;
        if (bus_ping(s->bus, &perr) != 0) {
            *ok = false;
            log_warn("readyz: bus %s down: %s", s->bus->name, perr.msg);
        }
    }
    return !any ? "disabled" : *ok ? "ok" : "down";
}

int routes_ops_readyz(struct http_req *rq, json_t *body, json_t **out, int *status,
                      struct chat_err *err)
{
    struct http_server *s = rq->srv;
    struct chat_err perr = {0};
    bool store_ok = store_ping(s->store, &perr) == 0;
    if (!store_ok)
        log_warn("readyz: store %s down: %s", s->store->name, perr.msg);
    bool redis_ok;
    const char *redis = redis_check(s, &redis_ok);
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
    /* "media" names the adapter main wired ("local" or "cloudinary"); a
     * local uploads folder that stopped being writable is logged, since
     * the contract's check has no "down" value for media. */
    if (s->media && media_ping(s->media, &perr) != 0)
        log_warn("readyz: media %s: %s", s->media->name, perr.msg);
    *out = json_pack("{s:s, s:{s:s, s:s, s:s}}", "status", st, "checks", "store",
                     store_ok ? "ok" : "down", "redis", redis, "media",
                     s->media ? s->media->name : "local");
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
