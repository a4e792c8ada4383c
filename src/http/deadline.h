/* deadline.h - request head and body deadlines on every request of a
 * REST connection.
 *
 * libmicrohttpd's connection timeout counts idle time only: a client that
 * sends one header line every few seconds keeps a connection (and an MHD
 * pool) forever.  So each tracked connection carries an absolute deadline
 * (struct http_conn.deadline_ms, CLOCK_MONOTONIC ms, 0 = none) that
 * server.c moves as the connection goes through its states:
 *   handed over, or a request completed   -> now + idle timeout (the next
 *                                            request line must have come)
 *   request line parsed (URI callback)    -> now + REQUEST_HEAD_TIMEOUT_S
 *   head complete, a body declared        -> now + REQUEST_BODY_TIMEOUT_S
 *   body complete (the request is ours)   -> none
 * and one thread here looks at every connection a few times a second and
 * shuts down the socket of any whose deadline passed; MHD then reads
 * end-of-file and closes it as usual (NOTIFY_CLOSED, admission given back).
 * Bytes trickling in never move a deadline. */
#ifndef CHATLI_HTTP_DEADLINE_H
#define CHATLI_HTTP_DEADLINE_H

#include "chatli/err.h"

struct http_server;
struct http_deadlines;

/* Starts the thread over `s`'s connection list (borrowed: stop the thread
 * before freeing `s`).  *out is new: http_deadlines_close().  Errors:
 * CHAT_E_INTERNAL. */
int http_deadlines_open(struct http_server *s, struct http_deadlines **out, struct chat_err *err);

/* Stops the thread and frees.  NULL is fine. */
void http_deadlines_close(struct http_deadlines *d);

#endif
