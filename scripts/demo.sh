#!/usr/bin/env bash
# The quick start's main job: build berth-runtime and run a busybox container.
set -euo pipefail
cd "$(dirname "$0")/.."
dpkg -s busybox-static >/dev/null 2>&1 || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
}
cargo build --release -q -p examples --bin berth-runtime --bin berth-bundle
target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d /tmp/berth-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$target/release/berth-bundle" "$work/bundle" -- /bin/sh -c 'echo "hello from $(hostname), pid $$"; uname -a'
# Not exec: the EXIT trap must still remove the bundle and the state root.
"$target/release/berth-runtime" --root "$work/state" run --bundle "$work/bundle" "demo-$$"
