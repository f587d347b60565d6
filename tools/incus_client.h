// tools/incus_client.h: a small client of the Incus REST API, spoken directly
// (no `incus` CLI), for the incus_exec and incus_list tools.
//
// Transport: HTTP/1.1 and WebSocket (Boost.Beast) over either the local unix
// socket (server "unix:/var/lib/incus/unix.socket") or TLS 1.2+ (OpenSSL 3)
// to "https://host:port" with a client certificate. Over TLS the server is
// authenticated by the SHA-256 of its certificate (incus.server_cert_sha256),
// never by a CA chain: a server presenting any other certificate is refused
// during the handshake and again right after it, before any request is sent.
// Every request uses a fresh connection.
//
// Exec runs in WebSocket mode (wait-for-websocket, non-interactive): Incus
// gives one websocket for each of stdin, stdout and stderr and a control
// websocket. stdin gets end-of-file at once; stdout and stderr stream into
// the caller's callback as they arrive, so nothing is recorded on the Incus
// host's disk (record-output is never used). The exit status comes from the
// finished operation.
//
// Stopping a command (timeout or cancellation): Incus delivers a control
// "signal" message to the command's first process only, and the processes of
// an exec share no process group that can be signalled from inside the
// instance. So each command is started with a random marker in its
// environment (WARDEN_EXEC_ID=<128-bit hex>, inherited by its children), and a
// stop is (1) SIGKILL to the first process through the control websocket,
// then (2) a second exec, `sh -c <sweep>`, that SIGKILLs every process of the
// instance whose environment holds the marker (the marker is passed to the
// sweep as an argument, never in its own environment). The sweep needs sh,
// tr and grep in the instance; without them step 1 still stops the first
// process. A process that clears its environment escapes the sweep.
//
// Trust: the config (server, certificates, projects) is operator input. The
// Incus server is infrastructure Warden trusts to run commands, but what it
// returns is treated as untrusted data: output bytes go to the caller's
// callback only (never logged); JSON answers are bounded in size and read
// field by field with their types checked; error strings from Incus become
// tool error messages, which the output pipeline sanitizes.
// Project and instance names are checked with IsIncusName before they are
// put into any URL.
//
// Thread safety: a Client may be used from many threads at once; each call
// has its own io_context and connections (the TLS context is shared, read-only).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/cancel.h"
#include "core/config.h"
#include "core/result.h"

namespace warden::tools::incus {

using Steady = std::chrono::steady_clock;

// PercentEncode keeps RFC 3986 unreserved characters and writes every other
// byte as %XX (upper-case hex), for a path segment or a query value.
std::string PercentEncode(std::string_view s);

// InstancePath is "/1.0/instances/<instance><suffix>?project=<project>".
// InvalidArgument (naming the bad argument) unless both pass IsIncusName.
Result<std::string> InstancePath(std::string_view project, std::string_view instance, std::string_view suffix = "");

// ArgvSha256 is the lower-case hex SHA-256 of the argv elements, each
// followed by one NUL byte: the audit's fingerprint of a command.
std::string ArgvSha256(const std::vector<std::string>& argv);

// The name of the marker variable that every command gets (see above).
inline constexpr const char* kMarkerVariable = "WARDEN_EXEC_ID";

struct InstanceInfo {
  std::string name;
  std::string project;
  std::string type;    // "container" or "virtual-machine"
  std::string status;  // "Running", "Stopped", "Frozen", ...
};

struct ExecRequest {
  std::string project;
  std::string instance;
  std::vector<std::string> argv;                               // argv[0] is looked up in the instance's PATH
  std::vector<std::pair<std::string, std::string>> environment;  // added to the instance's defaults
  std::string cwd;                                             // empty: the user's home
  std::optional<uint32_t> user;                                // uid in the instance; default 0
  std::optional<uint32_t> group;                               // gid in the instance; default 0
  Steady::time_point deadline;                                 // stop the command then
};

// ExecCallbacks are called on the thread that runs Exec.
struct ExecCallbacks {
  std::function<void(int fd, std::string_view bytes)> output;  // fd 1 = stdout, 2 = stderr, as bytes arrive
  std::function<void()> tick;                                  // about once a second while the command runs
};

struct ExecResult {
  std::optional<int> exit_status;  // as Incus reports it (128 + n when killed by signal n)
  bool timed_out = false;
  bool cancelled = false;
  bool killed = false;             // Warden sent SIGKILL to the command
  std::string operation;           // Incus operation id
  std::string stop;                // how a stop went, for the audit details; empty when not stopped
};

class Client {
 public:
  // Create loads the TLS material of an https server (certificate and key,
  // which must match); it does not connect. InvalidArgument when they cannot be used.
  static Result<std::unique_ptr<Client>> Create(const IncusConfig& config);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Describe is the server as configured: "unix:/path" or "https://host:port".
  std::string Describe() const;

  // GetInstance reads one instance of `project`. NotFound when Incus has no
  // such instance there; PermissionDenied when the answer names another
  // project; Unavailable when the server cannot be reached or does not
  // answer within incus.connect_timeout_seconds; Cancelled.
  Result<InstanceInfo> GetInstance(const std::string& project, const std::string& instance,
                                   const CancellationToken& cancel);

  // ListInstances lists the instances of `project`, sorted by name.
  Result<std::vector<InstanceInfo>> ListInstances(const std::string& project, const CancellationToken& cancel);

  // Exec checks that the instance is in `project` and running, runs argv,
  // streams its output into callbacks.output, and stops it (see above) when
  // `deadline` passes or `cancel` fires. OK whenever the command started
  // (ExecResult says whether it ended, timed out or was cancelled). Errors:
  // those of GetInstance, FailedPrecondition (instance not running, or the
  // command could not start, e.g. not found), Unavailable.
  Result<ExecResult> Exec(const ExecRequest& request, const ExecCallbacks& callbacks,
                          const CancellationToken& cancel);

  struct Impl;

 private:
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace warden::tools::incus
