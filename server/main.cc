// warden: the command line. `warden serve` is the MCP server on stdio;
// the other subcommands are for operators.
#include <fcntl.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdio>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <iostream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "anonymizer/anonymizer.h"
#include "anonymizer/layer2.h"
#include "anonymizer/llm_client.h"
#include "canary/canary.h"
#include "core/clock.h"
#include "core/config.h"
#include "server/mcp_server.h"
#include "server/operator.h"
#include "server/pipeline.h"
#include "storage/audit_store.h"
#include "storage/purge_worker.h"
#include "sshca/ca.h"
#include "tools/git_tool.h"
#include "tools/sandbox.h"
#include "tools/incus_client.h"
#include "tools/incus_tool.h"
#include "tools/local_tools.h"
#include "tools/ssh_tool.h"

namespace {

const char* const kUsage = R"(warden - an MCP server that runs commands on your infrastructure and returns
only sanitized, enveloped output (secrets removed, identifiers tokenized).

usage:
  warden serve [--config FILE] [--state-dir DIR]
      MCP server on stdin/stdout (JSON-RPC 2.0, one message per line).
      Register it: claude mcp add warden -- warden serve --config FILE
  warden check-config --config FILE
      Validate a config file; prints each error with file, line and key. Exit 0 if valid.
  warden purge [--config FILE] [--state-dir DIR]
      One purge pass: empty the sanitized output bodies whose retention time
      (audit.retention_seconds) has passed. For a CronJob; serve also purges.
  warden anonymize [--config FILE] [--explain]
      Filter stdin to stdout through the anonymizer the server uses.
      --explain lists each span (offsets, rule, category) on stderr, never the value.
  warden ca init [--config FILE] [--state-dir DIR] [--pkcs11 URI]
      Create Warden's SSH CA key (Ed25519) at ssh.ca_key, default <state_dir>/ca/ssh_ca
      (mode 0600, directory 0700); never overwrites. Prints the public key line.
      With a pkcs11: URI (--pkcs11, or as ssh.ca_key) the key pair is generated
      inside the PKCS#11 token, sensitive and non-extractable; the module and PIN
      file come from ssh.pkcs11_module / ssh.pkcs11_pin_file or the URI's
      module-path / pin-source.
  warden ca pubkey [--config FILE] [--state-dir DIR] [--pkcs11 URI]
      Print the line to put in each target's sshd TrustedUserCAKeys file.
  warden canary [--config FILE] [--state-dir DIR] [--reset]
      Self-test: run every canary (one per rule family, fresh fake values)
      through the configured pipeline; one line per canary; exit 0 only if all
      pass. The run is recorded; a failure HALTS every Warden on this audit
      database. --reset lifts a halt, only if the self-test passes.
  warden stats [--config FILE] [--state-dir DIR] [--since DURATION] [--json | --prometheus]
      Anonymization latency, canary pass rate, escalation ratio, ssh sessions
      near certificate expiry, output-validation rejections, purge lag, calls
      and errors per tool, with their alert thresholds (default --since 24h).
  warden audit [--config FILE] [--state-dir DIR] [--since DURATION] [--tool NAME] [--json]
      Recent tool calls, newest first (default --since 1h).
  warden --version
  warden --help

Without --config Warden runs on embedded defaults: state (the SQLite audit
database) under $XDG_STATE_HOME/warden, regex anonymizer, no repositories.
Logs go to stderr; stdout carries protocol messages only.
)";

struct Args {
  std::string command;
  std::string subcommand;  // `warden ca <subcommand>`
  std::string config;
  std::string state_dir;
  bool explain = false;
  bool reset = false;
  std::string format = "text";  // text | json | prometheus
  std::string since;
  std::string tool;
  std::string pkcs11;  // `warden ca ... --pkcs11 URI`
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
    else if (s == "--reset") a.reset = true;
    else if (s == "--json") a.format = "json";
    else if (s == "--prometheus") a.format = "prometheus";
    else if (s == "--since") value(&a.since);
    else if (s == "--tool") value(&a.tool);
    else if (s == "--pkcs11") value(&a.pkcs11);
    else if (!s.empty() && s[0] != '-' && a.command.empty()) a.command = s;
    else if (!s.empty() && s[0] != '-' && a.command == "ca" && a.subcommand.empty()) a.subcommand = s;
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

// AnonymizerFor: Warden's own inventory is IaC too. The DNS names of ssh
// targets are identifiers wherever they appear (their IP addresses already are).
warden::AnonymizerConfig AnonymizerFor(const warden::Config& c) {
  warden::AnonymizerConfig a = c.anonymizer;
  for (const auto& [name, host] : c.ssh.hosts)
    if (host.address.find_first_not_of("0123456789.:abcdefABCDEF") != std::string::npos)
      a.dictionary["hostname"].push_back(host.address);
  return a;
}

// LocalModel creates the local-model client (llm section) and installs layer 2 in
// `anonymizer` when anonymizer.layer2.enabled. `client` stays null without an llm section.
warden::Status LocalModel(const warden::Config& c, warden::anonymizer::Anonymizer& anonymizer,
                          std::shared_ptr<warden::anonymizer::LlmClient>* client) {
  if (!c.llm.configured) return warden::Status::Ok();
  auto created = warden::anonymizer::LlmClient::Create(c.llm);
  if (!created.ok()) return created.status();
  *client = std::move(created.value());
  if (!c.anonymizer.layer2.enabled) return warden::Status::Ok();
  auto prompt = warden::anonymizer::LoadSystemPrompt(c.llm);
  if (!prompt.ok()) return prompt.status();
  warden::anonymizer::Layer2Options options{c.anonymizer.layer2, prompt.value()};
  anonymizer.SetSecondStage(std::make_shared<warden::anonymizer::Layer2>(std::move(options), *client));
  return warden::Status::Ok();
}

// Stages: the pipeline's anonymizer as the config builds it (layer 1, and layer
// 2 when enabled) and the local-model client (null without an llm section).
struct Stages {
  std::unique_ptr<warden::anonymizer::Anonymizer> anonymizer;
  std::shared_ptr<warden::anonymizer::LlmClient> llm;
};

// BuildStages: every command that anonymizes builds it the same way. The
// error names the part that failed ("anonymizer: ...", "llm: ...").
warden::Result<Stages> BuildStages(const warden::Config& c) {
  Stages st;
  auto anonymizer = warden::anonymizer::MakeAnonymizer(AnonymizerFor(c));
  if (!anonymizer.ok()) return warden::Status(anonymizer.status().code(), "anonymizer: " + anonymizer.status().message());
  st.anonymizer = std::move(anonymizer.value());
  if (warden::Status s = LocalModel(c, *st.anonymizer, &st.llm); !s.ok())
    return warden::Status(s.code(), "llm: " + s.message());
  return st;
}

// CaSource: where ssh.ca_key says the CA key is (a file or a PKCS#11 token).
warden::sshca::CaKeySource CaSource(const warden::SshConfig& ssh) {
  return {ssh.ca_key, ssh.pkcs11_module, ssh.pkcs11_pin_file};
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
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
  auto stages = BuildStages(load.config);
  if (!stages.ok()) {
    std::cerr << a.config << ": " << stages.status().message() << "\n";
    return 1;
  }
  const std::shared_ptr<warden::anonymizer::LlmClient>& llm = stages.value().llm;
  const warden::Config& c = load.config;
  std::cout << a.config << ": valid\n"
            << "  state_dir: " << c.state_dir << "\n"
            << "  audit database: " << c.audit.database << " (output kept " << c.audit.retention_seconds << " s)\n"
            << "  git repositories: " << c.git.repos.size() << "\n";
  for (const auto& [name, path] : c.git.repos) std::cout << "    " << name << " -> " << path << "\n";
  if (!c.git.repos.empty()) {
    const warden::tools::SandboxSupport& sandbox = warden::tools::ProbeSandbox();
    std::cout << "  git sandbox: " << sandbox.Describe()
              << (sandbox.landlock_abi == 0 ? " -- WARNING: without Landlock git may read files outside the "
                                              "repositories (docs/git-hardening.md)"
                                            : "")
              << "\n";
  }
  std::cout << "  incus: " << c.incus.server << ", projects: "
            << (c.incus.projects.empty() ? std::string("none (incus tools off)") : JoinNames(c.incus.projects))
            << "\n";
  std::cout << "  local model: " << (llm ? llm->Describe() : std::string("none (no layer 2, no local_* tools)"))
            << "; layer 2: "
            << (c.anonymizer.layer2.enabled ? "on, on_unavailable: " + c.anonymizer.layer2.on_unavailable : "off")
            << "\n";
  std::cout << "  ssh hosts: " << c.ssh.hosts.size() << " (CA key " << c.ssh.ca_key << ")\n";
  // The CA is opened as `serve` would open it: a wrong PIN, a missing token
  // or key, or a module that is not PKCS#11 shows here, not at the first call.
  if (!c.ssh.hosts.empty() || warden::sshca::IsPkcs11Uri(c.ssh.ca_key)) {
    auto ca = warden::sshca::CertificateAuthority::Open(CaSource(c.ssh));
    if (!ca.ok()) {
      std::cerr << a.config << ": ssh.ca_key: " << ca.status().message() << "\n";
      return 1;
    }
    std::cout << "  ssh CA: " << ca.value()->Fingerprint() << " (" << ca.value()->Describe() << ")\n";
  }
  for (const auto& [name, h] : c.ssh.hosts)
    std::cout << "    " << name << " -> " << h.user << "@" << h.address << ":" << h.port
              << (h.force_command ? "" : " (force-command disabled: " + h.force_command_disabled_reason + ")") << "\n";
  const int cap = static_cast<int>(warden::sshca::kMaxCertificateLifetime.count());
  if (c.ssh.cert_ttl_seconds > cap)
    std::cerr << a.config << ": warning: ssh.cert_ttl_seconds is " << c.ssh.cert_ttl_seconds
              << "; certificates are capped at " << cap << " s (15 minutes) whatever the config says\n";
  return 0;
}

// Ca runs `warden ca init` and `warden ca pubkey`. The key itself is never printed.
int Ca(const Args& a) {
  warden::ConfigLoad load = LoadOrExplain(a);
  if (!load.ok()) return 1;
  warden::sshca::CaKeySource source = CaSource(load.config.ssh);
  if (!a.pkcs11.empty()) {
    if (!warden::sshca::IsPkcs11Uri(a.pkcs11)) {
      std::cerr << "warden ca: --pkcs11 takes an RFC 7512 URI (pkcs11:token=...;object=...)\n";
      return 2;
    }
    source.ca_key = a.pkcs11;
  }
  const std::string& path = source.ca_key;
  const bool token = warden::sshca::IsPkcs11Uri(path);
  if (a.subcommand == "init") {
    warden::Result<std::string> line = warden::sshca::CreateCaKey(source);
    if (!line.ok()) {
      std::cerr << "warden ca init: " << line.status().message() << "\n";
      return 1;
    }
    if (token)
      std::cerr << "warden ca init: generated the CA key inside the token (sensitive, not extractable) as " << path
                << "; use that URI as ssh.ca_key. Put this line in each target's TrustedUserCAKeys file:\n";
    else
      std::cerr << "warden ca init: created " << path << " (mode 0600); put this line in each target's "
                << "TrustedUserCAKeys file:\n";
    std::cout << line.value() << "\n";
    return 0;
  }
  if (a.subcommand == "pubkey") {
    auto ca = warden::sshca::CertificateAuthority::Open(source);
    if (!ca.ok()) {
      std::cerr << "warden ca pubkey: " << ca.status().message() << "\n";
      return 1;
    }
    std::cout << ca.value()->PublicKeyLine() << "\n";
    return 0;
  }
  std::cerr << "warden ca: give a subcommand: init or pubkey\n\n" << kUsage;
  return 2;
}

int Anonymize(const Args& a) {
  warden::ConfigLoad load = LoadOrExplain(a);
  if (!load.ok()) return 1;
  auto stages = BuildStages(load.config);
  if (!stages.ok()) {
    std::cerr << "warden anonymize: " << stages.status().message() << "\n";
    return 1;
  }
  warden::anonymizer::TokenMap tokens(warden::anonymizer::IpModeOf(load.config.anonymizer));
  std::string input;
  if (struct stat st; ::fstat(0, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
    input.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  for (ssize_t n; (n = ::read(0, buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::perror("warden anonymize: read");
      return 1;
    }
    input.append(buf, static_cast<size_t>(n));
  }
  auto checked = stages.value().anonymizer->AnonymizeChecked(input, tokens);
  if (!checked.ok()) {
    std::cerr << "warden anonymize: " << checked.status().message() << "\n";
    return 1;
  }
  const warden::anonymizer::Sanitized& out = checked.value();
  std::fwrite(out.text.data(), 1, out.text.size(), stdout);
  std::fflush(stdout);
  if (a.explain)
    for (const auto& s : out.spans)
      std::cerr << s.begin << "-" << s.end << "\t" << s.category << "\t" << s.rule << "\n";
  return 0;
}

warden::Result<std::unique_ptr<warden::storage::AuditStore>> OpenAudit(const warden::Config& c) {
  return warden::storage::AuditStore::Open(c.audit.database, {c.audit.busy_timeout_ms});
}

int Purge(const Args& a) {
  warden::ConfigLoad load = LoadOrExplain(a);
  if (!load.ok()) return 2;
  auto audit = OpenAudit(load.config);
  if (!audit.ok()) {
    std::cerr << "warden purge: " << audit.status().message() << "\n";
    return 1;
  }
  warden::SystemClock clock;
  auto purged = audit.value()->PurgeExpired(warden::UnixMillis(clock.Now()));
  if (!purged.ok()) {
    std::cerr << "warden purge: " << purged.status().message() << "\n";
    return 1;
  }
  std::cout << "purged " << purged.value().purged << " output bodies from " << load.config.audit.database << " in "
            << purged.value().duration_us << " us";
  if (purged.value().purged > 0) std::cout << "; the oldest was " << purged.value().lag_ms << " ms past its time";
  std::cout << "\n";
  return 0;
}

// Canary runs the self-test over the configured pipeline (and lifts a halt with --reset).
int Canary(const Args& a) {
  warden::ConfigLoad load = LoadOrExplain(a);
  if (!load.ok()) return 2;
  auto audit = OpenAudit(load.config);
  if (!audit.ok()) {
    std::cerr << "warden canary: " << audit.status().message() << "\n";
    return 1;
  }
  auto stages = BuildStages(load.config);
  if (!stages.ok()) {
    std::cerr << "warden canary: " << stages.status().message() << "\n";
    return 1;
  }
  warden::SystemClock clock;
  warden::canary::Guard guard;
  warden::server::Pipeline pipeline(*stages.value().anonymizer, guard, *audit.value(), load.config.output,
                                    load.config.audit.retention_seconds, clock);
  int failed = 0;
  for (const warden::canary::Verdict& v : pipeline.SelfTest(a.reset ? "warden canary --reset" : "warden canary")) {
    std::cout << (v.passed ? "PASS  " : "FAIL  ") << v.family << (v.passed ? "" : ": " + v.detail) << "\n";
    failed += !v.passed;
  }
  std::cout << guard.catalog().size() - failed << " of " << guard.catalog().size() << " canaries redacted as expected\n";
  if (failed > 0) {
    std::cout << "HALTED: tool calls on " << load.config.audit.database << " are refused until the pipeline is fixed\n";
    if (a.reset) std::cerr << "warden canary --reset: the self-test fails, so the halt stays\n";
    return 1;
  }
  auto active = audit.value()->ActiveHalt();
  if (!active.ok()) {
    std::cerr << "warden canary: " << active.status().message() << "\n";
    return 1;
  }
  if (active.value() && !a.reset) {
    std::cout << "still HALTED since " << active.value()->halted_ms << " (" << active.value()->reason
              << "); lift it with `warden canary --reset`\n";
    return 1;
  }
  if (active.value()) {
    auto lifted = audit.value()->LiftHalts(warden::UnixMillis(clock.Now()), "warden canary --reset");
    if (!lifted.ok()) {
      std::cerr << "warden canary --reset: " << lifted.status().message() << "\n";
      return 1;
    }
    std::cout << "lifted " << lifted.value() << " halt(s); tool calls are admitted again\n";
  }
  return 0;
}

int Stats(const Args& a) {
  warden::ConfigLoad load = LoadOrExplain(a);
  if (!load.ok()) return 2;
  auto window = warden::server::ParseDurationMs(a.since.empty() ? "24h" : a.since);
  if (!window.ok()) {
    std::cerr << "warden stats: --since: " << window.status().message() << "\n";
    return 2;
  }
  auto audit = OpenAudit(load.config);
  if (!audit.ok()) {
    std::cerr << "warden stats: " << audit.status().message() << "\n";
    return 1;
  }
  warden::SystemClock clock;
  int64_t now = warden::UnixMillis(clock.Now()), since = now - window.value();
  auto rows = audit.value()->Stats(since);
  if (!rows.ok()) {
    std::cerr << "warden stats: " << rows.status().message() << "\n";
    return 1;
  }
  boost::json::object stats = warden::server::StatsJson(rows.value(), since, now);
  if (a.format == "json") std::cout << boost::json::serialize(stats) << "\n";
  else if (a.format == "prometheus") std::cout << warden::server::StatsPrometheus(stats);
  else std::cout << warden::server::StatsText(stats);
  return 0;
}

int Audit(const Args& a) {
  warden::ConfigLoad load = LoadOrExplain(a);
  if (!load.ok()) return 2;
  auto window = warden::server::ParseDurationMs(a.since.empty() ? "1h" : a.since);
  if (!window.ok() || a.format == "prometheus") {
    std::cerr << "warden audit: " << (window.ok() ? "--prometheus is for `warden stats`" : "--since: " + window.status().message())
              << "\n";
    return 2;
  }
  auto audit = OpenAudit(load.config);
  if (!audit.ok()) {
    std::cerr << "warden audit: " << audit.status().message() << "\n";
    return 1;
  }
  warden::SystemClock clock;
  auto rows = audit.value()->ListCalls(warden::UnixMillis(clock.Now()) - window.value(), a.tool, 1000);
  if (!rows.ok()) {
    std::cerr << "warden audit: " << rows.status().message() << "\n";
    return 1;
  }
  if (a.format == "json") std::cout << boost::json::serialize(warden::server::AuditJson(rows.value())) << "\n";
  else std::cout << warden::server::AuditTable(rows.value());
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

  auto audit = OpenAudit(config);
  if (!audit.ok()) {
    spdlog::critical("{}; Warden does not run without its audit store (no unaudited access)", audit.status().message());
    return 1;
  }
  warden::SystemClock clock;
  auto stages = BuildStages(config);
  if (!stages.ok()) {
    spdlog::critical("{}", stages.status().message());
    return 2;
  }
  const warden::anonymizer::Anonymizer& anonymizer = *stages.value().anonymizer;
  const std::shared_ptr<warden::anonymizer::LlmClient>& llm = stages.value().llm;
  if (llm)
    spdlog::info("local model: {}; layer 2 {}", llm->Describe(),
                 config.anonymizer.layer2.enabled ? "on (on_unavailable: " + config.anonymizer.layer2.on_unavailable + ")"
                                                  : std::string("off"));
  warden::canary::Guard guard;
  warden::server::Pipeline pipeline(anonymizer, guard, *audit.value(), config.output, config.audit.retention_seconds,
                                    clock);
  // The self-test at every start: a pass lifts a recorded halt (the restart is the
  // operator's action); a failure halts this server before its first call.
  {
    std::vector<warden::canary::Verdict> verdicts = pipeline.SelfTest("startup");
    bool passed = std::all_of(verdicts.begin(), verdicts.end(), [](const auto& v) { return v.passed; });
    if (passed) {
      auto lifted = audit.value()->LiftHalts(warden::UnixMillis(clock.Now()), "restart with a passing self-test");
      if (lifted.ok() && lifted.value() > 0)
        spdlog::warn("lifted {} recorded halt(s): the canary self-test passes at this start", lifted.value());
      else if (!lifted.ok())
        spdlog::error("{}", lifted.status().message());
    } else {
      spdlog::critical("canary self-test FAILED at startup; every tool call is refused (see `warden canary`)");
    }
  }
  std::vector<std::unique_ptr<warden::tools::Tool>> tools;
  tools.push_back(std::make_unique<warden::tools::GitTool>(config.git));
  if (!config.ssh.hosts.empty()) {
    // ssh_run signs every call with the CA; without it the hosts are unusable, so refuse to start.
    auto ca = warden::sshca::CertificateAuthority::Open(CaSource(config.ssh));
    if (!ca.ok()) {
      spdlog::critical("{}; ssh.hosts are configured and ssh_run needs Warden's SSH CA key", ca.status().message());
      return 1;
    }
    spdlog::info("ssh CA {} ({}); {} ssh host(s)", ca.value()->Fingerprint(), ca.value()->Describe(),
                 config.ssh.hosts.size());
    tools.push_back(std::make_unique<warden::tools::SshTool>(config.ssh, std::move(ca.value()), clock));
  }
  if (!config.incus.projects.empty()) {
    // incus_exec and incus_list, confined to incus.projects; one client (and TLS context) for both.
    auto client = warden::tools::incus::Client::Create(config.incus);
    if (!client.ok()) {
      spdlog::critical("incus: {}", client.status().message());
      return 1;
    }
    std::shared_ptr<warden::tools::incus::Client> shared = std::move(client.value());
    spdlog::info("incus server {}; projects {}", shared->Describe(), JoinNames(config.incus.projects));
    tools.push_back(std::make_unique<warden::tools::IncusExecTool>(config.incus, shared));
    tools.push_back(std::make_unique<warden::tools::IncusListTool>(config.incus, shared));
  }
  if (llm && config.llm.local_tools) {
    // Local-first work: local_analyze runs the tools above (same objects, same checks).
    std::map<std::string, warden::tools::Tool*> sources;
    for (const auto& t : tools)
      if (t->spec().name == "git" || t->spec().name == "ssh_run" || t->spec().name == "incus_exec")
        sources[t->spec().name] = t.get();
    const warden::anonymizer::Anonymizer& layer1 = anonymizer;
    tools.push_back(std::make_unique<warden::tools::LocalAnalyzeTool>(llm, layer1, std::move(sources)));
    using Task = warden::tools::LocalCodeTool::Task;
    for (Task task : {Task::kGenerate, Task::kReview, Task::kFix, Task::kTest})
      tools.push_back(std::make_unique<warden::tools::LocalCodeTool>(task, llm, layer1));
  }
  warden::server::McpServer server(config, std::move(tools), pipeline, *audit.value(), clock);
  spdlog::info("warden {} serving on stdio; session {}; config {}; audit {}", warden::server::kServerVersion,
               server.session_id(), config.source, config.audit.database);
  // Output bodies leave the audit store when their retention time is up, while
  // the server runs (a CronJob can also run `warden purge`).
  auto interval = std::chrono::milliseconds(
      std::clamp(config.audit.retention_seconds * 1000 / 2, 1000, 30'000));
  warden::storage::PurgeWorker purge(*audit.value(), clock, interval);
  int rc = server.Serve(0, protocol_out, sfd);
  purge.Stop();
  return rc;
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
  if (a.command == "purge") return Purge(a);
  if (a.command == "ca") return Ca(a);
  if (a.command == "canary") return Canary(a);
  if (a.command == "stats") return Stats(a);
  if (a.command == "audit") return Audit(a);
  std::cerr << "warden: unknown command \"" << a.command << "\"\n\n" << kUsage;
  return 2;
}
