#!/usr/bin/env bash
# check-source.sh - static checks that keep the layering honest (STYLE.md 1, 8).
#
# 1. src/core/ includes no driver header: the domain services reach the
#    outside world only through the store, bus and cache ports, so swapping
#    SQLite for MongoDB or adding Redis never touches core.
# 2. Every header under src/ compiles on its own (it includes what it uses),
#    with the same warnings as the build and -Werror.
# 3. docs/openapi.yaml is valid YAML holding an OpenAPI 3.0 document (and,
#    where openapi-spec-validator is installed, a valid one).
#
# Exit 0 when both hold; otherwise print each offence and exit 1.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
fail=0

# --- 1. no driver headers in core -------------------------------------------
driver_re='^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([^>"]*/)?(microhttpd|libwebsockets|mongoc|bson|sqlite3|hiredis|curl)\.h[>"]'
driver_dir_re='^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](libwebsockets|mongoc|libmongoc-1\.0|bson|libbson-1\.0|hiredis|curl)/'
if [ -d src/core ]; then
    hits=$(grep -rnE --include='*.c' --include='*.h' -e "$driver_re" -e "$driver_dir_re" src/core || true)
    if [ -n "$hits" ]; then
        echo "check-source: src/core/ includes a driver header (use a port instead):"
        echo "$hits"
        fail=1
    else
        echo "check-source: src/core/ includes no driver header"
    fi
fi

# --- 2. each header compiles alone -------------------------------------------
pc_mods=(libmicrohttpd libwebsockets jansson libsodium sqlite3 libcurl libmongoc-1.0 hiredis)
cflags=()
for m in "${pc_mods[@]}"; do
    if pkg-config --exists "$m"; then
        # shellcheck disable=SC2207  # pkg-config output is whitespace-separated flags
        cflags+=($(pkg-config --cflags "$m"))
    else
        echo "check-source: pkg-config module $m not found (run scripts/install-deps.sh build)"
        fail=1
    fi
done

n=0
bad=0
while IFS= read -r -d '' h; do
    n=$((n + 1))
    if ! out=$(gcc -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Werror -D_GNU_SOURCE \
        -fsyntax-only -Isrc "${cflags[@]}" -x c "$h" 2>&1); then
        echo "check-source: $h does not compile alone:"
        echo "$out"
        bad=$((bad + 1))
    fi
done < <(find src -name '*.h' -print0 | sort -z)
if [ "$bad" -gt 0 ]; then
    echo "check-source: $bad of $n headers under src/ do not compile alone"
    fail=1
else
    echo "check-source: all $n headers under src/ compile alone"
fi

# --- 3. the OpenAPI document parses -------------------------------------------
if [ -f docs/openapi.yaml ]; then
    if /usr/bin/python3 - docs/openapi.yaml <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1], encoding="utf-8"))
assert isinstance(doc, dict), "not a mapping"
assert str(doc.get("openapi", "")).startswith("3.0."), "openapi: 3.0.x expected"
assert doc.get("paths"), "no paths"
print("check-source: docs/openapi.yaml parses (OpenAPI %s, %d paths)"
      % (doc["openapi"], len(doc["paths"])))
PY
    then :; else
        echo "check-source: docs/openapi.yaml does not parse"
        fail=1
    fi
    # Full schema validation where the validator is installed (the pyenv
    # python of this machine image has it; Debian does not package it).
    for py in python3 /usr/bin/python3; do
        if command -v "$py" >/dev/null && "$py" -c 'import openapi_spec_validator, yaml' 2>/dev/null; then
            if "$py" -c 'import sys, yaml
from openapi_spec_validator import validate
validate(yaml.safe_load(open(sys.argv[1], encoding="utf-8")))' docs/openapi.yaml; then
                echo "check-source: docs/openapi.yaml is a valid OpenAPI document (openapi-spec-validator)"
            else
                echo "check-source: docs/openapi.yaml fails OpenAPI validation"
                fail=1
            fi
            break
        fi
    done
fi

exit "$fail"
