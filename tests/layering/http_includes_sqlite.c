/* Layering probe, compiled with chatli_http's flags: a transport that
 * includes a database driver must not build (tests/CMakeLists.txt). */
#include <sqlite3.h>
