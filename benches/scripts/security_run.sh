#!/usr/bin/env bash
# `run` of the busybox fixture bundle (/bin/true) with a Docker-default-like
# seccomp profile and a 256 MiB memory limit: berth through the library with
# ProcessSecurity wired in (benches/src/bin/security_run.rs, the same
# setup berth-runtime run uses; with the seccomp compile cache and
# without) against `crun run` and `runc run`, in the same hyperfine run.
# crun 1.8 refuses this machine's hybrid cgroups, so everything runs in a
# private mount namespace where /sys/fs/cgroup/unified is unmounted.
# Usage (as root): benches/scripts/security_run.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-100}
cargo build --release -q -p benches --bin security_run
harness=$PWD/target/release/security_run
work=$(mktemp -d /tmp/berth-secbench.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$harness" --write-bundle "$work/bundle"
out=${OUT:-$work}
export harness work runs out
unshare -m --propagation private sh -euc '
  umount /sys/fs/cgroup/unified 2>/dev/null || true
  b=$work/bundle
  hyperfine -N --warmup 10 --runs "$runs" --export-markdown "$out/security_run.md" \
    -n "berth (library, seccomp cache)" "$harness --root $work/berth --bundle $b sec-berth" \
    -n "berth (library, compile each run)" "$harness --root $work/berth-nc --bundle $b --no-seccomp-cache sec-berth-nc" \
    -n crun "crun --root $work/crun run --bundle $b sec-crun" \
    -n runc "runc --root $work/runc run --bundle $b sec-runc"
'
cat "$out/security_run.md"
