/* index.c - the loop's two lookups: connection id -> connection (for
 * replies coming back from workers and the store) and user id -> user (for
 * deliveries, presence and revocation), so a delivery costs O(recipients)
 * whatever the number of connected clients.
 *
 * Chained hash tables with intrusive chains (the next pointers live in the
 * connection and user structs, so an entry costs no extra allocation),
 * doubling at load factor 1.  Connection ids are sequential, so the low
 * bits already spread; user ids are ObjectIds whose first bytes are a
 * timestamp, so they are hashed whole (FNV-1a).  Loop thread only. */
#include "ws_internal.h"

#include <stdlib.h>
#include <string.h>

#define INITIAL_BUCKETS 64u

static size_t hash_id(uint64_t id)
{
    /* Fibonacci hashing: spreads sequential ids over all bits. */
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 17);
}

static size_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return (size_t)h;
}

/* ---- connections ---------------------------------------------------- */

int ws__conns_init(struct ws_conn_table *t)
{
    t->b = calloc(INITIAL_BUCKETS, sizeof *t->b);
    if (!t->b)
        return CHAT_E_INTERNAL;
    t->mask = INITIAL_BUCKETS - 1;
    t->n = 0;
    return 0;
}

void ws__conns_cleanup(struct ws_conn_table *t)
{
    free(t->b);
    t->b = NULL;
    t->mask = t->n = 0;
}

static void conns_grow(struct ws_conn_table *t)
{
    size_t nb = (t->mask + 1) * 2;
    struct ws_conn **b = calloc(nb, sizeof *b);
    if (!b)
        return; /* stays denser; still correct */
    for (size_t i = 0; i <= t->mask; i++) {
        struct ws_conn *c = t->b[i];
        while (c) {
            struct ws_conn *next = c->id_next;
            size_t k = hash_id(c->id) & (nb - 1);
            c->id_next = b[k];
            b[k] = c;
            c = next;
        }
    }
    free(t->b);
    t->b = b;
    t->mask = nb - 1;
}

int ws__conns_put(struct ws_conn_table *t, struct ws_conn *c)
{
    if (t->n + 1 > t->mask + 1)
        conns_grow(t);
    size_t k = hash_id(c->id) & t->mask;
    c->id_next = t->b[k];
    t->b[k] = c;
    t->n++;
    return 0;
}

struct ws_conn *ws__conns_get(const struct ws_conn_table *t, uint64_t id)
{
    for (struct ws_conn *c = t->b[hash_id(id) & t->mask]; c; c = c->id_next)
        if (c->id == id)
            return c;
    return NULL;
}

void ws__conns_del(struct ws_conn_table *t, struct ws_conn *c)
{
    struct ws_conn **pp = &t->b[hash_id(c->id) & t->mask];
    for (; *pp; pp = &(*pp)->id_next) {
        if (*pp == c) {
            *pp = c->id_next;
            c->id_next = NULL;
            t->n--;
            return;
        }
    }
}

/* ---- users ---------------------------------------------------------- */

int ws__users_init(struct ws_user_table *t)
{
    t->b = calloc(INITIAL_BUCKETS, sizeof *t->b);
    if (!t->b)
        return CHAT_E_INTERNAL;
    t->mask = INITIAL_BUCKETS - 1;
    t->n = 0;
    return 0;
}

void ws__users_cleanup(struct ws_user_table *t)
{
    if (!t->b)
        return;
    for (size_t i = 0; i <= t->mask; i++) {
        struct ws_user *u = t->b[i];
        while (u) {
            struct ws_user *next = u->next;
            free(u);
            u = next;
        }
    }
    free(t->b);
    t->b = NULL;
    t->mask = t->n = 0;
}

static void users_grow(struct ws_user_table *t)
{
    size_t nb = (t->mask + 1) * 2;
    struct ws_user **b = calloc(nb, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i <= t->mask; i++) {
        struct ws_user *u = t->b[i];
        while (u) {
            struct ws_user *next = u->next;
            size_t k = hash_str(u->id) & (nb - 1);
            u->next = b[k];
            b[k] = u;
            u = next;
        }
    }
    free(t->b);
    t->b = b;
    t->mask = nb - 1;
}

struct ws_user *ws__users_get(const struct ws_user_table *t, const char *id)
{
    for (struct ws_user *u = t->b[hash_str(id) & t->mask]; u; u = u->next)
        if (strcmp(u->id, id) == 0)
            return u;
    return NULL;
}

struct ws_user *ws__users_get_or_add(struct ws_user_table *t, const char *id)
{
    struct ws_user *u = ws__users_get(t, id);
    if (u)
        return u;
    if (strlen(id) >= OID_SIZE)
        return NULL;
    u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    strcpy(u->id, id);
    if (t->n + 1 > t->mask + 1)
        users_grow(t);
    size_t k = hash_str(id) & t->mask;
    u->next = t->b[k];
    t->b[k] = u;
    t->n++;
    return u;
}

void ws__users_del(struct ws_user_table *t, struct ws_user *u)
{
    struct ws_user **pp = &t->b[hash_str(u->id) & t->mask];
    for (; *pp; pp = &(*pp)->next) {
        if (*pp == u) {
            *pp = u->next;
            t->n--;
            free(u);
            return;
        }
    }
}
