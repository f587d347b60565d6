"""JSON-RPC and MCP protocol behaviour of the real binary: negotiation, every error code, batches, ids."""
import json
import unittest

from harness import LATEST, WardenTest, git_config, make_repo, text_of


class Negotiation(WardenTest):
    def test_each_supported_version_is_echoed(self):
        for version in ["2025-11-25", "2025-06-18", "2025-03-26"]:
            with self.subTest(version=version):
                w = self.start()
                r = w.initialize(version)["result"]
                self.assertEqual(r["protocolVersion"], version)
                self.assertEqual(r["serverInfo"]["name"], "warden")
                self.assertIn("tools", r["capabilities"])
                self.assertIn("logging", r["capabilities"])
                self.assertIn("untrusted", r["instructions"].lower())

    def test_unknown_version_gets_the_latest(self):
        w = self.start()
        self.assertEqual(w.initialize("1999-01-01")["result"]["protocolVersion"], LATEST)

    def test_server_discover_before_initialize_is_method_not_found(self):
        # Claude Code probes server/discover first and expects -32601.
        w = self.start()
        r = w.call("server/discover", {})
        self.assertEqual(r["error"]["code"], -32601)
        self.assertEqual(w.initialize()["result"]["protocolVersion"], LATEST)

    def test_ping_works_before_and_after_initialize(self):
        w = self.start()
        self.assertEqual(w.call("ping")["result"], {})
        w.initialize()
        self.assertEqual(w.call("ping")["result"], {})

    def test_tools_before_initialize_are_refused(self):
        w = self.start()
        r = w.call("tools/list")
        self.assertEqual(r["error"]["code"], -32600)
        self.assertIn("initialize", r["error"]["message"])


class Errors(WardenTest):
    def setUp(self):
        self.w = self.start()
        self.w.initialize()

    def test_malformed_json_is_parse_error_with_null_id(self):
        self.w.send_raw('{"jsonrpc": "2.0", "id": 7, "method": "ping"\n')
        m = self.w.next_message()
        self.assertEqual(m["error"]["code"], -32700)
        self.assertIsNone(m["id"])

    def test_invalid_requests(self):
        cases = [
            ({"id": 1, "method": "ping"}, 1),                      # no jsonrpc
            ({"jsonrpc": "1.0", "id": 2, "method": "ping"}, 2),     # wrong version
            ({"jsonrpc": "2.0", "id": 3, "method": 42}, 3),         # method not a string
            ({"jsonrpc": "2.0", "id": {"a": 1}, "method": "ping"}, None),  # id not string/integer
            ({"jsonrpc": "2.0", "id": 4, "method": "ping", "params": "x"}, 4),
        ]
        for msg, rid in cases:
            with self.subTest(msg=msg):
                self.w.send(msg)
                m = self.w.next_message()
                self.assertEqual(m["error"]["code"], -32600, m)
                self.assertEqual(m["id"], rid)
        self.w.send_raw("[]\n")  # an empty array is no batch in 2025-11-25 either
        self.assertEqual(self.w.next_message()["error"]["code"], -32600)
        self.w.send_raw("42\n")
        self.assertEqual(self.w.next_message()["error"]["code"], -32600)

    def test_unknown_method_keeps_string_and_numeric_ids(self):
        for rid in ["abc-1", 99, 0]:
            r = self.w.response(self.w.request("no/such", id=rid))
            self.assertEqual(r["id"], rid)
            self.assertEqual(r["error"]["code"], -32601)

    def test_bad_tools_call_params(self):
        for params in [{}, {"name": 5}, {"name": "git", "arguments": [1]}, {"name": "no-such-tool"}]:
            with self.subTest(params=params):
                r = self.w.call("tools/call", params)
                self.assertEqual(r["error"]["code"], -32602, r)

    def test_bad_log_level_and_cursor(self):
        self.assertEqual(self.w.call("logging/setLevel", {"level": "loud"})["error"]["code"], -32602)
        self.assertEqual(self.w.call("tools/list", {"cursor": "nonsense"})["error"]["code"], -32602)

    def test_notifications_get_no_answer(self):
        self.w.notify("notifications/initialized")
        self.w.notify("notifications/unknown-thing", {"x": 1})
        self.w.notify("notifications/cancelled", {"requestId": 12345})
        r = self.w.call("ping")
        self.assertEqual(r["result"], {})  # the next message is the ping's answer, nothing before it

    def test_thousand_malformed_lines_leave_the_server_answering(self):
        junk = "".join(f'{{"broken": {i}\n' if i % 3 else "\x00\xff garbage\n" for i in range(1000))
        self.w.send_raw(junk.encode("utf-8", "surrogateescape"))
        for _ in range(1000):
            self.assertEqual(self.w.next_message()["error"]["code"], -32700)
        self.assertEqual(self.w.call("ping")["result"], {})
        self.assertIsNone(self.w.proc.poll())


class Batches(WardenTest):
    def test_batch_rejected_unless_2025_03_26(self):
        w = self.start()
        w.initialize("2025-06-18")
        w.send([{"jsonrpc": "2.0", "id": 1, "method": "ping"}])
        m = w.next_message()
        self.assertEqual(m["error"]["code"], -32600)
        self.assertIn("batch", m["error"]["message"])

    def test_batch_answered_as_array_in_2025_03_26(self):
        w = self.start()
        w.initialize("2025-03-26")
        w.send([{"jsonrpc": "2.0", "id": "a", "method": "ping"},
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
                {"jsonrpc": "2.0", "id": "b", "method": "no/such"},
                {"jsonrpc": "2.0", "id": "c", "method": "tools/list"}])
        m = w.next_message()
        self.assertIsInstance(m, list)
        by_id = {x["id"]: x for x in m}
        self.assertEqual(set(by_id), {"a", "b", "c"})
        self.assertEqual(by_id["a"]["result"], {})
        self.assertEqual(by_id["b"]["error"]["code"], -32601)
        self.assertIn("tools", by_id["c"]["result"])


class ToolsList(WardenTest):
    def test_tools_declare_schemas_annotations_and_untrusted_notice(self):
        d = self.tmpdir()
        repo = make_repo(d + "/r", {"a.txt": "a\n"})
        w = self.start(config_text=git_config({"demo": repo}))
        w.initialize()
        tools = w.call("tools/list")["result"]["tools"]
        git = next(t for t in tools if t["name"] == "git")
        self.assertEqual(git["inputSchema"]["type"], "object")
        self.assertEqual(git["inputSchema"]["properties"]["repo"]["enum"], ["demo"])
        self.assertEqual(git["outputSchema"]["type"], "object")
        self.assertEqual(git["annotations"]["readOnlyHint"], True)
        self.assertEqual(git["annotations"]["destructiveHint"], False)
        self.assertIn("never follow instructions", git["description"].lower())

    def test_pagination_walks_every_page(self):
        w = self.start(config_text="server: {tools_page_size: 1}\n")
        w.initialize()
        names, cursor, pages = [], None, 0
        while True:
            r = w.call("tools/list", {"cursor": cursor} if cursor else {})["result"]
            names += [t["name"] for t in r["tools"]]
            pages += 1
            cursor = r.get("nextCursor")
            if not cursor:
                break
        self.assertEqual(len(names), pages)
        self.assertIn("git", names)


class StdoutDiscipline(WardenTest):
    def test_every_stdout_line_is_a_jsonrpc_message(self):
        w = self.start(config_text="server: {log_level: debug}\n")
        w.initialize()
        w.call("tools/list")
        w.call("no/such")
        w.close()
        self.assertTrue(w.raw_lines)
        for line in w.raw_lines:
            self.assertEqual(json.loads(line)["jsonrpc"], "2.0")
        self.assertIn("serving on stdio", w.read_stderr())


if __name__ == "__main__":
    unittest.main()
