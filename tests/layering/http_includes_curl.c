/* Layering probe, compiled with chatli_http's flags: only the Cloudinary
 * media adapter may use libcurl, so the transport must not build with it
 * (tests/CMakeLists.txt). */
#include <curl/curl.h>
