/* store_sqlite.h - the embedded SQLite adapter of the store port. */
#ifndef CHATLI_ADAPTERS_STORE_SQLITE_H
#define CHATLI_ADAPTERS_STORE_SQLITE_H

#include "chatli/store.h"

/* Opens (creating and migrating as needed) the database at `path`, a file
 * path such as "./data/chatli.db", or ":memory:" for a private in-memory
 * database (tests).  Starts the adapter's writer thread.  On success *out is
 * new and needs exactly one store_close(); on failure nothing is left to free.
 * Errors: CHAT_E_UNAVAILABLE (cannot open/migrate; details logged). */
int store_sqlite_open(const char *path, struct store **out, struct chat_err *err);

#endif
