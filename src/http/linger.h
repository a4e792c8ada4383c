/* linger.h - lingering close for connections answered before their body
 * was read.
 *
 * When a request declares a body we will not read (Content-Length over
 * 1 MiB) we answer at once, and MHD then shuts down its side and closes
 * the socket.  Closing a socket with unread input makes the kernel send a
 * reset, which can destroy the answer before the client reads it.  So the
 * server hands a duplicate of such a socket here just before MHD closes its
 * own descriptor: the socket stays open, and this thread reads and discards
 * whatever the client still sends until the client closes, a byte budget is
 * spent or a few seconds pass (what nginx calls lingering_close). */
#ifndef CHATLI_HTTP_LINGER_H
#define CHATLI_HTTP_LINGER_H

#include "chatli/err.h"

struct http_linger;

/* Starts the linger thread.  *out is new: http_linger_close().
 * Errors: CHAT_E_INTERNAL. */
int http_linger_open(int timeout_ms, struct http_linger **out, struct chat_err *err);

/* Steals `fd` (a socket whose write side is already shut down): drains it,
 * then closes it.  Any thread.  If too many sockets already linger, or the
 * linger thread has stopped, it is closed at once. */
void http_linger_add(struct http_linger *l, int fd);

/* Closes every lingering socket, stops the thread and frees. */
void http_linger_close(struct http_linger *l);

#endif
