/* wsconn.c - RFC 6455 client framing over a non-blocking socket.
 *
 * Buffers grow on demand and are freed at close, so an idle connection costs
 * the generator only its struct plus the buffers its traffic needed.  Reads
 * stop at a short read (the socket was drained; a later arrival raises a new
 * edge) unless the peer hung up, when we read on to the EOF the edge will not
 * repeat. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* memmem, IP_BIND_ADDRESS_NO_PORT */
#endif
#include "wsconn.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* The server caps frames at 64 KiB; a few of them may arrive back to back
 * (sync replies), so 16 MiB buffered without a whole frame is a broken peer. */
#define RX_MAX ((size_t)16 << 20)
#define UPGRADE_MAX 16384

/* Masking keys only have to be unpredictable to intermediaries; a per-process
 * xorshift64* seeded from libsodium avoids a getrandom() syscall per frame. */
static uint64_t mask_state = 0x9e3779b97f4a7c15ULL;

void wsconn_seed(uint64_t seed) { mask_state = seed ? seed : 0x9e3779b97f4a7c15ULL; }

static uint32_t next_mask(void)
{
    uint64_t x = mask_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    mask_state = x;
    return (uint32_t)((x * 0x2545F4914F6CDD1DULL) >> 32);
}

static int reserve(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 512;
    while (nc < need)
        nc *= 2;
    char *p = realloc(*buf, nc);
    if (!p)
        return -1;
    *buf = p;
    *cap = nc;
    return 0;
}

static void shut(struct wsconn *c, int code)
{
    if (c->fd >= 0)
        close(c->fd); /* also removes it from the epoll set */
    c->fd = -1;
    free(c->rx);
    free(c->msg);
    free(c->tx);
    c->rx = c->msg = c->tx = NULL;
    c->rx_len = c->rx_cap = c->msg_len = c->msg_cap = 0;
    c->tx_off = c->tx_len = c->tx_cap = 0;
    c->msg_op = 0;
    c->state = WSCONN_CLOSED;
    c->close_code = code;
}

static int flush(struct wsconn *c)
{
    while (c->tx_off < c->tx_len) {
        ssize_t n = send(c->fd, c->tx + c->tx_off, c->tx_len - c->tx_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->tx_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        c->err = n < 0 ? errno : EPIPE;
        return -1;
    }
    c->tx_off = c->tx_len = 0;
    return 0;
}

/* Appends one masked frame with opcode `op` to the send queue. */
static int queue_frame(struct wsconn *c, int op, const char *data, size_t len)
{
    if (c->tx_off == c->tx_len)
        c->tx_off = c->tx_len = 0;
    else if (c->tx_off > 0 && c->tx_len + len + 14 > c->tx_cap) {
        memmove(c->tx, c->tx + c->tx_off, c->tx_len - c->tx_off);
        c->tx_len -= c->tx_off;
        c->tx_off = 0;
    }
    if (reserve(&c->tx, &c->tx_cap, c->tx_len + len + 14))
        return -1;
    unsigned char *h = (unsigned char *)c->tx + c->tx_len;
    size_t hl = 2;
    h[0] = (unsigned char)(0x80 | op);
    if (len < 126) {
        h[1] = (unsigned char)(0x80 | len);
    } else if (len <= 0xffff) {
        h[1] = 0x80 | 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        hl = 4;
    } else {
        h[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
        hl = 10;
    }
    uint32_t m = next_mask();
    unsigned char key[4];
    memcpy(key, &m, 4);
    memcpy(h + hl, key, 4);
    hl += 4;
    unsigned char *p = h + hl;
    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)data[i] ^ key[i & 3];
    c->tx_len += hl + len;
    return 0;
}

int wsconn_start(struct wsconn *c, int epfd, const struct sockaddr_in *src, const struct sockaddr_in *dst,
                 const char *host, const char *target)
{
    uint32_t id = c->id;
    memset(c, 0, sizeof *c);
    c->id = id;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        goto fail;
    int one = 1;
    /* Let connect() pick the source port per destination, so each source
     * address gives its whole ephemeral range to this one server port. */
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (src && bind(c->fd, (const struct sockaddr *)src, sizeof *src) < 0)
        goto fail;
    if (connect(c->fd, (const struct sockaddr *)dst, sizeof *dst) < 0 && errno != EINPROGRESS)
        goto fail;

    unsigned char nonce[16];
    char key[sodium_base64_ENCODED_LEN(16, sodium_base64_VARIANT_ORIGINAL)];
    randombytes_buf(nonce, sizeof nonce);
    sodium_bin2base64(key, sizeof key, nonce, sizeof nonce, sodium_base64_VARIANT_ORIGINAL);
    int n = snprintf(NULL, 0,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     target, host, key);
    if (n < 0 || reserve(&c->tx, &c->tx_cap, (size_t)n + 1))
        goto fail;
    snprintf(c->tx, c->tx_cap,
             "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
             target, host, key);
    c->tx_len = (size_t)n;

    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.u64 = c->id};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        goto fail;
    c->state = WSCONN_CONNECTING;
    return 0;
fail:
    c->err = errno;
    shut(c, WSCONN_CLOSE_CONNECT_FAILED);
    return -1;
}

/* Delivers one complete frame.  Returns -1 when the connection was closed
 * (by the peer's close frame, an error, or the callback). */
static int on_frame(struct wsconn *c, int op, int fin, const char *p, size_t len, wsconn_cb cb, void *ud)
{
    if (op >= 8) {
        if (!fin || len > 125 || (op != 8 && op != 9 && op != 10)) {
            shut(c, WSCONN_CLOSE_PROTOCOL);
            cb(ud, c, WSCONN_EV_CLOSED, NULL, 0);
            return -1;
        }
        if (op == 9) {
            if (queue_frame(c, 10, p, len) == 0 && flush(c) < 0) {
                shut(c, WSCONN_CLOSE_ABNORMAL);
                cb(ud, c, WSCONN_EV_CLOSED, NULL, 0);
                return -1;
            }
        } else if (op == 8) {
            int code = len >= 2 ? ((unsigned char)p[0] << 8 | (unsigned char)p[1]) : WSCONN_CLOSE_NO_STATUS;
            unsigned char echo[2] = {(unsigned char)(code >> 8), (unsigned char)code};
            /* Best effort: echo the close, then drop the socket. */
            if (queue_frame(c, 8, (const char *)echo, len >= 2 ? 2 : 0) == 0)
                (void)flush(c);
            shut(c, code);
            cb(ud, c, WSCONN_EV_CLOSED, NULL, 0);
            return -1;
        }
        return 0;
    }
    if (op == 0) {
        if (!c->msg_op || c->msg_len + len > RX_MAX || reserve(&c->msg, &c->msg_cap, c->msg_len + len)) {
            shut(c, WSCONN_CLOSE_PROTOCOL);
            cb(ud, c, WSCONN_EV_CLOSED, NULL, 0);
            return -1;
        }
        memcpy(c->msg + c->msg_len, p, len);
        c->msg_len += len;
        if (fin) {
            int was = c->msg_op;
            c->msg_op = 0;
            size_t n = c->msg_len;
            c->msg_len = 0;
            if (was == 1) {
                cb(ud, c, WSCONN_EV_TEXT, c->msg, n);
                if (c->state != WSCONN_OPEN)
                    return -1;
            }
        }
        return 0;
    }
    if ((op != 1 && op != 2) || c->msg_op) {
        shut(c, WSCONN_CLOSE_PROTOCOL);
        cb(ud, c, WSCONN_EV_CLOSED, NULL, 0);
        return -1;
    }
    if (!fin) {
        if (reserve(&c->msg, &c->msg_cap, len)) {
            shut(c, WSCONN_CLOSE_PROTOCOL);
            cb(ud, c, WSCONN_EV_CLOSED, NULL, 0);
            return -1;
        }
        memcpy(c->msg, p, len);
        c->msg_len = len;
        c->msg_op = op;
        return 0;
    }
    if (op == 1) {
        cb(ud, c, WSCONN_EV_TEXT, p, len);
        if (c->state != WSCONN_OPEN)
            return -1;
    }
    return 0;
}

/* Consumes what rx holds: the upgrade response, then whole frames. */
static int process(struct wsconn *c, wsconn_cb cb, void *ud)
{
    size_t off = 0;
    if (c->state == WSCONN_UPGRADING) {
        char *end = memmem(c->rx, c->rx_len, "\r\n\r\n", 4);
        if (!end) {
            if (c->rx_len > UPGRADE_MAX) {
                shut(c, WSCONN_CLOSE_UPGRADE_REFUSED);
                cb(ud, c, WSCONN_EV_CLOSED, NULL, 0);
                return -1;
            }
            return 0;
        }
        if (c->rx_len < 12 || memcmp(c->rx, "HTTP/1.1 101", 12) != 0) {
            c->err = c->rx_len >= 12 ? atoi(c->rx + 9) : 0; /* the HTTP status, for the report */
            shut(c, WSCONN_CLOSE_UPGRADE_REFUSED);
            cb(ud, c, WSCONN_EV_CLOSED, NULL, 0);
            return -1;
        }
        off = (size_t)(end - c->rx) + 4;
        c->state = WSCONN_OPEN;
        cb(ud, c, WSCONN_EV_OPEN, NULL, 0);
        if (c->state != WSCONN_OPEN)
            return -1;
    }
    while (c->state == WSCONN_OPEN) {
        size_t avail = c->rx_len - off;
        if (avail < 2)
            break;
        const unsigned char *h = (const unsigned char *)c->rx + off;
        int fin = h[0] & 0x80, op = h[0] & 0x0f, masked = h[1] & 0x80;
        uint64_t plen = h[1] & 0x7f;
        size_t hl = 2;
        if (h[0] & 0x70) {
            shut(c, WSCONN_CLOSE_PROTOCOL); /* no extension was negotiated */
            cb(ud, c, WSCONN_EV_CLOSED, NULL, 0);
            return -1;
        }
        if (plen == 126) {
            if (avail < 4)
                break;
            plen = (uint64_t)h[2] << 8 | h[3];
            hl = 4;
        } else if (plen == 127) {
            if (avail < 10)
                break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = plen << 8 | h[2 + i];
            hl = 10;
        }
        if (plen > RX_MAX) {
            shut(c, WSCONN_CLOSE_PROTOCOL);
            cb(ud, c, WSCONN_EV_CLOSED, NULL, 0);
            return -1;
        }
        if (masked)
            hl += 4;
        if (avail < hl + plen)
            break;
        char *p = c->rx + off + hl;
        if (masked) {
            const unsigned char *k = h + hl - 4;
            for (size_t i = 0; i < plen; i++)
                p[i] = (char)((unsigned char)p[i] ^ k[i & 3]);
        }
        off += hl + (size_t)plen;
        if (on_frame(c, op, fin, p, (size_t)plen, cb, ud) < 0)
            return -1;
    }
    if (off > 0) {
        memmove(c->rx, c->rx + off, c->rx_len - off);
        c->rx_len -= off;
    }
    return 0;
}

void wsconn_on_event(struct wsconn *c, uint32_t events, wsconn_cb cb, void *ud)
{
    if (c->state == WSCONN_CLOSED || c->state == WSCONN_IDLE)
        return;
    if (c->state == WSCONN_CONNECTING) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            soerr = errno;
        if (soerr) {
            c->err = soerr;
            shut(c, WSCONN_CLOSE_CONNECT_FAILED);
            cb(ud, c, WSCONN_EV_CLOSED, NULL, 0);
            return;
        }
        c->state = WSCONN_UPGRADING;
        events |= EPOLLOUT;
    }
    if ((events & EPOLLOUT) && flush(c) < 0) {
        shut(c, WSCONN_CLOSE_ABNORMAL);
        cb(ud, c, WSCONN_EV_CLOSED, NULL, 0);
        return;
    }
    if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        return;
    int hangup = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
    for (;;) {
        if (c->rx_len >= RX_MAX || reserve(&c->rx, &c->rx_cap, c->rx_len + 4096)) {
            shut(c, WSCONN_CLOSE_PROTOCOL);
            cb(ud, c, WSCONN_EV_CLOSED, NULL, 0);
            return;
        }
        size_t room = c->rx_cap - c->rx_len;
        ssize_t n = recv(c->fd, c->rx + c->rx_len, room, 0);
        if (n > 0) {
            c->rx_len += (size_t)n;
            if (process(c, cb, ud) < 0)
                return;
            if ((size_t)n < room && !hangup)
                return;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        c->err = n < 0 ? errno : 0;
        shut(c, WSCONN_CLOSE_ABNORMAL);
        cb(ud, c, WSCONN_EV_CLOSED, NULL, 0);
        return;
    }
}

int wsconn_send_text(struct wsconn *c, const char *data, size_t len)
{
    if (c->state != WSCONN_OPEN || c->err)
        return -1;
    if (queue_frame(c, 1, data, len) < 0)
        return -1;
    /* A failed write is reported by the next epoll event (EPOLLERR/HUP),
     * which closes the connection through the callback. */
    if (flush(c) < 0)
        return -1;
    return 0;
}

void wsconn_close(struct wsconn *c)
{
    if (c->state != WSCONN_CLOSED)
        shut(c, c->close_code ? c->close_code : WSCONN_CLOSE_LOCAL);
}
