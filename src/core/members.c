/* members.c - the chat member cache, and the typing frame that lives on it.
 *
 * Every message send fans message.new out to its chat's members, and a
 * store_get_chat per message was the send path's biggest read.  The member
 * cache keeps each chat's member ids for CORE_MCACHE_TTL_MS in core's slot
 * cache (slotcache.h), keyed by the chat id.  Membership changes made
 * through this core invalidate the slot at once (chats.c calls
 * core__chat_members_invalidate after the store write), and the slot's
 * epoch keeps a fetch that started before an invalidation from storing its
 * stale list after it.  The invalidation is also published on the bus;
 * core's bus listener (bus_listen.c) drops the slot on every other
 * instance when it arrives, and the TTL bounds what a lost one costs.
 *
 * A cached list is trusted to say who IS a member only while fresh, and
 * never to say who is NOT: a caller missing from it may have joined
 * through another instance, so that case asks the store, which is
 * authoritative.  Access checks therefore never refuse on a stale entry.
 *
 * The typing frame fans out to a chat's other members.  chats_get would
 * load the whole chat, its members' Authors and its last message to build
 * a Chat view nobody reads; chats_typing reads the ids from this cache.
 * Its membership check is chats_get's: a chat the caller is not in is
 * CHAT_E_NOT_FOUND, so typing cannot probe which chats exist. */
#include <stdlib.h>
#include <string.h>

#include "chatli/bus.h"
#include "core_internal.h"
#include "chatli/store.h"
#include "chatli/log.h"

int core__member_cache_init(struct slotcache *sc, bool alone)
{
    return slotcache_init(sc, CORE_MCACHE_SLOTS, CORE_MCACHE_SHARDS, OID_LEN,
                          alone ? CORE_CACHE_ALONE_TTL_MS : CORE_MCACHE_TTL_MS);
}

static bool contains(const char (*ids)[OID_SIZE], size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i], id) == 0)
            return true;
    return false;
}

static char (*dup_ids(const char (*ids)[OID_SIZE], size_t n))[OID_SIZE]
{
    char(*v)[OID_SIZE] = malloc((n ? n : 1) * sizeof *v);
    if (v && n)
        memcpy(v, ids, n * sizeof *v);
    return v;
}

/* A cached value is the member ids, OID_SIZE bytes each. */
struct members_read {
    const char *member;        /* must be among them, or NULL */
    char (*ids)[OID_SIZE];     /* new: a copy of the hit */
    size_t n;
};

static bool read_members(void *arg, const void *val, size_t len)
{
    struct members_read *r = arg;
    const char(*ids)[OID_SIZE] = val;
    size_t n = len / OID_SIZE;
    if (r->member && !contains(ids, n, r->member))
        return false;
    r->ids = dup_ids(ids, n);
    r->n = n;
    return r->ids != NULL; /* out of memory: ask the store, whose copy may work */
}

int core__chat_members(struct core *c, const char *chat_id, const char *member,
                       char (**ids)[OID_SIZE], size_t *n, struct chat_err *err)
{
    struct slotcache *mc = &c->priv->members;
    struct members_read r = {.member = member};
    uint64_t epoch;
    *ids = NULL;
    *n = 0;
    if (slotcache_get(mc, chat_id, strnlen(chat_id, OID_LEN), read_members, &r, &epoch)) {
        *ids = r.ids;
        *n = r.n;
        return 0;
    }

    /* A miss, or the cached list lacks `member`: ask the store. */
    struct chat ch = {0};
    int rc = store_get_chat(c->store, chat_id, member, &ch, err);
    if (rc)
        return rc;
    char(*mine)[OID_SIZE] = dup_ids((const char(*)[OID_SIZE])ch.member_ids, ch.n_members);
    char(*cached)[OID_SIZE] = dup_ids((const char(*)[OID_SIZE])ch.member_ids, ch.n_members);
    size_t count = ch.n_members;
    store_chat_cleanup(&ch);
    slotcache_put(mc, chat_id, strnlen(chat_id, OID_LEN), cached, count * OID_SIZE, epoch);
    if (!mine)
        return core__internal(err, "core: out of memory copying members");
    *ids = mine;
    *n = count;
    return 0;
}

bool core__chat_members_cached(struct core *c, const char *chat_id, const char *member,
                               char (**ids)[OID_SIZE], size_t *n)
{
    struct members_read r = {.member = member};
    uint64_t epoch;
    *ids = NULL;
    *n = 0;
    if (!slotcache_get(&c->priv->members, chat_id, strnlen(chat_id, OID_LEN), read_members, &r,
                       &epoch))
        return false;
    *ids = r.ids;
    *n = r.n;
    return true;
}

void core__chat_members_forget(struct core *c, const char *chat_id)
{
    slotcache_forget(&c->priv->members, chat_id, strnlen(chat_id, OID_LEN));
}

void core__chat_members_invalidate(struct core *c, const char *chat_id)
{
    core__chat_members_forget(c, chat_id);
    core__publish_inval(c, BUS_INV_MEMBERS, chat_id);
}

int chats_typing(struct core *c, const struct session *s, const char *chat_id,
                 struct chat_err *err)
{
    char(*ids)[OID_SIZE] = NULL;
    size_t n = 0, k = 0;
    if (!oid_valid(chat_id))
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such chat");
    int rc = core__chat_members(c, chat_id, s->user_id, &ids, &n, err);
    if (rc)
        return rc;
    /* Everyone but the typist, compacted in place. */
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i], s->user_id) != 0)
            memcpy(ids[k++], ids[i], OID_SIZE);
    if (k > 0) {
        /* "type" first: the gateway recognises typing by its first key and
         * drops it first under backpressure (it is ephemeral). */
        json_t *f = json_pack("{s:s, s:s, s:s}", "type", "typing", "chatId", chat_id, "userId",
                              s->user_id);
        if (f)
            core__publish(c, BUS_TO_USERS, (const char(*)[OID_SIZE])ids, k, 0, f);
        else
            log_error("chats: out of memory building a typing frame; it is dropped");
        json_decref(f);
    }
    free(ids);
    return 0;
}
