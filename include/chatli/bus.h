/* bus.h - the fan-out port: deliver a serialized frame to users' live
 * connections, on this instance and (with the Redis adapter, later) on every
 * instance.
 *
 * Core publishes one event per domain change (message.new, read, post.new,
 * chat.new, chat.updated).  The frame is serialized once by core; the
 * WebSocket gateway, the bus's one subscriber per process, maps each user id
 * to its connections and queues the same bytes on each.  bus_publish never
 * blocks: the local adapter copies the event and hands it to the subscriber
 * callback, which only queues it for the gateway's loop. */
#ifndef CHATLI_BUS_H
#define CHATLI_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chatli/err.h"
#include "chatli/oid.h"

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
};

/* The subscriber: called on the publishing thread with the event, which is
 * borrowed for the call only (copy what you keep).  Must not block. */
typedef void (*bus_deliver_cb)(void *arg, const struct bus_event *ev);

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


#endif
