/* core_internal.h - what core's .c files share and no transport may see.
 *
 * The private state behind `struct core`: the Argon2id concurrency gate, the
 * dummy hash that makes an unknown login cost as much as a wrong password,
 * the short-lived chat member cache that spares the message path a full
 * store_get_chat per message, the session and author caches that spare
 * every request its token lookup and every page its users query, and the
 * feed page cache.  All four caches are slot caches (slotcache.h).  Plus
 * small helpers every service uses (common.c): logging an internal
 * failure, publishing a frame on the bus, and collecting ids. */
#ifndef CHATLI_CORE_CORE_INTERNAL_H
#define CHATLI_CORE_CORE_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chatli/core.h"
#include "slotcache.h"

/* Member cache geometry (core/members.c).  Direct-mapped: a chat id hashes
 * to one slot and a collision simply evicts, so memory is bounded (slots x
 * members) with no sweeping.  The TTL bounds staleness only for changes
 * made through another instance; changes made through this core invalidate
 * the slot at once.  Sharded like the others: every message send and
 * typing frame looks a chat up here. */
#define CORE_MCACHE_SLOTS 16384
#define CORE_MCACHE_SHARDS 16
#define CORE_MCACHE_TTL_MS 2000

/* Session cache geometry (core/session_cache.c): direct-mapped, sharded.
 * The TTL bounds how long a logout made through ANOTHER instance goes
 * unnoticed here; logouts through this core are forgotten at once. */
#define CORE_SCACHE_SLOTS 4096
#define CORE_SCACHE_SHARDS 16
#define CORE_SCACHE_TTL_MS 2000

/* Author cache geometry (core/author_cache.c), the same scheme.  The TTL
 * bounds how long a profile edited through ANOTHER instance shows its old
 * name here; edits through this core are forgotten at once. */
#define CORE_ACACHE_SLOTS 16384
#define CORE_ACACHE_SHARDS 16
#define CORE_ACACHE_TTL_MS 2000

/* The member and Author TTL when no other instance shares the store (the
 * bus is not remote): every change then goes through this core, which
 * forgets the entry at once, so the TTL is only a backstop and a long one
 * keeps message.send on the gateway's fast path (messages_send_try): at
 * 2 s a chat sending 10 messages a second fell back to a worker and a
 * store read for one send in 20, and for one in 5 in the issue 9 bench
 * (bench/ws/callgrind.sh, docs/performance.md).  With a remote bus the 2 s
 * TTLs above bound what a lost invalidation costs. */
#define CORE_CACHE_ALONE_TTL_MS 60000

struct user;

/* Feed page cache geometry (core/feed_cache.c): direct-mapped, sharded,
 * at most SLOTS x MAX_BYTES of text.  The TTL bounds how long a write made
 * through ANOTHER instance goes unseen; writes through this core invalidate
 * at once (the feed version). */
#define CORE_FCACHE_SLOTS 256
#define CORE_FCACHE_SHARDS 16
#define CORE_FCACHE_TTL_MS 1000
#define CORE_FCACHE_MAX_BYTES (64 * 1024)
#define CORE_FCACHE_KEY_MAX 128
/* First feed pages in the shared cache (Redis) live this long under their
 * shared version.  A page is never served after a write that bumped the
 * version; the TTL only matters when a writer could not reach Redis to
 * bump it, and then bounds how long other instances may serve the older
 * page. */
#define CORE_FSHARED_TTL_MS 5000
/* Sessions in the shared cache (Redis) live at most this long (less when
 * the session expires sooner), and a revocation mark this long.  The TTL
 * only matters when a logout could not reach Redis to mark the session:
 * it then bounds how long other instances may still accept the token
 * (their own 2 s cache aside). */
#define CORE_SSHARED_TTL_MS 60000

/* Shared by every thread that calls core.
 * - pw_lock guards pw_active; pw_cond is signalled when a hash slot frees.
 * - dummy_hash is written once in core_new and read-only afterwards.
 * - the four caches lock inside (slotcache.c). */
struct core_priv {
    pthread_mutex_t pw_lock;
    pthread_cond_t pw_cond;
    int pw_active;      /* Argon2id computations running now */
    int pw_max;         /* cfg.pwhash_concurrency, at least 1 */
    char dummy_hash[crypto_pwhash_STRBYTES];

    struct slotcache members; /* chat id -> member ids (core/members.c) */
    struct slotcache sessions; /* token hash -> user, expiry (core/session_cache.c) */
    struct slotcache authors;  /* user id -> Author fields (core/author_cache.c) */
    struct slotcache feed;     /* feed page key -> page text (core/feed_cache.c) */
    _Atomic uint64_t feed_version; /* bumped after every write that can change a feed page */
};

/* ---- the Argon2id gate (core/core.c) ---- */

/* Blocks until fewer than pw_max hashes run, then counts this one in.
 * Every core__pw_enter is matched by one core__pw_leave. */
void core__pw_enter(struct core *c);
void core__pw_leave(struct core *c);

/* ---- helpers (core/common.c) ---- */

/* Logs `what` (a short description with no client data) at error level and
 * returns CHAT_E_INTERNAL with a generic message in `err`. */
int core__internal(struct chat_err *err, const char *what);

/* Serializes `frame` (borrowed) once and publishes it.  `user_ids` is
 * borrowed for the call; scope BUS_TO_ALL ignores it.  A bus failure is
 * logged, never returned: the domain change is already committed, and
 * clients recover missed events with sync / GET. */
void core__publish(struct core *c, int scope, const char (*user_ids)[OID_SIZE], size_t n,
                   uint64_t skip_conn, json_t *frame);
/* The same with the frame already serialized (`frame`, `len` borrowed). */
/* Tells the other instances (over the bus) to drop the cache entries of
 * `inval` (enum bus_inval) for `key` (a user or chat id; NULL for the
 * feed).  Errors are logged and swallowed, as for frames: the caches' TTL
 * bounds what a lost invalidation costs. */
void core__publish_inval(struct core *c, int inval, const char *key);
void core__publish_text(struct core *c, int scope, const char (*user_ids)[OID_SIZE], size_t n,
                        uint64_t skip_conn, const char *frame, size_t len);

/* ---- member cache (core/members.c) ---- */

/* Creates the table with the member cache's geometry.  0 or CHAT_E_INTERNAL;
 * release with slotcache_cleanup.  The same holds for the session, author
 * and feed caches' _init below.  `alone`: no other instance shares the
 * store, so entries live CORE_CACHE_ALONE_TTL_MS (the Author cache too). */
int core__member_cache_init(struct slotcache *sc, bool alone);

/* The member ids of chat `chat_id`, from the member cache or the store.
 * When `member` is not NULL it must be among them, else CHAT_E_NOT_FOUND
 * (checked against the store, never only against a possibly stale cache
 * entry).  *ids is new (free()), *n its length.  Store errors pass through. */
int core__chat_members(struct core *c, const char *chat_id, const char *member,
                       char (**ids)[OID_SIZE], size_t *n, struct chat_err *err);

/* Drops chat `chat_id` from the member cache, and makes any fetch of that
 * slot already in flight discard its (possibly stale) result. */
/* core__chat_members from the member cache alone, for a caller that must
 * not block: true with *ids (new, free()) and *n when the chat's fresh entry
 * lists `member`; false, with nothing allocated, when only the store can
 * answer. */
bool core__chat_members_cached(struct core *c, const char *chat_id, const char *member,
                               char (**ids)[OID_SIZE], size_t *n);
void core__chat_members_invalidate(struct core *c, const char *chat_id);
/* The same in this process only (an invalidation from another instance). */
void core__chat_members_forget(struct core *c, const char *chat_id);

/* ---- session cache (core/session_cache.c) ----
 * Threads: every function may run on any thread concurrently. */

int core__session_cache_init(struct slotcache *sc);
/* True with user_id and expires_at filled when `hash` is cached and fresh
 * (its expiry is the caller's to check).  Always sets *epoch, to hand to
 * core__session_cache_put after asking the store on a miss. */
bool core__session_cache_get(struct slotcache *sc, const uint8_t hash[32],
                             char user_id[OID_SIZE], int64_t *expires_at, uint64_t *epoch);
/* Caches a session the store just confirmed, unless a forget of its slot
 * happened since the core__session_cache_get that gave `epoch`. */
void core__session_cache_put(struct slotcache *sc, const uint8_t hash[32],
                             const char *user_id, int64_t expires_at, uint64_t epoch);
/* Drops `hash` and voids lookups of its slot already in flight. */
void core__session_cache_forget(struct slotcache *sc, const uint8_t hash[32]);
/* The shared level (cfg.shared with a session cache, i.e. REDIS_URL):
 * true with user_id and expires_at filled when another instance (or this
 * one) confirmed the session lately and nobody revoked it since.  False on
 * a miss or when Redis cannot answer (fast): then ask the store. */
bool core__session_shared_get(struct core *c, const uint8_t hash[32], char user_id[OID_SIZE],
                              int64_t *expires_at);
/* Shares a session the store just confirmed (not over a revocation). */
void core__session_shared_put(struct core *c, const uint8_t hash[32], const char *user_id,
                              int64_t expires_at);
/* Revokes `hash` in every cache: this process's (at once, voiding lookups
 * in flight) and the shared one (a revocation mark, so no instance finds
 * it there again).  Other instances' own caches are cleared by the
 * revocation event the caller publishes.  Every path that ends a session
 * (logout, and any that ends a user's sessions) calls this per token. */
void core__session_revoke(struct core *c, const uint8_t hash[32]);

/* ---- author cache (core/author_cache.c) ----
 * Threads: every function may run on any thread concurrently. */

int core__author_cache_init(struct slotcache *sc, bool alone);
/* A new Author object for `id` when it is cached and fresh, else NULL.
 * Always sets *epoch, to hand to core__author_cache_put after asking the
 * store on a miss. */
json_t *core__author_cache_get(struct slotcache *ac, const char *id, uint64_t *epoch);
/* Caches the Author fields of `u` (borrowed; copied), unless a forget of
 * its slot happened since the core__author_cache_get that gave `epoch`. */
void core__author_cache_put(struct slotcache *ac, const struct user *u, uint64_t epoch);
/* Drops `id` and voids lookups of its slot already in flight. */
void core__author_cache_forget(struct slotcache *ac, const char *id);
/* After a profile write: drops `id` here and on every other instance. */
void core__author_changed(struct core *c, const char *id);

struct views_authors;

/* Loads the Author objects of `ids` (duplicates allowed; they are collapsed
 * first) from the author cache plus at most one store_get_users call for
 * the ids it lacks.  Ids that name no user are simply absent, and views
 * then embed null.  Store errors pass through.  Release `out` with
 * views_authors_cleanup (also after a failure). */
int core__authors_load(struct core *c, const char (*ids)[OID_SIZE], size_t n,
                       struct views_authors *out, struct chat_err *err);

/* The Author object of user `id` (new), through the author cache.
 * CHAT_E_NOT_FOUND when there is no such user; store errors pass through. */
int core__author(struct core *c, const char *id, json_t **out, struct chat_err *err);

/* ---- feed page cache (core/feed_cache.c) ----
 * Threads: every function may run on any thread concurrently. */

int core__feed_cache_init(struct slotcache *sc);
/* The current feed version: read it BEFORE the store reads of a page. */
uint64_t core__feed_version(struct core *c);
/* Voids every cached feed page of this process only (posts_feed_changed
 * also tells the other instances). */
void core__feed_bump(struct core *c);
/* True with *text (new, NUL-terminated, free()) and *len when the page of
 * `key` was built under `version` and is fresh.  False on a miss or when
 * out of memory. */
bool core__feed_cache_get(struct slotcache *fc, const char *key, size_t key_len,
                          uint64_t version, char **text, size_t *len);
/* Keeps a copy of `text` (borrowed) as the page of `key` built under
 * `version`.  Oversized keys or pages are not kept. */
void core__feed_cache_put(struct slotcache *fc, const char *key, size_t key_len,
                          uint64_t version, const char *text, size_t len);
/* The shared level (cfg.shared with a value cache), for first pages only.
 * Reads the shared feed version into *sv (-1 when there is no shared cache
 * or it cannot answer) and then the page of `key` under it: true on a hit,
 * with *text new (free()) and *len.  Call it before the store reads of a
 * page, after core__feed_version. */
bool core__feed_shared_get(struct core *c, const char *key, int64_t *sv, char **text,
                           size_t *len);
/* Stores the page built after core__feed_shared_get gave `sv` (nothing
 * when sv is -1 or the page is oversized). */
void core__feed_shared_put(struct core *c, const char *key, int64_t sv, const char *text,
                           size_t len);

/* A growable array of ids, for collecting the authors a page needs
 * (core/common.c). */
struct core_ids {
    char (*v)[OID_SIZE];
    size_t n, cap;
};
/* Appends `id` (not checked for duplicates).  0 or CHAT_E_INTERNAL. */
int core__ids_push(struct core_ids *ids, const char *id);
void core__ids_cleanup(struct core_ids *ids);

/* ---- account lifecycle (issue 13) ---- */

/* After account deletion took `user_id` out of group `chat_id` (committed
 * by the store): drops the chat's cached members and announces it as a
 * member leaving does (chat.removed to the user, chat.updated to the
 * others).  Never fails (core/chats.c). */
void core__chats_member_gone(struct core *c, const char *chat_id, const char *user_id);

/* Deleted accounts keep their row, anonymized, so their messages and
 * direct chats keep a sender: this names them.  DELETED_USERNAME_PREFIX
 * is refused at registration, and a deleted row's password hash is empty
 * (no password verifies against it). */
#define DELETED_USERNAME_PREFIX "deleted_"
#define DELETED_DISPLAY_NAME "Deleted user"
#define CORE_USER_DELETED(u) (!(u)->pwhash || (u)->pwhash[0] == '\0')

#endif
