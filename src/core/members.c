/* members.c - a chat's member ids for transports that only need the ids.
 *
 * The WebSocket typing frame fans out to a chat's other members.  chats_get
 * would load the whole chat, its members' Authors and its last message to
 * build a Chat view the gateway then throws away; this reads the ids from
 * the member cache (core.c), which also serves message.send, and asks the
 * store only on a miss or when the cached list lacks the caller.  The
 * membership check is the same as chats_get's: a chat the caller is not in
 * is CHAT_E_NOT_FOUND, so typing cannot probe which chats exist. */
#include <stdlib.h>

#include "core_internal.h"

int chats_member_ids(struct core *c, const struct session *s, const char *chat_id,
                     char (**ids)[OID_SIZE], size_t *n, struct chat_err *err)
{
    *ids = NULL;
    *n = 0;
    if (!oid_valid(chat_id))
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such chat");
    return core__chat_members(c, chat_id, s->user_id, ids, n, err);
}
