#include "core/config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <set>
#include <sstream>

namespace warden {
namespace fs = std::filesystem;

std::string ConfigError::ToString() const {
  std::ostringstream o;
  o << file;
  if (line > 0) o << ":" << line << ":" << column;
  o << ": ";
  if (!key.empty()) o << key << ": ";
  o << message;
  return o.str();
}

std::string DefaultStateDir() {
  if (const char* x = std::getenv("XDG_STATE_HOME"); x && *x) return std::string(x) + "/warden";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.local/state/warden";
  return "/var/lib/warden";
}

namespace {

// Reader walks one YAML document and records errors with their positions.
class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}
  std::vector<ConfigError> errors;

  void Error(const YAML::Node& n, const std::string& key, const std::string& msg) {
    ConfigError e{file_, 0, 0, key, msg};
    if (n.IsDefined()) {
      YAML::Mark m = n.Mark();
      if (m.line >= 0) {
        e.line = m.line + 1;
        e.column = m.column + 1;
      }
    }
    errors.push_back(std::move(e));
  }

  // Map checks that `n` is a mapping and that it has no keys beyond `known`.
  bool Map(const YAML::Node& n, const std::string& key, const std::set<std::string>& known) {
    if (!n.IsMap()) {
      Error(n, key, "must be a mapping");
      return false;
    }
    for (const auto& kv : n) {
      std::string k = kv.first.Scalar();
      if (!known.count(k)) {
        std::string allowed;
        for (const auto& s : known) allowed += (allowed.empty() ? "" : ", ") + s;
        Error(kv.first, Join(key, k), "unknown key (allowed here: " + allowed + ")");
      }
    }
    return true;
  }

  template <typename T>
  void Int(const YAML::Node& parent, const std::string& parent_key, const char* name, T* out, int64_t lo,
           int64_t hi) {
    YAML::Node n = parent[name];
    if (!n.IsDefined() || n.IsNull()) return;
    std::string key = Join(parent_key, name);
    int64_t v = 0;
    if (!n.IsScalar() || !YAML::convert<int64_t>::decode(n, v)) {
      Error(n, key, "must be an integer");
      return;
    }
    if (v < lo || v > hi) {
      Error(n, key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " +
                        std::to_string(v));
      return;
    }
    *out = static_cast<T>(v);
  }

  void Str(const YAML::Node& parent, const std::string& parent_key, const char* name, std::string* out,
           const std::set<std::string>& allowed = {}) {
    YAML::Node n = parent[name];
    if (!n.IsDefined() || n.IsNull()) return;
    std::string key = Join(parent_key, name);
    if (!n.IsScalar()) {
      Error(n, key, "must be a string");
      return;
    }
    std::string v = n.Scalar();
    if (!allowed.empty() && !allowed.count(v)) {
      std::string list;
      for (const auto& s : allowed) list += (list.empty() ? "" : ", ") + s;
      Error(n, key, "must be one of: " + list + " (got \"" + v + "\")");
      return;
    }
    *out = v;
  }

  static std::string Join(const std::string& a, const std::string& b) { return a.empty() ? b : a + "." + b; }

 private:
  std::string file_;
};

std::string Absolute(const std::string& p, const fs::path& base) {
  fs::path path(p);
  if (path.is_relative()) path = base / path;
  return path.lexically_normal().string();
}

}  // namespace

ConfigLoad LoadConfig(const std::string& path, const std::string& state_dir_override) {
  ConfigLoad load;
  Config& c = load.config;
  c.source = path.empty() ? "(defaults)" : path;
  Reader r(c.source);
  fs::path base = path.empty() ? fs::current_path() : fs::absolute(path).parent_path();

  YAML::Node root;
  if (!path.empty()) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) {
      load.errors.push_back({c.source, 0, 0, "", "cannot read config: no such file"});
      return load;
    }
    try {
      root = YAML::LoadFile(path);
    } catch (const YAML::ParserException& e) {
      load.errors.push_back({c.source, e.mark.line + 1, e.mark.column + 1, "", "YAML syntax error: " + e.msg});
      return load;
    } catch (const std::exception& e) {
      load.errors.push_back({c.source, 0, 0, "", std::string("cannot read config: ") + e.what()});
      return load;
    }
  }

  if (root.IsDefined() && !root.IsNull()) {
    try {
      if (r.Map(root, "", {"state_dir", "server", "output", "audit", "git"})) {
        r.Str(root, "", "state_dir", &c.state_dir);
        if (YAML::Node s = root["server"]; s.IsDefined() && !s.IsNull() &&
                                           r.Map(s, "server", {"max_concurrent_calls", "max_message_bytes",
                                                               "tools_page_size", "log_level"})) {
          r.Int(s, "server", "max_concurrent_calls", &c.server.max_concurrent_calls, 1, 1024);
          r.Int(s, "server", "max_message_bytes", &c.server.max_message_bytes, 1024, int64_t{256} << 20);
          r.Int(s, "server", "tools_page_size", &c.server.tools_page_size, 1, 1000);
          r.Str(s, "server", "log_level", &c.server.log_level,
                {"trace", "debug", "info", "warn", "error", "off"});
        }
        if (YAML::Node s = root["output"];
            s.IsDefined() && !s.IsNull() && r.Map(s, "output", {"max_response_bytes", "max_capture_bytes"})) {
          r.Int(s, "output", "max_response_bytes", &c.output.max_response_bytes, 1024, 1 << 20);
          r.Int(s, "output", "max_capture_bytes", &c.output.max_capture_bytes, 4096, int64_t{64} << 20);
        }
        if (YAML::Node s = root["audit"];
            s.IsDefined() && !s.IsNull() && r.Map(s, "audit", {"database", "retention_seconds"})) {
          r.Str(s, "audit", "database", &c.audit.database);
          r.Int(s, "audit", "retention_seconds", &c.audit.retention_seconds, 0, 86400 * 30);
        }
        if (YAML::Node s = root["git"]; s.IsDefined() && !s.IsNull() &&
                                        r.Map(s, "git", {"repos", "timeout_seconds", "max_timeout_seconds", "binary"})) {
          r.Str(s, "git", "binary", &c.git.binary);
          if (!fs::path(c.git.binary).is_absolute())
            r.Error(s["binary"], "git.binary", "must be an absolute path");
          r.Int(s, "git", "timeout_seconds", &c.git.timeout_seconds, 1, 3600);
          r.Int(s, "git", "max_timeout_seconds", &c.git.max_timeout_seconds, 1, 3600);
          if (YAML::Node repos = s["repos"]; repos.IsDefined() && !repos.IsNull()) {
            if (!repos.IsMap()) {
              r.Error(repos, "git.repos", "must be a mapping of repository name to path");
            } else {
              for (const auto& kv : repos) {
                std::string name = kv.first.Scalar();
                std::string key = "git.repos." + name;
                bool name_ok = !name.empty() && name.size() <= 64;
                for (char ch : name)
                  name_ok = name_ok && (std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' ||
                                        ch == '.');
                if (!name_ok) {
                  r.Error(kv.first, key, "repository names use letters, digits, '-', '_' and '.' (1-64 chars)");
                  continue;
                }
                if (!kv.second.IsScalar() || kv.second.Scalar().empty()) {
                  r.Error(kv.second, key, "must be a path to a git repository");
                  continue;
                }
                std::string p = Absolute(kv.second.Scalar(), base);
                std::error_code ec;
                if (!fs::is_directory(p, ec)) {
                  r.Error(kv.second, key, "no such directory: " + p);
                  continue;
                }
                if (!fs::exists(fs::path(p) / ".git", ec) && !fs::exists(fs::path(p) / "HEAD", ec)) {
                  r.Error(kv.second, key, "not a git repository (no .git or HEAD): " + p);
                  continue;
                }
                c.git.repos[name] = p;
              }
            }
          }
          if (c.git.timeout_seconds > c.git.max_timeout_seconds)
            r.Error(s["timeout_seconds"], "git.timeout_seconds", "must not exceed git.max_timeout_seconds");
        }
      }
    } catch (const YAML::Exception& e) {
      r.Error(YAML::Node(), "", std::string("invalid config: ") + e.what());
    }
  }

  if (!state_dir_override.empty()) c.state_dir = state_dir_override;
  if (c.state_dir.empty()) c.state_dir = DefaultStateDir();
  c.state_dir = Absolute(c.state_dir, base);
  if (c.audit.database.empty())
    c.audit.database = (fs::path(c.state_dir) / "audit.db").string();
  else
    c.audit.database = Absolute(c.audit.database, base);

  load.errors = std::move(r.errors);
  return load;
}

}  // namespace warden
