/* common.c - the small helpers every core service uses: reporting an
 * internal failure, publishing an event frame or a cache invalidation for
 * the other instances, and growing an id array.
 *
 * They sit in a file of their own, below every service, so that the
 * services, the caches and core.c (which creates and frees the caches) all
 * call down into them and no file of core calls back up into another.
 *
 * Publishing never fails its caller: by the time a frame is published the
 * domain change is committed, and a client that missed the event recovers
 * it with sync or GET.  So bus errors are logged here and swallowed. */
#include "core_internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "chatli/bus.h"
#include "chatli/clock.h"
#include "chatli/log.h"

/* While a remote bus is down every publish fails the same way (and the
 * event still reaches this instance's connections): one warning per
 * BUS_WARN_EVERY_MS, not one per message, with the count in between.
 * Process-wide on purpose: it throttles a log line, nothing else. */
#define BUS_WARN_EVERY_MS 10000
static _Atomic int64_t bus_warned_at = INT64_MIN / 2;
static atomic_uint_fast64_t bus_failures;

static void bus_failed(const char *what, const struct chat_err *e)
{
    uint64_t n = atomic_fetch_add(&bus_failures, 1) + 1;
    int64_t now = clock_mono_ms(), last = atomic_load(&bus_warned_at);
    if (now - last < BUS_WARN_EVERY_MS ||
        !atomic_compare_exchange_strong(&bus_warned_at, &last, now))
        return; /* warned recently, or another thread is warning now */
    atomic_store(&bus_failures, 0);
    log_warn("core: bus %s failed (%llu since the last warning): %s", what,
             (unsigned long long)n, e->msg);
}

int core__internal(struct chat_err *err, const char *what)
{
    log_error("%s", what);
    return chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
}

void core__publish_inval(struct core *c, int inval, const char *key)
{
    if (!c->bus)
        return;
    struct bus_event ev = {.kind = BUS_INVALIDATE, .inval = inval, .inval_key = key};
    struct chat_err e = {0};
    if (bus_publish(c->bus, &ev, &e) != 0)
        bus_failed("invalidation", &e);
}

void core__publish_text(struct core *c, int scope, const char (*user_ids)[OID_SIZE], size_t n,
                        uint64_t skip_conn, const char *frame, size_t len)
{
    if (!c->bus || !frame)
        return;
    if (scope == BUS_TO_USERS && n == 0)
        return;
    struct bus_event ev = {
        .scope = scope,
        .user_ids = user_ids,
        .n_users = scope == BUS_TO_USERS ? n : 0,
        .skip_conn = skip_conn,
        .frame = frame,
        .len = len,
    };
    struct chat_err e = {0};
    if (bus_publish(c->bus, &ev, &e) != 0)
        bus_failed("publish", &e);
}

void core__publish(struct core *c, int scope, const char (*user_ids)[OID_SIZE], size_t n,
                   uint64_t skip_conn, json_t *frame)
{
    if (!c->bus || !frame)
        return;
    if (scope == BUS_TO_USERS && n == 0)
        return;
    char *text = json_dumps(frame, JSON_COMPACT);
    if (!text) {
        log_error("core: cannot serialize an event frame (out of memory)");
        return;
    }
    core__publish_text(c, scope, user_ids, n, skip_conn, text, strlen(text));
    free(text);
}

int core__ids_push(struct core_ids *ids, const char *id)
{
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 16;
        void *v = realloc(ids->v, cap * sizeof *ids->v);
        if (!v)
            return CHAT_E_INTERNAL;
        ids->v = v;
        ids->cap = cap;
    }
    memcpy(ids->v[ids->n], id, OID_LEN);
    ids->v[ids->n][OID_LEN] = '\0';
    ids->n++;
    return 0;
}

void core__ids_cleanup(struct core_ids *ids)
{
    free(ids->v);
    ids->v = NULL;
    ids->n = ids->cap = 0;
}
