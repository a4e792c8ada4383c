/* test_config.c - config.c: defaults, good values and bad values of every
 * kind of variable (integer, number, boolean, URL, list, enum).
 *
 * config.c belongs to the chatli executable, not to a library, so the test
 * compiles it in directly. */
#include "config.c"

#include "check.h"

static const char *all_vars[] = {
    "PORT", "HOST", "DATA_DIR", "MONGODB_URI", "MONGODB_DB", "REDIS_URL", "CLOUDINARY_URL",
    "CLOUDINARY_API_BASE", "PUBLIC_URL", "CORS_ORIGINS", "TRUST_PROXY", "RATE_LIMIT_MAX",
    "RATE_LIMIT_WINDOW_MS", "WS_RATE_PER_S", "WS_RATE_BURST", "MAX_UPLOAD_BYTES", "LOG_LEVEL",
    "TOKEN_TTL_S", "SHUTDOWN_GRACE_S", "PWHASH_OPSLIMIT", "PWHASH_MEMLIMIT", "HTTP_THREADS",
    "WEB_UI",
    "UPLOAD_RATE_LIMIT_MAX", "CLOUDINARY_CONNECT_TIMEOUT_MS", "CLOUDINARY_TIMEOUT_MS",
    "WS_MAX_CONNS_PER_USER", "WS_LOOPS",
    "LOGIN_FAIL_MAX", "LOGIN_FAIL_WINDOW_S", "MAX_CONNS_PER_ADDR", "REQUEST_HEAD_TIMEOUT_S",
    "REQUEST_BODY_TIMEOUT_S",
};

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof all_vars / sizeof all_vars[0]; i++)
        unsetenv(all_vars[i]);
}

/* Loads with `name`=`value` alone set; returns config_load's result and
 * leaves the message in `msg`. */
static int load_with(const char *name, const char *value, struct config *cfg, char *msg, size_t len)
{
    clear_env();
    setenv(name, value, 1);
    msg[0] = '\0';
    int rc = config_load(cfg, msg, len);
    return rc;
}

/* A value that must be refused with a message naming the variable. */
static void bad(const char *name, const char *value)
{
    struct config cfg;
    char msg[256];
    int rc = load_with(name, value, &cfg, msg, sizeof msg);
    if (rc != -1 || strstr(msg, name) == NULL)
        fprintf(stderr, "  expected %s=\"%s\" to be refused (rc %d, msg \"%s\")\n", name, value, rc, msg);
    CHECK_EQ_INT(rc, -1);
    CHECK(strstr(msg, name) != NULL);
    config_cleanup(&cfg);
}

static void test_defaults(void)
{
    clear_env();
    struct config cfg;
    char msg[256] = "";
    CHECK_EQ_INT(config_load(&cfg, msg, sizeof msg), 0);
    CHECK_EQ_STR(cfg.host, "0.0.0.0");
    CHECK_EQ_INT(cfg.port, 8080);
    CHECK_EQ_STR(cfg.data_dir, "./data");
    CHECK(cfg.mongodb_uri == NULL);
    CHECK(cfg.mongodb_db == NULL);
    CHECK(cfg.redis_url == NULL);
    CHECK(cfg.cloudinary_url == NULL);
    CHECK_EQ_STR(cfg.cloudinary_api_base, "https://api.cloudinary.com");
    CHECK(cfg.public_url == NULL);
    CHECK_EQ_STR(cfg.cors_origins, "*");
    CHECK(!cfg.trust_proxy);
    CHECK(cfg.web_ui);
    CHECK_EQ_INT(cfg.rate_limit_max, 100);
    CHECK_EQ_INT(cfg.rate_limit_window_ms, 900000);
    CHECK(cfg.ws_rate_per_s == 20.0);
    CHECK_EQ_INT(cfg.ws_rate_burst, 40);
    CHECK_EQ_INT(cfg.max_upload_bytes, 10 * 1024 * 1024);
    CHECK_EQ_INT(cfg.upload_rate_max, 30);
    CHECK_EQ_INT(cfg.cloudinary_connect_timeout_ms, 5000);
    CHECK_EQ_INT(cfg.cloudinary_timeout_ms, 60000);
    CHECK_EQ_INT(cfg.log_level, LOG_INFO);
    CHECK_EQ_INT(cfg.token_ttl_s, 2592000);
    CHECK_EQ_INT(cfg.shutdown_grace_s, 10);
    CHECK_EQ_INT(cfg.pwhash_opslimit, crypto_pwhash_OPSLIMIT_INTERACTIVE);
    CHECK_EQ_INT(cfg.pwhash_memlimit, crypto_pwhash_MEMLIMIT_INTERACTIVE);
    CHECK(cfg.http_threads >= 4);
    CHECK_EQ_INT(cfg.ws_max_conns_per_user, 16);
    {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        CHECK_EQ_INT(cfg.ws_loops, cores < 1 ? 1 : cores > 16 ? 16 : (int)cores);
    }
    CHECK_EQ_INT(cfg.login_fail_max, 10);
    CHECK_EQ_INT(cfg.login_fail_window_s, 900);
    CHECK_EQ_INT(cfg.max_conns_per_addr, 256);
    CHECK_EQ_INT(cfg.head_timeout_s, 10);
    CHECK_EQ_INT(cfg.body_timeout_s, 30);
    config_cleanup(&cfg);
}

static void test_good_values(void)
{
    clear_env();
    setenv("PORT", "0", 1);
    setenv("HOST", "::1", 1);
    setenv("DATA_DIR", "/tmp/x", 1);
    setenv("MONGODB_URI", "mongodb://localhost:27017/chat", 1);
    setenv("MONGODB_DB", "chat_test", 1);
    setenv("REDIS_URL", "redis://127.0.0.1:6379/0", 1);
    setenv("CLOUDINARY_URL", "cloudinary://123:abc@demo", 1);
    setenv("CLOUDINARY_API_BASE", "http://127.0.0.1:9000", 1);
    setenv("PUBLIC_URL", "https://chat.example//", 1);
    setenv("CORS_ORIGINS", " https://a.example , http://localhost:5173/ ", 1);
    setenv("TRUST_PROXY", "1", 1);
    setenv("RATE_LIMIT_MAX", "0", 1);
    setenv("RATE_LIMIT_WINDOW_MS", "1000", 1);
    setenv("WS_RATE_PER_S", "2.5", 1);
    setenv("WS_RATE_BURST", "0", 1);
    setenv("MAX_UPLOAD_BYTES", "1024", 1);
    setenv("UPLOAD_RATE_LIMIT_MAX", "0", 1);
    setenv("CLOUDINARY_CONNECT_TIMEOUT_MS", "250", 1);
    setenv("CLOUDINARY_TIMEOUT_MS", "9000", 1);
    setenv("LOG_LEVEL", "DEBUG", 1);
    setenv("TOKEN_TTL_S", "60", 1);
    setenv("SHUTDOWN_GRACE_S", "0", 1);
    setenv("PWHASH_OPSLIMIT", "1", 1);
    setenv("PWHASH_MEMLIMIT", "8192", 1);
    setenv("HTTP_THREADS", "3", 1);
    setenv("WEB_UI", "off", 1);
    setenv("WS_MAX_CONNS_PER_USER", "2", 1);
    setenv("WS_LOOPS", "3", 1);
    struct config cfg;
    char msg[256] = "";
    int rc = config_load(&cfg, msg, sizeof msg);
    if (rc)
        fprintf(stderr, "  unexpected error: %s\n", msg);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(cfg.port, 0);
    CHECK_EQ_STR(cfg.host, "::1");
    CHECK_EQ_STR(cfg.data_dir, "/tmp/x");
    CHECK_EQ_STR(cfg.mongodb_uri, "mongodb://localhost:27017/chat");
    CHECK_EQ_STR(cfg.mongodb_db, "chat_test");
    CHECK_EQ_STR(cfg.redis_url, "redis://127.0.0.1:6379/0");
    CHECK_EQ_STR(cfg.cloudinary_url, "cloudinary://123:abc@demo");
    CHECK_EQ_STR(cfg.cloudinary_api_base, "http://127.0.0.1:9000");
    CHECK_EQ_STR(cfg.public_url, "https://chat.example");
    CHECK(cfg.trust_proxy);
    CHECK_EQ_INT(cfg.rate_limit_max, 0);
    CHECK_EQ_INT(cfg.rate_limit_window_ms, 1000);
    CHECK(cfg.ws_rate_per_s == 2.5);
    CHECK_EQ_INT(cfg.ws_rate_burst, 0);
    CHECK_EQ_INT(cfg.max_upload_bytes, 1024);
    CHECK_EQ_INT(cfg.upload_rate_max, 0);
    CHECK_EQ_INT(cfg.cloudinary_connect_timeout_ms, 250);
    CHECK_EQ_INT(cfg.cloudinary_timeout_ms, 9000);
    CHECK_EQ_INT(cfg.log_level, LOG_DEBUG);
    CHECK_EQ_INT(cfg.token_ttl_s, 60);
    CHECK_EQ_INT(cfg.shutdown_grace_s, 0);
    CHECK_EQ_INT(cfg.pwhash_opslimit, 1);
    CHECK_EQ_INT(cfg.pwhash_memlimit, 8192);
    CHECK_EQ_INT(cfg.http_threads, 3);
    CHECK(!cfg.web_ui);
    CHECK_EQ_INT(cfg.ws_max_conns_per_user, 2);
    CHECK_EQ_INT(cfg.ws_loops, 3);
    config_cleanup(&cfg);

    /* Empty means unset. */
    struct config c2;
    CHECK_EQ_INT(load_with("REDIS_URL", "", &c2, msg, sizeof msg), 0);
    CHECK(c2.redis_url == NULL);
    config_cleanup(&c2);
    CHECK_EQ_INT(load_with("PORT", "", &c2, msg, sizeof msg), 0);
    CHECK_EQ_INT(c2.port, 8080);
    config_cleanup(&c2);
    CHECK_EQ_INT(load_with("TRUST_PROXY", "false", &c2, msg, sizeof msg), 0);
    CHECK(!c2.trust_proxy);
    config_cleanup(&c2);
    CHECK_EQ_INT(load_with("CORS_ORIGINS", "*", &c2, msg, sizeof msg), 0);
    config_cleanup(&c2);
}

static void test_bad_values(void)
{
    /* integers */
    bad("PORT", "80x");
    bad("PORT", "-1");
    bad("PORT", "65536");
    bad("PORT", " 80");
    bad("PORT", "+80");
    bad("PORT", "0x50");
    bad("PORT", "99999999999999999999999");
    bad("RATE_LIMIT_MAX", "-5");
    bad("RATE_LIMIT_MAX", "1e3");
    bad("RATE_LIMIT_MAX", "ten");
    bad("RATE_LIMIT_WINDOW_MS", "0");
    bad("WS_RATE_BURST", "1.5");
    bad("MAX_UPLOAD_BYTES", "0");
    bad("MAX_UPLOAD_BYTES", "10MB");
    bad("UPLOAD_RATE_LIMIT_MAX", "-1");
    bad("UPLOAD_RATE_LIMIT_MAX", "lots");
    bad("CLOUDINARY_CONNECT_TIMEOUT_MS", "0");
    bad("CLOUDINARY_TIMEOUT_MS", "5s");
    bad("TOKEN_TTL_S", "0");
    bad("SHUTDOWN_GRACE_S", "-1");
    bad("SHUTDOWN_GRACE_S", "100000");
    bad("PWHASH_OPSLIMIT", "0");
    bad("PWHASH_OPSLIMIT", "-2");
    bad("PWHASH_MEMLIMIT", "1024");
    bad("PWHASH_MEMLIMIT", "64M");
    bad("HTTP_THREADS", "0");
    bad("HTTP_THREADS", "1000");
    bad("WS_MAX_CONNS_PER_USER", "0");
    bad("WS_MAX_CONNS_PER_USER", "-1");
    bad("WS_MAX_CONNS_PER_USER", "many");
    bad("WS_LOOPS", "0");
    bad("WS_LOOPS", "65");
    bad("WS_LOOPS", "two");
    bad("LOGIN_FAIL_MAX", "-1");
    bad("LOGIN_FAIL_MAX", "ten");
    bad("LOGIN_FAIL_WINDOW_S", "0");
    bad("MAX_CONNS_PER_ADDR", "-5");
    bad("MAX_CONNS_PER_ADDR", "1.5");
    bad("REQUEST_HEAD_TIMEOUT_S", "0");
    bad("REQUEST_BODY_TIMEOUT_S", "3601");
    /* numbers */
    bad("WS_RATE_PER_S", "-1");
    bad("WS_RATE_PER_S", "nan");
    bad("WS_RATE_PER_S", "inf");
    bad("WS_RATE_PER_S", "1e3");
    bad("WS_RATE_PER_S", "1.2.3");
    bad("WS_RATE_PER_S", ".");
    /* booleans */
    bad("TRUST_PROXY", "maybe");
    bad("TRUST_PROXY", "2");
    bad("WEB_UI", "maybe");
    /* enums */
    bad("LOG_LEVEL", "verbose");
    bad("LOG_LEVEL", "a-very-long-level-name");
    /* URLs and strings */
    bad("MONGODB_URI", "localhost:27017");
    bad("MONGODB_URI", "mongodb://");
    bad("MONGODB_DB", "bad name");
    bad("REDIS_URL", "http://localhost:6379");
    bad("REDIS_URL", "redis://local host");
    bad("REDIS_URL", "rediss://localhost:6379"); /* hiredis 0.14: no TLS */
    bad("CLOUDINARY_URL", "cloudinary://key@cloud");
    bad("CLOUDINARY_URL", "cloudinary://key:secret@");
    bad("CLOUDINARY_URL", "https://key:secret@cloud");
    bad("CLOUDINARY_API_BASE", "ftp://x");
    bad("PUBLIC_URL", "chat.example");
    bad("HOST", "bad host");
    bad("HOST", "a/b");
    /* lists */
    bad("CORS_ORIGINS", "a.example");
    bad("CORS_ORIGINS", "https://a.example/path");
    bad("CORS_ORIGINS", "https://a.example, nope");
    bad("CORS_ORIGINS", "https://");
    bad("CORS_ORIGINS", "https://a.example:123456");
}

static void test_help(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(f != NULL);
    if (!f)
        return;
    config_print_help(f);
    fclose(f);
    for (size_t i = 0; i < sizeof all_vars / sizeof all_vars[0]; i++) {
        if (!strstr(buf, all_vars[i]))
            fprintf(stderr, "  --help does not mention %s\n", all_vars[i]);
        CHECK(strstr(buf, all_vars[i]) != NULL);
    }
    free(buf);
}

int main(void)
{
    test_defaults();
    test_good_values();
    test_bad_values();
    test_help();
    clear_env();
    return check_done();
}
