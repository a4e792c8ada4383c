/* cors.c - parsing CORS_ORIGINS and matching a request's Origin.
 *
 * Browsers send Origin as "scheme://host[:port]" with no path, and
 * lower-case scheme and host, so an exact comparison ignoring case is the
 * whole match; we normalise configured entries (lower case, no trailing
 * '/') once at start so a request costs a few strcasecmp calls.  Entries
 * are validated strictly so a typo stops the server at start rather than
 * silently locking a frontend out. */
#include "cors.h"

#include "chatli/adapters/http_server.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* True for "scheme://host[:port]": scheme [a-z][a-z0-9+.-]*, host a run of
 * [a-z0-9.-_] or a bracketed IPv6 literal, port 1..5 digits. */
static bool origin_valid(const char *s, size_t n)
{
    size_t i = 0;
    if (n == 0 || !isalpha((unsigned char)s[0]))
        return false;
    while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '.' || s[i] == '-'))
        i++;
    if (n - i < 4 || memcmp(s + i, "://", 3) != 0)
        return false;
    i += 3;
    size_t host0 = i;
    if (i < n && s[i] == '[') {
        while (i < n && s[i] != ']') {
            if (!isxdigit((unsigned char)s[i]) && s[i] != ':' && s[i] != '[' && s[i] != '.')
                return false;
            i++;
        }
        if (i == n)
            return false;
        i++;
    } else {
        while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '.' || s[i] == '-' || s[i] == '_'))
            i++;
    }
    if (i == host0)
        return false;
    if (i < n && s[i] == ':') {
        size_t p0 = ++i;
        while (i < n && isdigit((unsigned char)s[i]))
            i++;
        if (i == p0 || i - p0 > 5)
            return false;
    }
    return i == n;
}

int cors_init(struct cors *c, const char *list, struct chat_err *err)
{
    memset(c, 0, sizeof *c);
    if (!list)
        return 0;
    size_t cap = 1;
    for (const char *p = list; *p; p++)
        cap += *p == ',';
    c->origins = calloc(cap, sizeof *c->origins);
    if (!c->origins)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "out of memory");
    const char *p = list;
    for (;;) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (b > a && b[-1] == '/') /* "https://x.example/" names the same origin */
            b--;
        size_t n = (size_t)(b - a);
        if (n == 1 && *a == '*') {
            c->any = true;
        } else if (n > 0) {
            if (n > 255 || !origin_valid(a, n)) {
                int len = n > 64 ? 64 : (int)n;
                cors_cleanup(c);
                return chat_err_set(err, CHAT_E_BAD_REQUEST, NULL,
                                    "not an origin (scheme://host[:port]) or *: \"%.*s\"", len, a);
            }
            char *o = strndup(a, n);
            if (!o) {
                cors_cleanup(c);
                return chat_err_set(err, CHAT_E_INTERNAL, NULL, "out of memory");
            }
            for (char *q = o; *q; q++)
                *q = (char)tolower((unsigned char)*q);
            c->origins[c->n++] = o;
        }
        if (!*end)
            break;
        p = end + 1;
    }
    return 0;
}

void cors_cleanup(struct cors *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->origins[i]);
    free(c->origins);
    memset(c, 0, sizeof *c);
}

const char *cors_allow_origin(const struct cors *c, const char *origin)
{
    if (c->any)
        return "*";
    if (!origin || !*origin)
        return NULL;
    for (size_t i = 0; i < c->n; i++)
        if (strcasecmp(c->origins[i], origin) == 0)
            return origin;
    return NULL;
}

int http_server_check_origins(const char *list, struct chat_err *err)
{
    struct cors c;
    int rc = cors_init(&c, list, err);
    if (rc == 0)
        cors_cleanup(&c);
    return rc;
}
