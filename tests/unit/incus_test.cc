// The pure parts of incus_exec/incus_list: the incus config section (with
// located errors), the scoping decision, name checks, URL building and the
// argv fingerprint. Nothing here talks to Incus (tests/incus/ does).
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "core/cancel.h"
#include "core/config.h"
#include "tests/unit/temp_dir.h"
#include "tools/incus_client.h"
#include "tools/incus_tool.h"

namespace fs = std::filesystem;
using warden::IncusConfig;
using warden::IsIncusName;
using warden::LoadConfig;
namespace incus = warden::tools::incus;
using warden::testing::TempDir;

namespace {
constexpr const char* kPin = "6f1c9a1c0b7f0a5d4d8a9c1e2b3f4a5d6e7f8091a2b3c4d5e6f708192a3b4c5d";

// Errors joined, to look for the key and line of one of them.
std::string Errors(const warden::ConfigLoad& load) {
  std::string all;
  for (const auto& e : load.errors) all += e.ToString() + "\n";
  return all;
}
}  // namespace

TEST_CASE("incus config: defaults are the local socket and no projects (tools off)") {
  auto load = LoadConfig("", "/tmp/warden-state-test");
  REQUIRE(load.ok());
  CHECK(load.config.incus.server == "unix:/var/lib/incus/unix.socket");
  CHECK(load.config.incus.socket_path == "/var/lib/incus/unix.socket");
  CHECK(load.config.incus.projects.empty());
}

TEST_CASE("incus config: a unix server and projects are read") {
  TempDir d("warden-incus");
  auto load = LoadConfig(d.Write("w.yaml", R"(
incus:
  server: unix:/run/incus.sock
  projects: [pro, perso-2]
  timeout_seconds: 5
  max_timeout_seconds: 60
  connect_timeout_seconds: 2
)"));
  REQUIRE(load.ok());
  const IncusConfig& c = load.config.incus;
  CHECK(c.socket_path == "/run/incus.sock");
  CHECK(c.host.empty());
  CHECK(c.projects == std::vector<std::string>{"pro", "perso-2"});
  CHECK(c.timeout_seconds == 5);
  CHECK(c.max_timeout_seconds == 60);
  CHECK(c.connect_timeout_seconds == 2);
}

TEST_CASE("incus config: an https server needs a client certificate, its key and a pin") {
  TempDir d("warden-incus");
  std::string cert = d.Write("client.crt", "not checked at load\n", 0644);
  std::string key = d.Write("client.key", "not checked at load\n", 0600);
  SECTION("complete, with the pin normalised to lower-case hex") {
    std::string upper_colons;
    for (size_t i = 0; i < 64; i += 2) upper_colons += (i ? ":" : "") + std::string(kPin + i, 2);
    for (auto& ch : upper_colons) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    auto load = LoadConfig(d.Write("w.yaml", "incus:\n  server: https://incus.example.net:9443\n  client_cert: client.crt\n"
                                             "  client_key: client.key\n  server_cert_sha256: \"" + upper_colons +
                                             "\"\n  projects: [pro]\n"));
    REQUIRE(load.ok());
    CHECK(load.config.incus.host == "incus.example.net");
    CHECK(load.config.incus.port == 9443);
    CHECK(load.config.incus.socket_path.empty());
    CHECK(load.config.incus.client_cert == cert);
    CHECK(load.config.incus.server_cert_sha256 == kPin);
  }
  SECTION("an IPv6 literal and the default port") {
    auto load = LoadConfig(d.Write("w.yaml", std::string("incus:\n  server: https://[2001:db8::7]\n  client_cert: client.crt\n"
                                                         "  client_key: client.key\n  server_cert_sha256: ") + kPin + "\n"));
    REQUIRE(load.ok());
    CHECK(load.config.incus.host == "2001:db8::7");
    CHECK(load.config.incus.port == 8443);
  }
  SECTION("missing pieces are each named") {
    auto load = LoadConfig(d.Write("w.yaml", "incus:\n  server: https://10.0.0.9:8443\n  projects: [pro]\n"));
    REQUIRE_FALSE(load.ok());
    const std::string e = Errors(load);
    CHECK(e.find("incus.client_cert: is required") != std::string::npos);
    CHECK(e.find("incus.client_key: is required") != std::string::npos);
    CHECK(e.find("incus.server_cert_sha256: is required") != std::string::npos);
  }
  SECTION("a readable private key is refused") {
    d.Write("client.key", "x\n", 0644);
    auto load = LoadConfig(d.Write("w.yaml", std::string("incus:\n  server: https://h\n  client_cert: client.crt\n"
                                                         "  client_key: client.key\n  server_cert_sha256: ") + kPin + "\n"));
    REQUIRE_FALSE(load.ok());
    CHECK(Errors(load).find("mode 0644") != std::string::npos);
  }
  SECTION("certificate settings with a unix server are refused") {
    auto load = LoadConfig(d.Write("w.yaml", std::string("incus:\n  server_cert_sha256: ") + kPin + "\n"));
    REQUIRE_FALSE(load.ok());
    CHECK(Errors(load).find("incus.server_cert_sha256: is only for an https server") != std::string::npos);
  }
}

TEST_CASE("incus config: errors carry file, line and key") {
  TempDir d("warden-incus");
  std::string file = d.Write("w.yaml", R"(incus:
  server: http://incus:8443
  server_cert_sha256: abc
  projects: [pro, "../etc", pro, -x]
  timeout_seconds: 100
  max_timeout_seconds: 10
  colour: blue
)");
  auto load = LoadConfig(file);
  REQUIRE_FALSE(load.ok());
  const std::string e = Errors(load);
  INFO(e);
  CHECK(e.find(file + ":2:11: incus.server: must be unix:<socket path> or https://host[:port]") != std::string::npos);
  CHECK(e.find(file + ":3:23: incus.server_cert_sha256: must be the SHA-256") != std::string::npos);
  CHECK(e.find("incus.projects[1]: must be Incus project names") != std::string::npos);
  CHECK(e.find("incus.projects[3]: must be Incus project names") != std::string::npos);
  CHECK(e.find("incus.projects: lists \"pro\" twice") != std::string::npos);
  CHECK(e.find(":5:20: incus.timeout_seconds: must not exceed incus.max_timeout_seconds") != std::string::npos);
  CHECK(e.find(":7:3: incus.colour: unknown key") != std::string::npos);
}

TEST_CASE("incus names: letters, digits and '-', at most 63, nothing to escape") {
  for (const char* ok : {"pro", "pro-dev", "a", "Web1", "x1-2-3", "default"}) CHECK(IsIncusName(ok));
  const std::string max(63, 'a');
  CHECK(IsIncusName(max));
  CHECK_FALSE(IsIncusName(max + "a"));
  for (const char* bad : {"", "-pro", "pro-", "123", "pro/dev", "pro dev", "../x", "pro%2Fx", "a_b", "a.b", "pro?x",
                          "pro#", "é"})
    CHECK_FALSE(IsIncusName(bad));
}

TEST_CASE("incus paths: names are checked before a URL is built, and encoded") {
  auto p = incus::InstancePath("pro", "pro-dev", "/exec");
  REQUIRE(p.ok());
  CHECK(p.value() == "/1.0/instances/pro-dev/exec?project=pro");
  CHECK_FALSE(incus::InstancePath("pro", "../../1.0/projects").ok());
  CHECK_FALSE(incus::InstancePath("pro&project=perso", "x").ok());
  CHECK_FALSE(incus::InstancePath("pro", "x?project=perso").ok());
  CHECK(incus::InstancePath("perso/", "x").status().message().find("\"project\"") != std::string::npos);
  CHECK(incus::PercentEncode("a b/c?d=e&f%~._-") == "a%20b%2Fc%3Fd%3De%26f%25~._-");
  CHECK(incus::PercentEncode(std::string("\0\xff", 2)) == "%00%FF");
}

TEST_CASE("incus argv fingerprint: SHA-256 of each element followed by NUL") {
  CHECK(incus::ArgvSha256({"true"}) == "debc2f07db78d52d2def07b7bc620d7042367501d9439a62ba09b559a98e0957");
  CHECK(incus::ArgvSha256({"sh", "-c", "echo hi"}) ==
        "f22a05e0e6583b48404dc1b322c4af91bd42a2ae911497dd94f98eb79a1c38a9");
  // Element boundaries count: ["ab"] and ["a", "b"] differ.
  CHECK(incus::ArgvSha256({"ab"}) != incus::ArgvSha256({"a", "b"}));
}

TEST_CASE("incus scoping: only configured projects, refused before any request") {
  IncusConfig c;
  c.projects = {"pro"};
  CHECK(warden::tools::CheckProject(c, "pro").ok());
  warden::Status s = warden::tools::CheckProject(c, "perso");
  CHECK(s.code() == warden::Code::kPermissionDenied);
  CHECK(s.message().find("allowed projects: pro") != std::string::npos);
  CHECK_FALSE(warden::tools::CheckProject(c, "").ok());
  CHECK_FALSE(warden::tools::CheckProject(c, "PRO").ok());

  // The tool refuses before its client is used: the server is a socket that
  // does not exist, so any request would fail with Unavailable instead.
  c.socket_path = "/nonexistent/incus.sock";
  auto client = incus::Client::Create(c);
  REQUIRE(client.ok());
  warden::tools::IncusExecTool tool(c, std::move(client.value()));
  const auto& schema = tool.spec().input_schema;
  CHECK(boost::json::serialize(schema.at("properties").at("project").at("enum")) == R"(["pro"])");
  warden::CancellationToken cancel;
  warden::tools::CallContext ctx;
  ctx.cancel = &cancel;
  auto r = tool.Run(boost::json::parse(R"({"project":"perso","instance":"perso-dev","argv":["id"]})").as_object(), ctx);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == warden::Code::kPermissionDenied);
  auto bad_name = tool.Run(boost::json::parse(R"({"project":"pro","instance":"a/b","argv":["id"]})").as_object(), ctx);
  REQUIRE_FALSE(bad_name.ok());
  CHECK(bad_name.status().code() == warden::Code::kInvalidArgument);
  auto marker = tool.Run(
      boost::json::parse(R"({"project":"pro","instance":"a","argv":["id"],"env":["WARDEN_EXEC_ID=x"]})").as_object(), ctx);
  REQUIRE_FALSE(marker.ok());
  CHECK(marker.status().code() == warden::Code::kInvalidArgument);
  // A valid call does reach the (absent) server and says so clearly.
  auto down = tool.Run(boost::json::parse(R"({"project":"pro","instance":"a","argv":["id"]})").as_object(), ctx);
  REQUIRE_FALSE(down.ok());
  CHECK(down.status().code() == warden::Code::kUnavailable);
  CHECK(down.status().message().find("unix:/nonexistent/incus.sock") != std::string::npos);
}
