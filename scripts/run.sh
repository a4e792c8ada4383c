#!/usr/bin/env bash
# run.sh - installs what chatli needs, builds it (Release, build/) and runs it.
#
#   scripts/run.sh [chatli arguments...]
#
# Configuration is the environment (see README.md); with nothing set the
# server listens on 0.0.0.0:8080 with the embedded store in ./data (relative
# to the repository root), which this script creates.  The server is exec'd,
# so SIGTERM/SIGINT reach it directly and it drains as documented in
# docs/operations.md.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

scripts/install-deps.sh build
# -DCHATLI_SANITIZE= keeps a sanitizer setting left in build/'s cache by hand
# out of the server you run; the other cached options (e.g. CHATLI_WERROR
# from test.sh) are kept so switching between the two commands does not
# rebuild everything.
scripts/build.sh --target chatli build -DCHATLI_SANITIZE=

mkdir -p "${DATA_DIR:-./data}"
exec build/chatli "$@"
