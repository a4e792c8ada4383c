/* media_cloudinary_conn.c - the Cloudinary adapter's libcurl thread.
 *
 * One thread runs one curl multi handle, so any number of uploads share a
 * thread and its connections without holding an MHD worker or the WS loop
 * (their REST connections are suspended meanwhile).  Other threads hand
 * requests over through a locked queue and curl_multi_wakeup(), libcurl's
 * documented way to interrupt curl_multi_poll() from another thread; the
 * multi and easy handles themselves are touched only by this thread while
 * a request is in flight.
 *
 * Threads: `queue` and `stopping` are guarded by `mu`; `multi` belongs to
 * the thread (curl_multi_wakeup is the one call other threads make). */
#include "media_cloudinary_internal.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "chatli/clock.h"
#include "chatli/log.h"

struct media_cloudinary_conn {
    CURLM *multi;
    pthread_t thread;
    pthread_mutex_t mu;
    struct media_cloudinary_req *queue; /* submitted, not yet added (under mu) */
    bool stopping;                       /* under mu */
};

/* Adds what was submitted; returns true when the thread should stop. */
static bool take_queue(struct media_cloudinary_conn *c, int running)
{
    pthread_mutex_lock(&c->mu);
    struct media_cloudinary_req *q = c->queue;
    c->queue = NULL;
    bool stop = c->stopping && !q && running == 0;
    pthread_mutex_unlock(&c->mu);
    while (q) {
        struct media_cloudinary_req *next = q->next;
        curl_easy_setopt(q->easy, CURLOPT_PRIVATE, q);
        CURLMcode mc = curl_multi_add_handle(c->multi, q->easy);
        if (mc != CURLM_OK) {
            log_error("cloudinary: curl_multi_add_handle: %s", curl_multi_strerror(mc));
            q->done_cb(q, CURLE_FAILED_INIT, 0, 0.0);
        }
        q = next;
    }
    return stop;
}

static void finish_done(struct media_cloudinary_conn *c)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;
        struct media_cloudinary_req *r = NULL;
        long status = 0;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        curl_multi_remove_handle(c->multi, easy);
        double secs = (double)(clock_mono_ns() - r->t0_ns) / 1e9;
        r->done_cb(r, rc, status, secs);
    }
}

static void *run(void *arg)
{
    struct media_cloudinary_conn *c = arg;
    int running = 0;
    for (;;) {
        if (take_queue(c, running))
            break;
        curl_multi_perform(c->multi, &running);
        finish_done(c);
        /* New work may have come from a done_cb (a retry): look again
         * before sleeping; curl_multi_wakeup covers the other threads. */
        curl_multi_poll(c->multi, NULL, 0, 1000, NULL);
    }
    return NULL;
}

int media_cloudinary__conn_open(struct media_cloudinary_conn **out, struct chat_err *err)
{
    *out = NULL;
    struct media_cloudinary_conn *c = calloc(1, sizeof *c);
    if (!c)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "out of memory");
    c->multi = curl_multi_init();
    if (!c->multi) {
        free(c);
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "curl_multi_init failed");
    }
    pthread_mutex_init(&c->mu, NULL);
    if (pthread_create(&c->thread, NULL, run, c) != 0) {
        pthread_mutex_destroy(&c->mu);
        curl_multi_cleanup(c->multi);
        free(c);
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "cannot start the Cloudinary thread");
    }
    *out = c;
    return 0;
}

void media_cloudinary__submit(struct media_cloudinary_conn *c, struct media_cloudinary_req *r)
{
    r->t0_ns = clock_mono_ns();
    pthread_mutex_lock(&c->mu);
    r->next = c->queue;
    c->queue = r;
    pthread_mutex_unlock(&c->mu);
    curl_multi_wakeup(c->multi);
}

void media_cloudinary__conn_wake(struct media_cloudinary_conn *c)
{
    curl_multi_wakeup(c->multi);
}

void media_cloudinary__conn_close(struct media_cloudinary_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_mutex_unlock(&c->mu);
    curl_multi_wakeup(c->multi);
    pthread_join(c->thread, NULL);
    pthread_mutex_destroy(&c->mu);
    curl_multi_cleanup(c->multi);
    free(c);
}
