#include "core/config.h"

#include <arpa/inet.h>
#include <re2/re2.h>
#include <yaml-cpp/yaml.h>

#include <cstdio>
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

  void Double(const YAML::Node& parent, const std::string& parent_key, const char* name, double* out, double lo,
              double hi) {
    YAML::Node n = parent[name];
    if (!n.IsDefined() || n.IsNull()) return;
    std::string key = Join(parent_key, name);
    double v = 0;
    if (!n.IsScalar() || !YAML::convert<double>::decode(n, v) || v != v) {
      Error(n, key, "must be a number");
      return;
    }
    if (v < lo || v > hi) {
      Error(n, key, "must be between " + Num(lo) + " and " + Num(hi) + ", got " + n.Scalar());
      return;
    }
    *out = v;
  }

  void Bool(const YAML::Node& parent, const std::string& parent_key, const char* name, bool* out) {
    YAML::Node n = parent[name];
    if (!n.IsDefined() || n.IsNull()) return;
    bool v = false;
    if (!n.IsScalar() || !YAML::convert<bool>::decode(n, v)) {
      Error(n, Join(parent_key, name), "must be true or false");
      return;
    }
    *out = v;
  }

  static std::string Num(double v) {
    std::ostringstream o;
    o << v;
    return o.str();
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

// Names the model chooses from (repos, hosts): letters, digits, '-', '_', '.'.
bool IsName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' && ch != '.') return false;
  return true;
}

// A word that goes into a certificate or onto a command line unquoted
// (user, principal, address): printable, no spaces, no ',', not an option.
bool IsWord(const std::string& s) {
  if (s.empty() || s.size() > 255 || s[0] == '-') return false;
  for (char ch : s)
    if (ch <= 0x20 || ch >= 0x7f || ch == ',') return false;
  return true;
}

// "SHA256:" and the 43 unpadded base64 characters of a SHA-256 digest.
bool IsSha256Fingerprint(const std::string& s) {
  constexpr std::string_view kPrefix = "SHA256:";
  if (s.size() != kPrefix.size() + 43 || s.compare(0, kPrefix.size(), kPrefix) != 0) return false;
  for (size_t i = kPrefix.size(); i < s.size(); ++i)
    if (!std::isalnum(static_cast<unsigned char>(s[i])) && s[i] != '+' && s[i] != '/') return false;
  return true;
}

// StrList reads a sequence of strings; each must satisfy `ok`.
void StrList(Reader& r, const YAML::Node& parent, const std::string& parent_key, const char* name,
             std::vector<std::string>* out, const std::function<bool(const std::string&)>& ok, const char* what) {
  YAML::Node n = parent[name];
  if (!n.IsDefined() || n.IsNull()) return;
  const std::string key = Reader::Join(parent_key, name);
  if (!n.IsSequence()) {
    r.Error(n, key, std::string("must be a list of ") + what);
    return;
  }
  out->clear();
  for (size_t i = 0; i < n.size(); ++i) {
    if (!n[i].IsScalar() || !ok(n[i].Scalar())) {
      r.Error(n[i], key + "[" + std::to_string(i) + "]", std::string("must be ") + what);
      continue;
    }
    out->push_back(n[i].Scalar());
  }
}

void ReadSshHost(Reader& r, const YAML::Node& h, const std::string& key, const fs::path& base, SshHostConfig* out) {
  if (!r.Map(h, key, {"address", "port", "user", "principals", "host_key_sha256", "known_hosts", "force_command"}))
    return;
  for (const char* required : {"address", "user", "principals"})
    if (!h[required].IsDefined() || h[required].IsNull()) r.Error(h, Reader::Join(key, required), "is required");
  r.Str(h, key, "address", &out->address);
  if (!out->address.empty() && !IsWord(out->address))
    r.Error(h["address"], key + ".address", "must be an IP address or host name");
  r.Int(h, key, "port", &out->port, 1, 65535);
  r.Str(h, key, "user", &out->user);
  if (!out->user.empty() && !IsWord(out->user)) r.Error(h["user"], key + ".user", "must be a user name");
  StrList(r, h, key, "principals", &out->principals, IsWord, "principal names (no spaces or ',')");
  if (h["principals"].IsSequence() && h["principals"].size() == 0)
    r.Error(h["principals"], key + ".principals", "must list at least one principal");
  r.Str(h, key, "host_key_sha256", &out->host_key_sha256);
  if (!out->host_key_sha256.empty() && !IsSha256Fingerprint(out->host_key_sha256))
    r.Error(h["host_key_sha256"], key + ".host_key_sha256",
            "must be an OpenSSH SHA256 fingerprint such as SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s "
            "(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)");
  r.Str(h, key, "known_hosts", &out->known_hosts);
  if (!out->known_hosts.empty()) {
    out->known_hosts = Absolute(out->known_hosts, base);
    std::error_code ec;
    if (!fs::is_regular_file(out->known_hosts, ec))
      r.Error(h["known_hosts"], key + ".known_hosts", "no such file: " + out->known_hosts);
  }
  if (out->host_key_sha256.empty() == out->known_hosts.empty())
    r.Error(h, key, "give exactly one of host_key_sha256 and known_hosts (unknown host keys are never accepted)");
  if (YAML::Node f = h["force_command"]; f.IsDefined() && !f.IsNull()) {
    bool on = true;
    if (f.IsScalar() && YAML::convert<bool>::decode(f, on) && on) {
      out->force_command = true;
    } else if (f.IsMap() && r.Map(f, key + ".force_command", {"disabled_reason"})) {
      r.Str(f, key + ".force_command", "disabled_reason", &out->force_command_disabled_reason);
      if (out->force_command_disabled_reason.empty())
        r.Error(f, key + ".force_command.disabled_reason", "must say why force-command is disabled");
      else
        out->force_command = false;
    } else if (!f.IsMap()) {
      r.Error(f, key + ".force_command", "must be true, or {disabled_reason: \"why\"} to disable it");
    }
  }
}

void ReadSsh(Reader& r, const YAML::Node& s, const fs::path& base, SshConfig* c) {
  if (!r.Map(s, "ssh", {"ca_key", "pkcs11_module", "pkcs11_pin_file", "cert_ttl_seconds", "clock_skew_seconds",
                        "source_addresses", "connect_timeout_seconds", "timeout_seconds", "max_timeout_seconds",
                        "hosts"}))
    return;
  r.Str(s, "ssh", "ca_key", &c->ca_key);
  // An RFC 7512 URI names a key inside a PKCS#11 token (sshca/pkcs11_signer.h
  // checks the rest); anything else is a file path.
  const bool pkcs11 = c->ca_key.rfind("pkcs11:", 0) == 0;
  if (pkcs11 && c->ca_key.find("pin-value") != std::string::npos)
    r.Error(s["ca_key"], "ssh.ca_key",
            "must not carry the PIN (pin-value): put it in a file (mode 0600) named by ssh.pkcs11_pin_file");
  else if (!c->ca_key.empty() && !pkcs11)
    c->ca_key = Absolute(c->ca_key, base);
  r.Str(s, "ssh", "pkcs11_module", &c->pkcs11_module);
  r.Str(s, "ssh", "pkcs11_pin_file", &c->pkcs11_pin_file);
  if (!pkcs11) {
    for (const char* name : {"pkcs11_module", "pkcs11_pin_file"})
      if (s[name].IsDefined() && !s[name].IsNull())
        r.Error(s[name], std::string("ssh.") + name, "applies only when ssh.ca_key is a pkcs11: URI (RFC 7512)");
  } else {
    if (!c->pkcs11_module.empty() && !fs::path(c->pkcs11_module).is_absolute())
      r.Error(s["pkcs11_module"], "ssh.pkcs11_module", "must be an absolute path (e.g. /usr/lib/softhsm/libsofthsm2.so)");
    if (!c->pkcs11_pin_file.empty()) c->pkcs11_pin_file = Absolute(c->pkcs11_pin_file, base);
  }
  // Above 900 is accepted and capped at issuance (check-config warns).
  r.Int(s, "ssh", "cert_ttl_seconds", &c->cert_ttl_seconds, 10, 86400);
  r.Int(s, "ssh", "clock_skew_seconds", &c->clock_skew_seconds, 0, 300);
  StrList(r, s, "ssh", "source_addresses", &c->source_addresses,
          [](const std::string& a) { return IsCidr(a); }, "an address or CIDR such as 10.0.0.5/32");
  r.Int(s, "ssh", "connect_timeout_seconds", &c->connect_timeout_seconds, 1, 300);
  r.Int(s, "ssh", "timeout_seconds", &c->timeout_seconds, 1, 3600);
  r.Int(s, "ssh", "max_timeout_seconds", &c->max_timeout_seconds, 1, 3600);
  if (c->timeout_seconds > c->max_timeout_seconds)
    r.Error(s["timeout_seconds"], "ssh.timeout_seconds", "must not exceed ssh.max_timeout_seconds");
  YAML::Node hosts = s["hosts"];
  if (!hosts.IsDefined() || hosts.IsNull()) return;
  if (!hosts.IsMap()) {
    r.Error(hosts, "ssh.hosts", "must be a mapping of host name to host settings");
    return;
  }
  for (const auto& kv : hosts) {
    const std::string name = kv.first.Scalar();
    const std::string key = "ssh.hosts." + name;
    if (!IsName(name)) {
      r.Error(kv.first, key, "host names use letters, digits, '-', '_' and '.' (1-64 chars)");
      continue;
    }
    size_t errors = r.errors.size();
    SshHostConfig host;
    ReadSshHost(r, kv.second, key, base, &host);
    if (r.errors.size() == errors) c->hosts[name] = std::move(host);
  }
  // Without source-address a certificate works from anywhere for its
  // lifetime; Warden's egress addresses must be stated, not guessed.
  if (!hosts.IsMap() || hosts.size() == 0 || !c->source_addresses.empty()) return;
  r.Error(s["source_addresses"].IsDefined() ? s["source_addresses"] : s, "ssh.source_addresses",
          "is required when ssh.hosts are configured: list the addresses Warden connects from "
          "(e.g. [10.0.0.5/32]); certificates are valid only from there");
}

// ParseIncusServer splits incus.server into a unix socket path or an https
// host and port; false (with *why set) when it is neither.
bool ParseIncusServer(const std::string& server, IncusConfig* c, std::string* why) {
  constexpr std::string_view kUnix = "unix:", kHttps = "https://";
  if (server.compare(0, kUnix.size(), kUnix) == 0) {
    c->socket_path = server.substr(kUnix.size());
    if (!fs::path(c->socket_path).is_absolute()) {
      *why = "a unix socket must be an absolute path, e.g. unix:/var/lib/incus/unix.socket";
      return false;
    }
    return true;
  }
  if (server.compare(0, kHttps.size(), kHttps) != 0) {
    *why = "must be unix:<socket path> or https://host[:port]";
    return false;
  }
  c->socket_path.clear();
  std::string rest = server.substr(kHttps.size());
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  std::string port;
  if (!rest.empty() && rest.front() == '[') {  // [IPv6]:port
    const size_t close = rest.find(']');
    if (close == std::string::npos) {
      *why = "an IPv6 address needs its closing ']'";
      return false;
    }
    c->host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') {
        *why = "expected ':' and a port after ']'";
        return false;
      }
      port = rest.substr(close + 2);
    }
  } else {
    const size_t colon = rest.rfind(':');
    c->host = rest.substr(0, colon);
    if (colon != std::string::npos) port = rest.substr(colon + 1);
  }
  if (c->host.empty() || !IsWord(c->host) || c->host.find_first_of("/?#@[]") != std::string::npos) {
    *why = "needs a host name or address after https:// (and no path)";
    return false;
  }
  if (!port.empty()) {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) < 1 ||
        std::stoi(port) > 65535) {
      *why = "the port must be a number from 1 to 65535";
      return false;
    }
    c->port = std::stoi(port);
  }
  return true;
}

// SectionFile reads a file path of `section`: made absolute, a regular file;
// a `secret` one (a private key, a token) must not be readable by others.
void SectionFile(Reader& r, const YAML::Node& s, const char* section, const char* name, const fs::path& base, bool secret,
                 std::string* out) {
  const std::string key = std::string(section) + "." + name;
  r.Str(s, section, name, out);
  if (out->empty()) return;
  *out = Absolute(*out, base);
  std::error_code ec;
  fs::file_status st = fs::status(*out, ec);
  if (ec || !fs::is_regular_file(st)) {
    r.Error(s[name], key, "no such file: " + *out);
    return;
  }
  if (secret && (st.permissions() & (fs::perms::group_all | fs::perms::others_all)) != fs::perms::none) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.permissions() & fs::perms::mask));
    r.Error(s[name], key, std::string(*out) + " has mode " + mode + "; a secret file must be 0600 or 0400");
  }
}

// Hex64 lower-cases a SHA-256 given as 64 hex digits (':' separators allowed); empty if it is not one.
std::string Hex64(const std::string& in) {
  std::string hex;
  for (char ch : in)
    if (ch != ':') hex.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
  if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != std::string::npos) return "";
  return hex;
}

void ReadIncus(Reader& r, const YAML::Node& s, const fs::path& base, IncusConfig* c) {
  if (!r.Map(s, "incus", {"server", "client_cert", "client_key", "server_cert_sha256", "projects",
                          "connect_timeout_seconds", "timeout_seconds", "max_timeout_seconds"}))
    return;
  r.Str(s, "incus", "server", &c->server);
  std::string why;
  if (!ParseIncusServer(c->server, c, &why)) r.Error(s["server"], "incus.server", why + " (got \"" + c->server + "\")");
  SectionFile(r, s, "incus", "client_cert", base, false, &c->client_cert);
  SectionFile(r, s, "incus", "client_key", base, true, &c->client_key);
  r.Str(s, "incus", "server_cert_sha256", &c->server_cert_sha256);
  if (!c->server_cert_sha256.empty()) {
    std::string hex = Hex64(c->server_cert_sha256);
    if (hex.empty())
      r.Error(s["server_cert_sha256"], "incus.server_cert_sha256",
              "must be the SHA-256 of the server certificate, 64 hex digits (as `incus remote add` or "
              "`openssl x509 -noout -fingerprint -sha256` prints it)");
    else
      c->server_cert_sha256 = hex;
  }
  const bool https = !c->host.empty();
  for (const char* k : {"client_cert", "client_key", "server_cert_sha256"}) {
    const bool given = s[k].IsDefined() && !s[k].IsNull();
    if (https && !given)
      r.Error(s, std::string("incus.") + k,
              "is required with an https server (client certificate and key, and the pinned server certificate)");
    if (!https && given) r.Error(s[k], std::string("incus.") + k, "is only for an https server");
  }
  StrList(r, s, "incus", "projects", &c->projects, [](const std::string& p) { return IsIncusName(p); },
          "Incus project names (letters, digits, '-'; at most 63)");
  std::set<std::string> seen;
  for (const auto& p : c->projects)
    if (!seen.insert(p).second) r.Error(s["projects"], "incus.projects", "lists \"" + p + "\" twice");
  r.Int(s, "incus", "connect_timeout_seconds", &c->connect_timeout_seconds, 1, 300);
  r.Int(s, "incus", "timeout_seconds", &c->timeout_seconds, 1, 3600);
  r.Int(s, "incus", "max_timeout_seconds", &c->max_timeout_seconds, 1, 3600);
  if (c->timeout_seconds > c->max_timeout_seconds)
    r.Error(s["timeout_seconds"], "incus.timeout_seconds", "must not exceed incus.max_timeout_seconds");
}

}  // namespace

bool IsCidr(std::string_view text) {
  const size_t slash = text.find('/');
  const std::string addr(text.substr(0, slash));
  unsigned char buf[16];
  int max_prefix = 0;
  if (::inet_pton(AF_INET, addr.c_str(), buf) == 1)
    max_prefix = 32;
  else if (::inet_pton(AF_INET6, addr.c_str(), buf) == 1)
    max_prefix = 128;
  else
    return false;
  if (slash == std::string_view::npos) return true;
  std::string_view prefix = text.substr(slash + 1);
  if (prefix.empty() || prefix.size() > 3) return false;
  int v = 0;
  for (char ch : prefix) {
    if (ch < '0' || ch > '9') return false;
    v = v * 10 + (ch - '0');
  }
  return v <= max_prefix;
}

bool IsIncusName(std::string_view name) {
  if (name.empty() || name.size() > 63 || name.front() == '-' || name.back() == '-') return false;
  bool digits_only = true;
  for (char ch : name) {
    const bool digit = ch >= '0' && ch <= '9';
    if (!digit && !(ch >= 'a' && ch <= 'z') && !(ch >= 'A' && ch <= 'Z') && ch != '-') return false;
    digits_only = digits_only && digit;
  }
  return !digits_only;
}

void ReadLayer2(Reader& r, const YAML::Node& s, AnonymizerConfig::Layer2* c) {
  const std::string k = "anonymizer.layer2";
  if (!r.Map(s, k, {"enabled", "on_unavailable", "chunk_bytes", "overlap_bytes", "max_redact_share",
                    "min_span_bytes", "max_dropped_spans", "cache_entries"}))
    return;
  r.Bool(s, k, "enabled", &c->enabled);
  r.Str(s, k, "on_unavailable", &c->on_unavailable, {"block", "regex_only"});
  r.Int(s, k, "chunk_bytes", &c->chunk_bytes, 512, 1 << 20);
  r.Int(s, k, "overlap_bytes", &c->overlap_bytes, 0, 1 << 18);
  r.Double(s, k, "max_redact_share", &c->max_redact_share, 0.001, 1.0);
  r.Int(s, k, "min_span_bytes", &c->min_span_bytes, 1, 1024);
  r.Int(s, k, "max_dropped_spans", &c->max_dropped_spans, 0, 100000);
  r.Int(s, k, "cache_entries", &c->cache_entries, 0, 1 << 20);
  if (c->overlap_bytes * 2 > c->chunk_bytes)
    r.Error(s["overlap_bytes"], k + ".overlap_bytes", "must be at most half of anonymizer.layer2.chunk_bytes");
}

void ReadLlm(Reader& r, const YAML::Node& s, const fs::path& base, LlmConfig* c) {
  const std::string k = "llm";
  if (!r.Map(s, k, {"endpoint", "api", "model", "timeout_seconds", "connect_timeout_seconds", "max_concurrency",
                    "bearer_token_file", "tls_ca_file", "tls_server_cert_sha256", "system_prompt_file",
                    "system_prompt_sha256", "max_answer_bytes", "max_verbatim_bytes", "local_tools"}))
    return;
  c->configured = true;
  for (const char* required : {"endpoint", "model"})
    if (!s[required].IsDefined() || s[required].IsNull()) r.Error(s, k + "." + required, "is required");
  r.Str(s, k, "endpoint", &c->endpoint);
  if (!c->endpoint.empty()) {
    // http(s)://host[:port]: the only address Warden's model client connects to.
    static const RE2 kEndpoint(R"(^(https?)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?/?$)");
    std::string scheme, host, port;
    if (!RE2::FullMatch(c->endpoint, kEndpoint, &scheme, &host, &port)) {
      r.Error(s["endpoint"], k + ".endpoint",
              "must be http://host:port or https://host:port, without a path (got \"" + c->endpoint + "\")");
    } else {
      c->https = scheme == "https";
      if (host.front() == '[') host = host.substr(1, host.size() - 2);
      c->host = host;
      c->port = port.empty() ? (c->https ? 443 : 80) : std::stoi(port);
      if (c->port < 1 || c->port > 65535) r.Error(s["endpoint"], k + ".endpoint", "the port must be 1 to 65535");
    }
  }
  r.Str(s, k, "api", &c->api, {"ollama", "openai"});
  r.Str(s, k, "model", &c->model);
  if (s["model"].IsDefined() && !s["model"].IsNull() &&
      (c->model.empty() || c->model.size() > 200 || !IsWord(c->model)))
    r.Error(s["model"], k + ".model", "must be a model name such as qwen2.5:7b-instruct (no spaces)");
  r.Int(s, k, "timeout_seconds", &c->timeout_seconds, 1, 3600);
  r.Int(s, k, "connect_timeout_seconds", &c->connect_timeout_seconds, 1, 300);
  r.Int(s, k, "max_concurrency", &c->max_concurrency, 1, 256);
  r.Int(s, k, "max_answer_bytes", &c->max_answer_bytes, 256, 1 << 20);
  r.Int(s, k, "max_verbatim_bytes", &c->max_verbatim_bytes, 16, 1 << 16);
  r.Bool(s, k, "local_tools", &c->local_tools);
  SectionFile(r, s, "llm", "bearer_token_file", base, true, &c->bearer_token_file);
  SectionFile(r, s, "llm", "tls_ca_file", base, false, &c->tls_ca_file);
  SectionFile(r, s, "llm", "system_prompt_file", base, false, &c->system_prompt_file);
  std::string pin;
  r.Str(s, k, "tls_server_cert_sha256", &pin);
  if (!pin.empty()) {
    c->tls_server_cert_sha256 = Hex64(pin);
    if (c->tls_server_cert_sha256.empty())
      r.Error(s["tls_server_cert_sha256"], k + ".tls_server_cert_sha256",
              "must be the SHA-256 of the server certificate, 64 hex digits (openssl x509 -noout -fingerprint -sha256)");
  }
  const bool tls_given = !c->tls_ca_file.empty() || !c->tls_server_cert_sha256.empty();
  if (!c->https && tls_given)
    r.Error(s, k + ".endpoint", "tls_ca_file and tls_server_cert_sha256 are for an https endpoint");
  if (c->https && !tls_given)
    r.Error(s, k + ".endpoint",
            "an https endpoint needs tls_ca_file (a CA to verify it against) or tls_server_cert_sha256 (its pinned "
            "certificate)");
  std::string prompt_sha;
  r.Str(s, k, "system_prompt_sha256", &prompt_sha);
  if (!prompt_sha.empty()) {
    c->system_prompt_sha256 = Hex64(prompt_sha);
    if (c->system_prompt_sha256.empty())
      r.Error(s["system_prompt_sha256"], k + ".system_prompt_sha256",
              "must be 64 hex digits (sha256sum of the prompt file)");
  }
  if (!c->system_prompt_file.empty() && prompt_sha.empty())
    r.Error(s["system_prompt_file"], k + ".system_prompt_sha256",
            "is required with system_prompt_file: the prompt is pinned by its SHA-256");
  if (c->system_prompt_file.empty() && !c->system_prompt_sha256.empty())
    r.Error(s["system_prompt_sha256"], k + ".system_prompt_sha256", "is only for system_prompt_file");
}

void ReadAnonymizer(Reader& r, const YAML::Node& s, const fs::path& base, AnonymizerConfig* c) {
  const std::string k = "anonymizer";
  if (!r.Map(s, k, {"ip_mode", "zones", "infra_yml", "dictionary", "patterns", "keep", "disabled_rules", "layer2"}))
    return;
  if (YAML::Node l2 = s["layer2"]; l2.IsDefined() && !l2.IsNull()) ReadLayer2(r, l2, &c->layer2);
  r.Str(s, k, "ip_mode", &c->ip_mode, {"tokens", "prefix_preserving"});
  auto zone = [](const std::string& z) {
    return !z.empty() && z.front() != '.' && z.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-") == std::string::npos;
  };
  auto term = [](const std::string& t) { return !t.empty() && t.size() <= 200; };
  StrList(r, s, k, "zones", &c->zones, zone, "lower-case DNS suffixes such as example.net");
  StrList(r, s, k, "keep", &c->keep, term, "non-empty terms");
  StrList(r, s, k, "disabled_rules", &c->disabled_rules, [](const std::string& n) { return IsName(n); },
          "built-in rule names, as `warden anonymize --explain` prints them");
  std::string infra;
  r.Str(s, k, "infra_yml", &infra);
  if (!infra.empty()) {
    c->infra_yml = Absolute(infra, base);
    std::error_code ec;
    if (!fs::is_regular_file(c->infra_yml, ec)) r.Error(s["infra_yml"], k + ".infra_yml", "no such file: " + c->infra_yml);
  }
  if (YAML::Node d = s["dictionary"]; d.IsDefined() && !d.IsNull()) {
    if (!d.IsMap()) {
      r.Error(d, k + ".dictionary", "must be a mapping of category to a list of terms");
    } else {
      for (const auto& kv : d) {
        std::string cat = kv.first.Scalar();
        if (!IsName(cat)) r.Error(kv.first, k + ".dictionary." + cat, "category names use letters, digits, '-', '_'");
        StrList(r, d, k + ".dictionary", cat.c_str(), &c->dictionary[cat], term, "non-empty terms");
      }
    }
  }
  if (YAML::Node ps = s["patterns"]; ps.IsDefined() && !ps.IsNull()) {
    if (!ps.IsSequence()) {
      r.Error(ps, k + ".patterns", "must be a list of {name, pattern, category, secret}");
      return;
    }
    for (size_t i = 0; i < ps.size(); ++i) {
      std::string pk = k + ".patterns[" + std::to_string(i) + "]";
      YAML::Node p = ps[i];
      if (!r.Map(p, pk, {"name", "pattern", "category", "secret"})) continue;
      AnonymizerPattern ap;
      r.Str(p, pk, "name", &ap.name);
      r.Str(p, pk, "pattern", &ap.pattern);
      r.Str(p, pk, "category", &ap.category);
      if (YAML::Node sec = p["secret"]; sec.IsDefined()) {
        bool v = true;
        if (!sec.IsScalar() || !YAML::convert<bool>::decode(sec, v)) r.Error(sec, pk + ".secret", "must be true or false");
        ap.secret = v;
      }
      if (ap.name.empty() || ap.pattern.empty() || ap.category.empty()) {
        r.Error(p, pk, "needs name, pattern and category");
        continue;
      }
      RE2 re(ap.pattern, RE2::Quiet);
      if (!re.ok()) r.Error(p["pattern"], pk + ".pattern", "does not compile: " + re.error());
      else if (re.NumberOfCapturingGroups() > 1)
        r.Error(p["pattern"], pk + ".pattern", "may have at most one capturing group (the span to replace)");
      else if (!IsName(ap.category))
        r.Error(p["category"], pk + ".category", "category names use letters, digits, '-', '_'");
      else
        c->patterns.push_back(std::move(ap));
    }
  }
}

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
      if (r.Map(root, "", {"state_dir", "server", "output", "audit", "git", "ssh", "incus", "anonymizer", "llm"})) {
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
            s.IsDefined() && !s.IsNull() && r.Map(s, "audit", {"database", "retention_seconds", "busy_timeout_ms"})) {
          r.Str(s, "audit", "database", &c.audit.database);
          r.Int(s, "audit", "retention_seconds", &c.audit.retention_seconds, 0, 86400 * 30);
          r.Int(s, "audit", "busy_timeout_ms", &c.audit.busy_timeout_ms, 0, 600'000);
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
                if (!IsName(name)) {
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
        if (YAML::Node s = root["ssh"]; s.IsDefined() && !s.IsNull()) ReadSsh(r, s, base, &c.ssh);
        if (YAML::Node s = root["incus"]; s.IsDefined() && !s.IsNull()) ReadIncus(r, s, base, &c.incus);
        if (YAML::Node s = root["anonymizer"]; s.IsDefined() && !s.IsNull()) ReadAnonymizer(r, s, base, &c.anonymizer);
        if (YAML::Node s = root["llm"]; s.IsDefined() && !s.IsNull()) ReadLlm(r, s, base, &c.llm);
        if (c.anonymizer.layer2.enabled && !c.llm.configured)
          r.Error(root["anonymizer"]["layer2"]["enabled"], "anonymizer.layer2.enabled",
                  "layer 2 needs a local model: add the llm section (endpoint, model)");
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
  if (c.ssh.ca_key.empty()) c.ssh.ca_key = (fs::path(c.state_dir) / "ca" / "ssh_ca").string();

  load.errors = std::move(r.errors);
  return load;
}

}  // namespace warden
