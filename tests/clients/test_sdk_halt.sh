#!/usr/bin/env bash
# The halt path through the official TypeScript SDK client: a rule weakened in
# the config fails `warden canary`, and the SDK client's tool call is refused
# naming the halt (exit 2: isError), with no repository output; after
# `warden canary --reset` with the healthy config the same call succeeds.
source "$(dirname "$0")/lib.sh"
cp "$work/warden.yaml" "$work/weak.yaml"
printf 'anonymizer:\n  disabled_rules: [email]\n' >> "$work/weak.yaml"
call() {  # call CONFIG OUT: one SDK client run with a git status call; returns its exit status
  set +e
  node "$clients/sdk-client.mjs" --call git '{"repo":"infra","operation":"log"}' -- \
    "$WARDEN_BIN" serve --config "$1" >"$2" 2>"$2.err"
  local rc=$?
  set -e
  return $rc
}

set +e; "$WARDEN_BIN" canary --config "$work/weak.yaml" >"$work/canary.out" 2>&1; rc=$?; set -e
cat "$work/canary.out"
[ $rc -eq 1 ] || { echo "FAIL: warden canary passed with the email rule disabled"; exit 1; }
grep -q '^FAIL  email' "$work/canary.out" || { echo "FAIL: no FAIL line for the email canary"; exit 1; }

# The server runs the weakened config too (a healthy one would pass its start self-test,
# and a restart with a passing self-test is the operator's way to lift a halt).
rc=0; call "$work/weak.yaml" "$work/halted.out" || rc=$?
head -c 2000 "$work/halted.out"; echo
[ $rc -eq 2 ] || { echo "FAIL: expected isError (exit 2) from the halted server, got $rc"; cat "$work/halted.out.err"; exit 1; }
grep -q 'HALTED' "$work/halted.out" || { echo "FAIL: the refusal does not name the halt"; exit 1; }
if grep -q 'add deploy key' "$work/halted.out"; then echo "FAIL: output returned while halted"; exit 1; fi

"$WARDEN_BIN" canary --config "$work/warden.yaml" --reset
rc=0; call "$work/warden.yaml" "$work/ok.out" || rc=$?
[ $rc -eq 0 ] || { echo "FAIL: call after the reset: exit $rc"; cat "$work/ok.out" "$work/ok.out.err"; exit 1; }
grep -q 'add deploy key' "$work/ok.out" || { echo "FAIL: no output after the reset"; exit 1; }
echo "PASS: sdk client halt path"
