#!/usr/bin/env bash
# berthd against podman in the same run, interleaved:
#   - latency: `docker run --rm busybox true` vs `podman run --rm busybox true`
#     (LAT runs of each per round, alternating one by one);
#   - concurrency: N (50) `run -d busybox sleep 600` started at once with
#     xargs -P N; the time until every `run -d` has returned, which is when
#     every container is running (checked with `ps` afterwards), then the
#     time to remove them all with one `rm -f`;
#   - memory with N running: berthd's VmHWM/VmRSS and the sum of its
#     per-container shims' RSS and PSS (podman's conmons for comparison).
# Rounds alternate which engine goes first.
#
# NET=0 (default): berthd without networking (an empty netns per
# container), podman with --network none.
# NET=1: both with networking, inside a fake host netns this script makes
# and deletes: berthd --network-host-netns (default bridge network),
# podman under `nsenter --net` with its default network (netavark bridge;
# its iptables rules land in the fake netns). The host's links, iptables
# and nft rulesets are compared before/after, and while podman's N
# containers run, and the script fails if they changed.
#
# Same busybox-static rootfs imported into both. Podman 4.3 with runc
# (crun refuses this VM's hybrid cgroups), cgroupfs, private
# --root/--runroot/--tmpdir/--network-config-dir, and its rlimits lowered
# (this VM lacks CAP_SYS_RESOURCE). Needs root, docker CLI, podman.
# Everything is removed at exit, on failure too: containers (explicitly,
# before berthd stops), mounts, cgroups, netns, temp dir.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-5}
LAT=${LAT:-5}
N=${N:-50}
NET=${NET:-0}
BUSYBOX=${BUSYBOX:-/bin/busybox}
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (Debian: time)" >&2; exit 1; }
for c in docker podman nsenter; do command -v $c >/dev/null || { echo "needs $c" >&2; exit 1; }; done
# BERTHD=/path/to/berthd skips the build (e.g. to bench a fixed binary).
if [ -z "${BERTHD:-}" ]; then
    cargo build --release -q -p examples --bin berthd
    TARGET=${CARGO_TARGET_DIR:-target}
    [[ "$TARGET" == /* ]] || TARGET=$PWD/$TARGET
    BERTHD=$TARGET/release/berthd
fi

NS=berthbench-$$
LOCK_EXISTED=$([ -e /dev/shm/libpod_lock ] && echo 1 || echo 0)
had_cg() { find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -name "$1" | wc -l; }
BERTH_CG=$(had_cg berth)
LIBPOD_CG=$(had_cg libpod_parent)
P=$(mktemp -d /tmp/berthd-conc.XXXXXX)
PODMAN=(podman --root "$P/proot" --runroot "$P/prun" --tmpdir "$P/ptmp"
    --network-config-dir "$P/pnet" --storage-driver overlay
    --cgroup-manager cgroupfs --events-backend none --runtime runc)
PRUN=(run --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
if [ "$NET" = 1 ]; then
    PODMAN=(nsenter "--net=/run/netns/$NS" "${PODMAN[@]}")
else
    PRUN+=(--network none)
fi
podman_() { (ulimit -n 1024 && "${PODMAN[@]}" "$@"); }
host_net() { ip -o link | sed 's/ qlen.*//'; iptables-save 2>/dev/null | grep -v '^#'; nft -s list ruleset 2>/dev/null; }

PID=
cleanup() {
    set +e
    if [ -n "$PID" ]; then
        docker ps -aq | xargs -r docker rm -f >/dev/null 2>&1
        kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    fi
    podman_ rm -af -t 0 >/dev/null 2>&1
    podman_ rmi -af >/dev/null 2>&1
    grep " $P/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l
    cat "$P"/ids-* 2>/dev/null | while read -r id; do
        rmdir /sys/fs/cgroup/*/berth/"$id" /sys/fs/cgroup/*/libpod_parent/libpod-"$id" 2>/dev/null
    done
    if [ "$LIBPOD_CG" = 0 ]; then
        rmdir /sys/fs/cgroup/*/libpod_parent/conmon /sys/fs/cgroup/*/libpod_parent 2>/dev/null
    fi
    [ "$BERTH_CG" = 0 ] && rmdir /sys/fs/cgroup/*/berth 2>/dev/null
    [ "$NET" = 1 ] && ip netns del "$NS" 2>/dev/null
    if [ -f "$P/host-net.before" ] && ! host_net | diff -q "$P/host-net.before" - >/dev/null; then
        echo "WARNING: the host's links or firewall changed during the run:" >&2
        host_net | diff "$P/host-net.before" - >&2
    fi
    rm -rf "$P"
    [ "$LOCK_EXISTED" = 1 ] || rm -f /dev/shm/libpod_lock
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
host_net >"$P/host-net.before"

mkdir -p "$P/rootfs/bin" "$P/dcfg"
echo '{}' >"$P/dcfg/config.json"
cp "$BUSYBOX" "$P/rootfs/bin/busybox"
for a in sh true echo sleep; do ln -s busybox "$P/rootfs/bin/$a"; done
tar -C "$P/rootfs" -cf "$P/bb.tar" .
export DOCKER_HOST="unix://$P/b.sock" DOCKER_CONFIG="$P/dcfg" DOCKER_CLI_HINTS=false
BARGS=(--host "$DOCKER_HOST" --root "$P/broot" --exec-root "$P/brun" --log warn)
if [ "$NET" = 1 ]; then
    ip netns add "$NS"
    ip -n "$NS" link set lo up
    BARGS+=(--network-host-netns "/run/netns/$NS")
else
    BARGS+=(--network-host-netns none)
fi
"$BERTHD" "${BARGS[@]}" >"$P/berthd.out" 2>"$P/berthd.log" &
PID=$!
for _ in $(seq 100); do [ -S "$P/b.sock" ] && break; sleep 0.05; done
docker import "$P/bb.tar" busybox >/dev/null
podman_ import -q "$P/bb.tar" busybox >/dev/null

us() { echo "${EPOCHREALTIME/./}"; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f\n", (b - a) / 1000 }'; }
# One `run --rm busybox true`; prints ms.
lat_berthd() { local t; t=$(us); docker run --rm busybox true; ms "$t" "$(us)"; }
lat_podman() { local t; t=$(us); podman_ "${PRUN[@]}" --rm busybox true; ms "$t" "$(us)"; }
# N concurrent `run -d`; appends the start and remove times to files.
conc() {
    local eng=$1 r=$2 t ids running c0
    c0=$(daemon_cpu)
    t=$(us)
    if [ "$eng" = berthd ]; then
        seq "$N" | cli_cpu xargs -P "$N" -I{} docker run -d --name "b$r-{}" busybox sleep 600 >"$P/ids-b$r"
    else
        seq "$N" | (ulimit -n 1024 && cli_cpu xargs -P "$N" -I{} "${PODMAN[@]}" "${PRUN[@]}" -d --name "p$r-{}" busybox sleep 600 >"$P/ids-p$r")
    fi
    ms "$t" "$(us)" >>"$P/start-$eng"
    ids=$(wc -l <"$P/ids-${eng:0:1}$r")
    if [ "$eng" = berthd ]; then running=$(docker ps -q | wc -l); else running=$(podman_ ps -q | wc -l); fi
    [ "$ids" = "$N" ] && [ "$running" = "$N" ] || { echo "$eng round $r: $ids started, $running running (want $N)" >&2; exit 1; }
    if [ "$eng" = berthd ]; then
        memory berthd "$BERTHD" shim >>"$P/mem-berthd"
    else
        [ "$NET" = 1 ] && { host_net | diff -q "$P/host-net.before" - >/dev/null || { echo "host network changed" >&2; exit 1; }; }
        memory podman conmon "" >>"$P/mem-podman"
    fi
    t=$(us)
    if [ "$eng" = berthd ]; then
        xargs docker rm -f <"$P/ids-b$r" >/dev/null
    else
        (ulimit -n 1024 && xargs "${PODMAN[@]}" rm -f -t 0 <"$P/ids-p$r" >/dev/null)
    fi
    ms "$t" "$(us)" >>"$P/rm-$eng"
    # berthd, its shims and their containers (reaped by the shims, the
    # shims by berthd) from start through removal, per container.
    [ "$eng" = berthd ] && echo $(( ($(daemon_cpu) - c0) * 1000 / $(getconf CLK_TCK) / N )) >>"$P/cpu-berthd"
    return 0
}
# utime + stime + cutime + cstime of berthd, in clock ticks.
daemon_cpu() { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$PID/stat"; }
# Runs "$@" and appends the CPU ms (user + sys, with the children it
# waited for: the CLI processes) per container to $P/cli-<engine>.
cli_cpu() { /usr/bin/time -f "%U %S" -o "$P/time.out" "$@"; awk -v n="$N" '{ printf "%.1f\n", ($1 + $2) * 1000 / n }' "$P/time.out" >>"$P/cli-$eng"; }
# memory ENGINE EXE ARG1: KiB of the daemon's VmHWM and VmRSS (berthd only)
# and the sum of RSS and PSS over the per-container monitors (processes
# running EXE with argv[1] = ARG1, or named EXE, whose command line names $P).
memory() {
    local eng=$1 exe=$2 arg=$3 hwm=0 rss=0 msum=0 psum=0 n=0 pid cmd
    if [ "$eng" = berthd ]; then
        hwm=$(awk '/^VmHWM/ {print $2}' /proc/$PID/status)
        rss=$(awk '/^VmRSS/ {print $2}' /proc/$PID/status)
    fi
    for pid in $(pgrep -f "$P" || true); do
        cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
        if [ -n "$arg" ]; then
            [[ "$cmd" == "$exe $arg "* ]] || continue
        else
            [[ "$cmd" == *"/$exe "* ]] || continue
        fi
        msum=$((msum + $(awk '/^VmRSS/ {print $2}' /proc/$pid/status)))
        psum=$((psum + $(awk '/^Pss:/ {print $2}' /proc/$pid/smaps_rollup)))
        n=$((n + 1))
    done
    echo "$hwm $rss $n $msum $psum"
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
    for _ in $(seq "$LAT"); do
        if [ $((r % 2)) = 1 ]; then
            lat_berthd >>"$P/lat-berthd"; lat_podman >>"$P/lat-podman"
        else
            lat_podman >>"$P/lat-podman"; lat_berthd >>"$P/lat-berthd"
        fi
    done
    if [ $((r % 2)) = 1 ]; then conc berthd "$r"; conc podman "$r"; else conc podman "$r"; conc berthd "$r"; fi
    echo "round $r: start $N berthd $(tail -1 "$P/start-berthd") ms, podman $(tail -1 "$P/start-podman") ms; load $(cut -d' ' -f1-3 /proc/loadavg)"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

stat() { sort -n "$1" | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.1f %.1f %d", m, v[1], NR }'; }
row() {
    local what=$1 b p
    read -r bm bn bc <<<"$(stat "$P/$what-berthd")"
    read -r pm pn pc <<<"$(stat "$P/$what-podman")"
    printf "| %s | %s / %s | %s / %s | %.2fx / %.2fx | %s |\n" "$2" "$bm" "$bn" "$pm" "$pn" \
        "$(awk -v a="$pm" -v b="$bm" 'BEGIN { print a / b }')" "$(awk -v a="$pn" -v b="$bn" 'BEGIN { print a / b }')" "$bc"
}
echo
echo "NET=$NET, N=$N, ROUNDS=$ROUNDS, LAT=$LAT; times in ms, median / min"
echo "| what | berthd | podman | podman/berthd (median / min) | samples each |"
echo "|---|---|---|---|---|"
row lat "run --rm busybox true"
row start "$N x run -d, all running"
row rm "rm -f of $N"
echo
echo "CPU per container in the $N-concurrent case (ms, median over rounds): docker CLI $(stat "$P/cli-berthd" | cut -d' ' -f1), berthd + shims + containers (start to removal) $(stat "$P/cpu-berthd" | cut -d' ' -f1); podman CLI incl. the children it waits for (conmon daemonizes, so not it nor runc after the double fork) $(stat "$P/cli-podman" | cut -d' ' -f1)"
echo
echo "memory with $N running (KiB; max over rounds):"
sort -n -k1 "$P/mem-berthd" | tail -1 | awk '{ printf "berthd VmHWM %d, VmRSS %d; %d shims: RSS sum %d, PSS sum %d; berthd VmHWM + shims RSS = %d\n", $1, $2, $3, $4, $5, $1 + $4 }'
sort -n -k4 "$P/mem-podman" | tail -1 | awk '{ printf "podman: %d conmons: RSS sum %d, PSS sum %d (podman itself exits)\n", $3, $4, $5 }'
