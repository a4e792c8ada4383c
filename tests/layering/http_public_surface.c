/* Layering probe, compiled with chatli_http's flags: the control case.  The
 * public surface and the library's own driver build, so the failing probes
 * fail for the reason they name, not for broken flags. */
#include <microhttpd.h>

#include "chatli/core.h"
#include "chatli/store.h"

int layering_probe(void) { return CHAT_OK; }
