/* router.h - the REST route table and path matching.
 *
 * Every route of CONTRACT.md sections 3-5 and 9 is a path template
 * ("/api/posts/{id}/comments") with its methods.  Matching yields the
 * contract's precedence inputs: no template matches -> 404; a template
 * matches but not the method -> 405 with the template's Allow list; else the
 * operation, its flags and its path parameters.  A template whose last
 * segment is "*" is a prefix route: "*" takes the rest of the path, '/'
 * included (at least one byte), as its parameter.  Pure and table-driven: no
 * allocation, no MHD, so it is unit-tested on its own. */
#ifndef CHATLI_HTTP_ROUTER_H
#define CHATLI_HTTP_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

enum route_op {
    ROUTE_NONE = 0,
    ROUTE_AUTH_REGISTER,
    ROUTE_AUTH_LOGIN,
    ROUTE_AUTH_LOGOUT,
    ROUTE_USERS_ME,
    ROUTE_USERS_UPDATE_ME,
    ROUTE_USERS_GET,
    ROUTE_USERS_SEARCH,
    ROUTE_POSTS_CREATE,
    ROUTE_POSTS_LIST,
    ROUTE_POSTS_GET,
    ROUTE_POSTS_DELETE,
    ROUTE_POSTS_UPDATE,
    ROUTE_POSTS_LIKE,
    ROUTE_POSTS_UNLIKE,
    ROUTE_COMMENTS_CREATE,
    ROUTE_COMMENTS_LIST,
    ROUTE_CHATS_CREATE,
    ROUTE_CHATS_LIST,
    ROUTE_CHATS_GET,
    ROUTE_CHATS_UPDATE,
    ROUTE_CHATS_ADD_MEMBER,
    ROUTE_CHATS_REMOVE_MEMBER,
    ROUTE_MESSAGES_LIST,
    ROUTE_MESSAGES_SEND,
    ROUTE_CHATS_READ,
    ROUTE_HEALTHZ,
    ROUTE_READYZ,
    ROUTE_METRICS,
    ROUTE_WEB, /* GET / and /web/{file}: the embedded web client */
    ROUTE_UPLOADS_CREATE,
    ROUTE_UPLOADS_GET,
    ROUTE_MESSAGES_EDIT,   /* PATCH /api/chats/{id}/messages/{messageId} */
    ROUTE_MESSAGES_DELETE, /* DELETE /api/chats/{id}/messages/{messageId} */
    ROUTE__COUNT
};

#define ROUTE_F_PUBLIC 1u /* no token needed (register, login, ops endpoints) */
#define ROUTE_F_BODY 2u   /* a JSON object body is required */
#define ROUTE_F_STREAM 4u /* the handler streams the body itself (uploads: routes_uploads.c) */

/* Longest path parameter kept.  Ids are 24 characters; a longer segment is
 * kept cut at this length, which is still no valid id, so core answers
 * 404 for it just as it would for the whole segment. */
#define ROUTE_PARAM_MAX 128
#define ROUTE_MAX_PARAMS 2

struct route_match {
    int status;           /* 0 matched, 404 no such path, 405 wrong method */
    enum route_op op;     /* when status == 0 */
    unsigned flags;       /* ROUTE_F_* when status == 0 */
    bool api;             /* the path is under /api (rate limited, RateLimit-* headers) */
    bool web;             /* a web client route (/, /web/...), absent with WEB_UI=0 */
    const char *route;    /* the template, a literal: metrics label; "other" on 404 */
    const char *allow;    /* "GET, PATCH": the template's methods, "" on 404 */
    int n_params;
    char params[ROUTE_MAX_PARAMS][ROUTE_PARAM_MAX]; /* raw, NUL-terminated, in path order */
};

/* Matches `method` ("GET"...; HEAD matches GET) and the raw request path
 * `path[0..len)` (no query string; percent-escapes are left as they are, so
 * an escaped '/' never splits a segment).  Matching is case-sensitive and
 * exact: no trailing '/', no empty segment.  Always fills *m. */
void router_match(const char *method, const char *path, size_t len, struct route_match *m);

/* Turns *m into the no-such-route answer (404), keeping `api`: for a
 * route this server does not serve, such as the web client's with
 * WEB_UI=0. */
void router_unmatch(struct route_match *m);

/* For tests: the number of templates and the i-th one. */
size_t router_count(void);
const char *router_template(size_t i, const char **allow);

#endif
