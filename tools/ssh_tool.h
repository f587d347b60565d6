// tools/ssh_tool.h: the `ssh_run` tool: runs one command on a host of the
// config's inventory (ssh.hosts) over SSH, and returns its stdout, stderr and
// exit status to the output pipeline.
//
// No long-lived key exists. Each call generates an Ed25519 key pair in
// memory (never written anywhere, wiped when the call ends) and has Warden's
// CA (sshca/ca.h) certify it for this call only: key id
// "warden:<call id>:<session id>:ssh_run", the host's principals, valid from
// now minus ssh.clock_skew_seconds for ssh.cert_ttl_seconds (hard cap 15
// minutes in all), source-address = ssh.source_addresses, no extensions (no
// pty, no forwarding, no agent), and force-command = the exact command of this
// call (a host may opt out only with force_command.disabled_reason).
//
// Stopping the remote command. sshd refuses to deliver signals to
// forced-command sessions (and to root logins), and without a pty a command
// outlives the client's disconnect. So the command is bounded on the remote
// side: the string that is certified as force-command AND requested by the
// client is CertifiedCommand(command, timeout), i.e.
//   timeout -s KILL <timeout_seconds> sh -c '<command, single-quote-escaped>'
// (force-command == requested command; GNU `timeout` kills the command's
// whole process group, not only its first process). On Warden's own timeout
// or on cancellation the client also sends SIGKILL on the channel, which
// sshd honours only where it may (a non-forced, non-root session). Targets
// need /bin/sh and coreutils' `timeout`; a process that leaves the process
// group (setsid, nohup + setsid) escapes both.
//
// Host keys: a host is verified, before anything is sent for authentication,
// against its pinned SHA-256 fingerprint or its known_hosts file; an unknown
// or changed key ends the call with PermissionDenied. There is no
// "accept new key" mode. libssh reads no ssh_config (SSH_OPTIONS_PROCESS_CONFIG
// off) and no known_hosts file but the configured one.
//
// Trust: the config (inventory, CA) is operator input. Arguments come from
// the model; `host` must name an inventory host (never a free address),
// `command` is run by sh on that host by design (that is the tool) and is
// confined by the certificate to exactly that string.
// Untrusted: bytes from the target host: stdout, stderr, the exit-signal
// name, and the host key until it is verified. They are never logged or
// interpreted; RawOutput goes to the output pipeline.
// Key material: never logged, never in RawOutput.metadata, never on disk.
//
// Thread safety: Run may be called from many threads at once (one libssh
// session per call; the CA is shared read-only).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/config.h"
#include "sshca/ca.h"
#include "tools/tool.h"

namespace warden::tools {

class SshTool : public Tool {
 public:
  // `ca` signs every call's certificate; `clock` gives certificate validity
  // (tests inject a ManualClock). Both must outlive the tool.
  SshTool(const SshConfig& config, std::shared_ptr<const sshca::CertificateAuthority> ca, const Clock& clock);

  // spec: name "ssh_run"; input_schema lists the inventory's host names as an enum.
  const ToolSpec& spec() const override;
  // Target is "host:<name>".
  std::string Target(const boost::json::object& args) const override;
  // Run connects, verifies the host key, authenticates with a fresh
  // certificate, runs the command and collects its output (at most
  // min(ctx.max_capture_bytes, max_output_bytes) per stream; the rest is read
  // and counted in CapturedStream::total).
  // Errors: NotFound (unknown host), InvalidArgument (bad arguments),
  // Unavailable (cannot connect, handshake or authentication not done within
  // ssh.connect_timeout_seconds, connection lost), PermissionDenied (host key
  // unknown or changed: nothing was sent for authentication; or the host
  // refused the certificate: the message names its serial and key id),
  // Internal (key or certificate could not be made), or the CA signer's own
  // error when a CA key in a PKCS#11 token cannot sign (Unavailable,
  // PermissionDenied, FailedPrecondition; the message names the token).
  // OK: the command ran to its end, or was stopped by timeout_seconds
  // (timed_out) or cancellation (cancelled). metadata: cert_serial, key_id,
  // principals, valid_after, valid_before (Unix seconds), host, address
  // ("address:port"), force_command ("certified" or "disabled: <reason>").
  Result<RawOutput> Run(const boost::json::object& args, CallContext& ctx) override;

 private:
  SshConfig config_;
  std::shared_ptr<const sshca::CertificateAuthority> ca_;
  const Clock& clock_;
  ToolSpec spec_;
};

// ShellQuote wraps `s` in single quotes for sh, writing each ' as '\''.
std::string ShellQuote(std::string_view s);

// CertifiedCommand is the exact string certified as force-command and
// requested by the client: timeout -s KILL <seconds> sh -c '<command>'.
std::string CertifiedCommand(std::string_view command, int timeout_seconds);

}  // namespace warden::tools
