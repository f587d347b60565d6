// tools/sandbox.h against the real kernel: a confined child cannot open a
// socket, read a file outside its policy or execute another program, while
// the same commands unconfined can (the controls that make the refusals mean
// something). bash is the child: its /dev/tcp and /dev/udp redirections open
// sockets, and `<` opens files, without starting another program.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "tests/unit/temp_dir.h"
#include "tools/process.h"
#include "tools/sandbox.h"

namespace warden::tools {
namespace {

namespace fs = std::filesystem;

class Listener {
 public:
  Listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd_, 4) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~Listener() { ::close(fd_); }
  int port() const { return port_; }
  int Accepted() {
    int n = 0;
    for (int c; (c = ::accept(fd_, nullptr, nullptr)) >= 0; ++n) ::close(c);
    return n;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// Bash runs `script` in bash, confined by `c` when it is set.
RawOutput Bash(const std::string& script, std::shared_ptr<const Confinement> c) {
  ProcessSpec spec;
  spec.argv = {"/bin/bash", "-c", script};
  spec.env = {{"PATH", "/usr/bin:/bin"}, {"LC_ALL", "C"}};
  spec.confinement = std::move(c);
  CancellationToken cancel;
  Result<RawOutput> r = RunProcess(spec, cancel, {});
  REQUIRE(r.ok());
  return r.value();
}

// BashPolicy lets bash start (its binary, loader and libraries) and read `dir`.
std::shared_ptr<const Confinement> BashConfinement(const std::string& dir) {
  SandboxPolicy p;
  p.read = {dir, "/usr/lib", "/lib", "/etc/ld.so.cache"};
  p.execute = {"/bin/bash", "/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1"};
  p.write = {"/dev/null"};
  Result<std::shared_ptr<const Confinement>> c = Confinement::Make(p);
  REQUIRE(c.ok());
  return c.value();
}

TEST_CASE("sandbox: the kernel's support is probed and described", "[sandbox]") {
  const SandboxSupport& s = ProbeSandbox();
  CHECK(s.seccomp);
  CHECK_FALSE(s.Describe().empty());
  if (s.landlock_abi == 0) WARN("no Landlock on this kernel: " << s.landlock_error);
}

TEST_CASE("sandbox: a confined child opens no socket of any family", "[sandbox]") {
  testing::TempDir tmp("warden-sandbox");
  Listener tcp;
  const std::string connect = "echo hi > /dev/tcp/127.0.0.1/" + std::to_string(tcp.port());
  // Control: unconfined, the same line connects.
  RawOutput open = Bash(connect, nullptr);
  CHECK(open.exit_status == 0);
  CHECK(tcp.Accepted() == 1);

  auto c = BashConfinement(tmp.path().string());
  RawOutput shut = Bash(connect, c);
  CHECK(shut.exit_status != 0);
  CHECK(shut.err.bytes.find("Permission denied") != std::string::npos);
  CHECK(tcp.Accepted() == 0);
  // UDP and IPv6 go through socket(2) too.
  CHECK(Bash("echo hi > /dev/udp/127.0.0.1/" + std::to_string(tcp.port()), c).exit_status != 0);
  CHECK(Bash("echo hi > /dev/tcp/::1/" + std::to_string(tcp.port()), c).exit_status != 0);
  CHECK(tcp.Accepted() == 0);
}

TEST_CASE("sandbox: a confined child reads only its policy and executes only its list", "[sandbox]") {
  if (ProbeSandbox().landlock_abi == 0) {
    WARN("skipped: no Landlock on this kernel (" << ProbeSandbox().landlock_error << ")");
    return;
  }
  testing::TempDir inside("warden-sandbox-in");
  testing::TempDir outside("warden-sandbox-out");
  inside.Write("ok.txt", "inside-text\n");
  outside.Write("secret.txt", "outside-secret\n");
  const std::string read_outside = "read l < " + outside.path().string() + "/secret.txt; echo \"$l\"";
  const std::string exec_other = "/bin/true && echo ran";
  CHECK(Bash(read_outside, nullptr).out.bytes == "outside-secret\n");
  CHECK(Bash(exec_other, nullptr).out.bytes == "ran\n");

  auto c = BashConfinement(inside.path().string());
  CHECK(Bash("read l < " + inside.path().string() + "/ok.txt; echo \"$l\"", c).out.bytes == "inside-text\n");
  RawOutput r = Bash(read_outside, c);
  CHECK(r.out.bytes.find("outside-secret") == std::string::npos);
  CHECK(r.err.bytes.find("Permission denied") != std::string::npos);
  r = Bash(exec_other, c);
  CHECK(r.out.bytes.find("ran") == std::string::npos);
  CHECK(r.err.bytes.find("Permission denied") != std::string::npos);
  // Nothing may be written, even inside the readable directory.
  r = Bash("echo x > " + inside.path().string() + "/new.txt", c);
  CHECK(r.exit_status != 0);
  CHECK_FALSE(fs::exists(inside.path() / "new.txt"));
  // Warden's own memory and files are out of reach: /proc/<parent>/mem and environ.
  r = Bash("read -r l < /proc/" + std::to_string(::getpid()) + "/environ && echo leaked", c);
  CHECK(r.out.bytes.find("leaked") == std::string::npos);
}

TEST_CASE("sandbox: a path that does not exist is skipped, the child still starts", "[sandbox]") {
  SandboxPolicy p;
  p.read = {"/usr/lib", "/lib", "/etc/ld.so.cache", "/nonexistent/dir"};
  p.execute = {"/bin/bash", "/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1"};
  Result<std::shared_ptr<const Confinement>> c = Confinement::Make(p);
  REQUIRE(c.ok());
  CHECK(Bash("echo started", c.value()).out.bytes == "started\n");
}

TEST_CASE("sandbox: a program the policy does not let execute fails to start with a clear error", "[sandbox]") {
  if (ProbeSandbox().landlock_abi == 0) return;
  SandboxPolicy p;
  p.read = {"/usr/lib", "/lib"};
  Result<std::shared_ptr<const Confinement>> c = Confinement::Make(p);
  REQUIRE(c.ok());
  ProcessSpec spec;
  spec.argv = {"/bin/bash", "-c", "true"};
  spec.confinement = c.value();
  CancellationToken cancel;
  Result<RawOutput> r = RunProcess(spec, cancel, {});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message() == "cannot start bash: Permission denied");
}

}  // namespace
}  // namespace warden::tools
