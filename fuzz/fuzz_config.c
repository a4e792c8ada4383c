/* fuzz_config.c - the environment -> struct config (src/config.c): the
 * URL checks (MONGODB_URI, REDIS_URL, CLOUDINARY_URL, CLOUDINARY_API_BASE,
 * PUBLIC_URL), numbers, booleans, HOST, MONGODB_DB, CORS_ORIGINS and
 * LOG_LEVEL, through config_load() itself, so no parser had to be exposed.
 *
 * Input: lines "NAME=VALUE" (names outside the list below are ignored; a
 * later line for the same name wins).  The variables are put with
 * putenv() from buffers this file owns and removed after each run, so
 * millions of runs neither leak nor grow the environment (setenv() keeps
 * every value it was ever given).  Checked: success gives values within
 * their documented ranges, URLs with an accepted scheme, and the string
 * values as given; failure gives a message that names a variable the
 * input set (defaults are always valid). */
#include <math.h>
#include <strings.h>

#include "chatli/config.h"
#include "fuzz.h"

static const char *const names[] = {
    "PORT", "HOST", "DATA_DIR", "MONGODB_URI", "MONGODB_DB", "REDIS_URL", "CLOUDINARY_URL",
    "CLOUDINARY_API_BASE", "PUBLIC_URL", "CORS_ORIGINS", "TRUST_PROXY", "RATE_LIMIT_MAX",
    "RATE_LIMIT_WINDOW_MS", "WS_RATE_PER_S", "WS_RATE_BURST", "MAX_UPLOAD_BYTES", "LOG_LEVEL",
    "TOKEN_TTL_S", "SHUTDOWN_GRACE_S", "PWHASH_OPSLIMIT", "PWHASH_MEMLIMIT", "HTTP_THREADS",
    "WEB_UI", "UPLOAD_RATE_LIMIT_MAX", "CLOUDINARY_CONNECT_TIMEOUT_MS", "CLOUDINARY_TIMEOUT_MS",
    "WS_MAX_CONNS_PER_USER", "WS_LOOPS", "LOGIN_FAIL_MAX", "LOGIN_FAIL_WINDOW_S", "MAX_CONNS_PER_ADDR",
    "REQUEST_HEAD_TIMEOUT_S", "REQUEST_BODY_TIMEOUT_S",
};
#define N_NAMES (sizeof names / sizeof names[0])

static char *entry[N_NAMES]; /* "NAME=VALUE" handed to putenv, or NULL */

static int name_index(const char *s, size_t n)
{
    for (size_t i = 0; i < N_NAMES; i++)
        if (strlen(names[i]) == n && memcmp(names[i], s, n) == 0)
            return (int)i;
    return -1;
}

static void clear_env(void)
{
    for (size_t i = 0; i < N_NAMES; i++) {
        unsetenv(names[i]);
        free(entry[i]);
        entry[i] = NULL;
    }
}

/* Puts every "NAME=VALUE" line of the input; NUL ends a value (no
 * environment string can hold one). */
static void put_lines(const char *s, size_t size)
{
    const char *end = s + size;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *le = nl ? nl : end;
        const char *eq = memchr(s, '=', (size_t)(le - s));
        int i = eq ? name_index(s, (size_t)(eq - s)) : -1;
        if (i >= 0) {
            size_t n = (size_t)(le - s);
            char *e = malloc(n + 1);
            if (e) {
                memcpy(e, s, n);
                e[n] = '\0';
                unsetenv(names[i]);
                free(entry[i]);
                entry[i] = e;
                putenv(e);
            }
        }
        s = le + 1;
    }
}

/* The value the input gave `name`, or NULL when unset or empty. */
static const char *given(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static bool has_scheme(const char *v, const char *a, const char *b)
{
    return strncasecmp(v, a, strlen(a)) == 0 || strncasecmp(v, b, strlen(b)) == 0;
}

static void check_loaded(const struct config *c)
{
    FUZZ_CHECK(c->port >= 0 && c->port <= 65535);
    FUZZ_CHECK(c->rate_limit_max >= 0 && c->rate_limit_window_ms >= 1);
    FUZZ_CHECK(isfinite(c->ws_rate_per_s) && c->ws_rate_per_s >= 0 && c->ws_rate_per_s <= 1e6);
    FUZZ_CHECK(c->ws_rate_burst >= 0 && c->max_upload_bytes >= 1 && c->token_ttl_s >= 1);
    FUZZ_CHECK(c->shutdown_grace_s >= 0 && c->http_threads >= 1 && c->http_threads <= 256);
    FUZZ_CHECK(c->host && c->data_dir && c->cors_origins && c->cloudinary_api_base);
    FUZZ_CHECK(!c->mongodb_uri || has_scheme(c->mongodb_uri, "mongodb://", "mongodb+srv://"));
    FUZZ_CHECK(!c->redis_url || has_scheme(c->redis_url, "redis://", "rediss://"));
    FUZZ_CHECK(!c->cloudinary_url || strncmp(c->cloudinary_url, "cloudinary://", 13) == 0);
    FUZZ_CHECK(has_scheme(c->cloudinary_api_base, "http://", "https://"));
    if (c->public_url) {
        size_t n = strlen(c->public_url);
        FUZZ_CHECK(n == 0 || c->public_url[n - 1] != '/');
    }
    const char *v;
    FUZZ_CHECK(!(v = given("HOST")) || strcmp(v, c->host) == 0);
    FUZZ_CHECK(!(v = given("MONGODB_URI")) || strcmp(v, c->mongodb_uri) == 0);
    FUZZ_CHECK(!(v = given("REDIS_URL")) || strcmp(v, c->redis_url) == 0);
    FUZZ_CHECK(!(v = given("CLOUDINARY_URL")) || strcmp(v, c->cloudinary_url) == 0);
    FUZZ_CHECK(!(v = given("MONGODB_DB")) || strcmp(v, c->mongodb_db) == 0);
    FUZZ_CHECK(!(v = given("PORT")) || atoi(v) == c->port);
}

/* A failure message starts with "NAME:" for a variable the input set. */
static void check_failed(const char *msg)
{
    const char *colon = strchr(msg, ':');
    FUZZ_CHECK(colon != NULL);
    int i = name_index(msg, (size_t)(colon - msg));
    FUZZ_CHECK(i >= 0 && given(names[i]) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    clear_env();
    put_lines((const char *)data, size);
    struct config cfg;
    char msg[256] = "";
    if (config_load(&cfg, msg, sizeof msg) == 0)
        check_loaded(&cfg);
    else
        check_failed(msg);
    config_cleanup(&cfg);
    clear_env();
    return 0;
}
