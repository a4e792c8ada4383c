/* media.h - the media port: where uploaded images go and how they come back.
 *
 * The REST transport streams a `multipart/form-data` upload into a temporary
 * file (never whole in memory), decides its type from its bytes and reads
 * its size from its header with the pure functions below, then hands the
 * file to the wired adapter:
 *   - media_local (src/media/media_local.c): DATA_DIR/uploads, one file per
 *     distinct content (named by its SHA-256), served back at /uploads/.
 *   - media_cloudinary (src/media/media_cloudinary*.c): Cloudinary's signed
 *     upload API through libcurl on the adapter's own thread.
 * An adapter embeds `struct media` as its first member and fills one static
 * `struct media_ops`; callers use the inline wrappers only.
 *
 * Conventions: operations return 0 or a negative CHAT_E_* code and fill
 * `err` (may be NULL); a backend that is down or too slow is
 * CHAT_E_UNAVAILABLE, and driver text goes to the log, never to `err`.
 * Every operation may be called from any thread. */
#ifndef CHATLI_MEDIA_H
#define CHATLI_MEDIA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chatli/err.h"

/* ---- image recognition (pure, no I/O; src/media/media_image.c) -------- */

enum media_kind {
    MEDIA_KIND_NONE = 0,
    MEDIA_KIND_JPEG,
    MEDIA_KIND_PNG,
    MEDIA_KIND_GIF,
    MEDIA_KIND_WEBP,
};

/* Bytes media_image_kind needs to decide (the WebP signature spans 12). */
#define MEDIA_MAGIC_LEN 12

/* The kind named by the first bytes of a file (`len` may be short: fewer
 * than MEDIA_MAGIC_LEN bytes that could still start an image give NONE).
 * Reads at most MEDIA_MAGIC_LEN bytes of `buf`. */
enum media_kind media_image_kind(const uint8_t *buf, size_t len);

/* The wire format ("jpg", "png", "gif", "webp") and Content-Type
 * ("image/jpeg", ...) of a kind; NULL for MEDIA_KIND_NONE.  Literals. */
const char *media_kind_format(enum media_kind k);
const char *media_kind_mime(enum media_kind k);
/* The kind whose format is `fmt` ("jpg"...), or MEDIA_KIND_NONE. */
enum media_kind media_kind_of_format(const char *fmt);

/* Reads width and height (pixels) from the header of a whole image file
 * `buf[0..len)`: JPEG (baseline and progressive SOF markers), PNG (IHDR),
 * GIF (logical screen, so an animation's canvas) and WebP (VP8, VP8L, and
 * VP8X canvas for animated or extended files).  Bounds-checked over any
 * bytes.  Returns 0 with *kind, *width, *height set (both >= 1), or
 * CHAT_E_UNSUPPORTED_MEDIA when the bytes are no image of those kinds or
 * the header is truncated or malformed. */
int media_image_probe(const uint8_t *buf, size_t len, enum media_kind *kind, int *width,
                      int *height);

/* ---- the port ----------------------------------------------------------- */

struct media;

/* A finished upload, in a temporary file under media->tmp_dir. */
struct media_file {
    const char *path;        /* borrowed for the put call: the temp file */
    int64_t bytes;           /* its size */
    enum media_kind kind;
    int width, height;       /* pixels, from media_image_probe */
    char sha256[65];         /* lowercase hex digest of the content */
};

/* Where the stored image is now.  `url` is absolute (Cloudinary's
 * secure_url) or a path starting with '/' ("/uploads/<name>") that the
 * transport prefixes with PUBLIC_URL or the request's Host. */
struct media_result {
    char url[1024];
    char public_id[256];
    int64_t bytes;
    enum media_kind kind;
    int width, height;
};

/* A put's completion: rc 0 with `res`, or a CHAT_E_* with `err`; both
 * borrowed for the call.  It runs exactly once, on the caller's thread
 * before media_put returns (media_local) or on the adapter's thread later
 * (media_cloudinary); it must not block. */
typedef void (*media_put_cb)(void *arg, int rc, const struct media_result *res,
                             const struct chat_err *err);

/* An asset opened for serving (media_local only). */
struct media_asset {
    int fd;                  /* new: close() it */
    int64_t bytes;
    enum media_kind kind;
};

struct media_ops {
    /* Stores `f`.  Takes the temp file f->path over whatever happens (it
     * is moved or removed; the caller must not touch it again).  Returns 0
     * and then calls `cb` exactly once; or returns an error and never calls
     * it.  Errors: CHAT_E_UNAVAILABLE (storage down or timed out, after the
     * adapter's retries), CHAT_E_UNSUPPORTED_MEDIA (the backend refused the
     * image), CHAT_E_INTERNAL. */
    int (*put)(struct media *self, const struct media_file *f, media_put_cb cb, void *arg,
               struct chat_err *err);
    /* Opens the asset named `name` (the last segment of its /uploads/ URL,
     * unescaped) for reading.  NULL in adapters that serve nothing
     * themselves.  Errors: CHAT_E_NOT_FOUND (no such asset, or a name that
     * is not one of ours: the adapter refuses anything but its own names,
     * so no path can leave its folder). */
    int (*open_asset)(struct media *self, const char *name, struct media_asset *out,
                      struct chat_err *err);
    /* Cheap liveness check for /readyz (local: the folder is writable). */
    int (*ping)(struct media *self, struct chat_err *err);
    /* Shutdown: every put still waiting on a remote service calls back with
     * CHAT_E_UNAVAILABLE soon (within about a second), and later puts fail
     * at once.  NULL in adapters whose puts never wait.  Any thread. */
    void (*cancel)(struct media *self);
    /* Stops the adapter's thread, if any (every put already begun calls
     * back first) and frees it. */
    void (*close)(struct media *self);
};

struct media {
    const struct media_ops *ops;
    const char *name;        /* "local", "cloudinary": /readyz, metrics, logs */
    const char *tmp_dir;     /* where the transport writes uploads in progress */
};

static inline int media_put(struct media *m, const struct media_file *f, media_put_cb cb,
                            void *arg, struct chat_err *err)
{
    return m->ops->put(m, f, cb, arg, err);
}

static inline int media_open_asset(struct media *m, const char *name, struct media_asset *out,
                                   struct chat_err *err)
{
    if (!m->ops->open_asset)
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such upload");
    return m->ops->open_asset(m, name, out, err);
}

static inline int media_ping(struct media *m, struct chat_err *err)
{
    return m->ops->ping ? m->ops->ping(m, err) : 0;
}

static inline void media_cancel(struct media *m)
{
    if (m && m->ops->cancel)
        m->ops->cancel(m);
}

static inline void media_close(struct media *m)
{
    if (m)
        m->ops->close(m);
}

/* ---- metrics (src/media/media.c) ----------------------------------------- */

/* Registers the /metrics series once (chatli_uploads_total,
 * chatli_upload_bytes_total, chatli_cloudinary_request_seconds_sum and
 * _count); any thread. */
void media_metrics_register(void);
/* One stored upload of `bytes` bytes. */
void media_metrics_upload(int64_t bytes);
/* One request to Cloudinary (each attempt) that took `seconds`. */
void media_metrics_cloudinary(double seconds);

#endif
