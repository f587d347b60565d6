#!/usr/bin/env bash
# Installs what Warden needs to build and test, from Debian 12's packages, and
# nothing that is already there (so a prepared machine needs no network).
# Usage: scripts/setup.sh [--tests]
set -euo pipefail

pkgs=(g++ cmake ninja-build pkg-config git
      libboost1.81-dev libboost-json1.81-dev libssl-dev libre2-dev libsqlite3-dev
      libspdlog-dev libyaml-cpp-dev libssh-dev
      libp11-kit-dev)                                           # PKCS#11 header and RFC 7512 URI parser (CA in an HSM)
if [ "${1:-}" = "--tests" ]; then
  pkgs+=(catch2 python3 sqlite3 openssh-server openssh-client  # ssh tests start a real sshd
         clang libclang-rt-14-dev                               # libFuzzer for the anonymizer fuzz test
         softhsm2 opensc)                                       # a real PKCS#11 token (and pkcs11-tool) for the CA tests
  # The reference MCP clients need Node.js and npm; keep an existing Node.js install.
  command -v node >/dev/null || pkgs+=(nodejs)
  command -v npm >/dev/null || pkgs+=(npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
