/* Layering probe, compiled with chatli_ws's flags: the gateway may not
 * reach an adapter's internals (tests/CMakeLists.txt). */
#include "store/store_sqlite_internal.h"
