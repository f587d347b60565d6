"""Layer 2 and the local_* tools against a scripted model server (fake_model.py)
on loopback, driving the real `warden serve` binary.

For every scripted outcome: the specified result, the audit row saying what
happened, and nothing raw on Warden's stdout (what the agent reads).
"""
import base64
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "protocol"))
from harness import WardenTest, git_config, make_repo, text_of, warden_cli  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PASSWORD = "Sup3rS3cretValue42x"
PERSON = "Alice Martin"
CUSTOMER = "Initrode Holdings"
LOG = (
    "2026-01-03 10:00:01 INFO payment accepted for order 5521\n"
    f"2026-01-03 10:00:02 ERROR payment failed for {PERSON} ({CUSTOMER}), card declined\n"
    f"2026-01-03 10:00:03 WARN retry scheduled for {PERSON}\n"
    f"db_password={PASSWORD}\n"
    "2026-01-03 10:00:04 INFO worker 7 idle; queue depth 0; nothing else to report here at all\n"
)
SPANS = [{"text": PERSON, "category": "person"}, {"text": CUSTOMER, "category": "customer"}]


class FakeModel:
    def __init__(self, d, token=None, tls=None):
        self.script_path = os.path.join(d, "script.json")
        self.log_path = os.path.join(d, "requests.jsonl")
        self.script({"mode": "correct", "spans": SPANS})
        args = [sys.executable, os.path.join(HERE, "fake_model.py"), self.script_path, self.log_path]
        if token:
            args += ["--token", token]
        if tls:
            args += ["--tls", *tls]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())

    def script(self, obj):
        tmp = self.script_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(obj, f)
        os.replace(tmp, self.script_path)

    def requests(self):
        if not os.path.exists(self.log_path):
            return []
        with open(self.log_path) as f:
            return [json.loads(line) for line in f]

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


class LlmTest(WardenTest):
    def setUp(self):
        self.d = self.tmpdir()
        self.repo = make_repo(os.path.join(self.d, "app"), {"app.log": LOG})

    def model(self, **kw):
        m = FakeModel(self.d, **kw)
        self.addCleanup(m.stop)
        return m

    def warden(self, model, api="ollama", layer2=True, on_unavailable="block", timeout=3, extra="", script=None,
               scheme="http"):
        """A Warden on `model`; the model behaves (`correct`) through the startup self-test, then follows `script`."""
        model.script({"mode": "correct", "spans": SPANS})
        cfg = git_config({"app": self.repo}) + (
            f"llm:\n  endpoint: {scheme}://127.0.0.1:{model.port}\n  api: {api}\n  model: fake-7b\n"
            f"  timeout_seconds: {timeout}\n  max_concurrency: 2\n{extra}"
            f"anonymizer:\n  layer2:\n    enabled: {'true' if layer2 else 'false'}\n"
            f"    on_unavailable: {on_unavailable}\n    chunk_bytes: 512\n    overlap_bytes: 64\n")
        w = self.start(config_text=cfg)
        w.initialize()
        if script is not None:
            model.script(script)
        return w

    def show(self, w):
        return w.tool("git", {"repo": "app", "operation": "show", "revisions": ["HEAD"]}, timeout=60)

    def analyze(self, w, question="Why did the payment fail?"):
        return w.tool("local_analyze", {"source": "git", "question": question,
                                        "arguments": {"repo": "app", "operation": "show", "revisions": ["HEAD"]}},
                      timeout=60)

    def assert_nothing_raw(self, w, *extra):
        out = b"".join(w.raw_lines).decode("utf-8", "replace")
        for raw in (PASSWORD, base64.b64encode(PASSWORD.encode()).decode(), "Ignore all previous", *extra):
            self.assertNotIn(raw, out)

    def row(self, w, tool):
        rows = w.audit("SELECT status, error, details FROM tool_calls WHERE tool=? ORDER BY started_ms DESC, rowid DESC",
                       (tool,))
        self.assertTrue(rows, "no audit row")
        status, error, details = rows[0]
        return status, error or "", json.loads(details or "{}")

    def assert_withheld(self, r, w, *raw):
        """The call failed, nothing raw reached the client, and the audit row says withheld:
        its error column and its layer-2 details, returned."""
        self.assertTrue(r["result"]["isError"])
        self.assert_nothing_raw(w, *raw)
        status, error, details = self.row(w, "git")
        self.assertEqual(status, "withheld")
        return error, details["layer2"]


class Layer2Test(LlmTest):
    def check_correct(self, api):
        m = self.model()
        w = self.warden(m, api=api)
        r = self.show(w)
        self.assertFalse(r["result"]["isError"], text_of(r))
        text = text_of(r)
        self.assertIn("[PERSON_", text)
        self.assertIn("[CUSTOMER_", text)
        self.assertIn("[PASSWORD_REDACTED]", text)
        self.assert_nothing_raw(w, PERSON, CUSTOMER)
        status, _, details = self.row(w, "git")
        self.assertEqual(status, "completed")
        l2 = details["layer2"]
        self.assertEqual(l2["mode"], "layer2")
        self.assertGreaterEqual(l2["model_calls"], 1)
        self.assertGreaterEqual(l2["spans"], 3)  # Alice twice, the customer once
        self.assertEqual(r["result"]["structuredContent"]["redactions"].get("person"), 2)
        reqs = m.requests()
        self.assertTrue(reqs)
        path = "/api/chat" if api == "ollama" else "/v1/chat/completions"
        for q in reqs:
            self.assertEqual(q["path"], path)
            body = json.loads(q["body"])
            self.assertFalse(body["stream"])
            self.assertIn("format" if api == "ollama" else "response_format", body)
            user = body["messages"][1]["content"]
            self.assertIn("<UNTRUSTED_DATA boundary=", user)
            # Layer 1's finds are masked before the model sees the text.
            self.assertNotIn(PASSWORD, user)
        self.assertTrue(any("[PASSWORD_REDACTED]" in q["body"] for q in reqs))
        # The same output again: every chunk from the session cache, no new request.
        n = len(reqs)
        r2 = self.show(w)
        self.assertFalse(r2["result"]["isError"])
        self.assertNotIn(PERSON, text_of(r2))
        _, _, d2 = self.row(w, "git")
        self.assertGreaterEqual(d2["layer2"]["cache_hits"], 1)
        # The canary chunk is new per call (fresh canary), the output's chunk is cached.
        self.assertLess(len(m.requests()) - n, n)

    def test_correct_spans_ollama(self):
        self.check_correct("ollama")

    def test_correct_spans_openai(self):
        self.check_correct("openai")

    def test_spans_not_in_input_are_dropped_and_counted(self):
        m = self.model()
        w = self.warden(m, script={"mode": "not_in_input"})
        r = self.show(w)
        self.assertFalse(r["result"]["isError"], text_of(r))
        self.assertNotIn("Zebulon", text_of(r))
        self.assertIn("[PASSWORD_REDACTED]", text_of(r))
        self.assert_nothing_raw(w, "Zebulon", "ACCT-000000")
        status, _, details = self.row(w, "git")
        self.assertEqual(status, "completed")
        self.assertGreaterEqual(details["layer2"]["dropped"]["not_in_input"], 2)
        self.assertEqual(details["layer2"]["spans"], 0)

    def test_spans_covering_placeholders_are_dropped(self):
        m = self.model()
        w = self.warden(m, script={"mode": "cover_placeholder"})
        r = self.show(w)
        self.assertFalse(r["result"]["isError"], text_of(r))
        self.assertIn("[PASSWORD_REDACTED]", text_of(r))
        self.assert_nothing_raw(w)
        _, _, details = self.row(w, "git")
        self.assertGreaterEqual(details["layer2"]["dropped"]["covers_placeholder"], 1)

    def check_fails_closed(self, script, expect_in_error, timeout=3):
        m = self.model()
        w = self.warden(m, timeout=timeout, script=script)
        r = self.show(w)
        error, layer2 = self.assert_withheld(r, w, PERSON, CUSTOMER, "payment failed")
        text = text_of(r)
        self.assertIn("failed closed", text)
        self.assertIn("layer 2", text)
        self.assertIn(expect_in_error, layer2["error"])
        self.assertIn(expect_in_error, error)
        return w

    def test_malformed_json_fails_closed(self):
        self.check_fails_closed({"mode": "malformed"}, "malformed")

    def test_empty_answer_fails_closed(self):
        self.check_fails_closed({"mode": "empty"}, "empty")

    def test_http_500_fails_closed(self):
        self.check_fails_closed({"mode": "http500"}, "HTTP 500")

    def test_stall_past_the_timeout_fails_closed(self):
        self.check_fails_closed({"mode": "stall", "stall_seconds": 20}, "did not answer within", timeout=2)

    def test_model_server_down_fails_closed(self):
        m = self.model()
        w = self.warden(m)
        m.stop()
        _, layer2 = self.assert_withheld(self.show(w), w, PERSON)
        self.assertIn("cannot reach", layer2["error"])

    def tls_model(self):
        """The model on https with a fresh self-signed certificate, and that certificate's SHA-256."""
        cert, key = os.path.join(self.d, "model.crt"), os.path.join(self.d, "model.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        fp = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-fingerprint", "-sha256"],
                            check=True, capture_output=True, text=True).stdout
        return self.model(tls=(cert, key)), fp.split("=", 1)[1].strip()

    def test_https_model_with_the_pinned_certificate(self):
        m, pin = self.tls_model()
        w = self.warden(m, scheme="https", extra=f'  tls_server_cert_sha256: "{pin}"\n')
        r = self.show(w)
        self.assertFalse(r["result"]["isError"], text_of(r))
        self.assertIn("[PERSON_", text_of(r))
        self.assertTrue(m.requests())

    def test_https_model_with_another_certificate_is_refused(self):
        m, pin = self.tls_model()
        wrong = "00" * 32
        w = self.warden(m, scheme="https", extra=f"  tls_server_cert_sha256: {wrong}\n")
        _, layer2 = self.assert_withheld(self.show(w), w, PERSON)
        self.assertIn("not the pinned one", layer2["error"])
        self.assertIn(pin.replace(":", "").lower(), layer2["error"])
        self.assertEqual(m.requests(), [])  # the handshake stopped it: nothing was sent

    def test_regex_only_is_explicit_and_audited(self):
        m = self.model()
        w = self.warden(m, on_unavailable="regex_only", script={"mode": "http500"})
        r = self.show(w)
        self.assertFalse(r["result"]["isError"], text_of(r))
        self.assertIn("[PASSWORD_REDACTED]", text_of(r))
        self.assert_nothing_raw(w)
        status, _, details = self.row(w, "git")
        self.assertEqual(status, "completed")
        self.assertEqual(details["layer2"]["mode"], "regex_only")
        self.assertIn("HTTP 500", details["layer2"]["error"])

    def test_injection_echo_opens_the_breaker(self):
        m = self.model()
        w = self.warden(m, script={"mode": "injection"})
        _, layer2 = self.assert_withheld(self.show(w), w, PERSON)
        self.assertIn("instruction-like", layer2["breaker_opened"])
        # Open: even a well-behaved model is not asked again until restart.
        m.script({"mode": "correct", "spans": SPANS})
        n = len(m.requests())
        r2 = self.show(w)
        self.assertTrue(r2["result"]["isError"])
        self.assertIn("circuit breaker is open", text_of(r2))
        self.assertEqual(len(m.requests()), n)
        self.assert_nothing_raw(w, PERSON)


class LocalToolsTest(LlmTest):
    def test_local_analyze_returns_only_the_answer(self):
        m = self.model()
        w = self.warden(m, api="openai", script={"mode": "correct", "spans": SPANS,
                                                 "answer": f"The card of {PERSON} was declined; the retry is scheduled."})
        names = [t["name"] for t in w.call("tools/list")["result"]["tools"]]
        for n in ("local_analyze", "local_generate", "local_review", "local_fix", "local_test"):
            self.assertIn(n, names)
        r = self.analyze(w)
        self.assertFalse(r["result"]["isError"], text_of(r))
        text = text_of(r)
        self.assertIn("was declined", text)
        self.assertIn("<UNTRUSTED_DATA", text)
        # The answer itself went through layers 1 and 2.
        self.assertIn("[PERSON_", text)
        self.assert_nothing_raw(w, PERSON, "payment failed for")
        status, _, d = self.row(w, "local_analyze")
        self.assertEqual(status, "completed")
        self.assertEqual(d["model"], "fake-7b")
        for k in ("tokens_in", "tokens_out", "latency_ms"):
            self.assertIn(k, d)
        self.assertGreater(int(d["tokens_in"]), 0)
        self.assertEqual(d["source"], "git")
        self.assertNotIn("blocked", d)
        # The local model read the raw output (trusted zone), in its envelope, with the question.
        free = [json.loads(q["body"]) for q in m.requests() if "response_format" not in json.loads(q["body"])]
        self.assertEqual(len(free), 1)
        self.assertIn(PASSWORD, free[0]["messages"][1]["content"])
        self.assertIn("Why did the payment fail?", free[0]["messages"][1]["content"])

    def check_blocked(self, script, check):
        m = self.model()
        w = self.warden(m, layer2=False, script=script)
        r = self.analyze(w)
        self.assertTrue(r["result"]["isError"])
        self.assertIn("blocked", text_of(r))
        self.assert_nothing_raw(w, PERSON, "payment failed for", "Here is the output")
        status, error, d = self.row(w, "local_analyze")
        self.assertEqual(status, "blocked")
        self.assertEqual(d["blocked_check"], check)
        self.assertIn("model", d)
        stats = json.loads(warden_cli("stats", "--config", w.config, "--state-dir", w.state, "--json").stdout)
        self.assertEqual(stats["output_validation"]["rejections"], 1)
        return w, m

    def test_answer_copying_the_input_is_blocked(self):
        self.check_blocked({"mode": "copy_input"}, "verbatim")

    def test_answer_with_base64_of_a_secret_is_blocked(self):
        self.check_blocked({"mode": "base64_secret", "secret": PASSWORD}, "encoded")

    def test_answer_too_long_for_the_question_is_blocked(self):
        self.check_blocked({"mode": "correct", "answer": "All fine. " * 900}, "length")

    def test_answer_with_a_secret_is_blocked(self):
        self.check_blocked({"mode": "correct", "answer": "Use AKIAIOSFODNN7EXAMPLF with password=hunter2hunter2 "}, "sensitive")

    def test_injection_echo_is_blocked_and_opens_the_breaker(self):
        w, m = self.check_blocked({"mode": "injection"}, "injection")
        m.script({"mode": "correct", "answer": "fine"})
        r = w.tool("local_generate", {"task": "a hello world in bash"})
        self.assertTrue(r["result"]["isError"])
        self.assertIn("circuit breaker is open", text_of(r))

    def test_model_error_fails_the_call(self):
        m = self.model()
        w = self.warden(m, layer2=False, script={"mode": "http500"})
        r = self.analyze(w)
        self.assertTrue(r["result"]["isError"])
        self.assertIn("local model did not answer", text_of(r))
        self.assert_nothing_raw(w, PERSON)
        status, _, _ = self.row(w, "local_analyze")
        self.assertEqual(status, "failed")

    def test_stall_times_out(self):
        m = self.model()
        w = self.warden(m, layer2=False, timeout=2, script={"mode": "stall", "stall_seconds": 20})
        r = self.analyze(w)
        self.assertTrue(r["result"]["isError"])
        self.assertIn("did not answer within", text_of(r))
        self.assert_nothing_raw(w, PERSON)

    def test_code_tools_and_bearer_token(self):
        token_file = os.path.join(self.d, "llm.token")
        with open(token_file, "w") as f:
            f.write("tok-123456\n")
        os.chmod(token_file, 0o600)
        m = self.model(token="tok-123456")
        w = self.warden(m, layer2=False, extra=f"  bearer_token_file: {token_file}\n",
                        script={"mode": "correct", "answer": "```bash\necho hello\n```"})
        for tool, args in (("local_generate", {"task": "print hello", "language": "bash"}),
                           ("local_review", {"code": "echo hello"}),
                           ("local_fix", {"code": "ech hello", "problem": "command not found"}),
                           ("local_test", {"code": "echo hello", "framework": "bats"})):
            r = w.tool(tool, args)
            self.assertFalse(r["result"]["isError"], text_of(r))
            self.assertIn("echo hello", text_of(r))
            status, _, d = self.row(w, tool)
            self.assertEqual(status, "completed")
            self.assertEqual(d["model"], "fake-7b")
        self.assertTrue(all(q["auth"] == "Bearer tok-123456" for q in m.requests()))
        self.assertNotIn(b"tok-123456", b"".join(w.raw_lines))
        stats = json.loads(warden_cli("stats", "--config", w.config, "--state-dir", w.state, "--json").stdout)
        self.assertEqual(stats["escalation"]["local"], 4)


class ConfigTest(unittest.TestCase):
    def check(self, text, expect):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "w.yaml")
            with open(p, "w") as f:
                f.write(text)
            r = warden_cli("check-config", "--config", p)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn(expect, r.stderr)

    def test_layer2_without_llm(self):
        self.check("anonymizer:\n  layer2:\n    enabled: true\n", "w.yaml:3:14: anonymizer.layer2.enabled: layer 2 needs")

    def test_prompt_pin_mismatch(self):
        with tempfile.TemporaryDirectory() as d:
            prompt = os.path.join(d, "prompt.txt")
            with open(prompt, "w") as f:
                f.write("classify\n")
            self.check(f"llm:\n  endpoint: http://127.0.0.1:9\n  model: m\n  system_prompt_file: {prompt}\n"
                       f"  system_prompt_sha256: {'0' * 64}\n"
                       "anonymizer:\n  layer2:\n    enabled: true\n", "not the pinned llm.system_prompt_sha256")


if __name__ == "__main__":
    unittest.main()
