/* Layering control, compiled with chatli_media_cloudinary's flags: the one
 * library allowed to include libcurl builds with it. */
#include <curl/curl.h>

#include "chatli/media.h"
