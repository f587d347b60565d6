#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "core/config.h"
#include "tests/unit/temp_dir.h"

namespace fs = std::filesystem;
using warden::LoadConfig;
using warden::testing::TempDir;

TEST_CASE("no config file gives embedded defaults") {
  auto load = LoadConfig("", "/tmp/warden-state-test");
  REQUIRE(load.ok());
  CHECK(load.config.state_dir == "/tmp/warden-state-test");
  CHECK(load.config.audit.database == "/tmp/warden-state-test/audit.db");
  CHECK(load.config.audit.retention_seconds == 300);
  CHECK(load.config.git.repos.empty());
}

TEST_CASE("a valid config is read, relative paths resolve against the file") {
  TempDir d("warden-config");
  fs::create_directories(d.path() / "repo/.git");
  std::string file = d.Write("w.yaml", R"(
state_dir: state
server: {max_concurrent_calls: 3, tools_page_size: 1}
output: {max_response_bytes: 4096}
git:
  timeout_seconds: 5
  repos:
    demo: repo
)");
  auto load = LoadConfig(file);
  REQUIRE(load.ok());
  CHECK(load.config.state_dir == (d.path() / "state").string());
  CHECK(load.config.server.max_concurrent_calls == 3);
  CHECK(load.config.output.max_response_bytes == 4096);
  CHECK(load.config.git.repos.at("demo") == (d.path() / "repo").string());
}

TEST_CASE("config errors name the file, line and key") {
  TempDir d("warden-config");
  std::string file = d.Write("bad.yaml", R"(server:
  max_concurrent_calls: many
  tools_page_size: 0
  colour: blue
git:
  repos:
    demo: /nonexistent/warden-repo
    "bad name": /tmp
)");
  auto load = LoadConfig(file);
  REQUIRE_FALSE(load.ok());
  std::string all;
  for (const auto& e : load.errors) all += e.ToString() + "\n";
  INFO(all);
  CHECK(all.find(file + ":2:25: server.max_concurrent_calls: must be an integer") != std::string::npos);
  CHECK(all.find("server.tools_page_size: must be between 1 and 1000, got 0") != std::string::npos);
  CHECK(all.find(":4:3: server.colour: unknown key") != std::string::npos);
  CHECK(all.find("git.repos.demo: no such directory") != std::string::npos);
  CHECK(all.find("git.repos.bad name: repository names use") != std::string::npos);
  CHECK(load.errors.size() == 5);
}

TEST_CASE("YAML syntax errors and missing files are errors, not crashes") {
  TempDir d("warden-config");
  auto syntax = LoadConfig(d.Write("s.yaml", "server: [unclosed\n"));
  REQUIRE(syntax.errors.size() == 1);
  CHECK(syntax.errors[0].message.find("YAML syntax error") == 0);
  CHECK(syntax.errors[0].line >= 1);

  auto missing = LoadConfig((d.path() / "absent.yaml").string());
  REQUIRE(missing.errors.size() == 1);
  CHECK(missing.errors[0].message == "cannot read config: no such file");

  auto not_map = LoadConfig(d.Write("l.yaml", "- a\n- b\n"));
  REQUIRE(not_map.errors.size() == 1);
  CHECK(not_map.errors[0].message == "must be a mapping");
}
