/* fuzz_router.c - REST path matching and parameters (src/http/router.c).
 *
 * Input: "<method> <path>", split at the first space (the method is cut
 * at 15 bytes; the path at its first NUL, as src/http/server.c passes
 * strlen() of the URL MHD hands over; any other byte may appear).
 * Checked: the status is 0, 404 or 405; a match names one of the table's
 * templates, and putting its parameters back into the template rebuilds
 * the path exactly (unless a parameter was cut at ROUTE_PARAM_MAX);
 * parameters are non-empty, NUL-terminated and hold no '/' (but for the
 * rest-of-path parameter of a prefix route such as /uploads/...); a matched
 * method is in the template's Allow list; `api` is set exactly for /api
 * and below. */
#include "fuzz.h"
#include "router.h"

static bool is_template(const char *route)
{
    for (size_t i = 0; i < router_count(); i++)
        if (strcmp(router_template(i, NULL), route) == 0)
            return true;
    return false;
}

/* Rebuilds the path from the template and parameters into `out` (room for
 * `cap`); returns its length, or cap when it does not fit. */
static size_t rebuild(const struct route_match *m, char *out, size_t cap)
{
    size_t n = 0;
    int np = 0;
    for (const char *t = m->route; *t;) {
        const char *piece = t;
        size_t pl = 1;
        if (*t == '{' || *t == '*') {
            FUZZ_CHECK(np < m->n_params);
            piece = m->params[np++];
            pl = strlen(piece);
            t = *t == '*' ? t + 1 : strchr(t, '}') + 1;
        } else {
            t++;
        }
        if (n + pl > cap)
            return cap;
        memcpy(out + n, piece, pl);
        n += pl;
    }
    FUZZ_CHECK(np == m->n_params);
    return n;
}

static bool allows(const char *allow, const char *method)
{
    size_t ml = strlen(method);
    for (const char *p = allow; (p = strstr(p, method)) != NULL; p += ml)
        if ((p == allow || p[-1] == ' ') && (p[ml] == ',' || p[ml] == '\0'))
            return true;
    return false;
}

static void check_match(const struct route_match *m, const char *method, const char *path,
                        size_t len)
{
    FUZZ_CHECK(is_template(m->route) && m->n_params >= 0 && m->n_params <= ROUTE_MAX_PARAMS);
    bool cut = false;
    size_t rl = strlen(m->route);
    bool prefix = rl > 0 && m->route[rl - 1] == '*'; /* its last parameter may hold '/' */
    for (int i = 0; i < m->n_params; i++) {
        size_t pl = strnlen(m->params[i], ROUTE_PARAM_MAX);
        bool rest = prefix && i == m->n_params - 1;
        FUZZ_CHECK(pl >= 1 && pl < ROUTE_PARAM_MAX && (rest || !memchr(m->params[i], '/', pl)));
        cut |= pl == ROUTE_PARAM_MAX - 1;
    }
    char *again = malloc(len + 1);
    if (again) {
        size_t n = rebuild(m, again, len + 1);
        FUZZ_CHECK(cut || (n == len && memcmp(again, path, len) == 0));
        free(again);
    }
    if (m->status == 0) {
        FUZZ_CHECK(m->op > ROUTE_NONE && m->op < ROUTE__COUNT);
        FUZZ_CHECK(allows(m->allow, strcmp(method, "HEAD") == 0 ? "GET" : method));
    } else {
        FUZZ_CHECK(m->op == ROUTE_NONE && m->allow[0]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *sp = memchr(data, ' ', size);
    size_t ml = sp ? (size_t)(sp - data) : 0;
    char method[16];
    size_t keep = ml < sizeof method - 1 ? ml : sizeof method - 1;
    memcpy(method, data, keep);
    method[keep] = '\0';
    const char *path = sp ? (const char *)sp + 1 : (const char *)data;
    size_t len = strnlen(path, sp ? size - ml - 1 : size);

    struct route_match m;
    router_match(method, path, len, &m);
    FUZZ_CHECK(m.status == 0 || m.status == 404 || m.status == 405);
    FUZZ_CHECK(m.api == (len >= 4 && memcmp(path, "/api", 4) == 0 && (len == 4 || path[4] == '/')));
    if (m.status == 404)
        FUZZ_CHECK(strcmp(m.route, "other") == 0 && m.allow[0] == '\0' && m.n_params == 0 &&
                   m.op == ROUTE_NONE);
    else
        check_match(&m, method, path, len);
    return 0;
}
