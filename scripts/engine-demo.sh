#!/usr/bin/env bash
# berthd end to end: start berthd on a temp socket with a temp root, import
# busybox (Debian's busybox-static) as an image, run
# `docker run --rm busybox echo hi` through the real docker CLI, then stop
# berthd and remove everything. Needs root and the docker CLI.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v docker >/dev/null || { echo "engine-demo: needs the docker CLI" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "engine-demo: needs root" >&2; exit 1; }
BUSYBOX=${BUSYBOX:-/bin/busybox}
[ -x "$BUSYBOX" ] || { echo "engine-demo: needs busybox-static at $BUSYBOX" >&2; exit 1; }

cargo build --release -q -p examples --bin berthd
BERTHD=${CARGO_TARGET_DIR:-target}/release/berthd

WORK=$(mktemp -d /tmp/berthd-demo.XXXXXX)
PID=
cleanup() {
    if [ -n "$PID" ]; then
        kill -TERM "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    # berthd removes its containers on SIGTERM; unmount anything left anyway.
    grep " $WORK/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l || true
    rm -rf "$WORK"
}
trap cleanup EXIT

export DOCKER_HOST="unix://$WORK/berthd.sock" DOCKER_CONFIG="$WORK/docker-config" DOCKER_CLI_HINTS=false
"$BERTHD" --host "$DOCKER_HOST" --root "$WORK/root" --exec-root "$WORK/run" \
    >"$WORK/berthd.out" 2>"$WORK/berthd.log" &
PID=$!
for _ in $(seq 100); do [ -S "$WORK/berthd.sock" ] && break; sleep 0.05; done

# A busybox rootfs: the static binary and one symlink per applet.
mkdir -p "$WORK/rootfs/bin"
cp "$BUSYBOX" "$WORK/rootfs/bin/busybox"
for applet in $("$BUSYBOX" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$WORK/rootfs/bin/$applet"
done
tar -C "$WORK/rootfs" -cf - . | docker import -c 'CMD ["sh"]' - busybox >/dev/null
docker images busybox

echo "+ docker run --rm busybox echo hi"
docker run --rm busybox echo hi
