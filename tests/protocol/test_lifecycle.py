"""Concurrency, cancellation, progress, limits and shutdown of the real binary.

A slow call is a real git on a repository that is slow to grep (harness.slow_call),
ended by its own timeout where a test needs it to end."""
import os
import signal
import time
import unittest

from harness import WardenTest, git_config, make_repo, text_of


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


class Lifecycle(WardenTest):
    def setUp(self):
        self.d = self.tmpdir()
        self.repo = make_repo(self.d + "/r", {"a.txt": "hello 10.1.1.1\n"})

    def start_slow(self, extra=""):
        w = self.start(config_text=git_config({"demo": self.repo}) + extra)
        w.initialize()
        return w

    def slow(self, seconds):
        return {"name": "git", "arguments": {"repo": "demo", **self.slow_call(self.repo, seconds)}}

    def wait_for_pids(self, w, n):
        for _ in range(200):
            pids = self.git_children(w.proc.pid)
            if len(pids) >= n:
                return pids
            time.sleep(0.05)
        self.fail("the slow git never started")

    def test_a_slow_call_does_not_block_ping_or_another_request(self):
        w = self.start_slow()
        slow = w.request("tools/call", self.slow(3))
        self.wait_for_pids(w, 1)
        ping = w.request("ping")
        listing = w.request("tools/list")
        # The answers to ping and tools/list arrive while the slow call is still running.
        first = w.next_message()
        second = w.next_message()
        self.assertEqual({first["id"], second["id"]}, {ping, listing})
        self.assertEqual(w.response(slow, timeout=60)["result"]["structuredContent"]["status"], "timed_out")

    def test_cancellation_stops_the_command_and_sends_no_response(self):
        w = self.start_slow()
        rid = w.request("tools/call", self.slow(60))
        pid = self.wait_for_pids(w, 1)[0]
        self.assertTrue(alive(pid))
        w.notify("notifications/cancelled", {"requestId": rid, "reason": "user pressed escape"})
        # The process is gone once the audit row says cancelled.
        for _ in range(200):
            rows = w.audit("SELECT status FROM tool_calls")
            if rows and rows[0][0] != "running":
                break
            time.sleep(0.05)
        self.assertEqual(rows, [("cancelled",)])
        self.assertFalse(alive(pid))
        pong = w.call("ping")  # the next message is the ping's answer: the cancelled call got none
        self.assertEqual(pong["result"], {})

    def test_progress_notifications_carry_the_token(self):
        w = self.start_slow()
        seen = []
        rid = w.request("tools/call", {**self.slow(3), "_meta": {"progressToken": "tok-1"}})
        r = w.response(rid, timeout=60, keep=seen)
        self.assertEqual(r["result"]["structuredContent"]["status"], "timed_out")
        progress = [m for m in seen if m.get("method") == "notifications/progress"]
        self.assertTrue(progress, seen)
        self.assertTrue(all(m["params"]["progressToken"] == "tok-1" for m in progress))
        values = [m["params"]["progress"] for m in progress]
        self.assertEqual(values, sorted(set(values)))  # strictly increasing

    def test_concurrency_limit_is_a_clear_error_not_a_hang(self):
        w = self.start_slow(extra="server: {max_concurrent_calls: 2}\n")
        a = w.request("tools/call", self.slow(30))
        b = w.request("tools/call", self.slow(30))
        self.wait_for_pids(w, 2)
        c = w.response(w.request("tools/call", {"name": "git", "arguments": {"repo": "demo", "operation": "status"}}))
        self.assertTrue(c["result"]["isError"])
        self.assertIn("max_concurrent_calls", text_of(c))
        for rid in (a, b):
            w.notify("notifications/cancelled", {"requestId": rid})
        self.assertEqual(w.call("ping")["result"], {})

    def test_eof_lets_calls_in_flight_finish_and_audits_them(self):
        w = self.start_slow()
        rid = w.request("tools/call", self.slow(2))
        self.wait_for_pids(w, 1)
        w.proc.stdin.close()
        r = w.response(rid, timeout=60)  # the call runs to its own end (its timeout), then is answered
        self.assertEqual(r["result"]["structuredContent"]["status"], "timed_out")
        self.assertEqual(w.proc.wait(timeout=60), 0)
        self.assertEqual(w.audit("SELECT status FROM tool_calls"), [("timed_out",)])
        self.assertEqual(len(w.audit("SELECT ended_ms FROM sessions WHERE ended_ms IS NOT NULL")), 1)

    def test_sigterm_cancels_calls_in_flight_and_completes_their_rows(self):
        w = self.start_slow()
        w.request("tools/call", self.slow(60))
        pid = self.wait_for_pids(w, 1)[0]
        w.proc.send_signal(signal.SIGTERM)
        self.assertEqual(w.proc.wait(timeout=60), 0)
        self.assertEqual(w.audit("SELECT status FROM tool_calls"), [("cancelled",)])
        self.assertFalse(alive(pid))

    def test_oversized_line_is_refused_without_being_held_in_memory(self):
        w = self.start(config_text="server: {max_message_bytes: 65536}\n")
        w.initialize()
        chunk = b"x" * (1 << 20)
        w.send_raw(b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"')
        for _ in range(64):  # 64 MiB in one line
            w.send_raw(chunk)
        w.send_raw(b'"}}\n')
        m = w.next_message()
        self.assertEqual(m["error"]["code"], -32600)
        self.assertIn("exceeds the limit of 65536 bytes", m["error"]["message"])
        self.assertEqual(w.call("ping")["result"], {})
        with open(f"/proc/{w.proc.pid}/status") as f:
            hwm_kb = int(next(l for l in f if l.startswith("VmHWM")).split()[1])
        self.assertLess(hwm_kb, 48 * 1024, "peak RSS shows the line was held in memory")

    def test_log_notifications_follow_set_level(self):
        w = self.start(config_text=git_config({"demo": self.repo}))
        w.initialize()
        seen = []
        w.response(w.request("tools/call", {"name": "git", "arguments": {"repo": "demo", "operation": "status"}}),
                   keep=seen)
        self.assertFalse([m for m in seen if m.get("method") == "notifications/message"])
        self.assertEqual(w.call("logging/setLevel", {"level": "info"})["result"], {})
        w.response(w.request("tools/call", {"name": "git", "arguments": {"repo": "demo", "operation": "status"}}),
                   keep=seen)
        logs = [m for m in seen if m.get("method") == "notifications/message"]
        self.assertTrue(logs)
        self.assertEqual(logs[0]["params"]["level"], "info")
        self.assertNotIn("10.1.1.1", str(logs))


if __name__ == "__main__":
    unittest.main()
