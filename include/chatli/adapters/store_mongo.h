/* store_mongo.h - the MongoDB adapter of the store port (mongo-c-driver 1.23).
 *
 * Selected in main.c when MONGODB_URI is set.  Behaves like the SQLite adapter
 * for every operation of store/store.h; the collections, indexes and shard
 * keys are described in docs/data-model.md ("MongoDB"). */
#ifndef CHATLI_ADAPTERS_STORE_MONGO_H
#define CHATLI_ADAPTERS_STORE_MONGO_H

#include "chatli/store.h"

/* Connects to the deployment named by `uri` (borrowed; "mongodb://..." or
 * "mongodb+srv://..."), creates the indexes and starts the adapter's writer
 * thread.  `db` (borrowed, may be NULL or "") names the database; without it
 * the URI's path is used, else "chatli".
 *
 * Pool options the URI does not set take the scaling guide's defaults:
 * maxPoolSize=50, serverSelectionTimeoutMS=5000, socketTimeoutMS=45000, and
 * waitQueueTimeoutMS=2000 so that an exhausted pool answers
 * CHAT_E_UNAVAILABLE instead of blocking.  Writes use majority write concern
 * when the deployment is a replica set or a sharded cluster and the URI sets
 * no write concern of its own.
 *
 * On success *out is new and needs exactly one store_close(); on failure
 * nothing is left to free.  Errors: CHAT_E_BAD_REQUEST (the URI does not
 * parse), CHAT_E_UNAVAILABLE (no server answered, or the indexes could not
 * be created; details logged).  Call from one thread at a time (start-up). */
int store_mongo_open(const char *uri, const char *db, struct store **out, struct chat_err *err);

#endif
