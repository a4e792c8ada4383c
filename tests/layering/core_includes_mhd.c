/* Layering probe, compiled with chatli_core's flags: core may not include
 * a transport's library (tests/CMakeLists.txt). */
#include <microhttpd.h>
