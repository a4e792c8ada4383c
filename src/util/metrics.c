/* metrics.c - a small fixed Prometheus registry.
 *
 * Hot paths only do atomic adds.  Label sets that appear at run time
 * (route x method x status, store op, error kind) live in fixed tables: a
 * slot is claimed under `lock` the first time its label set is seen and is
 * then found by a lock-free scan, so the lock is taken once per new label
 * set, not per event.  A slot's labels are written before `used` is set with
 * release order, so a reader that sees `used` sees the labels.  Tables are
 * bounded; a label set past a full table is dropped from the per-label
 * series (the totals still count it). */
#include "chatli/metrics.h"

#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_BUCKETS 14
static const double bucket_le[N_BUCKETS] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                                            0.0025,  0.005,  0.01,    0.025,  0.05,
                                            0.1,     0.25,   0.5,     2.5};

struct histo {
    _Atomic uint64_t buckets[N_BUCKETS]; /* non-cumulative; rendered cumulative */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_ns;
};

static void histo_observe(struct histo *h, double seconds)
{
    int i = 0;
    while (i < N_BUCKETS && seconds > bucket_le[i])
        i++;
    if (i < N_BUCKETS)
        atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, (uint64_t)(seconds * 1e9), memory_order_relaxed);
}

struct slot {
    _Atomic int used;
    const char *a, *b; /* labels: route+method, op, kind */
    int status;
    _Atomic uint64_t count;
    struct histo h;
};

#define MAX_SLOTS 128
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot route_slots[MAX_SLOTS], op_slots[MAX_SLOTS], kind_slots[MAX_SLOTS];
static struct histo http_latency;
static _Atomic int64_t ws_connections;
static _Atomic uint64_t ws_disconnections; /* closes of any cause, since start */

#define MAX_GAUGES 32
static struct {
    const char *name, *help;
    metrics_gauge_fn fn;
    void *arg;
} gauges[MAX_GAUGES];
static int n_gauges;

/* Labelled gauge families (metrics_register_family), guarded by `lock`,
 * which rendering holds while it calls them. */
#define MAX_FAMILIES 8
static struct {
    const char *name, *help, *label;
    metrics_family_fn fn;
    void *arg;
} families[MAX_FAMILIES];
static int n_families;

static int same(const struct slot *s, const char *a, const char *b, int status)
{
    return s->status == status && strcmp(s->a, a) == 0 && (!b || strcmp(s->b, b) == 0);
}

static struct slot *find_slot(struct slot *t, const char *a, const char *b, int status)
{
    int i;
    for (i = 0; i < MAX_SLOTS && atomic_load_explicit(&t[i].used, memory_order_acquire); i++)
        if (same(&t[i], a, b, status))
            return &t[i];
    pthread_mutex_lock(&lock);
    for (; i < MAX_SLOTS && atomic_load_explicit(&t[i].used, memory_order_acquire); i++)
        if (same(&t[i], a, b, status))
            break;
    struct slot *s = NULL;
    if (i < MAX_SLOTS) {
        s = &t[i];
        if (!atomic_load_explicit(&s->used, memory_order_relaxed)) {
            s->a = a;
            s->b = b ? b : "";
            s->status = status;
            atomic_store_explicit(&s->used, 1, memory_order_release);
        }
    }
    pthread_mutex_unlock(&lock);
    return s;
}

void metrics_http_request(const char *route, const char *method, int status, double seconds)
{
    histo_observe(&http_latency, seconds);
    struct slot *s = find_slot(route_slots, route, method, status);
    if (s)
        atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
}

void metrics_store_op(const char *op, double seconds)
{
    struct slot *s = find_slot(op_slots, op, NULL, 0);
    if (s)
        histo_observe(&s->h, seconds);
}

void metrics_error(const char *kind)
{
    struct slot *s = find_slot(kind_slots, kind, NULL, 0);
    if (s)
        atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
}

void metrics_ws_connections_add(int64_t delta)
{
    atomic_fetch_add_explicit(&ws_connections, delta, memory_order_relaxed);
    if (delta < 0)
        atomic_fetch_add_explicit(&ws_disconnections, (uint64_t)-delta, memory_order_relaxed);
}

void metrics_register_gauge(const char *name, const char *help, metrics_gauge_fn fn, void *arg)
{
    pthread_mutex_lock(&lock);
    if (n_gauges < MAX_GAUGES) {
        gauges[n_gauges].name = name;
        gauges[n_gauges].help = help;
        gauges[n_gauges].fn = fn;
        gauges[n_gauges].arg = arg;
        n_gauges++;
    }
    pthread_mutex_unlock(&lock);
}

void metrics_register_family(const char *name, const char *help, const char *label,
                             metrics_family_fn fn, void *arg)
{
    pthread_mutex_lock(&lock);
    if (n_families < MAX_FAMILIES) {
        families[n_families].name = name;
        families[n_families].help = help;
        families[n_families].label = label;
        families[n_families].fn = fn;
        families[n_families].arg = arg;
        n_families++;
    }
    pthread_mutex_unlock(&lock);
}

void metrics_unregister_family(const char *name, void *arg)
{
    pthread_mutex_lock(&lock);
    for (int i = 0; i < n_families; i++)
        if (families[i].arg == arg && strcmp(families[i].name, name) == 0) {
            families[i] = families[--n_families];
            break;
        }
    pthread_mutex_unlock(&lock);
}

/* ---- rendering ---- */

struct out {
    char *buf;
    size_t len, cap;
    int failed;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    if (o->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = 1;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)n;
        char *nb = realloc(o->buf, cap);
        if (!nb) {
            o->failed = 1;
            return;
        }
        o->buf = nb;
        o->cap = cap;
    }
}

static void put_histo(struct out *o, const char *name, const char *labels, struct histo *h)
{
    uint64_t cum = 0;
    const char *sep = labels[0] ? "," : "";
    for (int i = 0; i < N_BUCKETS; i++) {
        cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        put(o, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, bucket_le[i],
            (unsigned long long)cum);
    }
    uint64_t count = atomic_load_explicit(&h->count, memory_order_relaxed);
    put(o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)count);
    const char *open = labels[0] ? "{" : "", *close = labels[0] ? "}" : "";
    put(o, "%s_sum%s%s%s %.9f\n", name, open, labels, close,
        (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9);
    put(o, "%s_count%s%s%s %llu\n", name, open, labels, close, (unsigned long long)count);
}

static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = 0;
    fclose(f);
    return rss * sysconf(_SC_PAGESIZE);
}

/* The memory this process may use: its cgroup's limit (v2 memory.max)
 * when there is one, else the machine's RAM (MemTotal).  0 if unknown. */
static long long memory_limit_bytes(void)
{
    long long v = 0;
    FILE *f = fopen("/sys/fs/cgroup/memory.max", "r");
    if (f) { /* "max" (no limit) does not scan */
        if (fscanf(f, "%lld", &v) != 1)
            v = 0;
        fclose(f);
    }
    if (v > 0)
        return v;
    f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[128];
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemTotal: %lld kB", &v) == 1) {
            v *= 1024;
            break;
        }
    fclose(f);
    return v > 0 ? v : 0;
}

static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    long n = 0;
    if (!d)
        return 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n > 3 ? n - 3 : 0; /* ".", ".." and the DIR's own fd */
}

char *metrics_render(size_t *len)
{
    struct out o = {malloc(8192), 0, 8192, 0};
    if (!o.buf)
        return NULL;
    o.buf[0] = '\0';

    put(&o, "# HELP chatli_http_requests_total HTTP requests by route, method and status.\n"
            "# TYPE chatli_http_requests_total counter\n");
    for (int i = 0; i < MAX_SLOTS && atomic_load_explicit(&route_slots[i].used, memory_order_acquire); i++)
        put(&o, "chatli_http_requests_total{route=\"%s\",method=\"%s\",status=\"%d\"} %llu\n",
            route_slots[i].a, route_slots[i].b, route_slots[i].status,
            (unsigned long long)atomic_load(&route_slots[i].count));

    put(&o, "# HELP chatli_http_request_duration_seconds HTTP request latency.\n"
            "# TYPE chatli_http_request_duration_seconds histogram\n");
    put_histo(&o, "chatli_http_request_duration_seconds", "", &http_latency);

    put(&o, "# HELP chatli_store_op_duration_seconds Store operation latency by operation.\n"
            "# TYPE chatli_store_op_duration_seconds histogram\n");
    for (int i = 0; i < MAX_SLOTS && atomic_load_explicit(&op_slots[i].used, memory_order_acquire); i++) {
        char labels[96];
        snprintf(labels, sizeof labels, "op=\"%s\"", op_slots[i].a);
        put_histo(&o, "chatli_store_op_duration_seconds", labels, &op_slots[i].h);
    }

    put(&o, "# HELP chatli_errors_total Errors by kind.\n# TYPE chatli_errors_total counter\n");
    for (int i = 0; i < MAX_SLOTS && atomic_load_explicit(&kind_slots[i].used, memory_order_acquire); i++)
        put(&o, "chatli_errors_total{kind=\"%s\"} %llu\n", kind_slots[i].a,
            (unsigned long long)atomic_load(&kind_slots[i].count));

    put(&o, "# HELP chatli_ws_connections Open WebSocket connections.\n"
            "# TYPE chatli_ws_connections gauge\nchatli_ws_connections %lld\n",
        (long long)atomic_load(&ws_connections));
    put(&o, "# HELP chatli_ws_disconnections_total WebSocket connections closed (any cause).\n"
            "# TYPE chatli_ws_disconnections_total counter\nchatli_ws_disconnections_total %llu\n",
        (unsigned long long)atomic_load(&ws_disconnections));

    pthread_mutex_lock(&lock);
    int ng = n_gauges;
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < ng; i++)
        put(&o, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", gauges[i].name, gauges[i].help,
            gauges[i].name, gauges[i].name, gauges[i].fn(gauges[i].arg));

    pthread_mutex_lock(&lock);
    for (int i = 0; i < n_families; i++) {
        put(&o, "# HELP %s %s\n# TYPE %s gauge\n", families[i].name, families[i].help,
            families[i].name);
        double v;
        for (int k = 0; families[i].fn(families[i].arg, k, &v); k++)
            put(&o, "%s{%s=\"%d\"} %.17g\n", families[i].name, families[i].label, k, v);
    }
    pthread_mutex_unlock(&lock);

    put(&o, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
            "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %ld\n",
        rss_bytes());
    put(&o, "# HELP chatli_memory_limit_bytes Memory the process may use: its cgroup limit, else "
            "the machine's RAM.\n# TYPE chatli_memory_limit_bytes gauge\n"
            "chatli_memory_limit_bytes %lld\n",
        memory_limit_bytes());
    put(&o, "# HELP process_open_fds Number of open file descriptors.\n"
            "# TYPE process_open_fds gauge\nprocess_open_fds %ld\n",
        open_fds());

    if (o.failed) {
        free(o.buf);
        return NULL;
    }
    if (len)
        *len = o.len;
    return o.buf;
}
