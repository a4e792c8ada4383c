/* Layering probe, compiled with chatli_http's flags: one layer may not
 * reach another layer's internal header (tests/CMakeLists.txt). */
#include "ws/ws_internal.h"
