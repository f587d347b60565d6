#include "tools/ssh_tool.h"

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <poll.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "core/json_schema.h"

namespace warden::tools {
namespace json = boost::json;

namespace {

using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;

constexpr int64_t kMaxCommandBytes = 16 * 1024;
constexpr size_t kReadChunk = 64 * 1024;
// While connecting, libssh does its I/O inside each step call and this loop
// waits for the host's next bytes; the cap bounds the wait in the rare case
// that libssh is held up writing instead.
constexpr milliseconds kSetupPollCap{20};
// After Warden's own timeout, how long to wait for the remote `timeout` (started
// a round trip later) to report the command's end.
constexpr milliseconds kStopGrace{3000};
constexpr milliseconds kProgressInterval{1000};

std::string Join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : sep) + item;
  return out;
}

// ---- libssh handles: one owner each, freed in reverse order of creation ----

struct SessionFree {
  void operator()(ssh_session s) const {
    ssh_disconnect(s);
    ssh_free(s);
  }
};
struct ChannelFree {
  void operator()(ssh_channel c) const { ssh_channel_free(c); }
};
struct KeyFree {
  void operator()(ssh_key k) const { ssh_key_free(k); }  // libssh wipes private keys (explicit_bzero)
};
struct StringFree {
  void operator()(char* s) const { ssh_string_free_char(s); }
};
using Session = std::unique_ptr<ssh_session_struct, SessionFree>;
using Channel = std::unique_ptr<ssh_channel_struct, ChannelFree>;
using Key = std::unique_ptr<ssh_key_struct, KeyFree>;
using SshString = std::unique_ptr<char, StringFree>;

// What one call asks for, after every check.
struct Request {
  std::string name;
  const SshHostConfig* host = nullptr;
  std::string command;    // as the model gave it
  std::string certified;  // CertifiedCommand(command, timeout)
  std::chrono::seconds timeout{0};
  uint64_t cap = 0;  // bytes kept per stream
};

std::string Where(const Request& r) {
  return "host \"" + r.name + "\" (" + r.host->address + ":" + std::to_string(r.host->port) + ")";
}

enum class Wake { kReady, kDeadline, kCancelled };

// WaitInput waits until `fd` is readable, the token is cancelled (its
// wake_fd), `until` passes, or `cap` elapses.
Wake WaitInput(int fd, const CancellationToken& cancel, Steady::time_point until, milliseconds cap) {
  if (cancel.cancelled()) return Wake::kCancelled;
  const Steady::time_point now = Steady::now();
  if (now >= until) return Wake::kDeadline;
  const auto wait = std::min(cap, std::chrono::ceil<milliseconds>(until - now));
  pollfd fds[2] = {{cancel.wake_fd(), POLLIN, 0}, {fd, POLLIN, 0}};
  ::poll(fds, fd >= 0 ? 2 : 1, static_cast<int>(wait.count()));
  if (cancel.cancelled()) return Wake::kCancelled;
  return Wake::kReady;
}

// Pump drives one non-blocking libssh step until it returns something other
// than `again`. Returns the step's final code, or nullopt with *wake set when
// the deadline passed or the call was cancelled first.
template <typename Step>
std::optional<int> Pump(ssh_session s, const CancellationToken& cancel, Steady::time_point until, int again,
                        Wake* wake, Step step) {
  for (;;) {
    int rc = step();
    if (rc != again) return rc;
    *wake = WaitInput(ssh_get_fd(s), cancel, until, kSetupPollCap);
    if (*wake != Wake::kReady) return std::nullopt;
  }
}

// StepFailure turns a Pump that did not finish into the call's outcome.
Status StepFailure(Wake wake, const Request& r, const SshConfig& config, const std::string& phase) {
  if (wake == Wake::kCancelled) return Cancelled("cancelled while " + phase);
  return Unavailable(Where(r) + ": " + phase + " did not finish within " +
                     std::to_string(config.connect_timeout_seconds) + " s (ssh.connect_timeout_seconds)");
}

// SafeSignalName keeps a signal name from the host to what a signal name
// can be ("KILL", "SEGV"); anything else becomes "?".
// Untrusted: the name comes from the target host.
std::string SafeSignalName(const char* name) {
  std::string s = name ? name : "";
  bool ok = !s.empty() && s.size() <= 16 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '+' || c == '-';
  });
  return ok ? s : "?";
}

// ---- host key verification: before authentication, never trust on first use ----

Status VerifyHostKey(ssh_session s, const Request& r) {
  const SshHostConfig& h = *r.host;
  if (!h.known_hosts.empty()) {
    switch (ssh_session_is_known_server(s)) {
      case SSH_KNOWN_HOSTS_OK:
        return Status::Ok();
      case SSH_KNOWN_HOSTS_CHANGED:
      case SSH_KNOWN_HOSTS_OTHER:
        return PermissionDenied(Where(r) + " presented a host key that differs from its entry in " + h.known_hosts +
                                ": the host key changed or the connection is intercepted; Warden did not "
                                "authenticate. Update the entry only after verifying the new key out of band");
      case SSH_KNOWN_HOSTS_NOT_FOUND:
      case SSH_KNOWN_HOSTS_UNKNOWN:
        return PermissionDenied(Where(r) + " has an unknown host key: " + h.known_hosts +
                                " has no entry for it, and Warden never accepts a new key; Warden did not "
                                "authenticate. Add the host's key (verified out of band) to that file");
      case SSH_KNOWN_HOSTS_ERROR:
        break;
    }
    return Unavailable("cannot check the host key of " + Where(r) + " against " + h.known_hosts + ": " +
                       ssh_get_error(s));
  }
  ssh_key raw = nullptr;
  if (ssh_get_server_publickey(s, &raw) != SSH_OK) return Unavailable(Where(r) + ": no host key received");
  Key key(raw);
  unsigned char* hash = nullptr;
  size_t len = 0;
  if (ssh_get_publickey_hash(key.get(), SSH_PUBLICKEY_HASH_SHA256, &hash, &len) != 0)
    return Internal("cannot hash the host key of " + Where(r));
  SshString fingerprint(ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, len));
  ssh_clean_pubkey_hash(&hash);
  if (!fingerprint) return Internal("cannot format the host key fingerprint of " + Where(r));
  const std::string presented = fingerprint.get();
  if (presented == h.host_key_sha256) return Status::Ok();
  return PermissionDenied(Where(r) + " presented host key " + std::string(ssh_key_type_to_char(ssh_key_type(key.get()))) +
                          " " + presented + ", not the pinned " + h.host_key_sha256 +
                          ": the host key changed or the connection is intercepted; Warden did not authenticate. "
                          "Update host_key_sha256 only after verifying the new key out of band");
}

// ---- the session, set up step by step, each bounded by the connect deadline ----

Result<Session> NewSession(const Request& r, const SshConfig& config) {
  Session s(ssh_new());
  if (!s) return Internal("cannot create an SSH session");
  const SshHostConfig& h = *r.host;
  const bool process_config = false;  // never read ~/.ssh/config or /etc/ssh/ssh_config
  const unsigned int port = static_cast<unsigned int>(h.port);
  const long timeout = config.connect_timeout_seconds;  // libssh's own bound; the loop below enforces it too
  const int on = 1, off = 0;
  // Only the configured known_hosts file is read (none when the key is pinned).
  const std::string known_hosts = h.known_hosts.empty() ? "/dev/null" : h.known_hosts;
  bool ok = ssh_options_set(s.get(), SSH_OPTIONS_PROCESS_CONFIG, &process_config) == 0 &&
            ssh_options_set(s.get(), SSH_OPTIONS_HOST, h.address.c_str()) == 0 &&
            ssh_options_set(s.get(), SSH_OPTIONS_PORT, &port) == 0 &&
            ssh_options_set(s.get(), SSH_OPTIONS_USER, h.user.c_str()) == 0 &&
            ssh_options_set(s.get(), SSH_OPTIONS_KNOWNHOSTS, known_hosts.c_str()) == 0 &&
            ssh_options_set(s.get(), SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null") == 0 &&
            ssh_options_set(s.get(), SSH_OPTIONS_STRICTHOSTKEYCHECK, &on) == 0 &&
            ssh_options_set(s.get(), SSH_OPTIONS_TIMEOUT, &timeout) == 0 &&
            ssh_options_set(s.get(), SSH_OPTIONS_NODELAY, &on) == 0 &&
            ssh_options_set(s.get(), SSH_OPTIONS_PASSWORD_AUTH, &off) == 0 &&
            ssh_options_set(s.get(), SSH_OPTIONS_KBDINT_AUTH, &off) == 0 &&
            ssh_options_set(s.get(), SSH_OPTIONS_GSSAPI_AUTH, &off) == 0;
  if (!ok) return Internal("cannot configure the SSH session for " + Where(r) + ": " + ssh_get_error(s.get()));
  ssh_set_blocking(s.get(), 0);
  return s;
}

// ImportIdentity hands the call's key and certificate to libssh. The key
// travels as OpenSSH PEM text in memory, wiped right after the import.
Result<Key> ImportIdentity(const sshca::Ed25519Key& key, const sshca::Certificate& cert) {
  ssh_key priv = nullptr;
  {
    sshca::SecretString pem;
    if (Status s = key.WriteOpenSshPrivateKey("", &pem); !s.ok()) return s;
    if (ssh_pki_import_privkey_base64(pem.bytes.c_str(), nullptr, nullptr, nullptr, &priv) != SSH_OK)
      return Internal("libssh cannot import the call's key");
  }
  Key owned(priv);
  ssh_key raw_cert = nullptr;
  if (ssh_pki_import_cert_base64(cert.Base64().c_str(), SSH_KEYTYPE_ED25519_CERT01, &raw_cert) != SSH_OK)
    return Internal("libssh cannot import the call's certificate");
  Key cert_key(raw_cert);
  if (ssh_pki_copy_cert_to_privkey(cert_key.get(), owned.get()) != SSH_OK)
    return Internal("libssh cannot attach the certificate to the call's key");
  return owned;
}

// ChannelState collects what the host reports about the command's end.
// Untrusted: set from messages of the target host.
struct ChannelState {
  std::optional<int> exit_status;
  std::optional<std::string> exit_signal;
  bool closed = false;
};

void OnExitStatus(ssh_session, ssh_channel, int status, void* userdata) {
  static_cast<ChannelState*>(userdata)->exit_status = status;
}
void OnExitSignal(ssh_session, ssh_channel, const char* signal, int, const char*, const char*, void* userdata) {
  static_cast<ChannelState*>(userdata)->exit_signal = SafeSignalName(signal);
}
void OnClose(ssh_session, ssh_channel, void* userdata) { static_cast<ChannelState*>(userdata)->closed = true; }
int OnWake(socket_t, int, void*) { return 0; }  // the cancellation eventfd: only wakes the poll; never read

void Append(CapturedStream* s, const char* data, size_t n, uint64_t cap) {
  s->total += n;
  if (s->bytes.size() < cap) s->bytes.append(data, std::min<uint64_t>(n, cap - s->bytes.size()));
}

// Drain reads what libssh has for one stream without blocking. Returns
// SSH_EOF at the end of the stream, SSH_ERROR if the session failed, else 0.
// Untrusted: bytes from the target host.
int Drain(ssh_channel ch, int is_stderr, CapturedStream* s, uint64_t cap, std::vector<char>* buf) {
  for (;;) {
    int n = ssh_channel_read_nonblocking(ch, buf->data(), static_cast<uint32_t>(buf->size()), is_stderr);
    if (n > 0) {
      Append(s, buf->data(), static_cast<size_t>(n), cap);
      continue;
    }
    return n == SSH_EOF || n == SSH_ERROR ? n : 0;
  }
}

// Collect reads the command's output until it ends, `deadline` passes, or the
// call is cancelled; on the last two it asks the host to kill the command.
// Keeps reading (and dropping past the cap) so a chatty command never stalls
// on a full window. Error only when the connection is lost mid-command.
// PollSet is an ssh_event that watches the session and the cancellation fd,
// and takes both out again when it goes (ssh_event_free alone leaks the fd's
// bookkeeping and leaves the session tied to a freed poll context).
class PollSet {
 public:
  PollSet(ssh_session s, int wake_fd) : session_(s), wake_fd_(wake_fd), event_(ssh_event_new()) {
    session_added_ = event_ != nullptr && ssh_event_add_session(event_, session_) == SSH_OK;
    fd_added_ = session_added_ && ssh_event_add_fd(event_, wake_fd_, POLLIN, OnWake, nullptr) == SSH_OK;
  }
  ~PollSet() {
    if (fd_added_) ssh_event_remove_fd(event_, wake_fd_);
    if (session_added_) ssh_event_remove_session(event_, session_);
    if (event_ != nullptr) ssh_event_free(event_);
  }
  PollSet(const PollSet&) = delete;
  PollSet& operator=(const PollSet&) = delete;
  bool ok() const { return fd_added_; }
  // Poll runs libssh's I/O and callbacks for up to `wait`; SSH_ERROR on failure.
  int Poll(milliseconds wait) { return ssh_event_dopoll(event_, static_cast<int>(wait.count())); }

 private:
  ssh_session session_;
  int wake_fd_;
  ssh_event event_;
  bool session_added_ = false;
  bool fd_added_ = false;
};

Status Collect(ssh_session s, ssh_channel ch, const Request& r, Steady::time_point deadline, CallContext& ctx,
               ChannelState* state, RawOutput* out) {
  PollSet poll_set(s, ctx.cancel->wake_fd());
  if (!poll_set.ok()) return Internal("cannot set up polling for the SSH session");
  std::vector<char> buf(kReadChunk);
  Steady::time_point next_progress = Steady::now() + kProgressInterval;
  std::optional<Steady::time_point> stop_by;  // set once a stop was requested
  Status status = Status::Ok();
  for (;;) {
    int o = Drain(ch, 0, &out->out, r.cap, &buf);
    int e = Drain(ch, 1, &out->err, r.cap, &buf);
    const bool eof = o == SSH_EOF && e == SSH_EOF;
    if (eof && (state->exit_status || state->exit_signal || state->closed)) break;
    if ((o == SSH_ERROR || e == SSH_ERROR) && !state->closed) {
      if (!stop_by) status = Unavailable("the connection to " + Where(r) + " was lost while the command ran");
      break;
    }
    if (state->closed) break;
    const Steady::time_point now = Steady::now();
    if (!stop_by && (ctx.cancel->cancelled() || now >= deadline)) {
      out->cancelled = ctx.cancel->cancelled();
      out->timed_out = !out->cancelled;
      // Honoured only by non-forced, non-root sessions; the certified
      // `timeout` bounds the command in every case.
      ssh_channel_request_send_signal(ch, "KILL");
      if (out->cancelled) break;  // answer the cancellation now; the remote bound does the rest
      stop_by = now + kStopGrace;
    }
    if (stop_by && now >= *stop_by) break;
    if (!stop_by && now >= next_progress) {
      if (ctx.progress)
        ctx.progress(out->out.total + out->err.total,
                     "running on host " + r.name + "; " + std::to_string(out->out.total + out->err.total) +
                         " bytes received");
      next_progress = now + kProgressInterval;
    }
    Steady::time_point wake = stop_by ? *stop_by : std::min(deadline, next_progress);
    auto wait = std::clamp(std::chrono::ceil<milliseconds>(wake - now), milliseconds(0), kProgressInterval);
    if (poll_set.Poll(wait) == SSH_ERROR && !ssh_is_connected(s)) {
      if (!stop_by) status = Unavailable("the connection to " + Where(r) + " was lost while the command ran");
      break;
    }
  }
  out->exit_status = state->exit_status;
  out->exit_signal = state->exit_signal;
  return status;
}

// ---- arguments ----

int DefaultTimeoutSeconds(const SshConfig& config) { return DefaultTimeout(config.timeout_seconds, config.max_timeout_seconds); }

Status CheckHostKnown(const json::object& args, const SshConfig& config) {
  const json::value* host = args.if_contains("host");
  if (!host || !host->is_string() || config.hosts.contains(std::string(host->get_string()))) return Status::Ok();
  std::vector<std::string> names;
  for (const auto& [name, h] : config.hosts) names.push_back(name);
  std::string message = "unknown host \"" + std::string(host->get_string()) + "\"";
  if (names.empty()) return NotFound(message + ": no hosts are configured (ssh.hosts in the config file)");
  return NotFound(message + "; configured hosts: " + Join(names, ", "));
}

Result<Request> ParseRequest(const json::object& args, const SshConfig& config, const CallContext& ctx) {
  Request r;
  r.name = std::string(args.at("host").as_string());
  r.host = &config.hosts.at(r.name);
  r.command = std::string(args.at("command").as_string());
  if (r.command.find('\0') != std::string::npos) return InvalidArgument("\"command\" contains a NUL byte");
  if (r.command.find_first_not_of(" \t\r\n") == std::string::npos)
    return InvalidArgument("\"command\" is blank; give the shell command to run");
  int64_t timeout = DefaultTimeoutSeconds(config);
  if (const json::value* v = args.if_contains("timeout_seconds")) timeout = v->to_number<int64_t>();
  r.timeout = std::chrono::seconds(timeout);
  r.cap = ctx.max_capture_bytes;
  if (const json::value* v = args.if_contains("max_output_bytes"))
    r.cap = std::min<uint64_t>(r.cap, v->to_number<uint64_t>());
  r.certified = CertifiedCommand(r.command, static_cast<int>(timeout));
  return r;
}

json::object InputSchema(const SshConfig& config) {
  json::object host = {{"type", "string"}};
  if (config.hosts.empty()) {
    host["description"] = "name of a configured host; none are configured (add ssh.hosts to the config file)";
  } else {
    json::array names;
    for (const auto& [name, h] : config.hosts) names.emplace_back(name);
    host["enum"] = std::move(names);
    host["description"] = "name of a configured host (never an address)";
  }
  json::object props = {
      {"host", std::move(host)},
      {"command",
       {{"type", "string"},
        {"minLength", 1},
        {"maxLength", kMaxCommandBytes},
        {"description", "shell command line, run by sh -c on the host as the configured user (no tty, no stdin)"}}},
      {"timeout_seconds",
       TimeoutProperty(DefaultTimeoutSeconds(config), config.max_timeout_seconds, "kill the command after this many seconds")},
      {"max_output_bytes", MaxOutputProperty()},
  };
  return {{"type", "object"},
          {"properties", std::move(props)},
          {"required", {"host", "command"}},
          {"additionalProperties", false}};
}

ToolSpec BuildSpec(const SshConfig& config) {
  ToolSpec spec;
  spec.name = "ssh_run";
  spec.title = "Run a command on a host over SSH";
  spec.description =
      std::string(
          "Run one shell command on a configured host over SSH and get its stdout, stderr and exit status. "
          "Each call is authorized by a fresh certificate that is valid for a few minutes and for exactly "
          "this command; there is no interactive session, no tty and no stdin. The command is killed after "
          "timeout_seconds. The command can change the host: check what it does before running it.") +
      kUntrustedNotice;
  spec.input_schema = InputSchema(config);
  spec.output_schema = CommandOutputSchema();
  spec.annotations = Annotations{.read_only = false, .destructive = true, .idempotent = false, .open_world = false};
  return spec;
}

void InitLibssh() {
  static std::once_flag once;
  std::call_once(once, [] { ssh_init(); });
}

}  // namespace

std::string ShellQuote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out.push_back(c);
  }
  return out + "'";
}

std::string CertifiedCommand(std::string_view command, int timeout_seconds) {
  return "timeout -s KILL " + std::to_string(timeout_seconds) + " sh -c " + ShellQuote(command);
}

SshTool::SshTool(const SshConfig& config, std::shared_ptr<const sshca::CertificateAuthority> ca, const Clock& clock)
    : config_(config), ca_(std::move(ca)), clock_(clock), spec_(BuildSpec(config_)) {
  InitLibssh();
}

const ToolSpec& SshTool::spec() const { return spec_; }

std::string SshTool::Target(const json::object& args) const {
  const json::value* host = args.if_contains("host");
  return "host:" + (host && host->is_string() ? std::string(host->get_string()) : std::string("?"));
}

Result<RawOutput> SshTool::Run(const json::object& args, CallContext& ctx) {
  if (Status s = CheckHostKnown(args, config_); !s.ok()) return s;
  // The server validates too; checking here keeps the tool safe on its own.
  if (Status s = ValidateJson(args, spec_.input_schema); !s.ok()) return s;
  Result<Request> request = ParseRequest(args, config_, ctx);
  if (!request.ok()) return request.status();
  const Request& r = request.value();
  const SshHostConfig& h = *r.host;
  const Steady::time_point start = Steady::now();
  RawOutput out;
  if (ctx.cancel->cancelled()) {
    out.cancelled = true;
    return out;
  }

  // The call's own key and certificate. The key lives in memory only, and is
  // wiped once libssh holds it (libssh wipes its copy when the session ends).
  Result<std::unique_ptr<sshca::Ed25519Key>> key = sshca::Ed25519Key::Generate();
  if (!key.ok()) return key.status();
  sshca::CertificateRequest cr;
  cr.key_id = "warden:" + ctx.call_id + ":" + ctx.session_id + ":ssh_run";
  cr.principals = h.principals;
  if (h.force_command) cr.force_command = r.certified;
  cr.source_addresses = config_.source_addresses;
  cr.lifetime = std::chrono::seconds(config_.cert_ttl_seconds);
  cr.clock_skew = std::chrono::seconds(config_.clock_skew_seconds);
  Result<sshca::Certificate> cert = ca_->Issue(cr, key.value()->public_key(), clock_);
  if (!cert.ok()) {
    // A request Warden built itself is a bug when refused; a CA in a token
    // that cannot sign now (Unavailable, PermissionDenied...) keeps its code.
    const Code code = cert.status().code() == Code::kInvalidArgument ? Code::kInternal : cert.status().code();
    return Status(code, "cannot issue the call's certificate: " + cert.status().message());
  }
  const sshca::Certificate& c = cert.value();
  out.metadata = {{"cert_serial", std::to_string(c.serial)},
                  {"key_id", c.key_id},
                  {"principals", Join(c.principals, ",")},
                  {"valid_after", std::to_string(c.valid_after)},
                  {"valid_before", std::to_string(c.valid_before)},
                  {"host", r.name},
                  {"address", h.address + ":" + std::to_string(h.port)},
                  {"force_command", h.force_command ? "certified" : "disabled: " + h.force_command_disabled_reason}};
  spdlog::info("ssh_run call {}: certificate serial {} key id {} principals {} valid {}..{} for {}@{}:{}",
               ctx.call_id, c.serial, c.key_id, out.metadata["principals"], c.valid_after, c.valid_before, h.user,
               h.address, h.port);
  const std::string cert_text = "certificate serial " + std::to_string(c.serial) + ", key id " + c.key_id;

  Result<Session> session = NewSession(r, config_);
  if (!session.ok()) return session.status();
  ssh_session s = session.value().get();
  const Steady::time_point setup_deadline = start + std::chrono::seconds(config_.connect_timeout_seconds);
  Wake wake = Wake::kReady;
  auto finish_cancelled = [&]() -> Result<RawOutput> {
    out.cancelled = true;
    out.duration = std::chrono::duration_cast<milliseconds>(Steady::now() - start);
    return out;
  };

  // 1. TCP and key exchange; nothing about the user is sent yet.
  std::optional<int> rc = Pump(s, *ctx.cancel, setup_deadline, SSH_AGAIN, &wake, [&] { return ssh_connect(s); });
  if (!rc && wake == Wake::kCancelled) return finish_cancelled();
  if (!rc)
    return Unavailable("cannot connect to " + Where(r) + ": no answer within " +
                       std::to_string(config_.connect_timeout_seconds) + " s (ssh.connect_timeout_seconds)");
  if (*rc != SSH_OK) return Unavailable("cannot connect to " + Where(r) + ": " + ssh_get_error(s));

  // 2. The host key, before any authentication request.
  if (Status st = VerifyHostKey(s, r); !st.ok()) return st;

  // 3. Authentication with the certificate.
  Result<Key> identity = ImportIdentity(*key.value(), c);
  key.value().reset();
  if (!identity.ok()) return identity.status();
  rc = Pump(s, *ctx.cancel, setup_deadline, SSH_AUTH_AGAIN, &wake,
            [&] { return ssh_userauth_publickey(s, nullptr, identity.value().get()); });
  identity.value().reset();
  if (!rc && wake == Wake::kCancelled) return finish_cancelled();
  if (!rc) return StepFailure(wake, r, config_, "authentication");
  if (*rc != SSH_AUTH_SUCCESS) {
    if (*rc == SSH_AUTH_ERROR) return Unavailable("authentication with " + Where(r) + " failed: " + ssh_get_error(s));
    return PermissionDenied(
        Where(r) + " refused the " + cert_text + " for user " + h.user +
        ". The host's sshd log says why; usual causes: it does not trust Warden's CA (TrustedUserCAKeys), none of "
        "the principals " + Join(c.principals, ",") + " is authorized for the user, the connection does not come "
        "from ssh.source_addresses, the host's clock is off, or the certificate is revoked");
  }

  // 4. One session channel, one exec request: exactly the certified command.
  // `state` and `callbacks` are declared first so that they outlive the
  // channel: freeing it may still process packets that reach the callbacks.
  ChannelState state;
  ssh_channel_callbacks_struct callbacks{};
  callbacks.userdata = &state;
  callbacks.channel_exit_status_function = OnExitStatus;
  callbacks.channel_exit_signal_function = OnExitSignal;
  callbacks.channel_close_function = OnClose;
  ssh_callbacks_init(&callbacks);
  Channel channel(ssh_channel_new(s));
  if (!channel) return Internal("cannot create an SSH channel");
  ssh_channel ch = channel.get();
  rc = Pump(s, *ctx.cancel, setup_deadline, SSH_AGAIN, &wake, [&] { return ssh_channel_open_session(ch); });
  if (!rc && wake == Wake::kCancelled) return finish_cancelled();
  if (!rc) return StepFailure(wake, r, config_, "opening a session");
  if (*rc != SSH_OK) return Unavailable(Where(r) + " refused a session channel: " + ssh_get_error(s));
  ssh_set_channel_callbacks(ch, &callbacks);
  // Taken before the request: the remote `timeout` starts later, so Warden's
  // own deadline passes first and the call is reported as timed out.
  const Steady::time_point exec_start = Steady::now();
  rc = Pump(s, *ctx.cancel, setup_deadline, SSH_AGAIN, &wake,
            [&] { return ssh_channel_request_exec(ch, r.certified.c_str()); });
  if (!rc && wake == Wake::kCancelled) return finish_cancelled();
  if (!rc) return StepFailure(wake, r, config_, "starting the command");
  if (*rc != SSH_OK) return Unavailable(Where(r) + " refused to run the command: " + ssh_get_error(s));
  ssh_channel_send_eof(ch);  // the command's stdin is empty, as /dev/null

  // 5. Output, exit status, and the stop on timeout or cancellation.
  Status collected = Collect(s, ch, r, exec_start + r.timeout, ctx, &state, &out);
  ssh_channel_close(ch);
  out.duration = std::chrono::duration_cast<milliseconds>(Steady::now() - start);
  if (!collected.ok()) return collected;
  return out;
}

}  // namespace warden::tools
