#!/usr/bin/env bash
# Set-up, build, and the whole test suite: unit, protocol and real-client tests
# (ctest, in parallel). Extra arguments go to ctest (e.g. -L unit, -R git).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${WARDEN_BUILD_DIR:-$root/build}
"$root/scripts/setup.sh" --tests
WARDEN_BUILD_DIR=$build "$root/scripts/build.sh" -DWARDEN_BUILD_TESTS=ON
"$root/tests/clients/install.sh" "$build/clients"
cd "$build"
ctest -j "$(nproc)" --output-on-failure "$@"
