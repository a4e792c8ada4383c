#!/usr/bin/env bash
# check-source.sh - static checks that keep the layering honest (STYLE.md 1, 8).
#
# 1. Include rules (docs/architecture.md): each folder of src/ may include
#    only the chatli/ headers and driver headers of its allow-list below,
#    its own folder's headers by bare name, and never "../" or another
#    folder's file.  CMake enforces the same at build time (no global -Isrc,
#    poisoned driver headers; tests/layering/ shows it); this check names
#    the offending line before anything is built.
# 2. Every header under include/ and src/ compiles on its own (it includes
#    what it uses), with the same warnings as the build and -Werror.
# 3. docs/openapi.yaml is valid YAML holding an OpenAPI 3.0 document that
#    validates against the OpenAPI 3.0 schema (tests/openapi: swagger-parser
#    from `npm ci` of the committed lock; also openapi-spec-validator where a
#    python has it) and passes tests/e2e/openapi_check.py's lint (Debian's
#    python3-jsonschema): nullable only beside a type, every object a
#    response holds closed with additionalProperties: false, required names
#    listed, $refs resolved, examples valid.
#
# Exit 0 when all hold; otherwise print each offence and exit 1.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
fail=0

# --- 1. include allow-lists ---------------------------------------------------
util='err|oid|clock|log|metrics'
# path glob -> allowed chatli/ headers (regex, without .h) and driver headers.
# Adapters may include their own constructor header from chatli/adapters/.
rules=(
    "include/chatli/*|$util|store|bus|cache|core|config|media|sio_poll|"
    "src/util/*|$util|"
    "src/store/store.c|$util|store|"
    "src/bus/bus_redis*|$util|bus|adapters/bus_redis|adapters/redis_conn|hiredis/hiredis"
    "src/bus/*|$util|bus|adapters/bus_local|"
    "src/cache/cache_redis*|$util|cache|adapters/cache_redis|adapters/cache_mem|adapters/redis_conn|hiredis/hiredis"
    "src/cache/*|$util|cache|adapters/cache_mem|"
    "src/core/*|$util|store|bus|cache|core|"
    "src/store/store_sqlite*|$util|store|adapters/store_sqlite|sqlite3"
    "src/store/store_mongo*|$util|store|adapters/store_mongo|mongoc/mongoc|bson/bson"
    "src/media/media_local*|$util|media|adapters/media_local|"
    "src/media/media_cloudinary*|$util|media|adapters/media_cloudinary|curl/curl"
    "src/media/*|$util|media|"
    "src/redis/*|$util|adapters/redis_conn|hiredis/hiredis|curl/curl"
    "src/net/*|$util|adapters/acceptor|"
    "src/http/*|$util|store|bus|cache|core|config|media|adapters/http_server|sio_poll|microhttpd"
    "src/ws/*|$util|bus|cache|core|config|adapters/ws_server|sio_poll|libwebsockets"
    "src/main.c|.*|"
    "src/config.c|$util|config|adapters/http_server|"
)
drivers='microhttpd|libwebsockets|mongoc|bson|sqlite3|hiredis|curl'
nfiles=0
while IFS= read -r -d '' f; do
    nfiles=$((nfiles + 1))
    allow=
    for r in "${rules[@]}"; do
        pat=${r%%|*}
        # shellcheck disable=SC2053  # $pat is a glob on purpose
        if [[ $f == $pat ]]; then allow=${r#*|}; break; fi
    done
    if [ -z "$allow" ]; then
        echo "check-source: $f matches no include rule (add one to scripts/check-source.sh)"
        fail=1
        continue
    fi
    allow_re="^(${allow%|})\$"
    while IFS= read -r line; do
        n=${line%%:*}
        inc=$(sed -E 's/^[^#]*#[[:space:]]*include[[:space:]]*([<"][^>"]*[>"]).*/\1/' <<<"${line#*:}")
        name=${inc:1:${#inc}-2}
        ok=1
        case "$inc" in
        \"chatli/*\")
            base=${name#chatli/}
            [[ ${base%.h} =~ $allow_re ]] || ok=0
            ;;
        \"*/*\") ok=0 ;; # another folder's file, or ../
        \"*\") ;;        # a header beside this file
        \<*\>)
            stem=${name%.h}
            if [[ $stem =~ ^(.*/)?($drivers)(/.*)?$ ]]; then
                [[ $stem =~ $allow_re ]] || ok=0
            fi
            ;;
        esac
        if [ "$ok" = 0 ]; then
            echo "check-source: $f:$n: #include $inc is not allowed here (include rules in scripts/check-source.sh)"
            fail=1
        fi
    done < <(grep -nE '^[[:space:]]*#[[:space:]]*include' "$f" || true)
done < <(find src include -name '*.[ch]' -print0 | sort -z)
echo "check-source: include rules checked over $nfiles files"

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
        -fsyntax-only -Iinclude "${cflags[@]}" -x c "$h" 2>&1); then
        echo "check-source: $h does not compile alone:"
        echo "$out"
        bad=$((bad + 1))
    fi
done < <(find include src -name '*.h' -print0 | sort -z)
if [ "$bad" -gt 0 ]; then
    echo "check-source: $bad of $n headers do not compile alone"
    fail=1
else
    echo "check-source: all $n headers under include/ and src/ compile alone"
fi

# --- 3. the OpenAPI document parses and validates -----------------------------
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
    # The OpenAPI 3.0 schema, with swagger-parser (npm; Debian packages no
    # OpenAPI validator).  npm ci only when the lock changed.
    oa=tests/openapi
    if [ ! -f $oa/node_modules/.package-lock.json ] ||
        [ $oa/package-lock.json -nt $oa/node_modules/.package-lock.json ]; then
        (cd $oa && npm ci --no-audit --no-fund --loglevel=error) ||
            { echo "check-source: npm ci in $oa failed"; fail=1; }
    fi
    node $oa/validate-spec.mjs docs/openapi.yaml || fail=1
    # What the e2e response check relies on (tests/e2e/openapi_check.py).
    if /usr/bin/python3 tests/e2e/openapi_check.py docs/openapi.yaml; then
        echo "check-source: docs/openapi.yaml passes openapi_check.py's lint"
    else
        echo "check-source: docs/openapi.yaml fails openapi_check.py's lint"
        fail=1
    fi
    # openapi-spec-validator too where a python has it (the pyenv python of
    # this machine image does; Debian does not package it).
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
