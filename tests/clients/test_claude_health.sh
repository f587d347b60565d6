#!/usr/bin/env bash
# Claude Code's own health check (`claude mcp list`) must report Connected.
source "$(dirname "$0")/lib.sh"
[ -x "$clients/claude/node_modules/.bin/claude" ] || { echo "SKIP: claude not installed"; exit 77; }
line=$(CLAUDE_BIN=$clients/claude/node_modules/.bin/claude MCP_TIMEOUT=30000 bash "$clients/claude-health.sh" warden -- \
  "$WARDEN_BIN" serve --config "$work/warden.yaml") || { echo "FAIL: $line"; exit 1; }
echo "$line"
echo "PASS: claude health"
