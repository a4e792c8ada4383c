/* media.c - the media port's adapter-independent part: its /metrics series
 * and the sweep of temp files left by a crash.
 *
 * Counters are process-wide atomics read at render time through
 * metrics_register_gauge, so any adapter thread (an MHD worker for local
 * puts, the Cloudinary thread) adds to them without a lock. */
#include "chatli/media.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chatli/log.h"
#include "chatli/metrics.h"
#include "media_internal.h"

static _Atomic uint64_t uploads, upload_bytes, cloud_requests, cloud_ns;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static double read_u64(void *arg) { return (double)atomic_load((_Atomic uint64_t *)arg); }
static double read_secs(void *arg) { return (double)atomic_load((_Atomic uint64_t *)arg) / 1e9; }

static void register_all(void)
{
    metrics_register_gauge("chatli_uploads_total", "Uploads stored (any media adapter).", read_u64,
                           &uploads);
    metrics_register_gauge("chatli_upload_bytes_total", "Bytes of stored uploads.", read_u64,
                           &upload_bytes);
    metrics_register_gauge("chatli_cloudinary_request_seconds_sum",
                           "Total time of requests to Cloudinary (each attempt).", read_secs,
                           &cloud_ns);
    metrics_register_gauge("chatli_cloudinary_request_seconds_count",
                           "Requests to Cloudinary (each attempt).", read_u64, &cloud_requests);
}

void media_metrics_register(void) { pthread_once(&once, register_all); }

void media_metrics_upload(int64_t bytes)
{
    atomic_fetch_add_explicit(&uploads, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&upload_bytes, (uint64_t)bytes, memory_order_relaxed);
}

void media_metrics_cloudinary(double seconds)
{
    atomic_fetch_add_explicit(&cloud_requests, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&cloud_ns, (uint64_t)(seconds * 1e9), memory_order_relaxed);
}

int media__sweep_tmp(const char *dir, int64_t older_than_s)
{
    DIR *d = opendir(dir);
    if (!d) {
        log_warn("media: cannot list %s: %s", dir, strerror(errno));
        return 0;
    }
    int removed = 0;
    time_t now = time(NULL);
    struct dirent *e;
    while ((e = readdir(d))) {
        struct stat st;
        if (strncmp(e->d_name, "up-", 3) != 0 ||
            fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
            (int64_t)(now - st.st_mtime) <= older_than_s)
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) == 0)
            removed++;
        else
            log_warn("media: cannot remove %s/%s: %s", dir, e->d_name, strerror(errno));
    }
    closedir(d);
    if (removed > 0)
        log_info("media: removed %d upload temp file(s) older than %lld s from %s", removed,
                 (long long)older_than_s, dir);
    return removed;
}
