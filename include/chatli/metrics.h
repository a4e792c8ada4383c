/* metrics.h - process-wide Prometheus metrics.
 *
 * A fixed registry with atomic counters and histograms, safe to update from
 * any thread without a lock on the hot path (label sets that appear at run
 * time, such as route x status, sit in a small table guarded by a mutex and
 * are looked up once per request).  /metrics renders it in the Prometheus
 * text format. */
#ifndef CHATLI_METRICS_H
#define CHATLI_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One finished HTTP request: `route` is the route template
 * ("/api/posts/{id}", "other" for unknown paths; a string literal), `status`
 * the HTTP status, `seconds` the latency.  Feeds
 * chatli_http_requests_total{route,method,status} and
 * chatli_http_request_duration_seconds (histogram). */
void metrics_http_request(const char *route, const char *method, int status, double seconds);

/* One store operation (`op` a string literal such as "get_user"): feeds
 * chatli_store_op_duration_seconds{op} (histogram). */
void metrics_store_op(const char *op, double seconds);

/* chatli_errors_total{kind}: `kind` a string literal ("internal",
 * "unavailable", "ws_protocol", ...). */
void metrics_error(const char *kind);

/* chatli_ws_connections (gauge) += delta; a negative delta also adds -delta
 * to chatli_ws_disconnections_total (counter). */
void metrics_ws_connections_add(int64_t delta);

/* A gauge whose value is read at render time, e.g. the store pool's in-use
 * count.  `name` and `help` are string literals; `fn` runs on the thread
 * that renders /metrics.  At most 32 gauges. */
typedef double (*metrics_gauge_fn)(void *arg);
void metrics_register_gauge(const char *name, const char *help, metrics_gauge_fn fn, void *arg);

/* A labelled gauge family read at render time: `fn(arg, i, &value)` gives
 * the value of `name{label="i"}` for i = 0, 1, ... until it returns false.
 * `name`, `help` and `label` are string literals.  Unregister (name and
 * arg) before `arg` goes away: rendering holds the registry's lock while
 * it calls `fn`, so once unregister returns, `fn` is not running.  At most
 * 8 families. */
typedef bool (*metrics_family_fn)(void *arg, int i, double *value);
void metrics_register_family(const char *name, const char *help, const char *label,
                             metrics_family_fn fn, void *arg);
void metrics_unregister_family(const char *name, void *arg);

/* Renders every metric, plus process_resident_memory_bytes and
 * process_open_fds from /proc/self, and chatli_memory_limit_bytes (the
 * cgroup v2 memory.max, else MemTotal).  Returns a new NUL-terminated buffer
 * (free() it) or NULL on allocation failure. */
char *metrics_render(size_t *len);

#endif
