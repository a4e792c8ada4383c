/* wsbench.c - WebSocket load generator for chatli's /ws gateway.
 *
 * Two scenarios, each bounded in time and count, loopback only:
 *
 *   idle   opens --conns authenticated connections (?token=), holds them,
 *          reports how many stayed open and the server's RSS per connection,
 *          then runs --bcast rounds: one POST /api/posts each, timed until
 *          every held connection has its post.new frame.
 *   chat   --pairs users in direct chats, one connection per user, sending
 *          message.send either at a total --rate (msg/s) or closed-loop with
 *          --window frames in flight per connection; reports ack and delivery
 *          latency percentiles, throughput, and server CPU per message.
 *   typing the chat setup, open loop at --rate typing frames/s: server CPU per
 *          typing frame delivered (typing frames carry no client data, so
 *          no latency).
 *   floor  no server: the kernel's own cost of what a delivery needs, one
 *          send() of --frame-bytes on each of --conns loopback connections
 *          (plain, with a POLLOUT round trip through epoll first, and two
 *          frames as two send()s vs one), so the gateway's CPU per delivery
 *          can be read against what no user-space change can remove.
 *
 * Design.  The parent seeds users and chats over REST (libcurl), then forks
 * --procs workers, each owning a slice of the connections in its own epoll
 * loop (one process holds at most 20,000 fds here, and two processes use
 * both cores).  The parent commands them over SOCK_SEQPACKET socketpairs with
 * fixed-size messages and reads the server's CPU (utime+stime) and RSS from
 * /proc/<pid> around each measured window.  Latency needs no shared state:
 * a message carries its send time (CLOCK_MONOTONIC, system-wide) in its text
 * and its clientId, so whichever process sees the ack or the delivery can
 * time it.  Connections of one chat pair stay in one worker, so each worker
 * can tell when every message it sent was acked and delivered.
 *
 * With --sio every connection speaks Socket.IO over WebSocket at
 * /socket.io/ (issue 12): the token goes in the CONNECT packet, frames are
 * sent as 42["type",{...}] and received EVENTs are turned back into the
 * plain frame before the same handling, Engine.IO pings are answered.
 *
 * Frames are read with skim.c instead of a JSON parser and message.send is
 * formatted with snprintf from values the generator made itself (digits, and
 * chat ids checked to be 24 hex characters at seeding), because the generator
 * shares two cores with the server and must stay cheap per frame. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hist.h"
#include "rest.h"
#include "skim.h"
#include "wsconn.h"

#define NS_PER_S ((int64_t)1000000000)
#define NS_PER_MS ((int64_t)1000000)
#define MAX_PROCS 16
#define CTL_ID UINT64_MAX
#define TIMER_ID (UINT64_MAX - 1)
#define CONNECT_TIMEOUT_NS (20 * NS_PER_S)
#define MAX_OUTSTANDING 512          /* per connection in rate mode */
#define MAX_TX_PENDING (256 * 1024)  /* bytes queued before a connection is skipped */
#define NCODES 8

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void sleep_until(int64_t t)
{
    int64_t now = mono_ns();
    while (now < t) {
        int64_t d = t - now;
        struct timespec ts = {.tv_sec = d / NS_PER_S, .tv_nsec = d % NS_PER_S};
        nanosleep(&ts, NULL);
        now = mono_ns();
    }
}

/* ---- options and seeded state (read-only after fork) ---- */

#define MAX_SERVER_PIDS 8
#define MAX_WS_PORTS 8
static struct {
    const char *url;
    char host[64];
    int port;
    long server_pid;
    long server_pids[MAX_SERVER_PIDS]; /* --server-pid A,B,C: CPU summed over them */
    int n_server_pids;
    int ws_ports[MAX_WS_PORTS]; /* --ws-ports: connection g upgrades on ws_ports[g % n] */
    int n_ws_ports;
    const char *scenario;
    long conns, users, pairs, procs, sources, pending;
    double rate;
    long window;
    double duration, warmup, drain, hold, settle;
    long bcast_rounds;
    const char *tokens_file;
    long reg_parallel;
    int typing;
    long frame_bytes;
    int sio; /* --sio: Socket.IO over WebSocket at /socket.io/ instead of /ws */
} opt = {
    .conns = 1000, .users = 0, .pairs = 500, .procs = 0, .sources = 16, .pending = 256,
    .rate = 0, .window = 1, .duration = 10, .warmup = 2, .drain = 5, .hold = 5, .settle = 3,
    .bcast_rounds = 10, .reg_parallel = 8, .frame_bytes = 300,
};

struct user {
    char *id;
    char *token;
    char *target; /* "/ws?token=<escaped>", or the Socket.IO URL with --sio */
};

static struct user *users;
static size_t nusers;
static char **chat_ids; /* chat_ids[k] is the direct chat of users 2k and 2k+1 */

/* ---- parent <-> worker messages ---- */

enum { CMD_CONNECT = 1, CMD_STATUS, CMD_BCAST, CMD_BCAST_STOP, CMD_CHAT, CMD_CHAT_STOP, CMD_QUIT, REP_ARMED };

struct cmd {
    int op;
    int32_t round;
    int64_t t_start, t_meas, t_end, t_drain; /* CLOCK_MONOTONIC ns */
    double rate;                             /* msg/s for this worker, 0 = closed loop */
    int64_t window;
    char marker[64];
};

struct codes {
    int code[NCODES];
    int64_t count[NCODES];
};

struct reply {
    int op;
    /* connections */
    int64_t ready, failed, closed_after_ready, live;
    int64_t last_http_status, last_errno;
    struct codes fail_codes, close_codes;
    /* broadcast */
    int64_t got, first_ns, last_ns;
    /* chat */
    int64_t sent, acked, delivered, rejected, send_failed, skipped;
    int64_t sent_win, acked_win, delivered_win;
    char first_error[64];
    struct hist ack, deliv;
    /* the worker's own CPU so far */
    int64_t cpu_us;
};

static void codes_add(struct codes *c, int code)
{
    for (int i = 0; i < NCODES; i++) {
        if (c->count[i] && c->code[i] == code) {
            c->count[i]++;
            return;
        }
        if (!c->count[i]) {
            c->code[i] = code;
            c->count[i] = 1;
            return;
        }
    }
}

static void codes_merge(struct codes *into, const struct codes *from)
{
    for (int i = 0; i < NCODES; i++)
        for (int64_t k = 0; k < from->count[i]; k++)
            codes_add(into, from->code[i]);
}

static void codes_print(const char *what, const struct codes *c)
{
    if (!c->count[0])
        return;
    printf("  %s:", what);
    for (int i = 0; i < NCODES && c->count[i]; i++)
        printf(" %d x%" PRId64, c->code[i], c->count[i]);
    printf("   (1=connect failed, 2=upgrade refused, 3=protocol, 1006=dropped, 4401/4408=auth)\n");
}

static int64_t self_cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
}

/* ---- the worker ---- */

/* Typing frames carry no client data: a sender keeps the send times of its
 * frames in flight (FIFO, the bus keeps one sender's order), and its
 * partner's receipt of a typing frame takes the oldest one.  Full: not
 * timed (counted as sent, never in the histogram). */
#define TYPING_Q 32

struct cstate {
    int64_t tq[TYPING_Q]; /* typing send times, ring */
    uint8_t tq_head, tq_len;
    uint8_t ready;
    int32_t bcast_round;
    uint32_t seq;
    int32_t outstanding;
    int64_t deadline; /* connect deadline, ns */
};

struct worker {
    int ctl, ep, tfd;
    size_t lo, n; /* global index of the first connection, and how many */
    struct wsconn *conns;
    struct cstate *cs;
    struct sockaddr_in dst;
    struct reply rep;
    /* connect phase */
    int connecting;
    size_t next_start, in_flight;
    /* broadcast */
    int armed;
    int32_t round;
    char marker[64];
    size_t marker_len;
    /* chat */
    int chatting, started;
    struct cmd chat;
    int64_t sched;
    size_t rr;
};

static void send_reply(struct worker *w, int op)
{
    w->rep.op = op;
    w->rep.live = w->rep.ready - w->rep.closed_after_ready;
    w->rep.cpu_us = self_cpu_us();
    if (send(w->ctl, &w->rep, sizeof w->rep, 0) < 0)
        _exit(3); /* the parent is gone */
}

static void start_next(struct worker *w, int64_t now)
{
    while (w->next_start < w->n && w->in_flight < (size_t)opt.pending) {
        size_t i = w->next_start++;
        size_t g = w->lo + i;
        struct user *u = &users[g % nusers];
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(g % (size_t)opt.sources));
        char host[96];
        int port = opt.n_ws_ports ? opt.ws_ports[g % (size_t)opt.n_ws_ports] : opt.port;
        struct sockaddr_in dst = w->dst;
        dst.sin_port = htons((uint16_t)port);
        snprintf(host, sizeof host, "%s:%d", opt.host, port);
        w->conns[i].id = (uint32_t)i;
        w->cs[i].deadline = now + CONNECT_TIMEOUT_NS;
        if (wsconn_start(&w->conns[i], w->ep, &src, &dst, host, u->target) < 0) {
            w->rep.failed++;
            w->rep.last_errno = w->conns[i].err;
            codes_add(&w->rep.fail_codes, WSCONN_CLOSE_CONNECT_FAILED);
            continue;
        }
        w->in_flight++;
    }
}

static void check_connect_done(struct worker *w)
{
    if (w->connecting && w->next_start == w->n && w->in_flight == 0) {
        w->connecting = 0;
        send_reply(w, CMD_CONNECT);
    }
}

static void check_bcast_done(struct worker *w)
{
    if (w->armed && w->rep.got >= w->rep.ready - w->rep.closed_after_ready) {
        w->armed = 0;
        send_reply(w, CMD_BCAST);
    }
}

static int in_window(const struct worker *w, int64_t t) { return t >= w->chat.t_meas && t < w->chat.t_end; }

static int can_send(struct worker *w, size_t i)
{
    return w->cs[i].ready && w->conns[i].state == WSCONN_OPEN && w->cs[i].outstanding < MAX_OUTSTANDING &&
           wsconn_pending(&w->conns[i]) < MAX_TX_PENDING;
}

static void send_msg(struct worker *w, size_t i)
{
    struct cstate *s = &w->cs[i];
    int64_t now = mono_ns();
    char buf[256];
    if (opt.typing) {
        int n = snprintf(buf, sizeof buf,
                         opt.sio ? "42[\"typing\",{\"chatId\":\"%s\"}]" : "{\"type\":\"typing\",\"chatId\":\"%s\"}",
                         chat_ids[(w->lo + i) / 2]);
        if (wsconn_send_text(&w->conns[i], buf, (size_t)n) < 0) {
            w->rep.send_failed++;
            return;
        }
        w->rep.sent++;
        if (in_window(w, now))
            w->rep.sent_win++;
        if (s->tq_len < TYPING_Q)
            s->tq[(s->tq_head + s->tq_len++) % TYPING_Q] = now;
        return;
    }
    int n = snprintf(buf, sizeof buf,
                     opt.sio ? "42[\"message.send\",{\"chatId\":\"%s\",\"text\":\"t%" PRId64 "\",\"clientId\":\"%" PRIu32
                               "-%" PRId64 "\"}]"
                             : "{\"type\":\"message.send\",\"chatId\":\"%s\",\"text\":\"t%" PRId64 "\",\"clientId\":\"%" PRIu32
                               "-%" PRId64 "\"}",
                     chat_ids[(w->lo + i) / 2], now, s->seq++, now);
    if (wsconn_send_text(&w->conns[i], buf, (size_t)n) < 0) {
        w->rep.send_failed++;
        return;
    }
    s->outstanding++;
    w->rep.sent++;
    if (in_window(w, now))
        w->rep.sent_win++;
}

/* The send time embedded after the last '-' of a clientId or the 't' of a text. */
static int64_t parse_ns(const char *v, size_t len, char after)
{
    const char *p = NULL;
    for (size_t i = len; i > 0; i--)
        if (v[i - 1] == after) {
            p = v + i;
            break;
        }
    if (!p)
        return -1;
    int64_t t = 0;
    for (; p < v + len && *p >= '0' && *p <= '9'; p++)
        t = t * 10 + (*p - '0');
    return t;
}

static void on_text(struct worker *w, struct wsconn *c, struct cstate *s, const char *d, size_t len)
{
    const char *type;
    size_t tlen;
    if (!skim_get(d, len, "type", 1, &type, &tlen))
        return;
#define IS(lit) (tlen == sizeof(lit) - 1 && memcmp(type, lit, tlen) == 0)
    int64_t now = mono_ns();
    if (IS("message.new")) {
        const char *v;
        size_t vl;
        if (!w->chatting || !skim_get(d, len, "text", 2, &v, &vl) || vl < 2 || v[0] != 't')
            return;
        int64_t t = parse_ns(v, vl, 't');
        w->rep.delivered++;
        if (in_window(w, now))
            w->rep.delivered_win++;
        if (in_window(w, t))
            hist_record(&w->rep.deliv, now - t);
    } else if (IS("message.ack")) {
        const char *v;
        size_t vl;
        if (!w->chatting || !skim_get(d, len, "clientId", 1, &v, &vl))
            return;
        int64_t t = parse_ns(v, vl, '-');
        s->outstanding--;
        w->rep.acked++;
        if (in_window(w, now))
            w->rep.acked_win++;
        if (in_window(w, t))
            hist_record(&w->rep.ack, now - t);
        if (w->chat.rate == 0 && now < w->chat.t_end)
            send_msg(w, c->id);
    } else if (IS("typing")) {
        if (w->chatting && opt.typing) {
            w->rep.delivered++;
            if (in_window(w, now))
                w->rep.delivered_win++;
            /* The partner of local index i is i ^ 1 (pairs stay in one
             * worker, at an even global index). */
            struct cstate *from = &w->cs[c->id ^ 1u];
            if (from->tq_len > 0) {
                int64_t t = from->tq[from->tq_head];
                from->tq_head = (uint8_t)((from->tq_head + 1) % TYPING_Q);
                from->tq_len--;
                if (in_window(w, t))
                    hist_record(&w->rep.deliv, now - t);
            }
        }
    } else if (IS("post.new")) {
        if (w->armed && s->bcast_round != w->round && memmem(d, len, w->marker, w->marker_len)) {
            s->bcast_round = w->round;
            if (w->rep.got++ == 0)
                w->rep.first_ns = now;
            w->rep.last_ns = now;
            check_bcast_done(w);
        }
    } else if (IS("ready")) {
        if (!s->ready) {
            s->ready = 1;
            w->rep.ready++;
            w->in_flight--;
            start_next(w, now);
            check_connect_done(w);
        }
    } else if (IS("error")) {
        const char *v;
        size_t vl;
        if (!w->rep.first_error[0]) {
            size_t n = len < sizeof w->rep.first_error - 1 ? len : sizeof w->rep.first_error - 1;
            memcpy(w->rep.first_error, d, n);
        }
        if (w->chatting && opt.typing) {
            w->rep.rejected++;
            if (s->tq_len > 0) { /* refused: never delivered */
                s->tq_head = (uint8_t)((s->tq_head + 1) % TYPING_Q);
                s->tq_len--;
            }
        } else if (w->chatting && skim_get(d, len, "clientId", 1, &v, &vl)) {
            s->outstanding--;
            w->rep.rejected++;
            if (w->chat.rate == 0 && now < w->chat.t_end)
                send_msg(w, c->id);
        }
    }
#undef IS
}

/* --sio: one Engine.IO packet.  The open packet is answered with the
 * CONNECT carrying the token, a ping with a pong; an EVENT
 * 42["X",{...}] is rewritten as the plain frame {"type":"X",...} and
 * handled like one from /ws. */
static void on_sio_text(struct worker *w, struct wsconn *c, struct cstate *s, const char *d, size_t len)
{
    if (len == 1 && d[0] == '2') {
        (void)wsconn_send_text(c, "3", 1);
        return;
    }
    if (len > 0 && d[0] == '0') {
        const struct user *u = &users[(w->lo + c->id) % nusers];
        char buf[1024];
        int n = snprintf(buf, sizeof buf, "40{\"token\":\"%s\"}", u->token);
        if (n > 0 && (size_t)n < sizeof buf && wsconn_send_text(c, buf, (size_t)n) < 0)
            w->rep.send_failed++;
        return;
    }
    if (len < 8 || memcmp(d, "42[\"", 4) != 0 || d[len - 1] != ']')
        return;
    const char *q = memchr(d + 4, '"', len - 4);
    if (!q || q + 3 > d + len || q[1] != ',' || q[2] != '{')
        return;
    size_t nl = (size_t)(q - (d + 4));
    const char *rest = q + 3;                     /* the object's members, then "}]" */
    size_t rl = (size_t)(d + len - 1 - rest);     /* up to and with its '}' */
    char stack[4096];
    size_t n = 9 + nl + 1 + (rl > 1 ? 1 : 0) + rl;
    char *f = n <= sizeof stack ? stack : malloc(n);
    if (!f)
        return;
    memcpy(f, "{\"type\":\"", 9);
    memcpy(f + 9, d + 4, nl);
    size_t o = 9 + nl;
    f[o++] = '"';
    if (rl > 1)
        f[o++] = ',';
    memcpy(f + o, rest, rl);
    on_text(w, c, s, f, o + rl);
    if (f != stack)
        free(f);
}

static void on_ws(void *ud, struct wsconn *c, enum wsconn_event ev, const char *d, size_t len)
{
    struct worker *w = ud;
    struct cstate *s = &w->cs[c->id];
    if (ev == WSCONN_EV_TEXT) {
        if (opt.sio)
            on_sio_text(w, c, s, d, len);
        else
            on_text(w, c, s, d, len);
    } else if (ev == WSCONN_EV_CLOSED) {
        if (s->ready) {
            w->rep.closed_after_ready++;
            codes_add(&w->rep.close_codes, c->close_code);
            check_bcast_done(w);
        } else {
            w->rep.failed++;
            w->in_flight--;
            codes_add(&w->rep.fail_codes, c->close_code);
            if (c->close_code == WSCONN_CLOSE_UPGRADE_REFUSED)
                w->rep.last_http_status = c->err;
            else if (c->err)
                w->rep.last_errno = c->err;
            start_next(w, mono_ns());
            check_connect_done(w);
        }
    }
}

static void chat_tick(struct worker *w, int64_t now)
{
    if (!w->chatting || now < w->chat.t_start)
        return;
    if (!w->started) {
        w->started = 1;
        if (w->chat.rate == 0)
            for (size_t i = 0; i < w->n; i++)
                for (int64_t k = 0; k < w->chat.window; k++)
                    if (can_send(w, i))
                        send_msg(w, i);
    }
    if (w->chat.rate > 0 && now < w->chat.t_end) {
        int64_t due = (int64_t)((double)(now - w->chat.t_start) * w->chat.rate / 1e9);
        while (w->sched < due) {
            size_t tries = 0;
            int sent = 0;
            while (tries++ < w->n) {
                size_t i = w->rr++ % w->n;
                if (can_send(w, i)) {
                    send_msg(w, i);
                    sent = 1;
                    break;
                }
            }
            if (!sent) {
                w->rep.skipped += due - w->sched;
                w->sched = due;
                break;
            }
            w->sched++;
        }
    }
    /* A typing frame is settled when its partner got it (or it was refused). */
    int settled = opt.typing ? w->rep.delivered + w->rep.rejected >= w->rep.sent
                             : w->rep.acked + w->rep.rejected == w->rep.sent && w->rep.delivered >= w->rep.acked;
    if (now >= w->chat.t_end && (settled || now >= w->chat.t_drain)) {
        w->chatting = 0;
        struct itimerspec off = {0};
        timerfd_settime(w->tfd, 0, &off, NULL);
        send_reply(w, CMD_CHAT);
    }
}

static void on_cmd(struct worker *w, const struct cmd *cm)
{
    int64_t now = mono_ns();
    switch (cm->op) {
    case CMD_CONNECT:
        w->connecting = 1;
        start_next(w, now);
        check_connect_done(w);
        break;
    case CMD_STATUS:
        send_reply(w, CMD_STATUS);
        break;
    case CMD_BCAST:
        w->round = cm->round;
        snprintf(w->marker, sizeof w->marker, "%s", cm->marker);
        w->marker_len = strlen(w->marker);
        w->rep.got = w->rep.first_ns = w->rep.last_ns = 0;
        w->armed = 1;
        send_reply(w, REP_ARMED);
        break;
    case CMD_BCAST_STOP:
        if (w->armed) {
            w->armed = 0;
            send_reply(w, CMD_BCAST);
        }
        break;
    case CMD_CHAT: {
        w->chat = *cm;
        w->chatting = 1;
        w->started = 0;
        w->sched = 0;
        hist_init(&w->rep.ack);
        hist_init(&w->rep.deliv);
        struct itimerspec ts = {.it_interval = {0, NS_PER_MS}, .it_value = {0, NS_PER_MS}};
        timerfd_settime(w->tfd, 0, &ts, NULL);
        break;
    }
    case CMD_CHAT_STOP:
        /* The parent gave up waiting: report what we have now. */
        if (w->chatting) {
            w->chatting = 0;
            struct itimerspec off = {0};
            timerfd_settime(w->tfd, 0, &off, NULL);
            send_reply(w, CMD_CHAT);
        }
        break;
    case CMD_QUIT:
        for (size_t i = 0; i < w->n; i++)
            wsconn_close(&w->conns[i]);
        _exit(0);
    }
}

static void worker_run(int ctl, size_t lo, size_t n)
{
    struct worker *w = calloc(1, sizeof *w);
    if (!w)
        _exit(2);
    w->ctl = ctl;
    w->lo = lo;
    w->n = n;
    w->conns = calloc(n ? n : 1, sizeof *w->conns);
    w->cs = calloc(n ? n : 1, sizeof *w->cs);
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (!w->conns || !w->cs || w->ep < 0 || w->tfd < 0)
        _exit(2);
    for (size_t i = 0; i < n; i++) {
        w->conns[i].fd = -1;
        w->cs[i].bcast_round = -1;
    }
    w->dst.sin_family = AF_INET;
    w->dst.sin_port = htons((uint16_t)opt.port);
    inet_pton(AF_INET, opt.host, &w->dst.sin_addr);
    uint64_t seed;
    randombytes_buf(&seed, sizeof seed);
    wsconn_seed(seed);

    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = CTL_ID};
    epoll_ctl(w->ep, EPOLL_CTL_ADD, ctl, &ev);
    ev.data.u64 = TIMER_ID;
    epoll_ctl(w->ep, EPOLL_CTL_ADD, w->tfd, &ev);

    struct epoll_event evs[512];
    int64_t last_sweep = mono_ns();
    for (;;) {
        int k = epoll_wait(w->ep, evs, 512, 50);
        if (k < 0 && errno != EINTR)
            _exit(2);
        for (int j = 0; j < k; j++) {
            uint64_t id = evs[j].data.u64;
            if (id == CTL_ID) {
                struct cmd cm;
                ssize_t r = recv(ctl, &cm, sizeof cm, 0);
                if (r == 0)
                    _exit(0); /* the parent is gone */
                if (r == (ssize_t)sizeof cm)
                    on_cmd(w, &cm);
            } else if (id == TIMER_ID) {
                uint64_t ticks;
                while (read(w->tfd, &ticks, sizeof ticks) > 0) {
                }
            } else if (id < w->n) {
                wsconn_on_event(&w->conns[id], evs[j].events, on_ws, w);
            }
        }
        int64_t now = mono_ns();
        chat_tick(w, now);
        if (w->connecting && now - last_sweep > 100 * NS_PER_MS) {
            last_sweep = now;
            for (size_t i = 0; i < w->next_start; i++) {
                struct wsconn *c = &w->conns[i];
                if (!w->cs[i].ready && c->state != WSCONN_CLOSED && c->state != WSCONN_IDLE &&
                    now > w->cs[i].deadline) {
                    c->close_code = 5; /* timed out before "ready" */
                    wsconn_close(c);
                    on_ws(w, c, WSCONN_EV_CLOSED, NULL, 0);
                }
            }
        }
    }
}

/* ---- the parent ---- */

static struct {
    int ctl[MAX_PROCS];
    pid_t pid[MAX_PROCS];
    int n;
} procs;

static void spawn_workers(long nprocs, size_t total, int pair_aligned)
{
    fflush(stdout);
    fflush(stderr);
    procs.n = (int)nprocs;
    for (int p = 0; p < procs.n; p++) {
        size_t lo = total * (size_t)p / (size_t)procs.n, hi = total * (size_t)(p + 1) / (size_t)procs.n;
        if (pair_aligned) {
            lo &= ~(size_t)1;
            hi = p == procs.n - 1 ? total : hi & ~(size_t)1;
        }
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
            perror("socketpair");
            exit(1);
        }
        int sz = (int)sizeof(struct reply) * 4;
        setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
        setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            exit(1);
        }
        if (pid == 0) {
            close(sv[0]);
            for (int q = 0; q < p; q++)
                close(procs.ctl[q]);
            worker_run(sv[1], lo, hi - lo);
        }
        close(sv[1]);
        procs.ctl[p] = sv[0];
        procs.pid[p] = pid;
    }
}

static void broadcast_cmd(const struct cmd *cm)
{
    for (int p = 0; p < procs.n; p++)
        if (send(procs.ctl[p], cm, sizeof *cm, 0) < 0) {
            perror("send to worker");
            exit(1);
        }
}

/* Waits for one reply with op `op` from each worker whose got[p] is 0, until
 * `deadline`.  Returns how many workers have replied in all. */
static int collect(int op, struct reply *reps, int *got, int64_t deadline)
{
    int have = 0;
    for (int p = 0; p < procs.n; p++)
        have += got[p];
    while (have < procs.n) {
        struct pollfd pf[MAX_PROCS];
        for (int p = 0; p < procs.n; p++) {
            pf[p].fd = got[p] ? -1 : procs.ctl[p];
            pf[p].events = POLLIN;
        }
        int64_t left = deadline - mono_ns();
        if (left <= 0)
            break;
        int r = poll(pf, (nfds_t)procs.n, (int)(left / NS_PER_MS) + 1);
        if (r < 0 && errno != EINTR)
            break;
        for (int p = 0; p < procs.n; p++) {
            if (got[p] || !(pf[p].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n = recv(procs.ctl[p], &reps[p], sizeof reps[p], 0);
            if (n != (ssize_t)sizeof reps[p]) {
                fprintf(stderr, "wsbench: worker %d died\n", p);
                exit(1);
            }
            if (reps[p].op == op) {
                got[p] = 1;
                have++;
            }
        }
    }
    return have;
}

static void quit_workers(void)
{
    struct cmd cm = {.op = CMD_QUIT};
    broadcast_cmd(&cm);
    for (int p = 0; p < procs.n; p++) {
        waitpid(procs.pid[p], NULL, 0);
        close(procs.ctl[p]);
    }
}

/* CPU seconds of process `pid` from /proc, user and system apart (-1 when
 * unreadable): the system part is mostly the kernel's loopback TCP, the
 * user part is the program's own work. */
struct cpu_split {
    double user, sys;
};

static struct cpu_split proc_cpu(long pid)
{
    struct cpu_split c = {-1, -1};
    if (pid <= 0)
        return c;
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return c;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    /* After "pid (comm)": state ppid pgrp session tty tpgid flags minflt
     * cminflt majflt cmajflt utime stime. */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return c;
    double tck = (double)sysconf(_SC_CLK_TCK);
    c.user = (double)ut / tck;
    c.sys = (double)st / tck;
    return c;
}

/* Every server process's CPU (--server-pid A,B,...), summed; -1 when one
 * cannot be read. */
static struct cpu_split servers_cpu(void)
{
    struct cpu_split t = {0, 0};
    for (int i = 0; i < opt.n_server_pids; i++) {
        struct cpu_split c = proc_cpu(opt.server_pids[i]);
        if (c.user < 0)
            return c;
        t.user += c.user;
        t.sys += c.sys;
    }
    if (opt.n_server_pids == 0)
        return proc_cpu(opt.server_pid);
    return t;
}

/* Context switches of every thread of the server processes, voluntary
 * (a thread went to sleep: epoll_wait, a futex, a condition variable) and
 * not (preempted), from /proc/<pid>/task/<tid>/status; -1 when unreadable.
 * On this VM a switch costs tens of microseconds of system time (a
 * paravirtualized interrupt enable on every one; docs/performance.md), so
 * switches per message explain much of the system CPU per message. */
struct ctxsw {
    long long vol, invol;
};

static struct ctxsw proc_ctxsw(long pid)
{
    struct ctxsw t = {-1, -1};
    char path[96], line[256];
    snprintf(path, sizeof path, "/proc/%ld/task", pid);
    DIR *d = pid > 0 ? opendir(path) : NULL;
    if (!d)
        return t;
    t.vol = t.invol = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/%ld/task/%.32s/status", pid, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue; /* the thread just ended */
        long long v;
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "voluntary_ctxt_switches: %lld", &v) == 1)
                t.vol += v;
            else if (sscanf(line, "nonvoluntary_ctxt_switches: %lld", &v) == 1)
                t.invol += v;
        }
        fclose(f);
    }
    closedir(d);
    return t;
}

static struct ctxsw servers_ctxsw(void)
{
    if (opt.n_server_pids == 0)
        return proc_ctxsw(opt.server_pid);
    struct ctxsw t = {0, 0};
    for (int i = 0; i < opt.n_server_pids; i++) {
        struct ctxsw c = proc_ctxsw(opt.server_pids[i]);
        if (c.vol < 0)
            return c;
        t.vol += c.vol;
        t.invol += c.invol;
    }
    return t;
}

/* Server CPU seconds (utime+stime). */
static double server_cpu_s(void)
{
    struct cpu_split c = servers_cpu();
    return c.user < 0 ? -1 : c.user + c.sys;
}

/* The generator's worker processes, summed. */
static struct cpu_split workers_cpu(void)
{
    struct cpu_split t = {0, 0};
    for (int p = 0; p < procs.n; p++) {
        struct cpu_split c = proc_cpu((long)procs.pid[p]);
        if (c.user >= 0) {
            t.user += c.user;
            t.sys += c.sys;
        }
    }
    return t;
}

static long server_rss_kib(void)
{
    if (opt.server_pid <= 0)
        return -1;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", opt.server_pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* Busy and total CPU seconds of the whole box, from /proc/stat. */
static void box_cpu(double *busy, double *total)
{
    unsigned long long v[10] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (f) {
        if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
                   &v[7]) != 8)
            memset(v, 0, sizeof v);
        fclose(f);
    }
    unsigned long long t = 0;
    for (int i = 0; i < 8; i++)
        t += v[i];
    double hz = (double)sysconf(_SC_CLK_TCK);
    *total = (double)t / hz;
    *busy = (double)(t - v[3] - v[4]) / hz;
}

static double ms(int64_t ns) { return (double)ns / 1e6; }

/* ---- seeding ---- */

static int is_hex24(const char *s)
{
    if (!s || strlen(s) != 24)
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

static void set_target(struct user *u)
{
    CURL *e = curl_easy_init();
    char *esc = e ? curl_easy_escape(e, u->token, 0) : NULL;
    if (!esc || (opt.sio ? (u->target = strdup("/socket.io/?EIO=4&transport=websocket")) == NULL
                         : asprintf(&u->target, "/ws?token=%s", esc) < 0)) {
        fprintf(stderr, "wsbench: out of memory\n");
        exit(1);
    }
    curl_free(esc);
    curl_easy_cleanup(e);
}

static void load_tokens(size_t want)
{
    users = calloc(want, sizeof *users);
    if (!users)
        exit(1);
    if (!opt.tokens_file)
        return;
    FILE *f = fopen(opt.tokens_file, "r");
    if (!f)
        return;
    char id[64], tok[512];
    while (nusers < want && fscanf(f, "%63s %511s", id, tok) == 2) {
        if (!is_hex24(id))
            continue;
        users[nusers].id = strdup(id);
        users[nusers].token = strdup(tok);
        set_target(&users[nusers]);
        nusers++;
    }
    fclose(f);
}

static void register_users(struct rest *r, size_t want)
{
    if (nusers >= want)
        return;
    size_t n = want - nusers;
    unsigned char tag[4];
    char tag_hex[9];
    randombytes_buf(tag, sizeof tag);
    sodium_bin2hex(tag_hex, sizeof tag_hex, tag, sizeof tag);
    struct rest_req *q = calloc(n, sizeof *q);
    if (!q)
        exit(1);
    for (size_t i = 0; i < n; i++) {
        char name[40], email[80];
        snprintf(name, sizeof name, "wb%s_%zu", tag_hex, nusers + i);
        snprintf(email, sizeof email, "%s@bench.test", name);
        json_t *b = json_pack("{s:s, s:s, s:s}", "username", name, "email", email, "password", "bench-password-1");
        q[i].method = "POST";
        q[i].path = strdup("/api/auth/register");
        q[i].body = json_dumps(b, JSON_COMPACT);
        json_decref(b);
    }
    int64_t t0 = mono_ns();
    rest_run(r, q, n, (int)opt.reg_parallel);
    FILE *f = opt.tokens_file ? fopen(opt.tokens_file, "a") : NULL;
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *root = q[i].status == 201 ? json_loads(q[i].resp, 0, NULL) : NULL;
        const char *id = json_string_value(json_object_get(json_object_get(root, "user"), "id"));
        const char *tok = json_string_value(json_object_get(root, "token"));
        if (is_hex24(id) && tok && !strchr(tok, ' ')) {
            users[nusers].id = strdup(id);
            users[nusers].token = strdup(tok);
            set_target(&users[nusers]);
            if (f)
                fprintf(f, "%s %s\n", id, tok);
            nusers++;
            ok++;
        } else if (i - ok < 3) { /* the first few failures are enough to see why */
            fprintf(stderr, "wsbench: register failed: status %ld: %.200s\n", q[i].status,
                    q[i].resp ? q[i].resp : "");
        }
        json_decref(root);
        rest_req_cleanup(&q[i]);
    }
    free(q);
    if (f)
        fclose(f);
    printf("seeding: registered %zu of %zu users in %.1f s\n", ok, n, (double)(mono_ns() - t0) / 1e9);
    if (nusers < want) {
        fprintf(stderr, "wsbench: only %zu of %zu users available\n", nusers, want);
        exit(1);
    }
}

static void create_chats(struct rest *r, size_t pairs)
{
    struct rest_req *q = calloc(pairs, sizeof *q);
    chat_ids = calloc(pairs, sizeof *chat_ids);
    if (!q || !chat_ids)
        exit(1);
    for (size_t k = 0; k < pairs; k++) {
        json_t *b = json_pack("{s:[s]}", "memberIds", users[2 * k + 1].id);
        q[k].method = "POST";
        q[k].path = strdup("/api/chats");
        q[k].body = json_dumps(b, JSON_COMPACT);
        q[k].token = users[2 * k].token;
        json_decref(b);
    }
    int64_t t0 = mono_ns();
    rest_run(r, q, pairs, (int)opt.reg_parallel);
    for (size_t k = 0; k < pairs; k++) {
        json_t *root = (q[k].status == 200 || q[k].status == 201) ? json_loads(q[k].resp, 0, NULL) : NULL;
        const char *id = json_string_value(json_object_get(root, "id"));
        if (!is_hex24(id)) {
            fprintf(stderr, "wsbench: create chat failed: status %ld: %.200s\n", q[k].status,
                    q[k].resp ? q[k].resp : "");
            exit(1);
        }
        chat_ids[k] = strdup(id);
        json_decref(root);
        rest_req_cleanup(&q[k]);
    }
    free(q);
    printf("seeding: %zu direct chats ready in %.1f s\n", pairs, (double)(mono_ns() - t0) / 1e9);
}

/* ---- scenarios ---- */

static void sum_conn(struct reply *t, const struct reply *reps)
{
    memset(t, 0, sizeof *t);
    for (int p = 0; p < procs.n; p++) {
        t->ready += reps[p].ready;
        t->failed += reps[p].failed;
        t->closed_after_ready += reps[p].closed_after_ready;
        t->live += reps[p].live;
        t->cpu_us += reps[p].cpu_us;
        if (reps[p].last_http_status)
            t->last_http_status = reps[p].last_http_status;
        if (reps[p].last_errno)
            t->last_errno = reps[p].last_errno;
        codes_merge(&t->fail_codes, &reps[p].fail_codes);
        codes_merge(&t->close_codes, &reps[p].close_codes);
        if (!t->first_error[0])
            memcpy(t->first_error, reps[p].first_error, sizeof t->first_error);
    }
}

/* Opens every worker's connections; returns the totals. */
static void connect_all(size_t total, struct reply *t)
{
    static struct reply reps[MAX_PROCS];
    int got[MAX_PROCS] = {0};
    double c0 = server_cpu_s();
    int64_t t0 = mono_ns();
    struct cmd cm = {.op = CMD_CONNECT};
    broadcast_cmd(&cm);
    int64_t limit = (int64_t)(total / 50 + 60) * NS_PER_S;
    if (collect(CMD_CONNECT, reps, got, t0 + limit) < procs.n) {
        fprintf(stderr, "wsbench: connecting did not finish in %" PRId64 " s\n", limit / NS_PER_S);
        exit(1);
    }
    double secs = (double)(mono_ns() - t0) / 1e9;
    double c1 = server_cpu_s();
    sum_conn(t, reps);
    printf("connect: %" PRId64 " of %zu authenticated (ready) in %.2f s (%.0f/s), %" PRId64 " failed\n", t->ready,
           total, secs, (double)t->ready / secs, t->failed);
    if (c0 >= 0 && t->ready > 0)
        printf("  server CPU while connecting: %.2f s = %.0f us per connection (handshake + auth + ready)\n",
               c1 - c0, (c1 - c0) * 1e6 / (double)t->ready);
    codes_print("failures by code", &t->fail_codes);
    if (t->last_http_status)
        printf("  last refused upgrade: HTTP %" PRId64 "\n", t->last_http_status);
    if (t->last_errno)
        printf("  last socket error: %s\n", strerror((int)t->last_errno));
    if (t->first_error[0])
        printf("  first error frame: %s\n", t->first_error);
}

static void status_all(struct reply *t)
{
    static struct reply reps[MAX_PROCS];
    int got[MAX_PROCS] = {0};
    struct cmd cm = {.op = CMD_STATUS};
    broadcast_cmd(&cm);
    if (collect(CMD_STATUS, reps, got, mono_ns() + 10 * NS_PER_S) < procs.n) {
        fprintf(stderr, "wsbench: a worker did not answer STATUS\n");
        exit(1);
    }
    sum_conn(t, reps);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void run_idle(struct rest *r)
{
    size_t total = (size_t)opt.conns;
    printf("== idle + broadcast: %zu connections, %zu users, %d processes, %ld source addresses\n", total, nusers,
           procs.n, opt.sources);
    sleep_until(mono_ns() + NS_PER_S); /* let seeding's allocations settle */
    long rss0 = server_rss_kib();
    struct reply t;
    connect_all(total, &t);
    sleep_until(mono_ns() + (int64_t)(opt.settle * 1e9));
    long rss1 = server_rss_kib();
    if (rss0 >= 0 && t.ready > 0)
        printf("server RSS: %ld KiB before, %ld KiB with %" PRId64
               " connections: %.0f bytes per connection (delta / N)\n",
               rss0, rss1, t.ready, (double)(rss1 - rss0) * 1024.0 / (double)t.ready);
    /* The second half of the hold shows the steady idle cost, after the
     * work that follows a burst of handshakes has drained. */
    sleep_until(mono_ns() + (int64_t)(opt.hold * 0.5e9));
    double h0 = server_cpu_s();
    sleep_until(mono_ns() + (int64_t)(opt.hold * 0.5e9));
    double h1 = server_cpu_s();
    status_all(&t);
    long rss2 = server_rss_kib();
    printf("hold %.0f s: %" PRId64 " open, %" PRId64 " closed by the server; RSS %ld KiB;"
           " server CPU %.2f s in the hold's last %.1f s\n",
           opt.hold, t.live, t.closed_after_ready, rss2, h1 - h0, opt.hold / 2);
    codes_print("closes by code", &t.close_codes);
    printf("RESULT idle_conns=%" PRId64 " rss_before_kib=%ld rss_after_kib=%ld rss_per_conn_bytes=%.0f\n", t.live,
           rss0, rss1, t.ready ? (double)(rss1 - rss0) * 1024.0 / (double)t.ready : 0.0);

    if (opt.bcast_rounds <= 0 || t.live == 0)
        return;
    printf("== broadcast: %ld rounds, POST /api/posts -> post.new on every held connection\n", opt.bcast_rounds);
    printf("  round  delivered  POST_ms  first_ms  last_ms  server_cpu_ms\n");
    double *lasts = calloc((size_t)opt.bcast_rounds, sizeof *lasts);
    double cpu_total = 0, user_total = 0, sys_total = 0;
    int64_t deliveries = 0, expected = 0;
    for (long k = 0; k < opt.bcast_rounds; k++) {
        static struct reply reps[MAX_PROCS];
        int got[MAX_PROCS] = {0};
        struct cmd cm = {.op = CMD_BCAST, .round = (int32_t)k};
        unsigned char rnd[6];
        char hex[13];
        randombytes_buf(rnd, sizeof rnd);
        sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
        snprintf(cm.marker, sizeof cm.marker, "bcast-%s-%ld", hex, k);
        broadcast_cmd(&cm);
        if (collect(REP_ARMED, reps, got, mono_ns() + 10 * NS_PER_S) < procs.n) {
            fprintf(stderr, "wsbench: workers did not arm\n");
            exit(1);
        }
        int64_t live = 0;
        for (int p = 0; p < procs.n; p++)
            live += reps[p].live;
        memset(got, 0, sizeof got);
        json_t *b = json_pack("{s:s}", "text", cm.marker);
        struct rest_req q = {.method = "POST", .path = strdup("/api/posts"), .body = json_dumps(b, JSON_COMPACT),
                             .token = users[0].token};
        json_decref(b);
        double c0 = server_cpu_s();
        struct cpu_split sv0 = servers_cpu();
        int64_t t0 = mono_ns();
        rest_run(r, &q, 1, 1);
        int64_t t_post = mono_ns();
        if (q.status != 201)
            fprintf(stderr, "wsbench: POST /api/posts answered %ld: %.200s\n", q.status, q.resp ? q.resp : "");
        rest_req_cleanup(&q);
        int64_t deadline = t0 + 30 * NS_PER_S;
        if (collect(CMD_BCAST, reps, got, deadline) < procs.n) {
            struct cmd stop = {.op = CMD_BCAST_STOP};
            broadcast_cmd(&stop);
            collect(CMD_BCAST, reps, got, mono_ns() + 10 * NS_PER_S);
        }
        double c1 = server_cpu_s();
        struct cpu_split sv1 = servers_cpu();
        user_total += sv1.user - sv0.user;
        sys_total += sv1.sys - sv0.sys;
        int64_t n = 0, first = INT64_MAX, last = 0;
        for (int p = 0; p < procs.n; p++) {
            n += reps[p].got;
            if (reps[p].got && reps[p].first_ns < first)
                first = reps[p].first_ns;
            if (reps[p].got && reps[p].last_ns > last)
                last = reps[p].last_ns;
        }
        lasts[k] = n ? ms(last - t0) : -1;
        cpu_total += c1 - c0;
        deliveries += n;
        expected += live;
        printf("  %5ld  %9" PRId64 "/%-6" PRId64 " %7.2f  %8.2f  %7.2f  %13.0f\n", k, n, live, ms(t_post - t0),
               n ? ms(first - t0) : -1.0, lasts[k], (c1 - c0) * 1e3);
        sleep_until(mono_ns() + 300 * NS_PER_MS);
    }
    qsort(lasts, (size_t)opt.bcast_rounds, sizeof *lasts, cmp_double);
    double med = lasts[opt.bcast_rounds / 2], worst = lasts[opt.bcast_rounds - 1];
    printf("broadcast: %" PRId64 " of %" PRId64 " deliveries; time to the last connection: median %.2f ms, max %.2f ms\n",
           deliveries, expected, med, worst);
    if (deliveries > 0)
        printf("  server CPU: %.3f s over all rounds = %.2f us per delivery (includes each POST and idle upkeep)\n",
               cpu_total, cpu_total * 1e6 / (double)deliveries);
    if (deliveries > 0)
        printf("  of which user %.3f us + sys %.3f us per delivery\n", user_total * 1e6 / (double)deliveries,
               sys_total * 1e6 / (double)deliveries);
    printf("RESULT bcast_split user_us_per_delivery=%.3f sys_us_per_delivery=%.3f\n",
           deliveries ? user_total * 1e6 / (double)deliveries : 0.0,
           deliveries ? sys_total * 1e6 / (double)deliveries : 0.0);
    printf("RESULT bcast_deliveries=%" PRId64 " bcast_expected=%" PRId64
           " bcast_last_ms_median=%.2f bcast_last_ms_max=%.2f bcast_cpu_us_per_delivery=%.3f\n",
           deliveries, expected, med, worst, deliveries ? cpu_total * 1e6 / (double)deliveries : 0.0);
    free(lasts);
}

static void print_hist(const char *what, const struct hist *h)
{
    printf("  %-17s p50 %7.2f ms  p99 %7.2f ms  p99.9 %7.2f ms  max %7.2f ms  (%" PRIu64 " samples)\n", what,
           (double)hist_quantile(h, 0.50) / 1e6, (double)hist_quantile(h, 0.99) / 1e6,
           (double)hist_quantile(h, 0.999) / 1e6, (double)h->max_ns / 1e6, h->count);
}

static void run_chat(void)
{
    size_t total = (size_t)opt.pairs * 2;
    printf("== %s 1:1: %ld pairs (%zu connections), %d processes, ", opt.typing ? "typing" : "chat", opt.pairs,
           total, procs.n);
    if (opt.rate > 0)
        printf("open loop at %.0f %s/s", opt.rate, opt.typing ? "typing frames" : "msg");
    else
        printf("closed loop, %ld in flight per connection", opt.window);
    printf(", warmup %.0f s, measured %.0f s\n", opt.warmup, opt.duration);
    struct reply t;
    connect_all(total, &t);
    if (t.ready < (int64_t)total)
        printf("  warning: only %" PRId64 " of %zu connections; their partners' messages still flow\n", t.ready,
               total);
    sleep_until(mono_ns() + NS_PER_S); /* presence frames settle */

    struct cmd cm = {.op = CMD_CHAT, .window = opt.window};
    int64_t now = mono_ns();
    cm.t_start = now + 200 * NS_PER_MS;
    cm.t_meas = cm.t_start + (int64_t)(opt.warmup * 1e9);
    cm.t_end = cm.t_meas + (int64_t)(opt.duration * 1e9);
    cm.t_drain = cm.t_end + (int64_t)(opt.drain * 1e9);
    /* Each worker paces its share of the total rate. */
    static struct reply reps[MAX_PROCS];
    int got[MAX_PROCS] = {0};
    for (int p = 0; p < procs.n; p++) {
        cm.rate = opt.rate / procs.n;
        if (send(procs.ctl[p], &cm, sizeof cm, 0) < 0) {
            perror("send");
            exit(1);
        }
    }
    sleep_until(cm.t_meas);
    struct ctxsw x0 = servers_ctxsw();
    struct cpu_split sv0 = servers_cpu(), g0 = workers_cpu();
    double c0 = server_cpu_s(), b0, tot0;
    box_cpu(&b0, &tot0);
    sleep_until(cm.t_end);
    struct ctxsw x1 = servers_ctxsw();
    struct cpu_split sv1 = servers_cpu(), g1 = workers_cpu();
    double c1 = server_cpu_s(), b1, tot1;
    box_cpu(&b1, &tot1);
    if (collect(CMD_CHAT, reps, got, cm.t_drain + 5 * NS_PER_S) < procs.n) {
        struct cmd stop = {.op = CMD_CHAT_STOP};
        printf("  workers were late to report after the drain; stopping them\n");
        broadcast_cmd(&stop);
        if (collect(CMD_CHAT, reps, got, mono_ns() + 10 * NS_PER_S) < procs.n) {
            fprintf(stderr, "wsbench: workers did not finish the chat run\n");
            exit(1);
        }
    }
    struct reply s;
    memset(&s, 0, sizeof s);
    hist_init(&s.ack);
    hist_init(&s.deliv);
    for (int p = 0; p < procs.n; p++) {
        s.sent += reps[p].sent;
        s.acked += reps[p].acked;
        s.delivered += reps[p].delivered;
        s.rejected += reps[p].rejected;
        s.send_failed += reps[p].send_failed;
        s.skipped += reps[p].skipped;
        s.sent_win += reps[p].sent_win;
        s.acked_win += reps[p].acked_win;
        s.delivered_win += reps[p].delivered_win;
        s.live += reps[p].live;
        s.cpu_us += reps[p].cpu_us;
        hist_merge(&s.ack, &reps[p].ack);
        hist_merge(&s.deliv, &reps[p].deliv);
        if (!s.first_error[0])
            memcpy(s.first_error, reps[p].first_error, sizeof s.first_error);
    }
    double win = opt.duration;
    if (opt.typing) {
        double cpu = c1 - c0;
        printf("typing frames: sent %" PRId64 ", delivered %" PRId64 ", refused %" PRId64 ", send failed %" PRId64
               ", not sent (back-pressure) %" PRId64 "; %s\n",
               s.sent, s.delivered, s.rejected, s.send_failed, s.skipped,
               s.delivered == s.sent ? "every frame reached the partner" : "MISMATCH: some frames were not delivered");
        if (s.first_error[0])
            printf("  first error frame: %s\n", s.first_error);
        printf("throughput over the measured %.0f s: sent %.0f/s, delivered %.0f/s\n", win,
               (double)s.sent_win / win, (double)s.delivered_win / win);
        if (c0 >= 0 && s.delivered_win > 0)
            printf("server CPU: %.2f s in the window = %.1f us per typing frame (membership check, fan-out, delivery)\n",
                   cpu, cpu * 1e6 / (double)s.delivered_win);
        printf("box CPU in the window: %.2f of %.2f core-s busy (server %.2f, generator and everything else %.2f)\n",
               b1 - b0, tot1 - tot0, cpu, (b1 - b0) - cpu);
        print_hist("delivery latency:", &s.deliv);
        printf("RESULT mode=typing rate_target=%.0f delivered_per_s=%.0f cpu_us_per_frame=%.2f ok=%d "
               "deliv_p50_ms=%.3f deliv_p99_ms=%.3f\n", opt.rate,
               (double)s.delivered_win / win, s.delivered_win ? cpu * 1e6 / (double)s.delivered_win : 0.0,
               s.delivered == s.sent, (double)hist_quantile(&s.deliv, 0.5) / 1e6,
               (double)hist_quantile(&s.deliv, 0.99) / 1e6);
        return;
    }
    printf("messages: sent %" PRId64 ", acked %" PRId64 ", delivered %" PRId64 ", rejected %" PRId64
           ", send failed %" PRId64 ", not sent (back-pressure) %" PRId64 "; %s\n",
           s.sent, s.acked, s.delivered, s.rejected, s.send_failed, s.skipped,
           s.acked + s.rejected == s.sent && s.delivered == s.acked ? "every sent message was acked and delivered"
                                                                     : "MISMATCH: some sent messages were not acked or delivered");
    if (s.first_error[0])
        printf("  first error frame: %s\n", s.first_error);
    printf("throughput over the measured %.0f s: sent %.0f/s, acked %.0f/s, delivered %.0f/s\n", win,
           (double)s.sent_win / win, (double)s.acked_win / win, (double)s.delivered_win / win);
    print_hist("ack latency:", &s.ack);
    print_hist("delivery latency:", &s.deliv);
    double cpu = c1 - c0;
    if (c0 >= 0 && s.acked_win > 0)
        printf("server CPU: %.2f s in the window = %.1f us per message (persisted, acked and delivered)\n", cpu,
               cpu * 1e6 / (double)s.acked_win);
    printf("box CPU in the window: %.2f of %.2f core-s busy (server %.2f, generator and everything else %.2f);"
           " generator processes used %.2f s over the whole run\n",
           b1 - b0, tot1 - tot0, cpu, (b1 - b0) - cpu, (double)s.cpu_us / 1e6);
    double per = s.acked_win ? 1e6 / (double)s.acked_win : 0.0;
    double su = sv1.user - sv0.user, ss = sv1.sys - sv0.sys;
    double gu = g1.user - g0.user, gs = g1.sys - g0.sys;
    printf("CPU per message in the window: server user %.1f + sys %.1f us; generator user %.1f + sys %.1f us\n",
           su * per, ss * per, gu * per, gs * per);
    printf("RESULT cpu_split server_user_us=%.2f server_sys_us=%.2f gen_user_us=%.2f gen_sys_us=%.2f\n",
           su * per, ss * per, gu * per, gs * per);
    if (x0.vol >= 0 && x1.vol >= 0 && s.acked_win > 0) {
        double vs = (double)(x1.vol - x0.vol) / (double)s.acked_win;
        double is = (double)(x1.invol - x0.invol) / (double)s.acked_win;
        printf("server context switches per message in the window: %.2f voluntary + %.2f preempted\n", vs, is);
        printf("RESULT ctxsw_per_msg voluntary=%.3f preempted=%.3f\n", vs, is);
    }
    printf("RESULT mode=%s rate_target=%.0f delivered_per_s=%.0f acked_per_s=%.0f ack_p50_ms=%.3f ack_p99_ms=%.3f "
           "ack_p999_ms=%.3f deliv_p50_ms=%.3f deliv_p99_ms=%.3f deliv_p999_ms=%.3f cpu_us_per_msg=%.2f ok=%d\n",
           opt.rate > 0 ? "rate" : "closed", opt.rate, (double)s.delivered_win / win, (double)s.acked_win / win,
           (double)hist_quantile(&s.ack, 0.5) / 1e6, (double)hist_quantile(&s.ack, 0.99) / 1e6,
           (double)hist_quantile(&s.ack, 0.999) / 1e6, (double)hist_quantile(&s.deliv, 0.5) / 1e6,
           (double)hist_quantile(&s.deliv, 0.99) / 1e6, (double)hist_quantile(&s.deliv, 0.999) / 1e6,
           s.acked_win ? cpu * 1e6 / (double)s.acked_win : 0.0,
           s.acked + s.rejected == s.sent && s.delivered == s.acked);
}

/* ---- floor: the kernel's cost per delivery, no server ---- */

/* The reader side: connects `n` sockets to `dst` from 127.0.0.2.. and reads
 * whatever arrives until the parent closes them.  Runs in a child. */
static void floor_reader(const struct sockaddr_in *dst, size_t n, int ready_fd)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        _exit(2);
    for (size_t i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(i % (size_t)opt.sources));
        if (fd < 0 || bind(fd, (struct sockaddr *)&src, sizeof src) < 0 ||
            connect(fd, (const struct sockaddr *)dst, sizeof *dst) < 0)
            _exit(3);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    char one = 1;
    if (write(ready_fd, &one, 1) != 1)
        _exit(2);
    static char buf[65536];
    struct epoll_event evs[512];
    size_t open_n = n;
    while (open_n > 0) {
        int k = epoll_wait(ep, evs, 512, 1000);
        for (int j = 0; j < k; j++) {
            ssize_t r = read(evs[j].data.fd, buf, sizeof buf);
            if (r <= 0) {
                close(evs[j].data.fd);
                open_n--;
            }
        }
    }
    _exit(0);
}

static void run_hop_floor(void);

static void run_floor(void)
{
    size_t n = (size_t)opt.conns;
    long rounds = opt.bcast_rounds > 0 ? opt.bcast_rounds : 10;
    size_t len = (size_t)opt.frame_bytes;
    printf("== floor: %zu loopback TCP connections (TCP_NODELAY, as lws sets), %ld rounds of one %zu-byte send()"
           " each; CPU of the sending process only (the kernel runs the receiving side of loopback in the sender's"
           " softirq, so that is included, as it is in the server's figures)\n",
           n, rounds, len);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001u)};
    socklen_t al = sizeof a;
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 4096) < 0 ||
        getsockname(ls, (struct sockaddr *)&a, &al) < 0) {
        perror("floor: listen");
        exit(1);
    }
    int pp[2];
    if (pipe(pp) < 0) {
        perror("pipe");
        exit(1);
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        close(ls);
        close(pp[0]);
        floor_reader(&a, n, pp[1]);
    }
    close(pp[1]);
    int *fds = calloc(n, sizeof *fds);
    char *frame = malloc(2 * len);
    if (!fds || !frame)
        exit(1);
    memset(frame, 'x', 2 * len);
    for (size_t i = 0; i < n; i++) {
        fds[i] = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        int on = 1;
        if (fds[i] < 0 || setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) < 0) {
            perror("floor: accept");
            exit(1);
        }
    }
    char one;
    if (read(pp[0], &one, 1) != 1) {
        fprintf(stderr, "wsbench: the floor reader failed to connect\n");
        exit(1);
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (size_t i = 0; i < n; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    }
    struct epoll_event *evs = malloc(1024 * sizeof *evs);
    /* One unmeasured round first: a socket's first send() allocates its
     * buffers, which the server's connections have long done. */
    for (size_t i = 0; i < n; i++)
        if (send(fds[i], frame, len, MSG_NOSIGNAL) < 0)
            break;
    sleep_until(mono_ns() + 200 * NS_PER_MS);
    static const char *names[] = {
        "send() per connection",
        "POLLOUT round trip (epoll_ctl +OUT, epoll_wait, send(), epoll_ctl -OUT) per connection",
        "two frames as two send()s per connection",
        "two frames as one send() per connection",
    };
    double per[4] = {0};
    for (int mode = 0; mode < 4; mode++) {
        int64_t sends = 0, wall0 = mono_ns();
        double c0 = (double)self_cpu_us();
        for (long r = 0; r < rounds; r++) {
            if (mode == 1) {
                for (size_t i = 0; i < n; i++) {
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = i};
                    epoll_ctl(ep, EPOLL_CTL_MOD, fds[i], &ev);
                }
                size_t left = n;
                while (left > 0) {
                    int k = epoll_wait(ep, evs, 1024, 1000);
                    if (k <= 0)
                        break;
                    for (int j = 0; j < k; j++) {
                        if (!(evs[j].events & EPOLLOUT))
                            continue;
                        size_t i = evs[j].data.u64;
                        sends += send(fds[i], frame, len, MSG_NOSIGNAL) == (ssize_t)len;
                        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};
                        epoll_ctl(ep, EPOLL_CTL_MOD, fds[i], &ev);
                        left--;
                    }
                }
            } else {
                for (size_t i = 0; i < n; i++) {
                    if (mode == 0)
                        sends += send(fds[i], frame, len, MSG_NOSIGNAL) == (ssize_t)len;
                    else if (mode == 2)
                        sends += send(fds[i], frame, len, MSG_NOSIGNAL) == (ssize_t)len &&
                                 send(fds[i], frame, len, MSG_NOSIGNAL) == (ssize_t)len;
                    else
                        sends += send(fds[i], frame, 2 * len, MSG_NOSIGNAL) == (ssize_t)(2 * len);
                }
            }
            sleep_until(mono_ns() + 100 * NS_PER_MS); /* the reader catches up, idle between rounds */
        }
        double cpu = ((double)self_cpu_us() - c0) / 1e6;
        per[mode] = sends ? cpu * 1e6 / (double)sends : 0;
        printf("  %-90s %8.2f us CPU per connection (%" PRId64 " of %zu, %.1f s)\n", names[mode], per[mode], sends,
               n * (size_t)rounds, ms(mono_ns() - wall0 - rounds * 100 * NS_PER_MS) / 1e3);
    }
    printf("RESULT floor_conns=%zu floor_bytes=%zu send_us=%.2f pollout_send_us=%.2f two_sends_us=%.2f"
           " one_send_of_two_us=%.2f\n",
           n, len, per[0], per[1], per[2], per[3]);
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
    close(ls);
    close(ep);
    free(evs);
    free(fds);
    free(frame);
    waitpid(pid, NULL, 0);
    run_hop_floor();
}

/* The cost of one cross-thread wake-up, the hand-off the server makes
 * between its loop, its workers and the store's writer: two threads
 * bounce a token through two eventfds (a blocking read, then a write that
 * wakes the other), so every hop is one sleep and one wake-up, as when a
 * queue goes from empty to non-empty.  CPU of this process per hop. */
struct hop_arg {
    int in, out;
    long n;
};

static void *hop_thread(void *p)
{
    struct hop_arg *a = p;
    uint64_t v;
    for (long i = 0; i < a->n; i++) {
        if (read(a->in, &v, sizeof v) != (ssize_t)sizeof v)
            break;
        v = 1;
        if (write(a->out, &v, sizeof v) != (ssize_t)sizeof v)
            break;
    }
    return NULL;
}

static void run_hop_floor(void)
{
    const long n = 20000;
    int ab = eventfd(0, EFD_CLOEXEC), ba = eventfd(0, EFD_CLOEXEC);
    if (ab < 0 || ba < 0) {
        perror("eventfd");
        exit(1);
    }
    struct hop_arg a = {.in = ab, .out = ba, .n = n};
    struct cpu_split c0 = proc_cpu((long)getpid());
    int64_t t0 = mono_ns();
    pthread_t th;
    if (pthread_create(&th, NULL, hop_thread, &a) != 0) {
        perror("pthread_create");
        exit(1);
    }
    uint64_t v;
    for (long i = 0; i < n; i++) {
        v = 1;
        if (write(ab, &v, sizeof v) != (ssize_t)sizeof v || read(ba, &v, sizeof v) != (ssize_t)sizeof v)
            break;
    }
    pthread_join(th, NULL);
    int64_t t1 = mono_ns();
    struct cpu_split c1 = proc_cpu((long)getpid());
    double hops = 2.0 * (double)n;
    printf("== floor: a cross-thread wake-up (eventfd ping-pong, %ld round trips): %.2f us CPU per hop"
           " (user %.2f, sys %.2f), %.2f us wall per hop\n", n,
           ((c1.user - c0.user) + (c1.sys - c0.sys)) * 1e6 / hops, (c1.user - c0.user) * 1e6 / hops,
           (c1.sys - c0.sys) * 1e6 / hops, (double)(t1 - t0) / 1e3 / hops);
    printf("RESULT floor_hop_us=%.2f floor_hop_wall_us=%.2f\n",
           ((c1.user - c0.user) + (c1.sys - c0.sys)) * 1e6 / hops, (double)(t1 - t0) / 1e3 / hops);
    close(ab);
    close(ba);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: chatli_wsbench --url http://127.0.0.1:PORT [options] idle|chat|typing\n"
            "       chatli_wsbench [--conns N] [--bcast ROUNDS] [--frame-bytes B] floor\n"
            "  --server-pid PID   read the server's CPU and RSS from /proc (recommended);\n"
            "                     PID,PID,... sums the CPU of several instances (RSS: the first)\n"
            "  --ws-ports P,P,... WebSockets go to these ports of the --url host, connection g to\n"
            "                     the (g mod n)-th: with two ports, the two users of every chat\n"
            "                     pair sit on different instances (REST still uses --url)\n"
            "  --tokens FILE      reuse users listed there (\"id token\" lines); new ones are appended\n"
            "  --procs N          generator processes (default: one per 10,000 connections)\n"
            "  --sources N        source addresses 127.0.0.2.. (default 16)\n"
            "  --pending N        handshakes in flight per process (default 256)\n"
            "  --sio              Socket.IO over WebSocket at /socket.io/ instead of /ws\n"
            " idle:\n"
            "  --conns N          connections to hold (default 1000)\n"
            "  --users N          distinct users among them (default: one per connection)\n"
            "  --settle S         seconds between connecting and reading RSS (default 3)\n"
            "  --hold S           seconds to hold before broadcasting (default 5)\n"
            "  --bcast N          broadcast rounds (default 10; 0 = none)\n"
            " chat:\n"
            "  --pairs N          direct chats, two connected users each (default 500)\n"
            "  --rate R           total message.send per second (default 0 = closed loop)\n"
            "  --window N         closed loop: frames in flight per connection (default 1)\n"
            "  --warmup S, --duration S, --drain S   (defaults 2, 10, 5)\n"
            " typing: the chat options; --rate is required (typing frames per second)\n"
            " floor: --conns, --sources, --bcast (rounds, default 10), --frame-bytes B (default 300)\n");
}

/* "A,B,C" of positive integers into out[] (at most max); 0 or -1. */
static int parse_list(const char *arg, long *out, int max, int *n)
{
    *n = 0;
    const char *p = arg;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno != 0 || v <= 0 || *n >= max || (*end != ',' && *end != '\0'))
            return -1;
        out[(*n)++] = v;
        p = *end == ',' ? end + 1 : end;
        if (*end == ',' && !*p)
            return -1;
    }
    return *n > 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"url", required_argument, NULL, 'u'},      {"server-pid", required_argument, NULL, 'p'},
        {"tokens", required_argument, NULL, 't'},   {"procs", required_argument, NULL, 'P'},
        {"sources", required_argument, NULL, 's'},  {"pending", required_argument, NULL, 'q'},
        {"conns", required_argument, NULL, 'n'},    {"users", required_argument, NULL, 'U'},
        {"settle", required_argument, NULL, 'S'},   {"hold", required_argument, NULL, 'h'},
        {"bcast", required_argument, NULL, 'b'},    {"pairs", required_argument, NULL, 'c'},
        {"rate", required_argument, NULL, 'r'},     {"window", required_argument, NULL, 'w'},
        {"warmup", required_argument, NULL, 'W'},   {"duration", required_argument, NULL, 'd'},
        {"drain", required_argument, NULL, 'D'},    {"help", no_argument, NULL, 'H'},
        {"frame-bytes", required_argument, NULL, 'F'},
        {"sio", no_argument, NULL, 'I'},
        {"ws-ports", required_argument, NULL, 'O'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'u': opt.url = optarg; break;
        case 'p':
            if (parse_list(optarg, opt.server_pids, MAX_SERVER_PIDS, &opt.n_server_pids) != 0) {
                usage(stderr);
                return 2;
            }
            opt.server_pid = opt.server_pids[0];
            break;
        case 'O': {
            long ports[MAX_WS_PORTS];
            if (parse_list(optarg, ports, MAX_WS_PORTS, &opt.n_ws_ports) != 0) {
                usage(stderr);
                return 2;
            }
            for (int i = 0; i < opt.n_ws_ports; i++) {
                if (ports[i] < 1 || ports[i] > 65535) {
                    usage(stderr);
                    return 2;
                }
                opt.ws_ports[i] = (int)ports[i];
            }
            break;
        }
        case 't': opt.tokens_file = optarg; break;
        case 'P': opt.procs = atol(optarg); break;
        case 's': opt.sources = atol(optarg); break;
        case 'q': opt.pending = atol(optarg); break;
        case 'n': opt.conns = atol(optarg); break;
        case 'U': opt.users = atol(optarg); break;
        case 'S': opt.settle = atof(optarg); break;
        case 'h': opt.hold = atof(optarg); break;
        case 'b': opt.bcast_rounds = atol(optarg); break;
        case 'c': opt.pairs = atol(optarg); break;
        case 'r': opt.rate = atof(optarg); break;
        case 'w': opt.window = atol(optarg); break;
        case 'W': opt.warmup = atof(optarg); break;
        case 'd': opt.duration = atof(optarg); break;
        case 'D': opt.drain = atof(optarg); break;
        case 'F': opt.frame_bytes = atol(optarg); break;
        case 'I': opt.sio = 1; break;
        case 'H': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    opt.scenario = argv[optind];
    int is_idle = strcmp(opt.scenario, "idle") == 0, is_chat = strcmp(opt.scenario, "chat") == 0;
    int is_floor = strcmp(opt.scenario, "floor") == 0;
    opt.typing = strcmp(opt.scenario, "typing") == 0;
    if (is_floor) {
        if (opt.conns < 1 || opt.conns > 100000 || opt.sources < 1 || opt.sources > 250 || opt.frame_bytes < 1 ||
            opt.frame_bytes > 65536 || opt.bcast_rounds < 0 || opt.bcast_rounds > 1000) {
            usage(stderr);
            return 2;
        }
        setvbuf(stdout, NULL, _IOLBF, 0);
        signal(SIGPIPE, SIG_IGN);
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
            if ((rlim_t)opt.conns + 64 > rl.rlim_cur) {
                fprintf(stderr, "wsbench: %ld connections exceed the fd limit %lu\n", opt.conns,
                        (unsigned long)rl.rlim_cur);
                return 2;
            }
        }
        run_floor();
        return 0;
    }
    if (opt.typing)
        is_chat = 1;
    if (!opt.url || (!is_idle && !is_chat) || (opt.typing && opt.rate <= 0) ||
        sscanf(opt.url, "http://%63[^:/]:%d", opt.host, &opt.port) != 2 ||
        opt.conns < 1 || opt.pairs < 1 || opt.sources < 1 || opt.sources > 250 || opt.pending < 1 ||
        opt.window < 1 || opt.duration <= 0 || opt.warmup < 0 || opt.rate < 0 || opt.bcast_rounds > 1000 ||
        opt.procs < 0 || opt.procs > MAX_PROCS) {
        usage(stderr);
        return 2;
    }
    struct in_addr a;
    if (inet_pton(AF_INET, opt.host, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127) {
        fprintf(stderr, "wsbench: the server must be on a 127.x.x.x address (loopback only)\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress shows through tee */
    if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    size_t total = is_idle ? (size_t)opt.conns : (size_t)opt.pairs * 2;
    if (opt.procs == 0)
        opt.procs = (long)((total + 9999) / 10000);
    if (opt.procs > MAX_PROCS || (rlim_t)(total / (size_t)opt.procs + 64) > rl.rlim_cur) {
        fprintf(stderr, "wsbench: %zu connections over %ld processes exceed the fd limit %lu\n", total, opt.procs,
                (unsigned long)rl.rlim_cur);
        return 2;
    }
    size_t want = is_idle ? (size_t)(opt.users > 0 && opt.users < opt.conns ? opt.users : opt.conns) : total;

    struct rest *r = rest_new(opt.url);
    if (!r)
        return 1;
    load_tokens(want);
    if (nusers)
        printf("seeding: %zu users from %s\n", nusers, opt.tokens_file);
    register_users(r, want);
    if (is_chat)
        create_chats(r, (size_t)opt.pairs);

    spawn_workers(opt.procs, total, is_chat);
    if (is_idle)
        run_idle(r);
    else
        run_chat();
    quit_workers();
    rest_free(r);
    curl_global_cleanup();
    return 0;
}
