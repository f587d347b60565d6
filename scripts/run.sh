#!/usr/bin/env bash
# Set-up, build, and run `warden serve` on stdio. With no arguments it runs on
# embedded defaults (state under $XDG_STATE_HOME/warden, SQLite audit store,
# regex anonymizer); any arguments are passed to `warden serve`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
WARDEN_BUILD_DIR=${WARDEN_BUILD_DIR:-$root/build} "$root/scripts/build.sh" -DWARDEN_BUILD_TESTS=OFF
exec "${WARDEN_BUILD_DIR:-$root/build}/warden" serve "$@"
