/* Layering probe, compiled with chatli_media_local's flags: the local media
 * adapter has no business with libcurl (tests/CMakeLists.txt). */
#include <curl/curl.h>
