/* config.c - the environment -> struct config, strictly.
 *
 * Every variable of CONTRACT.md section 9 (plus HTTP_THREADS) is read here
 * and nowhere else.  The rule is "never a silent default": a variable that is
 * set but does not parse stops the server with a message naming it.  An
 * empty value counts as unset, because env files and compose templates
 * write `REDIS_URL=` to mean "none".  Numbers are decimal only, with no sign
 * games, spaces or units, so `RATE_LIMIT_MAX=1e3` or `PORT=80x` is an error
 * rather than a surprise.
 *
 * One table drives both parsing order and `chatli --help`, so the help text
 * cannot forget a variable. */
#include "chatli/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "chatli/adapters/http_server.h"
#include "chatli/log.h"

struct var_doc {
    const char *name;
    const char *def;
    const char *help;
};

/* The documented variables, in help order. */
static const struct var_doc docs[] = {
    {"PORT", "8080", "TCP port for REST, /ws, /socket.io/ and ops endpoints (0 = any free port)"},
    {"HOST", "0.0.0.0", "address to listen on (an IPv4/IPv6 literal or a host name)"},
    {"DATA_DIR", "./data", "directory for the embedded SQLite database and local uploads"},
    {"MONGODB_URI", "(unset)", "mongodb:// or mongodb+srv:// URI; unset = embedded SQLite store"},
    {"MONGODB_DB", "(from the URI, else chatli)", "MongoDB database name"},
    {"REDIS_URL", "(unset)", "redis://[[user]:password@]host[:port][/db]: rate limits, fan-out and cache invalidation shared by every instance on it; unset = in-process"},
    {"CLOUDINARY_URL", "(unset)", "cloudinary://<key>:<secret>@<cloud>; unset = uploads stored under DATA_DIR/uploads"},
    {"CLOUDINARY_API_BASE", "https://api.cloudinary.com", "base URL of Cloudinary's upload API"},
    {"PUBLIC_URL", "(from the Host header)", "absolute base URL used in local upload URLs"},
    {"CORS_ORIGINS", "*", "comma-separated allowed origins (scheme://host[:port]) or *"},
    {"TRUST_PROXY", "0", "1 = take the client IP from X-Forwarded-For's first entry"},
    {"RATE_LIMIT_MAX", "100", "REST requests per window per user (or IP); 0 disables rate limiting"},
    {"RATE_LIMIT_WINDOW_MS", "900000", "rate-limit window in milliseconds"},
    {"WS_RATE_PER_S", "20", "WebSocket frames per second per user (message.send, typing, read); 0 disables"},
    {"WS_RATE_BURST", "40", "WebSocket flood-control burst; 0 disables"},
    {"MAX_UPLOAD_BYTES", "10485760", "largest accepted upload in bytes"},
    /* uploads: per-user limit and Cloudinary timeouts */
    {"UPLOAD_RATE_LIMIT_MAX", "30", "uploads per RATE_LIMIT_WINDOW_MS per user (counted besides RATE_LIMIT_MAX); 0 disables"},
    {"CLOUDINARY_CONNECT_TIMEOUT_MS", "5000", "Cloudinary connect timeout in milliseconds (each attempt)"},
    {"CLOUDINARY_TIMEOUT_MS", "60000", "Cloudinary total time per attempt in milliseconds (one retry on a timeout or 5xx)"},
    {"LOG_LEVEL", "info", "debug, info, warn or error"},
    {"TOKEN_TTL_S", "2592000", "token lifetime in seconds (30 days)"},
    {"SHUTDOWN_GRACE_S", "10", "seconds to drain requests and WebSockets on SIGTERM/SIGINT"},
    {"PWHASH_OPSLIMIT", "2", "Argon2id passes (libsodium opslimit, 1..4294967295)"},
    {"PWHASH_MEMLIMIT", "67108864", "Argon2id memory in bytes (libsodium memlimit, at least 8192)"},
    {"HTTP_THREADS", "2 x cores, at least 4", "libmicrohttpd worker threads (a blocking store call holds one)"},
    {"WEB_UI", "1", "1 = serve the built-in web client at /; 0 = API only (/ is 404)"},
    /* WebSocket connections per user (issue 8, CONTRACT 6 v1.2) */
    {"WS_MAX_CONNS_PER_USER", "16", "WebSocket connections one user may hold; one more closes the oldest with 4429"},
    /* one WebSocket event loop per core (issue 9) */
    {"WS_LOOPS", "online cores, at most 16", "WebSocket event loops (1..64); connections are spread across them"},
    /* hardening limits (issue 8; docs/operations.md "Limits") */
    {"LOGIN_FAIL_MAX", "10", "failed logins per account name per LOGIN_FAIL_WINDOW_S before 429; 0 disables"},
    {"LOGIN_FAIL_WINDOW_S", "900", "window of LOGIN_FAIL_MAX in seconds (15 minutes)"},
    {"MAX_CONNS_PER_ADDR", "256", "REST connections plus connections still sending their first head, per client address (not applied with TRUST_PROXY=1); 0 disables"},
    {"REQUEST_HEAD_TIMEOUT_S", "10", "seconds a request head may take to arrive, on every request of a connection"},
    {"REQUEST_BODY_TIMEOUT_S", "30", "seconds a request body may take to arrive after its head"},
    /* Socket.IO at /socket.io/ (issue 12, CONTRACT 7) */
    {"SIO_PING_INTERVAL_MS", "25000", "Engine.IO pingInterval: the server pings each Socket.IO connection this often"},
    {"SIO_PING_TIMEOUT_MS", "20000", "Engine.IO pingTimeout: a Socket.IO connection with no pong this long after a ping is closed"},
};

static int fail(char *msg, size_t msg_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *msg, size_t msg_len, const char *fmt, ...)
{
    if (msg && msg_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, msg_len, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* The value of `name`, or NULL when unset or empty. */
static const char *env(const char *name)
{
    const char *v = getenv(name);
    return (v && *v) ? v : NULL;
}

/* A decimal integer in [min, max]: digits only (a leading '-' only when min
 * is negative), no blanks, no '+', no hex or exponent. */
static int parse_int(const char *name, long long min, long long max, long long def, long long *out,
                     char *msg, size_t msg_len)
{
    const char *v = env(name);
    if (!v) {
        *out = def;
        return 0;
    }
    const char *p = v;
    if (*p == '-' && min < 0)
        p++;
    if (!isdigit((unsigned char)*p))
        return fail(msg, msg_len, "%s: \"%.40s\" is not an integer", name, v);
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q))
            return fail(msg, msg_len, "%s: \"%.40s\" is not an integer", name, v);
    errno = 0;
    char *end;
    long long n = strtoll(v, &end, 10);
    if (errno == ERANGE || *end || n < min || n > max)
        return fail(msg, msg_len, "%s: %.40s is out of range %lld..%lld", name, v, min, max);
    *out = n;
    return 0;
}

static int parse_uint(const char *name, unsigned long long min, unsigned long long max,
                      unsigned long long def, unsigned long long *out, char *msg, size_t msg_len)
{
    const char *v = env(name);
    if (!v) {
        *out = def;
        return 0;
    }
    for (const char *q = v; *q; q++)
        if (!isdigit((unsigned char)*q))
            return fail(msg, msg_len, "%s: \"%.40s\" is not a non-negative integer", name, v);
    errno = 0;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno == ERANGE || *end || n < min || n > max)
        return fail(msg, msg_len, "%s: %.40s is out of range %llu..%llu", name, v, min, max);
    *out = n;
    return 0;
}

/* A plain decimal number ("20", "0.5"): no exponent, inf, nan or hex. */
static int parse_double(const char *name, double min, double max, double def, double *out,
                        char *msg, size_t msg_len)
{
    const char *v = env(name);
    if (!v) {
        *out = def;
        return 0;
    }
    int dots = 0, digits = 0;
    for (const char *q = v; *q; q++) {
        if (*q == '.')
            dots++;
        else if (isdigit((unsigned char)*q))
            digits++;
        else
            return fail(msg, msg_len, "%s: \"%.40s\" is not a number", name, v);
    }
    if (dots > 1 || digits == 0)
        return fail(msg, msg_len, "%s: \"%.40s\" is not a number", name, v);
    char *end;
    double d = strtod(v, &end);
    if (*end || !isfinite(d) || d < min || d > max)
        return fail(msg, msg_len, "%s: %.40s is out of range %g..%g", name, v, min, max);
    *out = d;
    return 0;
}

static int parse_bool(const char *name, bool def, bool *out, char *msg, size_t msg_len)
{
    const char *v = env(name);
    if (!v) {
        *out = def;
        return 0;
    }
    static const char *yes[] = {"1", "true", "yes", "on"}, *no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return fail(msg, msg_len, "%s: \"%.40s\" is not a boolean (use 1 or 0)", name, v);
}

/* Copies `name`'s value (or `def`, which may be NULL) into *out. */
static int dup_str(const char *name, const char *def, char **out, char *msg, size_t msg_len)
{
    const char *v = env(name);
    if (!v)
        v = def;
    if (!v) {
        *out = NULL;
        return 0;
    }
    *out = strdup(v);
    return *out ? 0 : fail(msg, msg_len, "%s: out of memory", name);
}

static bool has_blank_or_ctl(const char *s)
{
    for (; *s; s++)
        if (isspace((unsigned char)*s) || iscntrl((unsigned char)*s))
            return true;
    return false;
}

/* True when `s` starts with one of the `n` schemes (each with "://") and
 * has something after it. */
static bool url_has_scheme(const char *s, const char *const *schemes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(schemes[i]);
        if (strncasecmp(s, schemes[i], l) == 0 && s[l] && s[l] != '/')
            return true;
    }
    return false;
}

static int check_url(const char *name, const char *v, const char *const *schemes, size_t n,
                     const char *expect, char *msg, size_t msg_len)
{
    if (!v)
        return 0;
    if (has_blank_or_ctl(v) || !url_has_scheme(v, schemes, n))
        return fail(msg, msg_len, "%s: not a %s URL", name, expect);
    return 0;
}

/* cloudinary://<key>:<secret>@<cloud>: all three parts non-empty. */
static int check_cloudinary(const char *v, char *msg, size_t msg_len)
{
    if (!v)
        return 0;
    const char *p = strncmp(v, "cloudinary://", 13) == 0 ? v + 13 : NULL;
    const char *colon = p ? strchr(p, ':') : NULL;
    const char *at = colon ? strchr(colon, '@') : NULL;
    if (has_blank_or_ctl(v) || !p || !colon || colon == p || !at || at == colon + 1 || !at[1] ||
        strchr(at + 1, '/'))
        return fail(msg, msg_len, "CLOUDINARY_URL: expected cloudinary://<key>:<secret>@<cloud>");
    return 0;
}

static int check_host(const char *v, char *msg, size_t msg_len)
{
    size_t n = strlen(v);
    if (n > 253)
        return fail(msg, msg_len, "HOST: too long");
    for (const char *p = v; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr(".:-_%", *p))
            return fail(msg, msg_len, "HOST: \"%.40s\" is not an address or host name", v);
    return 0;
}

static int check_db_name(const char *v, char *msg, size_t msg_len)
{
    if (!v)
        return 0;
    if (strlen(v) > 63)
        return fail(msg, msg_len, "MONGODB_DB: longer than 63 characters");
    for (const char *p = v; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
            return fail(msg, msg_len, "MONGODB_DB: \"%.40s\" has characters other than [A-Za-z0-9_-]", v);
    return 0;
}

/* One WebSocket loop per core by default; past 16 the per-loop fixed costs
 * (a context, workers, one copy of every broadcast) outweigh what a loop
 * adds on the boxes we target. */
static int default_ws_loops(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1)
        cores = 1;
    return cores > 16 ? 16 : (int)cores;
}

static int default_http_threads(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1)
        cores = 1;
    long n = 2 * cores;
    if (n < 4)
        n = 4;
    if (n > 256)
        n = 256;
    return (int)n;
}

/* The int64_t variables that are plain ranges: name, bounds, default and
 * the field they fill. */
struct int_var {
    const char *name;
    long long min, max, def;
    size_t off;
};
#define INT_VAR(name, min, max, def, field) {name, min, max, def, offsetof(struct config, field)}
static const struct int_var int_vars[] = {
    INT_VAR("RATE_LIMIT_MAX", 0, 1000000000, 100, rate_limit_max),
    INT_VAR("RATE_LIMIT_WINDOW_MS", 1, 366LL * 24 * 3600 * 1000, 900000, rate_limit_window_ms),
    INT_VAR("WS_RATE_BURST", 0, 1000000, 40, ws_rate_burst),
    INT_VAR("MAX_UPLOAD_BYTES", 1, 1LL << 40, 10 * 1024 * 1024, max_upload_bytes),
    /* uploads: per-user limit and Cloudinary timeouts */
    INT_VAR("UPLOAD_RATE_LIMIT_MAX", 0, 1000000000, 30, upload_rate_max),
    INT_VAR("CLOUDINARY_CONNECT_TIMEOUT_MS", 1, 600000, 5000, cloudinary_connect_timeout_ms),
    INT_VAR("CLOUDINARY_TIMEOUT_MS", 1, 3600000, 60000, cloudinary_timeout_ms),
    INT_VAR("TOKEN_TTL_S", 1, 10LL * 366 * 24 * 3600, 30LL * 24 * 3600, token_ttl_s),
    INT_VAR("SHUTDOWN_GRACE_S", 0, 3600, 10, shutdown_grace_s),
    /* hardening limits (issue 8) */
    INT_VAR("LOGIN_FAIL_MAX", 0, 1000000, 10, login_fail_max),
    INT_VAR("LOGIN_FAIL_WINDOW_S", 1, 366LL * 24 * 3600, 900, login_fail_window_s),
    INT_VAR("MAX_CONNS_PER_ADDR", 0, 10000000, 256, max_conns_per_addr),
    INT_VAR("REQUEST_HEAD_TIMEOUT_S", 1, 3600, 10, head_timeout_s),
    INT_VAR("REQUEST_BODY_TIMEOUT_S", 1, 3600, 30, body_timeout_s),
    /* Socket.IO at /socket.io/ (issue 12) */
    INT_VAR("SIO_PING_INTERVAL_MS", 100, 3600000, 25000, sio_ping_interval_ms),
    INT_VAR("SIO_PING_TIMEOUT_MS", 100, 3600000, 20000, sio_ping_timeout_ms),
};

static int load_int_vars(struct config *cfg, char *msg, size_t msg_len)
{
    for (size_t i = 0; i < sizeof int_vars / sizeof int_vars[0]; i++) {
        const struct int_var *v = &int_vars[i];
        long long n;
        if (parse_int(v->name, v->min, v->max, v->def, &n, msg, msg_len))
            return -1;
        *(int64_t *)(void *)((char *)cfg + v->off) = n;
    }
    return 0;
}

/* HOST, PORT, DATA_DIR and every URL. */
static int load_addresses(struct config *cfg, char *msg, size_t msg_len)
{
    long long n;
    if (dup_str("HOST", "0.0.0.0", &cfg->host, msg, msg_len) ||
        check_host(cfg->host, msg, msg_len))
        return -1;
    if (parse_int("PORT", 0, 65535, 8080, &n, msg, msg_len))
        return -1;
    cfg->port = (int)n;
    if (dup_str("DATA_DIR", "./data", &cfg->data_dir, msg, msg_len))
        return -1;
    if (strlen(cfg->data_dir) > 3800)
        return fail(msg, msg_len, "DATA_DIR: path too long");

    static const char *const mongo_schemes[] = {"mongodb://", "mongodb+srv://"};
    /* hiredis 0.14 has no TLS: rediss:// is refused here, not at connect. */
    static const char *const redis_schemes[] = {"redis://"};
    static const char *const http_schemes[] = {"http://", "https://"};
    if (dup_str("MONGODB_URI", NULL, &cfg->mongodb_uri, msg, msg_len) ||
        check_url("MONGODB_URI", cfg->mongodb_uri, mongo_schemes, 2, "mongodb:// or mongodb+srv://",
                  msg, msg_len))
        return -1;
    if (dup_str("MONGODB_DB", NULL, &cfg->mongodb_db, msg, msg_len) ||
        check_db_name(cfg->mongodb_db, msg, msg_len))
        return -1;
    if (dup_str("REDIS_URL", NULL, &cfg->redis_url, msg, msg_len) ||
        check_url("REDIS_URL", cfg->redis_url, redis_schemes, 1, "redis://", msg, msg_len))
        return -1;
    if (dup_str("CLOUDINARY_URL", NULL, &cfg->cloudinary_url, msg, msg_len) ||
        check_cloudinary(cfg->cloudinary_url, msg, msg_len))
        return -1;
    if (dup_str("CLOUDINARY_API_BASE", "https://api.cloudinary.com", &cfg->cloudinary_api_base, msg,
                msg_len) ||
        check_url("CLOUDINARY_API_BASE", cfg->cloudinary_api_base, http_schemes, 2, "http(s)://", msg,
                  msg_len))
        return -1;
    if (dup_str("PUBLIC_URL", NULL, &cfg->public_url, msg, msg_len) ||
        check_url("PUBLIC_URL", cfg->public_url, http_schemes, 2, "http(s)://", msg, msg_len))
        return -1;
    if (cfg->public_url) { /* "https://x.example/" -> "https://x.example" */
        size_t l = strlen(cfg->public_url);
        while (l > 0 && cfg->public_url[l - 1] == '/')
            cfg->public_url[--l] = '\0';
    }
    return 0;
}

static int load_log_level(struct config *cfg, char *msg, size_t msg_len)
{
    const char *lv = env("LOG_LEVEL");
    cfg->log_level = LOG_INFO;
    if (!lv)
        return 0;
    char low[16];
    size_t l = strlen(lv);
    if (l >= sizeof low)
        return fail(msg, msg_len, "LOG_LEVEL: \"%.40s\" is not debug, info, warn or error", lv);
    for (size_t i = 0; i <= l; i++)
        low[i] = (char)tolower((unsigned char)lv[i]);
    cfg->log_level = log_parse_level(low);
    if (cfg->log_level < 0)
        return fail(msg, msg_len, "LOG_LEVEL: \"%.40s\" is not debug, info, warn or error", lv);
    return 0;
}

/* Argon2id's cost, within libsodium's bounds and this machine's size_t. */
static int load_pwhash(struct config *cfg, char *msg, size_t msg_len)
{
    unsigned long long u;
    if (parse_uint("PWHASH_OPSLIMIT", crypto_pwhash_OPSLIMIT_MIN, 4294967295ULL,
                   crypto_pwhash_OPSLIMIT_INTERACTIVE, &u, msg, msg_len))
        return -1;
    cfg->pwhash_opslimit = u;
    if (parse_uint("PWHASH_MEMLIMIT", crypto_pwhash_MEMLIMIT_MIN, 4398046511104ULL /* 4 TiB */,
                   crypto_pwhash_MEMLIMIT_INTERACTIVE, &u, msg, msg_len))
        return -1;
    if (u > SIZE_MAX)
        return fail(msg, msg_len, "PWHASH_MEMLIMIT: too large for this machine");
    cfg->pwhash_memlimit = (size_t)u;
    return 0;
}

int config_load(struct config *cfg, char *msg, size_t msg_len)
{
    memset(cfg, 0, sizeof *cfg);
    long long n;

    if (load_addresses(cfg, msg, msg_len))
        return -1;
    if (dup_str("CORS_ORIGINS", "*", &cfg->cors_origins, msg, msg_len))
        return -1;
    struct chat_err cerr = {0};
    if (http_server_check_origins(cfg->cors_origins, &cerr) != 0)
        return fail(msg, msg_len, "CORS_ORIGINS: %s", cerr.msg);
    if (parse_bool("TRUST_PROXY", false, &cfg->trust_proxy, msg, msg_len))
        return -1;
    if (load_int_vars(cfg, msg, msg_len))
        return -1;
    if (parse_double("WS_RATE_PER_S", 0, 1e6, 20, &cfg->ws_rate_per_s, msg, msg_len))
        return -1;
    if (load_log_level(cfg, msg, msg_len) || load_pwhash(cfg, msg, msg_len))
        return -1;
    if (parse_int("HTTP_THREADS", 1, 256, default_http_threads(), &n, msg, msg_len))
        return -1;
    cfg->http_threads = (int)n;
    /* The built-in web client at / (docs/web.md). */
    if (parse_bool("WEB_UI", true, &cfg->web_ui, msg, msg_len))
        return -1;
    /* WebSocket connections per user (issue 8, CONTRACT 6 v1.2) */
    if (parse_int("WS_MAX_CONNS_PER_USER", 1, 100000, 16, &n, msg, msg_len))
        return -1;
    cfg->ws_max_conns_per_user = (uint32_t)n;
    /* WebSocket event loops (issue 9; docs/architecture.md "Loops") */
    if (parse_int("WS_LOOPS", 1, 64, default_ws_loops(), &n, msg, msg_len))
        return -1;
    cfg->ws_loops = (int)n;
    return 0;
}

void config_cleanup(struct config *cfg)
{
    free(cfg->host);
    free(cfg->data_dir);
    free(cfg->mongodb_uri);
    free(cfg->mongodb_db);
    free(cfg->redis_url);
    free(cfg->cloudinary_url);
    free(cfg->cloudinary_api_base);
    free(cfg->public_url);
    free(cfg->cors_origins);
    memset(cfg, 0, sizeof *cfg);
}

void config_print_help(FILE *f)
{
    fprintf(f,
            "Usage: chatli [--help]\n"
            "\n"
            "chatli serves a chat/social REST API under /api, a WebSocket gateway at /ws\n"
            "and /socket.io/, and /healthz, /readyz and /metrics, all on one TCP port.\n"
            "It is configured only through environment variables (an empty value counts\n"
            "as unset; a value that does not parse stops the server at start):\n"
            "\n");
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
        fprintf(f, "  %-20s %s\n  %-20s default: %s\n", docs[i].name, docs[i].help, "", docs[i].def);
    fprintf(f,
            "\n"
            "Without MONGODB_URI the store is embedded SQLite at DATA_DIR/chatli.db; without\n"
            "REDIS_URL rate limits, cache and fan-out stay in this process; without\n"
            "CLOUDINARY_URL uploads are stored under DATA_DIR/uploads.\n"
            "SIGTERM or SIGINT drains requests and WebSockets, flushes the store and exits 0\n"
            "within SHUTDOWN_GRACE_S.  Logs are JSON lines on stdout.\n");
}
