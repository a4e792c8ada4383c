/* redis_conn.c - REDIS_URL parsing, connecting and reconnect pacing for
 * the Redis adapters (bus_redis, cache_redis).
 *
 * The URL goes through libcurl's URL API (already linked for Cloudinary)
 * rather than hand-written splitting: it handles userinfo, IPv6 brackets
 * and percent-encoding the same way everywhere.  Connecting uses hiredis
 * 0.14's blocking API: redisConnectWithTimeout bounds the connect, and
 * redisSetTimeout bounds every later read and write, so a Redis that
 * hangs costs a caller at most that bound; after a failure the backoff
 * makes the next callers skip Redis without trying. */
#include "chatli/adapters/redis_conn.h"

#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "chatli/log.h"

static char *url_part(CURLU *u, CURLUPart what)
{
    char *v = NULL;
    if (curl_url_get(u, what, &v, CURLU_URLDECODE) != CURLUE_OK)
        return NULL;
    char *copy = v && *v ? strdup(v) : NULL;
    curl_free(v);
    return copy;
}

/* "/3" -> 3; "" or "/" -> 0; anything else is an error. */
static int parse_db(const char *path, int *db)
{
    *db = 0;
    if (!path || !path[0] || strcmp(path, "/") == 0)
        return 0;
    char *end;
    long v = strtol(path + 1, &end, 10);
    if (path[0] != '/' || end == path + 1 || *end || v < 0 || v > 1000000)
        return -1;
    *db = (int)v;
    return 0;
}

static int parse_fields(CURLU *u, struct redis_endpoint *ep, struct chat_err *err)
{
    char *scheme = url_part(u, CURLUPART_SCHEME);
    bool plain = scheme && strcmp(scheme, "redis") == 0;
    free(scheme);
    if (!plain)
        return chat_err_set(err, CHAT_E_VALIDATION, "REDIS_URL",
                            "REDIS_URL: only redis:// is supported (hiredis 0.14 has no TLS)");
    ep->host = url_part(u, CURLUPART_HOST);
    if (!ep->host)
        return chat_err_set(err, CHAT_E_VALIDATION, "REDIS_URL", "REDIS_URL: no host");
    /* curl keeps an IPv6 literal's brackets; getaddrinfo (hiredis) wants
     * the bare address. */
    size_t hn = strlen(ep->host);
    if (hn > 2 && ep->host[0] == '[' && ep->host[hn - 1] == ']') {
        memmove(ep->host, ep->host + 1, hn - 2);
        ep->host[hn - 2] = '\0';
    }
    char *port = url_part(u, CURLUPART_PORT);
    ep->port = port ? atoi(port) : 6379;
    free(port);
    ep->user = url_part(u, CURLUPART_USER);
    ep->password = url_part(u, CURLUPART_PASSWORD);
    char *path = url_part(u, CURLUPART_PATH);
    int rc = parse_db(path, &ep->db);
    free(path);
    if (rc != 0)
        return chat_err_set(err, CHAT_E_VALIDATION, "REDIS_URL",
                            "REDIS_URL: the path must be a database number, like /0");
    return 0;
}

int redis_endpoint_parse(const char *url, struct redis_endpoint *ep, struct chat_err *err)
{
    memset(ep, 0, sizeof *ep);
    CURLU *u = curl_url();
    if (!u)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "out of memory");
    int rc;
    /* Non-support-scheme: curl does not know redis://, parse it anyway. */
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK)
        rc = chat_err_set(err, CHAT_E_VALIDATION, "REDIS_URL", "REDIS_URL is not a valid URL");
    else
        rc = parse_fields(u, ep, err);
    curl_url_cleanup(u);
    if (rc != 0)
        redis_endpoint_cleanup(ep);
    return rc;
}

void redis_endpoint_cleanup(struct redis_endpoint *ep)
{
    free(ep->host);
    free(ep->user);
    free(ep->password);
    memset(ep, 0, sizeof *ep);
}

static struct timeval tv_ms(int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

/* Runs one setup command (AUTH, SELECT); 0 or -1 with the reason logged. */
static int setup_cmd(redisContext *rc, const char *what, redisReply *r)
{
    int ok = r && r->type != REDIS_REPLY_ERROR;
    if (!ok)
        log_error("redis: %s failed: %s", what, r ? r->str : rc->errstr);
    if (r)
        freeReplyObject(r);
    return ok ? 0 : -1;
}

static int setup(redisContext *rc, const struct redis_endpoint *ep)
{
    if (ep->password && ep->user &&
        setup_cmd(rc, "AUTH", redisCommand(rc, "AUTH %s %s", ep->user, ep->password)) != 0)
        return -1;
    if (ep->password && !ep->user &&
        setup_cmd(rc, "AUTH", redisCommand(rc, "AUTH %s", ep->password)) != 0)
        return -1;
    if (ep->db && setup_cmd(rc, "SELECT", redisCommand(rc, "SELECT %d", ep->db)) != 0)
        return -1;
    return 0;
}

int redis_connect(const struct redis_endpoint *ep, int connect_ms, int io_ms,
                  struct redisContext **out, struct chat_err *err)
{
    *out = NULL;
    redisContext *rc = redisConnectWithTimeout(ep->host, ep->port, tv_ms(connect_ms));
    if (!rc)
        return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "redis: out of memory");
    if (rc->err) {
        chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "redis %s:%d: %s", ep->host, ep->port,
                     rc->errstr);
        redisFree(rc);
        return CHAT_E_UNAVAILABLE;
    }
    redisEnableKeepAlive(rc);
    if ((io_ms > 0 && redisSetTimeout(rc, tv_ms(io_ms)) != REDIS_OK) || setup(rc, ep) != 0) {
        chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "redis %s:%d: setup failed", ep->host,
                     ep->port);
        redisFree(rc);
        return CHAT_E_UNAVAILABLE;
    }
    *out = rc;
    return 0;
}

int redis_backoff_ready(const struct redis_backoff *b, int64_t now_ms)
{
    return now_ms >= b->next_ms;
}

void redis_backoff_failed(struct redis_backoff *b, int64_t now_ms)
{
    b->delay_ms = b->delay_ms ? b->delay_ms * 2 : REDIS_BACKOFF_MIN_MS;
    if (b->delay_ms > REDIS_BACKOFF_MAX_MS)
        b->delay_ms = REDIS_BACKOFF_MAX_MS;
    b->next_ms = now_ms + b->delay_ms;
}

void redis_backoff_ok(struct redis_backoff *b)
{
    b->delay_ms = 0;
    b->next_ms = 0;
}
