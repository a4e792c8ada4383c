/* fuzz_ws_frame.c - one WebSocket text message, as the gateway's loop
 * hands it to ws__frame_parse (src/ws/conn.c on_frame), and the error frame
 * a bad one is answered with.
 *
 * No live lws is needed: parsing is pure (jansson only).  Checked: the
 * parse result is 0 or one of the two codes the contract allows for a bad
 * frame; a parsed frame has the fields its type needs (the dispatcher
 * uses them without checking again); sync entries are valid ids within
 * the cap; the error frame always builds and serialises. */
#include "fuzz.h"
#include "ws_internal.h"

static void check_parsed(const struct ws_frame *f)
{
    FUZZ_CHECK(json_is_object(f->root));
    switch (f->type) {
    case WS_F_AUTH:
        FUZZ_CHECK(f->token != NULL);
        break;
    case WS_F_SEND:
    case WS_F_READ:
        FUZZ_CHECK(f->chat_id != NULL && f->body == f->root);
        break;
    case WS_F_TYPING:
        FUZZ_CHECK(f->chat_id != NULL);
        break;
    case WS_F_PING:
        break;
    case WS_F_SYNC:
        FUZZ_CHECK(f->n_sync <= WS_SYNC_MAX_CHATS);
        for (size_t i = 0; i < f->n_sync; i++)
            FUZZ_CHECK(oid_valid(f->sync[i].chat_id) && f->sync[i].after_seq >= 0);
        break;
    default:
        FUZZ_CHECK(!"a parsed frame has a known type");
    }
}

static void check_error_frame(const struct chat_err *err, const char *client_id)
{
    FUZZ_CHECK(err->code == CHAT_E_BAD_REQUEST || err->code == CHAT_E_VALIDATION);
    FUZZ_CHECK(err->code != CHAT_E_VALIDATION || err->field != NULL);
    json_t *j = ws__frame_error(err->code, err->msg, err->field, client_id);
    FUZZ_CHECK(j != NULL);
    struct ws_buf *b = ws__buf_from_json(j, 0);
    FUZZ_CHECK(b != NULL && b->len > 0);
    ws__buf_unref(b);
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ws_frame f;
    struct chat_err err = {0};
    int rc = ws__frame_parse((const char *)data, size, &f, &err);
    FUZZ_CHECK(rc == 0 || rc == err.code);
    if (rc == 0)
        check_parsed(&f);
    else if (err.code == CHAT_E_INTERNAL)
        ; /* out of memory for the sync table: not the input's fault */
    else
        check_error_frame(&err, f.client_id);
    ws__frame_cleanup(&f);
    return 0;
}
