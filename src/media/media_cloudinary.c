/* media_cloudinary.c - the media port on Cloudinary's signed upload API.
 *
 * POST <api_base>/v1_1/<cloud>/image/upload as multipart/form-data: the
 * file (streamed by libcurl from the temp file, curl_mime_filedata),
 * api_key, timestamp, public_id and signature.  The signature follows
 * Cloudinary's "Generating authentication signatures": every parameter
 * sent except file, cloud_name, resource_type and api_key, sorted by name,
 * joined as name=value with '&', the API secret appended, hashed; we use
 * SHA-256 (one of the two digests it accepts; libsodium has it), here over
 * "public_id=<id>&timestamp=<unix s><secret>".
 *
 * Mapping choices: public_id is the content's SHA-256, so the same image
 * uploaded twice names one asset (like media_local's file names).  The
 * answer's secure_url, public_id, bytes, format, width and height become
 * the client's {url, publicId, bytes, format, width, height}.  A timeout,
 * a transport error or a 5xx is retried once with a fresh request; a
 * second failure, a refused signature (401/403: a configuration error,
 * logged loudly) or an unreadable answer is 503 unavailable; a 400 (the
 * service refused the image) is 415.  The temp file is removed once the
 * answer is in, whatever it was.  At shutdown (media_cancel) transfers
 * still running are ended through libcurl's progress callback and answer
 * 503, so MHD, which waits for every suspended request, can stop within
 * the grace period.
 *
 * Threads: the adapter is immutable after open; each put's state (`job`)
 * is owned by the caller until submitted, then by the conn thread, whose
 * done callback finishes it. */
#include "chatli/adapters/media_cloudinary.h"

#include <errno.h>
#include <jansson.h>
#include <stdatomic.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chatli/log.h"
#include "media_cloudinary_internal.h"
#include "media_internal.h"

#define RESPONSE_MAX (64 * 1024) /* Cloudinary's upload answer is ~1 KiB */
/* A temp file this old was left by a crash mid-upload (see media_local.c). */
#define TMP_MAX_AGE_S 3600

struct media_cloudinary {
    struct media base;
    struct media_cloudinary_conn *conn;
    char *key, *secret;
    char *upload_url;         /* <api_base>/v1_1/<cloud>/image/upload */
    long connect_timeout_ms, timeout_ms;
    _Atomic bool cancelled;   /* set once at shutdown (media_cancel) */
    char tmp[4096 + 8];
};

/* One put, from media_put to its callback. */
struct job {
    struct media_cloudinary_req req; /* first: done_cb gets it back */
    struct media_cloudinary *m;
    curl_mime *mime;
    char *path;               /* the temp file (owned: removed at the end) */
    char public_id[65];
    int64_t bytes;
    enum media_kind kind;
    int attempt;              /* 1, then 2 for the retry */
    char *resp;               /* the answer body, up to RESPONSE_MAX */
    size_t resp_len;
    media_put_cb cb;
    void *arg;
};

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct job *j = arg;
    size_t len = size * n;
    if (len > RESPONSE_MAX - j->resp_len)
        return 0; /* far larger than any real answer: fail the transfer */
    char *p = realloc(j->resp, j->resp_len + len + 1);
    if (!p)
        return 0;
    memcpy(p + j->resp_len, data, len);
    j->resp = p;
    j->resp_len += len;
    j->resp[j->resp_len] = '\0';
    return len;
}

/* Hex SHA-256 of "public_id=<id>&timestamp=<ts><secret>": the parameters
 * sent, minus file and api_key, in alphabetical order, then the secret. */
static void sign(const char *public_id, const char *ts, const char *secret, char out[65])
{
    crypto_hash_sha256_state st;
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_init(&st);
    const char *parts[] = {"public_id=", public_id, "&timestamp=", ts, secret};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        crypto_hash_sha256_update(&st, (const unsigned char *)parts[i], strlen(parts[i]));
    crypto_hash_sha256_final(&st, d);
    sodium_bin2hex(out, 65, d, sizeof d);
}

static int add_field(curl_mime *mime, const char *name, const char *value)
{
    curl_mimepart *p = curl_mime_addpart(mime);
    return p && curl_mime_name(p, name) == CURLE_OK &&
                   curl_mime_data(p, value, CURL_ZERO_TERMINATED) == CURLE_OK
               ? 0
               : -1;
}

static void done(struct media_cloudinary_req *r, CURLcode rc, long status, double seconds);

/* libcurl calls this at least once a second while a transfer runs, even
 * when no byte moves: the place to give up on a transfer at shutdown
 * (returning non-zero ends it with CURLE_ABORTED_BY_CALLBACK). */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct job *j = arg;
    return atomic_load(&j->m->cancelled) ? 1 : 0;
}

/* A fresh easy handle and form for the job's next attempt. */
static int build(struct job *j)
{
    struct media_cloudinary *m = j->m;
    char ts[24], sig[65];
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
    sign(j->public_id, ts, m->secret, sig);
    CURL *e = curl_easy_init();
    curl_mime *mime = e ? curl_mime_init(e) : NULL;
    curl_mimepart *file = mime ? curl_mime_addpart(mime) : NULL;
    if (!file || curl_mime_name(file, "file") != CURLE_OK ||
        curl_mime_filedata(file, j->path) != CURLE_OK || add_field(mime, "api_key", m->key) ||
        add_field(mime, "timestamp", ts) || add_field(mime, "public_id", j->public_id) ||
        add_field(mime, "signature", sig)) {
        curl_mime_free(mime);
        if (e)
            curl_easy_cleanup(e);
        return -1;
    }
    curl_easy_setopt(e, CURLOPT_URL, m->upload_url);
    curl_easy_setopt(e, CURLOPT_MIMEPOST, mime);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, m->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, m->timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, j);
    j->req.easy = e;
    j->req.done_cb = done;
    j->mime = mime;
    free(j->resp);
    j->resp = NULL;
    j->resp_len = 0;
    return 0;
}

static void release(struct job *j)
{
    if (j->req.easy)
        curl_easy_cleanup(j->req.easy);
    curl_mime_free(j->mime);
    unlink(j->path);
    free(j->path);
    free(j->resp);
    free(j);
}

static void fail(struct job *j, int code, const char *msg)
{
    struct chat_err err = {0};
    chat_err_set(&err, code, NULL, "%s", msg);
    media_put_cb cb = j->cb;
    void *arg = j->arg;
    release(j);
    cb(arg, code, NULL, &err);
}

static bool is_url(const char *s)
{
    return s && (strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0);
}

/* Maps a 200 answer to the result; false when it lacks what we need. */
static bool map_answer(struct job *j, struct media_result *res)
{
    json_error_t jerr;
    json_t *a = json_loadb(j->resp ? j->resp : "", j->resp_len, 0, &jerr);
    const char *url = NULL, *pid = NULL, *fmt = NULL;
    json_int_t bytes = 0, w = 0, h = 0;
    bool ok = a && json_unpack(a, "{s:s, s:s, s:I, s:s, s:I, s:I}", "secure_url", &url, "public_id",
                               &pid, "bytes", &bytes, "format", &fmt, "width", &w, "height", &h) == 0 &&
              is_url(url) && strlen(url) < sizeof res->url && strlen(pid) < sizeof res->public_id &&
              w > 0 && h > 0 && w <= 0x7fffffff && h <= 0x7fffffff;
    if (ok) {
        snprintf(res->url, sizeof res->url, "%s", url);
        snprintf(res->public_id, sizeof res->public_id, "%s", pid);
        res->bytes = bytes;
        enum media_kind k = media_kind_of_format(fmt);
        res->kind = k != MEDIA_KIND_NONE ? k : j->kind;
        res->width = (int)w;
        res->height = (int)h;
    }
    json_decref(a);
    return ok;
}

static bool retryable(CURLcode rc, long status)
{
    return rc != CURLE_ABORTED_BY_CALLBACK && (rc != CURLE_OK || status >= 500);
}

static void done(struct media_cloudinary_req *r, CURLcode rc, long status, double seconds)
{
    struct job *j = (struct job *)r;
    media_metrics_cloudinary(seconds);
    curl_easy_cleanup(j->req.easy);
    j->req.easy = NULL;
    curl_mime_free(j->mime);
    j->mime = NULL;
    if (retryable(rc, status) && j->attempt == 1) {
        log_warn("cloudinary: attempt 1 failed (%s, status %ld): retrying once",
                 rc != CURLE_OK ? curl_easy_strerror(rc) : "HTTP error", status);
        j->attempt = 2;
        if (build(j) == 0) {
            media_cloudinary__submit(j->m->conn, &j->req);
            return;
        }
    }
    if (rc != CURLE_OK || status >= 500) {
        log_warn("cloudinary: upload failed: %s, status %ld",
                 rc != CURLE_OK ? curl_easy_strerror(rc) : "HTTP error", status);
        fail(j, CHAT_E_UNAVAILABLE, "the media service is unavailable");
        return;
    }
    if (status == 400) {
        log_info("cloudinary: image refused: %.200s", j->resp ? j->resp : "");
        fail(j, CHAT_E_UNSUPPORTED_MEDIA, "the media service refused this image");
        return;
    }
    struct media_result res = {0};
    if (status != 200 || !map_answer(j, &res)) {
        log_error("cloudinary: upload answered %ld: %.300s%s", status, j->resp ? j->resp : "",
                  status == 401 || status == 403 ? " (check CLOUDINARY_URL's key and secret)" : "");
        fail(j, CHAT_E_UNAVAILABLE, "the media service is unavailable");
        return;
    }
    media_metrics_upload(res.bytes);
    media_put_cb cb = j->cb;
    void *arg = j->arg;
    release(j);
    cb(arg, 0, &res, NULL);
}

static int media_cloudinary_put(struct media *self, const struct media_file *f, media_put_cb cb,
                                void *arg, struct chat_err *err)
{
    struct media_cloudinary *m = (struct media_cloudinary *)self;
    if (atomic_load(&m->cancelled)) {
        unlink(f->path);
        return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "the server is shutting down");
    }
    struct job *j = calloc(1, sizeof *j);
    if (j)
        j->path = strdup(f->path);
    if (!j || !j->path) {
        unlink(f->path);
        free(j);
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "out of memory");
    }
    j->m = m;
    j->cb = cb;
    j->arg = arg;
    j->bytes = f->bytes;
    j->kind = f->kind;
    j->attempt = 1;
    snprintf(j->public_id, sizeof j->public_id, "%s", f->sha256);
    if (build(j) != 0) {
        release(j);
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "cannot build the upload request");
    }
    media_cloudinary__submit(m->conn, &j->req);
    return 0;
}

static void media_cloudinary_cancel(struct media *self)
{
    struct media_cloudinary *m = (struct media_cloudinary *)self;
    atomic_store(&m->cancelled, true);
    media_cloudinary__conn_wake(m->conn);
}

static void media_cloudinary_close(struct media *self)
{
    struct media_cloudinary *m = (struct media_cloudinary *)self;
    media_cloudinary__conn_close(m->conn);
    curl_free(m->key);
    curl_free(m->secret);
    free(m->upload_url);
    free(m);
    curl_global_cleanup();
}

static const struct media_ops media_cloudinary_ops = {
    .put = media_cloudinary_put,
    .cancel = media_cloudinary_cancel,
    .close = media_cloudinary_close,
};

/* key, secret and cloud from cloudinary://<key>:<secret>@<cloud>. */
static int parse_account(struct media_cloudinary *m, const char *url, char **cloud)
{
    CURLU *u = curl_url();
    char *scheme = NULL;
    int ok = u && curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
             strcmp(scheme, "cloudinary") == 0 &&
             curl_url_get(u, CURLUPART_USER, &m->key, CURLU_URLDECODE) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_PASSWORD, &m->secret, CURLU_URLDECODE) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_HOST, cloud, 0) == CURLUE_OK && *m->key && *m->secret;
    curl_free(scheme);
    curl_url_cleanup(u);
    return ok ? 0 : -1;
}

/* <api_base>'s scheme, host and port, its path without a trailing '/',
 * then /v1_1/<cloud>/image/upload. */
static int build_upload_url(struct media_cloudinary *m, const char *base, const char *cloud)
{
    CURLU *u = curl_url();
    char *path = NULL, *out = NULL;
    int ok = u && curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK;
    if (ok) {
        size_t l = strlen(path);
        while (l > 0 && path[l - 1] == '/')
            l--;
        size_t n = l + strlen(cloud) + 32;
        char *p = malloc(n);
        ok = p != NULL;
        if (ok) {
            snprintf(p, n, "%.*s/v1_1/%s/image/upload", (int)l, path, cloud);
            ok = curl_url_set(u, CURLUPART_PATH, p, CURLU_URLENCODE) == CURLUE_OK &&
                 curl_url_set(u, CURLUPART_QUERY, NULL, 0) == CURLUE_OK &&
                 curl_url_get(u, CURLUPART_URL, &out, 0) == CURLUE_OK;
            free(p);
        }
    }
    if (ok)
        m->upload_url = strdup(out);
    curl_free(path);
    curl_free(out);
    curl_url_cleanup(u);
    return ok && m->upload_url ? 0 : -1;
}

int media_cloudinary_open(const struct media_cloudinary_config *cfg, struct media **out,
                          struct chat_err *err)
{
    *out = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "curl_global_init failed");
    int rc;
    char *cloud = NULL;
    struct media_cloudinary *m = calloc(1, sizeof *m);
    if (!m) {
        rc = chat_err_set(err, CHAT_E_INTERNAL, NULL, "out of memory");
        goto fail;
    }
    if (parse_account(m, cfg->url, &cloud) != 0) {
        rc = chat_err_set(err, CHAT_E_BAD_REQUEST, NULL,
                          "CLOUDINARY_URL: expected cloudinary://<key>:<secret>@<cloud>");
        goto fail;
    }
    if (build_upload_url(m, cfg->api_base, cloud) != 0) {
        rc = chat_err_set(err, CHAT_E_BAD_REQUEST, NULL, "CLOUDINARY_API_BASE: not a usable URL");
        goto fail;
    }
    snprintf(m->tmp, sizeof m->tmp, "%s/tmp", cfg->data_dir);
    if (mkdir(m->tmp, 0700) != 0 && errno != EEXIST) {
        rc = chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "cannot create %s: %s", m->tmp,
                          strerror(errno));
        goto fail;
    }
    media__sweep_tmp(m->tmp, TMP_MAX_AGE_S);
    if ((rc = media_cloudinary__conn_open(&m->conn, err)) != 0)
        goto fail;
    m->connect_timeout_ms = cfg->connect_timeout_ms;
    m->timeout_ms = cfg->timeout_ms;
    m->base.ops = &media_cloudinary_ops;
    m->base.name = "cloudinary";
    m->base.tmp_dir = m->tmp;
    media_metrics_register();
    curl_free(cloud);
    *out = &m->base;
    return 0;
fail:
    curl_free(cloud);
    if (m) {
        curl_free(m->key);
        curl_free(m->secret);
        free(m->upload_url);
        free(m);
    }
    curl_global_cleanup();
    return rc;
}
