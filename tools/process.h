// tools/process.h: runs one subprocess for a tool, to completion, timeout or
// cancellation, and captures what it wrote.
//
// The child never goes through a shell: argv is passed to posix_spawn as is.
// Its environment is exactly ProcessSpec::env (nothing is inherited from
// Warden), stdin is /dev/null, stdout and stderr come back on two separate
// pipes, no other file descriptor of Warden reaches it, and it runs in its own
// process group so that everything it starts can be stopped together.
//
// Trust: ProcessSpec comes from a tool (trusted code, but its argv carries
// model-chosen arguments that the tool has already checked).
// Untrusted: bytes from the target. RawOutput holds whatever the child wrote;
// this module never logs it and never interprets it.
//
// Thread safety: RunProcess may run on many threads at once. It never changes
// process-wide state (signal dispositions, SIGCHLD, the environment). It
// requires that SIGCHLD is not set to SIG_IGN in the server (children would
// then be reaped by the kernel and their exit status lost).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/cancel.h"
#include "core/raw_output.h"
#include "core/result.h"
#include "tools/sandbox.h"
#include "tools/tool.h"

namespace warden::tools {

struct ProcessSpec {
  // argv[0] is an absolute path, or a bare name looked up in env's PATH
  // (absolute directories only; default /usr/bin:/bin). Never a shell line.
  std::vector<std::string> argv;
  std::string cwd;                         // empty: Warden's own working directory
  std::map<std::string, std::string> env;  // the COMPLETE environment of the child; nothing inherited
  std::chrono::milliseconds timeout{30000};
  uint64_t max_capture_bytes = 8u << 20;  // per stream; bytes past it are read and dropped (counted in total)
  // When set, the child is confined before it executes (tools/sandbox.h):
  // files it may read, execute and write; no network.
  std::shared_ptr<const Confinement> confinement;
};

// RunProcess starts spec.argv and supervises it until it exits, spec.timeout
// passes or `cancel` fires.
//
// OK result: the process ran, whatever its exit status.
//   - Normal end: exit_status (WEXITSTATUS) or exit_signal ("SEGV", no "SIG").
//     Anything the child left running in its process group is then killed.
//   - Timeout / cancellation: timed_out or cancelled is set, exit_status is
//     empty and exit_signal is "TERM" or "KILL": the group got SIGTERM, then
//     SIGKILL about 500 ms later, and the child was reaped before returning.
//   - `cancel` already set on entry: nothing is started, cancelled is set.
// Error Status only when the process cannot be started: NotFound for a missing
// program or working directory ("cannot start git: No such file or
// directory"), Unavailable for other start failures, InvalidArgument for a
// malformed spec (empty argv, NUL bytes, '=' in an env name).
//
// `progress` (may be empty) is called from this thread about once per second
// while the child runs, with the bytes received so far on both streams.
Result<RawOutput> RunProcess(const ProcessSpec& spec, const CancellationToken& cancel, const ProgressFn& progress);

}  // namespace warden::tools
