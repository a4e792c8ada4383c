/* routes_web.c - GET / and /web/{file}: the embedded web client (docs/web.md).
 *
 * The files of web/ are compiled into the binary (cmake/embed-web.cmake,
 * web_assets.h), so serving one is a table lookup and a response over
 * bytes that live as long as the process: no disk, no copy, nothing a
 * container must ship beside the binary.  The router sends only these
 * two templates here, and only while WEB_UI is on (server.c unmatches
 * them otherwise, so / stays the 404 of an API-only server).
 *
 * Headers differ from the API's in two ways.  The page's
 * Content-Security-Policy lets it load its own script and style files and
 * talk to its own origin (REST and /ws) and nothing else: no inline
 * script or style, no eval, no framing, no plugins, no <base>; images may
 * come from any http(s) URL because post images and avatars are URLs the
 * API accepts from users (Cloudinary's, PUBLIC_URL's).  And the files are
 * cacheable, revalidated by ETag, so a reload costs a 304 per file. */
#include <microhttpd.h>
#include <string.h>

#include "http_internal.h"
#include "reply.h"
#include "web_assets.h"
#include "chatli/err.h"

#define WEB_CSP                                                                          \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "      \
    "img-src 'self' http: https: blob:; manifest-src 'self'; base-uri 'none'; "          \
    "form-action 'none'; frame-ancestors 'none'; object-src 'none'"

static const struct web_asset *find(const char *path)
{
    for (size_t i = 0; i < web_assets_count; i++)
        if (strcmp(web_assets[i].path, path) == 0)
            return &web_assets[i];
    return NULL;
}

/* True when If-None-Match names the file's current tag (or is "*"): the
 * client's copy is current.  Tags are quoted hex, so finding the quoted
 * tag in the header's list is an exact match of one entry (a weak "W/"
 * prefix compares equal too, as RFC 9110 asks for If-None-Match). */
static bool not_modified(struct http_req *rq, const struct web_asset *a)
{
    const char *inm = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
                                                  MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (!inm)
        return false;
    while (*inm == ' ' || *inm == '\t')
        inm++;
    return strcmp(inm, "*") == 0 || strstr(inm, a->etag) != NULL;
}

int routes_web_get(struct http_req *rq, json_t *body, json_t **out, int *status,
                   struct chat_err *err)
{
    const struct web_asset *a = find(rq->path);
    if (!a)
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such file");
    *out = NULL;
    *status = not_modified(rq, a) ? 304 : 200;
    if (http_reply_static(rq, *status, a->type, a->data, a->len, a->etag, WEB_CSP) != 0)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "cannot queue the file");
    return 0;
}
