#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "core/config.h"
#include "tests/unit/temp_dir.h"

namespace fs = std::filesystem;
using warden::LoadConfig;
using warden::testing::TempDir;

namespace {
std::string Errors(const warden::ConfigLoad& load) {
  std::string out;
  for (const auto& e : load.errors) out += e.ToString() + "\n";
  return out;
}
}  // namespace

TEST_CASE("llm and layer2 sections are read") {
  TempDir d("warden-llmcfg");
  std::string token = d.Write("tok", "abc\n");
  ::chmod(token.c_str(), 0600);
  std::string file = d.Write("w.yaml", R"(llm:
  endpoint: http://127.0.0.1:11434
  api: openai
  model: qwen2.5:7b-instruct
  timeout_seconds: 20
  max_concurrency: 4
  bearer_token_file: tok
anonymizer:
  layer2: {enabled: true, on_unavailable: regex_only, chunk_bytes: 2048, overlap_bytes: 100, max_redact_share: 0.5}
)");
  auto load = LoadConfig(file, "/tmp/s");
  INFO(Errors(load));
  REQUIRE(load.ok());
  const auto& l = load.config.llm;
  CHECK(l.configured);
  CHECK(l.host == "127.0.0.1");
  CHECK(l.port == 11434);
  CHECK_FALSE(l.https);
  CHECK(l.api == "openai");
  CHECK(l.max_concurrency == 4);
  CHECK(l.bearer_token_file == (d.path() / "tok").string());
  const auto& l2 = load.config.anonymizer.layer2;
  CHECK(l2.enabled);
  CHECK(l2.on_unavailable == "regex_only");
  CHECK(l2.chunk_bytes == 2048);
  CHECK(l2.max_redact_share == Approx(0.5));
}

TEST_CASE("llm config errors are located") {
  TempDir d("warden-llmcfg");
  std::string token = d.Write("tok", "abc\n");
  ::chmod(token.c_str(), 0644);
  struct Case {
    std::string yaml, expect;
  };
  std::vector<Case> cases = {
      {"llm:\n  endpoint: ftp://x:1\n  model: m\n", "w.yaml:2:13: llm.endpoint: must be http://host:port"},
      {"llm:\n  endpoint: http://x:1/api\n  model: m\n", "w.yaml:2:13: llm.endpoint: must be http"},
      {"llm:\n  model: m\n", "llm.endpoint: is required"},
      {"llm:\n  endpoint: http://x:1\n  model: m\n  api: claude\n", "w.yaml:4:8: llm.api: must be one of: ollama, openai"},
      {"llm:\n  endpoint: http://x:1\n  model: m\n  bearer_token_file: tok\n",
       "w.yaml:4:22: llm.bearer_token_file: " + (d.path() / "tok").string() + " has mode 0644"},
      {"llm:\n  endpoint: https://x:1\n  model: m\n", "llm.endpoint: an https endpoint needs tls_ca_file"},
      {"llm:\n  endpoint: http://x:1\n  model: m\n  tls_server_cert_sha256: abc\n",
       "w.yaml:4:27: llm.tls_server_cert_sha256: must be the SHA-256"},
      {"llm:\n  endpoint: http://x:1\n  model: m\n  system_prompt_file: tok\n",
       "llm.system_prompt_sha256: is required with system_prompt_file"},
      {"llm:\n  endpoint: http://x:1\n  model: m\n  max_concurrency: 0\n", "w.yaml:4:20: llm.max_concurrency: must be between 1 and 256"},
      {"llm:\n  endpoint: http://x:1\n  model: m\n  tokens: 3\n", "w.yaml:4:3: llm.tokens: unknown key"},
      {"anonymizer:\n  layer2:\n    enabled: true\n", "w.yaml:3:14: anonymizer.layer2.enabled: layer 2 needs a local model"},
      {"anonymizer:\n  layer2:\n    on_unavailable: allow\n", "w.yaml:3:21: anonymizer.layer2.on_unavailable: must be one of: block, regex_only"},
      {"anonymizer:\n  layer2:\n    max_redact_share: 2\n", "w.yaml:3:23: anonymizer.layer2.max_redact_share: must be between"},
      {"anonymizer:\n  layer2:\n    max_redact_share: lots\n", "w.yaml:3:23: anonymizer.layer2.max_redact_share: must be a number"},
      {"anonymizer:\n  layer2:\n    chunk_bytes: 1000\n    overlap_bytes: 600\n", "w.yaml:4:20: anonymizer.layer2.overlap_bytes: must be at most half"},
      {"anonymizer:\n  layer2:\n    enabled: maybe\n", "w.yaml:3:14: anonymizer.layer2.enabled: must be true or false"},
  };
  for (const Case& c : cases) {
    std::string file = d.Write("w.yaml", c.yaml);
    auto load = LoadConfig(file, "/tmp/s");
    INFO(c.yaml << "\n--\n" << Errors(load));
    CHECK(Errors(load).find(c.expect) != std::string::npos);
  }
}
