#!/usr/bin/env bash
# `docker run --rm busybox true` through berthd against podman (runc, no
# network, private --root/--runroot) in the same hyperfine run. Both get
# the same busybox-static rootfs imported as an image. Podman's rlimits
# are lowered (this VM lacks CAP_SYS_RESOURCE) and it uses runc, since
# crun refuses this VM's hybrid cgroups. Needs root, docker CLI, podman,
# hyperfine. Everything lives in one temp dir, removed at exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-30}
cargo build --release -q -p examples --bin berthd
TARGET=${CARGO_TARGET_DIR:-target}
[[ "$TARGET" == /* ]] || TARGET=$PWD/$TARGET
BERTHD=$TARGET/release/berthd
P=$(mktemp -d /tmp/berthd-bench.XXXXXX)
LOCK_EXISTED=$([ -e /dev/shm/libpod_lock ] && echo 1 || echo 0)
PODMAN=(podman --root "$P/proot" --runroot "$P/prun" --storage-driver overlay
    --cgroup-manager cgroupfs --events-backend none --runtime runc)
cleanup() {
    [ -n "${PID:-}" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
    "${PODMAN[@]}" rmi -a -f >/dev/null 2>&1 || true
    grep " $P/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l || true
    rm -rf "$P"
    [ "$LOCK_EXISTED" = 1 ] || rm -f /dev/shm/libpod_lock
}
trap cleanup EXIT
mkdir -p "$P/rootfs/bin" "$P/dcfg"
echo '{}' >"$P/dcfg/config.json"
cp /bin/busybox "$P/rootfs/bin/"
for a in sh true echo; do ln -s busybox "$P/rootfs/bin/$a"; done
tar -C "$P/rootfs" -cf "$P/bb.tar" .
export DOCKER_HOST="unix://$P/b.sock" DOCKER_CONFIG="$P/dcfg"
"$BERTHD" --host "$DOCKER_HOST" --root "$P/broot" --exec-root "$P/brun" --network-host-netns none >/dev/null 2>&1 &
PID=$!
for _ in $(seq 100); do [ -S "$P/b.sock" ] && break; sleep 0.05; done
docker import "$P/bb.tar" busybox >/dev/null
"${PODMAN[@]}" import -q "$P/bb.tar" busybox >/dev/null
ulimit -n 1024
hyperfine -N -w 3 -r "$RUNS" \
    "docker run --rm busybox true" \
    "${PODMAN[*]} run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 busybox true"
