#!/usr/bin/env bash
# Configures and builds Warden into ${WARDEN_BUILD_DIR:-build}. Usage: scripts/build.sh [cmake -D options...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${WARDEN_BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >&2
cmake --build "$build" -j "$(nproc)" >&2
