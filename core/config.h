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
};

struct GitConfig {
  std::map<std::string, std::string> repos;  // name -> absolute path (resolved at load)
  int timeout_seconds = 30;
  int max_timeout_seconds = 300;
  std::string binary = "/usr/bin/git";       // absolute path of the git executable
};

struct Config {
  std::string source;                        // the file it came from, or "(defaults)"
  std::string state_dir;                     // resolved at load: --state-dir, key, or XDG default
  ServerConfig server;
  OutputConfig output;
  AuditConfig audit;
  GitConfig git;
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

}  // namespace warden
