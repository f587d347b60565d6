#!/usr/bin/env bash
# Installs the reference MCP clients from ../shared/clients into DEST (npm).
# Claude Code is an optional dependency there that npm skips on Node < 22
# (engine check), so it is installed explicitly; its binary is native.
set -euo pipefail
dest=$1
src=$(cd "$(dirname "$0")/../../.." && pwd)/shared/clients
if [ ! -d "$src" ]; then
  echo "clients: $src not found; the client tests will be skipped" >&2
  exit 0
fi
mkdir -p "$dest"
cp "$src"/package.json "$src"/sdk-client.mjs "$src"/claude-health.sh "$dest"/
cd "$dest"
if [ ! -d node_modules/@modelcontextprotocol/sdk ]; then
  npm install --no-audit --no-fund --loglevel=error >&2
fi
# Claude Code goes into a folder of its own: in the clients' tree npm has already
# decided to skip it (optional dependency, engine check) and would not reconsider.
version=$(node -e 'console.log(require("./package.json").optionalDependencies?.["@anthropic-ai/claude-code"] || "")')
if [ -n "$version" ] && [ ! -x claude/node_modules/.bin/claude ]; then
  mkdir -p claude
  echo '{"name": "claude-code-for-tests", "private": true}' > claude/package.json
  (cd claude && npm install --no-audit --no-fund --loglevel=error --engine-strict=false \
    "@anthropic-ai/claude-code@$version" >&2) || echo "clients: Claude Code could not be installed" >&2
fi
