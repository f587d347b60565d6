// tools/incus_tool.h: the `incus_exec` and `incus_list` tools: commands in
// Incus containers and VMs, through the Incus REST API (tools/incus_client.h),
// confined to the projects of the config (incus.projects).
//
// Scoping: Incus projects are security domains (anklume: pro, perso,
// sandbox...). An instance is addressed as project + name. A project that is
// not in incus.projects is refused before any request is made (the schema's
// enum lists only the allowed ones, and Run checks again); names are checked
// to be Incus names before they reach a URL; and the instance Incus resolves
// must say it belongs to the requested project, else the call is refused.
// For a structural boundary on top of this one, give Warden an Incus client
// certificate restricted to the same projects (incus config trust add
// --restricted --projects pro).
//
// incus_exec runs an argv, never a shell unless the caller's argv is one
// (["sh", "-c", "..."]); optional cwd, environment ("NAME=value"), uid and
// gid. stdout and stderr come back apart with the exit status, each capped at
// min(output.max_capture_bytes, max_output_bytes) (the rest is counted, not
// kept). timeout_seconds and cancellation stop the command in the instance
// (see incus_client.h). Progress is reported about once a second.
// Nothing of the output is written anywhere (no record-output logs on the
// Incus host). The audit row's details hold project, instance, argv_sha256
// (ArgvSha256), exit_status, the Incus operation id and the server.
//
// Trust: config is operator input; arguments come from the model and are
// schema-checked, then checked here; output bytes and Incus error strings are
// untrusted and go only to the output pipeline.
//
// Thread safety: Run may be called from many threads at once.
#pragma once

#include <memory>
#include <string>

#include "core/config.h"
#include "tools/incus_client.h"
#include "tools/tool.h"

namespace warden::tools {

class IncusExecTool : public Tool {
 public:
  // `client` must outlive the tool; it may be shared with IncusListTool.
  IncusExecTool(const IncusConfig& config, std::shared_ptr<incus::Client> client);
  // spec: name "incus_exec"; input_schema lists incus.projects as the project enum.
  const ToolSpec& spec() const override;
  // Target is "incus:<project>/<instance>".
  std::string Target(const boost::json::object& args) const override;
  // Errors: PermissionDenied (project not in incus.projects, or the instance
  // resolved to another project), InvalidArgument (bad name, argv, cwd, env),
  // NotFound (no such instance in the project), FailedPrecondition (instance
  // not running; command could not start), Unavailable (server unreachable).
  Result<RawOutput> Run(const boost::json::object& args, CallContext& ctx) override;

 private:
  IncusConfig config_;
  std::shared_ptr<incus::Client> client_;
  ToolSpec spec_;
};

class IncusListTool : public Tool {
 public:
  IncusListTool(const IncusConfig& config, std::shared_ptr<incus::Client> client);
  // spec: name "incus_list"; read-only; optional project (enum of incus.projects).
  const ToolSpec& spec() const override;
  // Target is "incus:<project>" or "incus:*" (every configured project).
  std::string Target(const boost::json::object& args) const override;
  // stdout: one line per instance, "<project>/<name> <type> <status>".
  Result<RawOutput> Run(const boost::json::object& args, CallContext& ctx) override;

 private:
  IncusConfig config_;
  std::shared_ptr<incus::Client> client_;
  ToolSpec spec_;
};

// CheckProject refuses a project that is not in incus.projects (the scoping
// decision, also used by the unit tests).
Status CheckProject(const IncusConfig& config, const std::string& project);

}  // namespace warden::tools
