/* fuzz_sio.c - one text message on a /socket.io/ connection, as the
 * gateway's loop hands it to sio_parse (src/ws/conn.c sio_on_text), and
 * what the loop builds from the result: the plain frame of an EVENT
 * (sio_event_frame), the CONNECT_ERROR of another namespace; then the same
 * bytes as a server frame given the EVENT / ACK treatment (sio_event_buf,
 * sio_frame_is_answer, sio_ack_buf) when the bytes are a JSON object with
 * a string "type", as every server frame is.
 *
 * Pure (jansson only).  Checked: the result is 0 or one of the three
 * refusals, each with a reason; a parsed packet has what its kind needs
 * (an EVENT its name and array, a CONNECT an object or nothing, an ACK an
 * id); ack ids stay within SIO_ACK_MAX; a refused namespace is not "/" and
 * echoes within SIO_NSP_MAX; an EVENT's frame, when built, carries the
 * event name as its "type"; any EVENT / ACK packet built from the bytes is
 * valid JSON after its prefix. */
#include "fuzz.h"
#include "sio.h"

static void check_prefixed_json(struct ws_buf *b, size_t skip)
{
    const char *s = (const char *)ws_buf_payload(b);
    FUZZ_CHECK(b->len > skip && (b->flags & WS_BUF_SIO));
    json_t *v = json_loadb(s + skip, b->len - skip, JSON_DECODE_ANY, NULL);
    FUZZ_CHECK(json_is_array(v));
    json_decref(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct sio_packet p;
    const char *why = NULL;
    int rc = sio_parse(s, size, &p, &why);
    FUZZ_CHECK(rc == 0 || rc == SIO_E_PACKET || rc == SIO_E_NAMESPACE || rc == SIO_E_BINARY);
    FUZZ_CHECK(rc == 0 || why != NULL);
    FUZZ_CHECK(p.ack_id >= -1 && p.ack_id <= SIO_ACK_MAX);
    if (rc == SIO_E_BINARY)
        FUZZ_CHECK(p.attachments <= SIO_ATTACH_MAX);
    if (rc == SIO_E_NAMESPACE) {
        FUZZ_CHECK(p.nsp_len <= SIO_NSP_MAX && p.nsp[0] == '/');
        FUZZ_CHECK(!(p.nsp_len == 1));
        struct ws_buf *b = sio_connect_error_buf(p.nsp, p.nsp_len, why);
        FUZZ_CHECK(b != NULL);
        ws__buf_unref(b);
    }
    if (rc == 0) {
        switch (p.kind) {
        case SIO_K_EVENT: {
            FUZZ_CHECK(json_is_array(p.data) && p.event != NULL);
            json_t *f = sio_event_frame(&p, &why);
            if (f)
                FUZZ_CHECK(strcmp(json_string_value(json_object_get(f, "type")), p.event) == 0);
            else
                FUZZ_CHECK(p.arg && !json_is_object(p.arg) && why);
            json_decref(f);
            break;
        }
        case SIO_K_CONNECT:
            FUZZ_CHECK(!p.data || json_is_object(p.data));
            (void)sio_connect_token(&p);
            break;
        case SIO_K_ACK:
            FUZZ_CHECK(p.ack_id >= 0 && json_is_array(p.data));
            break;
        default:
            FUZZ_CHECK(p.data == NULL);
        }
    }
    sio_packet_cleanup(&p);

    /* The same bytes as a server frame on its way to a Socket.IO client:
     * server frames are JSON objects (the gateway serialized them), the
     * precondition of the rewrite without a parse. */
    json_t *whole = json_loadb(s, size, 0, NULL);
    bool is_frame = json_is_string(json_object_get(whole, "type"));
    json_decref(whole);
    if (!is_frame)
        return 0;
    struct ws_buf *e = sio_event_buf(s, size, 0);
    FUZZ_CHECK(e != NULL);
    if (e) {
        check_prefixed_json(e, 2);
        ws__buf_unref(e);
    }
    char cid[65];
    if (sio_frame_is_answer(s, size, cid)) {
        FUZZ_CHECK(strlen(cid) <= 64);
        struct ws_buf *a = sio_ack_buf(42, s, size);
        if (a) {
            check_prefixed_json(a, 4);
            ws__buf_unref(a);
        }
    }
    return 0;
}
