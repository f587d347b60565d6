// Tests for tools/ssh_tool.h against a real OpenSSH sshd (tests/unit/ssh_fixture.h)
// that trusts a CA made for the test. Each case asserts on what ssh_run
// returned AND on what sshd itself logged about the connection.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <functional>
#include <set>
#include <thread>
#include <tuple>

#include "core/config.h"
#include "core/json_schema.h"
#include "sshca/ca.h"
#include "sshca/pkcs11.h"
#include "sshca/pkcs11_signer.h"
#include "tests/unit/softhsm_fixture.h"
#include "tests/unit/ssh_fixture.h"
#include "tools/ssh_tool.h"

namespace warden::tools {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;
using testing::CommandResult;
using testing::ReadFile;
using testing::Run;
using testing::SoftHsm;
using testing::Sshd;
using testing::TempDir;
using testing::WriteFile;

constexpr const char* kSession = "test-session";

// Where the Lab's CA key is: in Warden's memory (as from a key file), or
// inside a PKCS#11 token (SoftHSM2, a fresh token in a scratch directory).
enum class CaKind { kFile, kToken };
const char* Name(CaKind kind) { return kind == CaKind::kFile ? "CA key in memory" : "CA key in a PKCS#11 token"; }

// Lab is one sshd, the CA it trusts, and an ssh_run configuration whose host
// "target" is that sshd (key pinned, source 127.0.0.1).
struct Lab {
  explicit Lab(CaKind kind = CaKind::kFile) {
    ::signal(SIGPIPE, SIG_IGN);
    if (kind == CaKind::kToken) {
      if (!SoftHsm::Available()) FAIL("SoftHSM2 is not installed: run scripts/setup.sh --tests");
      auto started = SoftHsm::Start();
      INFO((started.ok() ? "" : started.status().message()));
      REQUIRE(started.ok());
      hsm = std::move(started.value());
      auto token_ca = hsm->CreateCa();
      INFO((token_ca.ok() ? "" : token_ca.status().message()));
      REQUIRE(token_ca.ok());
      ca = std::move(token_ca.value());
    } else {
      auto key = sshca::Ed25519Key::Generate();
      REQUIRE(key.ok());
      ca = std::make_shared<sshca::CertificateAuthority>(std::move(key.value()));
    }
    auto started = Sshd::Start(*ca);
    INFO((started.ok() ? "" : started.status().message()));
    REQUIRE(started.ok());
    sshd = std::move(started.value());
    config.hosts["target"] = sshd->Host();
    config.source_addresses = {"127.0.0.1/32"};
    config.connect_timeout_seconds = 20;
  }

  // Call runs ssh_run once with a fresh tool built from `config`.
  Result<RawOutput> Call(const json::object& args, const std::string& call_id = "call-1",
                         const Clock* at = nullptr, const CancellationToken* cancel = nullptr,
                         ProgressFn progress = {}) {
    SshTool tool(config, ca, at ? *at : clock);
    CancellationToken own;
    CallContext ctx;
    ctx.session_id = kSession;
    ctx.call_id = call_id;
    ctx.cancel = cancel ? cancel : &own;
    ctx.progress = std::move(progress);
    return tool.Run(args, ctx);
  }

  std::string KeyId(const std::string& call_id) const { return "warden:" + call_id + ":" + kSession + ":ssh_run"; }

  std::unique_ptr<SoftHsm> hsm;  // outlives the CA that uses its token
  std::shared_ptr<sshca::CertificateAuthority> ca;
  std::unique_ptr<Sshd> sshd;
  SshConfig config;
  SystemClock clock;
};

json::object Args(const std::string& command, int timeout = 60) {
  return {{"host", "target"}, {"command", command}, {"timeout_seconds", timeout}};
}

// NoAuthAttempt: sshd saw a connection but no authentication request at all.
void RequireNoAuthAttempt(const Sshd& sshd) {
  REQUIRE(sshd.WaitForLog("Connection from 127.0.0.1"));
  REQUIRE(sshd.WaitForLog("[preauth]"));
  const std::string log = sshd.Log();
  INFO(log);
  CHECK(log.find("publickey") == std::string::npos);
  CHECK(log.find("Certificate") == std::string::npos);
  CHECK(log.find("Accepted") == std::string::npos);
  CHECK(log.find("Failed") == std::string::npos);
}

// ProcessAlive tells whether `pid` still runs a command line containing `marker`.
bool ProcessAlive(const std::string& pid, const std::string& marker) {
  std::string cmdline = ReadFile("/proc/" + pid + "/cmdline");
  std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
  return cmdline.find(marker) != std::string::npos;
}

bool WaitGone(const std::string& pid, const std::string& marker, std::chrono::seconds limit) {
  for (auto end = std::chrono::steady_clock::now() + limit; std::chrono::steady_clock::now() < end;) {
    if (!ProcessAlive(pid, marker)) return true;
    std::this_thread::sleep_for(50ms);
  }
  return !ProcessAlive(pid, marker);
}

std::string WaitForFile(const fs::path& p, std::chrono::seconds limit) {
  for (auto end = std::chrono::steady_clock::now() + limit; std::chrono::steady_clock::now() < end;) {
    std::string s = ReadFile(p);
    if (!s.empty() && s.back() == '\n') return s.substr(0, s.size() - 1);
    std::this_thread::sleep_for(20ms);
  }
  return "";
}

std::set<std::string> Listing(const fs::path& dir) {
  std::set<std::string> out;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return out;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec))
    out.insert(it->path().string());
  return out;
}

TEST_CASE("runs a command: stdout, stderr and exit status apart, and sshd accepted the call's certificate") {
  const CaKind kind = GENERATE(CaKind::kFile, CaKind::kToken);
  INFO(Name(kind));
  Lab lab(kind);
  Result<RawOutput> r = lab.Call(Args("echo out; echo err >&2; exit 3"), "call-ok");
  INFO((r.ok() ? "" : r.status().ToString()));
  REQUIRE(r.ok());
  CHECK(r->out.bytes == "out\n");
  CHECK(r->err.bytes == "err\n");
  CHECK(r->exit_status == 3);
  CHECK_FALSE(r->exit_signal.has_value());
  CHECK(r->completed());
  const auto& m = r->metadata;
  CHECK(m.at("key_id") == lab.KeyId("call-ok"));
  CHECK(m.at("principals") == lab.sshd->principal());
  CHECK(m.at("host") == "target");
  CHECK(m.at("address") == "127.0.0.1:" + std::to_string(lab.sshd->port()));
  CHECK(m.at("force_command") == "certified");
  CHECK(std::stoll(m.at("valid_before")) - std::stoll(m.at("valid_after")) == 330);
  std::set<std::string> keys;
  for (const auto& [k, v] : m) {
    keys.insert(k);
    CHECK(v.find("PRIVATE") == std::string::npos);
  }
  CHECK(keys == std::set<std::string>{"address", "cert_serial", "force_command", "host", "key_id", "principals",
                                      "valid_after", "valid_before"});
  // sshd names the certificate it accepted: the call's key id and serial, signed by our CA.
  CHECK(lab.sshd->WaitForLog("Accepted publickey for " + lab.sshd->user() + " from 127.0.0.1"));
  CHECK(lab.sshd->WaitForLog("ID " + lab.KeyId("call-ok") + " (serial " + m.at("cert_serial") + ") CA ED25519 " +
                             lab.ca->Fingerprint()));
}

TEST_CASE("an exit signal is reported by name") {
  Lab lab;
  Result<RawOutput> r = lab.Call(Args("kill -USR1 $$"));
  REQUIRE(r.ok());
  CHECK_FALSE(r->exit_status.has_value());
  CHECK(r->exit_signal == "USR1");
}

TEST_CASE("force-command: sshd runs the certified command, which is exactly the one the client requested") {
  Lab lab;
  // Through ssh_run: sshd exposes the client's request as SSH_ORIGINAL_COMMAND.
  const std::string command = "printf %s \"$SSH_ORIGINAL_COMMAND\"";
  Result<RawOutput> r = lab.Call(Args(command, 42));
  REQUIRE(r.ok());
  CHECK(r->out.bytes == CertifiedCommand(command, 42));
  CHECK(r->out.bytes == "timeout -s KILL 42 sh -c 'printf %s \"$SSH_ORIGINAL_COMMAND\"'");

  // With OpenSSH's own client and a certificate from sshca that forces
  // another command, sshd runs the forced one and ignores the request.
  TempDir dir;
  auto key = sshca::Ed25519Key::Generate();
  REQUIRE(key.ok());
  sshca::CertificateRequest req;
  req.key_id = "test-forced";
  req.principals = {lab.sshd->principal()};
  req.force_command = "echo forced";
  req.source_addresses = {"127.0.0.1/32"};
  Result<sshca::Certificate> cert = lab.ca->Issue(req, key.value()->public_key(), lab.clock);
  REQUIRE(cert.ok());
  sshca::SecretString pem;
  REQUIRE(key.value()->WriteOpenSshPrivateKey("", &pem).ok());
  WriteFile(dir.path() / "id", pem.bytes, fs::perms(0600));  // the test's own client needs a file; Warden never does
  WriteFile(dir.path() / "id-cert.pub", cert->OpenSshLine() + "\n");
  WriteFile(dir.path() / "known_hosts", "[127.0.0.1]:" + std::to_string(lab.sshd->port()) + " " +
                                            lab.sshd->HostKeyLine() + "\n");
  CommandResult ssh = Run({"ssh", "-F", "/dev/null", "-i", (dir.path() / "id").string(), "-o",
                           "CertificateFile=" + (dir.path() / "id-cert.pub").string(), "-o", "IdentitiesOnly=yes",
                           "-o", "UserKnownHostsFile=" + (dir.path() / "known_hosts").string(), "-o",
                           "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
                           "-p", std::to_string(lab.sshd->port()), lab.sshd->user() + "@127.0.0.1",
                           "echo requested"});
  INFO(ssh.err);
  CHECK(ssh.status == 0);
  CHECK(ssh.out == "forced\n");
  CHECK(lab.sshd->WaitForLog("ID test-forced (serial " + std::to_string(cert->serial) + ")"));
}

TEST_CASE("a host that opts out of force-command says why, and the certificate carries none") {
  Lab lab;
  lab.config.hosts["target"].force_command = false;
  lab.config.hosts["target"].force_command_disabled_reason = "legacy wrapper needs the raw command";
  Result<RawOutput> r = lab.Call(Args("printf %s \"${SSH_ORIGINAL_COMMAND-unset}\""));
  REQUIRE(r.ok());
  CHECK(r->out.bytes == "unset");  // no forced command: sshd ran the request itself
  CHECK(r->metadata.at("force_command") == "disabled: legacy wrapper needs the raw command");
}

// Refusals by sshd: each case must fail, and sshd's log must say why.
TEST_CASE("certificates that sshd must refuse are refused, each for the reason sshd logs") {
  struct Case {
    const char* name;
    std::function<void(Lab&)> setup;
    std::chrono::system_clock::duration shift;  // clock offset at issuance
    const char* call_id;
    const char* log;
  };
  const std::vector<Case> cases = {
      {"expired", [](Lab&) {}, -std::chrono::hours(1), "call-expired", "Certificate invalid: expired"},
      {"not yet valid", [](Lab&) {}, std::chrono::hours(1), "call-future", "Certificate invalid: not yet valid"},
      {"wrong principal", [](Lab& l) { l.config.hosts["target"].principals = {"someone-else"}; }, {}, "call-principal",
       "Certificate does not contain an authorized principal"},
      {"source address mismatch", [](Lab& l) { l.config.source_addresses = {"10.9.9.9/32"}; }, {}, "call-source",
       "not from a permitted source address"},
      {"revoked by key id in a KRL",
       [](Lab& l) { REQUIRE(l.sshd->WriteKrl("id: " + l.KeyId("call-revoked") + "\n").ok()); }, {}, "call-revoked",
       "revoked by file"},
  };
  const CaKind kind = GENERATE(CaKind::kFile, CaKind::kToken);
  INFO(Name(kind));
  for (const Case& c : cases) {
    SECTION(c.name) {
      Lab lab(kind);
      c.setup(lab);
      ManualClock at(std::chrono::system_clock::now() + c.shift);
      Result<RawOutput> r = lab.Call(Args("echo must-not-run"), c.call_id, &at);
      REQUIRE_FALSE(r.ok());
      CHECK(r.status().code() == Code::kPermissionDenied);
      CHECK_THAT(r.status().message(), Catch::Contains("refused the certificate serial"));
      CHECK_THAT(r.status().message(), Catch::Contains(lab.KeyId(c.call_id)));
      INFO(lab.sshd->Log());
      CHECK(lab.sshd->WaitForLog(c.log));
      CHECK(lab.sshd->Log().find("Accepted") == std::string::npos);
    }
  }
}

TEST_CASE("a token session that broke between calls is reopened, and sshd accepts the certificate") {
  Lab lab(CaKind::kToken);
  REQUIRE(lab.Call(Args("echo first"), "call-first").ok());
  {
    // Another component of the process closes every session on the token.
    auto module = sshca::pkcs11::Module::Load(SoftHsm::ModulePath());
    REQUIRE(module.ok());
    std::lock_guard<std::mutex> lock(module.value()->mutex());
    auto uri = sshca::pkcs11::ParseUri(lab.hsm->Uri());
    REQUIRE(uri.ok());
    auto slot = sshca::pkcs11::FindSlot(*module.value(), uri.value(), nullptr);
    REQUIRE(slot.ok());
    REQUIRE(module.value()->fn()->C_CloseAllSessions(slot.value()) == CKR_OK);
  }
  Result<RawOutput> r = lab.Call(Args("echo second"), "call-second");
  INFO((r.ok() ? "" : r.status().ToString()));
  REQUIRE(r.ok());
  CHECK(r->out.bytes == "second\n");
  CHECK(dynamic_cast<const sshca::Pkcs11Signer&>(lab.ca->signer()).reopens() == 1);
  CHECK(lab.sshd->WaitForLog("ID " + lab.KeyId("call-second") + " (serial " + r->metadata.at("cert_serial") +
                             ") CA ED25519 " + lab.ca->Fingerprint()));
}

TEST_CASE("a CA token that cannot sign fails the call before it connects, naming the token and key") {
  Lab lab(CaKind::kToken);
  CommandResult del = lab.hsm->Tool({"pkcs11-tool", "--module", SoftHsm::ModulePath(), "--token-label",
                                     lab.hsm->label(), "--login", "--pin", lab.hsm->pin(), "--delete-object", "--type",
                                     "privkey", "--label", "ca"});
  INFO(del.out << del.err);
  REQUIRE(del.status == 0);
  Result<RawOutput> r = lab.Call(Args("echo must-not-run"), "call-no-key");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kNotFound);
  CHECK_THAT(r.status().message(), Catch::Contains("cannot issue the call's certificate"));
  CHECK_THAT(r.status().message(), Catch::Contains("no private key matches pkcs11:token=warden-ca;object=ca"));
  // The certificate is made before the connection is: sshd saw nothing.
  CHECK(lab.sshd->Log().find("Connection from") == std::string::npos);
}

TEST_CASE("a KRL revokes only the call it names") {
  Lab lab;
  REQUIRE(lab.sshd->WriteKrl("id: " + lab.KeyId("call-revoked") + "\n").ok());
  Result<RawOutput> other = lab.Call(Args("echo fine"), "call-other");
  REQUIRE(other.ok());
  CHECK(other->out.bytes == "fine\n");
}

TEST_CASE("unknown and changed host keys are refused before authenticating") {
  struct Case {
    const char* name;
    std::function<void(Lab&, const fs::path&)> setup;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"pinned fingerprint differs",
       [](Lab& l, const fs::path&) {
         l.config.hosts["target"].host_key_sha256 = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
       },
       "not the pinned"},
      {"known_hosts has no entry for the host",
       [](Lab& l, const fs::path& dir) {
         WriteFile(dir / "known_hosts", "[127.0.0.1]:1 " + l.sshd->HostKeyLine() + "\n");
         l.config.hosts["target"].host_key_sha256.clear();
         l.config.hosts["target"].known_hosts = (dir / "known_hosts").string();
       },
       "unknown host key"},
      {"known_hosts lists another key for the host",
       [](Lab& l, const fs::path& dir) {
         REQUIRE(Run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", (dir / "other").string()}).status == 0);
         std::string other = ReadFile(dir / "other.pub");
         WriteFile(dir / "known_hosts", "[127.0.0.1]:" + std::to_string(l.sshd->port()) + " " + other);
         l.config.hosts["target"].host_key_sha256.clear();
         l.config.hosts["target"].known_hosts = (dir / "known_hosts").string();
       },
       "differs from its entry"},
  };
  for (const Case& c : cases) {
    SECTION(c.name) {
      Lab lab;
      TempDir dir;
      c.setup(lab, dir.path());
      Result<RawOutput> r = lab.Call(Args("echo must-not-run"));
      REQUIRE_FALSE(r.ok());
      CHECK(r.status().code() == Code::kPermissionDenied);
      CHECK_THAT(r.status().message(), Catch::Contains(c.message));
      CHECK_THAT(r.status().message(), Catch::Contains("did not authenticate"));
      RequireNoAuthAttempt(*lab.sshd);
    }
  }
}

TEST_CASE("a known_hosts file with the host's key is accepted") {
  Lab lab;
  TempDir dir;
  WriteFile(dir.path() / "known_hosts",
            "[127.0.0.1]:" + std::to_string(lab.sshd->port()) + " " + lab.sshd->HostKeyLine() + "\n");
  lab.config.hosts["target"].host_key_sha256.clear();
  lab.config.hosts["target"].known_hosts = (dir.path() / "known_hosts").string();
  Result<RawOutput> r = lab.Call(Args("echo known"));
  INFO((r.ok() ? "" : r.status().ToString()));
  REQUIRE(r.ok());
  CHECK(r->out.bytes == "known\n");
}

TEST_CASE("a timeout stops the remote command and everything it started") {
  Lab lab;
  TempDir dir;
  const fs::path pids = dir.path() / "pids";
  // The marker durations name the processes; the call's timeout is 2 s.
  Result<RawOutput> r = lab.Call(
      Args("sleep 3001 & echo $! > " + pids.string() + ".child; echo $$ > " + pids.string() + "; exec sleep 3002", 2));
  REQUIRE(r.ok());
  CHECK(r->timed_out);
  CHECK_FALSE(r->completed());
  const std::string shell = WaitForFile(pids, 5s), child = WaitForFile(pids.string() + ".child", 5s);
  REQUIRE_FALSE(shell.empty());
  REQUIRE_FALSE(child.empty());
  CHECK(WaitGone(shell, "sleep 3002", 20s));
  CHECK(WaitGone(child, "sleep 3001", 20s));
  // Warden asked sshd to signal the command; sshd refuses that for a
  // forced-command session, which is why the certified `timeout` exists.
  CHECK(lab.sshd->WaitForLog("refusing to send signal KILL to forced-command session"));
}

TEST_CASE("cancellation ends the call at once, and the remote bound still stops the command") {
  Lab lab;
  TempDir dir;
  const fs::path pid_file = dir.path() / "pid";
  CancellationToken cancel;
  std::thread canceller([&] {
    WaitForFile(pid_file, 30s);
    cancel.Cancel("test");
  });
  Result<RawOutput> r = lab.Call(Args("echo $$ > " + pid_file.string() + "; exec sleep 3003", 4), "call-cancel",
                                 nullptr, &cancel);
  canceller.join();
  REQUIRE(r.ok());
  CHECK(r->cancelled);
  CHECK_FALSE(r->timed_out);
  const std::string pid = WaitForFile(pid_file, 1s);
  REQUIRE_FALSE(pid.empty());
  CHECK(WaitGone(pid, "sleep 3003", 20s));
}

TEST_CASE("a call cancelled before it starts never connects") {
  Lab lab;
  CancellationToken cancel;
  cancel.Cancel("test");
  Result<RawOutput> r = lab.Call(Args("echo no"), "call-1", nullptr, &cancel);
  REQUIRE(r.ok());
  CHECK(r->cancelled);
  std::this_thread::sleep_for(200ms);
  CHECK(lab.sshd->Log().find("Connection from") == std::string::npos);
}

TEST_CASE("10 MB of interleaved stdout and stderr is read to the end and capped, without deadlock") {
  Lab lab;
  json::object args = Args(
      "head -c 10000000 /dev/zero | tr '\\0' o & head -c 10000000 /dev/zero | tr '\\0' e >&2; wait", 120);
  args["max_output_bytes"] = 1 << 20;
  Result<RawOutput> r = lab.Call(args);
  REQUIRE(r.ok());
  CHECK(r->exit_status == 0);
  CHECK(r->out.total == 10000000);
  CHECK(r->err.total == 10000000);
  CHECK(r->out.bytes.size() == 1u << 20);
  CHECK(r->err.bytes.size() == 1u << 20);
  CHECK(r->out.bytes.find_first_not_of('o') == std::string::npos);
  CHECK(r->err.bytes.find_first_not_of('e') == std::string::npos);
  CHECK(r->out.capped());
}

TEST_CASE("progress is reported while a command runs") {
  Lab lab;
  std::atomic<int> calls{0};
  std::atomic<uint64_t> last{0};
  Result<RawOutput> r = lab.Call(Args("echo started; sleep 2.5; echo done"), "call-1", nullptr, nullptr,
                                 [&](uint64_t bytes, const std::string&) {
                                   ++calls;
                                   last = bytes;
                                 });
  REQUIRE(r.ok());
  CHECK(r->out.bytes == "started\ndone\n");
  CHECK(calls >= 1);
  CHECK(last >= 8);
}

TEST_CASE("a TTL of 60 minutes still gives a certificate of at most 15 minutes, which sshd accepts") {
  Lab lab;
  lab.config.cert_ttl_seconds = 3600;
  Result<RawOutput> r = lab.Call(Args("true"));
  REQUIRE(r.ok());
  CHECK(r->exit_status == 0);
  CHECK(std::stoll(r->metadata.at("valid_before")) - std::stoll(r->metadata.at("valid_after")) == 900);
  CHECK(lab.sshd->WaitForLog("Accepted publickey"));
}

TEST_CASE("dead hosts and refused ports give clear errors") {
  auto key = sshca::Ed25519Key::Generate();
  REQUIRE(key.ok());
  auto ca = std::make_shared<sshca::CertificateAuthority>(std::move(key.value()));
  SystemClock clock;
  SshConfig config;
  config.source_addresses = {"127.0.0.1/32"};
  config.connect_timeout_seconds = 2;
  SshHostConfig closed;
  closed.address = "127.0.0.1";
  // A port that was free a moment ago: nothing listens there.
  {
    TempDir unused;
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    closed.port = ntohs(a.sin_port);
    ::close(fd);
  }
  closed.user = "nobody";
  closed.principals = {"p"};
  closed.host_key_sha256 = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
  // A host that completes TCP but never speaks SSH: a listening socket that
  // nobody accepts on. Deterministic wherever the test runs, and on loopback:
  // tests never send traffic to an address that is not on this machine.
  int mute_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in mute_addr{};
  mute_addr.sin_family = AF_INET;
  mute_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t mute_len = sizeof mute_addr;
  REQUIRE(::bind(mute_fd, reinterpret_cast<sockaddr*>(&mute_addr), sizeof mute_addr) == 0);
  REQUIRE(::listen(mute_fd, 8) == 0);
  REQUIRE(::getsockname(mute_fd, reinterpret_cast<sockaddr*>(&mute_addr), &mute_len) == 0);
  SshHostConfig mute = closed;
  mute.port = ntohs(mute_addr.sin_port);
  config.hosts["closed"] = closed;
  config.hosts["mute"] = mute;
  SshTool tool(config, ca, clock);
  CancellationToken cancel;
  CallContext ctx;
  ctx.session_id = kSession;
  ctx.call_id = "call-dead";
  ctx.cancel = &cancel;

  Result<RawOutput> refused = tool.Run({{"host", "closed"}, {"command", "true"}}, ctx);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == Code::kUnavailable);
  CHECK_THAT(refused.status().message(), Catch::Contains("cannot connect to host \"closed\" (127.0.0.1:" +
                                                         std::to_string(closed.port) + ")"));
  CHECK_THAT(refused.status().message(), Catch::Contains("refused"));

  Result<RawOutput> mute_host = tool.Run({{"host", "mute"}, {"command", "true"}}, ctx);
  ::close(mute_fd);
  REQUIRE_FALSE(mute_host.ok());
  CHECK(mute_host.status().code() == Code::kUnavailable);
  CHECK(mute_host.status().message() == "cannot connect to host \"mute\" (127.0.0.1:" + std::to_string(mute.port) +
                                            "): no answer within 2 s (ssh.connect_timeout_seconds)");
}

TEST_CASE("no file holding key material is created: state dir, TMPDIR and ~/.ssh are unchanged by a call") {
  TempDir tmp("warden-ssh-tmpdir");
  const char* old_tmpdir = std::getenv("TMPDIR");
  const std::string saved = old_tmpdir ? old_tmpdir : "";
  ::setenv("TMPDIR", tmp.path().c_str(), 1);
  {
    TempDir state("warden-state");
    const std::string ca_path = (state.path() / "ca" / "ssh_ca").string();
    REQUIRE(sshca::CreateCaKeyFile(ca_path).ok());
    auto loaded = sshca::CertificateAuthority::LoadFile(ca_path);
    REQUIRE(loaded.ok());
    std::shared_ptr<sshca::CertificateAuthority> ca = std::move(loaded.value());
    auto sshd = Sshd::Start(*ca);
    REQUIRE(sshd.ok());
    SshConfig config;
    config.source_addresses = {"127.0.0.1/32"};
    config.hosts["target"] = sshd.value()->Host();
    SystemClock clock;
    SshTool tool(config, ca, clock);
    const char* home = std::getenv("HOME");
    const fs::path dot_ssh = fs::path(home ? home : "/nonexistent") / ".ssh";
    const auto before = std::make_tuple(Listing(state.path()), Listing(tmp.path()), Listing(dot_ssh));
    CancellationToken cancel;
    CallContext ctx;
    ctx.session_id = kSession;
    ctx.call_id = "call-files";
    ctx.cancel = &cancel;
    Result<RawOutput> r = tool.Run(Args("echo hi"), ctx);
    REQUIRE(r.ok());
    CHECK(r->out.bytes == "hi\n");
    CHECK(before == std::make_tuple(Listing(state.path()), Listing(tmp.path()), Listing(dot_ssh)));
    // The only private key on disk is the CA's, mode 0600.
    struct stat st {};
    REQUIRE(::stat(ca_path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
  }
  if (saved.empty())
    ::unsetenv("TMPDIR");
  else
    ::setenv("TMPDIR", saved.c_str(), 1);
}

TEST_CASE("arguments: only inventory hosts, a real command, bounded timeouts") {
  Lab lab;
  lab.config.max_timeout_seconds = 100;
  SshTool tool(lab.config, lab.ca, lab.clock);
  CHECK(tool.spec().name == "ssh_run");
  CHECK(tool.spec().input_schema.at("properties").at("host").at("enum") == json::array{"target"});
  CHECK_FALSE(tool.spec().annotations.read_only);
  CHECK(tool.spec().annotations.destructive);
  CHECK(tool.Target({{"host", "target"}, {"command", "true"}}) == "host:target");

  struct Case {
    const char* name;
    json::object args;
    Code code;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"an address instead of a host name", {{"host", "127.0.0.1"}, {"command", "true"}}, Code::kNotFound,
       "configured hosts: target"},
      {"an unknown name", {{"host", "db9"}, {"command", "true"}}, Code::kNotFound, "unknown host \"db9\""},
      {"a blank command", {{"host", "target"}, {"command", "  "}}, Code::kInvalidArgument, "blank"},
      {"an empty command", {{"host", "target"}, {"command", ""}}, Code::kInvalidArgument, "command"},
      {"a timeout above the maximum", {{"host", "target"}, {"command", "true"}, {"timeout_seconds", 101}},
       Code::kInvalidArgument, "timeout_seconds"},
      {"an unknown argument", {{"host", "target"}, {"command", "true"}, {"user", "root"}}, Code::kInvalidArgument,
       "user"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    CancellationToken cancel;
    CallContext ctx;
    ctx.session_id = kSession;
    ctx.call_id = "call-args";
    ctx.cancel = &cancel;
    Result<RawOutput> r = tool.Run(c.args, ctx);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == c.code);
    CHECK_THAT(r.status().message(), Catch::Contains(c.message));
  }
  std::this_thread::sleep_for(200ms);
  CHECK(lab.sshd->Log().find("Connection from") == std::string::npos);  // none of them reached the host
}

TEST_CASE("ShellQuote and CertifiedCommand keep the command one sh -c argument") {
  CHECK(ShellQuote("a b") == "'a b'");
  CHECK(ShellQuote("it's") == "'it'\\''s'");
  CHECK(ShellQuote("") == "''");
  CHECK(CertifiedCommand("echo 'x'; id", 30) == "timeout -s KILL 30 sh -c 'echo '\\''x'\\''; id'");
  // sh reads it back as exactly the original command.
  const std::string tricky = "printf '%s\\n' \"$HOME\" 'a'\"'\"'b' `echo x` $(echo y) \\; ; echo z";
  CommandResult direct = Run({"/bin/sh", "-c", tricky});
  CommandResult wrapped = Run({"/bin/sh", "-c", "sh -c " + ShellQuote(tricky)});
  CHECK(direct.out == wrapped.out);
  CHECK(direct.status == wrapped.status);
}

}  // namespace
}  // namespace warden::tools
