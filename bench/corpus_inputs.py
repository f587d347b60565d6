#!/usr/bin/env python3
"""Writes the "input" field of every case in ../shared/corpus/cases/*.json to
OUTDIR/<case>.txt, the files anonymize_bench reads:
  python3 bench/corpus_inputs.py /tmp/anon_corpus && build/bench/anonymize_bench /tmp/anon_corpus/*.txt"""
import glob, json, os, sys

CASES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "corpus", "cases")


def corpus_inputs():
    """(case name, input) for every corpus case, in score.py's order (sorted by file name)."""
    cases = sorted(glob.glob(os.path.join(CASES, "*.json")))
    if not cases:
        sys.exit(f"no corpus cases under {CASES}")
    out = []
    for path in cases:
        with open(path, encoding="utf-8") as f:
            out.append((os.path.basename(path)[:-5], json.load(f)["input"]))
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    os.makedirs(sys.argv[1], exist_ok=True)
    inputs = corpus_inputs()
    for name, text in inputs:
        with open(os.path.join(sys.argv[1], name + ".txt"), "w") as out:
            out.write(text)
    print(f"{len(inputs)} inputs in {sys.argv[1]}")
