"""Canaries through the real binary: a rule weakened through the config fails
`warden canary`, halts the server at start and inline; the halt holds across
processes until an operator lifts it; `warden stats` and `warden audit` report it."""
import json
import os
import sqlite3
import unittest

from harness import Warden, WardenTest, git_config, make_repo, text_of, warden_cli

WEAK = "anonymizer:\n  disabled_rules: [email]\n"


class Canary(WardenTest):
    def setUp(self):
        d = self.tmpdir()
        self.repo = make_repo(d + "/infra", {"README.md": "# infra\n"})
        self.state = os.path.join(d, "state")
        self.good = os.path.join(d, "good.yaml")
        self.weak = os.path.join(d, "weak.yaml")
        with open(self.good, "w") as f:
            f.write(git_config({"infra": self.repo}))
        with open(self.weak, "w") as f:
            f.write(git_config({"infra": self.repo}) + WEAK)

    def cli(self, *args):
        return warden_cli(*args, "--state-dir", self.state)

    def db(self, sql):
        db = sqlite3.connect(os.path.join(self.state, "audit.db"))
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()

    def serve(self, config):
        w = self.start(config=config, state=self.state)
        w.initialize()
        return w

    def git_status(self, w):
        return w.tool("git", {"repo": "infra", "operation": "status"})

    def test_self_test_passes_on_the_built_in_rules(self):
        r = self.cli("canary", "--config", self.good)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        lines = [l for l in r.stdout.splitlines() if l.startswith(("PASS", "FAIL"))]
        self.assertGreaterEqual(len(lines), 14)
        self.assertTrue(all(l.startswith("PASS") for l in lines), r.stdout)
        self.assertEqual(self.db("SELECT passed, failed FROM canary_runs"), [(len(lines), 0)])
        self.assertEqual(self.db("SELECT COUNT(*) FROM halts"), [(0,)])

    def test_weakened_rule_fails_the_self_test_halts_calls_until_reset(self):
        r = self.cli("canary", "--config", self.weak)
        self.assertEqual(r.returncode, 1)
        self.assertIn("FAIL  email", r.stdout)
        self.assertIn("HALTED", r.stdout)
        self.assertNotIn("@test.internal", r.stdout + r.stderr)  # the canary value is never printed
        halts = self.db("SELECT severity, source, lifted_ms FROM halts")
        self.assertEqual(halts, [("critical", "warden canary", None)])

        # A server on the same state, with a healthy config: its start self-test passes, and a
        # restart with a passing self-test is an operator action that lifts the halt.
        # The weakened server instead fails its own start self-test and refuses every call.
        w = self.serve(self.weak)
        r = self.git_status(w)
        self.assertTrue(r["result"]["isError"])
        self.assertIn("HALTED", text_of(r))
        self.assertIn("warden canary --reset", text_of(r))
        rows = w.audit("SELECT status, error FROM tool_calls")
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0][0], "refused")
        self.assertIn("HALTED", rows[0][1])

        # `warden canary --reset` with the weakened config refuses to lift the halt.
        r = self.cli("canary", "--config", self.weak, "--reset")
        self.assertEqual(r.returncode, 1)
        self.assertTrue(self.db("SELECT COUNT(*) FROM halts WHERE lifted_ms IS NULL")[0][0] >= 1)
        # With a passing self-test it lifts it, for the running server too.
        r = self.cli("canary", "--config", self.good, "--reset")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("lifted", r.stdout)
        self.assertEqual(self.db("SELECT COUNT(*) FROM halts WHERE lifted_ms IS NULL"), [(0,)])

        # The running server still has the weakened rule set: within one cycle of the catalog an
        # inline canary goes through it unredacted, and the call that carried it returns nothing.
        halted_at = None
        for i in range(20):
            r = self.git_status(w)
            if "HALTED" in text_of(r):
                halted_at = i
                break
            self.assertFalse(r["result"]["isError"], text_of(r))
            self.assertIn("branch", r["result"]["structuredContent"]["stdout"])
        self.assertIsNotNone(halted_at, "no inline canary leak in 20 calls")
        self.assertTrue(r["result"]["isError"])
        self.assertNotIn("structuredContent", r["result"])
        self.assertNotIn("branch", text_of(r))
        self.assertIn("canary leak", text_of(r))
        halt = self.db("SELECT source, call_id, severity FROM halts WHERE lifted_ms IS NULL")
        self.assertEqual(len(halt), 1)
        self.assertEqual(halt[0][0], "inline")
        self.assertEqual(self.db(f"SELECT status, canary FROM tool_calls WHERE call_id='{halt[0][1]}'"),
                         [("halted", "leak")])
        r = self.git_status(w)
        self.assertIn("HALTED", text_of(r))
        self.assertIn("inline", self.cli("stats", "--config", self.good).stdout)
        w.close()

        # A restart with a passing self-test lifts it.
        w2 = self.serve(self.good)
        r = self.git_status(w2)
        self.assertFalse(r["result"]["isError"], text_of(r))
        self.assertEqual(self.db("SELECT lifted_by FROM halts WHERE source='inline'"),
                         [("restart with a passing self-test",)])
        self.assertIn("lifted", w2.read_stderr())

    def test_a_failing_cronjob_self_test_halts_a_running_server(self):
        w = self.serve(self.good)
        self.assertFalse(self.git_status(w)["result"]["isError"])
        self.assertEqual(self.cli("canary", "--config", self.weak).returncode, 1)
        r = self.git_status(w)
        self.assertTrue(r["result"]["isError"])
        self.assertIn("canary self-test failed", text_of(r))

    def test_stats_and_audit_report_the_calls(self):
        w = self.serve(self.good)
        for _ in range(3):
            self.assertFalse(self.git_status(w)["result"]["isError"])
        w.tool("git", {"repo": "nope", "operation": "status"})
        r = self.cli("stats", "--config", self.good, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        s = json.loads(r.stdout)
        self.assertEqual(s["tools"], [{"tool": "git", "calls": 4, "errors": 1}])
        self.assertEqual(s["canary"]["inline_pass"], 3)
        self.assertEqual(s["canary"]["inline_leak"], 0)
        self.assertEqual(s["canary"]["status"], "ok")
        self.assertEqual(s["anonymization_latency_us"]["calls"], 3)
        self.assertIsNone(s["halt"])
        text = self.cli("stats", "--config", self.good).stdout
        for metric in ["anonymization latency", "canary pass rate", "escalation ratio", "near certificate expiry",
                       "output-validation rejections", "purge lag", "git"]:
            self.assertIn(metric, text)
        prom = self.cli("stats", "--config", self.good, "--prometheus").stdout
        self.assertIn('warden_tool_calls{tool="git"} 4', prom)
        self.assertIn("warden_halted 0", prom)

        r = self.cli("audit", "--config", self.good, "--json", "--tool", "git")
        rows = json.loads(r.stdout)
        self.assertEqual(len(rows), 4)
        self.assertEqual(sorted(x["status"] for x in rows), ["completed"] * 3 + ["refused"])
        self.assertTrue(all(x["canary"] in ("pass", "") or x["status"] == "refused" for x in rows))
        table = self.cli("audit", "--config", self.good, "--since", "10m").stdout
        self.assertEqual(len(table.strip().splitlines()), 5)  # header and four calls
        self.assertEqual(json.loads(self.cli("audit", "--config", self.good, "--json", "--tool", "ssh_run").stdout), [])
        bad = self.cli("audit", "--config", self.good, "--since", "5x")
        self.assertEqual(bad.returncode, 2)
        self.assertIn("unknown duration unit", bad.stderr)


if __name__ == "__main__":
    unittest.main()
