#!/usr/bin/env python3
"""Where the time of score.py's throughput line goes.

score.py pipes the corpus, concatenated --reps times, through one fresh
`warden anonymize` process with subprocess.run(..., capture_output=True), and
divides the bytes by the wall time. This runs the same call, and beside it, in
interleaved rounds with the same subprocess.run:
  cat          the harness alone: Python feeds the pipe and drains the output
  empty input  warden's start: libraries, config, rule compilation
  file in      start plus anonymizing, no pipe (input from a file, output to /dev/null)
  score.py     the line itself
and prints the median of each. A measurement, never a test.

  python3 bench/process_line.py [--reps 50] [--rounds 10] [--warden build/warden]
                                [--config tests/corpus/warden.yaml]"""
import argparse, os, shlex, statistics, subprocess, sys, tempfile, time

from corpus_inputs import corpus_inputs  # the corpus as bench/corpus_inputs.py reads it

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--reps", type=int, default=50, help="corpus copies, as score.py's --reps (default 50)")
ap.add_argument("--rounds", type=int, default=10)
ap.add_argument("--warden", default=os.path.join(root, "build", "warden"))
ap.add_argument("--config", default=os.path.join(root, "tests", "corpus", "warden.yaml"))
a = ap.parse_args()

inputs = [text for _, text in corpus_inputs()]
blob = ("\n".join(inputs) + "\n").encode() * max(a.reps, 1)  # score.py's own construction

with tempfile.NamedTemporaryFile(prefix="warden-process-line-", delete=False) as f:
    f.write(blob)
    blob_file = f.name
LINE = "warden through the harness (score.py)"
anonymize = f"{shlex.quote(a.warden)} anonymize --config {shlex.quote(a.config)}"
runs = [
    ("cat (harness alone)", "cat", blob),
    ("warden, empty input (start)", f"{anonymize} </dev/null >/dev/null", b""),
    ("warden, file in, /dev/null out", f"{anonymize} <{shlex.quote(blob_file)} >/dev/null", b""),
    (LINE, anonymize, blob),
]
times = {name: [] for name, _, _ in runs}
try:
    for _ in range(a.rounds):
        for name, cmd, data in runs:
            t0 = time.perf_counter()
            p = subprocess.run(cmd, shell=True, input=data, capture_output=True)
            dt = time.perf_counter() - t0
            if p.returncode != 0:
                sys.exit(f"{cmd}: exit {p.returncode}: {p.stderr.decode(errors='replace')[:500]}")
            times[name].append(dt)
finally:
    os.unlink(blob_file)

mb = len(blob) / 1e6
print(f"{mb:.2f} MB ({a.reps} copies of the corpus), median of {a.rounds} interleaved rounds:")
for name, _, _ in runs:
    m = statistics.median(times[name])
    print(f"  {name:40s} {m * 1e3:8.1f} ms   (min {min(times[name]) * 1e3:.1f})")
line = statistics.median(times[LINE])
print(f"score.py's line: {mb / line:.1f} MB/s; 100 MB/s would be {mb / 100 * 1e3:.1f} ms in all")
