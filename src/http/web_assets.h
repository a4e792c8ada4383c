/* web_assets.h - the web client's files, embedded in the binary.
 *
 * The table is generated at build time by cmake/embed-web.cmake from the
 * files of web/ (build/generated/web_assets_data.c), so the server needs no
 * files beside it: a container with the binary serves the client.  Every
 * row and every byte is immutable, so any thread may read them. */
#ifndef CHATLI_HTTP_WEB_ASSETS_H
#define CHATLI_HTTP_WEB_ASSETS_H

#include <stddef.h>

struct web_asset {
    const char *path;          /* "/" for index.html, else "/web/<file name>" */
    const char *type;          /* the Content-Type */
    const unsigned char *data; /* `len` bytes (followed by a NUL nobody sends) */
    size_t len;
    const char *etag;          /* a quoted strong tag: 16 hex digits of the SHA-256 */
};

extern const struct web_asset web_assets[];
extern const size_t web_assets_count;

#endif
