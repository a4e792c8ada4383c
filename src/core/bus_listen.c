/* bus_listen.c - what core does with the bus events of other instances:
 * it drops the cache entries their writes made stale.
 *
 * Each instance caches store answers for a short TTL (sessions, Authors,
 * member lists: 2 s; feed pages: 1 s).  A write through this instance
 * forgets its own entries at once and publishes the matching event; this
 * listener applies the other instances' events here, so a logout, a
 * profile edit, a membership change or a feed write made elsewhere is seen
 * here as soon as the bus carries it (a Redis round trip), not after the
 * TTL.  The TTLs stay as the safety net for events a Redis outage loses,
 * and a gap (the bus's word for "events may be lost") voids every cached
 * session, Author, member list and feed page at once.
 *
 * It sits above the services it calls (auth, the caches) and nothing in
 * core calls it: main hands it to the bus.  Callbacks run on the bus's
 * subscriber thread and only take the caches' shard locks. */
#include "chatli/bus.h"
#include "core_internal.h"

static void on_event(void *arg, const struct bus_event *ev)
{
    struct core *c = arg;
    if (ev->revoked_token)
        auth_forget_token(c, ev->revoked_token);
    if (ev->kind != BUS_INVALIDATE)
        return;
    switch (ev->inval) {
    case BUS_INV_FEED:
        core__feed_bump(c);
        break;
    case BUS_INV_AUTHOR:
        if (ev->inval_key)
            core__author_cache_forget(&c->priv->authors, ev->inval_key);
        /* Feed pages embed the Author; the writer also published a feed
         * invalidation, but bumping here costs nothing and keeps the two
         * caches consistent if that one is lost. */
        core__feed_bump(c);
        break;
    case BUS_INV_MEMBERS:
        if (ev->inval_key)
            core__chat_members_forget(c, ev->inval_key);
        break;
    default: /* a newer instance's kind: its TTL covers it */
        break;
    }
}

static void on_gap(void *arg)
{
    struct core *c = arg;
    core__feed_bump(c);
    slotcache_forget_all(&c->priv->members);
    slotcache_forget_all(&c->priv->authors);
    slotcache_forget_all(&c->priv->sessions);
}

void core_bus_listener(struct core *c, struct bus_listener *out)
{
    out->on_event = on_event;
    out->on_gap = on_gap;
    out->arg = c;
}
