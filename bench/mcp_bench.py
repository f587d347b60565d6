#!/usr/bin/env python3
"""Measures an MCP stdio server from the outside, the same way for any server:

  startup   spawn -> initialize response (median and p90 of --starts runs)
  roundtrip tools/call sequential round trips after initialize (p50, p99 of --calls)
  rss       VmRSS of the server process when idle after initialize, and VmHWM after
            --concurrent calls sent at once (children such as git are not counted)

usage: mcp_bench.py --name NAME --tool TOOL --args JSON -- server command...
Figures go into the issue notes; nothing here is a test.
"""
import argparse
import json
import statistics
import subprocess
import sys
import threading
import time


def proc_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


class Server:
    def __init__(self, cmd):
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.pending = {}
        self.cv = threading.Condition()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            m = json.loads(line)
            if "id" in m and ("result" in m or "error" in m):
                with self.cv:
                    self.pending[m["id"]] = m
                    self.cv.notify_all()

    def send(self, msg):
        self.p.stdin.write((json.dumps(msg) + "\n").encode())
        self.p.stdin.flush()

    def wait(self, id):
        with self.cv:
            self.cv.wait_for(lambda: id in self.pending, timeout=120)
            return self.pending.pop(id)

    def initialize(self):
        self.send({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                   "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                              "clientInfo": {"name": "bench", "version": "1"}}})
        r = self.wait(0)
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return r

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=60)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--tool", required=True)
    ap.add_argument("--args", default="{}")
    ap.add_argument("--starts", type=int, default=20)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--concurrent", type=int, default=32)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    args = json.loads(a.args)

    starts = []
    for _ in range(a.starts):
        t0 = time.perf_counter()
        s = Server(cmd)
        s.initialize()
        starts.append((time.perf_counter() - t0) * 1000)
        s.close()

    s = Server(cmd)
    s.initialize()
    call = lambda i: {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": a.tool, "arguments": args}}
    s.send(call(1))
    first = s.wait(1)
    if "error" in first or first["result"].get("isError"):
        sys.exit(f"the tool call failed: {json.dumps(first)[:500]}")
    time.sleep(0.5)
    idle_rss = proc_kb(s.p.pid, "VmRSS")
    rtt = []
    for i in range(a.calls):
        t0 = time.perf_counter()
        s.send(call(100 + i))
        s.wait(100 + i)
        rtt.append((time.perf_counter() - t0) * 1000)
    ids = list(range(10_000, 10_000 + a.concurrent))
    t0 = time.perf_counter()
    for i in ids:
        s.send(call(i))
    errors = sum(1 for i in ids if "error" in s.wait(i) )
    burst_ms = (time.perf_counter() - t0) * 1000
    hwm = proc_kb(s.p.pid, "VmHWM")
    s.close()
    print(f"{a.name}: startup->initialize median {statistics.median(starts):.1f} ms p90 {pct(starts, 90):.1f} ms "
          f"({a.starts} runs); tools/call {a.tool} p50 {pct(rtt, 50):.2f} ms p99 {pct(rtt, 99):.2f} ms "
          f"({a.calls} calls); RSS idle {idle_rss / 1024:.1f} MiB; peak RSS with {a.concurrent} concurrent calls "
          f"{hwm / 1024:.1f} MiB (burst {burst_ms:.0f} ms, {errors} errors)")


if __name__ == "__main__":
    main()
