/* config.h - the server's configuration, read once from the environment.
 *
 * 12-factor: every setting is an environment variable (CONTRACT.md section 9).
 * A value that does not parse stops the server with a message naming the
 * variable; an absent one takes the documented default. */
#ifndef CHATLI_CONFIG_H
#define CHATLI_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct config {
    char *host;                  /* HOST, default "0.0.0.0" */
    int port;                    /* PORT, default 8080 */
    char *data_dir;              /* DATA_DIR, default "./data" */
    char *mongodb_uri;           /* MONGODB_URI, NULL = embedded SQLite */
    char *mongodb_db;            /* MONGODB_DB, NULL = from the URI or "chatli" */
    char *redis_url;             /* REDIS_URL, NULL = in-process state */
    char *cloudinary_url;        /* CLOUDINARY_URL, NULL = local uploads */
    char *cloudinary_api_base;   /* CLOUDINARY_API_BASE */
    char *public_url;            /* PUBLIC_URL, NULL = from the Host header */
    char *cors_origins;          /* CORS_ORIGINS, default "*" */
    bool trust_proxy;            /* TRUST_PROXY=1 */
    int64_t rate_limit_max;      /* RATE_LIMIT_MAX, default 100; 0 disables */
    int64_t rate_limit_window_ms;/* RATE_LIMIT_WINDOW_MS, default 900000 */
    double ws_rate_per_s;        /* WS_RATE_PER_S, default 20; 0 disables */
    int64_t ws_rate_burst;       /* WS_RATE_BURST, default 40; 0 disables */
    int64_t max_upload_bytes;    /* MAX_UPLOAD_BYTES, default 10 MiB */
    int log_level;               /* LOG_LEVEL debug|info|warn|error, default info */
    int64_t token_ttl_s;         /* TOKEN_TTL_S, default 2592000 (30 days) */
    int64_t shutdown_grace_s;    /* SHUTDOWN_GRACE_S, default 10 */
    unsigned long long pwhash_opslimit; /* PWHASH_OPSLIMIT, default interactive */
    size_t pwhash_memlimit;      /* PWHASH_MEMLIMIT, default interactive */
    int http_threads;            /* HTTP_THREADS, default 2 x cores, at least 4 */
    /* The built-in web client at / (docs/web.md). */
    bool web_ui;                 /* WEB_UI, default 1; 0 = API only, / is 404 */
    /* uploads: per-user limit and Cloudinary timeouts */
    int64_t upload_rate_max;     /* UPLOAD_RATE_LIMIT_MAX per rate window, default 30; 0 disables */
    int64_t cloudinary_connect_timeout_ms; /* CLOUDINARY_CONNECT_TIMEOUT_MS, default 5000 */
    int64_t cloudinary_timeout_ms;         /* CLOUDINARY_TIMEOUT_MS per attempt, default 60000 */
    /* WebSocket connections per user (issue 8, CONTRACT 6 v1.2) */
    uint32_t ws_max_conns_per_user; /* WS_MAX_CONNS_PER_USER, default 16 */
    int ws_loops;                /* WS_LOOPS, 1..64, default online cores capped at 16 */
    /* Hardening limits (issue 8): failed logins per account, per-address
     * connections, request head/body deadlines. */
    int64_t login_fail_max;      /* LOGIN_FAIL_MAX, default 10; 0 disables */
    int64_t login_fail_window_s; /* LOGIN_FAIL_WINDOW_S, default 900 */
    int64_t max_conns_per_addr;  /* MAX_CONNS_PER_ADDR, default 256; 0 disables */
    int64_t head_timeout_s;      /* REQUEST_HEAD_TIMEOUT_S, default 10 */
    int64_t body_timeout_s;      /* REQUEST_BODY_TIMEOUT_S, default 30 */
    /* Socket.IO at /socket.io/ (issue 12, CONTRACT 7) */
    int64_t sio_ping_interval_ms; /* SIO_PING_INTERVAL_MS, default 25000 */
    int64_t sio_ping_timeout_ms;  /* SIO_PING_TIMEOUT_MS, default 20000 */
};

/* Fills `cfg` from the environment.  Returns 0, or -1 with a one-line
 * message naming the offending variable in `msg`.  Strings are new; free
 * them with config_cleanup (also after a failure). */
int config_load(struct config *cfg, char *msg, size_t msg_len);
void config_cleanup(struct config *cfg);

/* Prints the `chatli --help` text: every variable, its default and meaning. */
void config_print_help(FILE *f);

#endif
