/* media_local.c - the media port on local disk: DATA_DIR/uploads.
 *
 * Content-addressed: an upload is stored as "<sha256 hex>.<format>", the
 * digest the transport computed while streaming it.  The same image
 * uploaded twice is one file, a name never changes meaning (so the served
 * copy may be cached for a year and its ETag is the name), and a stored
 * file is never rewritten.  Uploads in progress sit in uploads/.tmp on the
 * same file system, so storing one is a rename(2): atomic, and a crash
 * leaves at worst a stray temp file, never half an image under its name.
 *
 * Serving only opens names of that exact shape (64 lowercase hex digits, a
 * dot, one of our four formats), relative to the folder's descriptor: a
 * name with '/', "..", or anything else is simply not one of ours (404),
 * so no path can leave the folder, escaped or not.
 *
 * Threads: immutable after open (the folder descriptor and paths); put and
 * open_asset are plain system calls, safe from any thread. */
#include "chatli/adapters/media_local.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chatli/log.h"
#include "media_internal.h"

/* A temp file this old was left by a crash mid-upload (an upload in
 * progress touches its file with every piece). */
#define TMP_MAX_AGE_S 3600

struct media_local {
    struct media base;
    int dir_fd;              /* DATA_DIR/uploads, O_PATH|O_DIRECTORY */
    char dir[4096];
    char tmp[4096 + 8];
};

static int make_dir(const char *path)
{
    return mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

/* "<64 hex>.<format>" with a known format, or MEDIA_KIND_NONE. */
static enum media_kind our_name(const char *name)
{
    size_t i = 0;
    for (; i < 64; i++)
        if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
            return MEDIA_KIND_NONE;
    return name[64] == '.' ? media_kind_of_format(name + 65) : MEDIA_KIND_NONE;
}

static int media_local_put(struct media *self, const struct media_file *f, media_put_cb cb,
                           void *arg, struct chat_err *err)
{
    struct media_local *m = (struct media_local *)self;
    const char *fmt = media_kind_format(f->kind);
    if (!fmt || strlen(f->sha256) != 64) {
        unlink(f->path);
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "put of a file that is no known image");
    }
    struct media_result res = {.bytes = f->bytes, .kind = f->kind, .width = f->width,
                               .height = f->height};
    snprintf(res.public_id, sizeof res.public_id, "%s.%s", f->sha256, fmt);
    snprintf(res.url, sizeof res.url, "/uploads/%s", res.public_id);
    char target[sizeof m->dir + sizeof res.public_id + 2];
    snprintf(target, sizeof target, "%s/%s", m->dir, res.public_id);
    /* Readable by whoever serves the folder (a reverse proxy may), like any
     * public file; mkstemp made it 0600. */
    if (chmod(f->path, 0644) != 0 || rename(f->path, target) != 0) {
        log_error("media_local: cannot store %s: %s", res.public_id, strerror(errno));
        unlink(f->path);
        return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "upload storage is unavailable");
    }
    media_metrics_upload(f->bytes);
    cb(arg, 0, &res, NULL);
    return 0;
}

static int media_local_open_asset(struct media *self, const char *name, struct media_asset *out,
                                  struct chat_err *err)
{
    struct media_local *m = (struct media_local *)self;
    enum media_kind k = strlen(name) <= 70 ? our_name(name) : MEDIA_KIND_NONE;
    if (k == MEDIA_KIND_NONE)
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such upload");
    int fd = openat(m->dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        if (fd < 0 && e != ENOENT)
            log_warn("media_local: cannot open %s: %s", name, strerror(e));
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such upload");
    }
    out->fd = fd;
    out->bytes = st.st_size;
    out->kind = k;
    return 0;
}

static int media_local_ping(struct media *self, struct chat_err *err)
{
    struct media_local *m = (struct media_local *)self;
    if (access(m->tmp, W_OK) != 0)
        return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "uploads folder is not writable");
    return 0;
}

static void media_local_close(struct media *self)
{
    struct media_local *m = (struct media_local *)self;
    close(m->dir_fd);
    free(m);
}

static const struct media_ops media_local_ops = {
    .put = media_local_put,
    .open_asset = media_local_open_asset,
    .ping = media_local_ping,
    .close = media_local_close,
};

int media_local_open(const char *data_dir, struct media **out, struct chat_err *err)
{
    *out = NULL;
    struct media_local *m = calloc(1, sizeof *m);
    if (!m)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "out of memory");
    if ((size_t)snprintf(m->dir, sizeof m->dir, "%s/uploads", data_dir) >= sizeof m->dir) {
        free(m);
        return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "DATA_DIR path is too long");
    }
    snprintf(m->tmp, sizeof m->tmp, "%s/.tmp", m->dir);
    if (make_dir(m->dir) != 0 || make_dir(m->tmp) != 0 ||
        (m->dir_fd = open(m->dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
        int rc = chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "cannot create %s: %s", m->tmp,
                              strerror(errno));
        free(m);
        return rc;
    }
    media__sweep_tmp(m->tmp, TMP_MAX_AGE_S);
    m->base.ops = &media_local_ops;
    m->base.name = "local";
    m->base.tmp_dir = m->tmp;
    media_metrics_register();
    *out = &m->base;
    return 0;
}
