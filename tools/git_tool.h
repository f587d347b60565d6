// tools/git_tool.h: the `git` tool, read-only inspection of the repositories
// named in the config (status, log, diff, show, blame, ls-files, grep,
// branch, tag).
//
// Trust: the config (repo names and paths) is operator input. Arguments come
// from the model: they are schema-checked by the server and checked again
// here (refs from a safe charset and never an option, paths relative and
// confined to the repo after resolving symlinks, no pathspec magic).
// Untrusted: bytes from the target, and the repository itself: its config,
// attributes, hooks, objects, refs and submodules are hostile input, written
// by people and machines Warden does not trust. Whatever they say, a call runs
// only git itself, reads only that repository and reaches no network:
//  - git runs with an environment built from nothing (no global or system
//    config, HOME and XDG_CONFIG_HOME an empty directory, every transport
//    refused by GIT_ALLOW_PROTOCOL), never through a shell, with command-line
//    settings that win over the repository's own (pager, external diff,
//    textconv, fsmonitor, hooks, filter drivers, signature programs,
//    attribute and exclude files, mailmap files, protocol.<name>.allow for
//    every protocol, submodule processes) and --work-tree fixed;
//  - a config file included from outside the repository, or objects
//    borrowed from outside it (alternates), make the call a clear refusal;
//  - the child is confined before it executes (tools/sandbox.h): Landlock
//    lets it read only the repository and git's own libraries and execute
//    only git, seccomp refuses every socket.
// docs/git-hardening.md is the table of every key, attribute, hook and
// variable that could run a program, open a connection or read a file
// outside the repository, with how each is neutralised and the test that
// refuses it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "tools/tool.h"

namespace warden::tools {

// GitRuntime is what every call shares: the empty directory that is git's
// HOME, and what git needs outside the repository to start at all (its
// dynamic loader and library directories, from the loader's own trace).
struct GitRuntime;

class GitTool : public Tool {
 public:
  // kConfined is what Warden always uses. kUnconfinedForTesting leaves out
  // the sandbox only, so that a test can show what git's own hardening holds
  // on a kernel without Landlock.
  enum class Sandbox { kConfined, kUnconfinedForTesting };
  // `config.repos` maps names to absolute paths; `config.binary` is executed as is.
  explicit GitTool(const GitConfig& config, Sandbox sandbox = Sandbox::kConfined);
  ~GitTool() override;
  GitTool(GitTool&&) noexcept;

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

  // SandboxSummary says how git calls are confined on this machine, for
  // logs and check-config ("Landlock ABI 7 (...); seccomp network filter").
  std::string SandboxSummary() const;

 private:
  GitConfig config_;
  ToolSpec spec_;
  std::shared_ptr<const GitRuntime> runtime_;
  Sandbox sandbox_;
};

}  // namespace warden::tools
