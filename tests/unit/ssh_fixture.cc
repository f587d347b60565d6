// The sshd fixture: see ssh_fixture.h. Uses tools/process.h to run
// ssh-keygen, and posix_spawn for sshd itself (it must outlive the call).
#include "tests/unit/ssh_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/cancel.h"
#include "tools/process.h"

namespace warden::testing {
namespace {

using namespace std::chrono_literals;

// FreePort asks the kernel for an unused port on 127.0.0.1. Another process
// may take it before sshd binds; Start() then retries with a new one.
int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

}  // namespace

CommandResult Run(const std::vector<std::string>& argv, const std::map<std::string, std::string>& extra_env) {
  tools::ProcessSpec spec;
  spec.argv = argv;
  spec.env = {{"PATH", "/usr/sbin:/usr/bin:/bin"}, {"HOME", "/nonexistent"}, {"LC_ALL", "C"}, {"TZ", "UTC"}};
  for (const auto& [name, value] : extra_env) spec.env[name] = value;
  spec.timeout = 60s;
  CancellationToken cancel;
  Result<RawOutput> r = tools::RunProcess(spec, cancel, {});
  CommandResult out;
  if (!r.ok()) {
    out.err = r.status().ToString();
    return out;
  }
  out.status = r->exit_status.value_or(-1);
  out.out = std::move(r->out.bytes);
  out.err = std::move(r->err.bytes);
  return out;
}

void WriteFile(const fs::path& path, const std::string& text, fs::perms mode) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  fs::permissions(path, mode);
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string CurrentUser() {
  const passwd* pw = ::getpwuid(::geteuid());
  return pw ? pw->pw_name : "";
}

Result<std::unique_ptr<Sshd>> Sshd::Start(const sshca::CertificateAuthority& ca) {
  std::unique_ptr<Sshd> s(new Sshd());
  s->dir_ = std::make_unique<TempDir>("warden-sshd");
  s->user_ = CurrentUser();
  s->principal_ = "warden-" + s->user_;
  const fs::path& d = s->dir();
  if (::geteuid() == 0) fs::create_directories("/run/sshd");  // a root sshd's privilege separation directory
  CommandResult keygen = Run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", (d / "host_key").string()});
  if (keygen.status != 0) return Unavailable("ssh-keygen failed: " + keygen.err);
  CommandResult fp = Run({"ssh-keygen", "-l", "-E", "sha256", "-f", (d / "host_key.pub").string()});
  std::istringstream fields(fp.out);
  std::string bits;
  fields >> bits >> s->host_key_fingerprint_;
  s->host_key_line_ = ReadFile(d / "host_key.pub");
  while (!s->host_key_line_.empty() && std::isspace(static_cast<unsigned char>(s->host_key_line_.back())))
    s->host_key_line_.pop_back();
  fs::create_directories(d / "principals");
  WriteFile(d / "principals" / s->user_, s->principal_ + "\n");
  WriteFile(d / "user_ca.pub", ca.PublicKeyLine() + "\n");
  // A missing RevokedKeys file makes sshd refuse every key: start with an empty KRL.
  CommandResult krl = Run({"ssh-keygen", "-q", "-k", "-f", (d / "revoked.krl").string()});
  if (krl.status != 0) return Unavailable("ssh-keygen -k failed: " + krl.err);
  for (int attempt = 0; attempt < 5; ++attempt) {
    s->port_ = FreePort();
    Status st = s->Launch();
    if (st.ok()) return s;
    if (s->Log().find("Address already in use") == std::string::npos) return st;
  }
  return Unavailable("sshd could not bind a free port; log:\n" + s->Log());
}

Status Sshd::Launch() {
  const fs::path& d = dir();
  const std::string p = d.string();
  WriteFile(d / "sshd_config", "Port " + std::to_string(port_) +
                                   "\n"
                                   "ListenAddress 127.0.0.1\n"
                                   "HostKey " + p + "/host_key\n"
                                   "PidFile " + p + "/sshd.pid\n"
                                   "TrustedUserCAKeys " + p + "/user_ca.pub\n"
                                   "AuthorizedPrincipalsFile " + p + "/principals/%u\n"
                                   "AuthorizedKeysFile none\n"
                                   "RevokedKeys " + p + "/revoked.krl\n"
                                   "PubkeyAuthentication yes\n"
                                   "PasswordAuthentication no\n"
                                   "KbdInteractiveAuthentication no\n"
                                   "UsePAM no\n"
                                   "StrictModes no\n"
                                   "PermitRootLogin prohibit-password\n"
                                   "AllowTcpForwarding no\n"
                                   "X11Forwarding no\n"
                                   "PermitTTY no\n"
                                   "MaxStartups 100\n"
                                   "LogLevel VERBOSE\n");
  const std::string config = (d / "sshd_config").string();
  CommandResult check = Run({"/usr/sbin/sshd", "-t", "-f", config});
  if (check.status != 0) return Unavailable("sshd -t refused the config: " + check.err);
  ::truncate((d / "sshd.log").c_str(), 0);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, (d / "sshd.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  std::vector<std::string> args = {"/usr/sbin/sshd", "-D", "-e", "-f", config};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  char path_env[] = "PATH=/usr/sbin:/usr/bin:/bin";
  char* envp[] = {path_env, nullptr};
  int rc = ::posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), envp);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return Unavailable("cannot start /usr/sbin/sshd: " + std::string(std::strerror(rc)));

  const std::string ready = "listening on 127.0.0.1 port " + std::to_string(port_);
  for (auto end = std::chrono::steady_clock::now() + 20s; std::chrono::steady_clock::now() < end;) {
    if (Log().find(ready) != std::string::npos) return Status::Ok();
    int wstatus = 0;
    if (::waitpid(pid_, &wstatus, WNOHANG) == pid_) {
      pid_ = -1;
      return Unavailable("sshd exited at start; log:\n" + Log());
    }
    std::this_thread::sleep_for(20ms);
  }
  return Unavailable("sshd did not start listening within 20 s; log:\n" + Log());
}

Sshd::~Sshd() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    int wstatus = 0;
    for (int i = 0; i < 250 && ::waitpid(pid_, &wstatus, WNOHANG) == 0; ++i) std::this_thread::sleep_for(20ms);
    if (::waitpid(pid_, &wstatus, WNOHANG) == 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &wstatus, 0);
    }
  }
}

SshHostConfig Sshd::Host() const {
  SshHostConfig h;
  h.address = "127.0.0.1";
  h.port = port_;
  h.user = user_;
  h.principals = {principal_};
  h.host_key_sha256 = host_key_fingerprint_;
  return h;
}

std::string Sshd::Log() const { return ReadFile(dir() / "sshd.log"); }

bool Sshd::WaitForLog(const std::string& needle, std::chrono::seconds limit) const {
  for (auto end = std::chrono::steady_clock::now() + limit; std::chrono::steady_clock::now() < end;) {
    if (Log().find(needle) != std::string::npos) return true;
    std::this_thread::sleep_for(20ms);
  }
  return Log().find(needle) != std::string::npos;
}

Status Sshd::WriteKrl(const std::string& spec) {
  WriteFile(dir() / "krl.spec", spec);
  CommandResult r = Run({"ssh-keygen", "-q", "-k", "-f", (dir() / "revoked.krl.new").string(), "-s",
                         (dir() / "user_ca.pub").string(), (dir() / "krl.spec").string()});
  if (r.status != 0) return Unavailable("ssh-keygen -k failed: " + r.err);
  fs::rename(dir() / "revoked.krl.new", dir() / "revoked.krl");  // sshd reads it on each authentication
  return Status::Ok();
}

}  // namespace warden::testing
