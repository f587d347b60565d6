// core/config.h: Warden's configuration, read from YAML (yaml-cpp).
//
// Every key is optional: with no file at all Warden runs on embedded defaults
// (state under $XDG_STATE_HOME/warden, SQLite audit store, regex anonymizer,
// no tools beyond those that need no inventory). Unknown keys, wrong types
// and out-of-range values are errors, each reported with the file, line and
// key path, so that a typo never silently falls back to a default.
//
// Trust: the config file is operator input (trusted), but it is still
// validated, because a broken config must give a clear error, not a crash.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace warden {

struct ServerConfig {
  int max_concurrent_calls = 8;              // tool calls running at once; more are refused
  uint64_t max_message_bytes = 4u << 20;     // a JSON-RPC line longer than this is refused unread
  int tools_page_size = 50;                  // tools/list page size
  std::string log_level = "info";            // stderr log level: trace debug info warn error off
};

struct OutputConfig {
  uint64_t max_response_bytes = 24 * 1024;   // sanitized text per response (both streams)
  uint64_t max_capture_bytes = 8u << 20;     // raw bytes kept per stream before anonymizing
};

struct AuditConfig {
  std::string database;                      // default: <state_dir>/audit.db
  int retention_seconds = 300;               // sanitized output bodies live this long
  int busy_timeout_ms = 5000;                // how long a write waits for a lock held by another process
};

struct GitConfig {
  std::map<std::string, std::string> repos;  // name -> absolute path (resolved at load)
  int timeout_seconds = 30;
  int max_timeout_seconds = 300;
  std::string binary = "/usr/bin/git";       // absolute path of the git executable
};

// One target host of ssh_run (ssh.hosts.<name>). Exactly one of
// host_key_sha256 and known_hosts is set: a host is never trusted on first use.
struct SshHostConfig {
  std::string address;                       // IP address or DNS name
  int port = 22;
  std::string user;                          // the account to log in as
  std::vector<std::string> principals;       // certificate principals; never empty
  std::string host_key_sha256;               // "SHA256:<43 base64 chars>", as ssh-keygen -l prints it
  std::string known_hosts;                   // absolute path of a known_hosts file
  bool force_command = true;                 // certify exactly the requested command
  std::string force_command_disabled_reason; // required when force_command is false
};

struct SshConfig {
  std::string ca_key;                        // a file (default: <state_dir>/ca/ssh_ca) or a "pkcs11:" URI
  std::string pkcs11_module;                 // with a pkcs11: ca_key: the PKCS#11 library (absolute path)
  std::string pkcs11_pin_file;               // with a pkcs11: ca_key: the file holding the token's user PIN
  int cert_ttl_seconds = 300;                // capped at issuance to 900 (sshca::kMaxCertificateLifetime)
  int clock_skew_seconds = 30;               // valid_after = now - skew
  std::vector<std::string> source_addresses; // CIDRs for source-address; required when hosts exist
  int connect_timeout_seconds = 10;          // TCP connect, key exchange and authentication
  int timeout_seconds = 60;                  // default command timeout
  int max_timeout_seconds = 900;             // largest timeout_seconds a call may ask for
  std::map<std::string, SshHostConfig> hosts;
};

// IncusConfig: the Incus server of incus_exec/incus_list and the projects
// (anklume's security domains) this Warden may touch. A project that is not
// listed is refused before any request; with no projects the tools are not
// registered.
struct IncusConfig {
  std::string server = "unix:/var/lib/incus/unix.socket";  // "unix:<absolute path>" or "https://host[:port]"
  std::string socket_path = "/var/lib/incus/unix.socket";  // from server "unix:..."; empty for https
  std::string host;                          // from server "https://..."; empty for unix
  int port = 8443;
  std::string client_cert;                   // https: PEM client certificate, trusted by the server
  std::string client_key;                    // https: its PEM private key (file mode 0600 or 0400)
  std::string server_cert_sha256;            // https: SHA-256 of the server's DER certificate, 64 lower-case hex
  std::vector<std::string> projects;         // allowed project names; never empty when the tools are on
  int connect_timeout_seconds = 10;          // connecting and every API request before the command starts
  int timeout_seconds = 60;                  // default command timeout
  int max_timeout_seconds = 900;             // largest timeout_seconds a call may ask for
};

// AnonymizerConfig: what layer 1 needs beyond its built-in rules.
struct AnonymizerPattern {
  std::string name;
  std::string pattern;   // RE2; group 1 (if any) is the span to replace
  std::string category;  // e.g. "customer_id", "password"
  bool secret = true;    // secret: irreversible placeholder; identifier: session token
};

struct AnonymizerConfig {
  std::string ip_mode = "tokens";  // tokens ([IP_3]) | prefix_preserving (Crypto-PAn, keyed per session)
  std::vector<std::string> zones;  // internal DNS zones beyond .internal .corp .local .lan .home.arpa
  std::string infra_yml;           // anklume infra.yml: its names and addresses are identifiers
  std::map<std::string, std::vector<std::string>> dictionary;  // category -> terms that are identifiers
  std::vector<AnonymizerPattern> patterns;                     // operator rules
  std::vector<std::string> keep;                               // terms never replaced
  // Built-in rules switched off by name (for a false positive the operator accepts).
  // The canaries prove what that costs: a disabled rule that a canary needs fails the self-test.
  std::vector<std::string> disabled_rules;
  // Layer 2: the local-LLM span classifier (needs the llm section). It runs
  // after layer 1 on every tool output; see anonymizer/layer2.h.
  struct Layer2 {
    bool enabled = false;
    std::string on_unavailable = "block";  // block: the call fails closed | regex_only: layer 1 alone, audited
    uint64_t chunk_bytes = 6000;           // text per model request
    uint64_t overlap_bytes = 400;          // shared by consecutive chunks (a span across a cut is seen whole)
    double max_redact_share = 0.25;        // a span whose occurrences cover more of the text is dropped
    uint64_t min_span_bytes = 3;           // shorter spans are dropped
    int max_dropped_spans = 8;             // more dropped spans in one call open the circuit breaker
    int cache_entries = 4096;              // chunk results kept for the session, by content hash
  } layer2;
};

// LlmConfig: the local model server (Ollama, or an OpenAI-compatible server
// such as llama.cpp's, vLLM or LM Studio) used by layer 2 and the local_*
// tools. Warden connects to this endpoint only, and follows no redirect.
struct LlmConfig {
  bool configured = false;                   // the section is present
  std::string endpoint;                      // "http(s)://host[:port]", no path
  bool https = false;
  std::string host;
  int port = 0;
  std::string api = "ollama";                // ollama (/api/chat) | openai (/v1/chat/completions)
  std::string model;
  int timeout_seconds = 60;                  // one request, connect to last byte
  int connect_timeout_seconds = 5;
  int max_concurrency = 2;                   // requests in flight at once, all callers together
  std::string bearer_token_file;             // the token in a file (mode 0600 or 0400), never inline
  std::string tls_ca_file;                   // https: verify the server's chain and name against this CA
  std::string tls_server_cert_sha256;        // https: or pin the server's certificate (64 hex digits)
  std::string system_prompt_file;            // layer 2's system prompt; default: compiled in
  std::string system_prompt_sha256;          // required with system_prompt_file (64 hex digits)
  uint64_t max_answer_bytes = 8192;          // local_analyze answers; code tasks get 4x
  uint64_t max_verbatim_bytes = 64;          // a run of raw input this long copied into an answer is blocked
  bool local_tools = true;                   // register local_analyze, local_generate, ... 
};

struct Config {
  std::string source;                        // the file it came from, or "(defaults)"
  std::string state_dir;                     // resolved at load: --state-dir, key, or XDG default
  ServerConfig server;
  OutputConfig output;
  AuditConfig audit;
  GitConfig git;
  SshConfig ssh;
  IncusConfig incus;
  AnonymizerConfig anonymizer;
  LlmConfig llm;
};

struct ConfigError {
  std::string file;
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based; 0 when unknown
  std::string key; // dotted path, e.g. "git.repos.demo"
  std::string message;
  std::string ToString() const;  // "file:line:column: key: message"
};

struct ConfigLoad {
  Config config;
  std::vector<ConfigError> errors;  // empty means the config is valid
  bool ok() const { return errors.empty(); }
};

// LoadConfig reads and validates `path` (empty path: embedded defaults).
// `state_dir_override` (from --state-dir) wins over the file's state_dir.
// Never throws; every problem is a ConfigError.
ConfigLoad LoadConfig(const std::string& path, const std::string& state_dir_override = "");

// DefaultStateDir is $XDG_STATE_HOME/warden, else $HOME/.local/state/warden.
std::string DefaultStateDir();

// IsCidr accepts an IPv4 or IPv6 address with an optional /prefix in range
// ("10.0.0.5", "10.0.0.0/8", "2001:db8::/32"), the form OpenSSH takes in a
// certificate's source-address option.
bool IsCidr(std::string_view text);

// IsIncusName accepts an Incus project or instance name as Warden allows
// it: 1-63 of [A-Za-z0-9-], not starting or ending with '-', not all digits.
// Nothing in such a name needs escaping in a URL or a log line.
bool IsIncusName(std::string_view name);

}  // namespace warden
