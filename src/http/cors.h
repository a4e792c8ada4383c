/* cors.h - which browser origins may read chatli's REST responses.
 *
 * CORS_ORIGINS is a comma-separated list of origins ("https://app.example",
 * "http://localhost:5173") or "*".  A listed origin gets
 * Access-Control-Allow-Origin; "*" is safe as a default because auth is a
 * bearer header, never a cookie.  The parsed list is immutable after
 * cors_init, so any thread may read it without a lock. */
#ifndef CHATLI_HTTP_CORS_H
#define CHATLI_HTTP_CORS_H

#include <stdbool.h>
#include <stddef.h>

#include "chatli/err.h"

struct cors {
    bool any;       /* "*" was listed */
    size_t n;       /* listed origins besides "*" */
    char **origins; /* new, lower-cased, without a trailing '/' */
};

/* Parses `list` ("*" or origins "scheme://host[:port]", comma-separated;
 * blanks around entries are ignored; an empty list allows nothing).
 * Returns 0, or CHAT_E_BAD_REQUEST with err->msg naming the bad entry (then
 * nothing is left to free).  On success call cors_cleanup. */
int cors_init(struct cors *c, const char *list, struct chat_err *err);
void cors_cleanup(struct cors *c);

/* The value for Access-Control-Allow-Origin when a request carries
 * `origin` (the Origin header, may be NULL): "*" when "*" is listed,
 * `origin` itself when it is listed (compared ignoring case), else NULL.
 * The result is borrowed from `c` or `origin`. */
const char *cors_allow_origin(const struct cors *c, const char *origin);

#endif
