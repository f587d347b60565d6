"""The SSH CA key inside a PKCS#11 token, end to end through the real binary:
`warden ca init --pkcs11` and `warden ca pubkey` on a real SoftHSM2 token,
`warden check-config` reporting each fault of the token set-up, and
`warden serve` signing ssh_run's certificates through the token for a real
sshd (test_ssh_tool.Sshd), also when the key disappears while it runs.

Each test has its own SoftHSM2 token store in a scratch directory
(SOFTHSM2_CONF), so nothing outside it is read or left behind."""
import os
import re
import subprocess
import unittest

import test_ssh_tool as ssh_tools
from harness import WARDEN, WardenTest, text_of

MODULES = ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"]
MODULE = next((m for m in MODULES if os.path.exists(m)), MODULES[0])
PIN = "4321-warden-pin"
LINE = re.compile(r"^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[0-9A-Za-z+/]{43} warden-ssh-ca$")


class Token:
    """A fresh SoftHSM2 token labelled `label` in directory `d`, user PIN in d/pin (0600)."""

    def __init__(self, d, label="warden-ca"):
        if not os.path.exists(MODULE) or not os.path.exists("/usr/bin/softhsm2-util"):
            raise AssertionError("SoftHSM2 is not installed: run scripts/setup.sh --tests")
        self.dir, self.label = d, label
        self.conf = os.path.join(d, "softhsm2.conf")
        os.makedirs(os.path.join(d, "tokens"))
        with open(self.conf, "w") as f:
            f.write(f"directories.tokendir = {d}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n")
        self.env = {"SOFTHSM2_CONF": self.conf}
        self.pin_file = os.path.join(d, "pin")
        with open(os.open(self.pin_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(PIN + "\n")
        self.tool("softhsm2-util", "--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", "87654321")

    def tool(self, *argv, check=True):
        # HOME too: nothing a tool might cache lands outside the scratch directory.
        return subprocess.run(argv, env=dict(os.environ, HOME=self.dir, **self.env), capture_output=True, text=True,
                              timeout=60, check=check)

    def uri(self, obj="ca", with_files=False):
        u = f"pkcs11:token={self.label};object={obj}"
        return u + (f"?module-path={MODULE}&pin-source=file:{self.pin_file}" if with_files else "")

    def warden(self, *args):
        return subprocess.run([WARDEN, *args], env=dict(os.environ, **self.env), capture_output=True, text=True,
                              timeout=60)

    def delete_private_key(self, obj="ca"):
        self.tool("pkcs11-tool", "--module", MODULE, "--token-label", self.label, "--login", "--pin", PIN,
                  "--delete-object", "--type", "privkey", "--label", obj)

    def config(self, ca_key=None, module=MODULE, pin_file=None, extra=""):
        lines = [f'  ca_key: "{ca_key or self.uri()}"']
        if module:
            lines.append(f"  pkcs11_module: {module}")
        lines.append(f"  pkcs11_pin_file: {pin_file or self.pin_file}")
        return "ssh:\n" + "\n".join(lines) + "\n" + extra


class CaCommandsOnAToken(WardenTest):
    def setUp(self):
        self.t = Token(self.tmpdir())

    def test_init_generates_a_non_extractable_key_in_the_token_and_pubkey_prints_its_line(self):
        r = self.t.warden("ca", "init", "--pkcs11", self.t.uri(with_files=True))
        self.assertEqual(r.returncode, 0, r.stderr)
        line = r.stdout.strip()
        self.assertRegex(line, LINE)
        self.assertIn("sensitive, not extractable", r.stderr)
        self.assertNotIn(PIN, r.stdout + r.stderr)
        # OpenSC's view of the token: the private key never was, and never can be, read out.
        objects = self.t.tool("pkcs11-tool", "--module", MODULE, "--token-label", "warden-ca", "--login", "--pin", PIN,
                              "--list-objects").stdout
        self.assertRegex(objects, r"Private Key Object; EC_EDWARDS\s+label:\s+ca\s")
        self.assertIn("Access:     sensitive, always sensitive, never extractable, local", objects)

        again = self.t.warden("ca", "init", "--pkcs11", self.t.uri(with_files=True))
        self.assertEqual(again.returncode, 1)
        self.assertIn("never replaces a CA key", again.stderr)

        # pubkey, from a config (module and PIN file as config keys), prints the same line.
        d = self.tmpdir()
        path = os.path.join(d, "w.yaml")
        with open(path, "w") as f:
            f.write(self.t.config())
        pub = self.t.warden("ca", "pubkey", "--config", path)
        self.assertEqual(pub.returncode, 0, pub.stderr)
        self.assertEqual(pub.stdout.strip(), line)
        # `warden ca init` with that config also targets the token, and refuses to replace its key.
        init_from_config = self.t.warden("ca", "init", "--config", path)
        self.assertEqual(init_from_config.returncode, 1)
        self.assertIn("never replaces a CA key", init_from_config.stderr)

    def test_check_config_opens_the_token_and_names_each_fault(self):
        self.assertEqual(self.t.warden("ca", "init", "--pkcs11", self.t.uri(with_files=True)).returncode, 0)
        d = self.tmpdir()
        path = os.path.join(d, "w.yaml")
        wrong_pin = os.path.join(d, "wrong-pin")
        with open(os.open(wrong_pin, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write("0000-not-the-pin\n")

        def check(config_text):
            with open(path, "w") as f:
                f.write(config_text)
            return self.t.warden("check-config", "--config", path)

        ok = check(self.t.config())
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertRegex(ok.stdout, r"ssh CA: SHA256:\S+ \(PKCS#11 key pkcs11:token=warden-ca;object=ca \(module ")
        cases = [
            ("wrong PIN", self.t.config(pin_file=wrong_pin), ["refused the PIN from " + wrong_pin, "CKR_PIN_INCORRECT"]),
            ("missing token", self.t.config(ca_key="pkcs11:token=elsewhere;object=ca"),
             ["no token matches pkcs11:token=elsewhere;object=ca", '"warden-ca"']),
            ("missing key", self.t.config(ca_key="pkcs11:token=warden-ca;object=other"),
             ["no private key matches pkcs11:token=warden-ca;object=other"]),
            ("not a PKCS#11 module", self.t.config(module="/lib/x86_64-linux-gnu/libc.so.6"),
             ["/lib/x86_64-linux-gnu/libc.so.6 is not a PKCS#11 module"]),
            ("no module", self.t.config(module=None), ["no PKCS#11 module", "ssh.pkcs11_module"]),
            ("a PIN in the config", self.t.config(ca_key=self.t.uri() + "?pin-value=" + PIN),
             ["ssh.ca_key: must not carry the PIN (pin-value)"]),
        ]
        for name, text, needles in cases:
            with self.subTest(name):
                r = check(text)
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                for needle in needles:
                    self.assertIn(needle, r.stderr)
                self.assertNotIn(PIN, r.stdout + r.stderr)
                self.assertNotIn("0000-not-the-pin", r.stdout + r.stderr)
        # Last, the key goes (deleted by another program): check-config says so.
        self.t.delete_private_key()
        gone = check(self.t.config())
        self.assertEqual(gone.returncode, 1)
        self.assertIn("no private key matches pkcs11:token=warden-ca;object=ca", gone.stderr)


@unittest.skipUnless(os.path.exists(ssh_tools.SSHD), "openssh-server is not installed")
class SshRunThroughAToken(WardenTest):
    def setUp(self):
        self.t = Token(self.tmpdir())
        r = self.t.warden("ca", "init", "--pkcs11", self.t.uri(with_files=True))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.ca_line = r.stdout.strip()
        self.sshd = ssh_tools.Sshd(self.tmpdir(), self.ca_line)
        self.addCleanup(self.sshd.stop)
        fp = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", "/dev/stdin"], input=self.ca_line,
                            capture_output=True, text=True, check=True).stdout.split()[1]
        self.ca_fingerprint = fp

    def config(self, pin_file=None):
        return self.t.config(pin_file=pin_file, extra=f"""  source_addresses: [127.0.0.1/32]
  hosts:
    box:
      address: 127.0.0.1
      port: {self.sshd.port}
      user: {self.sshd.user}
      principals: [{self.sshd.principal}]
      host_key_sha256: "{self.sshd.fingerprint}"
""")

    def test_a_call_is_signed_in_the_token_and_sshd_accepts_it(self):
        w = self.start(config_text=self.config(), env=self.t.env)
        w.initialize()
        r = w.tool("ssh_run", {"host": "box", "command": "echo via-token"})
        self.assertFalse(r["result"]["isError"], text_of(r))
        self.assertIn("via-token", r["result"]["structuredContent"]["stdout"])
        rows = w.audit("SELECT status FROM tool_calls")
        self.assertEqual(rows, [("completed",)])
        self.assertTrue(self.sshd.wait_for_log(f"CA ED25519 {self.ca_fingerprint}"), self.sshd.log())
        self.assertTrue(self.sshd.wait_for_log("Accepted publickey"), self.sshd.log())
        w.close()
        log = w.read_stderr()
        self.assertIn(f"ssh CA {self.ca_fingerprint} (PKCS#11 key pkcs11:token=warden-ca;object=ca", log)
        self.assertNotIn(PIN, log)

    def test_serve_refuses_to_start_when_the_token_refuses_the_pin(self):
        d = self.tmpdir()
        wrong = os.path.join(d, "pin")
        with open(os.open(wrong, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write("0000-not-the-pin\n")
        path = os.path.join(d, "w.yaml")
        with open(path, "w") as f:
            f.write(self.config(pin_file=wrong))
        r = subprocess.run([WARDEN, "serve", "--config", path, "--state-dir", os.path.join(d, "state")], input="",
                           env=dict(os.environ, **self.t.env), capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("refused the PIN", r.stderr)
        self.assertIn("ssh_run needs Warden's SSH CA key", r.stderr)
        self.assertEqual(r.stdout, "")

    def test_a_key_deleted_while_serving_fails_the_call_clearly_and_the_server_stays_up(self):
        w = self.start(config_text=self.config(), env=self.t.env)
        w.initialize()
        first = w.tool("ssh_run", {"host": "box", "command": "echo before"})
        self.assertFalse(first["result"]["isError"], text_of(first))
        self.t.delete_private_key()
        r = w.tool("ssh_run", {"host": "box", "command": "echo after"})
        self.assertTrue(r["result"]["isError"])
        # The error passes the output pipeline like any tool output (the anonymizer
        # takes "token=..." for a credential); what matters survives it.
        self.assertIn("the session to the token broke", text_of(r))
        self.assertIn("no private key matches pkcs11:", text_of(r))
        self.assertIn('on token "warden-ca"', text_of(r))
        rows = w.audit("SELECT status, error FROM tool_calls ORDER BY rowid")
        self.assertEqual(len(rows), 2)
        self.assertIn("no private key matches", rows[1][1])
        self.assertIn("tools", w.call("tools/list")["result"])  # still serving


if __name__ == "__main__":
    unittest.main()
