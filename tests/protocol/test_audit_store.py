"""The audit store under load and when the disk misbehaves, through the real binary:
200 concurrent calls all audited; kill -9 in the middle of heavy writing loses no
committed row; a locked, read-only, full or corrupt database is a clear error, the
server stays up, and tool calls fail closed (no unaudited access)."""
import os
import signal
import sqlite3
import subprocess
import threading
import time
import unittest

from harness import Warden, WardenTest, git_config, make_repo, text_of, warden_cli


def can_unshare():
    return os.geteuid() == 0 and subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


class AuditStore(WardenTest):
    def setUp(self):
        d = self.tmpdir()
        self.repo = make_repo(d + "/infra", {"README.md": "# infra\n", "app.env": "DB_PASSWORD=Xq9-secret-77\n"})

    def status_args(self):
        return {"name": "git", "arguments": {"repo": "infra", "operation": "status"}}

    def test_200_concurrent_calls_are_all_audited(self):
        w = self.start(config_text=git_config({"infra": self.repo}) + "server:\n  max_concurrent_calls: 200\n")
        w.initialize()
        ids = [w.request("tools/call", self.status_args()) for _ in range(200)]
        results = {i: w.response(i, timeout=300) for i in ids}
        call_ids = set()
        for i, r in results.items():
            self.assertFalse(r["result"]["isError"], text_of(r))
            call_ids.add(r["result"]["structuredContent"]["call_id"])
        self.assertEqual(len(call_ids), 200)
        rows = w.audit("SELECT call_id, status, canary, output_sha256 IS NOT NULL FROM tool_calls")
        self.assertEqual(len(rows), 200)
        self.assertEqual({r[0] for r in rows}, call_ids)
        self.assertTrue(all(r[1:] == ("completed", "pass", 1) for r in rows), rows[:3])
        self.assertEqual(w.audit("PRAGMA integrity_check"), [("ok",)])

    def test_kill_9_during_heavy_writing_loses_no_committed_row(self):
        w = self.start(config_text=git_config({"infra": self.repo}) + "server:\n  max_concurrent_calls: 64\n")
        w.initialize()
        answered = []  # call ids whose result reached us: their rows were committed before
        stop = threading.Event()

        def writer():
            pending = []
            while not stop.is_set():
                while len(pending) < 48 and not stop.is_set():
                    pending.append(w.request("tools/call", self.status_args()))
                try:
                    r = w.response(pending.pop(0), timeout=30)
                except Exception:
                    return
                sc = r.get("result", {}).get("structuredContent")
                if sc:
                    answered.append(sc["call_id"])

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        while len(answered) < 300:
            time.sleep(0.05)
            self.assertTrue(t.is_alive())
        w.proc.send_signal(signal.SIGKILL)
        w.proc.wait()
        stop.set()
        t.join(timeout=30)
        got = list(answered)
        self.assertGreaterEqual(len(got), 300)
        # The checker: an independent connection after the crash.
        db = sqlite3.connect(os.path.join(w.state, "audit.db"))
        try:
            self.assertEqual(db.execute("PRAGMA integrity_check").fetchall(), [("ok",)])
            found = dict(db.execute("SELECT call_id, status FROM tool_calls").fetchall())
            total = len(found)
        finally:
            db.close()
        missing = [c for c in got if found.get(c) != "completed"]
        self.assertEqual(missing, [])
        self.assertGreater(total, len(got) - 1)  # calls in flight at the kill left their start rows too
        # And the database opens again for the next server.
        w2 = self.start(config=w.config, state=w.state)
        w2.initialize()
        r = w2.tool("git", self.status_args()["arguments"])
        self.assertFalse(r["result"]["isError"], text_of(r))

    def test_locked_database_fails_closed_with_a_clear_error_then_recovers(self):
        w = self.start(config_text=git_config({"infra": self.repo}) + "audit:\n  busy_timeout_ms: 200\n")
        w.initialize()
        self.assertFalse(w.tool("git", self.status_args()["arguments"])["result"]["isError"])
        locker = sqlite3.connect(os.path.join(w.state, "audit.db"), isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            r = w.tool("git", self.status_args()["arguments"])
            self.assertTrue(r["result"]["isError"])
            self.assertIn("audit", text_of(r))
            self.assertIn("locked", text_of(r))
            self.assertNotIn("branch", text_of(r))  # the command did not run: no output
            self.assertIn("result", w.call("ping"))  # the server is up
        finally:
            locker.execute("COMMIT")
            locker.close()
        r = w.tool("git", self.status_args()["arguments"])
        self.assertFalse(r["result"]["isError"], text_of(r))
        rows = w.audit("SELECT status FROM tool_calls")
        self.assertEqual([s for (s,) in rows], ["completed", "completed"])  # the refused call ran nothing

    def test_corrupt_database_is_a_clear_error_and_nothing_serves_tools(self):
        d = self.tmpdir()
        state = os.path.join(d, "state")
        os.makedirs(state)
        with open(os.path.join(state, "audit.db"), "wb") as f:
            f.write(b"this is not a database" * 400)
        w = Warden(config_text=git_config({"infra": self.repo}), state=state)
        self.addCleanup(w.cleanup)
        self.assertEqual(w.proc.wait(timeout=30), 1)
        err = w.read_stderr()
        self.assertIn(os.path.join(state, "audit.db"), err)
        self.assertIn("not a database", err)
        self.assertIn("no unaudited access", err)
        self.assertEqual(w.raw_lines, [])  # nothing on the protocol stream
        for cmd in (["audit"], ["stats"], ["purge"], ["canary"]):
            r = warden_cli(*cmd, "--state-dir", state)
            self.assertEqual(r.returncode, 1, cmd)
            self.assertIn("not a database", r.stderr)


@unittest.skipUnless(can_unshare(), "needs root and mount namespaces (CI has both)")
class AuditDisk(WardenTest):
    """The state directory on a small tmpfs in Warden's own mount namespace."""

    def serve_on_tmpfs(self, before=lambda state: ""):
        d = self.tmpdir()
        self.repo = make_repo(d + "/infra", {"README.md": "# infra\n"})
        self.state = os.path.join(d, "state")
        os.makedirs(self.state)
        config = os.path.join(d, "warden.yaml")
        with open(config, "w") as f:
            f.write(git_config({"infra": self.repo}))
        # $1 is the warden binary: `before` may run it (and anything else) first.
        script = f"mount -t tmpfs -o size=2m,mode=0700 tmpfs {self.state} && {before(self.state)} exec \"$@\""
        w = self.start(config=config, state=self.state,
                       prefix=["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"])
        self.ns = ["nsenter", "-t", str(w.proc.pid), "-m"]
        return w

    def in_ns(self, *cmd):
        return subprocess.run([*self.ns, *cmd], capture_output=True, text=True)

    def test_full_disk_fails_closed_then_recovers_without_losing_rows(self):
        w = self.serve_on_tmpfs()
        w.initialize()
        status = lambda: w.tool("git", {"repo": "infra", "operation": "status"})
        self.assertFalse(status()["result"]["isError"])
        fill = self.in_ns("sh", "-c", f"dd if=/dev/zero of={self.state}/filler bs=64k 2>&1; sync")
        self.assertIn("No space left", fill.stdout)
        refused = 0
        for _ in range(5):  # the write-ahead log may hold a page or two of room
            r = status()
            if r["result"]["isError"]:
                refused += 1
                self.assertIn("audit", text_of(r))
                self.assertRegex(text_of(r), "full|disk")
                self.assertNotIn("branch", text_of(r))
        self.assertGreater(refused, 0)
        self.assertIn("result", w.call("ping"))
        self.in_ns("rm", f"{self.state}/filler")
        r = status()
        self.assertFalse(r["result"]["isError"], text_of(r))
        check = self.in_ns("sh", "-c", f"echo 'PRAGMA integrity_check; SELECT COUNT(*) FROM tool_calls WHERE "
                                       f"status=\"completed\";' | sqlite3 {self.state}/audit.db")
        lines = check.stdout.split()
        self.assertEqual(lines[0], "ok", check.stderr)
        self.assertEqual(int(lines[1]), 1 + (5 - refused) + 1)

    def test_read_only_database_is_a_clear_error_at_start(self):
        # A database from an earlier run, on a file system that is now read-only.
        w = self.serve_on_tmpfs(before=lambda state: f'"$1" canary --state-dir {state} >/dev/null && '
                                                     f'mount -o remount,ro {state} &&')
        self.assertEqual(w.proc.wait(timeout=60), 1)
        err = w.read_stderr()
        self.assertIn("audit.db", err)
        self.assertRegex(err, "[Rr]ead-only")
        self.assertIn("no unaudited access", err)
        self.assertEqual(w.raw_lines, [])

if __name__ == "__main__":
    unittest.main()
