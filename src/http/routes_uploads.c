/* routes_uploads.c - POST /api/uploads (streamed) and GET /uploads/<name>.
 *
 * An upload never sits whole in memory.  server.c authenticates and counts
 * the request before any of the body is read (routes_uploads_begin runs on
 * the first access-handler call), then hands every piece of the body to
 * MHD's own multipart parser (MHD_create_post_processor), whose iterator
 * writes the `file` part to a temp file in the media adapter's tmp_dir and
 * hashes it (SHA-256, the local adapter's content address) on the way.
 *
 * Limits while reading: MAX_UPLOAD_BYTES applies to the file part; the
 * whole body may exceed it by BODY_SLACK (part headers, small fields).
 * Past either, the temp file is dropped and the rest of the body is read
 * and discarded, so the client reads a 413 instead of a reset and memory
 * stays flat however much it sends.  A declared Content-Length past the
 * cap is answered before the body, and the connection lingers (linger.c).
 *
 * The type is decided by the first bytes of the file (media_image_kind):
 * anything else stops being written at once and ends as 415.  When the body
 * is complete, the header is probed for width and height over a read-only
 * mapping of the temp file (media_image_probe reads only the header's
 * pages), and the file goes to the media port.  media_put may finish on
 * another thread (Cloudinary), so the connection is suspended meanwhile
 * (http_async_begin/finish) and no MHD worker waits on the network.
 *
 * Serving (/uploads/<name>) asks the port to open the name; only the
 * local adapter serves, and it refuses every name that is not exactly one
 * of its own, so traversal ("..", '/', %-escapes) is a plain 404. */
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "chatli/config.h"
#include "chatli/log.h"
#include "chatli/media.h"
#include "http_internal.h"
#include "ratelimit.h"
#include "reply.h"

/* Room for multipart framing and small fields around the file part. */
#define BODY_SLACK (64 * 1024)
/* MHD's post processor buffer: the largest part header it must hold. */
#define PP_BUFFER 8192

/* One upload in progress.  Owned by the MHD worker serving the request;
 * freed by routes_uploads_free when MHD completes it.  While the request is
 * suspended for media_put, only the put callback reads `base_url`. */
struct http_upload {
    struct MHD_PostProcessor *pp;
    int fd;                   /* the temp file while the file part arrives, else -1 */
    char path[4300];          /* the temp file's path; "" once handed over or removed */
    int64_t max;              /* MAX_UPLOAD_BYTES */
    int64_t file_bytes;       /* bytes of the file part received */
    int64_t body_bytes;       /* bytes of the whole body received */
    int64_t part_bytes;       /* bytes of the file part seen, kept or not */
    uint8_t head[MEDIA_MAGIC_LEN];
    size_t head_len;
    enum media_kind kind;     /* from the first bytes; NONE until they arrived */
    bool in_file;             /* the first `file` part is arriving */
    bool file_done;           /* a `file` part has ended */
    bool too_large, not_image, bad_body, io_error;
    crypto_hash_sha256_state sha;
    char base_url[512];       /* PUBLIC_URL or http(s)://Host, for local URLs */
};

static const char *header(struct http_req *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

/* True for "multipart/form-data" with any parameters. */
static bool is_multipart(const char *ct)
{
    if (!ct)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return strncasecmp(ct, "multipart/form-data", 19) == 0 &&
           (ct[19] == '\0' || ct[19] == ';' || ct[19] == ' ' || ct[19] == '\t');
}

/* A Host value safe to put in a URL: a name or address and a port. */
static bool host_ok(const char *h)
{
    if (!h || !*h || strlen(h) > 255)
        return false;
    for (const char *p = h; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr(".-:[]", *p)))
            return false;
    return true;
}

static void set_base_url(struct http_req *rq, struct http_upload *up)
{
    const struct config *cfg = rq->srv->cfg;
    if (cfg->public_url) {
        snprintf(up->base_url, sizeof up->base_url, "%s", cfg->public_url);
        return;
    }
    const char *host = header(rq, MHD_HTTP_HEADER_HOST);
    const char *proto = cfg->trust_proxy ? header(rq, "X-Forwarded-Proto") : NULL;
    bool https = proto && strcasecmp(proto, "https") == 0;
    if (host_ok(host))
        snprintf(up->base_url, sizeof up->base_url, "%s://%s", https ? "https" : "http", host);
    /* else: no usable Host (HTTP/1.0 without one, or junk): the URL stays
     * a path, which a client resolves against the address it used. */
}

static void drop_file(struct http_upload *up)
{
    if (up->fd >= 0)
        close(up->fd);
    up->fd = -1;
    if (up->path[0])
        unlink(up->path);
    up->path[0] = '\0';
}

static int open_temp(struct http_req *rq, struct http_upload *up)
{
    snprintf(up->path, sizeof up->path, "%s/up-XXXXXX", rq->srv->media->tmp_dir);
    up->fd = mkostemp(up->path, O_CLOEXEC);
    if (up->fd < 0) {
        log_error("uploads: cannot create a temp file in %s: %s", rq->srv->media->tmp_dir,
                  strerror(errno));
        up->path[0] = '\0';
        up->io_error = true;
        return -1;
    }
    return 0;
}

static void write_all(struct http_upload *up, const char *data, size_t n)
{
    while (n > 0 && up->fd >= 0) {
        ssize_t w = write(up->fd, data, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            log_error("uploads: writing a temp file: %s", strerror(errno));
            up->io_error = true;
            drop_file(up);
            return;
        }
        data += w;
        n -= (size_t)w;
    }
}

/* Collects the first bytes and decides the kind once there are enough. */
static void sniff(struct http_upload *up, const char *data, size_t n)
{
    size_t take = MEDIA_MAGIC_LEN - up->head_len;
    if (take > n)
        take = n;
    memcpy(up->head + up->head_len, data, take);
    up->head_len += take;
    if (up->head_len == MEDIA_MAGIC_LEN) {
        up->kind = media_image_kind(up->head, up->head_len);
        if (up->kind == MEDIA_KIND_NONE) {
            up->not_image = true;
            drop_file(up);
        }
    }
}

static void file_data(struct http_req *rq, struct http_upload *up, const char *data, size_t n)
{
    if (up->too_large || up->not_image || up->io_error)
        return;
    if ((int64_t)n > up->max - up->file_bytes) {
        up->too_large = true;
        drop_file(up);
        return;
    }
    if (up->fd < 0 && open_temp(rq, up) != 0)
        return;
    up->file_bytes += (int64_t)n;
    crypto_hash_sha256_update(&up->sha, (const unsigned char *)data, n);
    if (up->head_len < MEDIA_MAGIC_LEN)
        sniff(up, data, n);
    write_all(up, data, n);
}

/* MHD's multipart iterator: one call per piece of one part.  Only the
 * first part named "file" is kept; other fields are ignored. */
static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *filename, const char *content_type,
                               const char *transfer_encoding, const char *data, uint64_t off,
                               size_t size)
{
    struct http_req *rq = cls;
    struct http_upload *up = rq->upload;
    bool is_file = key && strcmp(key, "file") == 0;
    /* Another part's data, or a piece that starts over at offset 0 after
     * the file part had data, means the file part has ended. */
    if (up->in_file && (!is_file || (off == 0 && up->part_bytes > 0))) {
        up->in_file = false;
        up->file_done = true;
    }
    if (is_file && !up->in_file && !up->file_done)
        up->in_file = true;
    if (up->in_file && size > 0) {
        up->part_bytes += (int64_t)size;
        file_data(rq, up, data, size);
    }
    return MHD_YES;
}

/* The per-user upload limit (UPLOAD_RATE_LIMIT_MAX per RATE_LIMIT_WINDOW_MS),
 * counted in the REST limiter's store.  Returns 0 or CHAT_E_RATE_LIMITED. */
static int count_upload(struct http_req *rq, struct chat_err *err)
{
    const struct config *cfg = rq->srv->cfg;
    if (cfg->upload_rate_max <= 0)
        return 0;
    char key[OID_SIZE + 8];
    snprintf(key, sizeof key, "rl:up:%s", rq->session.user_id);
    struct ratelimit_result res;
    struct chat_err cerr = {0};
    if (http_ratelimit_hit(rq->srv->cache, key, cfg->upload_rate_max, cfg->rate_limit_window_ms,
                           &res, &cerr) != 0) {
        log_warn("upload rate limit: cache failed: %s", cerr.msg); /* fail open, like REST */
        return 0;
    }
    if (!res.exceeded)
        return 0;
    rq->rl_on = true; /* the 429 carries this limit's numbers and Retry-After */
    rq->rl_limit = res.limit;
    rq->rl_remaining = res.remaining;
    rq->rl_reset_s = res.reset_s;
    return chat_err_set(err, CHAT_E_RATE_LIMITED, NULL, "too many uploads: retry after the window resets");
}

/* A declared Content-Length past what we would read. */
static bool declared_too_large(struct http_req *rq, int64_t max)
{
    const char *cl = header(rq, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!cl)
        return false;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(cl, &end, 10);
    return errno == ERANGE || n > (unsigned long long)max + BODY_SLACK;
}

int routes_uploads_begin(struct http_req *rq, struct chat_err *err)
{
    int64_t max = rq->srv->cfg->max_upload_bytes;
    int rc = count_upload(rq, err);
    if (rc)
        return rc;
    if (!is_multipart(header(rq, MHD_HTTP_HEADER_CONTENT_TYPE)))
        return chat_err_set(err, CHAT_E_UNSUPPORTED_MEDIA, NULL,
                            "Content-Type must be multipart/form-data with a file part");
    if (declared_too_large(rq, max))
        return chat_err_set(err, CHAT_E_PAYLOAD_TOO_LARGE, NULL,
                            "the file is larger than MAX_UPLOAD_BYTES (%lld bytes)", (long long)max);
    struct http_upload *up = calloc(1, sizeof *up);
    if (!up)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "out of memory");
    up->fd = -1;
    up->max = max;
    crypto_hash_sha256_init(&up->sha);
    set_base_url(rq, up);
    up->pp = MHD_create_post_processor(rq->conn, PP_BUFFER, on_part, rq);
    if (!up->pp) { /* a multipart type without a usable boundary */
        free(up);
        return chat_err_set(err, CHAT_E_BAD_REQUEST, NULL, "malformed multipart/form-data header");
    }
    rq->upload = up; /* only now: server.c feeds the body to it from here on */
    return 0;
}

void routes_uploads_feed(struct http_req *rq, const char *data, size_t n)
{
    struct http_upload *up = rq->upload;
    up->body_bytes += (int64_t)n;
    if (up->too_large || up->bad_body)
        return; /* discarding the rest */
    if (up->body_bytes > up->max + BODY_SLACK) {
        up->too_large = true;
        drop_file(up);
        return;
    }
    if (MHD_post_process(up->pp, data, n) != MHD_YES) {
        up->bad_body = true;
        drop_file(up);
    }
}

void routes_uploads_free(struct http_req *rq)
{
    struct http_upload *up = rq->upload;
    rq->upload = NULL;
    if (up->pp)
        MHD_destroy_post_processor(up->pp);
    drop_file(up);
    free(up);
}

/* ---- finishing: probe, store, answer --------------------------------------- */

/* Width, height and the checked kind of the complete temp file. */
static int probe_file(struct http_upload *up, struct media_file *f, struct chat_err *err)
{
    void *map = mmap(NULL, (size_t)up->file_bytes, PROT_READ, MAP_PRIVATE, up->fd, 0);
    if (map == MAP_FAILED) {
        log_error("uploads: mmap of a temp file: %s", strerror(errno));
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "cannot read the upload");
    }
    int rc = media_image_probe(map, (size_t)up->file_bytes, &f->kind, &f->width, &f->height);
    munmap(map, (size_t)up->file_bytes);
    if (rc != 0)
        return chat_err_set(err, CHAT_E_UNSUPPORTED_MEDIA, NULL,
                            "the file is not a valid JPEG, PNG, GIF or WebP image");
    return 0;
}

/* The media port's completion: runs on this worker (local) or on the
 * adapter's thread (Cloudinary); answers through http_async_finish. */
static void put_done(void *arg, int rc, const struct media_result *res, const struct chat_err *err)
{
    struct http_req *rq = arg;
    if (rc != 0) {
        http_async_finish(rq, rc, 0, NULL, 0, err);
        return;
    }
    char url[sizeof res->url + 512];
    snprintf(url, sizeof url, "%s%s", res->url[0] == '/' ? rq->upload->base_url : "", res->url);
    json_t *body = json_pack("{s:s, s:s, s:I, s:s, s:i, s:i}", "url", url, "publicId",
                             res->public_id, "bytes", (json_int_t)res->bytes, "format",
                             media_kind_format(res->kind), "width", res->width, "height",
                             res->height);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        struct chat_err e = {0};
        chat_err_set(&e, CHAT_E_INTERNAL, NULL, "out of memory");
        http_async_finish(rq, CHAT_E_INTERNAL, 0, NULL, 0, &e);
        return;
    }
    http_async_finish(rq, 0, 201, text, strlen(text), NULL);
}

/* The outcome of reading the body, in the order a client can act on. */
static int body_outcome(struct http_upload *up, struct chat_err *err)
{
    if (up->too_large)
        return chat_err_set(err, CHAT_E_PAYLOAD_TOO_LARGE, NULL,
                            "the file is larger than MAX_UPLOAD_BYTES (%lld bytes)", (long long)up->max);
    if (up->bad_body)
        return chat_err_set(err, CHAT_E_BAD_REQUEST, NULL, "malformed multipart/form-data body");
    if (!up->in_file && !up->file_done)
        return chat_err_set(err, CHAT_E_VALIDATION, "file", "a multipart part named \"file\" is required");
    if (up->not_image || up->file_bytes < MEDIA_MAGIC_LEN)
        return chat_err_set(err, CHAT_E_UNSUPPORTED_MEDIA, NULL,
                            "only JPEG, PNG, GIF and WebP images are accepted");
    if (up->io_error)
        return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "upload storage is unavailable");
    return 0;
}

int routes_uploads_create(struct http_req *rq, json_t *body, json_t **out, int *status,
                          struct chat_err *err)
{
    struct http_upload *up = rq->upload;
    *out = NULL;
    if (!up) /* begin answered already; MHD does not call us then */
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "upload state missing");
    int rc = body_outcome(up, err);
    if (rc)
        return rc;
    struct media_file f = {.path = up->path, .bytes = up->file_bytes};
    if ((rc = probe_file(up, &f, err)) != 0)
        return rc;
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&up->sha, digest);
    sodium_bin2hex(f.sha256, sizeof f.sha256, digest, sizeof digest);
    close(up->fd);
    up->fd = -1;
    char path[sizeof up->path];
    memcpy(path, up->path, sizeof path);
    f.path = path;
    up->path[0] = '\0'; /* the port owns the temp file from here */
    http_async_begin(rq);
    if ((rc = media_put(rq->srv->media, &f, put_done, rq, err)) != 0)
        http_async_finish(rq, rc, 0, NULL, 0, err);
    return 0;
}

int routes_uploads_get(struct http_req *rq, json_t *body, json_t **out, int *status,
                       struct chat_err *err)
{
    *out = NULL;
    struct media_asset a;
    int rc = media_open_asset(rq->srv->media, rq->match.params[0], &a, err);
    if (rc)
        return rc;
    /* The name is the content's digest, so it is a strong validator. */
    char etag[ROUTE_PARAM_MAX + 4];
    snprintf(etag, sizeof etag, "\"%s\"", rq->match.params[0]);
    const char *inm = header(rq, MHD_HTTP_HEADER_IF_NONE_MATCH);
    bool fresh = inm && (strstr(inm, etag) || strcmp(inm, "*") == 0);
    if (fresh)
        close(a.fd);
    if (http_reply_asset(rq, fresh ? 304 : 200, media_kind_mime(a.kind), fresh ? -1 : a.fd,
                         (uint64_t)a.bytes, etag) != 0)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "cannot queue the file");
    return 0;
}
