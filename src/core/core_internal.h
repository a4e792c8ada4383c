/* core_internal.h - what core's .c files share and no transport may see.
 *
 * The private state behind `struct core`: the Argon2id concurrency gate, the
 * dummy hash that makes an unknown login cost as much as a wrong password,
 * and the short-lived chat member cache that spares the message path a full
 * store_get_chat per message.  Plus small helpers every service uses:
 * logging an internal failure, publishing a frame on the bus, and collecting
 * member lists. */
#ifndef CHATLI_CORE_CORE_INTERNAL_H
#define CHATLI_CORE_CORE_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

/* Member cache geometry.  Direct-mapped: a chat id hashes to one slot and a
 * collision simply evicts, so memory is bounded (slots x members) with no
 * sweeping.  The TTL bounds staleness only for changes made through another
 * instance; changes made through this core invalidate the slot at once. */
#define CORE_MCACHE_SLOTS 1024
#define CORE_MCACHE_TTL_MS 2000

struct core_mcache_slot {
    char chat_id[OID_SIZE];      /* "" when empty */
    char (*ids)[OID_SIZE];       /* owned; n entries */
    size_t n;
    int64_t expires_ms;          /* CLOCK_MONOTONIC ms */
    uint64_t epoch;              /* bumped by every invalidation of this slot */
};

/* Shared by every thread that calls core.
 * - pw_lock guards pw_active; pw_cond is signalled when a hash slot frees.
 * - mc_lock guards mc[] (every field of every slot).
 * - dummy_hash is written once in core_new and read-only afterwards. */
struct core_priv {
    pthread_mutex_t pw_lock;
    pthread_cond_t pw_cond;
    int pw_active;      /* Argon2id computations running now */
    int pw_max;         /* cfg.pwhash_concurrency, at least 1 */
    char dummy_hash[crypto_pwhash_STRBYTES];

    pthread_mutex_t mc_lock;
    struct core_mcache_slot mc[CORE_MCACHE_SLOTS];
};

/* Blocks until fewer than pw_max hashes run, then counts this one in.
 * Every core__pw_enter is matched by one core__pw_leave. */
void core__pw_enter(struct core *c);
void core__pw_leave(struct core *c);

/* Logs `what` (a short description with no client data) at error level and
 * returns CHAT_E_INTERNAL with a generic message in `err`. */
int core__internal(struct chat_err *err, const char *what);

/* Serializes `frame` (borrowed) once and publishes it.  `user_ids` is
 * borrowed for the call; scope BUS_TO_ALL ignores it.  A bus failure is
 * logged, never returned: the domain change is already committed, and
 * clients recover missed events with sync / GET. */
void core__publish(struct core *c, int scope, const char (*user_ids)[OID_SIZE], size_t n,
                   uint64_t skip_conn, json_t *frame);

/* The member ids of chat `chat_id`, from the member cache or the store.
 * When `member` is not NULL it must be among them, else CHAT_E_NOT_FOUND
 * (checked against the store, never only against a possibly stale cache
 * entry).  *ids is new (free()), *n its length.  Store errors pass through. */
int core__chat_members(struct core *c, const char *chat_id, const char *member,
                       char (**ids)[OID_SIZE], size_t *n, struct chat_err *err);

/* Drops chat `chat_id` from the member cache, and makes any fetch of that
 * slot already in flight discard its (possibly stale) result. */
void core__chat_members_invalidate(struct core *c, const char *chat_id);

/* A growable array of ids, for collecting the authors a page needs. */
struct core_ids {
    char (*v)[OID_SIZE];
    size_t n, cap;
};
/* Appends `id` (not checked for duplicates).  0 or CHAT_E_INTERNAL. */
int core__ids_push(struct core_ids *ids, const char *id);
void core__ids_cleanup(struct core_ids *ids);

#endif
