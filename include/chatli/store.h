/* store.h - the storage port: chatli's domain operations, whatever the engine.
 *
 * Core reaches storage only through this header.  An adapter (store_sqlite*.c,
 * store_mongo*.c) embeds `struct store` as its first member and fills one
 * static `struct store_ops`.  The port speaks the domain - users, sessions,
 * posts, chats, messages, page keys - never SQL or BSON.
 *
 * Conventions for every operation:
 * - Returns 0 or a negative CHAT_E_* code and fills `err` (may be NULL).
 *   A backend failure is CHAT_E_UNAVAILABLE (the engine is down or timed out)
 *   or CHAT_E_INTERNAL; the driver's own text goes to the log, never `err`.
 * - Ids are 24-hex ObjectId strings minted by core (util/oid.h); adapters
 *   store what they are given.  Times are int64 milliseconds since the epoch.
 * - Output records are caller storage filled by the adapter; their strings
 *   are new (malloc'd) and released with the matching *_cleanup() below.
 *   On failure an output is left zeroed (nothing to free).
 * - Thread-safety: every operation may be called from any thread
 *   concurrently (MHD workers, WS workers).  The adapter serialises writes
 *   internally.  append_message completes on the adapter's own thread.
 * - "Committed" means durable: an operation that returns success (or calls
 *   back with success) has committed its write.
 *
 * Ordering and page keys: lists are newest first by (created_at, id)
 * descending (posts, comments), (updated_at, id) descending (chats), seq
 * descending (messages), or username_lower ascending (user search).  A page
 * key names the last item of the previous page; the next page holds items
 * strictly after it in that order, so equal timestamps never repeat or skip
 * an item.  Core encodes page keys into opaque cursors. */
#ifndef CHATLI_STORE_H
#define CHATLI_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chatli/err.h"
#include "chatli/oid.h"

/* ---- domain records ---------------------------------------------------- */

struct user {
    char id[OID_SIZE];
    char *username;       /* as registered (case kept) */
    char *email;          /* lower-cased */
    char *display_name;
    char *bio;            /* "" when unset, never NULL in output */
    char *avatar_url;     /* NULL when unset */
    char *pwhash;         /* crypto_pwhash_str output; never leaves the server */
    int64_t created_at;
};

struct post {
    char id[OID_SIZE];
    char author_id[OID_SIZE];
    char *text;           /* may be "" when image_url is set */
    char *image_url;      /* NULL when none */
    int64_t like_count;
    int64_t comment_count;
    bool liked_by_me;     /* for the viewer passed to the read */
    int64_t created_at;
    int64_t edited_at;    /* 0 until edited */
};

struct comment {
    char id[OID_SIZE];
    char post_id[OID_SIZE];
    char author_id[OID_SIZE];
    char *text;
    int64_t created_at;
};

struct message {
    char id[OID_SIZE];
    char chat_id[OID_SIZE];
    int64_t seq;          /* assigned by the store at commit; 0 in input */
    char sender_id[OID_SIZE];
    char *text;           /* may be "" when attachment_url is set */
    char *attachment_url; /* NULL when none */
    char *client_id;      /* NULL when none */
    int64_t created_at;
    /* Issue 13: edits and deletions.  Every chat has one position counter:
     * a new message takes the next position as its seq, and each edit or
     * deletion takes the next one too, stored here as `pos` (the message
     * keeps its seq).  So pos is seq until the message changes, then the
     * position of its latest change. */
    int64_t pos;
    int64_t edited_at;    /* 0 until edited */
    bool deleted;         /* a tombstone: text "" and attachment_url NULL */
};

enum chat_type { CHAT_DIRECT = 0, CHAT_GROUP = 1 };

struct chat {
    char id[OID_SIZE];
    int type;                    /* enum chat_type */
    char *name;                  /* NULL for direct chats and unnamed groups */
    char (*member_ids)[OID_SIZE];/* new array of n_members ids, in join order */
    size_t n_members;
    int64_t last_seq;            /* highest committed seq, 0 when empty */
    struct message *last_message;/* new, NULL when empty */
    int64_t unread_count;        /* for the viewer: messages from others after
                                    the viewer's read mark */
    int64_t created_at;
    int64_t updated_at;          /* last message time, or creation */
};

struct user_list { struct user *items; size_t n; };
struct post_list { struct post *items; size_t n; };
struct comment_list { struct comment *items; size_t n; };
struct chat_list { struct chat *items; size_t n; };
struct message_list { struct message *items; size_t n; };

/* Position after which the next page starts (see the header comment). */
struct page_key {
    int64_t ts;
    char id[OID_SIZE];
};

void store_user_cleanup(struct user *u);
void store_post_cleanup(struct post *p);
void store_comment_cleanup(struct comment *c);
void store_message_cleanup(struct message *m);
void store_chat_cleanup(struct chat *c);
void store_user_list_cleanup(struct user_list *l);
void store_post_list_cleanup(struct post_list *l);
void store_comment_list_cleanup(struct comment_list *l);
void store_chat_list_cleanup(struct chat_list *l);
void store_message_list_cleanup(struct message_list *l);

/* Deep copy of `src` into `dst` (new strings).  Returns 0 or CHAT_E_INTERNAL. */
int store_message_copy(struct message *dst, const struct message *src);

/* ---- the port ------------------------------------------------------------ */

struct store;

/* Called once per append_message, on the adapter's writer thread, after the
 * commit (or the failure).  `m` is borrowed for the call only: copy what you
 * keep.  `existed` is true when a message with the same (chat, sender,
 * client_id) was already stored and `m` is that first message.  The callback
 * must not block: hand work to another thread if needed. */
typedef void (*store_append_cb)(void *arg, int rc, const struct message *m,
                                bool existed, const struct chat_err *err);

struct store_ops {
    /* Flushes pending appends and releases everything. */
    void (*close)(struct store *st);
    /* Cheap liveness check for /readyz: 0 or CHAT_E_UNAVAILABLE. */
    int (*ping)(struct store *st, struct chat_err *err);

    /* -- users -- */
    /* Inserts `u` (all fields set by core).  CHAT_E_EMAIL_TAKEN when the
     * email exists, CHAT_E_USERNAME_TAKEN when the username exists ignoring
     * ASCII case.  Email is checked first. */
    int (*create_user)(struct store *st, const struct user *u, struct chat_err *err);
    /* CHAT_E_NOT_FOUND when absent. */
    int (*get_user)(struct store *st, const char *id, struct user *out, struct chat_err *err);
    /* Finds the user whose email equals `login` or whose lower-cased username
     * equals `login` (core lower-cases it).  CHAT_E_NOT_FOUND when none. */
    int (*find_user_by_login)(struct store *st, const char *login, struct user *out,
                              struct chat_err *err);
    /* The users among `ids` that exist, in any order (absent ids are skipped). */
    int (*get_users)(struct store *st, const char (*ids)[OID_SIZE], size_t n,
                     struct user_list *out, struct chat_err *err);
    /* Overwrites display_name, bio and avatar_url of user `u->id`.
     * CHAT_E_NOT_FOUND when absent. */
    int (*update_user)(struct store *st, const struct user *u, struct chat_err *err);
    /* Overwrites the password hash of user `id` with `pwhash` (a
     * crypto_pwhash_str string, borrowed for the call): login rehashes a
     * password whose stored parameters are weaker than the configured ones.
     * CHAT_E_NOT_FOUND when absent.  Any thread. */
    int (*update_user_pwhash)(struct store *st, const char *id, const char *pwhash,
                              struct chat_err *err);
    /* Users whose lower-cased username starts with `prefix` (lower-cased by
     * core), ascending by lower-cased username, strictly after `after`
     * (a lower-cased username, NULL for the first page), at most `limit`. */
    int (*search_users)(struct store *st, const char *prefix, const char *after,
                        int limit, struct user_list *out, struct chat_err *err);

    /* -- sessions (bearer tokens, stored only as their 32-byte hash) -- */
    int (*create_session)(struct store *st, const uint8_t hash[32], const char *user_id,
                          int64_t expires_at, struct chat_err *err);
    /* CHAT_E_NOT_FOUND when absent; expiry is checked by core. */
    int (*get_session)(struct store *st, const uint8_t hash[32], char user_id[OID_SIZE],
                       int64_t *expires_at, struct chat_err *err);
    /* Removes the session; absent is not an error. */
    int (*delete_session)(struct store *st, const uint8_t hash[32], struct chat_err *err);

    /* -- posts, likes, comments -- */
    int (*create_post)(struct store *st, const struct post *p, struct chat_err *err);
    /* `viewer_id` decides liked_by_me.  CHAT_E_NOT_FOUND when absent. */
    int (*get_post)(struct store *st, const char *id, const char *viewer_id,
                    struct post *out, struct chat_err *err);
    /* Newest first; `author_id` NULL for all; `before` NULL for the first page. */
    int (*list_posts)(struct store *st, const char *author_id, const char *viewer_id,
                      const struct page_key *before, int limit, struct post_list *out,
                      struct chat_err *err);
    /* Overwrites text, image_url and edited_at of post `p->id` (the other
     * fields are ignored).  CHAT_E_NOT_FOUND when absent. */
    int (*update_post)(struct store *st, const struct post *p, struct chat_err *err);
    /* Deletes the post with its likes and comments.  CHAT_E_NOT_FOUND when absent. */
    int (*delete_post)(struct store *st, const char *id, struct chat_err *err);
    /* Idempotently sets or clears `user_id`'s like; returns the new count.
     * CHAT_E_NOT_FOUND when the post is absent. */
    int (*set_like)(struct store *st, const char *post_id, const char *user_id, bool liked,
                    int64_t *like_count, struct chat_err *err);
    /* Inserts a comment and bumps the post's count.  CHAT_E_NOT_FOUND when
     * the post is absent. */
    int (*create_comment)(struct store *st, const struct comment *c, struct chat_err *err);
    /* Newest first. */
    int (*list_comments)(struct store *st, const char *post_id, const struct page_key *before,
                         int limit, struct comment_list *out, struct chat_err *err);

    /* -- chats -- */
    /* Inserts `c` (id, type, name, member_ids, created_at = updated_at set by
     * core).  For a direct chat (exactly two members) the pair is unique: when
     * one exists already, fills `out` with it (as get_chat for `c->member_ids[0]`)
     * and sets *existed; otherwise fills `out` with the new chat. */
    int (*create_chat)(struct store *st, const struct chat *c, struct chat *out,
                       bool *existed, struct chat_err *err);
    /* The chat with members, last message, last_seq and the unread count of
     * `viewer_id`.  CHAT_E_NOT_FOUND when absent or, with `viewer_id` not
     * NULL, when the viewer is not a member. */
    int (*get_chat)(struct store *st, const char *id, const char *viewer_id,
                    struct chat *out, struct chat_err *err);
    /* `user_id`'s chats, most recently active first (updated_at, id desc). */
    int (*list_chats)(struct store *st, const char *user_id, const struct page_key *before,
                      int limit, struct chat_list *out, struct chat_err *err);
    /* 0 when `user_id` belongs to chat `chat_id`, else CHAT_E_NOT_FOUND. */
    int (*is_member)(struct store *st, const char *chat_id, const char *user_id,
                     struct chat_err *err);
    /* Adds a member; *added is false when it was one already.
     * CHAT_E_NOT_FOUND when the chat is absent. */
    int (*add_member)(struct store *st, const char *chat_id, const char *user_id,
                      bool *added, struct chat_err *err);
    /* Sets the name of group `chat_id` (`name` borrowed).  CHAT_E_NOT_FOUND
     * when no group has that id (a direct chat is never renamed). */
    int (*rename_chat)(struct store *st, const char *chat_id, const char *name,
                       struct chat_err *err);
    /* Removes a member (and its read mark); *removed false when it was none. */
    int (*remove_member)(struct store *st, const char *chat_id, const char *user_id,
                         bool *removed, struct chat_err *err);
    /* `user_id`'s contacts: the distinct ids of every other user who shares
     * at least one chat with it, in no particular order, at most `max`;
     * *truncated tells whether more exist.  *out is new (free()), NULL when
     * *n_out is 0.  An unknown user has no contacts (0, not NOT_FOUND). */
    int (*list_contacts)(struct store *st, const char *user_id, size_t max,
                         char (**out)[OID_SIZE], size_t *n_out, bool *truncated,
                         struct chat_err *err);

    /* -- messages -- */
    /* Queues `m` (id, chat_id, sender_id, text, attachment_url, client_id,
     * created_at set; seq 0) for group commit and returns at once.  The
     * writer checks that the sender is a member (else CHAT_E_NOT_FOUND),
     * dedupes on (chat_id, sender_id, client_id), assigns the chat's next
     * position as seq (and pos), updates the chat's last_seq and
     * updated_at, commits, then calls `cb`.  `m` is copied before return, and the call never blocks (it
     * queues for the adapter's writer), so an event loop may make it.  Returns CHAT_E_UNAVAILABLE without
     * calling `cb` if the store is closing; otherwise `cb` runs exactly once. */
    int (*append_message)(struct store *st, const struct message *m, store_append_cb cb,
                          void *arg);
    /* Newest first: seq < before_seq (0 for the first page). */
    int (*list_messages)(struct store *st, const char *chat_id, int64_t before_seq,
                         int limit, struct message_list *out, struct chat_err *err);
    /* Oldest first: seq > after_seq. */
    int (*list_messages_after)(struct store *st, const char *chat_id, int64_t after_seq,
                               int limit, struct message_list *out, struct chat_err *err);
    /* Moves `user_id`'s read mark in `chat_id` to message `message_id`, never
     * backwards.  CHAT_E_NOT_FOUND when the message is not in that chat.
     * *moved tells whether the mark advanced. */
    int (*set_read)(struct store *st, const char *chat_id, const char *user_id,
                    const char *message_id, bool *moved, struct chat_err *err);

    /* -- message edits and deletions (issue 13) -- */
    /* Message `message_id` of chat `chat_id` in its current state.
     * CHAT_E_NOT_FOUND when no such message is in that chat. */
    int (*get_message)(struct store *st, const char *chat_id, const char *message_id,
                       struct message *out, struct chat_err *err);
    /* Edits (text not NULL: the new text, borrowed) or deletes (text NULL:
     * text becomes "", attachment_url NULL, deleted true) message
     * `message_id` of chat `chat_id`, taking the chat's next position as
     * the message's pos, with edited_at = `at` for an edit; committed on
     * return.  A tombstone is never changed again: an edit of one is
     * CHAT_E_NOT_FOUND, a deletion of one succeeds with *changed false
     * (and `out` the tombstone).  CHAT_E_NOT_FOUND when no such message is
     * in that chat.  Authorship is core's to check.  `out` gets the
     * message as stored after the change. */
    int (*change_message)(struct store *st, const char *chat_id, const char *message_id,
                          const char *text, int64_t at, struct message *out, bool *changed,
                          struct chat_err *err);
    /* Catch-up in position order: the messages of chat `chat_id` with
     * pos > `after_pos` (created or changed after that position), in their
     * current state, ascending by pos, at most `limit`. */
    int (*list_changes_after)(struct store *st, const char *chat_id, int64_t after_pos,
                              int limit, struct message_list *out, struct chat_err *err);
};

/* Completion batches.  An adapter runs the append callbacks of one commit
 * between completions_begin and completions_end, on the thread that runs
 * them; a consumer that hands each completion to another thread (the
 * WebSocket loop) can then hold them and hand the whole batch over with one
 * wake-up at the end.  Both hooks take no argument (their state is the
 * calling thread's), are set once before the store's first append
 * (store_set_completion_hooks) and never change afterwards. */
typedef void (*store_completions_hook)(void);

struct store {
    const struct store_ops *ops;
    const char *name; /* "sqlite", "mongodb": for /readyz, metrics and logs */
    store_completions_hook completions_begin, completions_end; /* NULL: none */
};

static inline void store_set_completion_hooks(struct store *st, store_completions_hook begin,
                                              store_completions_hook end)
{ st->completions_begin = begin; st->completions_end = end; }
/* For adapters, around each batch's callbacks. */
static inline void store__completions_begin(struct store *st)
{ if (st->completions_begin) st->completions_begin(); }
static inline void store__completions_end(struct store *st)
{ if (st->completions_end) st->completions_end(); }

/* Records the latency of one store operation (util/metrics); the wrappers
 * below call it so every adapter is measured the same way. */
void store__observe(const char *op, int64_t start_ns);

#include "chatli/clock.h"

#define STORE__CALL(op, ...)                                                   \
    do {                                                                       \
        int64_t t0__ = clock_mono_ns();                                        \
        int rc__ = st->ops->op(st, __VA_ARGS__);                               \
        store__observe(#op, t0__);                                             \
        return rc__;                                                           \
    } while (0)

static inline void store_close(struct store *st) { if (st) st->ops->close(st); }
static inline int store_ping(struct store *st, struct chat_err *err) { STORE__CALL(ping, err); }
static inline int store_create_user(struct store *st, const struct user *u, struct chat_err *err)
{ STORE__CALL(create_user, u, err); }
static inline int store_get_user(struct store *st, const char *id, struct user *out, struct chat_err *err)
{ STORE__CALL(get_user, id, out, err); }
static inline int store_find_user_by_login(struct store *st, const char *login, struct user *out,
                                           struct chat_err *err)
{ STORE__CALL(find_user_by_login, login, out, err); }
static inline int store_get_users(struct store *st, const char (*ids)[OID_SIZE], size_t n,
                                  struct user_list *out, struct chat_err *err)
{ STORE__CALL(get_users, ids, n, out, err); }
static inline int store_update_user(struct store *st, const struct user *u, struct chat_err *err)
{ STORE__CALL(update_user, u, err); }
static inline int store_update_user_pwhash(struct store *st, const char *id, const char *pwhash,
                                           struct chat_err *err)
{ STORE__CALL(update_user_pwhash, id, pwhash, err); }
static inline int store_search_users(struct store *st, const char *prefix, const char *after, int limit,
                                     struct user_list *out, struct chat_err *err)
{ STORE__CALL(search_users, prefix, after, limit, out, err); }
static inline int store_create_session(struct store *st, const uint8_t hash[32], const char *user_id,
                                       int64_t expires_at, struct chat_err *err)
{ STORE__CALL(create_session, hash, user_id, expires_at, err); }
static inline int store_get_session(struct store *st, const uint8_t hash[32], char user_id[OID_SIZE],
                                    int64_t *expires_at, struct chat_err *err)
{ STORE__CALL(get_session, hash, user_id, expires_at, err); }
static inline int store_delete_session(struct store *st, const uint8_t hash[32], struct chat_err *err)
{ STORE__CALL(delete_session, hash, err); }
static inline int store_create_post(struct store *st, const struct post *p, struct chat_err *err)
{ STORE__CALL(create_post, p, err); }
static inline int store_get_post(struct store *st, const char *id, const char *viewer_id,
                                 struct post *out, struct chat_err *err)
{ STORE__CALL(get_post, id, viewer_id, out, err); }
static inline int store_list_posts(struct store *st, const char *author_id, const char *viewer_id,
                                   const struct page_key *before, int limit, struct post_list *out,
                                   struct chat_err *err)
{ STORE__CALL(list_posts, author_id, viewer_id, before, limit, out, err); }
static inline int store_update_post(struct store *st, const struct post *p, struct chat_err *err)
{ STORE__CALL(update_post, p, err); }
static inline int store_delete_post(struct store *st, const char *id, struct chat_err *err)
{ STORE__CALL(delete_post, id, err); }
static inline int store_set_like(struct store *st, const char *post_id, const char *user_id, bool liked,
                                 int64_t *like_count, struct chat_err *err)
{ STORE__CALL(set_like, post_id, user_id, liked, like_count, err); }
static inline int store_create_comment(struct store *st, const struct comment *c, struct chat_err *err)
{ STORE__CALL(create_comment, c, err); }
static inline int store_list_comments(struct store *st, const char *post_id, const struct page_key *before,
                                      int limit, struct comment_list *out, struct chat_err *err)
{ STORE__CALL(list_comments, post_id, before, limit, out, err); }
static inline int store_create_chat(struct store *st, const struct chat *c, struct chat *out,
                                    bool *existed, struct chat_err *err)
{ STORE__CALL(create_chat, c, out, existed, err); }
static inline int store_get_chat(struct store *st, const char *id, const char *viewer_id,
                                 struct chat *out, struct chat_err *err)
{ STORE__CALL(get_chat, id, viewer_id, out, err); }
static inline int store_list_chats(struct store *st, const char *user_id, const struct page_key *before,
                                   int limit, struct chat_list *out, struct chat_err *err)
{ STORE__CALL(list_chats, user_id, before, limit, out, err); }
static inline int store_is_member(struct store *st, const char *chat_id, const char *user_id,
                                  struct chat_err *err)
{ STORE__CALL(is_member, chat_id, user_id, err); }
static inline int store_add_member(struct store *st, const char *chat_id, const char *user_id,
                                   bool *added, struct chat_err *err)
{ STORE__CALL(add_member, chat_id, user_id, added, err); }
static inline int store_rename_chat(struct store *st, const char *chat_id, const char *name,
                                    struct chat_err *err)
{ STORE__CALL(rename_chat, chat_id, name, err); }
static inline int store_remove_member(struct store *st, const char *chat_id, const char *user_id,
                                      bool *removed, struct chat_err *err)
{ STORE__CALL(remove_member, chat_id, user_id, removed, err); }
static inline int store_list_contacts(struct store *st, const char *user_id, size_t max,
                                      char (**out)[OID_SIZE], size_t *n_out, bool *truncated,
                                      struct chat_err *err)
{ STORE__CALL(list_contacts, user_id, max, out, n_out, truncated, err); }
/* Not timed here: the adapter observes "append_message" at commit. */
static inline int store_append_message(struct store *st, const struct message *m, store_append_cb cb,
                                       void *arg)
{ return st->ops->append_message(st, m, cb, arg); }
static inline int store_list_messages(struct store *st, const char *chat_id, int64_t before_seq,
                                      int limit, struct message_list *out, struct chat_err *err)
{ STORE__CALL(list_messages, chat_id, before_seq, limit, out, err); }
static inline int store_list_messages_after(struct store *st, const char *chat_id, int64_t after_seq,
                                            int limit, struct message_list *out, struct chat_err *err)
{ STORE__CALL(list_messages_after, chat_id, after_seq, limit, out, err); }
static inline int store_set_read(struct store *st, const char *chat_id, const char *user_id,
                                 const char *message_id, bool *moved, struct chat_err *err)
{ STORE__CALL(set_read, chat_id, user_id, message_id, moved, err); }
static inline int store_get_message(struct store *st, const char *chat_id, const char *message_id,
                                    struct message *out, struct chat_err *err)
{ STORE__CALL(get_message, chat_id, message_id, out, err); }
static inline int store_change_message(struct store *st, const char *chat_id,
                                       const char *message_id, const char *text, int64_t at,
                                       struct message *out, bool *changed, struct chat_err *err)
{ STORE__CALL(change_message, chat_id, message_id, text, at, out, changed, err); }
static inline int store_list_changes_after(struct store *st, const char *chat_id,
                                           int64_t after_pos, int limit,
                                           struct message_list *out, struct chat_err *err)
{ STORE__CALL(list_changes_after, chat_id, after_pos, limit, out, err); }

#endif
