/* bus_redis_internal.h - what the files of the Redis bus adapter share.
 *
 * bus_redis.c (open, close, the ops) -> bus_redis_pub.c (publisher thread),
 * bus_redis_sub.c (subscriber thread) -> bus_redis_event.c (wire format and
 * dispatch to this process's subscriber and listeners).  Calls go down that
 * list only. */
#ifndef CHATLI_BUS_REDIS_INTERNAL_H
#define CHATLI_BUS_REDIS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "chatli/adapters/redis_conn.h"
#include "chatli/bus.h"

/* A wire-only kind: "I dropped events I could not publish" (the receiving
 * instances call their listeners' on_gap). */
#define BUS_REDIS_KIND_GAP 2

/* Events queued for the publisher beyond this are dropped (and a gap
 * notice follows): 64k events is seconds of peak traffic, while a Redis
 * that cannot take that many is down, and then nothing is queued. */
#define BUS_REDIS_QUEUE_MAX 65536
/* Events pipelined in one round trip by the publisher. */
#define BUS_REDIS_BATCH 256
/* Timeouts (ms): connect, and each publish round trip. */
#define BUS_REDIS_CONNECT_MS 300
#define BUS_REDIS_IO_MS 500

struct pub_msg {
    struct pub_msg *next;
    size_t len;
    char data[]; /* the encoded event */
};

/* The publisher.  mu guards head, tail, len, lost and stop; rc and bo are
 * the publisher thread's alone.  publish() only queues (never blocks on
 * Redis) and signals cv when the queue goes from empty to non-empty. */
struct bus_redis_pub {
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct pub_msg *head, *tail;
    size_t len;
    bool lost; /* events were dropped since the last successful publish */
    bool stop;
    struct redisContext *rc;
    struct redis_backoff bo;
};

/* The subscriber.  mu guards rc (so close can shut its socket down while
 * the thread blocks reading it) and stop; bo and missed are the thread's. */
struct bus_redis_sub {
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct redisContext *rc;
    bool stop;
    bool missed;    /* a connection was lost or failed: the next one is a gap */
    atomic_bool up; /* subscribed right now (ping reads it) */
    struct redis_backoff bo;
};

/* Threads: ops run on any thread; the two threads above are the adapter's.
 * lock (writer-preferring rwlock) guards cb, cb_arg, listeners and
 * n_listeners; dispatch holds the read side while calling them, so after
 * subscribe(NULL) returns no callback is running.  Everything else is
 * immutable after open. */
struct bus_redis {
    struct bus base; /* must stay first */
    struct redis_endpoint ep;
    char origin[BUS_ORIGIN_LEN + 1];
    char channel[128];
    pthread_rwlock_t lock;
    bus_deliver_cb cb;
    void *cb_arg;
    struct bus_listener listeners[BUS_LISTENERS_MAX];
    size_t n_listeners;
    struct bus_redis_pub pub;
    struct bus_redis_sub sub;
};

/* bus_redis_event.c */
/* Encodes `ev` as published by this instance.  0 and *out new (free()), or
 * CHAT_E_INTERNAL (out of memory). */
int bus_redis__encode(const struct bus_redis *br, const struct bus_event *ev, int kind,
                      struct pub_msg **out);
/* Calls this process's subscriber with an event published here. */
void bus_redis__deliver_local(struct bus_redis *br, const struct bus_event *ev);
/* Decodes a message from the channel and hands it to the subscriber and
 * listeners; own messages and malformed ones (logged) are ignored. */
void bus_redis__dispatch(struct bus_redis *br, const char *data, size_t len);
/* Tells every listener that events may have been lost. */
void bus_redis__gap(struct bus_redis *br);

/* bus_redis_pub.c */
int bus_redis__pub_start(struct bus_redis *br, struct chat_err *err);
/* Queues an encoded event (steals m). */
void bus_redis__pub_push(struct bus_redis *br, struct pub_msg *m);
void bus_redis__pub_stop(struct bus_redis *br);

/* bus_redis_sub.c */
int bus_redis__sub_start(struct bus_redis *br, struct chat_err *err);
void bus_redis__sub_stop(struct bus_redis *br);

#endif
