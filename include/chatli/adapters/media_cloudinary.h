/* media_cloudinary.h - the media port on Cloudinary (signed upload API). */
#ifndef CHATLI_ADAPTERS_MEDIA_CLOUDINARY_H
#define CHATLI_ADAPTERS_MEDIA_CLOUDINARY_H

#include "chatli/media.h"

struct media_cloudinary_config {
    const char *url;          /* CLOUDINARY_URL: cloudinary://<key>:<secret>@<cloud> */
    const char *api_base;     /* CLOUDINARY_API_BASE: http(s)://host[:port][/prefix] */
    const char *data_dir;     /* uploads in progress go to <data_dir>/tmp */
    long connect_timeout_ms;  /* per attempt */
    long timeout_ms;          /* per attempt, the whole request */
};

/* Parses the URLs (libcurl's URL API), creates the temp folder and starts
 * the adapter's libcurl thread.  Uploads are signed as Cloudinary documents
 * (the sorted parameters, then the API secret, SHA-256) and named by their
 * content's SHA-256 (public_id).  One retry on a timeout, a transport error
 * or a 5xx; then CHAT_E_UNAVAILABLE.  *out is new: media_close() (after the
 * last put has called back).  Errors: CHAT_E_BAD_REQUEST (a URL that does
 * not parse, message names the variable), CHAT_E_UNAVAILABLE (the temp
 * folder), CHAT_E_INTERNAL. */
int media_cloudinary_open(const struct media_cloudinary_config *cfg, struct media **out,
                          struct chat_err *err);

#endif
