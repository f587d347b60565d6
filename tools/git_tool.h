// tools/git_tool.h: the `git` tool, read-only inspection of the repositories
// named in the config (status, log, diff, show, blame, ls-files, grep,
// branch, tag).
//
// Trust: the config (repo names and paths) is operator input. Arguments come
// from the model: they are schema-checked by the server and checked again
// here (refs from a safe charset and never an option, paths relative and
// confined to the repo after resolving symlinks, no pathspec magic).
// Untrusted: bytes from the target, and the repository itself. A repo's own
// config, attributes, hooks and submodules are hostile input: git runs with a
// fixed environment (no global or system config, no HOME), never through a
// shell, and with overrides that keep it from starting anything but itself
// (pager, external diff, textconv, fsmonitor, hooks, filter drivers,
// submodule processes, signature checks, network) or from reading a work
// tree other than the configured directory (core.worktree).
#pragma once

#include <string>

#include "core/config.h"
#include "tools/tool.h"

namespace warden::tools {

class GitTool : public Tool {
 public:
  // `config.repos` maps names to absolute paths; `config.binary` is executed as is.
  explicit GitTool(const GitConfig& config);

  // spec: name "git"; input_schema lists the configured repo names as an enum.
  const ToolSpec& spec() const override;
  // Target is "repo:<name>".
  std::string Target(const boost::json::object& args) const override;
  // Run checks args (schema, then semantics) and runs one git command.
  // Errors: NotFound for an unknown repo; InvalidArgument naming the argument
  // to change; FailedPrecondition when the repo's config cannot be read or
  // made safe; start failures from RunProcess. OK: RawOutput with
  // metadata["operation"], possibly timed out or cancelled.
  Result<RawOutput> Run(const boost::json::object& args, CallContext& ctx) override;

 private:
  GitConfig config_;
  ToolSpec spec_;
};

}  // namespace warden::tools
