/* test_routes_ops.c - /readyz answers from the adapters main wired, not
 * from configuration.
 *
 * The handler is called directly on a hand-built server: in-process
 * adapters give "redis":"disabled" even with REDIS_URL and CLOUDINARY_URL
 * set, and a cache or bus that says it is remote is pinged, so a failing
 * one turns "redis" to "down" and the status to "degraded" (still 200),
 * which no e2e test can reach while no Redis adapter exists. */
#include <jansson.h>
#include <sodium.h>
#include <string.h>

#include "chatli/bus.h"
#include "chatli/adapters/bus_local.h"
#include "chatli/cache.h"
#include "chatli/adapters/cache_mem.h"
#include "check.h"
#include "chatli/config.h"
#include "chatli/adapters/store_sqlite.h"
#include "chatli/log.h"
#include "http/http_internal.h"

/* A remote adapter stand-in whose ping answers `ping_rc`. */
struct fake_bus {
    struct bus base;
    int ping_rc;
};

static void fake_bus_close(struct bus *b) {}
static int fake_bus_publish(struct bus *b, const struct bus_event *ev, struct chat_err *err)
{
    return 0;
}
static void fake_bus_subscribe(struct bus *b, bus_deliver_cb cb, void *arg) {}
static int fake_bus_ping(struct bus *b, struct chat_err *err)
{
    int rc = ((struct fake_bus *)b)->ping_rc;
    return rc ? chat_err_set(err, rc, NULL, "fake bus down") : 0;
}
static const struct bus_ops fake_bus_ops = {.close = fake_bus_close, .publish = fake_bus_publish,
                                            .subscribe = fake_bus_subscribe, .ping = fake_bus_ping};

struct fake_cache {
    struct cache base;
    int ping_rc;
};

static void fake_cache_close(struct cache *c) {}
static int fake_cache_hit(struct cache *c, const char *key, int64_t window_ms, int64_t *count,
                          int64_t *reset_ms, struct chat_err *err)
{
    *count = 1;
    *reset_ms = window_ms;
    return 0;
}
static int fake_cache_ping(struct cache *c, struct chat_err *err)
{
    int rc = ((struct fake_cache *)c)->ping_rc;
    return rc ? chat_err_set(err, rc, NULL, "fake cache down") : 0;
}
static const struct cache_ops fake_cache_ops = {.close = fake_cache_close, .hit = fake_cache_hit,
                                                .ping = fake_cache_ping};

/* Calls /readyz on `s` and checks its status code and body. */
static void expect(struct http_server *s, int http, const char *st, const char *redis)
{
    struct http_req rq = {.srv = s};
    json_t *out = NULL;
    int status = 0;
    struct chat_err err = {0};
    CHECK_EQ_INT(routes_ops_readyz(&rq, NULL, &out, &status, &err), 0);
    CHECK_EQ_INT(status, http);
    CHECK_EQ_STR(json_string_value(json_object_get(out, "status")), st);
    json_t *checks = json_object_get(out, "checks");
    CHECK_EQ_INT(json_object_size(checks), 3);
    CHECK_EQ_STR(json_string_value(json_object_get(checks, "store")), "ok");
    CHECK_EQ_STR(json_string_value(json_object_get(checks, "redis")), redis);
    CHECK_EQ_STR(json_string_value(json_object_get(checks, "media")), "local");
    json_decref(out);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    log_set_level(LOG_ERROR); /* the "down" cases log a warning each */
    struct chat_err err = {0};
    struct store *store = NULL;
    struct bus *bus = NULL;
    struct cache *cache = NULL;
    if (store_sqlite_open(":memory:", &store, &err) || bus_local_new(&bus, &err) ||
        cache_mem_new(&cache, &err)) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return 1;
    }
    /* The URLs are set but nothing wired uses them: they change nothing. */
    struct config cfg = {.redis_url = "redis://127.0.0.1:1", .cloudinary_url = "cloudinary://k:s@c"};
    struct http_server s = {.cfg = &cfg, .store = store, .cache = cache, .bus = bus};
    expect(&s, 200, "ok", "disabled");
    s.bus = NULL; /* the bus is optional */
    expect(&s, 200, "ok", "disabled");

    struct fake_bus rbus = {.base = {.ops = &fake_bus_ops, .name = "fake", .remote = true}};
    struct fake_cache rcache = {.base = {.ops = &fake_cache_ops, .name = "fake", .remote = true}};
    s.bus = &rbus.base;
    expect(&s, 200, "ok", "ok");
    rbus.ping_rc = CHAT_E_UNAVAILABLE;
    expect(&s, 200, "degraded", "down");
    rbus.ping_rc = 0;
    s.cache = &rcache.base;
    expect(&s, 200, "ok", "ok");
    rcache.ping_rc = CHAT_E_UNAVAILABLE;
    expect(&s, 200, "degraded", "down");
    s.bus = bus; /* a remote cache beside a local bus still decides */
    expect(&s, 200, "degraded", "down");

    atomic_store(&s.draining, true);
    expect(&s, 503, "draining", "down");

    bus_close(bus);
    cache_close(cache);
    store_close(store);
    return check_done();
}
