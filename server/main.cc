// warden: the command line. `warden serve` is the MCP server on stdio;
// the other subcommands are for operators.
#include <fcntl.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <iostream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "anonymizer/anonymizer.h"
#include "canary/canary.h"
#include "core/clock.h"
#include "core/config.h"
#include "server/mcp_server.h"
#include "server/pipeline.h"
#include "storage/audit_store.h"
#include "tools/git_tool.h"

namespace {

const char* const kUsage = R"(warden - an MCP server that runs commands on your infrastructure and returns
only sanitized, enveloped output (secrets removed, identifiers tokenized).

usage:
  warden serve [--config FILE] [--state-dir DIR]
      MCP server on stdin/stdout (JSON-RPC 2.0, one message per line).
      Register it: claude mcp add warden -- warden serve --config FILE
  warden check-config --config FILE
      Validate a config file; prints each error with file, line and key. Exit 0 if valid.
  warden anonymize [--config FILE] [--explain]
      Filter stdin to stdout through the anonymizer the server uses.
      --explain lists each span (offsets, rule, category) on stderr, never the value.
  warden --version
  warden --help

Without --config Warden runs on embedded defaults: state (the SQLite audit
database) under $XDG_STATE_HOME/warden, regex anonymizer, no repositories.
Logs go to stderr; stdout carries protocol messages only.
)";

struct Args {
  std::string command;
  std::string config;
  std::string state_dir;
  bool explain = false;
  std::string error;
};

Args Parse(int argc, char** argv) {
  Args a;
  std::vector<std::string> v(argv + 1, argv + argc);
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string& s = v[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= v.size()) {
        a.error = s + " needs a value";
        return;
      }
      *out = v[++i];
    };
    if (s == "--help" || s == "-h") a.command = "help";
    else if (s == "--version") a.command = "version";
    else if (s == "--config") value(&a.config);
    else if (s == "--state-dir") value(&a.state_dir);
    else if (s == "--explain") a.explain = true;
    else if (!s.empty() && s[0] != '-' && a.command.empty()) a.command = s;
    else a.error = "unknown argument: " + s;
    if (!a.error.empty()) break;
  }
  return a;
}

warden::ConfigLoad LoadOrExplain(const Args& a) {
  warden::ConfigLoad load = warden::LoadConfig(a.config, a.state_dir);
  for (const auto& e : load.errors) std::cerr << e.ToString() << "\n";
  return load;
}

int CheckConfig(const Args& a) {
  if (a.config.empty()) {
    std::cerr << "warden check-config: --config FILE is required\n";
    return 2;
  }
  warden::ConfigLoad load = LoadOrExplain(a);
  if (!load.ok()) {
    std::cerr << load.errors.size() << " error(s) in " << a.config << "\n";
    return 1;
  }
  const warden::Config& c = load.config;
  std::cout << a.config << ": valid\n"
            << "  state_dir: " << c.state_dir << "\n"
            << "  audit database: " << c.audit.database << " (output kept " << c.audit.retention_seconds << " s)\n"
            << "  git repositories: " << c.git.repos.size() << "\n";
  for (const auto& [name, path] : c.git.repos) std::cout << "    " << name << " -> " << path << "\n";
  return 0;
}

int Anonymize(const Args& a) {
  warden::ConfigLoad load = LoadOrExplain(a);
  if (!load.ok()) return 1;
  auto anonymizer = warden::anonymizer::MakeDefaultAnonymizer();
  warden::anonymizer::TokenMap tokens;
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  warden::anonymizer::Sanitized out = anonymizer->Anonymize(input, tokens);
  std::cout << out.text;
  if (a.explain)
    for (const auto& s : out.spans)
      std::cerr << s.begin << "-" << s.end << "\t" << s.category << "\t" << s.rule << "\n";
  return 0;
}

int Serve(const Args& a) {
  // Keep the protocol stream clean: everything that writes to fd 1 by accident
  // (a library, a stray print) lands on stderr; protocol messages use the dup.
  int protocol_out = ::fcntl(1, F_DUPFD_CLOEXEC, 3);
  if (protocol_out < 0 || ::dup2(2, 1) < 0) {
    std::perror("warden: cannot set up stdout");
    return 1;
  }
  warden::ConfigLoad load = LoadOrExplain(a);
  if (!load.ok()) {
    spdlog::critical("invalid config {}; run `warden check-config --config {}`", load.config.source,
                     load.config.source);
    return 2;
  }
  const warden::Config& config = load.config;
  spdlog::set_level(spdlog::level::from_str(config.server.log_level));

  // Signals are taken from a signalfd by the reader; block them in every thread.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
  signal(SIGPIPE, SIG_IGN);

  auto audit = warden::storage::AuditStore::Open(config.audit.database);
  if (!audit.ok()) {
    spdlog::critical("{}; Warden does not run without its audit store", audit.status().message());
    return 1;
  }
  warden::SystemClock clock;
  auto anonymizer = warden::anonymizer::MakeDefaultAnonymizer();
  warden::canary::Guard guard;
  warden::server::Pipeline pipeline(*anonymizer, guard, *audit.value(), config.output, config.audit.retention_seconds,
                                    clock);
  std::vector<std::unique_ptr<warden::tools::Tool>> tools;
  tools.push_back(std::make_unique<warden::tools::GitTool>(config.git, config.git.binary));
  warden::server::McpServer server(config, std::move(tools), pipeline, *audit.value(), clock);
  spdlog::info("warden {} serving on stdio; session {}; config {}; audit {}", warden::server::kServerVersion,
               server.session_id(), config.source, config.audit.database);
  return server.Serve(0, protocol_out, sfd);
}

}  // namespace

int main(int argc, char** argv) {
  auto logger = spdlog::stderr_color_mt("warden");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  Args a = Parse(argc, argv);
  if (!a.error.empty()) {
    std::cerr << "warden: " << a.error << "\n\n" << kUsage;
    return 2;
  }
  if (a.command == "help" || a.command.empty()) {
    std::cout << kUsage;
    return a.command.empty() ? 2 : 0;
  }
  if (a.command == "version") {
    std::cout << "warden " << warden::server::kServerVersion << "\n";
    return 0;
  }
  if (a.command == "serve") return Serve(a);
  if (a.command == "check-config") return CheckConfig(a);
  if (a.command == "anonymize") return Anonymize(a);
  std::cerr << "warden: unknown command \"" << a.command << "\"\n\n" << kUsage;
  return 2;
}
