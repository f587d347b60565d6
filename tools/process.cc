#include "tools/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <utility>

#include "core/clock.h"

namespace warden::tools {
namespace {

using SteadyTime = std::chrono::steady_clock::time_point;
using std::chrono::milliseconds;

constexpr milliseconds kKillGrace{500};  // between SIGTERM and SIGKILL
constexpr milliseconds kProgressEvery{1000};
constexpr milliseconds kExitPollTick{50};  // only when pidfd_open() is unavailable
constexpr size_t kReadChunk = 64 * 1024;   // one pipe buffer
constexpr int kFinalDrainReads = 64;       // bound on reads after SIGKILL (a writer may have escaped the group)
constexpr const char* kDefaultPath = "/usr/bin:/bin";

// Fd owns one file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// ProgramName is argv[0] without its directory, for messages and logs.
std::string ProgramName(const std::string& argv0) {
  size_t slash = argv0.rfind('/');
  return slash == std::string::npos ? argv0 : argv0.substr(slash + 1);
}

// StartError turns an errno from starting the child into the caller-facing Status.
Status StartError(const std::string& name, int err, const std::string& detail = "") {
  std::string message = "cannot start " + name + ": " + detail + std::strerror(err);
  return err == ENOENT ? NotFound(std::move(message)) : Unavailable(std::move(message));
}

bool HasNul(const std::string& s) { return s.find('\0') != std::string::npos; }

// CheckSpec refuses what cannot be passed to execve faithfully: a NUL would
// silently cut an argument, and '=' in a name would change another variable.
Status CheckSpec(const ProcessSpec& spec, const std::string& name) {
  for (const auto& arg : spec.argv)
    if (HasNul(arg)) return InvalidArgument("cannot start " + name + ": an argument contains a NUL byte");
  for (const auto& [key, value] : spec.env)
    if (key.empty() || key.find('=') != std::string::npos || HasNul(key) || HasNul(value))
      return InvalidArgument("cannot start " + name + ": malformed environment variable name or value");
  if (HasNul(spec.cwd)) return InvalidArgument("cannot start " + name + ": the working directory contains a NUL byte");
  if (spec.cwd.empty()) return Status::Ok();
  // Checked here because posix_spawn reports a failed chdir with the same
  // errno as a missing program, which would make the message misleading.
  struct stat st {};
  if (::stat(spec.cwd.c_str(), &st) != 0) return StartError(name, errno, "working directory " + spec.cwd + ": ");
  if (!S_ISDIR(st.st_mode)) return StartError(name, ENOTDIR, "working directory " + spec.cwd + ": ");
  return Status::Ok();
}

// ResolveProgram finds the file to execute. A bare name is looked up in the
// child's PATH, not Warden's, because the child's environment is the whole
// truth; relative PATH entries are skipped since they would resolve against
// cwd, which is usually the (untrusted) target directory.
Result<std::string> ResolveProgram(const ProcessSpec& spec, const std::string& name) {
  const std::string& argv0 = spec.argv[0];
  if (argv0.find('/') != std::string::npos) return argv0;
  auto it = spec.env.find("PATH");
  std::string path = it == spec.env.end() ? kDefaultPath : it->second;
  size_t begin = 0;
  while (begin <= path.size()) {
    size_t end = std::min(path.find(':', begin), path.size());
    std::string dir = path.substr(begin, end - begin);
    begin = end + 1;
    if (dir.empty() || dir[0] != '/') continue;
    std::string candidate = dir + "/" + argv0;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  return StartError(name, ENOENT);
}

// CPointers gives execve-style arrays that borrow from `strings`.
std::vector<char*> CPointers(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

std::vector<std::string> EnvStrings(const std::map<std::string, std::string>& env) {
  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& [key, value] : env) out.push_back(key + "=" + value);
  return out;
}

// SpawnSetup owns the posix_spawn attribute objects for one start.
class SpawnSetup {
 public:
  SpawnSetup() {
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawnattr_init(&attr);
  }
  ~SpawnSetup() {
    ::posix_spawn_file_actions_destroy(&actions);
    ::posix_spawnattr_destroy(&attr);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;

  // Configure returns 0 or an errno. The child gets stdin/stdout/stderr, then
  // every other descriptor is closed (belt and braces: Warden opens its own
  // descriptors with O_CLOEXEC, but a library might not). Signal dispositions
  // and the mask are reset because ignored signals and blocked masks survive
  // execve, and a child that ignores SIGPIPE or SIGTERM misbehaves.
  int Configure(const std::string& cwd, int in, int out, int err) {
    int rc = 0;
    if (!rc) rc = ::posix_spawn_file_actions_adddup2(&actions, in, 0);
    if (!rc) rc = ::posix_spawn_file_actions_adddup2(&actions, out, 1);
    if (!rc) rc = ::posix_spawn_file_actions_adddup2(&actions, err, 2);
    if (!rc && !cwd.empty()) rc = ::posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
    if (!rc) rc = ::posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    if (!rc) rc = ::posix_spawnattr_setsigmask(&attr, &none);
    if (!rc) rc = ::posix_spawnattr_setsigdefault(&attr, &all);
    if (!rc) rc = ::posix_spawnattr_setpgroup(&attr, 0);  // own group, pgid == pid, set before exec
    if (!rc)
      rc = ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    return rc;
  }

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
};

struct Child {
  pid_t pid = -1;
  Fd out;  // read ends, non-blocking
  Fd err;
};

// MakePipe returns 0 or an errno. O_CLOEXEC so that a concurrent start on
// another thread never hands our pipe ends to its child.
int MakePipe(Fd* read_end, Fd* write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return errno;
  *read_end = Fd(fds[0]);
  *write_end = Fd(fds[1]);
  return ::fcntl(fds[0], F_SETFL, O_NONBLOCK) == 0 ? 0 : errno;
}

Result<Child> Spawn(const ProcessSpec& spec, const std::string& program, const std::string& name) {
  Child child;
  Fd out_w, err_w;
  if (int e = MakePipe(&child.out, &out_w)) return StartError(name, e);
  if (int e = MakePipe(&child.err, &err_w)) return StartError(name, e);
  Fd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!devnull.valid()) return StartError(name, errno);
  SpawnSetup setup;
  if (int e = setup.Configure(spec.cwd, devnull.get(), out_w.get(), err_w.get())) return StartError(name, e);
  std::vector<std::string> env = EnvStrings(spec.env);
  std::vector<char*> argv = CPointers(spec.argv);
  std::vector<char*> envp = CPointers(env);
  if (spec.confinement) {
    // Same settings as below, plus the confinement, applied between clone and execve.
    if (int e = SpawnConfined(program, argv.data(), envp.data(), spec.cwd, devnull.get(), out_w.get(), err_w.get(),
                              *spec.confinement, &child.pid))
      return StartError(name, e);
    return child;
  }
  // glibc's posix_spawn reports exec failures (ENOENT, EACCES, ENOEXEC) here and reaps the failed child.
  if (int e = ::posix_spawn(&child.pid, program.c_str(), &setup.actions, &setup.attr, argv.data(), envp.data()))
    return StartError(name, e);
  return child;  // the write ends close here, so EOF arrives when the child's side is gone
}

// PidFd returns a descriptor that becomes readable when `pid` exits, or -1
// (kernel before 5.3). Through syscall(): glibc 2.36's <sys/pidfd.h> lacks
// extern "C", so its wrapper cannot be linked from C++.
int PidFd(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

std::string SignalName(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev ? abbrev : std::to_string(sig);
}

// Supervisor watches one started child: it reads both pipes, watches the
// cancellation token, the deadline and the child's exit, and stops the
// process group when needed. Its destructor guarantees the child is reaped
// even if something throws.
class Supervisor {
 public:
  Supervisor(Child child, const ProcessSpec& spec, const std::string& name, const CancellationToken& cancel,
             const ProgressFn& progress, RawOutput* result)
      : pid_(child.pid),
        pidfd_(PidFd(child.pid)),  // -1 on old kernels: then poll with a short tick
        streams_{Stream{std::move(child.out), &result->out}, Stream{std::move(child.err), &result->err}},
        cap_(spec.max_capture_bytes),
        name_(name),
        cancel_(cancel),
        progress_(progress),
        result_(result),
        next_progress_(Clock::Steady() + kProgressEvery),
        buffer_(kReadChunk) {}
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  ~Supervisor() { KillGroupAndReap(); }

  // Run supervises until the child is reaped and its output collected.
  void Run(SteadyTime deadline) {
    while (true) {
      PumpOnce(NextWake(deadline), {.leader = true, .cancel = true});
      ReportProgress();
      if (LeaderExited()) return Finish(deadline);
      if (cancel_.cancelled()) return Stop(/*timed_out=*/false);
      if (Clock::Steady() >= deadline) return Stop(/*timed_out=*/true);
    }
  }

 private:
  struct Stream {
    Fd fd;
    CapturedStream* sink;
  };

  SteadyTime NextWake(SteadyTime deadline) const { return progress_ ? std::min(deadline, next_progress_) : deadline; }

  struct Watch {
    bool leader = false;  // wake when the child exits
    bool cancel = false;  // wake on cancellation (never after it: the eventfd stays readable and would spin)
  };

  // PumpOnce waits until a pipe or a watched event is ready, or `until`, then
  // reads what is ready. The caller re-checks its own conditions afterwards,
  // so EINTR and timeouts need no handling.
  void PumpOnce(SteadyTime until, Watch watch) {
    std::array<pollfd, 4> fds{};
    std::array<Stream*, 2> polled{};
    nfds_t n = 0;
    for (Stream& s : streams_)
      if (s.fd.valid()) {
        polled[n] = &s;
        fds[n++] = {s.fd.get(), POLLIN, 0};
      }
    const nfds_t stream_count = n;
    if (watch.cancel && cancel_.wake_fd() >= 0) fds[n++] = {cancel_.wake_fd(), POLLIN, 0};
    if (watch.leader && pidfd_.valid()) fds[n++] = {pidfd_.get(), POLLIN, 0};
    milliseconds wait = std::chrono::ceil<milliseconds>(until - Clock::Steady());
    wait = std::clamp(wait, milliseconds(0), milliseconds(INT_MAX));
    if (watch.leader && !pidfd_.valid()) wait = std::min(wait, kExitPollTick);
    if (::poll(fds.data(), n, static_cast<int>(wait.count())) <= 0) return;
    for (nfds_t i = 0; i < stream_count; ++i)
      if (fds[i].revents != 0) ReadSome(*polled[i]);
  }

  // ReadSome reads one chunk; returns true if bytes arrived. EOF or a read
  // error closes the stream: nothing more can come from it.
  bool ReadSome(Stream& s) {
    ssize_t n = ::read(s.fd.get(), buffer_.data(), buffer_.size());
    if (n > 0) {
      Keep(s.sink, static_cast<size_t>(n));
      return true;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return false;
    s.fd.Reset();
    return false;
  }

  // Keep counts every byte but stores only up to the cap; the rest is dropped
  // so that a chatty child can neither block on a full pipe nor fill memory.
  void Keep(CapturedStream* sink, size_t n) {
    sink->total += n;
    uint64_t room = cap_ > sink->bytes.size() ? cap_ - sink->bytes.size() : 0;
    sink->bytes.append(buffer_.data(), static_cast<size_t>(std::min<uint64_t>(room, n)));
  }

  bool StreamsOpen() const { return streams_[0].fd.valid() || streams_[1].fd.valid(); }

  // LeaderExited peeks without reaping (WNOWAIT): while the child is an
  // unreaped zombie its pid, and so its process group id, cannot be reused,
  // which keeps kill(-pid_) aimed at our group only. If someone else reaped
  // it (ECHILD: a bug elsewhere in the server) the pid may already belong to
  // another process, so it is marked reaped and never signalled again.
  bool LeaderExited() {
    siginfo_t info{};
    int rc;
    do rc = ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT);
    while (rc < 0 && errno == EINTR);
    if (rc == 0) return info.si_pid == pid_;
    spdlog::warn("process: {} (pid {}) was reaped elsewhere: {}", name_, pid_, std::strerror(errno));
    reaped_ = true;
    return true;
  }

  // KillGroupAndReap ends whatever is left in the group, then collects the exit status.
  void KillGroupAndReap() {
    if (reaped_) return;
    ::kill(-pid_, SIGKILL);
    Reap();
  }

  // Finish handles a child that ended by itself: processes it left in its
  // group are killed (they would otherwise run unsupervised or hold our pipes
  // open), then the pipes are read to their end.
  void Finish(SteadyTime deadline) {
    KillGroupAndReap();
    while (StreamsOpen() && !cancel_.cancelled() && Clock::Steady() < deadline) {
      PumpOnce(NextWake(deadline), {.cancel = true});
      ReportProgress();
    }
  }

  // Stop ends a child that ran out of time or was cancelled: SIGTERM to the
  // group, a short grace while still reading (a child blocked on a full pipe
  // could not act on SIGTERM), then SIGKILL to the group, which is still ours
  // because the leader is not reaped yet.
  void Stop(bool timed_out) {
    result_->timed_out = timed_out;
    result_->cancelled = !timed_out;
    spdlog::debug("process: stopping {} (pid {}): {}", name_, pid_, timed_out ? "timeout" : "cancelled");
    ::kill(-pid_, SIGTERM);
    const SteadyTime grace_end = Clock::Steady() + kKillGrace;
    while (!LeaderExited() && Clock::Steady() < grace_end) PumpOnce(grace_end, {.leader = true});
    KillGroupAndReap();
    for (Stream& s : streams_)
      for (int i = 0; i < kFinalDrainReads && s.fd.valid() && ReadSome(s); ++i) {
      }
    result_->exit_status.reset();
    if (!result_->exit_signal) result_->exit_signal = "TERM";  // it exited on its own after our SIGTERM
  }

  void Reap() {
    int status = 0;
    pid_t rc;
    do rc = ::waitpid(pid_, &status, 0);
    while (rc < 0 && errno == EINTR);
    reaped_ = true;
    if (rc != pid_) {
      spdlog::warn("process: cannot reap {} (pid {}): {}", name_, pid_, std::strerror(errno));
      return;
    }
    if (WIFEXITED(status)) result_->exit_status = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) result_->exit_signal = SignalName(WTERMSIG(status));
  }

  void ReportProgress() {
    if (!progress_) return;
    SteadyTime now = Clock::Steady();
    if (now < next_progress_) return;
    next_progress_ = now + kProgressEvery;
    uint64_t bytes = result_->out.total + result_->err.total;
    progress_(bytes, name_ + ": running, " + std::to_string(bytes) + " bytes received");
  }

  const pid_t pid_;
  Fd pidfd_;
  std::array<Stream, 2> streams_;
  const uint64_t cap_;
  const std::string& name_;
  const CancellationToken& cancel_;
  const ProgressFn& progress_;
  RawOutput* result_;
  SteadyTime next_progress_;
  std::vector<char> buffer_;
  bool reaped_ = false;
};

}  // namespace

Result<RawOutput> RunProcess(const ProcessSpec& spec, const CancellationToken& cancel, const ProgressFn& progress) {
  if (spec.argv.empty()) return InvalidArgument("cannot start a process: argv is empty");
  const std::string name = ProgramName(spec.argv[0]);
  if (Status s = CheckSpec(spec, name); !s.ok()) return s;
  RawOutput result;
  if (cancel.cancelled()) {
    result.cancelled = true;
    return result;
  }
  Result<std::string> program = ResolveProgram(spec, name);
  if (!program.ok()) return program.status();

  const SteadyTime start = Clock::Steady();
  Result<Child> child = Spawn(spec, program.value(), name);
  if (!child.ok()) return child.status();
  spdlog::debug("process: started {} (pid {})", name, child->pid);
  {
    Supervisor supervisor(std::move(child).value(), spec, name, cancel, progress, &result);
    supervisor.Run(start + spec.timeout);
  }
  result.duration = std::chrono::duration_cast<milliseconds>(Clock::Steady() - start);
  return result;
}

}  // namespace warden::tools
