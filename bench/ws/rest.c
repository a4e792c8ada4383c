/* rest.c - batched REST requests over libcurl's multi interface. */
#include "rest.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rest {
    char *base;
    CURLM *multi;
    CURL **easy; /* a pool of handles, kept so their connections are reused */
    size_t neasy;
};

struct rest *rest_new(const char *base)
{
    struct rest *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->base = strdup(base);
    r->multi = curl_multi_init();
    if (!r->base || !r->multi) {
        rest_free(r);
        return NULL;
    }
    return r;
}

void rest_free(struct rest *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->neasy; i++)
        curl_easy_cleanup(r->easy[i]);
    free(r->easy);
    if (r->multi)
        curl_multi_cleanup(r->multi);
    free(r->base);
    free(r);
}

void rest_req_cleanup(struct rest_req *q)
{
    free(q->path);
    free(q->body);
    free(q->resp);
    q->path = q->body = q->resp = NULL;
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct rest_req *q = ud;
    size_t n = size * nmemb;
    char *p = realloc(q->resp, q->resp_len + n + 1);
    if (!p)
        return 0; /* makes curl fail the transfer */
    memcpy(p + q->resp_len, ptr, n);
    q->resp = p;
    q->resp_len += n;
    p[q->resp_len] = '\0';
    return n;
}

struct slot {
    CURL *easy;
    struct curl_slist *hdrs;
    struct rest_req *q;
    char url[1024];
};

static int slot_start(struct rest *r, struct slot *s, struct rest_req *q)
{
    CURL *e = s->easy;
    curl_easy_reset(e);
    s->q = q;
    s->hdrs = NULL;
    q->status = 0;
    free(q->resp);
    q->resp = NULL;
    q->resp_len = 0;
    snprintf(s->url, sizeof s->url, "%s%s", r->base, q->path);
    curl_easy_setopt(e, CURLOPT_URL, s->url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, q->method);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, q);
    curl_easy_setopt(e, CURLOPT_PRIVATE, s);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (q->body) {
        s->hdrs = curl_slist_append(s->hdrs, "Content-Type: application/json");
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, q->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(q->body));
    }
    if (q->token) {
        char h[600];
        snprintf(h, sizeof h, "Authorization: Bearer %s", q->token);
        s->hdrs = curl_slist_append(s->hdrs, h);
    }
    s->hdrs = curl_slist_append(s->hdrs, "Expect:");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->hdrs);
    return curl_multi_add_handle(r->multi, e) == CURLM_OK ? 0 : -1;
}

int rest_run(struct rest *r, struct rest_req *reqs, size_t n, int parallel)
{
    if (parallel < 1)
        parallel = 1;
    if ((size_t)parallel > n)
        parallel = (int)(n ? n : 1);
    while (r->neasy < (size_t)parallel) {
        CURL **p = realloc(r->easy, (r->neasy + 1) * sizeof *p);
        if (!p)
            return -1;
        r->easy = p;
        if (!(r->easy[r->neasy] = curl_easy_init()))
            return -1;
        r->neasy++;
    }
    struct slot *slots = calloc((size_t)parallel, sizeof *slots);
    struct slot **free_slots = calloc((size_t)parallel, sizeof *free_slots);
    if (!slots || !free_slots) {
        free(slots);
        free(free_slots);
        return -1;
    }
    int nfree = 0;
    for (int i = 0; i < parallel; i++) {
        slots[i].easy = r->easy[i];
        free_slots[nfree++] = &slots[i];
    }
    size_t next = 0, done = 0;
    int rc = 0;
    while (done < n) {
        while (nfree > 0 && next < n) {
            struct slot *s = free_slots[--nfree];
            if (slot_start(r, s, &reqs[next]) < 0) {
                curl_slist_free_all(s->hdrs);
                free_slots[nfree++] = s;
                rc = -1;
                done++;
            }
            next++;
        }
        int running;
        curl_multi_perform(r->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(r->multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            struct slot *s;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            if (m->data.result == CURLE_OK)
                curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &s->q->status);
            else
                rc = -1;
            curl_multi_remove_handle(r->multi, m->easy_handle);
            curl_slist_free_all(s->hdrs);
            s->hdrs = NULL;
            free_slots[nfree++] = s;
            done++;
        }
        if (done < n)
            curl_multi_poll(r->multi, NULL, 0, 100, NULL);
    }
    free(slots);
    free(free_slots);
    return rc;
}
