"""ssh_run and `warden ca` end to end through the real binary, against a real
OpenSSH sshd started here (see ../../../shared/recipes/ssh-test-host.md):
the CA commands, start-up refusals, a call whose audit row names its
certificate, and a refusal that names the refused certificate."""
import json
import os
import socket
import stat
import subprocess
import time
import pwd
import unittest

from harness import WARDEN, WardenTest, text_of

SSHD = "/usr/sbin/sshd"


def run(*args):
    return subprocess.run([WARDEN, *args], capture_output=True, text=True, timeout=60)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sshd:
    """A real sshd on 127.0.0.1 that trusts `ca_line`; logs VERBOSE to sshd.log."""

    def __init__(self, d, ca_line):
        self.dir = d
        self.user = pwd.getpwuid(os.geteuid()).pw_name
        self.principal = "warden-" + self.user
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", f"{d}/host_key"], check=True)
        fp = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", f"{d}/host_key.pub"], check=True,
                            capture_output=True, text=True).stdout.split()[1]
        self.fingerprint = fp
        os.makedirs(f"{d}/principals", exist_ok=True)
        with open(f"{d}/principals/{self.user}", "w") as f:
            f.write(self.principal + "\n")
        with open(f"{d}/user_ca.pub", "w") as f:
            f.write(ca_line + "\n")
        subprocess.run(["ssh-keygen", "-q", "-k", "-f", f"{d}/revoked.krl"], check=True)
        for _ in range(5):
            self.port = free_port()
            with open(f"{d}/sshd_config", "w") as f:
                f.write(f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {d}/host_key
PidFile {d}/sshd.pid
TrustedUserCAKeys {d}/user_ca.pub
AuthorizedPrincipalsFile {d}/principals/%u
AuthorizedKeysFile none
RevokedKeys {d}/revoked.krl
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
AllowTcpForwarding no
X11Forwarding no
PermitTTY no
LogLevel VERBOSE
""")
            self.log_path = f"{d}/sshd.log"
            open(self.log_path, "w").close()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", f"{d}/sshd_config"], stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=subprocess.STDOUT)
            if self.wait_for_log(f"listening on 127.0.0.1 port {self.port}", 20, stop_on_exit=True):
                return
            self.stop()
            if "Address already in use" not in self.log():
                break
        raise RuntimeError("sshd did not start:\n" + self.log())

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_for_log(self, needle, timeout=15, stop_on_exit=False):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log():
                return True
            if stop_on_exit and self.proc.poll() is not None:
                return False
            time.sleep(0.02)
        return needle in self.log()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@unittest.skipUnless(os.path.exists(SSHD), "openssh-server is not installed")
class CaCommands(WardenTest):
    def test_init_creates_a_private_key_once_and_pubkey_prints_its_line(self):
        d = self.tmpdir()
        state = os.path.join(d, "state")
        r = run("ca", "init", "--state-dir", state)
        self.assertEqual(r.returncode, 0, r.stderr)
        line = r.stdout.strip()
        self.assertRegex(line, r"^ssh-ed25519 AAAA[0-9A-Za-z+/=]+ warden-ssh-ca$")
        key = os.path.join(state, "ca", "ssh_ca")
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(key)).st_mode), 0o700)
        self.assertNotIn("PRIVATE KEY", r.stdout + r.stderr)
        # OpenSSH reads the key and derives the same public key.
        derived = subprocess.run(["ssh-keygen", "-y", "-f", key], capture_output=True, text=True, check=True).stdout
        self.assertEqual(derived.split()[:2], line.split()[:2])

        again = run("ca", "init", "--state-dir", state)
        self.assertEqual(again.returncode, 1)
        self.assertIn("already exists", again.stderr)
        self.assertEqual(subprocess.run(["ssh-keygen", "-y", "-f", key], capture_output=True, text=True).stdout,
                         derived)

        pub = run("ca", "pubkey", "--state-dir", state)
        self.assertEqual(pub.returncode, 0, pub.stderr)
        self.assertEqual(pub.stdout.strip(), line)

    def test_pubkey_refuses_an_unsafe_or_missing_key(self):
        d = self.tmpdir()
        missing = run("ca", "pubkey", "--state-dir", d)
        self.assertEqual(missing.returncode, 1)
        self.assertIn("warden ca init", missing.stderr)
        self.assertEqual(run("ca", "init", "--state-dir", d).returncode, 0)
        os.chmod(os.path.join(d, "ca", "ssh_ca"), 0o644)
        unsafe = run("ca", "pubkey", "--state-dir", d)
        self.assertEqual(unsafe.returncode, 1)
        self.assertIn("mode 0644", unsafe.stderr)
        self.assertNotIn("PRIVATE KEY", unsafe.stdout + unsafe.stderr)
        self.assertEqual(run("ca").returncode, 2)
        self.assertEqual(run("ca", "frobnicate").returncode, 2)

    def test_check_config_warns_that_a_long_ttl_is_capped(self):
        d = self.tmpdir()
        path = os.path.join(d, "w.yaml")
        with open(path, "w") as f:
            f.write("ssh:\n  cert_ttl_seconds: 3600\n")
        r = run("check-config", "--config", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("warning: ssh.cert_ttl_seconds is 3600; certificates are capped at 900 s", r.stderr)


@unittest.skipUnless(os.path.exists(SSHD), "openssh-server is not installed")
class SshRun(WardenTest):
    def setUp(self):
        d = self.tmpdir()
        self.ca_state = os.path.join(d, "ca-state")
        r = run("ca", "init", "--state-dir", self.ca_state)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.ca_key = os.path.join(self.ca_state, "ca", "ssh_ca")
        self.sshd = Sshd(self.tmpdir(), r.stdout.strip())
        self.addCleanup(self.sshd.stop)

    def config(self, principal=None, ca_key=None):
        return f"""
ssh:
  ca_key: {ca_key or self.ca_key}
  source_addresses: [127.0.0.1/32]
  hosts:
    box:
      address: 127.0.0.1
      port: {self.sshd.port}
      user: {self.sshd.user}
      principals: [{principal or self.sshd.principal}]
      host_key_sha256: "{self.sshd.fingerprint}"
"""

    def test_a_call_runs_and_its_audit_row_names_the_certificate(self):
        w = self.start(config_text=self.config())
        w.initialize()
        tools = w.call("tools/list")["result"]["tools"]
        ssh = [t for t in tools if t["name"] == "ssh_run"][0]
        self.assertEqual(ssh["inputSchema"]["properties"]["host"]["enum"], ["box"])
        self.assertTrue(ssh["annotations"]["destructiveHint"])

        r = w.tool("ssh_run", {"host": "box", "command": "echo hello; echo oops >&2; exit 4"})
        res = r["result"]
        self.assertFalse(res["isError"], text_of(r))
        sc = res["structuredContent"]
        self.assertEqual(sc["target"], "host:box")
        self.assertEqual(sc["exit_status"], 4)
        self.assertIn("hello", sc["stdout"])
        self.assertIn("oops", sc["stderr"])

        rows = w.audit("SELECT call_id, session_id, status, exit_status, duration_ms, details FROM tool_calls")
        self.assertEqual(len(rows), 1)
        call_id, session_id, status, exit_status, duration_ms, details = rows[0]
        self.assertEqual((status, exit_status), ("completed", 4))
        self.assertIsNotNone(duration_ms)
        d = json.loads(details)
        self.assertEqual(d["key_id"], f"warden:{call_id}:{session_id}:ssh_run")
        self.assertEqual(d["principals"], self.sshd.principal)
        self.assertEqual(d["host"], "box")
        self.assertEqual(d["address"], f"127.0.0.1:{self.sshd.port}")
        self.assertLessEqual(int(d["valid_before"]) - int(d["valid_after"]), 900)
        self.assertNotIn("PRIVATE", details)
        # sshd logged the same certificate.
        self.assertTrue(self.sshd.wait_for_log(f"ID {d['key_id']} (serial {d['cert_serial']})"), self.sshd.log())

    def test_a_refused_certificate_is_an_error_that_names_it(self):
        w = self.start(config_text=self.config(principal="not-authorized"))
        w.initialize()
        r = w.tool("ssh_run", {"host": "box", "command": "echo must-not-run"})
        self.assertTrue(r["result"]["isError"])
        self.assertIn("refused the certificate serial", text_of(r))
        self.assertTrue(self.sshd.wait_for_log("Certificate does not contain an authorized principal"))
        rows = w.audit("SELECT status, error FROM tool_calls")
        self.assertEqual(len(rows), 1)
        self.assertIn("refused the certificate serial", rows[0][1])

    def test_serve_refuses_to_start_without_a_usable_ca(self):
        d = self.tmpdir()
        for ca_key, needle in [(os.path.join(d, "missing"), "warden ca init"), (None, "mode 0644")]:
            if ca_key is None:
                ca_key = os.path.join(d, "unsafe")
                with open(self.ca_key) as src, open(ca_key, "w") as dst:
                    dst.write(src.read())
                os.chmod(ca_key, 0o644)
            path = os.path.join(d, "w.yaml")
            with open(path, "w") as f:
                f.write(self.config(ca_key=ca_key))
            r = subprocess.run([WARDEN, "serve", "--config", path, "--state-dir", os.path.join(d, "state")],
                               input="", capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn(needle, r.stderr)
            self.assertEqual(r.stdout, "")


if __name__ == "__main__":
    unittest.main()
