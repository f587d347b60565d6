"""incus_exec and incus_list end to end: the real `warden` binary against a
real incusd, prepared by tests/incus/setup.sh (projects `pro` and `perso`,
containers pro/pro-dev running, pro/pro-stopped stopped, perso/perso-dev
running; https on 127.0.0.1:8443).

Observations of the daemon come from Incus itself, never from Warden: its API
over the unix socket, `incus monitor` (the requests it handled) and
`incus exec` (the processes left in a container).

Exit status 77 (skipped) only when this machine cannot have Incus: not root.
"""
import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "protocol"))
from harness import WardenTest, text_of  # noqa: E402

SOCKET = "/var/lib/incus/unix.socket"


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("incus")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def api(method, path, body=None):
    """One request to incusd over its unix socket; returns the decoded envelope."""
    c = UnixHTTP(SOCKET)
    try:
        c.request(method, path, body=json.dumps(body) if body is not None else None,
                  headers={"Content-Type": "application/json"})
        return json.loads(c.getresponse().read())
    finally:
        c.close()


def incus(*args, check=True):
    return subprocess.run(["incus", *args], capture_output=True, text=True, timeout=120, check=check)


def processes(project, instance):
    """The container's processes as `ps -o pid,stat,args` lines, seen through the incus CLI."""
    return incus("exec", instance, "--project", project, "--", "ps", "-o", "pid,stat,args").stdout


def live(lines, needle):
    """Lines of a ps listing running `needle` (zombies, state Z, are dead already)."""
    out = []
    for line in lines.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and needle in parts[2] and not parts[1].startswith("Z"):
            out.append(line)
    return out


def argv_sha256(argv):
    return hashlib.sha256(b"".join(a.encode() + b"\0" for a in argv)).hexdigest()


class Monitor:
    """`incus monitor` at debug level: every API request the daemon handles."""

    def __init__(self):
        self.lines = []
        self.proc = subprocess.Popen(["incus", "monitor", "--type=logging", "--loglevel=debug", "--pretty"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        # Ready once the daemon says the monitor's listener started.
        if not self.wait_for("Event listener server handler started", 15):
            raise RuntimeError("incus monitor did not start: " + self.text())

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def text(self):
        return "".join(self.lines)

    def wait_for(self, needle, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return True
            time.sleep(0.05)
        return False

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=10)
        self.proc.stdout.close()


def config(projects="[pro]", extra=""):
    return f"""
output:
  max_capture_bytes: 1048576
incus:
  projects: {projects}
  timeout_seconds: 30
{extra}"""


class IncusExec(WardenTest):
    def setUp(self):
        self.w = self.start(config_text=config())
        self.w.initialize()

    def exec(self, argv, timeout=60, **kw):
        return self.w.tool("incus_exec", dict({"project": "pro", "instance": "pro-dev", "argv": argv}, **kw),
                           timeout=timeout)

    def test_tools_are_listed_with_only_the_configured_projects(self):
        tools = {t["name"]: t for t in self.w.call("tools/list")["result"]["tools"]}
        self.assertEqual(tools["incus_exec"]["inputSchema"]["properties"]["project"]["enum"], ["pro"])
        self.assertEqual(tools["incus_list"]["inputSchema"]["properties"]["project"]["enum"], ["pro"])
        self.assertTrue(tools["incus_exec"]["annotations"]["destructiveHint"])
        self.assertTrue(tools["incus_list"]["annotations"]["readOnlyHint"])

    def test_output_exit_status_and_the_audit_row(self):
        argv = ["sh", "-c", "echo out-line; echo err-line >&2; exit 3"]
        r = self.exec(argv)
        res = r["result"]
        self.assertFalse(res["isError"], text_of(r))
        sc = res["structuredContent"]
        self.assertEqual(sc["target"], "incus:pro/pro-dev")
        self.assertEqual((sc["status"], sc["exit_status"]), ("completed", 3))
        self.assertIn("out-line", sc["stdout"])
        self.assertNotIn("err-line", sc["stdout"])
        self.assertIn("err-line", sc["stderr"])
        self.assertNotIn("out-line", sc["stderr"])
        self.assertEqual((sc["stdout_bytes"], sc["stderr_bytes"]), (9, 9))

        rows = self.w.audit("SELECT tool, target, status, exit_status, duration_ms, details FROM tool_calls")
        self.assertEqual(len(rows), 1)
        tool, target, status, exit_status, duration_ms, details = rows[0]
        self.assertEqual((tool, target, status, exit_status), ("incus_exec", "incus:pro/pro-dev", "completed", 3))
        self.assertIsNotNone(duration_ms)
        d = json.loads(details)
        self.assertEqual((d["project"], d["instance"], d["exit_status"]), ("pro", "pro-dev", "3"))
        self.assertEqual(d["argv_sha256"], argv_sha256(argv))
        # The operation it names is a real Incus operation of that project.
        self.assertRegex(d["operation"], r"^[0-9a-f-]{36}$")

    def test_argv_runs_without_a_shell_with_cwd_env_and_ids(self):
        r = self.exec(["echo", "$HOME;", "`id`", "a b"])
        self.assertFalse(r["result"]["isError"], text_of(r))
        self.assertIn("$HOME; `id` a b", r["result"]["structuredContent"]["stdout"])
        r = self.exec(["sh", "-c", 'echo "v=$FOO"; pwd; id -u; id -g'], cwd="/tmp", env=["FOO=bar baz"],
                      user=65534, group=65534)
        self.assertFalse(r["result"]["isError"], text_of(r))
        out = r["result"]["structuredContent"]["stdout"]
        self.assertIn("v=bar baz\n/tmp\n65534\n65534\n", out)

    def test_a_command_past_its_timeout_is_stopped_in_the_container(self):
        # A direct argv, and a shell whose children are not the first process.
        r = self.exec(["sleep", "3137"], timeout_seconds=2)
        sc = r["result"]["structuredContent"]
        self.assertTrue(r["result"]["isError"])  # a timed-out call is an error, with its output
        self.assertIn("stopped by its timeout", text_of(r))
        self.assertEqual((sc["status"], sc["exit_signal"]), ("timed_out", "KILL"))
        r = self.exec(["sh", "-c", "sleep 3138 & sleep 3139; echo never"], timeout_seconds=2)
        sc = r["result"]["structuredContent"]
        self.assertEqual(sc["status"], "timed_out")
        self.assertNotIn("never", sc["stdout"])
        ps = processes("pro", "pro-dev")
        for n in ("sleep 3137", "sleep 3138", "sleep 3139"):
            self.assertEqual(live(ps, n), [], ps)
        details = [json.loads(d) for (d,) in self.w.audit("SELECT details FROM tool_calls ORDER BY started_ms")]
        self.assertIn("SIGKILL sent", details[1]["stop"])
        self.assertIn("sweep: no marked process left", details[1]["stop"])

    def test_cancellation_stops_the_command_and_progress_is_reported(self):
        rid = self.w.request("tools/call", {"name": "incus_exec",
                                            "arguments": {"project": "pro", "instance": "pro-dev",
                                                          "argv": ["sh", "-c", "while true; do echo tick; sleep 0.2; "
                                                                   "done & sleep 3140"]},
                                            "_meta": {"progressToken": "p-1"}})
        deadline = time.monotonic() + 30
        progress = None
        while time.monotonic() < deadline and progress is None:
            m = self.w.next_message(timeout=30)
            if m.get("method") == "notifications/progress":
                progress = m
        self.assertIsNotNone(progress, "no progress notification while the command ran")
        self.assertEqual(progress["params"]["progressToken"], "p-1")
        self.assertIn("bytes received", progress["params"].get("message", ""))
        self.w.notify("notifications/cancelled", {"requestId": rid, "reason": "test"})
        status = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rows = self.w.audit("SELECT status FROM tool_calls")
            status = rows[0][0] if rows else None
            if status not in (None, "running"):
                break
            time.sleep(0.1)
        self.assertEqual(status, "cancelled")
        ps = processes("pro", "pro-dev")
        self.assertEqual(live(ps, "sleep 3140"), [], ps)
        self.assertEqual(live(ps, "while true"), [], ps)

    def test_a_stopped_instance_gives_a_clear_error(self):
        r = self.w.tool("incus_exec", {"project": "pro", "instance": "pro-stopped", "argv": ["true"]})
        self.assertTrue(r["result"]["isError"])
        self.assertIn('instance "pro-stopped" in project "pro" is Stopped', text_of(r))
        self.assertIn("start it first", text_of(r))

    def test_an_unknown_instance_and_an_unknown_command_give_clear_errors(self):
        r = self.w.tool("incus_exec", {"project": "pro", "instance": "no-such-box", "argv": ["true"]})
        self.assertTrue(r["result"]["isError"])
        self.assertIn("Instance not found", text_of(r))
        r = self.exec(["no-such-program-here"])
        self.assertTrue(r["result"]["isError"])
        self.assertIn("cannot run the command in pro/pro-dev", text_of(r))
        self.assertIn("Command not found", text_of(r))

    def test_five_megabytes_of_output_are_capped(self):
        r = self.exec(["sh", "-c", "yes 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ | "
                                   "head -c 5242880; echo done >&2"])
        sc = r["result"]["structuredContent"]
        self.assertFalse(r["result"]["isError"], text_of(r))
        self.assertEqual(sc["exit_status"], 0)
        self.assertEqual(sc["stdout_bytes"], 5242880)
        self.assertTrue(sc["truncated"])
        self.assertIn("done", sc["stderr"])
        self.assertLess(len(sc["stdout"]), 1048576)
        # A call's own cap, below the config's.
        r = self.exec(["sh", "-c", "yes | head -c 100000"], max_output_bytes=1000)
        sc = r["result"]["structuredContent"]
        self.assertEqual(sc["stdout_bytes"], 100000)
        self.assertTrue(sc["truncated"])
        self.assertLess(sc["stdout"].count("y"), 1001)

    def test_no_exec_output_logs_remain_on_the_host(self):
        # Where record-output would leave them: the instance's exec-output logs.
        # On a new instance the directory does not exist until some exec records output
        # (Incus answers 404 then); either way no log may exist after Warden's calls.
        path = "/1.0/instances/pro-dev/logs/exec-output?project=pro"

        def exec_logs():
            r = api("GET", path)
            if r["type"] == "error" and r.get("error_code") == 404 and "no such file" in r.get("error", ""):
                return []
            self.assertEqual(r["type"], "sync", r)
            return r["metadata"]

        exec_logs()
        for argv in (["echo", "raw-secret-output"], ["sh", "-c", "echo e >&2; exit 1"]):
            r = self.exec(argv)
            self.assertFalse(r["result"]["isError"], text_of(r))
        self.exec(["sleep", "3141"], timeout_seconds=1)
        self.assertEqual(exec_logs(), [])
        pool = "/var/lib/incus/storage-pools/default/containers/pro_pro-dev/exec-output"
        if os.path.isdir(pool):
            self.assertEqual(os.listdir(pool), [])


class IncusScope(WardenTest):
    def test_a_project_outside_the_config_is_refused_with_no_request_sent(self):
        w = self.start(config_text=config())
        w.initialize()
        mon = Monitor()
        self.addCleanup(mon.stop)
        # perso exists and perso-dev runs there, but this Warden is bound to pro.
        r = w.tool("incus_exec", {"project": "perso", "instance": "perso-dev", "argv": ["id"]})
        self.assertTrue(r["result"]["isError"])
        self.assertIn('arguments.project: must be one of "pro"', text_of(r))
        r = w.tool("incus_list", {"project": "perso"})
        self.assertTrue(r["result"]["isError"])
        # The instance of another project, asked for in pro, is not found there.
        r = w.tool("incus_exec", {"project": "pro", "instance": "perso-dev", "argv": ["id"]})
        self.assertTrue(r["result"]["isError"])
        self.assertIn('instance "perso-dev" in project "pro"', text_of(r))
        # A request Warden does send is seen by the monitor...
        r = w.tool("incus_list", {})
        self.assertFalse(r["result"]["isError"], text_of(r))
        self.assertTrue(mon.wait_for("/1.0/instances?recursion=1&project=pro"), mon.text())
        out = r["result"]["structuredContent"]["stdout"]
        self.assertIn("pro/pro-dev container Running", out)
        self.assertIn("pro/pro-stopped container Stopped", out)
        self.assertNotIn("perso", out)
        # ...and no request ever named project perso.
        handled = [l for l in mon.lines if "Handling API request" in l]
        self.assertTrue(handled)
        self.assertEqual([l for l in handled if "project=perso" in l], [], mon.text())
        self.assertIn("/1.0/instances/perso-dev?project=pro", mon.text())
        rows = w.audit("SELECT status FROM tool_calls ORDER BY started_ms")
        self.assertEqual([s for (s,) in rows], ["refused", "refused", "refused", "completed"])

    def test_an_unreachable_server_is_a_clear_error(self):
        w = self.start(config_text="incus:\n  server: unix:/nonexistent/incus.socket\n  projects: [pro]\n")
        w.initialize()
        r = w.tool("incus_exec", {"project": "pro", "instance": "pro-dev", "argv": ["true"]})
        self.assertTrue(r["result"]["isError"])
        self.assertIn("Incus server at unix:/nonexistent/incus.socket", text_of(r))


class IncusTls(WardenTest):
    """The same daemon over https: a client certificate restricted to `pro`, the server's certificate pinned."""

    def setUp(self):
        address = incus("config", "get", "core.https_address").stdout.strip()
        self.assertTrue(address, "setup.sh sets core.https_address")
        host, port = address.rsplit(":", 1)
        self.server = f"https://{'127.0.0.1' if host in ('', '0.0.0.0', '[::]') else host}:{port}"
        d = self.tmpdir()
        self.cert, self.key = os.path.join(d, "client.crt"), os.path.join(d, "client.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-subj", "/CN=warden-test", "-days", "2", "-keyout", self.key, "-out", self.cert],
                       check=True, capture_output=True)
        os.chmod(self.key, 0o600)
        name = "warden-test-" + os.path.basename(d)
        incus("config", "trust", "add-certificate", self.cert, "--name", name, "--restricted", "--projects", "pro")
        fp = subprocess.run(["openssl", "x509", "-in", self.cert, "-noout", "-fingerprint", "-sha256"],
                            check=True, capture_output=True, text=True).stdout
        client_fp = fp.split("=", 1)[1].strip().replace(":", "").lower()
        self.addCleanup(incus, "config", "trust", "remove", client_fp, check=False)
        fp = subprocess.run(["openssl", "x509", "-in", "/var/lib/incus/server.crt", "-noout", "-fingerprint",
                             "-sha256"], check=True, capture_output=True, text=True).stdout
        self.pin = fp.split("=", 1)[1].strip()

    def tls_config(self, pin):
        return f"""
incus:
  server: {self.server}
  client_cert: {self.cert}
  client_key: {self.key}
  server_cert_sha256: "{pin}"
  projects: [pro]
"""

    def test_exec_over_tls_with_the_pinned_certificate(self):
        w = self.start(config_text=self.tls_config(self.pin))
        w.initialize()
        r = w.tool("incus_exec", {"project": "pro", "instance": "pro-dev",
                                  "argv": ["sh", "-c", "echo over-tls; exit 5"]})
        self.assertFalse(r["result"]["isError"], text_of(r))
        sc = r["result"]["structuredContent"]
        self.assertEqual(sc["exit_status"], 5)
        self.assertIn("over-tls", sc["stdout"])
        details = json.loads(w.audit("SELECT details FROM tool_calls")[0][0])
        self.assertEqual(details["server"], self.server)

    def test_a_server_with_another_certificate_is_refused(self):
        wrong = "00" * 32
        w = self.start(config_text=self.tls_config(wrong))
        w.initialize()
        r = w.tool("incus_exec", {"project": "pro", "instance": "pro-dev", "argv": ["echo", "must-not-run"]})
        self.assertTrue(r["result"]["isError"])
        self.assertIn("not the pinned " + wrong, text_of(r))
        self.assertIn(self.pin.replace(":", "").lower(), text_of(r))


def main():
    if os.geteuid() != 0:
        print("incus tests: skipped, they need root (incusd)")
        return 77
    try:
        if api("GET", "/1.0").get("type") != "sync":
            raise RuntimeError("unexpected answer")
    except Exception as e:  # noqa: BLE001 - any failure means setup did not leave incusd running
        print(f"incus tests: incusd does not answer on {SOCKET} ({e}); run tests/incus/setup.sh")
        return 1
    result = unittest.main(module=__name__, argv=[sys.argv[0], "-v", *sys.argv[1:]], exit=False).result
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
