#!/usr/bin/env python3
"""Writes the "input" field of every case in ../shared/corpus/cases/*.json to
OUTDIR/<case>.txt, the files anonymize_bench reads:
  python3 bench/corpus_inputs.py /tmp/anon_corpus && build/bench/anonymize_bench /tmp/anon_corpus/*.txt"""
import glob, json, os, sys

if len(sys.argv) != 2:
    sys.exit(__doc__)
src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "corpus", "cases")
os.makedirs(sys.argv[1], exist_ok=True)
cases = sorted(glob.glob(os.path.join(src, "*.json")))
if not cases:
    sys.exit(f"no corpus cases under {src}")
for path in cases:
    with open(path) as f:
        case = json.load(f)
    with open(os.path.join(sys.argv[1], os.path.basename(path)[:-5] + ".txt"), "w") as out:
        out.write(case["input"])
print(f"{len(cases)} inputs in {sys.argv[1]}")
