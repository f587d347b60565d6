#!/usr/bin/env python3
"""incus_exec running `true` versus the `incus exec` CLI, on the same container,
in the same run (calls interleaved, so both see the same machine load).

  warden  one tools/call incus_exec after another, through the whole pipeline
          (anonymize, canary, envelope, audit row), timed from request to response
  cli     `incus exec INSTANCE --project P -- true`, timed from spawn to exit
          (process start and the CLI's own requests included: that is what an
          operator or a script pays)

usage: incus_bench.py [--calls N] [--project P] [--instance I] [--warden PATH]
Needs incusd with tests/incus/setup.sh's containers. Figures go into the issue
notes; nothing here is a test.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "protocol"))
import harness  # noqa: E402


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--project", default="pro")
    ap.add_argument("--instance", default="pro-dev")
    ap.add_argument("--warden", default=os.path.join(os.path.dirname(__file__), "..", "build", "server", "warden"))
    a = ap.parse_args()
    harness.WARDEN = a.warden
    w = harness.Warden(f"incus:\n  projects: [{a.project}]\n")
    try:
        w.initialize()
        args = {"project": a.project, "instance": a.instance, "argv": ["true"]}
        cli = ["incus", "exec", a.instance, "--project", a.project, "--", "true"]
        for _ in range(5):  # warm-up, both sides
            w.tool("incus_exec", args)
            subprocess.run(cli, check=True)
        tw, tc = [], []
        for _ in range(a.calls):
            t0 = time.perf_counter()
            r = w.tool("incus_exec", args)
            tw.append((time.perf_counter() - t0) * 1000)
            sc = r["result"].get("structuredContent", {})
            if r["result"].get("isError") or sc.get("exit_status") != 0:
                raise SystemExit("incus_exec failed: " + harness.text_of(r))
            t0 = time.perf_counter()
            subprocess.run(cli, check=True)
            tc.append((time.perf_counter() - t0) * 1000)
        print(f"{a.calls} calls each, `true` in {a.project}/{a.instance}")
        for name, v in (("warden incus_exec", tw), ("incus exec (CLI)", tc)):
            print(f"  {name:18s} p50 {pct(v, 50):7.2f} ms  p99 {pct(v, 99):7.2f} ms  "
                  f"mean {statistics.mean(v):7.2f} ms")
    finally:
        w.cleanup()


if __name__ == "__main__":
    main()
