"""The command line: help, version, check-config, anonymize, and start-up failures."""
import os
import subprocess
import unittest

from harness import WARDEN, WardenTest


def run(*args, input=None):
    return subprocess.run([WARDEN, *args], input=input, capture_output=True, text=True, timeout=60)


class Cli(WardenTest):
    def test_help_and_version(self):
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        for word in ["serve", "check-config", "anonymize", "--version"]:
            self.assertIn(word, r.stdout)
        v = run("--version")
        self.assertEqual(v.returncode, 0)
        self.assertRegex(v.stdout, r"^warden \d+\.\d+\.\d+\n$")
        self.assertEqual(run("frobnicate").returncode, 2)

    def test_check_config_explains_each_error_with_file_line_and_key(self):
        d = self.tmpdir()
        path = os.path.join(d, "bad.yaml")
        with open(path, "w") as f:
            f.write("server:\n  max_concurrent_calls: -1\ngit:\n  repos:\n    demo: /nonexistent/repo\nsurprise: 1\n")
        r = run("check-config", "--config", path)
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"{path}:2:25: server.max_concurrent_calls: must be between 1 and 1024, got -1", r.stderr)
        self.assertIn(f"{path}:5:11: git.repos.demo: no such directory: /nonexistent/repo", r.stderr)
        self.assertIn(f"{path}:6:1: surprise: unknown key", r.stderr)

    def test_check_config_accepts_a_valid_file(self):
        d = self.tmpdir()
        path = os.path.join(d, "ok.yaml")
        with open(path, "w") as f:
            f.write("audit: {retention_seconds: 60}\n")
        r = run("check-config", "--config", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("valid", r.stdout)

    def test_check_config_says_how_git_is_confined(self):
        d = self.tmpdir()
        os.makedirs(os.path.join(d, "repo", ".git"))
        path = os.path.join(d, "git.yaml")
        with open(path, "w") as f:
            f.write(f"git: {{repos: {{demo: {d}/repo}}}}\n")
        r = run("check-config", "--config", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("git sandbox: ", r.stdout)
        self.assertIn("seccomp network filter", r.stdout)

    def test_serve_refuses_a_broken_config_clearly(self):
        d = self.tmpdir()
        path = os.path.join(d, "bad.yaml")
        with open(path, "w") as f:
            f.write("server: [\n")
        r = run("serve", "--config", path, input="")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stdout, "")  # nothing but protocol on stdout, and here no protocol
        self.assertIn("YAML syntax error", r.stderr)

    def test_serve_refuses_an_unusable_audit_database(self):
        d = self.tmpdir()
        with open(os.path.join(d, "audit.db"), "w") as f:
            f.write("not a database" * 1000)
        r = run("serve", "--state-dir", d, input="")
        self.assertEqual(r.returncode, 1)
        self.assertIn("audit", r.stderr)

    def test_serve_runs_on_embedded_defaults(self):
        d = self.tmpdir()
        env = dict(os.environ, XDG_STATE_HOME=d)
        init = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}\n'
        r = subprocess.run([WARDEN, "serve"], input=init, capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('"protocolVersion":"2025-11-25"', r.stdout)
        self.assertTrue(os.path.exists(os.path.join(d, "warden", "audit.db")))
        self.assertEqual(os.stat(os.path.join(d, "warden", "audit.db")).st_mode & 0o777, 0o600)

    def test_anonymize_filters_stdin(self):
        r = run("anonymize", input="ssh admin@10.3.3.3 password=Hunter2-x9\n")
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stdout, "ssh admin@[IP_1] password=[PASSWORD_REDACTED]\n")
        self.assertNotIn("10.3.3.3", r.stdout)
        self.assertNotIn("Hunter2-x9", r.stdout)

    def test_anonymize_knows_the_inventory_and_infra_yml(self):
        d = self.tmpdir()
        with open(os.path.join(d, "infra.yml"), "w") as f:
            f.write("domains:\n  pro:\n    machines:\n      pro-web: {type: lxc}\n")
        path = os.path.join(d, "w.yaml")
        with open(path, "w") as f:
            f.write("anonymizer:\n  infra_yml: infra.yml\n"
                    "ssh:\n  source_addresses: [127.0.0.1/32]\n  hosts:\n    db:\n      address: db01.example.net\n"
                    "      user: deploy\n      principals: [p]\n"
                    "      host_key_sha256: \"SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\n")
        r = run("anonymize", "--config", path, input="pro-web talks to db01.example.net on net-pro\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("pro-web", r.stdout)
        self.assertNotIn("db01.example.net", r.stdout)
        self.assertNotIn("net-pro", r.stdout)
        self.assertIn("talks to [HOST_", r.stdout)

    def test_anonymize_explain_names_rules_never_values(self):
        r = run("anonymize", "--explain", input="DB_PASSWORD=Sup3r-Secret-Value\n")
        self.assertEqual(r.returncode, 0)
        self.assertIn("password\tkeyvalue-secret", r.stderr)
        self.assertNotIn("Sup3r", r.stderr)


class Purge(WardenTest):
    def call_then_exit(self, retention):
        from harness import git_config, make_repo
        d = self.tmpdir()
        repo = make_repo(d + "/r", {"a.txt": "hello\n"})
        w = self.start(config_text=f"audit: {{retention_seconds: {retention}}}\n" + git_config({"demo": repo}))
        w.initialize()
        self.assertFalse(w.tool("git", {"repo": "demo", "operation": "status"})["result"]["isError"])
        self.assertEqual(w.close(), 0)
        return w

    def test_bodies_past_retention_are_purged_and_hashes_kept(self):
        w = self.call_then_exit(retention=0)
        rows = w.audit("SELECT output_anon, output_sha256, purged_ms FROM tool_calls")
        self.assertEqual(len(rows), 1)
        self.assertIsNone(rows[0][0])
        self.assertEqual(len(rows[0][1]), 64)
        self.assertIsNotNone(rows[0][2])
        r = run("purge", "--config", w.config, "--state-dir", w.state)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("purged 0 output bodies", r.stdout)

    def test_bodies_within_retention_stay_until_their_time(self):
        w = self.call_then_exit(retention=3600)
        self.assertIsNotNone(w.audit("SELECT output_anon FROM tool_calls")[0][0])
        r = run("purge", "--config", w.config, "--state-dir", w.state)
        self.assertIn("purged 0 output bodies", r.stdout)
        self.assertIsNotNone(w.audit("SELECT output_anon FROM tool_calls")[0][0])


if __name__ == "__main__":
    unittest.main()
