/* router.c - the route table and segment-wise template matching.
 *
 * A linear scan over a couple of dozen templates is a few hundred byte
 * compares: cheaper than building a trie, and obviously correct.  The table
 * lists literal templates before parameterised ones that could match the
 * same path (/api/users/me before /api/users/{id}), and the first match
 * wins, so "me" is never taken for an id.  Each template's Allow string is
 * written next to its methods; test_router checks they agree. */
#include "router.h"

#include <string.h>

struct method_entry {
    const char *method;
    enum route_op op;
    unsigned flags;
};

struct resource {
    const char *tmpl;
    const char *allow;
    struct method_entry m[3];
};

#define PUB ROUTE_F_PUBLIC
#define BODY ROUTE_F_BODY

static const struct resource table[] = {
    {"/api/auth/register", "POST", {{"POST", ROUTE_AUTH_REGISTER, PUB | BODY}}},
    {"/api/auth/login", "POST", {{"POST", ROUTE_AUTH_LOGIN, PUB | BODY}}},
    {"/api/auth/logout", "POST", {{"POST", ROUTE_AUTH_LOGOUT, 0}}},
    {"/api/users/me", "GET, PATCH",
     {{"GET", ROUTE_USERS_ME, 0}, {"PATCH", ROUTE_USERS_UPDATE_ME, BODY}}},
    {"/api/users/{id}", "GET", {{"GET", ROUTE_USERS_GET, 0}}},
    {"/api/users", "GET", {{"GET", ROUTE_USERS_SEARCH, 0}}},
    {"/api/posts", "GET, POST", {{"GET", ROUTE_POSTS_LIST, 0}, {"POST", ROUTE_POSTS_CREATE, BODY}}},
    {"/api/posts/{id}", "GET, PATCH, DELETE",
     {{"GET", ROUTE_POSTS_GET, 0}, {"PATCH", ROUTE_POSTS_UPDATE, BODY},
      {"DELETE", ROUTE_POSTS_DELETE, 0}}},
    {"/api/posts/{id}/like", "PUT, DELETE",
     {{"PUT", ROUTE_POSTS_LIKE, 0}, {"DELETE", ROUTE_POSTS_UNLIKE, 0}}},
    {"/api/posts/{id}/comments", "GET, POST",
     {{"GET", ROUTE_COMMENTS_LIST, 0}, {"POST", ROUTE_COMMENTS_CREATE, BODY}}},
    {"/api/chats", "GET, POST", {{"GET", ROUTE_CHATS_LIST, 0}, {"POST", ROUTE_CHATS_CREATE, BODY}}},
    {"/api/chats/{id}", "GET, PATCH",
     {{"GET", ROUTE_CHATS_GET, 0}, {"PATCH", ROUTE_CHATS_UPDATE, BODY}}},
    {"/api/chats/{id}/members", "POST", {{"POST", ROUTE_CHATS_ADD_MEMBER, BODY}}},
    {"/api/chats/{id}/members/{userId}", "DELETE", {{"DELETE", ROUTE_CHATS_REMOVE_MEMBER, 0}}},
    {"/api/chats/{id}/messages", "GET, POST",
     {{"GET", ROUTE_MESSAGES_LIST, 0}, {"POST", ROUTE_MESSAGES_SEND, BODY}}},
    {"/api/chats/{id}/messages/{messageId}", "PATCH, DELETE",
     {{"PATCH", ROUTE_MESSAGES_EDIT, BODY}, {"DELETE", ROUTE_MESSAGES_DELETE, 0}}},
    {"/api/chats/{id}/read", "POST", {{"POST", ROUTE_CHATS_READ, BODY}}},
    {"/healthz", "GET", {{"GET", ROUTE_HEALTHZ, PUB}}},
    {"/readyz", "GET", {{"GET", ROUTE_READYZ, PUB}}},
    {"/metrics", "GET", {{"GET", ROUTE_METRICS, PUB}}},
    /* The web client (routes_web.c): its page and its files. */
    {"/", "GET", {{"GET", ROUTE_WEB, PUB}}},
    {"/web/{file}", "GET", {{"GET", ROUTE_WEB, PUB}}},
    {"/api/uploads", "POST", {{"POST", ROUTE_UPLOADS_CREATE, ROUTE_F_STREAM}}},
    {"/uploads/*", "GET", {{"GET", ROUTE_UPLOADS_GET, PUB}}},
};

#define N_RESOURCES (sizeof table / sizeof table[0])

/* Matches one template against the path; on success fills the params. */
static bool match_template(const char *tmpl, const char *path, size_t len, struct route_match *m)
{
    const char *t = tmpl, *p = path, *end = path + len;
    int np = 0;
    while (*t) {
        /* Both sides are at a '/'. */
        if (p == end || *p != '/' || *t != '/')
            return false;
        t++;
        p++;
        const char *tseg_end = strchr(t, '/');
        if (!tseg_end)
            tseg_end = t + strlen(t);
        const char *pseg_end = memchr(p, '/', (size_t)(end - p));
        if (!pseg_end)
            pseg_end = end;
        if (strcmp(t, "*") == 0) /* a prefix route: the rest of the path, '/' included */
            pseg_end = end;
        size_t tl = (size_t)(tseg_end - t), pl = (size_t)(pseg_end - p);
        if (tl > 0 && (*t == '{' || *t == '*')) {
            if (pl == 0 || np >= ROUTE_MAX_PARAMS)
                return false;
            size_t keep = pl < ROUTE_PARAM_MAX - 1 ? pl : ROUTE_PARAM_MAX - 1;
            memcpy(m->params[np], p, keep);
            m->params[np][keep] = '\0';
            np++;
        } else if (tl != pl || memcmp(t, p, tl) != 0) {
            return false;
        }
        t = tseg_end;
        p = pseg_end;
    }
    if (p != end)
        return false;
    m->n_params = np;
    return true;
}

void router_unmatch(struct route_match *m)
{
    bool api = m->api;
    memset(m, 0, sizeof *m);
    m->api = api;
    m->route = "other";
    m->allow = "";
    m->status = 404;
}

void router_match(const char *method, const char *path, size_t len, struct route_match *m)
{
    m->api = len >= 4 && memcmp(path, "/api", 4) == 0 && (len == 4 || path[4] == '/');
    router_unmatch(m); /* the answer when no template matches */
    if (!method)
        method = "";
    if (strcmp(method, "HEAD") == 0)
        method = "GET"; /* MHD sends the headers of the GET answer, without its body */
    for (size_t i = 0; i < N_RESOURCES; i++) {
        const struct resource *r = &table[i];
        if (!match_template(r->tmpl, path, len, m))
            continue;
        m->route = r->tmpl;
        m->allow = r->allow;
        m->web = r->m[0].op == ROUTE_WEB; /* off with WEB_UI=0 (router_unmatch) */
        m->status = 405;
        for (size_t k = 0; k < 3 && r->m[k].method; k++) {
            if (strcmp(r->m[k].method, method) == 0) {
                m->status = 0;
                m->op = r->m[k].op;
                m->flags = r->m[k].flags;
                break;
            }
        }
        return;
    }
    m->n_params = 0;
}

size_t router_count(void) { return N_RESOURCES; }

const char *router_template(size_t i, const char **allow)
{
    if (i >= N_RESOURCES)
        return NULL;
    if (allow)
        *allow = table[i].allow;
    return table[i].tmpl;
}
