#!/usr/bin/env bash
# Builds the anonymizer fuzz target with clang (libFuzzer + ASan + UBSan) and
# runs it for a bounded time. Layer 1 only: layer 2 is the local model's (its
# client is not part of the target). Used by ctest; FUZZ_SECONDS overrides the time.
set -euo pipefail
src=${WARDEN_SOURCE_DIR:?}
out=${WARDEN_BUILD_DIR:?}/fuzz
command -v clang++ >/dev/null || { echo "SKIP: clang++ not installed"; exit 77; }
mkdir -p "$out/corpus"
flags="-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -I$src"
if [ ! -x "$out/anonymizer_fuzz" ] || [ -n "$(find "$src/anonymizer" "$src/core" "$src/tests/fuzz" -newer "$out/anonymizer_fuzz" -name '*.cc' -o -newer "$out/anonymizer_fuzz" -name '*.h' | head -1)" ]; then
  clang++ $flags -o "$out/anonymizer_fuzz" "$src/tests/fuzz/anonymizer_fuzz.cc" \
    "$src"/anonymizer/{anonymizer,checks,crypto_pan,iac,rules_engine,rules_builtin,triggers}.cc "$src"/core/result.cc "$src"/core/clock.cc "$src"/core/hex.cc "$src"/core/config.cc \
    $(pkg-config --cflags --libs re2) -lyaml-cpp -lcrypto
fi
# Seed with the corpus inputs when they are there.
if [ -d "$src/../shared/corpus/cases" ] && [ -z "$(ls -A "$out/corpus")" ]; then
  python3 - "$src/../shared/corpus/cases" "$out/corpus" <<'PY'
import json, glob, os, sys
for f in glob.glob(os.path.join(sys.argv[1], "*.json")):
    open(os.path.join(sys.argv[2], os.path.basename(f) + ".txt"), "w").write(json.load(open(f))["input"])
PY
fi
# libFuzzer's own failure exit code is 77, which ctest reads as "skipped": make it 1.
# Crash reproducers go next to the binary, named in the output.
"$out/anonymizer_fuzz" -max_total_time="${FUZZ_SECONDS:-60}" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
  -error_exitcode=1 -timeout_exitcode=1 -artifact_prefix="$out/" -print_final_stats=1 "$out/corpus"
