/* media_internal.h - what the media adapters share beside the port
 * (implemented in media.c, chatli_media). */
#ifndef CHATLI_MEDIA_MEDIA_INTERNAL_H
#define CHATLI_MEDIA_MEDIA_INTERNAL_H

#include <stdint.h>

/* Removes the files of `dir` whose names start with "up-" (uploads in
 * progress, written by the REST transport) and that were last modified
 * more than `older_than_s` seconds ago: what a crash mid-upload left.
 * Younger ones may belong to another instance sharing the folder.
 * Returns how many were removed; errors are logged and skipped. */
int media__sweep_tmp(const char *dir, int64_t older_than_s);

#endif
