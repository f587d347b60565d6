#!/usr/bin/env bash
# The official TypeScript SDK client against the real binary: initialize, ping,
# every tools/list page, and a git call over a repository with a planted private
# key and password. The call must succeed, be enveloped, and leak neither secret.
source "$(dirname "$0")/lib.sh"
out=$work/sdk.out
set +e
node "$clients/sdk-client.mjs" --call git '{"repo":"infra","operation":"show","revisions":["HEAD"]}' -- \
  "$WARDEN_BIN" serve --config "$work/warden.yaml" >"$out" 2>"$work/sdk.err"
rc=$?
set -e
cat "$out" | head -c 3000; echo
[ $rc -eq 0 ] || { echo "FAIL: sdk client exit $rc"; cat "$work/sdk.err"; exit 1; }
grep -q 'protocol: 2025-11-25' "$out" || { echo "FAIL: protocol not negotiated"; exit 1; }
grep -q 'UNTRUSTED_DATA id=' "$out" || { echo "FAIL: result not enveloped"; exit 1; }
grep -q 'PRIVKEY_REDACTED' "$out" || { echo "FAIL: key not redacted"; exit 1; }
if grep -qF "$PLANTED_PASSWORD" "$out" "$work/sdk.err"; then echo "FAIL: password leaked"; exit 1; fi
if grep -qF "$PLANTED_KEY_LINE" "$out" "$work/sdk.err"; then echo "FAIL: private key leaked"; exit 1; fi
if grep -qF "$PLANTED_PASSWORD" "$work/state/audit.db"*; then echo "FAIL: password in the audit database"; exit 1; fi
echo "PASS: sdk client"
