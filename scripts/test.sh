#!/usr/bin/env bash
# The whole test suite: installs what the tests need, then fmt, clippy, tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
while read -r pkg; do
  pkg=${pkg%%#*}; pkg=${pkg// /}
  [ -z "$pkg" ] && continue
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done < .ci/apt-packages
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ -s .ci/pip-packages ]; then
  grep -v '^#' .ci/pip-packages | xargs -r pip install -q
fi

cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo nextest run --workspace --profile ci "$@"
