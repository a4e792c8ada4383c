/* routes_sio.c - GET and POST /socket.io/: the Engine.IO polling transport
 * (CONTRACT 7, docs/api.md section 5).
 *
 * The sessions live in the WebSocket gateway; this file only checks the
 * query (EIO=4, transport=polling), suspends the connection and hands the
 * request over through the table main.c gave the server (chatli/sio_poll.h,
 * so http includes nothing of ws).  The answer comes back on the gateway's
 * loop thread through sio_done, which resumes the connection: a held
 * long-poll GET occupies no MHD worker.  Answers are Engine.IO's own
 * (text/plain packets, "ok", or 400 {"code","message"}), not the API's
 * JSON envelope.  At shutdown, http_server_drain calls the table's release
 * first, so every held GET is answered (close packet) before MHD drains. */
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "reply.h"
#include "chatli/sio_poll.h"

/* Engine.IO's error answer, 400 {"code","message"}, at once.  0, or
 * CHAT_E_INTERNAL (`err` set) when it could not be made or queued. */
static int eio_error(struct http_req *rq, int code, const char *msg, struct chat_err *err)
{
    json_t *o = json_pack("{s:i, s:s}", "code", code, "message", msg);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "out of memory");
    if (http_reply_text(rq, 400, "application/json", text, strlen(text)) != 0)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "cannot queue the Engine.IO error");
    return 0;
}

/* The gateway's answer (loop thread): stored, and the connection resumed. */
static void sio_done(void *arg, int status, const char *content_type, char *body, size_t len)
{
    struct http_req *rq = arg;
    rq->async_type = content_type;
    if (!body) {
        /* out of memory in the gateway: an empty answer of that status */
        body = strdup("");
        len = 0;
    }
    http_async_finish(rq, 0, status, body, len, NULL);
}

int routes_sio(struct http_req *rq, json_t *body, json_t **out, int *status,
               struct chat_err *err)
{
    (void)body;
    (void)out;
    (void)status;
    const struct sio_poll *sp = &rq->srv->sio_poll;
    const char *tr = http_query(rq, "transport");
    const char *eio = http_query(rq, "EIO");
    const char *sid = http_query(rq, "sid");
    bool post = strcmp(rq->method, "POST") == 0;
    if (!sp->request || !tr || strcmp(tr, "polling") != 0)
        return eio_error(rq, 0, "Transport unknown", err);
    if (!eio || strcmp(eio, "4") != 0)
        return eio_error(rq, 5, "Unsupported protocol version", err);
    if (!post && strcmp(rq->method, "GET") != 0) /* HEAD would open a session */
        return eio_error(rq, 2, "Bad handshake method", err);
    http_async_begin(rq);
    sp->request(sp->impl, post, sid, rq->body ? rq->body : "", rq->body_len, sio_done, rq);
    return 0;
}
