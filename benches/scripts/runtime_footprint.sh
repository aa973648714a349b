#!/usr/bin/env bash
# Issue 3's figures for the runtime CLI against runc and crun, in one run:
#  - binary size (the executable, and with the shared libraries it loads
#    beyond libc),
#  - peak memory (max RSS as wait4 reports it) of `run` of /bin/true,
#  - create -> start -> delete through each CLI with a Docker-default-like
#    seccomp profile and a 256 MiB memory limit (the bundle written by
#    benches/src/bin/security_run.rs).
# crun 1.8 refuses this machine's hybrid cgroups, so the runs happen in a
# private mount namespace in which /sys/fs/cgroup/unified is unmounted.
# Usage (as root): benches/scripts/runtime_footprint.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-50}
cargo build --release -q -p examples --bin berth-runtime --bin berth-bundle
cargo build --release -q -p benches --bin security_run
berth=$PWD/target/release/berth-runtime
work=$(mktemp -d /tmp/berth-footprint.XXXXXX)
trap 'rm -rf "$work"' EXIT
target/release/berth-bundle "$work/true" -- /bin/true >/dev/null
target/release/security_run --write-bundle "$work/sec" >/dev/null

echo "## binary size"
echo "| runtime | executable | with its shared libraries (not libc) |"
echo "|:---|---:|---:|"
for bin in "$berth" "$(command -v crun)" "$(command -v runc)"; do
  exe=$(stat -c %s "$bin")
  libs=$(ldd "$bin" 2>/dev/null | awk '/=> \// {print $3}' | grep -v -E '/libc\.so|/ld-linux' | xargs -r stat -L -c %s | awk '{s+=$1} END {print s+0}')
  awk -v n="$(basename "$bin")" -v e="$exe" -v l="$libs" 'BEGIN {printf "| %s | %.1f MiB | %.1f MiB |\n", n, e/1048576, (e+l)/1048576}'
done

export berth work runs
unshare -m --propagation private sh -euc '
  umount /sys/fs/cgroup/unified 2>/dev/null || true
  echo
  echo "## peak memory of run /bin/true (max RSS, KiB, median of $runs)"
  echo "| runtime | median | min | max |"
  echo "|:---|---:|---:|---:|"
  for rt in berth-runtime crun runc; do
    case $rt in berth-runtime) cmd=$berth ;; *) cmd=$rt ;; esac
    : > "$work/rss.$rt"
    i=0
    while [ $i -lt "$runs" ]; do
      /usr/bin/time -f %M -a -o "$work/rss.$rt" "$cmd" --root "$work/state-$rt" run --bundle "$work/true" "fp-$rt-$i" >/dev/null
      i=$((i+1))
    done
    sort -n "$work/rss.$rt" | awk -v rt=$rt "{a[NR]=\$1} END {printf \"| %s | %d | %d | %d |\n\", rt, a[int((NR+1)/2)], a[1], a[NR]}"
  done
  echo
  echo "## create + start + delete with a Docker-like seccomp profile and a 256 MiB memory limit"
  s=$work/sec
  hyperfine --warmup 5 --runs "$runs" --export-markdown "$work/sec.md" --style none \
    -n berth-runtime "$berth --root $work/b create --bundle $s c && $berth --root $work/b start c && $berth --root $work/b delete --force c" \
    -n crun "crun --root $work/c create --bundle $s c && crun --root $work/c start c && crun --root $work/c delete --force c" \
    -n runc "runc --root $work/r create --bundle $s c && runc --root $work/r start c && runc --root $work/r delete --force c" >/dev/null
  cat "$work/sec.md"
'
