"""Test harness: starts the real `warden serve` binary and speaks JSON-RPC over its pipes.

Standard library only. Each Warden gets its own temp dir with a config, a
state dir and (optionally) git repositories made with the real git.
"""
import json
import os
import queue
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import textwrap
import threading
import time
import unittest

WARDEN = os.environ.get("WARDEN_BIN", os.path.join(os.path.dirname(__file__), "../../build/warden"))
LATEST = "2025-11-25"


def git(repo, *args, env=None):
    e = dict(os.environ, GIT_AUTHOR_NAME="Test", GIT_AUTHOR_EMAIL="test@example.com",
             GIT_COMMITTER_NAME="Test", GIT_COMMITTER_EMAIL="test@example.com", GIT_CONFIG_GLOBAL="/dev/null")
    e.update(env or {})
    return subprocess.run(["git", *args], cwd=repo, env=e, check=True, capture_output=True, text=True).stdout


def make_repo(path, files):
    """A git repository with one commit holding `files` (name -> text)."""
    os.makedirs(path)
    git(path, "init", "-q", "-b", "main")
    for name, text in files.items():
        p = os.path.join(path, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial commit")
    return path


class Warden:
    """One running `warden serve`; lines from stdout are parsed and queued."""

    def __init__(self, config_text="", extra_args=(), env=None, prefix=(), state=None, config=None):
        self.dir = tempfile.mkdtemp(prefix="warden-proto-")
        self.state = state or os.path.join(self.dir, "state")
        self.config = config or os.path.join(self.dir, "warden.yaml")
        if config is None:
            with open(self.config, "w") as f:
                f.write(textwrap.dedent(config_text))
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.stderr = open(self.stderr_path, "wb")
        # `prefix` runs Warden under another command (e.g. in its own mount namespace).
        self.proc = subprocess.Popen([*prefix, WARDEN, "serve", "--config", self.config, "--state-dir", self.state,
                                      *extra_args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     env=dict(os.environ, **(env or {})))
        self.lines = queue.Queue()
        self.raw_lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.next_id = 1
        self.stash = {}  # id -> response that arrived while another was awaited

    def _read(self):
        for line in self.proc.stdout:
            self.raw_lines.append(line)
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                self.lines.put({"__unparseable__": line})
        self.lines.put(None)

    # -- sending
    def send_raw(self, data):
        self.proc.stdin.write(data if isinstance(data, bytes) else data.encode())
        self.proc.stdin.flush()

    def send(self, msg):
        self.send_raw(json.dumps(msg) + "\n")

    def request(self, method, params=None, id=None):
        if id is None:
            id = self.next_id
            self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        return id

    def notify(self, method, params=None):
        msg = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)

    # -- receiving
    def next_message(self, timeout=30):
        m = self.lines.get(timeout=timeout)
        if m is None:
            raise EOFError("warden closed stdout; stderr:\n" + self.read_stderr())
        return m

    def response(self, id, timeout=30, keep=None):
        """Waits for the response to `id`; other messages go to `keep` (a list) if given.

        Responses to other requests that arrive first are kept for their own response() call."""
        if id in self.stash:
            return self.stash.pop(id)
        deadline = time.monotonic() + timeout
        while True:
            m = self.next_message(timeout=max(0.1, deadline - time.monotonic()))
            if m.get("id") == id and ("result" in m or "error" in m):
                return m
            if isinstance(m.get("id"), int) and ("result" in m or "error" in m):
                self.stash[m["id"]] = m
            if keep is not None:
                keep.append(m)

    def call(self, method, params=None, timeout=30):
        return self.response(self.request(method, params), timeout=timeout)

    def initialize(self, version=LATEST):
        r = self.call("initialize", {"protocolVersion": version, "capabilities": {},
                                     "clientInfo": {"name": "proto-test", "version": "1"}})
        self.notify("notifications/initialized")
        return r

    def tool(self, name, arguments, timeout=60, meta=None):
        params = {"name": name, "arguments": arguments}
        if meta:
            params["_meta"] = meta
        return self.call("tools/call", params, timeout=timeout)

    # -- state
    def read_stderr(self):
        if not self.stderr.closed:
            self.stderr.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def audit(self, sql, args=()):
        db = sqlite3.connect(os.path.join(self.state, "audit.db"))
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def close(self, timeout=30):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()
        return self.proc.returncode

    def cleanup(self):
        self.close()
        self.reader.join(timeout=10)
        self.proc.stdout.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def git_config(repos, **options):
    """The git: section of a config for `repos` (name -> path) and extra git options."""
    lines = ["git:"] + [f"  {k}: {v}" for k, v in options.items()] + ["  repos:"]
    lines += [f"    {name}: {path}" for name, path in repos.items()]
    return "\n".join(lines) + "\n"


def warden_cli(*args, timeout=120):
    """Runs a warden operator command (canary, stats, audit, purge); returns the CompletedProcess."""
    return subprocess.run([WARDEN, *args], capture_output=True, text=True, timeout=timeout)


def text_of(result):
    return result["result"]["content"][0]["text"]


class WardenTest(unittest.TestCase):
    """Base class: self.w is started by start() and always cleaned up."""

    def start(self, **kw):
        w = Warden(**kw)
        self.addCleanup(w.cleanup)
        return w

    def tmpdir(self):
        d = tempfile.mkdtemp(prefix="warden-test-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    SLOW_PATTERN = r"\(.*\)\(.*\)\(.*\)\(.*\)\(.*\)\1\2\3\4\5x"

    def slow_call(self, repo, seconds):
        """A git call that is slow because of the repository itself, ended by its timeout.

        The repository gets a file on which a grep with back-references backtracks for far
        longer than any test waits (glibc's regex engine is exponential there): a real,
        sandboxed git, no wrapper. Returns the call's arguments."""
        path = os.path.join(repo, "slow.txt")
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write("a" * 200 + "\n")
            git(repo, "add", "slow.txt")
            git(repo, "commit", "-q", "-m", "a file that is slow to grep")
        return {"operation": "grep", "pattern": self.SLOW_PATTERN, "paths": ["slow.txt"], "timeout_seconds": seconds}

    @staticmethod
    def git_children(warden_pid):
        """Pids of the git processes Warden runs now that are grepping (its direct children)."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read().split(b"\0")
            except OSError:
                continue
            ppid = int(stat.rsplit(") ", 1)[1].split()[1])
            if ppid == warden_pid and b"grep" in cmdline and stat.rsplit(") ", 1)[1][0] != "Z":
                pids.append(int(entry))
        return sorted(pids)
