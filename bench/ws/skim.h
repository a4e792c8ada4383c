/* skim.h - find one member of a JSON object without building a tree.
 *
 * The generator reads every frame the server sends (up to about 100,000 a
 * second) on a machine whose two cores it shares with the server, so it
 * cannot afford a full parse per frame.  skim_get() walks the text once,
 * tracking string and nesting state, and returns the raw span of the first
 * member named `key` at the wanted depth.  Strings come back without their
 * quotes and still escaped; the benchmark only looks for values it wrote
 * itself (digits and letters), so it never needs to unescape.  Frames whose
 * content matters beyond that (seeding, errors) are parsed with jansson. */
#ifndef CHATLI_BENCH_SKIM_H
#define CHATLI_BENCH_SKIM_H

#include <stddef.h>

/* Looks for member `key` of an object at nesting depth `depth` (1 = the
 * top-level object, 2 = a container inside it, ...: arrays count as a
 * level; 0 = any depth).  On success
 * returns 1 and sets *val and *len to the value's span inside `js` (borrowed: valid
 * while `js` is); a string value is given without its quotes.  Returns 0 when
 * absent or when the text is not well-formed enough to tell. */
int skim_get(const char *js, size_t n, const char *key, int depth, const char **val, size_t *len);

/* skim_get + compare: 1 when member `key` at `depth` is the string `want`. */
int skim_is(const char *js, size_t n, const char *key, int depth, const char *want);

#endif
