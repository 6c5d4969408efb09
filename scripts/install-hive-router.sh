#!/usr/bin/env bash
# Installs Hive Router from crates.io for the gateway benchmark (BENCHMARKS.md); CI never
# runs it. 0.0.41 is the newest release that builds with this repository's toolchain
# (Rust 1.95); the build takes about 15 minutes on 2 cores. Prints the binary's path.
set -euo pipefail
version="${HIVE_ROUTER_VERSION:-0.0.41}"
root="${HIVE_ROUTER_ROOT:-${CARGO_TARGET_DIR:-target}/hive-router-$version}"
if [ ! -x "$root/bin/hive_router" ]; then
  cargo install hive-router --version "$version" --locked --root "$root" >&2
fi
echo "$root/bin/hive_router"
