// tests/unit/ssh_fixture.h: helpers for the sshca and ssh_run tests and for
// bench/ssh_bench.cc: a scratch directory, running a command, and a real
// OpenSSH sshd (/usr/sbin/sshd from openssh-server) on 127.0.0.1 and a free
// port that trusts a given Warden CA (see ../shared/recipes/ssh-test-host.md).
//
// Free of Catch2 on purpose (the bench uses it too): failures come back as
// Status, and the tests REQUIRE them.
//
// The sshd logs at LogLevel VERBOSE to <dir>/sshd.log, which the tests read to
// see what sshd itself decided ("Certificate invalid: expired", "Accepted
// publickey ... ID <key id> (serial N)"). It logs in the current user only;
// that user's certificates must carry Principal(). Each fixture has its own
// directory and port, so tests can run in parallel.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/result.h"
#include "sshca/ca.h"
#include "tests/unit/temp_dir.h"

namespace warden::testing {

namespace fs = std::filesystem;

struct CommandResult {
  int status = -1;  // exit status; -1 if it did not exit normally or could not start
  std::string out;
  std::string err;
};

// Run executes argv (never through a shell) with PATH=/usr/sbin:/usr/bin:/bin,
// stdin /dev/null, and a 60 s limit; `extra_env` is added to that environment
// (e.g. SOFTHSM2_CONF for SoftHSM's tools).
CommandResult Run(const std::vector<std::string>& argv, const std::map<std::string, std::string>& extra_env = {});

// WriteFile writes `text` to `path` with `mode`.
void WriteFile(const fs::path& path, const std::string& text, fs::perms mode = fs::perms(0644));
std::string ReadFile(const fs::path& path);

// CurrentUser is the login name of the effective user.
std::string CurrentUser();

class Sshd {
 public:
  // Start makes a host key, writes sshd_config, an empty KRL and the
  // principals file, starts sshd and waits (at most 20 s) until it listens.
  // Errors: Unavailable with sshd's own log when it does not come up.
  static Result<std::unique_ptr<Sshd>> Start(const sshca::CertificateAuthority& ca);
  // The destructor stops sshd (SIGTERM to its pid, then waits) and removes
  // the directory.
  ~Sshd();

  int port() const { return port_; }
  const fs::path& dir() const { return dir_->path(); }
  const std::string& user() const { return user_; }
  const std::string& principal() const { return principal_; }
  // HostKeyFingerprint is "SHA256:..." of the host key; HostKeyLine its public line.
  const std::string& HostKeyFingerprint() const { return host_key_fingerprint_; }
  const std::string& HostKeyLine() const { return host_key_line_; }
  // Host is a config entry for this sshd: 127.0.0.1, the port, the user, the
  // principal, and the host key pinned.
  SshHostConfig Host() const;

  std::string Log() const;
  // WaitForLog waits until `needle` appears in the log (bounded by `limit`).
  bool WaitForLog(const std::string& needle, std::chrono::seconds limit = std::chrono::seconds(15)) const;
  // WriteKrl replaces the RevokedKeys file with a KRL built from `spec`
  // (ssh-keygen -k -s <ca.pub>; lines like "id: warden:..." or "serial: 7").
  Status WriteKrl(const std::string& spec);

 private:
  Sshd() = default;
  Status Launch();

  std::unique_ptr<TempDir> dir_;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string user_;
  std::string principal_;
  std::string host_key_fingerprint_;
  std::string host_key_line_;
};

}  // namespace warden::testing
