#!/usr/bin/env bash
# berth-runtime vs runc vs crun, in the same hyperfine run:
#   1. `run` of the busybox fixture bundle running /bin/true
#   2. create + start + delete cycles (same bundle)
# crun 1.8 refuses this machine's hybrid cgroups, so everything runs in a
# private mount namespace where /sys/fs/cgroup/unified is unmounted.
# Usage (as root): benches/scripts/runtime_run.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-200}
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p examples --bin berth-runtime --bin berth-bundle
berth=$PWD/target/release/berth-runtime
work=$(mktemp -d /tmp/berth-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
target/release/berth-bundle "$work/bundle" -- /bin/true >/dev/null
out=${OUT:-$work}
export berth work runs out
unshare -m --propagation private sh -euc '
  umount /sys/fs/cgroup/unified 2>/dev/null || true
  b=$work/bundle
  hyperfine -N --warmup 10 --runs "$runs" --export-markdown "$out/run.md" \
    -n berth-runtime "$berth --root $work/berth run --bundle $b bench-berth" \
    -n crun "crun --root $work/crun run --bundle $b bench-crun" \
    -n runc "runc --root $work/runc run --bundle $b bench-runc"
  cycle() { echo "sh -c \"$1 create --bundle $b $2 && $1 start $2 && $1 delete --force $2\""; }
  hyperfine --warmup 5 --runs "$runs" --export-markdown "$out/cycle.md" \
    -n berth-runtime "$(cycle "$berth --root $work/berth" cyc-berth)" \
    -n crun "$(cycle "crun --root $work/crun" cyc-crun)" \
    -n runc "$(cycle "runc --root $work/runc" cyc-runc)"
'
cat "$out/run.md" "$out/cycle.md"
