#include "tools/incus_tool.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <utility>
#include <vector>

#include "core/json_schema.h"

namespace warden::tools {
namespace json = boost::json;

namespace {

using Steady = std::chrono::steady_clock;

constexpr int64_t kMaxArgs = 1024;
constexpr int64_t kMaxArgBytes = 64 * 1024;  // all of argv
constexpr int64_t kMaxEnv = 64;
constexpr int64_t kMaxId = 4294967294;  // uid/gid; 2^32-1 is "no id"

std::string Join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : sep) + item;
  return out;
}

int DefaultTimeoutSeconds(const IncusConfig& config) { return DefaultTimeout(config.timeout_seconds, config.max_timeout_seconds); }

std::string Str(const json::object& args, const char* key) {
  const json::value* v = args.if_contains(key);
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

json::object ProjectProperty(const IncusConfig& config, const char* what) {
  json::array names;
  for (const auto& p : config.projects) names.emplace_back(p);
  return {{"type", "string"}, {"enum", std::move(names)}, {"description", what}};
}

bool IsEnvName(std::string_view n) {
  if (n.empty() || n.size() > 128 || (n[0] >= '0' && n[0] <= '9')) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// ParseExec turns checked arguments into an ExecRequest; InvalidArgument names
// the argument to change.
Result<incus::ExecRequest> ParseExec(const json::object& args, const IncusConfig& config, uint64_t* cap,
                                     const CallContext& ctx) {
  incus::ExecRequest r;
  r.project = Str(args, "project");
  if (Status s = CheckProject(config, r.project); !s.ok()) return s;
  r.instance = Str(args, "instance");
  if (!IsIncusName(r.instance))
    return InvalidArgument("\"instance\" must be an Incus instance name: 1-63 letters, digits and '-', not "
                           "starting or ending with '-'");
  int64_t bytes = 0;
  for (const auto& a : args.at("argv").as_array()) {
    std::string s(a.as_string());
    if (s.find('\0') != std::string::npos) return InvalidArgument("\"argv\" contains a NUL byte");
    bytes += static_cast<int64_t>(s.size()) + 1;
    r.argv.push_back(std::move(s));
  }
  if (r.argv.empty() || r.argv[0].empty())
    return InvalidArgument("\"argv\" needs the program as its first element, e.g. [\"ls\", \"-l\", \"/etc\"]");
  if (bytes > kMaxArgBytes) return InvalidArgument("\"argv\" is longer than 64 KiB in all");
  r.cwd = Str(args, "cwd");
  if (!r.cwd.empty() && (r.cwd[0] != '/' || r.cwd.find('\0') != std::string::npos))
    return InvalidArgument("\"cwd\" must be an absolute path in the instance");
  if (const json::value* env = args.if_contains("env")) {
    for (const auto& e : env->as_array()) {
      std::string_view s = e.as_string();
      const size_t eq = s.find('=');
      const std::string_view name = s.substr(0, eq);
      if (eq == std::string_view::npos || !IsEnvName(name))
        return InvalidArgument("\"env\" entries are NAME=value with NAME of letters, digits and '_' (got \"" +
                               std::string(s.substr(0, 64)) + "\")");
      if (name == incus::kMarkerVariable) return InvalidArgument(std::string(incus::kMarkerVariable) + " is Warden's own");
      if (s.find('\0') != std::string_view::npos) return InvalidArgument("\"env\" contains a NUL byte");
      r.environment.emplace_back(std::string(name), std::string(s.substr(eq + 1)));
    }
  }
  if (const json::value* v = args.if_contains("user")) r.user = static_cast<uint32_t>(v->to_number<int64_t>());
  if (const json::value* v = args.if_contains("group")) r.group = static_cast<uint32_t>(v->to_number<int64_t>());
  int64_t timeout = DefaultTimeoutSeconds(config);
  if (const json::value* v = args.if_contains("timeout_seconds")) timeout = v->to_number<int64_t>();
  r.deadline = Steady::now() + std::chrono::seconds(timeout);
  *cap = ctx.max_capture_bytes;
  if (const json::value* v = args.if_contains("max_output_bytes"))
    *cap = std::min<uint64_t>(*cap, v->to_number<uint64_t>());
  return r;
}

json::object ExecSchema(const IncusConfig& config) {
  json::object props = {
      {"project", ProjectProperty(config, "Incus project (security domain) of the instance")},
      {"instance",
       {{"type", "string"},
        {"minLength", 1},
        {"maxLength", 63},
        {"description", "instance name in that project (incus_list shows them)"}}},
      {"argv",
       {{"type", "array"},
        {"minItems", 1},
        {"maxItems", kMaxArgs},
        {"items", {{"type", "string"}}},
        {"description",
         "program and arguments, run directly without a shell; for shell syntax pass [\"sh\", \"-c\", \"...\"]"}}},
      {"cwd", {{"type", "string"}, {"minLength", 1}, {"maxLength", 4096}, {"description", "absolute working directory"}}},
      {"env",
       {{"type", "array"},
        {"maxItems", kMaxEnv},
        {"items", {{"type", "string"}, {"minLength", 2}, {"maxLength", 8192}}},
        {"description", "extra environment variables, each \"NAME=value\""}}},
      {"user", {{"type", "integer"}, {"minimum", 0}, {"maximum", kMaxId}, {"description", "uid in the instance (default 0)"}}},
      {"group", {{"type", "integer"}, {"minimum", 0}, {"maximum", kMaxId}, {"description", "gid in the instance (default 0)"}}},
      {"timeout_seconds",
       TimeoutProperty(DefaultTimeoutSeconds(config), config.max_timeout_seconds,
                       "stop the command (and what it started) in the instance after this many seconds")},
      {"max_output_bytes", MaxOutputProperty()},
  };
  return {{"type", "object"},
          {"properties", std::move(props)},
          {"required", {"project", "instance", "argv"}},
          {"additionalProperties", false}};
}

ToolSpec ExecSpec(const IncusConfig& config) {
  ToolSpec spec;
  spec.name = "incus_exec";
  spec.title = "Run a command in an Incus instance";
  spec.description =
      std::string(
          "Run one command (an argv, no shell unless you pass [\"sh\", \"-c\", ...]) in an Incus container or VM "
          "of an allowed project, and get its stdout, stderr and exit status. Projects are security domains: only "
          "the listed ones can be reached. The instance must be running. No tty, stdin is empty. The command and "
          "everything it started are killed after timeout_seconds. The command can change the instance: check "
          "what it does before running it.") +
      kUntrustedNotice;
  spec.input_schema = ExecSchema(config);
  spec.output_schema = CommandOutputSchema();
  spec.annotations = Annotations{.read_only = false, .destructive = true, .idempotent = false, .open_world = false};
  return spec;
}

ToolSpec ListSpec(const IncusConfig& config) {
  ToolSpec spec;
  spec.name = "incus_list";
  spec.title = "List the Incus instances Warden may reach";
  spec.description =
      std::string("List the Incus instances of the allowed projects (or of one project): one line per instance, "
                  "\"<project>/<name> <type> <status>\". Use these names with incus_exec.") +
      kUntrustedNotice;
  json::object props = {{"project", ProjectProperty(config, "only this project (default: every allowed project)")}};
  spec.input_schema = {{"type", "object"}, {"properties", std::move(props)}, {"additionalProperties", false}};
  spec.output_schema = CommandOutputSchema();
  spec.annotations = Annotations{.read_only = true, .destructive = false, .idempotent = true, .open_world = false};
  return spec;
}

}  // namespace

Status CheckProject(const IncusConfig& config, const std::string& project) {
  if (std::find(config.projects.begin(), config.projects.end(), project) != config.projects.end())
    return Status::Ok();
  return PermissionDenied("project \"" + project + "\" is not one this Warden may reach; allowed projects: " +
                          (config.projects.empty() ? std::string("none") : Join(config.projects, ", ")) +
                          " (incus.projects). Nothing was sent to Incus");
}

// ---- incus_exec ----

IncusExecTool::IncusExecTool(const IncusConfig& config, std::shared_ptr<incus::Client> client)
    : config_(config), client_(std::move(client)), spec_(ExecSpec(config_)) {}

const ToolSpec& IncusExecTool::spec() const { return spec_; }

std::string IncusExecTool::Target(const json::object& args) const {
  const std::string p = Str(args, "project"), i = Str(args, "instance");
  return "incus:" + (p.empty() ? "?" : p) + "/" + (i.empty() ? "?" : i);
}

Result<RawOutput> IncusExecTool::Run(const json::object& args, CallContext& ctx) {
  // The scoping decision comes first, before the schema: a project outside
  // the config is refused with its own message, and nothing reaches Incus.
  if (const json::value* p = args.if_contains("project"); p && p->is_string())
    if (Status s = CheckProject(config_, std::string(p->get_string())); !s.ok()) return s;
  if (Status s = ValidateJson(args, spec_.input_schema); !s.ok()) return s;
  uint64_t cap = 0;
  Result<incus::ExecRequest> request = ParseExec(args, config_, &cap, ctx);
  if (!request.ok()) return request.status();
  const incus::ExecRequest& r = request.value();
  const Steady::time_point start = Steady::now();
  RawOutput out;
  out.metadata = {{"project", r.project},
                  {"instance", r.instance},
                  {"argv_sha256", incus::ArgvSha256(r.argv)},
                  {"server", client_->Describe()}};
  if (ctx.cancel->cancelled()) {
    out.cancelled = true;
    return out;
  }

  incus::ExecCallbacks callbacks;
  callbacks.output = [&](int fd, std::string_view bytes) {
    CapturedStream& s = fd == 2 ? out.err : out.out;
    s.total += bytes.size();
    if (s.bytes.size() < cap) s.bytes.append(bytes.substr(0, cap - s.bytes.size()));
  };
  callbacks.tick = [&] {
    if (!ctx.progress) return;
    const uint64_t total = out.out.total + out.err.total;
    ctx.progress(total, "running in " + r.project + "/" + r.instance + "; " + std::to_string(total) +
                            " bytes received");
  };
  Result<incus::ExecResult> result = client_->Exec(r, callbacks, *ctx.cancel);
  out.duration = std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - start);
  if (!result.ok()) return result.status();
  const incus::ExecResult& e = result.value();
  out.timed_out = e.timed_out;
  out.cancelled = e.cancelled;
  out.exit_status = e.exit_status;
  if (e.killed && (!e.exit_status || *e.exit_status == 128 + 9)) {
    out.exit_status.reset();
    out.exit_signal = "KILL";
  }
  out.metadata["exit_status"] = out.exit_status ? std::to_string(*out.exit_status)
                                                : (out.exit_signal ? "signal " + *out.exit_signal : "none");
  if (!e.operation.empty()) out.metadata["operation"] = e.operation;
  if (!e.stop.empty()) out.metadata["stop"] = e.stop;
  spdlog::info("incus_exec call {}: {}/{} argv_sha256 {} operation {} exit {}{}", ctx.call_id, r.project, r.instance,
               out.metadata["argv_sha256"], e.operation, out.metadata["exit_status"],
               e.stop.empty() ? "" : " (" + e.stop + ")");
  return out;
}

// ---- incus_list ----

IncusListTool::IncusListTool(const IncusConfig& config, std::shared_ptr<incus::Client> client)
    : config_(config), client_(std::move(client)), spec_(ListSpec(config_)) {}

const ToolSpec& IncusListTool::spec() const { return spec_; }

std::string IncusListTool::Target(const json::object& args) const {
  const std::string p = Str(args, "project");
  return "incus:" + (p.empty() ? "*" : p);
}

Result<RawOutput> IncusListTool::Run(const json::object& args, CallContext& ctx) {
  std::vector<std::string> projects = config_.projects;
  if (const json::value* p = args.if_contains("project"); p && p->is_string()) {
    if (Status s = CheckProject(config_, std::string(p->get_string())); !s.ok()) return s;
    projects = {std::string(p->get_string())};
  }
  if (Status s = ValidateJson(args, spec_.input_schema); !s.ok()) return s;
  const Steady::time_point start = Steady::now();
  RawOutput out;
  size_t count = 0;
  for (const auto& project : projects) {
    Result<std::vector<incus::InstanceInfo>> list = client_->ListInstances(project, *ctx.cancel);
    if (!list.ok()) return list.status();
    for (const auto& i : list.value()) {
      out.out.bytes += i.project + "/" + i.name + " " + (i.type.empty() ? "?" : i.type) + " " +
                       (i.status.empty() ? "?" : i.status) + "\n";
      ++count;
    }
  }
  out.out.total = out.out.bytes.size();
  if (out.out.bytes.size() > ctx.max_capture_bytes) out.out.bytes.resize(ctx.max_capture_bytes);
  out.exit_status = 0;
  out.duration = std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - start);
  out.metadata = {{"projects", Join(projects, ",")}, {"instances", std::to_string(count)}, {"server", client_->Describe()}};
  return out;
}

}  // namespace warden::tools
