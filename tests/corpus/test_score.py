#!/usr/bin/env python3
"""Runs ../shared/corpus/score.py on `warden anonymize` with the thresholds of
issue 5, so that a regression fails CI: credentials 100%, infra 100% (with the
operator's infra.yml), overall recall >= 97%, keep-rate >= 98% (held at
the 100% reached, so that one lost keep string fails), clean cases 100%.
Throughput is printed, never asserted (benchmarks measure speed)."""
import json, os, subprocess, sys, tempfile

src = os.environ["WARDEN_SOURCE_DIR"]
score = os.path.join(src, "..", "shared", "corpus", "score.py")
if not os.path.exists(score):
    print("SKIP: ../shared/corpus not found")
    sys.exit(77)
cmd = f"{os.environ['WARDEN_BIN']} anonymize --config {src}/tests/corpus/warden.yaml"
with tempfile.TemporaryDirectory() as d:
    out = os.path.join(d, "score.json")
    r = subprocess.run([sys.executable, score, "--reps", "5", "--json", out, "--show-leaks",
                        "--min-recall", "97", "--min-credential-recall", "100", "--min-keep", "100", cmd])
    res = json.load(open(out))
failed = []
if res["tier_recall"]["infra"]["recall"] < 100:
    failed.append(f"infra recall {res['tier_recall']['infra']['recall']}% < 100%")
if res["keep_rate_clean_cases"] < 100:
    failed.append(f"clean-case keep-rate {res['keep_rate_clean_cases']}% < 100%")
if r.returncode != 0:
    failed.append(f"score.py exit {r.returncode}")
if failed:
    print("FAIL: " + "; ".join(failed))
    sys.exit(1)
print("PASS: corpus score")
