/* bus.h - the fan-out port: deliver a serialized frame to users' live
 * connections, on this instance and (with the Redis adapter) on every
 * instance.
 *
 * Core publishes one event per domain change (message.new, read, post.new,
 * chat.new, chat.updated).  The frame is serialized once by core; the
 * WebSocket gateway, the bus's one subscriber per process, maps each user id
 * to its connections and queues the same bytes on each.  bus_publish never
 * blocks: the local adapter copies the event and hands it to the subscriber
 * callback, which only queues it for the gateway's loop.
 *
 * Several instances (bus_redis): an event is delivered on the publishing
 * instance at once, published once to the shared server, and every OTHER
 * instance hands it to its own subscriber with `origin` naming the
 * publisher.  Besides frames the bus carries cache invalidations between
 * instances (BUS_INVALIDATE), which only listeners (bus_listen) receive,
 * and it tells listeners when it may have missed events (on_gap). */
#ifndef CHATLI_BUS_H
#define CHATLI_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chatli/err.h"
#include "chatli/oid.h"

/* What an event is.  BUS_FRAME events (frames and revocations) go to the
 * subscriber; BUS_INVALIDATE ones only to listeners of other instances. */
enum bus_kind {
    BUS_FRAME = 0,
    BUS_INVALIDATE = 1,
};

/* Which cache entries a BUS_INVALIDATE event drops, on every instance. */
enum bus_inval {
    BUS_INV_FEED = 1,    /* every feed page (key unused) */
    BUS_INV_AUTHOR = 2,  /* the Author of user `key` */
    BUS_INV_MEMBERS = 3, /* the member list of chat `key` */
};

/* The longest instance id (origin), without its NUL. */
#define BUS_ORIGIN_LEN 16

enum bus_scope {
    BUS_TO_USERS = 0, /* every connection of each listed user */
    BUS_TO_ALL = 1,   /* every authenticated connection (post.new) */
};

struct bus_event {
    int scope;                          /* enum bus_scope */
    const char (*user_ids)[OID_SIZE];   /* BUS_TO_USERS: borrowed for the call */
    size_t n_users;
    uint64_t skip_conn;                 /* a connection id that must not get it
                                           (the sender's own), 0 for none */
    const char *frame;                  /* JSON text frame, borrowed for the call;
                                           NULL for a revocation */
    size_t len;
    const uint8_t *revoked_token;       /* when not NULL (32 bytes, borrowed): a
                                           revocation, not a frame - every
                                           connection of the listed users that
                                           authenticated with the token of this
                                           hash closes with 4401 */
    int kind;                           /* enum bus_kind; 0 = a frame */
    int inval;                          /* BUS_INVALIDATE: enum bus_inval */
    const char *inval_key;              /* BUS_INVALIDATE: a user or chat id
                                           (NUL-terminated, borrowed), or NULL */
    const char *origin;                 /* on delivery: NULL when published by
                                           this instance, else the publishing
                                           instance's id (<= BUS_ORIGIN_LEN
                                           chars).  skip_conn is then 0: a
                                           connection id only means something
                                           on its own instance.  Ignored by
                                           publish. */
};

/* The subscriber: called on the publishing thread with the event, which is
 * borrowed for the call only (copy what you keep).  Must not block. */
typedef void (*bus_deliver_cb)(void *arg, const struct bus_event *ev);

/* A listener (core's caches, the gateway's resync): both callbacks are
 * optional and run on the bus's own thread, and must not block.
 * on_event gets the revocations and invalidations published by OTHER
 * instances (never frames, which go to the subscriber).  on_gap is called
 * when the bus may have lost events of other instances: after its
 * connection to the shared server came back, or when another instance says
 * it dropped events it could not publish.  The listener should then treat
 * what it caches or delivered as possibly stale (drop caches; tell clients
 * to `sync`, CONTRACT v1.2 `resync`). */
struct bus_listener {
    void (*on_event)(void *arg, const struct bus_event *ev);
    void (*on_gap)(void *arg);
    void *arg;
};

/* The most listeners a bus keeps. */
#define BUS_LISTENERS_MAX 4

struct bus;

struct bus_ops {
    void (*close)(struct bus *b);
    /* Hands `ev` to every instance's subscriber.  0, or CHAT_E_UNAVAILABLE
     * when a remote bus cannot take it (the local delivery still happens). */
    int (*publish)(struct bus *b, const struct bus_event *ev, struct chat_err *err);
    /* Sets this process's subscriber (one; NULL to remove).  Call before
     * traffic starts or from the subscriber's own shutdown path. */
    void (*subscribe)(struct bus *b, bus_deliver_cb cb, void *arg);
    /* /readyz: 0, or CHAT_E_UNAVAILABLE when a remote bus is down. */
    int (*ping)(struct bus *b, struct chat_err *err);
    /* Adds a listener (copied).  Call before traffic starts; listeners stay
     * until close or unlisten.  0, or CHAT_E_INTERNAL when BUS_LISTENERS_MAX are set.
     * Optional: a bus with one instance (local) has no other instance to
     * hear from and never calls a listener. */
    int (*listen)(struct bus *b, const struct bus_listener *l, struct chat_err *err);
    /* Removes every listener whose arg is `arg`; once it returns none of
     * their callbacks is running or will run (a listener that is freed
     * before the bus, like the gateway, calls it first).  Optional, with
     * listen. */
    void (*unlisten)(struct bus *b, void *arg);
};

struct bus {
    const struct bus_ops *ops;
    const char *name; /* "local", "redis" */
    bool remote;      /* events go through a server shared by instances
                         (Redis): /readyz pings it and reports it as "redis" */
};

static inline void bus_close(struct bus *b) { if (b) b->ops->close(b); }
static inline int bus_publish(struct bus *b, const struct bus_event *ev, struct chat_err *err)
{ return b ? b->ops->publish(b, ev, err) : 0; }
static inline void bus_subscribe(struct bus *b, bus_deliver_cb cb, void *arg)
{ if (b) b->ops->subscribe(b, cb, arg); }
static inline int bus_ping(struct bus *b, struct chat_err *err)
{ return b && b->ops->ping ? b->ops->ping(b, err) : 0; }
static inline int bus_listen(struct bus *b, const struct bus_listener *l, struct chat_err *err)
{ return b && b->ops->listen ? b->ops->listen(b, l, err) : 0; }
static inline void bus_unlisten(struct bus *b, void *arg)
{ if (b && b->ops->unlisten) b->ops->unlisten(b, arg); }


#endif
