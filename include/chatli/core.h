/* core.h - chatli's domain services, shared by every transport.
 *
 * REST (http/) and the WebSocket gateway (ws/) both parse bytes into a jansson
 * object, authenticate, and call the functions below; core validates, talks
 * to the store and bus ports, and returns the contract's JSON shapes.  So one
 * action has one implementation: POST /api/chats/{id}/messages (through
 * messages_send_async_text) and the message.send frame (through
 * messages_send_async) both end in the same send path.
 *
 * Conventions:
 * - Return 0 or a negative CHAT_E_* and fill `err` (field set for
 *   CHAT_E_VALIDATION).  Core never knows HTTP statuses.
 * - `body` arguments are borrowed JSON values as the client sent them (core
 *   checks they are objects and checks every field's type); `*out` results
 *   are new references the caller json_decref()s; on failure *out is NULL.
 * - Query-string arguments arrive as raw strings (NULL when absent); core
 *   validates them (limit 1..100, cursors, afterSeq).
 * - Thread-safety: every function may run on any thread concurrently, but
 *   may block on the store: never call them on the WebSocket loop thread
 *   (messages_send_try excepted: it never blocks).
 *   messages_send_async's callback runs on the store's writer thread.
 *   There is no blocking send: REST suspends its MHD connection until the
 *   callback resumes it, and the gateway acks from the callback. */
#ifndef CHATLI_CORE_H
#define CHATLI_CORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "chatli/err.h"
#include "chatli/oid.h"

struct store;
struct bus;

struct core_config {
    int64_t token_ttl_s;               /* TOKEN_TTL_S, default 30 days */
    unsigned long long pwhash_opslimit;/* PWHASH_OPSLIMIT */
    size_t pwhash_memlimit;            /* PWHASH_MEMLIMIT, bytes */
    int pwhash_concurrency;            /* hashes allowed at once (bounded memory) */
    /* Scale-out (REDIS_URL): a cache shared by instances (borrowed, may be
     * NULL or have no value cache), where first feed pages are kept. */
    struct cache *shared;
};

/* Immutable after core_new, except for the internals behind `priv`. */
struct core {
    struct core_config cfg;
    struct store *store; /* borrowed: outlives the core */
    struct bus *bus;     /* borrowed, may be NULL (no live delivery) */
    struct core_priv *priv;
};

/* The authenticated caller.  `token_hash` identifies the session for logout. */
struct session {
    char user_id[OID_SIZE];
    uint8_t token_hash[32];
    int64_t expires_ms;   /* wall-clock ms (clock_now_ms) when the token stops
                             working; set by auth_check */
};

/* Raw pagination query parameters (NULL when absent). */
struct page_params {
    const char *limit;
    const char *before;
    const char *after_seq; /* messages only */
};

/* `store` and `bus` are borrowed and must outlive the core.  *out is new:
 * release with core_free.  Errors: CHAT_E_INTERNAL. */
int core_new(const struct core_config *cfg, struct store *store, struct bus *bus,
             struct core **out, struct chat_err *err);
void core_free(struct core *c);

struct cache;
struct bus_listener;
/* Core's bus listener, for main to pass to bus_listen: revocations and
 * cache invalidations published by OTHER instances drop the matching
 * entries of this process's session, Author, member and feed caches; a
 * gap (events possibly lost) voids every feed page, and the other caches'
 * entries expire within their TTL (2 s).  Its callbacks never block. */
void core_bus_listener(struct core *c, struct bus_listener *out);

/* ---- auth (core/auth.c) ---- */

/* POST /api/auth/register -> {"user": User+email, "token"}.  Hashes the
 * password with Argon2id under the concurrency bound. */
int auth_register(struct core *c, json_t *body, json_t **out, struct chat_err *err);
/* POST /api/auth/login -> {"user","token"}; CHAT_E_INVALID_CREDENTIALS for
 * an unknown login or a wrong password, after similar work. */
int auth_login(struct core *c, json_t *body, json_t **out, struct chat_err *err);
/* Revokes the caller's token. */
int auth_logout(struct core *c, const struct session *s, struct chat_err *err);
/* Drops the session of `token_hash` from this process's session cache, so
 * the next check of that token asks the store.  auth_logout calls it; a bus
 * that carries revocations between instances (the Redis issue) must call it
 * for each revocation from another instance, or that logout takes up to the
 * cache's TTL (2 s) to take effect here.  Never fails. */
void auth_forget_token(struct core *c, const uint8_t token_hash[32]);
/* Resolves a bearer token (the raw string from the header or query) into a
 * session.  CHAT_E_UNAUTHORIZED when malformed, unknown, expired or revoked. */
int auth_check(struct core *c, const char *token, struct session *out, struct chat_err *err);

/* ---- users (core/users.c) ---- */

int users_me(struct core *c, const struct session *s, json_t **out, struct chat_err *err);
int users_update_me(struct core *c, const struct session *s, json_t *body, json_t **out,
                    struct chat_err *err);
int users_get(struct core *c, const struct session *s, const char *id, json_t **out,
              struct chat_err *err);
/* GET /api/users?q= -> page of User. */
int users_search(struct core *c, const struct session *s, const char *q,
                 const struct page_params *pp, json_t **out, struct chat_err *err);

/* The most contacts users_contacts returns; a user with more gets the
 * first this many the store finds, and a warning is logged. */
#define USERS_CONTACTS_MAX 10000

/* The caller's contacts, for presence: the distinct ids of every other
 * user who shares at least one chat with the caller, in no particular
 * order, at most USERS_CONTACTS_MAX.  *ids is new (free()), NULL when *n
 * is 0.  Store errors pass through. */
int users_contacts(struct core *c, const struct session *s, char (**ids)[OID_SIZE], size_t *n,
                   struct chat_err *err);

/* ---- posts, likes, comments (core/posts.c) ---- */

/* Publishes post.new to everyone. */
int posts_create(struct core *c, const struct session *s, json_t *body, json_t **out,
                 struct chat_err *err);
/* `author` is the raw ?author= value or NULL. */
int posts_list(struct core *c, const struct session *s, const char *author,
               const struct page_params *pp, json_t **out, struct chat_err *err);
/* The same page as posts_list, as the compact JSON text a transport sends:
 * *text is new (NUL-terminated; free()), *len its length.  Served from the
 * feed page cache when no feed write happened since the page was built
 * (through this core; through another instance, up to 1 s may pass). */
int posts_list_text(struct core *c, const struct session *s, const char *author,
                    const struct page_params *pp, char **text, size_t *len, struct chat_err *err);
/* Invalidates every cached feed page of this process.  Core calls it after
 * each post, like, comment and profile write; a bus that carries such
 * events between instances (the Redis issue) should call it for each one
 * from another instance.  Never fails. */
void posts_feed_changed(struct core *c);
int posts_get(struct core *c, const struct session *s, const char *id, json_t **out,
              struct chat_err *err);
/* PATCH {"text"?,"imageUrl"?}: CHAT_E_FORBIDDEN unless the caller wrote the
 * post; the merged post follows the rules of posts_create.  An empty body
 * changes nothing (editedAt stays). */
int posts_update(struct core *c, const struct session *s, const char *id, json_t *body,
                 json_t **out, struct chat_err *err);
/* CHAT_E_FORBIDDEN unless the caller wrote the post. */
int posts_delete(struct core *c, const struct session *s, const char *id, struct chat_err *err);
/* PUT/DELETE /like -> {"likeCount","likedByMe"}. */
int posts_like(struct core *c, const struct session *s, const char *id, bool like,
               json_t **out, struct chat_err *err);
int comments_create(struct core *c, const struct session *s, const char *post_id, json_t *body,
                    json_t **out, struct chat_err *err);
int comments_list(struct core *c, const struct session *s, const char *post_id,
                  const struct page_params *pp, json_t **out, struct chat_err *err);

/* ---- chats and messages (core/chats.c, core/messages.c) ---- */

/* *created is false when an existing direct chat is returned (HTTP 200).
 * Publishes chat.new to every member when created. */
int chats_create(struct core *c, const struct session *s, json_t *body, json_t **out,
                 bool *created, struct chat_err *err);
int chats_list(struct core *c, const struct session *s, const struct page_params *pp,
               json_t **out, struct chat_err *err);
int chats_get(struct core *c, const struct session *s, const char *id, json_t **out,
              struct chat_err *err);
/* Publishes chat.new to the added user and chat.updated to the others. */
int chats_add_member(struct core *c, const struct session *s, const char *id, json_t *body,
                     json_t **out, struct chat_err *err);
/* PATCH {"name"} (1..64 after trimming): groups only (a direct chat:
 * CHAT_E_BAD_REQUEST), any member (others: CHAT_E_NOT_FOUND); publishes
 * chat.updated to every member. */
int chats_rename(struct core *c, const struct session *s, const char *id, json_t *body,
                 json_t **out, struct chat_err *err);
/* Publishes chat.removed to every connection of the user who left and
 * chat.updated to the remaining members. */
int chats_remove_member(struct core *c, const struct session *s, const char *id,
                        const char *user_id, struct chat_err *err);

/* GET messages: newest first with ?before, or oldest first with ?afterSeq. */
int messages_list(struct core *c, const struct session *s, const char *chat_id,
                  const struct page_params *pp, json_t **out, struct chat_err *err);

/* Completion of a send.  rc 0: `message` (borrowed for the call) is the
 * stored Message JSON and `created` is false when it was a clientId
 * duplicate.  Runs on the store's writer thread (or the calling thread when
 * validation fails before queueing): must not block. */
typedef void (*messages_send_cb)(void *arg, int rc, json_t *message, bool created,
                                 const struct chat_err *err);

/* Validates and queues a message for group commit.  On success (after the
 * commit) publishes message.new to every member with `origin_conn` skipped
 * (0 from REST), then calls `cb`.  `require_client_id` is true for the WS
 * frame (clientId 1..64 chars required).  Returns 0 when `cb` will be
 * called; a negative code (and no callback) when the request was rejected
 * before queueing. */
int messages_send_async(struct core *c, const struct session *s, const char *chat_id,
                        json_t *body, bool require_client_id, uint64_t origin_conn,
                        messages_send_cb cb, void *arg, struct chat_err *err);

/* Completion of messages_send_async_text: like messages_send_cb, but the
 * stored Message comes as its compact JSON text (`message`, `len`),
 * borrowed for the call; NULL and 0 when rc is not 0. */
typedef void (*messages_send_text_cb)(void *arg, int rc, const char *message, size_t len,
                                      bool created, const struct chat_err *err);

/* messages_send_async for a caller that sends the Message as text (REST):
 * core serializes it once for both the message.new event and `cb`, where
 * the other form costs the caller a second serialization. */
int messages_send_async_text(struct core *c, const struct session *s, const char *chat_id,
                             json_t *body, bool require_client_id, uint64_t origin_conn,
                             messages_send_text_cb cb, void *arg, struct chat_err *err);

/* messages_send_async_text for a thread that must never block (the
 * WebSocket loop): it runs only when the chat's members and the sender's
 * Author are in core's caches, so that nothing but validation, a cache read
 * and the store's non-blocking append queue is touched.  When they are not,
 * returns 0 with *deferred true, having done nothing (no callback): call
 * messages_send_async_text from a thread that may block.  Otherwise as
 * messages_send_async_text (*deferred false). */
int messages_send_try(struct core *c, const struct session *s, const char *chat_id, json_t *body,
                      bool require_client_id, uint64_t origin_conn, messages_send_text_cb cb,
                      void *arg, bool *deferred, struct chat_err *err);

/* Completion batches for the send callbacks above: `begin` and `end` run on
 * the store thread that runs the callbacks, before and after the callbacks
 * of one commit batch (store.h, completions hooks), so a caller can hand a
 * whole batch of answers to its own thread at once.  Set once, before the
 * first send; NULL for none. */
void messages_set_completion_hooks(struct core *c, void (*begin)(void), void (*end)(void));

/* One page of a catch-up (the WS sync frame).  Positions (issue 13): each
 * chat has one counter; a new message takes the next position as its seq,
 * an edit or deletion takes the next one as the message's pos. */
struct messages_sync_page {
    json_t *messages; /* new: array of Message, in position order, current state */
    json_t *frames;   /* new: the frame for each of them, in the same order:
                       * message.new for a message with seq > after_seq,
                       * else message.updated or message.deleted; each
                       * carries its position as a top-level "seq" */
    int64_t last_seq; /* position of the last of them; after_seq when none */
    bool more;        /* messages after last_seq exist */
};

/* Up to `limit` (1..100) messages of chat `chat_id` created or changed
 * after position `after_seq`, in position order (without changes: GET
 * messages?afterSeq= with typed arguments and results).
 * CHAT_E_NOT_FOUND when there is no such chat or the caller is not a
 * member; CHAT_E_VALIDATION (field "limit" or "afterSeq") for a limit or
 * after_seq that GET messages would refuse.  Release `out` with
 * messages_sync_page_cleanup (also after a failure). */
int messages_sync_page(struct core *c, const struct session *s, const char *chat_id,
                       int64_t after_seq, int limit, struct messages_sync_page *out,
                       struct chat_err *err);
void messages_sync_page_cleanup(struct messages_sync_page *p);

/* PATCH /api/chats/{id}/messages/{messageId} (issue 13): body {"text"}.
 * The sender only (CHAT_E_FORBIDDEN); a non-member, a malformed id, a
 * message of another chat, or a tombstone: CHAT_E_NOT_FOUND.  Commits the
 * edit at the chat's next position, publishes
 * {"type":"message.updated","seq":<position>,"message"} to every
 * connection of every member, and sets *out to the Message. */
int messages_edit(struct core *c, const struct session *s, const char *chat_id,
                  const char *message_id, json_t *body, json_t **out, struct chat_err *err);
/* DELETE of the same: leaves a tombstone and publishes
 * {"type":"message.deleted","chatId","messageId","seq":<position>}.
 * Deleting a tombstone again succeeds and changes nothing. */
int messages_delete(struct core *c, const struct session *s, const char *chat_id,
                    const char *message_id, struct chat_err *err);

/* POST /read and the WS read frame: body {"messageId"}.  When the mark
 * moves, publishes {"type":"read",...} to every member, skipping
 * `origin_conn`. */
int chats_read(struct core *c, const struct session *s, const char *chat_id, json_t *body,
               uint64_t origin_conn, struct chat_err *err);

/* ---- typing (core/members.c) ---- */

/* The typing frame: tells the other members of chat `chat_id` that the
 * caller is typing, publishing {"type":"typing","chatId","userId"} to them
 * ("type" first: transports recognise this ephemeral frame by it).
 * CHAT_E_NOT_FOUND when there is no such chat or the caller is not a
 * member, like chats_get; the membership comes from the member cache, and
 * a cached list that lacks the caller is checked against the store.  Store
 * errors pass through; a bus failure is logged, not returned. */
int chats_typing(struct core *c, const struct session *s, const char *chat_id,
                 struct chat_err *err);

#endif
