// tools/sandbox.h: confines a child process before it executes (Linux).
//
// What a confined child gets, whatever its argv, environment or the files it
// reads tell it to do:
//  - Files (Landlock, kernel 5.13+, no privileges needed): it may read only
//    beneath SandboxPolicy::read, execute only SandboxPolicy::execute and
//    write only SandboxPolicy::write. Any other open fails with EACCES, be it
//    a config include, an alternates file, a symlink or a hook script. Landlock
//    also keeps it from ptracing or signalling processes outside its domain.
//  - Network (seccomp, kernel 3.5+): socket(2) fails with EACCES for every
//    address family, so no TCP, UDP or unix-socket connection can be made;
//    io_uring cannot be set up (it can open sockets without socket(2));
//    ptrace, process_vm_readv/writev and pidfd_getfd fail; system calls of a
//    foreign ABI (i386 int 0x80, where socketcall lives; x32) fail. With
//    Landlock ABI 4+ TCP bind/connect are refused by Landlock too, and with
//    ABI 6+ abstract unix sockets and signals are scoped to the domain.
//  - no_new_privs, which both need: a setuid program gains nothing.
//
// Where the kernel has no Landlock (or it is not in the LSM list), the
// network filter still applies and SandboxSupport says what is missing; the
// caller decides whether that is acceptable (git: it is, with a warning,
// because git's own hardening stays in force; see docs/git-hardening.md).
//
// Prepare confinement in the parent (it allocates, opens paths and can fail
// with a clear Status); SpawnConfined applies it in the child between clone
// and execve with system calls only.
//
// Thread safety: a Confinement is immutable once made and may be used by
// many spawns at once.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "core/result.h"

namespace warden::tools {

struct SandboxPolicy {
  std::vector<std::string> read;     // directories (everything beneath) or files, read-only
  std::vector<std::string> execute;  // files that may be executed (and read)
  std::vector<std::string> write;    // files that may also be written (e.g. /dev/null)
};

// SandboxSupport is what this kernel offers. Probed once per process.
struct SandboxSupport {
  int landlock_abi = 0;   // 0: no Landlock (kernel too old, or not enabled at boot)
  std::string landlock_error;  // why, when landlock_abi == 0
  bool seccomp = false;
  std::string Describe() const;  // one line for logs and check-config
};
const SandboxSupport& ProbeSandbox();

class Confinement {
 public:
  // Make opens every path of `policy` and builds the Landlock ruleset (when
  // the kernel has Landlock) and the seccomp filter. A path that does not
  // exist is skipped (a library directory absent on this system); one that
  // cannot be opened for another reason is an error.
  static Result<std::shared_ptr<const Confinement>> Make(const SandboxPolicy& policy);
  ~Confinement();
  Confinement(const Confinement&) = delete;
  Confinement& operator=(const Confinement&) = delete;

  bool has_landlock() const { return ruleset_fd_ >= 0; }
  int ruleset_fd() const { return ruleset_fd_; }  // for SpawnConfined

 private:
  Confinement() = default;
  int ruleset_fd_ = -1;  // Landlock ruleset, or -1
};

// SpawnConfined starts `program` like posix_spawn with the settings
// tools/process.cc uses (stdin/stdout/stderr from in/out/err, every other
// descriptor closed, signal mask cleared and dispositions reset, its own
// process group, `cwd`), confined by `c` before execve. Returns 0 and sets
// *pid, or returns the errno that kept the child from executing (a child
// that failed before execve has been reaped).
int SpawnConfined(const std::string& program, char* const argv[], char* const envp[], const std::string& cwd,
                  int in, int out, int err, const Confinement& c, pid_t* pid);

}  // namespace warden::tools
