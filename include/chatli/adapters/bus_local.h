/* bus_local.h - the in-process adapter of the bus port (one instance). */
#ifndef CHATLI_ADAPTERS_BUS_LOCAL_H
#define CHATLI_ADAPTERS_BUS_LOCAL_H

#include "chatli/bus.h"

/* The in-process adapter: publish calls the subscriber directly. */
int bus_local_new(struct bus **out, struct chat_err *err);

#endif
