#!/usr/bin/env bash
# The quick start's main job: start berthd and run a container through the
# docker CLI. On a fresh Debian machine (as root, with Rust and the docker
# CLI): installs busybox-static if missing, builds berthd (release), starts
# it on a temporary socket with a temporary state dir, imports busybox as an
# image, runs `docker run --rm busybox echo hi`, then removes everything it
# made (containers, berthd, mounts, cgroups, temp dir), also on failure.
# Networking is turned off (--network-host-netns none), so the host's
# interfaces and firewall are never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "engine-demo: $*"; }
die() { echo "engine-demo: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (containers need namespaces, mounts and cgroups)"
command -v cargo >/dev/null || die "needs Rust's cargo (https://rustup.rs)"
command -v docker >/dev/null || die "needs the docker CLI (the client only; no Docker daemon is used).
  Debian's docker.io package has it, but also installs and starts dockerd;
  the static client from https://download.docker.com/linux/static/stable/ is enough."
if ! dpkg -s busybox-static >/dev/null 2>&1; then
    say "installing busybox-static (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
fi
BUSYBOX=${BUSYBOX:-/bin/busybox}
[ -x "$BUSYBOX" ] || die "no busybox at $BUSYBOX"

say "building berthd (release; the first build takes a few minutes)"
cargo build --release -q -p examples --bin berthd
TARGET=${CARGO_TARGET_DIR:-target}
[[ "$TARGET" == /* ]] || TARGET=$PWD/$TARGET
BERTHD=$TARGET/release/berthd

BERTH_CG=$(find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -name berth | wc -l)
WORK=$(mktemp -d /tmp/berthd-demo.XXXXXX)
PID=
cleanup() {
    local rc=$? ids= id cg p
    set +eu
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        # Remove the containers explicitly: berthd may keep them running
        # across its own restart, so stopping it is not enough.
        ids=$(docker ps -aq --no-trunc 2>/dev/null)
        [ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1
        kill -TERM "$PID" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$PID" 2>/dev/null
        wait "$PID" 2>/dev/null
    fi
    # Anything that survived: the containers' processes (by their cgroups
    # under berth/<id>), monitors naming our dir, mounts, cgroups.
    for id in $ids $(ls "$WORK/run" 2>/dev/null); do
        for cg in /sys/fs/cgroup/*/berth/"$id"; do
            [ -d "$cg" ] || continue
            xargs -r kill -KILL <"$cg/cgroup.procs" 2>/dev/null
        done
    done
    for p in $(pgrep -f "$WORK/" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    grep " $WORK/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l
    for id in $ids $(ls "$WORK/run" 2>/dev/null); do
        for _ in 1 2 3 4 5; do
            rmdir /sys/fs/cgroup/*/berth/"$id" 2>/dev/null
            ls -d /sys/fs/cgroup/*/berth/"$id" >/dev/null 2>&1 || break
            sleep 0.2
        done
    done
    [ "$BERTH_CG" = 0 ] && rmdir /sys/fs/cgroup/*/berth 2>/dev/null
    if [ "$rc" != 0 ] && [ -s "$WORK/berthd.log" ]; then
        echo "--- berthd log (last lines) ---" >&2
        tail -20 "$WORK/berthd.log" | sed 's/\x1b\[[0-9;]*m//g' >&2
    fi
    rm -rf "$WORK"
    if [ "$rc" = 0 ]; then
        say "OK: berthd ran a container through the docker CLI; everything removed"
    else
        echo "engine-demo: FAILED (exit $rc); everything it made was removed" >&2
    fi
}
ids=
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

export DOCKER_HOST="unix://$WORK/berthd.sock" DOCKER_CONFIG="$WORK/docker-config" DOCKER_CLI_HINTS=false
mkdir -p "$DOCKER_CONFIG"
echo '{}' >"$DOCKER_CONFIG/config.json"
say "starting berthd on $DOCKER_HOST"
"$BERTHD" --host "$DOCKER_HOST" --root "$WORK/root" --exec-root "$WORK/run" --network-host-netns none \
    >"$WORK/berthd.out" 2>"$WORK/berthd.log" &
PID=$!
for _ in $(seq 200); do
    [ -S "$WORK/berthd.sock" ] && break
    kill -0 "$PID" 2>/dev/null || die "berthd exited at start"
    sleep 0.05
done
[ -S "$WORK/berthd.sock" ] || die "berthd did not listen within 10 s"

# A busybox image: the static binary and one symlink per applet.
mkdir -p "$WORK/rootfs/bin"
cp "$BUSYBOX" "$WORK/rootfs/bin/busybox"
for applet in $("$BUSYBOX" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$WORK/rootfs/bin/$applet"
done
echo "+ docker import -c 'CMD [\"sh\"]' - busybox"
tar -C "$WORK/rootfs" -cf - . | docker import -c 'CMD ["sh"]' - busybox >/dev/null
docker images busybox

echo "+ docker run --rm busybox echo hi"
out=$(docker run --rm busybox echo hi)
echo "$out"
[ "$out" = hi ] || die "expected 'hi' from the container, got '$out'"
