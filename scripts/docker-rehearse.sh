#!/usr/bin/env bash
# docker-rehearse.sh - runs the Dockerfile's steps in chroots, for machines
# without a Docker engine.
#
#   scripts/docker-rehearse.sh [WORK_DIR]     (default /tmp/chatli-docker-rehearsal)
#
# debootstrap's minbase variant of Debian 12 stands in for debian:12-slim.
# Builder: the build context (the tree minus .dockerignore's entries) is
# copied to /src and `scripts/install-deps.sh build` + `scripts/build.sh
# --target chatli build` run there.  Runtime: `install-deps.sh runtime`, the
# user `chatli` (uid 10001), /data, the binary in /usr/local/bin; then the
# server runs as that user with PORT and DATA_DIR as in the image, and the
# HEALTHCHECK command must pass inside the chroot.  Not part of CI: it needs
# root, debootstrap and a few minutes of downloads from Debian's mirror.
# When the Dockerfile changes, change this script with it.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=${1:-/tmp/chatli-docker-rehearsal}
port=${REHEARSAL_PORT:-18095}
mirror=http://deb.debian.org/debian

[ "$(id -u)" -eq 0 ] || { echo "docker-rehearse: needs root (chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap

mkdir -p "$work"
mounts=()
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    for m in "${mounts[@]}"; do
        umount "$m" 2>/dev/null || true
    done
}
trap cleanup EXIT

in_root() { # DIR CMD...: runs CMD in chroot DIR with /proc mounted
    local dir=$1
    shift
    if ! mountpoint -q "$dir/proc"; then
        mount -t proc proc "$dir/proc"
        mounts+=("$dir/proc")
    fi
    chroot "$dir" "$@"
}

if [ ! -x "$work/base/bin/sh" ]; then
    echo "docker-rehearse: debootstrap minbase bookworm (once, cached in $work/base)"
    rm -rf "$work/base"
    debootstrap --variant=minbase bookworm "$work/base" "$mirror" >"$work/debootstrap.log"
fi

echo "docker-rehearse: builder stage"
rm -rf "$work/builder" "$work/runtime"
cp -a "$work/base" "$work/builder"
cp /etc/resolv.conf "$work/builder/etc/resolv.conf"
mkdir -p "$work/builder/src"
# The build context, as .dockerignore trims it.
(cd "$root" && tar --exclude=./.git --exclude=./.ci --exclude='./build*' --exclude=./data \
    --exclude=./docs --exclude=./bench --exclude=__pycache__ --exclude='*.pyc' \
    --exclude=.pytest_cache --exclude=./Dockerfile --exclude=./.dockerignore -cf - .) |
    tar -C "$work/builder/src" -xf -
in_root "$work/builder" /bin/sh -c 'cd /src && scripts/install-deps.sh build && rm -rf /var/lib/apt/lists/*'
in_root "$work/builder" /bin/sh -c 'cd /src && scripts/build.sh --target chatli build'

echo "docker-rehearse: runtime stage"
cp -a "$work/base" "$work/runtime"
cp /etc/resolv.conf "$work/runtime/etc/resolv.conf"
cp "$root/scripts/install-deps.sh" "$work/runtime/tmp/install-deps.sh"
in_root "$work/runtime" /bin/sh -c '/tmp/install-deps.sh runtime && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh \
    && useradd --uid 10001 --user-group --home-dir /data --no-create-home --shell /usr/sbin/nologin chatli \
    && mkdir -p /data && chown chatli:chatli /data'
cp "$work/builder/src/build/chatli" "$work/runtime/usr/local/bin/chatli"

echo "docker-rehearse: running the image's command as chatli on port $port"
chroot --userspec=chatli:chatli "$work/runtime" /usr/bin/env -i PORT="$port" DATA_DIR=/data \
    /bin/sh -c 'cd /data && exec /usr/local/bin/chatli' >"$work/server.log" 2>&1 &
server_pid=$!
ok=
for _ in $(seq 1 50); do
    # The Dockerfile's HEALTHCHECK command, inside the runtime root.
    if chroot "$work/runtime" /usr/bin/env PORT="$port" /bin/sh -c \
        'curl -fsS "http://127.0.0.1:${PORT}/healthz"' >/dev/null 2>&1; then
        ok=1
        break
    fi
    sleep 0.2
done
if [ -z "$ok" ]; then
    echo "docker-rehearse: HEALTHCHECK failed; server log:"
    cat "$work/server.log"
    exit 1
fi
if grep -q 'using poll()' "$work/server.log"; then
    echo "docker-rehearse: the gateway fell back to poll(): an lws event-loop plugin is missing"
    exit 1
fi
user=$(ps -o user= -p "$server_pid" | tr -d ' ')
echo "docker-rehearse: HEALTHCHECK passed; server runs as uid/user $user"
kill -TERM "$server_pid"
if ! wait "$server_pid"; then
    echo "docker-rehearse: server did not exit 0 on SIGTERM; log:"
    cat "$work/server.log"
    server_pid=
    exit 1
fi
server_pid=
echo "docker-rehearse: SIGTERM -> exit 0; image steps OK"
