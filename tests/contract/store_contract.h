/* store_contract.h - the store port's conformance suite, shared by adapters.
 *
 * Every adapter's contract test (test_store_sqlite.c, later
 * test_store_mongo.c) runs the same cases through the port only: no SQL,
 * no BSON, nothing an adapter could special-case.  Each case opens a fresh,
 * empty store through the adapter's opener, works on it, and closes it.
 *
 * The suite uses tests/check.h, whose counters are per translation unit, and
 * tests/CMakeLists.txt builds each test from its one file; so a contract test
 * includes store_contract.c itself (`#include "contract/store_contract.c"`)
 * and the suite's checks land in the test's own "N passed, N failed". */
#ifndef CHATLI_TESTS_CONTRACT_STORE_CONTRACT_H
#define CHATLI_TESTS_CONTRACT_STORE_CONTRACT_H

#include <stdbool.h>

struct store;

/* Opens a fresh, empty store into *out (new; the suite store_close()s it).
 * Returns 0 or a negative CHAT_E_* code. */
typedef int (*store_contract_open_fn)(void *arg, struct store **out);

struct store_contract_opts {
    store_contract_open_fn open;
    void *arg;          /* passed to `open` */
    const char *label;  /* printed with the summary, e.g. "sqlite :memory:" */
    /* The adapter assigns seqs 1, 2, 3... with no gap and in append order
     * (one writer, as SQLite).  Adapters that may leave gaps (the contract
     * allows them) set false and only uniqueness and growth are checked. */
    bool strict_seq;
};

/* Runs every case.  Returns the number of checks that failed in this run
 * (they are also counted in the caller's check_done()). */
int store_contract_run(const struct store_contract_opts *o);

#endif
