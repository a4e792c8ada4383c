/* media_local.h - the media port stored on this host's disk. */
#ifndef CHATLI_ADAPTERS_MEDIA_LOCAL_H
#define CHATLI_ADAPTERS_MEDIA_LOCAL_H

#include "chatli/media.h"

/* Opens (creating) `data_dir`/uploads and its .tmp folder for uploads in
 * progress.  Files are named by their content, "<sha256 hex>.<format>",
 * so the same image uploaded twice is stored once, and served by the
 * transport at /uploads/<name>.  *out is new: media_close().  Errors:
 * CHAT_E_UNAVAILABLE (the folders cannot be created or opened),
 * CHAT_E_INTERNAL. */
int media_local_open(const char *data_dir, struct media **out, struct chat_err *err);

#endif
