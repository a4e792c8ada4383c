/* main.c - chatli's composition root: configuration, start-up order,
 * signals and the shutdown sequence.  The only file that names concrete
 * adapters (store_sqlite or store_mongo, bus_local or bus_redis, cache_mem
 * or cache_redis, media_local or media_cloudinary).
 *
 * Thread model (one process):
 *   - main: reads the config, starts everything in dependency order, then
 *     sleeps on a signalfd; on SIGTERM/SIGINT runs the shutdown sequence.
 *     SIGINT/SIGTERM are blocked before any thread exists, so every thread
 *     inherits the mask and only the signalfd sees them; SIGPIPE is ignored
 *     (a peer that vanished is an EPIPE, not a dead process).
 *   - acceptor (net/acceptor.c, 1 thread): owns the listening socket,
 *     peeks at each new connection and hands it to MHD or lws.  It never
 *     reads a request.
 *   - MHD workers (http/, HTTP_THREADS threads): run REST requests end to
 *     end, concurrently: parse, authenticate, rate limit, one core call,
 *     reply.  Core calls may block on the store, holding a worker.
 *   - linger (http/linger.c, 1 thread): drains and closes connections that
 *     were answered before their request body was read.
 *   - lws service threads (ws/, WS_LOOPS of them, one per event loop):
 *     each owns the `struct lws` of its loop's connections; other threads
 *     reach a loop only through its queue + lws_cancel_service().
 *   - ws workers (ws/): run gateway work that needs core (auth, sends).
 *   - store writer (store_sqlite, 1 thread): group-commits message appends.
 *   - bus_redis (2 threads when REDIS_URL is set): a publisher that
 *     pipelines PUBLISHes off every caller's thread, and a subscriber that
 *     hands other instances' events to the gateway's inbox and core's
 *     caches.  cache_redis has no thread: REST workers call Redis with
 *     short timeouts and fall back to in-process counters.
 *   - cloudinary (media_cloudinary, 1 thread when CLOUDINARY_URL is set):
 *     runs every upload to Cloudinary on one curl multi handle while the
 *     REST connection that asked waits suspended.
 * Core and the ports are reentrant: any worker may call them concurrently;
 * in-process adapters (cache_mem, bus_local) lock inside.
 *
 * Shutdown (CONTRACT.md section 9), within SHUTDOWN_GRACE_S:
 *   stop the acceptor (no new connections) -> MHD drains: /readyz answers
 *   503 "draining", responses carry Connection: close, idle keep-alive
 *   connections are closed, in-flight requests finish (until half the
 *   grace) -> the gateway acks in-flight sends and closes WebSockets with
 *   1001 -> MHD stops -> lws stops -> core, bus, cache freed -> the store
 *   flushes its last commit and closes -> exit 0. */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chatli/bus.h"
#include "chatli/adapters/bus_local.h"
#include "chatli/adapters/bus_redis.h"
#include "chatli/cache.h"
#include "chatli/adapters/cache_mem.h"
#include "chatli/adapters/cache_redis.h"
#include "chatli/config.h"
#include "chatli/core.h"
#include "chatli/adapters/http_server.h"
#include "chatli/media.h"
#include "chatli/adapters/media_cloudinary.h"
#include "chatli/adapters/media_local.h"
#include "chatli/adapters/acceptor.h"
#include "chatli/adapters/store_mongo.h"
#include "chatli/adapters/store_sqlite.h"
#include "chatli/clock.h"
#include "chatli/log.h"
#include "chatli/metrics.h"
#include "chatli/adapters/ws_server.h"
#include "chatli/sio_poll.h"

static long connection_ceiling;

static double ceiling_gauge(void *arg) { return (double)connection_ceiling; }

static void to_http(void *arg, int fd, const struct sockaddr *sa, socklen_t salen)
{
    http_server_add_connection(arg, fd, sa, salen);
}

static void to_ws(void *arg, int fd, const struct sockaddr *sa, socklen_t salen)
{
    ws_server_adopt(arg, fd);
}

static void to_reject(void *arg, int fd, int status) { http_server_reject(arg, fd, status); }

/* The Socket.IO polling transport: http's requests to the gateway. */
static void sio_poll_request(void *ws, bool post, const char *sid, const char *body, size_t len,
                             sio_poll_done_fn done, void *arg)
{
    ws_server_poll(ws, post, sid, body, len, done, arg);
}
static void sio_poll_release(void *ws) { ws_server_poll_release(ws); }

/* MHD closed a REST connection: give its admission back.  `arg` is the
 * struct app; its acceptor is set before the first connection exists. */
static void on_http_closed(void *arg, const struct sockaddr *sa);

/* mkdir -p: creates `path` and its missing parents (mode 0700: the
 * database and uploads are the server's alone). */
static int make_dirs(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return -1;
        buf[i] = c;
    }
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}


static int cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static int fatal(const char *what, const struct chat_err *err)
{
    log_error("%s: %s", what, err ? err->msg : "");
    fprintf(stderr, "chatli: %s: %s\n", what, err ? err->msg : "");
    return 1;
}

/* Everything main starts, in start-up order; app_stop frees it in reverse. */
struct app {
    struct store *store;
    struct bus *bus;
    struct cache *cache;
    struct core *core;
    struct media *media;
    struct ws_gateway *ws;
    struct http_server *http;
    struct acceptor *acc;
    int data_lock; /* lock_data_dir's fd, or -1 (MongoDB) */
};

static void on_http_closed(void *arg, const struct sockaddr *sa)
{
    struct app *a = arg;
    if (a->acc)
        acceptor_release_http(a->acc, sa);
}

/* Every key and channel of chatli in a shared Redis starts with this. */
#define REDIS_KEY_PREFIX "chatli:"

/* REDIS_URL shares fan-out and cache invalidation (bus_redis) and rate
 * limits (cache_redis) between instances; without it both stay in this
 * process.  Neither needs Redis up to start: both reconnect with backoff,
 * and /readyz says "degraded" meanwhile.  The URL holds credentials and is
 * not logged. */
static int open_bus(const struct config *cfg, struct bus **out, struct chat_err *err)
{
    if (!cfg->redis_url)
        return bus_local_new(out, err);
    return bus_redis_open(cfg->redis_url, REDIS_KEY_PREFIX, out, err);
}

static int open_cache(const struct config *cfg, struct cache **out, struct chat_err *err)
{
    if (!cfg->redis_url)
        return cache_mem_new(out, err);
    int rc = cache_redis_open(cfg->redis_url, REDIS_KEY_PREFIX, out, err);
    if (rc == 0)
        cache_redis_register_metrics(*out);
    return rc;
}

/* CLOUDINARY_URL sends uploads to Cloudinary; without it they are stored
 * under DATA_DIR/uploads and served at /uploads/. */
static int open_media(const struct config *cfg, struct media **out, struct chat_err *err)
{
    if (!cfg->cloudinary_url)
        return media_local_open(cfg->data_dir, out, err);
    struct media_cloudinary_config mc = {
        .url = cfg->cloudinary_url,
        .api_base = cfg->cloudinary_api_base,
        .data_dir = cfg->data_dir,
        .connect_timeout_ms = (long)cfg->cloudinary_connect_timeout_ms,
        .timeout_ms = (long)cfg->cloudinary_timeout_ms,
    };
    return media_cloudinary_open(&mc, out, err);
}

/* The embedded SQLite store belongs to one process: a second instance on
 * the same DATA_DIR would allocate message seqs on its own, and share no
 * live delivery without Redis.  Scaling out needs MongoDB, so refuse that
 * start with a message that says so.  The lock (flock on DATA_DIR/.lock)
 * is held until exit; the kernel drops it when the process dies, even with
 * kill -9.  Returns the lock's fd, or -1 after filling err. */
static int lock_data_dir(const struct config *cfg, struct chat_err *err)
{
    char path[4096 + 16];
    snprintf(path, sizeof path, "%s/.lock", cfg->data_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        /* chat_err holds 128 bytes: the advice first, the path is the
         * operator's own DATA_DIR. */
        chat_err_set(err, CHAT_E_UNAVAILABLE, NULL,
                     "another chatli process uses this DATA_DIR; several instances need "
                     "MONGODB_URI and REDIS_URL");
        close(fd);
        return -1;
    }
    return fd;
}

/* Weaker Argon2id parameters are allowed (tests use the minimum), but an
 * operator should know that stolen hashes are then cheap to crack. */
static void warn_weak_pwhash(const struct config *cfg)
{
    if (cfg->pwhash_opslimit < crypto_pwhash_OPSLIMIT_INTERACTIVE ||
        cfg->pwhash_memlimit < crypto_pwhash_MEMLIMIT_INTERACTIVE)
        log_warn("PWHASH_OPSLIMIT=%llu / PWHASH_MEMLIMIT=%zu are below libsodium's interactive "
                 "limits (%llu / %zu): password hashes are cheaper to crack",
                 cfg->pwhash_opslimit, cfg->pwhash_memlimit,
                 (unsigned long long)crypto_pwhash_OPSLIMIT_INTERACTIVE,
                 (size_t)crypto_pwhash_MEMLIMIT_INTERACTIVE);
}

/* MONGODB_URI selects the production store; without it the embedded
 * SQLite database lives in DATA_DIR. */
static int open_store(const struct config *cfg, struct store **out, struct chat_err *err)
{
    if (cfg->mongodb_uri)
        return store_mongo_open(cfg->mongodb_uri, cfg->mongodb_db, out, err);
    char db_path[4096 + 16];
    snprintf(db_path, sizeof db_path, "%s/chatli.db", cfg->data_dir);
    return store_sqlite_open(db_path, out, err);
}

/* Starts every part in dependency order: adapters, core, the two
 * transports, then the acceptor that feeds them.  Returns 0, or 1 after
 * logging which part failed; app_stop frees what did start either way. */
static int app_start(struct app *a, const struct config *cfg)
{
    struct chat_err err = {0};
    if (make_dirs(cfg->data_dir) != 0) {
        chat_err_set(&err, CHAT_E_UNAVAILABLE, NULL, "cannot create DATA_DIR %s: %s",
                     cfg->data_dir, strerror(errno));
        return fatal("DATA_DIR", &err);
    }
    if (!cfg->mongodb_uri && (a->data_lock = lock_data_dir(cfg, &err)) < 0)
        return fatal("DATA_DIR", &err);
    connection_ceiling = acceptor_raise_fd_limit();
    metrics_register_gauge("chatli_connection_ceiling",
                           "Connections the process can hold (file descriptor limit minus a reserve).",
                           ceiling_gauge, NULL);
    if (open_store(cfg, &a->store, &err) != 0)
        return fatal("store", &err);
    if (open_bus(cfg, &a->bus, &err) != 0)
        return fatal("bus", &err);
    if (open_cache(cfg, &a->cache, &err) != 0)
        return fatal("cache", &err);
    struct core_config ccfg = {
        .token_ttl_s = cfg->token_ttl_s,
        .pwhash_opslimit = cfg->pwhash_opslimit,
        .pwhash_memlimit = cfg->pwhash_memlimit,
        .pwhash_concurrency = cores(),
        .shared = a->cache,
    };
    if (core_new(&ccfg, a->store, a->bus, &a->core, &err) != 0)
        return fatal("core", &err);
    struct bus_listener core_listener;
    core_bus_listener(a->core, &core_listener);
    if (bus_listen(a->bus, &core_listener, &err) != 0)
        return fatal("bus", &err);
    if (open_media(cfg, &a->media, &err) != 0)
        return fatal("media", &err);
    if (ws_server_open(cfg, a->core, a->bus, a->cache, &a->ws, &err) != 0)
        return fatal("websocket gateway", &err);
    /* http reaches the gateway's polling sessions through this table only. */
    static struct sio_poll sio_poll;
    sio_poll = (struct sio_poll){.impl = a->ws, .request = sio_poll_request,
                                 .release = sio_poll_release};
    struct http_server_deps deps = {.cfg = cfg, .core = a->core, .store = a->store,
                                    .cache = a->cache, .bus = a->bus, .media = a->media,
                                    .conn_limit = (unsigned)connection_ceiling,
                                    .on_closed = on_http_closed, .on_closed_arg = a,
                                    .sio_poll = &sio_poll};
    if (http_server_open(&deps, &a->http, &err) != 0)
        return fatal("http server", &err);
    struct acceptor_config acfg = {.host = cfg->host, .port = cfg->port, .to_http = to_http,
                                   .http_arg = a->http, .to_ws = to_ws, .ws_arg = a->ws,
                                   .to_reject = to_reject, .reject_arg = a->http,
                                   /* admission: behind TRUST_PROXY every client shares
                                    * the proxy's address, so no per-address cap then */
                                   .conn_max = (int)connection_ceiling,
                                   .max_per_addr = cfg->trust_proxy ? 0
                                                                    : (int)cfg->max_conns_per_addr};
    if (acceptor_open(&acfg, &a->acc, &err) != 0)
        return fatal("listen", &err);
    json_t *f = json_pack("{s:s, s:s, s:i, s:s, s:I, s:i, s:s, s:s, s:s}", "msg", "chatli started",
                          "host", cfg->host, "port", acceptor_port(a->acc), "store",
                          a->store->name, "connectionCeiling", (json_int_t)connection_ceiling,
                          "httpThreads", cfg->http_threads, "cache", a->cache->name, "bus",
                          a->bus->name, "media", a->media->name);
    if (f) {
        log_json(LOG_INFO, f);
        json_decref(f);
    }
    return 0;
}

/* Blocks until SIGTERM or SIGINT (or a signalfd failure, taken as SIGTERM)
 * and returns the signal's number. */
static int wait_signal(int sfd)
{
    struct signalfd_siginfo si;
    for (;;) {
        ssize_t n = read(sfd, &si, sizeof si);
        if (n == (ssize_t)sizeof si)
            return (int)si.ssi_signo;
        if (n < 0 && errno != EINTR) {
            log_error("signalfd read: %s", strerror(errno));
            return SIGTERM;
        }
    }
}

/* The graceful part of shutdown: no new connections, REST drained within
 * half the grace, in-flight sends acked and WebSockets closed with 1001
 * within nine tenths of it (the rest is for app_stop). */
static void app_drain(struct app *a, const struct config *cfg, int signo)
{
    long long t0 = clock_mono_ms(), grace_ms = cfg->shutdown_grace_s * 1000;
    log_info("%s received: draining (grace %lld s)", signo == SIGINT ? "SIGINT" : "SIGTERM",
             (long long)cfg->shutdown_grace_s);
    acceptor_stop(a->acc);
    if (!http_server_drain(a->http, t0 + grace_ms / 2)) {
        /* Uploads still waiting on Cloudinary answer 503 now (MHD cannot
         * stop while a connection is suspended for one), and their answers
         * get until three quarters of the grace to go out: stopping MHD
         * right after the cancel closed such a connection before its 503
         * was written (seen in CI, test_uploads.py). */
        media_cancel(a->media);
        if (!http_server_drain(a->http, t0 + grace_ms * 3 / 4))
            log_warn("REST drain: %u connection(s) still open at the deadline",
                     http_server_connections(a->http));
    }
    media_cancel(a->media); /* a no-op when done above; uploads that start now fail */
    ws_server_shutdown(a->ws, t0 + grace_ms * 9 / 10);
}

/* Frees what app_start started, in reverse order.  The acceptor stops
 * first so that it never hands a socket to a server being freed; the
 * store closes last, after its writer's final commit. */
static void app_stop(struct app *a)
{
    acceptor_stop(a->acc);
    http_server_close(a->http);
    if (a->ws)
        ws_server_close(a->ws);
    acceptor_close(a->acc);
    media_close(a->media); /* after MHD: every put has answered */
    /* The bus first: its subscriber thread calls core's listener. */
    bus_close(a->bus);
    if (a->core)
        core_free(a->core);
    cache_close(a->cache);
    store_close(a->store);
    if (a->data_lock >= 0)
        close(a->data_lock);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            config_print_help(stdout);
            return 0;
        }
        fprintf(stderr, "chatli: unknown argument \"%s\" (configuration comes from the "
                        "environment; see chatli --help)\n", argv[i]);
        return 2;
    }

    /* Before any thread starts: see the thread model above. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
    if (sfd < 0) {
        perror("chatli: signalfd");
        return 1;
    }

    if (sodium_init() < 0) {
        fprintf(stderr, "chatli: libsodium failed to initialise\n");
        return 1;
    }
    struct config cfg;
    char msg[256] = "";
    if (config_load(&cfg, msg, sizeof msg) != 0) {
        fprintf(stderr, "chatli: configuration error: %s\n", msg);
        log_error("configuration error: %s", msg);
        config_cleanup(&cfg);
        return 1;
    }
    log_set_level(cfg.log_level);
    warn_weak_pwhash(&cfg);

    struct app app = {.data_lock = -1};
    int rc = app_start(&app, &cfg);
    if (rc == 0)
        app_drain(&app, &cfg, wait_signal(sfd));
    app_stop(&app);
    if (rc == 0)
        log_info("chatli stopped");
    config_cleanup(&cfg);
    close(sfd);
    return rc;
}
