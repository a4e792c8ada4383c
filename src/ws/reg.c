/* reg.c - the gateway's process-wide user registry: what the loops must
 * agree on about a user whose connections sit on several of them.
 *
 * Each loop keeps its own user -> connections index (index.c), which is
 * what deliveries walk; that stays loop-owned and lock-free.  Three rules
 * of the contract are about a user as a whole, not about one loop's share
 * of it, and they live here, behind one mutex:
 *   - presence: a user is online while any loop holds an attached
 *     connection of theirs (`n_attached`); only the process-wide first and
 *     last produce online / offline, and cluster presence generations come
 *     from one counter (`pres_gen`), so Redis sees one instance, not one
 *     per loop;
 *   - WS_MAX_CONNS_PER_USER: the READY connections of the user, oldest
 *     first, wherever they are (`ready`), so a new one evicts the oldest
 *     of all of them;
 *   - the flood bucket (WS_RATE_PER_S / WS_RATE_BURST): one per user.
 * Connections are named by id: an id carries its loop in its top byte
 * (WS_CONN_LOOP), so whoever evicts one knows where to send the close.
 *
 * The lock is taken when a connection becomes READY, leaves READY or
 * closes, and once per flood-limited frame (a bucket take: a few
 * arithmetic operations).  No lock is held while calling out of this file.
 * Pure otherwise: no lws, no core. */
#include "ws_internal.h"

#include <stdlib.h>
#include <string.h>

#define REG_INITIAL_BUCKETS 64u

static size_t hash_user(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a, like index.c */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return (size_t)h;
}

int ws__reg_init(struct ws_reg *r)
{
    memset(r, 0, sizeof *r);
    r->b = calloc(REG_INITIAL_BUCKETS, sizeof *r->b);
    if (!r->b)
        return CHAT_E_INTERNAL;
    r->mask = REG_INITIAL_BUCKETS - 1;
    pthread_mutex_init(&r->lock, NULL);
    r->inited = true;
    return 0;
}

void ws__reg_cleanup(struct ws_reg *r)
{
    if (!r->inited)
        return;
    for (size_t i = 0; r->b && i <= r->mask; i++) {
        struct ws_reg_user *u = r->b[i], *next;
        for (; u; u = next) {
            next = u->next;
            free(u->ready);
            free(u);
        }
    }
    free(r->b);
    free(r->retry);
    pthread_mutex_destroy(&r->lock);
    memset(r, 0, sizeof *r);
}

static struct ws_reg_user *find_locked(const struct ws_reg *r, const char *id)
{
    for (struct ws_reg_user *u = r->b[hash_user(id) & r->mask]; u; u = u->next)
        if (strcmp(u->id, id) == 0)
            return u;
    return NULL;
}

static void grow_locked(struct ws_reg *r)
{
    size_t nb = (r->mask + 1) * 2;
    struct ws_reg_user **b = calloc(nb, sizeof *b);
    if (!b)
        return; /* stays denser; still correct */
    for (size_t i = 0; i <= r->mask; i++) {
        struct ws_reg_user *u = r->b[i], *next;
        for (; u; u = next) {
            next = u->next;
            size_t k = hash_user(u->id) & (nb - 1);
            u->next = b[k];
            b[k] = u;
        }
    }
    free(r->b);
    r->b = b;
    r->mask = nb - 1;
}

/* Takes `u` out of its hash chain and frees it. */
static void unlink_free_locked(struct ws_reg *r, struct ws_reg_user *u)
{
    struct ws_reg_user **pp = &r->b[hash_user(u->id) & r->mask];
    while (*pp != u)
        pp = &(*pp)->next;
    *pp = u->next;
    r->n--;
    free(u->ready);
    free(u);
}

static void unready_locked(struct ws_reg_user *u, uint64_t conn_id)
{
    for (uint32_t i = 0; i < u->n_ready; i++)
        if (u->ready[i] == conn_id) {
            memmove(&u->ready[i], &u->ready[i + 1], (u->n_ready - i - 1) * sizeof *u->ready);
            u->n_ready--;
            return;
        }
}

struct ws_reg_user *ws__reg_attach(struct ws_reg *r, const char *user_id, uint64_t conn_id,
                                   uint32_t cap, bool *first, uint64_t *gen, uint64_t *evict)
{
    *first = false;
    *evict = 0;
    pthread_mutex_lock(&r->lock);
    struct ws_reg_user *u = find_locked(r, user_id);
    if (!u) {
        u = calloc(1, sizeof *u);
        if (!u)
            goto oom;
        memcpy(u->id, user_id, OID_SIZE);
        u->id[OID_SIZE - 1] = '\0';
        if (r->n >= r->mask + 1)
            grow_locked(r);
        size_t k = hash_user(u->id) & r->mask;
        u->next = r->b[k];
        r->b[k] = u;
        r->n++;
    }
    if (u->n_ready == u->cap_ready) {
        uint32_t c = u->cap_ready ? u->cap_ready * 2 : 4;
        uint64_t *v = realloc(u->ready, c * sizeof *v);
        if (!v) {
            if (u->n_attached == 0) /* just created: unlink it again */
                unlink_free_locked(r, u);
            goto oom;
        }
        u->ready = v;
        u->cap_ready = c;
    }
    u->ready[u->n_ready++] = conn_id;
    if (u->n_attached++ == 0) {
        *first = true;
        *gen = ++r->pres_gen;
    }
    /* Each attach adds one READY connection and the list never holds more
     * than `cap` after one, so at most one goes (cap 0: no cap). */
    if (cap > 0 && u->n_ready > cap) {
        *evict = u->ready[0];
        unready_locked(u, *evict);
    }
    pthread_mutex_unlock(&r->lock);
    return u;
oom:
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

void ws__reg_unready(struct ws_reg *r, struct ws_reg_user *u, uint64_t conn_id)
{
    pthread_mutex_lock(&r->lock);
    unready_locked(u, conn_id);
    pthread_mutex_unlock(&r->lock);
}

bool ws__reg_detach(struct ws_reg *r, struct ws_reg_user *u, uint64_t conn_id, uint64_t *gen)
{
    pthread_mutex_lock(&r->lock);
    unready_locked(u, conn_id);
    bool last = --u->n_attached == 0;
    if (last) {
        *gen = ++r->pres_gen;
        unlink_free_locked(r, u);
    }
    pthread_mutex_unlock(&r->lock);
    return last;
}

bool ws__reg_online(struct ws_reg *r, const char *user_id)
{
    pthread_mutex_lock(&r->lock);
    bool on = find_locked(r, user_id) != NULL;
    pthread_mutex_unlock(&r->lock);
    return on;
}

uint64_t ws__reg_loops_of(struct ws_reg *r, const char (*ids)[OID_SIZE], size_t n)
{
    uint64_t loops = 0;
    char id[OID_SIZE];
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < n; i++) {
        memcpy(id, ids[i], OID_SIZE);
        id[OID_SIZE - 1] = '\0';
        const struct ws_reg_user *u = find_locked(r, id);
        for (uint32_t k = 0; u && k < u->n_ready; k++)
            loops |= (uint64_t)1 << WS_CONN_LOOP(u->ready[k]);
    }
    pthread_mutex_unlock(&r->lock);
    return loops;
}

void ws__reg_online_many(struct ws_reg *r, char (*ids)[OID_SIZE], size_t n, bool *out)
{
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < n; i++)
        out[i] = find_locked(r, ids[i]) != NULL;
    pthread_mutex_unlock(&r->lock);
}

bool ws__reg_presence(struct ws_reg *r, const char *user_id, uint64_t *gen)
{
    pthread_mutex_lock(&r->lock);
    bool on = find_locked(r, user_id) != NULL;
    *gen = ++r->pres_gen;
    pthread_mutex_unlock(&r->lock);
    return on;
}

uint64_t ws__reg_next_gen(struct ws_reg *r)
{
    pthread_mutex_lock(&r->lock);
    uint64_t g = ++r->pres_gen;
    pthread_mutex_unlock(&r->lock);
    return g;
}

bool ws__reg_take(struct ws_reg *r, struct ws_reg_user *u, double rate, double burst,
                  int64_t now_ms)
{
    if (rate <= 0 || burst <= 0)
        return true;
    pthread_mutex_lock(&r->lock);
    bool ok = ws__bucket_take(&u->bucket, rate, burst, now_ms);
    pthread_mutex_unlock(&r->lock);
    return ok;
}

/* False on OOM (the user is not remembered). */
static bool retry_add_locked(struct ws_reg *r, const char *user_id)
{
    for (size_t i = 0; i < r->n_retry; i++)
        if (strcmp(r->retry[i], user_id) == 0)
            return true;
    if (r->n_retry == r->cap_retry) {
        size_t cap = r->cap_retry ? r->cap_retry * 2 : 16;
        char(*v)[OID_SIZE] = realloc(r->retry, cap * OID_SIZE);
        if (!v)
            return false;
        r->retry = v;
        r->cap_retry = cap;
    }
    memcpy(r->retry[r->n_retry++], user_id, OID_SIZE);
    return true;
}

bool ws__reg_retry_add(struct ws_reg *r, const char *user_id)
{
    pthread_mutex_lock(&r->lock);
    bool ok = retry_add_locked(r, user_id);
    pthread_mutex_unlock(&r->lock);
    return ok;
}

bool ws__reg_retry_all(struct ws_reg *r)
{
    bool ok = true;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i <= r->mask; i++)
        for (struct ws_reg_user *u = r->b[i]; u; u = u->next)
            ok = retry_add_locked(r, u->id) && ok;
    pthread_mutex_unlock(&r->lock);
    return ok;
}

char (*ws__reg_retry_take(struct ws_reg *r, size_t *n))[OID_SIZE]
{
    pthread_mutex_lock(&r->lock);
    char(*v)[OID_SIZE] = r->retry;
    *n = r->n_retry;
    r->retry = NULL;
    r->n_retry = r->cap_retry = 0;
    pthread_mutex_unlock(&r->lock);
    return v;
}
