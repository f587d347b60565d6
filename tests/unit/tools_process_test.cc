// Tests for tools/process.h with real child processes (sh, env, sleep, head).
// No timing assertions: waits are bounded only to fail instead of hanging.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <set>
#include <sstream>
#include <thread>

#include "tools/process.h"

namespace warden::tools {
namespace {

using namespace std::chrono_literals;

ProcessSpec Shell(const std::string& script) {
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c", script};
  spec.env = {{"PATH", "/usr/bin:/bin"}};
  return spec;
}

RawOutput RunOk(const ProcessSpec& spec, const CancellationToken& cancel, const ProgressFn& progress = {}) {
  Result<RawOutput> r = RunProcess(spec, cancel, progress);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return std::move(r).value();
}

RawOutput RunOk(const ProcessSpec& spec) {
  CancellationToken cancel;
  return RunOk(spec, cancel);
}

// GroupGone waits (bounded) until no process is left in process group `pgid`.
// Orphans of the test's children are re-parented to this process (child
// subreaper) and reaped here, so the check does not depend on the container's
// init reaping zombies.
bool GroupGone(pid_t pgid) {
  for (int i = 0; i < 1000; ++i) {
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    if (::kill(-pgid, 0) != 0 && errno == ESRCH) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

// The scripts below print their own pid first: for the child that is also its
// process group id.
pid_t FirstLinePid(const RawOutput& out) { return static_cast<pid_t>(std::stol(out.out.bytes)); }

TEST_CASE("stdout and stderr are kept apart and the exit status is reported", "[process]") {
  RawOutput r = RunOk(Shell("printf out-bytes; printf err-bytes >&2; exit 3"));
  CHECK(r.out.bytes == "out-bytes");
  CHECK(r.err.bytes == "err-bytes");
  CHECK(r.out.total == 9);
  CHECK(r.err.total == 9);
  REQUIRE(r.exit_status.has_value());
  CHECK(*r.exit_status == 3);
  CHECK_FALSE(r.exit_signal.has_value());
  CHECK(r.completed());
  CHECK_FALSE(r.out.capped());
}

TEST_CASE("a child killed by a signal reports the signal name", "[process]") {
  RawOutput r = RunOk(Shell("kill -USR1 $$"));
  CHECK_FALSE(r.exit_status.has_value());
  REQUIRE(r.exit_signal.has_value());
  CHECK(*r.exit_signal == "USR1");
  CHECK_FALSE(r.timed_out);
  CHECK_FALSE(r.cancelled);
}

TEST_CASE("the child's environment is exactly the given one", "[process]") {
  ::setenv("WARDEN_PROCESS_TEST_LEAK", "must-not-appear", 1);
  ProcessSpec spec;
  spec.argv = {"/usr/bin/env"};
  spec.env = {{"ALPHA", "1"}, {"BETA", "two words"}, {"EMPTY", ""}};
  RawOutput r = RunOk(spec);
  std::set<std::string> lines;
  std::istringstream in(r.out.bytes);
  for (std::string line; std::getline(in, line);) lines.insert(line);
  CHECK(lines == std::set<std::string>{"ALPHA=1", "BETA=two words", "EMPTY="});
  CHECK(*r.exit_status == 0);
}

TEST_CASE("a bare program name is looked up in the child's PATH", "[process]") {
  ProcessSpec spec;
  spec.argv = {"env"};
  spec.env = {{"PATH", "relative/dir:/usr/bin:/bin"}, {"X", "y"}};
  RawOutput r = RunOk(spec);
  CHECK(r.exit_status == 0);
  CHECK(r.out.bytes.find("X=y\n") != std::string::npos);
}

TEST_CASE("stdin is /dev/null and cwd is applied", "[process]") {
  ProcessSpec spec = Shell("cat; pwd");
  spec.cwd = "/usr";
  RawOutput r = RunOk(spec);
  CHECK(r.out.bytes == "/usr\n");
  CHECK(r.exit_status == 0);
}

TEST_CASE("the parent's file descriptors do not reach the child", "[process]") {
  int leaked = ::open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
  REQUIRE(leaked > 2);
  std::string fd = std::to_string(leaked);
  RawOutput r = RunOk(Shell("if [ -e /proc/self/fd/" + fd + " ]; then echo leaked; else echo clean; fi"));
  ::close(leaked);
  CHECK(r.out.bytes == "clean\n");
}

TEST_CASE("a timeout stops the child and its whole process group", "[process]") {
  REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
  ProcessSpec spec = Shell("echo $$; sleep 100 & sleep 100");
  spec.timeout = 300ms;
  RawOutput r = RunOk(spec);
  CHECK(r.timed_out);
  CHECK_FALSE(r.cancelled);
  CHECK_FALSE(r.exit_status.has_value());
  REQUIRE(r.exit_signal.has_value());
  CHECK((*r.exit_signal == "TERM" || *r.exit_signal == "KILL"));
  CHECK_FALSE(r.completed());
  CHECK(GroupGone(FirstLinePid(r)));
}

TEST_CASE("a child that ignores SIGTERM is killed with SIGKILL", "[process]") {
  REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
  ProcessSpec spec = Shell("trap '' TERM; echo $$; while :; do sleep 1; done");
  spec.timeout = 300ms;
  RawOutput r = RunOk(spec);
  CHECK(r.timed_out);
  CHECK(r.exit_signal == std::optional<std::string>("KILL"));
  CHECK(GroupGone(FirstLinePid(r)));
}

TEST_CASE("processes left in the group after a normal exit are killed", "[process]") {
  REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
  // The background sleep keeps stdout open: without cleanup this would run into the timeout.
  ProcessSpec spec = Shell("echo $$; sleep 100 & exit 0");
  spec.timeout = 60s;
  RawOutput r = RunOk(spec);
  CHECK_FALSE(r.timed_out);
  CHECK(r.exit_status == 0);
  CHECK(r.completed());
  CHECK(GroupGone(FirstLinePid(r)));
}

TEST_CASE("cancellation from another thread stops the child", "[process]") {
  CancellationToken cancel;
  ProcessSpec spec = Shell("sleep 100");
  spec.timeout = 600s;
  std::thread canceller([&] {
    std::this_thread::sleep_for(200ms);
    cancel.Cancel("test");
  });
  RawOutput r = RunOk(spec, cancel);
  canceller.join();
  CHECK(r.cancelled);
  CHECK_FALSE(r.timed_out);
  CHECK_FALSE(r.exit_status.has_value());
  CHECK(r.exit_signal.has_value());
}

TEST_CASE("a token cancelled before the start starts nothing", "[process]") {
  CancellationToken cancel;
  cancel.Cancel("early");
  RawOutput r = RunOk(Shell("echo should-not-run"), cancel);
  CHECK(r.cancelled);
  CHECK(r.out.total == 0);
}

TEST_CASE("10 MiB on each stream, interleaved, with a 1 MiB cap", "[process]") {
  // 160 rounds of 64 KiB to stdout then 64 KiB to stderr: a reader that
  // drained one pipe only would deadlock on the other.
  ProcessSpec spec =
      Shell("i=0; while [ $i -lt 160 ]; do head -c 65536 /dev/zero; head -c 65536 /dev/zero >&2; i=$((i+1)); done");
  spec.max_capture_bytes = 1u << 20;
  spec.timeout = 600s;
  RawOutput r = RunOk(spec);
  CHECK(r.completed());
  CHECK(r.exit_status == 0);
  CHECK(r.out.total == 10u << 20);
  CHECK(r.err.total == 10u << 20);
  CHECK(r.out.bytes.size() == 1u << 20);
  CHECK(r.err.bytes.size() == 1u << 20);
  CHECK(r.out.capped());
  CHECK(r.err.capped());
}

TEST_CASE("progress is reported while the child runs", "[process]") {
  std::atomic<int> calls{0};
  ProgressFn progress = [&](uint64_t, const std::string& message) {
    CHECK_FALSE(message.empty());
    ++calls;
  };
  CancellationToken cancel;
  // The child cannot end before 1.3 s, and the first report is due after 1 s.
  RawOutput r = RunOk(Shell("echo x; sleep 1.3"), cancel, progress);
  CHECK(r.exit_status == 0);
  CHECK(calls.load() >= 1);
}

TEST_CASE("a missing program gives a clear error", "[process]") {
  CancellationToken cancel;
  ProcessSpec spec;
  spec.argv = {"/nonexistent/bin/git", "status"};
  Result<RawOutput> r = RunProcess(spec, cancel, {});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kNotFound);
  CHECK(r.status().message() == "cannot start git: No such file or directory");

  spec.argv = {"warden-no-such-program"};
  spec.env = {{"PATH", "/usr/bin:/bin"}};
  r = RunProcess(spec, cancel, {});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message() == "cannot start warden-no-such-program: No such file or directory");
}

TEST_CASE("a missing working directory gives a clear error", "[process]") {
  CancellationToken cancel;
  ProcessSpec spec = Shell("true");
  spec.cwd = "/nonexistent/dir";
  Result<RawOutput> r = RunProcess(spec, cancel, {});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kNotFound);
  CHECK(r.status().message().find("working directory /nonexistent/dir") != std::string::npos);
}

TEST_CASE("malformed specs are refused", "[process]") {
  CancellationToken cancel;
  ProcessSpec empty;
  CHECK(RunProcess(empty, cancel, {}).status().code() == Code::kInvalidArgument);
  ProcessSpec bad_env = Shell("true");
  bad_env.env["A=B"] = "c";
  CHECK(RunProcess(bad_env, cancel, {}).status().code() == Code::kInvalidArgument);
  ProcessSpec nul_arg = Shell(std::string("echo a\0b", 8));
  CHECK(RunProcess(nul_arg, cancel, {}).status().code() == Code::kInvalidArgument);
}

}  // namespace
}  // namespace warden::tools
