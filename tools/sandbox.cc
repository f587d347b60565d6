#include "tools/sandbox.h"

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>

namespace warden::tools {
namespace {

// Landlock's ABI, written out here because Debian 12's <linux/landlock.h>
// (kernel 6.1 headers) stops at ABI 2, while the kernels Warden meets go
// further. Values from the kernel's include/uapi/linux/landlock.h.
constexpr uint64_t kFsExecute = 1ull << 0;
constexpr uint64_t kFsWriteFile = 1ull << 1;
constexpr uint64_t kFsReadFile = 1ull << 2;
constexpr uint64_t kFsReadDir = 1ull << 3;
constexpr uint64_t kFsAbi1 = (1ull << 13) - 1;  // EXECUTE .. MAKE_SYM
constexpr uint64_t kFsRefer = 1ull << 13;       // ABI 2
constexpr uint64_t kFsTruncate = 1ull << 14;    // ABI 3
constexpr uint64_t kFsIoctlDev = 1ull << 15;    // ABI 5
constexpr uint64_t kFileRights = kFsExecute | kFsWriteFile | kFsReadFile | kFsTruncate | kFsIoctlDev;
constexpr uint64_t kNetBindTcp = 1ull << 0;     // ABI 4
constexpr uint64_t kNetConnectTcp = 1ull << 1;  // ABI 4
constexpr uint64_t kScopeAbstractUnix = 1ull << 0;  // ABI 6
constexpr uint64_t kScopeSignal = 1ull << 1;        // ABI 6
constexpr unsigned kCreateRulesetVersion = 1u << 0;
constexpr int kRulePathBeneath = 1;

struct RulesetAttr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;  // ABI 4
  uint64_t scoped;              // ABI 6
};

struct __attribute__((packed)) PathBeneathAttr {
  uint64_t allowed_access;
  int32_t parent_fd;
};

long LandlockCreateRuleset(const RulesetAttr* attr, size_t size, unsigned flags) {
  return ::syscall(__NR_landlock_create_ruleset, attr, size, flags);
}
long LandlockAddRule(int ruleset, const PathBeneathAttr* attr) {
  return ::syscall(__NR_landlock_add_rule, ruleset, kRulePathBeneath, attr, 0);
}

uint64_t HandledFs(int abi) {
  uint64_t fs = kFsAbi1;
  if (abi >= 2) fs |= kFsRefer;
  if (abi >= 3) fs |= kFsTruncate;
  if (abi >= 5) fs |= kFsIoctlDev;
  return fs;
}

// The seccomp filter: every socket(2) fails, so no connection of any family
// can be made; io_uring (which can open and connect sockets on its own since
// 5.19), ptrace, cross-process memory access and fd theft fail too.
#if defined(__x86_64__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
#else
#error "tools/sandbox.cc: add this architecture's AUDIT_ARCH"
#endif

#define WARDEN_DENY(nr, err)                                   \
  BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1),             \
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((err) & SECCOMP_RET_DATA))

const sock_filter kFilter[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES),  // i386 via int 0x80: socketcall
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
#if defined(__x86_64__)
    BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1),  // __X32_SYSCALL_BIT
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES),
#endif
    WARDEN_DENY(__NR_socket, EACCES),
    WARDEN_DENY(__NR_io_uring_setup, ENOSYS),
    WARDEN_DENY(__NR_ptrace, EPERM),
    WARDEN_DENY(__NR_process_vm_readv, EPERM),
    WARDEN_DENY(__NR_process_vm_writev, EPERM),
    WARDEN_DENY(__NR_pidfd_getfd, EPERM),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
};
#undef WARDEN_DENY

const sock_fprog kProgram = {static_cast<unsigned short>(sizeof(kFilter) / sizeof(kFilter[0])),
                             const_cast<sock_filter*>(kFilter)};

SandboxSupport Probe() {
  SandboxSupport s;
  long abi = LandlockCreateRuleset(nullptr, 0, kCreateRulesetVersion);
  if (abi > 0) {
    s.landlock_abi = static_cast<int>(abi);
  } else {
    s.landlock_error = errno == EOPNOTSUPP ? "Landlock is built in but not enabled at boot (lsm=)"
                       : errno == ENOSYS   ? "this kernel has no Landlock (5.13 or later needed)"
                                           : std::strerror(errno);
  }
  // seccomp(2) mode filter exists when prctl reports the current mode (0) without error.
  s.seccomp = ::prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0;
  return s;
}

}  // namespace

std::string SandboxSupport::Describe() const {
  std::string out = landlock_abi > 0 ? "Landlock ABI " + std::to_string(landlock_abi) + " (files"
                                           + std::string(landlock_abi >= 4 ? ", TCP" : "") +
                                           std::string(landlock_abi >= 6 ? ", scoped signals and unix sockets" : "") +
                                           ")"
                                     : "no Landlock (" + landlock_error + ")";
  out += seccomp ? "; seccomp network filter" : "; no seccomp";
  return out;
}

const SandboxSupport& ProbeSandbox() {
  static const SandboxSupport kSupport = Probe();
  return kSupport;
}

Confinement::~Confinement() {
  if (ruleset_fd_ >= 0) ::close(ruleset_fd_);
}

Result<std::shared_ptr<const Confinement>> Confinement::Make(const SandboxPolicy& policy) {
  const SandboxSupport& support = ProbeSandbox();
  if (!support.seccomp) return Unavailable("this kernel has no seccomp filter; Warden cannot confine the child");
  std::shared_ptr<Confinement> c(new Confinement());
  if (support.landlock_abi == 0) return std::shared_ptr<const Confinement>(std::move(c));

  const int abi = support.landlock_abi;
  RulesetAttr attr{HandledFs(abi), 0, 0};
  size_t size = sizeof(uint64_t);
  if (abi >= 4) {
    attr.handled_access_net = kNetBindTcp | kNetConnectTcp;  // no rule grants either
    size = 2 * sizeof(uint64_t);
  }
  if (abi >= 6) {
    attr.scoped = kScopeAbstractUnix | kScopeSignal;
    size = sizeof(RulesetAttr);
  }
  long fd = LandlockCreateRuleset(&attr, size, 0);
  if (fd < 0) return Unavailable(std::string("cannot create a Landlock ruleset: ") + std::strerror(errno));
  c->ruleset_fd_ = static_cast<int>(fd);

  auto add = [&](const std::string& path, uint64_t rights) -> Status {
    int pfd = ::open(path.c_str(), O_PATH | O_CLOEXEC);
    if (pfd < 0) {
      if (errno == ENOENT || errno == ENOTDIR) return Status::Ok();
      return Unavailable("cannot confine the child: " + path + ": " + std::strerror(errno));
    }
    struct stat st {};
    if (::fstat(pfd, &st) == 0 && !S_ISDIR(st.st_mode)) rights &= kFileRights;
    PathBeneathAttr rule{rights & attr.handled_access_fs, pfd};
    long rc = LandlockAddRule(c->ruleset_fd_, &rule);
    int e = errno;
    ::close(pfd);
    if (rc != 0) return Unavailable("cannot confine the child: Landlock rule for " + path + ": " + std::strerror(e));
    return Status::Ok();
  };
  for (const std::string& p : policy.read)
    if (Status s = add(p, kFsReadFile | kFsReadDir); !s.ok()) return s;
  for (const std::string& p : policy.execute)
    if (Status s = add(p, kFsExecute | kFsReadFile); !s.ok()) return s;
  for (const std::string& p : policy.write)
    if (Status s = add(p, kFsReadFile | kFsWriteFile | kFsTruncate); !s.ok()) return s;
  return std::shared_ptr<const Confinement>(std::move(c));
}

namespace {

// ChildPlan is everything the child needs, prepared by the parent. The child
// shares the parent's memory (CLONE_VM) until it executes, so it only reads
// the plan and writes `error`.
struct ChildPlan {
  const char* program;
  char* const* argv;
  char* const* envp;
  const char* cwd;  // null: stay
  int in, out, err;
  int ruleset_fd;
  std::atomic<int> error{0};
};

// MoveTo makes `from` the descriptor `to`, inherited across execve.
int MoveTo(int from, int to) {
  if (from == to) return ::fcntl(to, F_SETFD, 0) == 0 ? 0 : errno;
  return ::dup3(from, to, 0) >= 0 ? 0 : errno;
}

// Setup is the child's work before execve: system calls only (no
// allocation, no locks), as in posix_spawn's child, because it runs on a
// small stack of its own in the parent's address space while the parent
// thread waits (CLONE_VFORK). Order matters: the confinement comes after
// chdir (Landlock does not govern chdir, but the cwd must be set while the
// whole file system is visible) and before descriptors are closed (the
// ruleset is one of them).
int Setup(const ChildPlan& p) {
  // Ignored signals stay ignored across execve; handled ones are reset by it.
  // Every one goes back to its default here (glibc refuses its two internal
  // signals, which execve resets anyway).
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig)
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);
  if (::setpgid(0, 0) != 0) return errno;
  if (int e = MoveTo(p.in, 0)) return e;
  if (int e = MoveTo(p.out, 1)) return e;
  if (int e = MoveTo(p.err, 2)) return e;
  if (p.cwd != nullptr && ::chdir(p.cwd) != 0) return errno;
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  if (p.ruleset_fd >= 0 && ::syscall(__NR_landlock_restrict_self, p.ruleset_fd, 0) != 0) return errno;
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &kProgram) != 0) return errno;
  if (::syscall(SYS_close_range, 3u, ~0u, 0u) != 0) {
    if (errno != ENOSYS) return errno;
    for (int fd = 3; fd < 4096; ++fd) ::close(fd);  // kernels before 5.9
  }
  sigset_t none;
  sigemptyset(&none);
  if (::sigprocmask(SIG_SETMASK, &none, nullptr) != 0) return errno;
  return 0;
}

int ChildMain(void* arg) {
  auto* p = static_cast<ChildPlan*>(arg);
  int e = Setup(*p);
  if (e == 0) {
    ::execve(p->program, p->argv, p->envp);
    e = errno;
  }
  p->error.store(e == 0 ? EINVAL : e, std::memory_order_relaxed);
  ::_exit(127);
}

}  // namespace

int SpawnConfined(const std::string& program, char* const argv[], char* const envp[], const std::string& cwd,
                  int in, int out, int err, const Confinement& c, pid_t* pid) {
  ChildPlan plan;
  plan.program = program.c_str();
  plan.argv = argv;
  plan.envp = envp;
  plan.cwd = cwd.empty() ? nullptr : cwd.c_str();
  plan.in = in;
  plan.out = out;
  plan.err = err;
  plan.ruleset_fd = c.ruleset_fd();

  constexpr size_t kStack = 64 * 1024;
  void* stack = ::mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return errno;
  // Every signal is blocked around clone, so no handler of Warden's can run
  // in the child on its borrowed stack before it has reset the dispositions.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t child = ::clone(ChildMain, static_cast<char*>(stack) + kStack, CLONE_VM | CLONE_VFORK | SIGCHLD, &plan);
  int clone_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::munmap(stack, kStack);
  if (child < 0) return clone_errno;
  if (int e = plan.error.load(std::memory_order_relaxed); e != 0) {
    int status;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    return e;
  }
  *pid = child;
  return 0;
}

}  // namespace warden::tools
