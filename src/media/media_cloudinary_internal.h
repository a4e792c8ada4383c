/* media_cloudinary_internal.h - what media_cloudinary.c (requests: sign,
 * build, map answers) and media_cloudinary_conn.c (the libcurl multi
 * thread) share.  Calls go one way: the top file submits requests to the
 * conn thread, which hands each finished one back through its done_cb. */
#ifndef CHATLI_MEDIA_MEDIA_CLOUDINARY_INTERNAL_H
#define CHATLI_MEDIA_MEDIA_CLOUDINARY_INTERNAL_H

#include <curl/curl.h>
#include <stdint.h>

#include "chatli/err.h"

struct media_cloudinary_conn;

/* One HTTP request in flight.  Owned by the top file; the conn thread
 * holds it from submit until done_cb, which runs on the conn thread after
 * the easy handle was removed from the multi handle (so done_cb may clean
 * the handle up, or resubmit the request with a new one).  done_cb must
 * not block. */
struct media_cloudinary_req {
    CURL *easy;
    void (*done_cb)(struct media_cloudinary_req *r, CURLcode rc, long status, double seconds);
    int64_t t0_ns;            /* set by submit */
    struct media_cloudinary_req *next; /* the conn's queue, under its lock */
};

/* Starts the thread.  *out is new: media_cloudinary__conn_close. */
int media_cloudinary__conn_open(struct media_cloudinary_conn **out, struct chat_err *err);
/* Queues `r` (any thread, never blocks) and wakes the thread. */
void media_cloudinary__submit(struct media_cloudinary_conn *c, struct media_cloudinary_req *r);
/* Waits until every submitted request (and any resubmitted from its
 * done_cb) has finished, then stops the thread and frees `c`. */
void media_cloudinary__conn_close(struct media_cloudinary_conn *c);
/* Wakes the thread from its poll now, so that transfers run their progress
 * callback (which sees a shutdown's cancel) without waiting for the poll's
 * one-second timeout.  Any thread. */
void media_cloudinary__conn_wake(struct media_cloudinary_conn *c);

#endif
