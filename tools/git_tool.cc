#include "tools/git_tool.h"

#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/json_schema.h"
#include "tools/process.h"

namespace warden::tools {
namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

using std::chrono::milliseconds;

constexpr int64_t kDefaultMaxCount = 50;
constexpr uint64_t kConfigListCap = 1u << 20;
constexpr std::string_view kRefPunctuation = "._/~^@{}:-+";
// Argument keys that only some operations accept (repo, operation and
// timeout_seconds apply to all).
constexpr std::string_view kOptionKeys[] = {"revisions", "paths", "pattern", "staged", "max_count", "patch"};

// Operation is one row of the table that drives both the checks and argv.
struct Operation {
  std::string_view name;
  std::vector<std::string_view> options;  // keys from kOptionKeys it accepts
  std::vector<std::string> fixed;         // arguments right after the subcommand
  // Whether "--end-of-options" precedes the revisions. Checked by hand with
  // git 2.39: log, diff and show honour it; blame and grep reject it; status
  // and ls-files accept it but then read "--" as a pathspec. Where it is not
  // used, revisions are still safe: none may start with '-'.
  bool end_of_options = false;
};

// --no-ext-diff/--no-textconv: diff drivers from the repo's attributes and
// config would run programs. --ignore-submodules=dirty: otherwise status and
// diff start git inside each submodule, whose own config (filters, fsmonitor)
// is not neutralized. --no-ignore-revs-file: blame.ignoreRevsFile may name any
// file on the host, and git quotes its first unparsable line in its error.
const std::vector<Operation>& Operations() {
  static const std::vector<Operation> kOperations = {
      {"status", {"paths"}, {"--branch", "--ignore-submodules=dirty"}},
      {"log", {"revisions", "paths", "max_count", "patch"}, {"--no-ext-diff", "--no-textconv"}, true},
      {"diff", {"revisions", "paths", "staged"}, {"--no-ext-diff", "--no-textconv", "--ignore-submodules=dirty"}, true},
      {"show", {"revisions", "paths"}, {"--no-ext-diff", "--no-textconv"}, true},
      {"blame", {"revisions", "paths"}, {"--no-textconv", "--no-ignore-revs-file"}},
      {"ls-files", {"paths"}, {}},
      {"grep", {"revisions", "paths", "pattern"}, {"-n", "-I", "--no-color", "--no-textconv"}},
      {"branch", {}, {"--list", "-a", "-v", "--no-color"}},
      {"tag", {}, {"--list", "-n1"}},
  };
  return kOperations;
}

const Operation* FindOperation(std::string_view name) {
  for (const Operation& op : Operations())
    if (op.name == name) return &op;
  return nullptr;
}

bool Accepts(const Operation& op, std::string_view key) {
  return std::find(op.options.begin(), op.options.end(), key) != op.options.end();
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// What one call asks for, after every check.
struct Request {
  std::string repo;
  fs::path root;  // canonical repository directory
  const Operation* op = nullptr;
  std::vector<std::string> revisions;
  std::vector<std::string> paths;
  std::string pattern;
  bool staged = false;
  bool patch = false;
  int64_t max_count = kDefaultMaxCount;
  std::chrono::seconds timeout{0};
};

Status CheckOptions(const json::object& args, const Operation& op) {
  for (std::string_view key : kOptionKeys) {
    if (!args.contains(key) || Accepts(op, key)) continue;
    std::vector<std::string> accepting;
    for (const Operation& other : Operations())
      if (Accepts(other, key)) accepting.emplace_back(other.name);
    return InvalidArgument("\"" + std::string(key) + "\" does not apply to operation \"" + std::string(op.name) +
                           "\" (only to: " + Join(accepting) + "); remove it");
  }
  return Status::Ok();
}

bool IsRefChar(unsigned char c) {
  bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  return alnum || kRefPunctuation.find(static_cast<char>(c)) != std::string_view::npos;
}

// CheckRevision keeps a revision from being read as an option and limits it to
// the characters of refs, reflog and tree syntax (HEAD~2, main@{1}, v1^{},
// HEAD:README.md, A..B, A...B); control characters fall outside.
Status CheckRevision(const std::string& rev, size_t i) {
  const std::string where = "revisions[" + std::to_string(i) + "]";
  if (rev.empty()) return InvalidArgument(where + " is empty; give a ref, commit or range such as main~2..main");
  if (rev[0] == '-') return InvalidArgument(where + " starts with '-'; a revision cannot be an option");
  if (!std::all_of(rev.begin(), rev.end(), [](char c) { return IsRefChar(static_cast<unsigned char>(c)); }))
    return InvalidArgument(where + " may contain only letters, digits and ._/~^@{}:-+");
  return Status::Ok();
}

bool IsWithin(const fs::path& root, const fs::path& p) {
  fs::path rel = p.lexically_relative(root);
  return !rel.empty() && *rel.begin() != "..";
}

// CheckPath confines a path to the repository: weakly_canonical resolves the
// existing prefix (symlinks included) and normalizes the rest, so "../x",
// "missing/../../x" and a symlink to the outside all land outside `root`.
Status CheckPath(const fs::path& root, const std::string& path, size_t i) {
  const std::string where = "paths[" + std::to_string(i) + "]";
  if (path.empty()) return InvalidArgument(where + " is empty; use \".\" for the whole repository");
  if (path.find('\0') != std::string::npos) return InvalidArgument(where + " contains a NUL byte");
  if (path[0] == '-') return InvalidArgument(where + " starts with '-'; a path cannot be an option");
  if (path[0] == ':')
    return InvalidArgument(where + " starts with ':' (pathspec magic is not allowed); give a plain path");
  if (fs::path(path).is_absolute())
    return InvalidArgument(where + " is absolute; give a path relative to the repository root");
  std::error_code ec;
  fs::path resolved = fs::weakly_canonical(root / path, ec);
  if (ec || !IsWithin(root, resolved))
    return InvalidArgument(where +
                           " leads outside the repository (after resolving .. and symlinks); give a path inside it");
  return Status::Ok();
}

std::vector<std::string> Strings(const json::object& args, std::string_view key) {
  std::vector<std::string> out;
  if (const json::value* v = args.if_contains(key))
    for (const json::value& item : v->as_array()) out.emplace_back(item.as_string());
  return out;
}

// ParseTargets reads what the command looks at: revisions, paths, pattern.
Status ParseTargets(const json::object& args, Request* r) {
  r->revisions = Strings(args, "revisions");
  for (size_t i = 0; i < r->revisions.size(); ++i)
    if (Status s = CheckRevision(r->revisions[i], i); !s.ok()) return s;
  r->paths = Strings(args, "paths");
  for (size_t i = 0; i < r->paths.size(); ++i)
    if (Status s = CheckPath(r->root, r->paths[i], i); !s.ok()) return s;
  if (r->op->name == "blame" && r->paths.size() != 1)
    return InvalidArgument("blame needs exactly one entry in \"paths\": the file to annotate");
  if (r->op->name != "grep") return Status::Ok();
  const json::value* pattern = args.if_contains("pattern");
  if (!pattern) return InvalidArgument("grep needs \"pattern\": the text or regular expression to search for");
  r->pattern = std::string(pattern->as_string());
  if (r->pattern.empty()) return InvalidArgument("\"pattern\" is empty; give the text to search for");
  if (r->pattern.find('\0') != std::string::npos) return InvalidArgument("\"pattern\" contains a NUL byte");
  return Status::Ok();
}

int DefaultTimeoutSeconds(const GitConfig& config) { return DefaultTimeout(config.timeout_seconds, config.max_timeout_seconds); }

void ParseFlags(const json::object& args, const GitConfig& config, Request* r) {
  auto flag = [&](std::string_view key) {
    const json::value* v = args.if_contains(key);
    return v && v->as_bool();
  };
  r->staged = flag("staged");
  r->patch = flag("patch");
  if (const json::value* v = args.if_contains("max_count")) r->max_count = v->to_number<int64_t>();
  int64_t timeout = DefaultTimeoutSeconds(config);
  if (const json::value* v = args.if_contains("timeout_seconds")) timeout = v->to_number<int64_t>();
  r->timeout = std::chrono::seconds(timeout);
}

// CheckRepoKnown runs before schema validation: for a repo name that is not
// configured it says NotFound and lists the configured names, where the
// schema's enum would only say InvalidArgument.
Status CheckRepoKnown(const json::object& args, const GitConfig& config) {
  const json::value* repo = args.if_contains("repo");
  if (!repo || !repo->is_string() || config.repos.contains(std::string(repo->get_string()))) return Status::Ok();
  std::vector<std::string> names;
  for (const auto& [name, path] : config.repos) names.push_back(name);
  std::string message = "unknown repo \"" + std::string(repo->get_string()) + "\"";
  if (names.empty()) return NotFound(message + ": no repos are configured (git.repos in the config file)");
  return NotFound(message + "; configured repos: " + Join(names));
}

// ParseRequest runs the semantic checks; args already match the schema and
// name a configured repo.
Result<Request> ParseRequest(const json::object& args, const GitConfig& config) {
  Request r;
  r.repo = std::string(args.at("repo").as_string());
  r.op = FindOperation(args.at("operation").as_string());
  if (r.op == nullptr) return InvalidArgument("unknown operation");  // the schema's enum already refuses it
  if (Status s = CheckOptions(args, *r.op); !s.ok()) return s;
  std::error_code ec;
  r.root = fs::canonical(config.repos.at(r.repo), ec);
  if (ec) return Unavailable("repo \"" + r.repo + "\" cannot be opened: " + ec.message());
  if (Status s = ParseTargets(args, &r); !s.ok()) return s;
  ParseFlags(args, config, &r);
  return r;
}

// Which git's behaviour this relies on: Debian 12's git 2.39.
//  - Settings given with -c are read after every config file, so they win
//    over the repository's own (and they reach git's own subprocesses through
//    GIT_CONFIG_PARAMETERS). This does not hold for what git reads while it
//    discovers the repository (core.worktree, extensions.*), hence
//    --work-tree here and the sandbox below.
//  - GIT_ALLOW_PROTOCOL (git 2.6+) set to a list that names no protocol makes
//    every transport fail before it starts, whatever protocol.<name>.allow the
//    repository sets; the per-name -c settings say the same a second time.
//  - 2.39 has no switch to turn lazy fetching off (GIT_NO_LAZY_FETCH is 2.44):
//    in a partial clone a missing object makes git start `git fetch` from the
//    promisor remote, which fails at the transport check above, and could
//    neither execute a helper nor open a socket in the sandbox. It is set
//    anyway, so a newer git does not even try.
//  - --no-optional-locks / GIT_OPTIONAL_LOCKS=0 (2.15+): status does not write
//    the index.
constexpr const char* kProtocols[] = {"file", "git", "ssh", "http", "https", "ftp", "ftps", "ext", "fd"};

// GlobalArgs is the start of every git command line. `overrides` adds more
// -c settings (the repository's filter drivers, emptied by name).
std::vector<std::string> GlobalArgs(const std::string& git, const fs::path& root,
                                    const std::vector<std::string>& overrides) {
  const std::string dir = root.string();
  // --work-tree: core.worktree in the repo config would point git at another
  // directory, and -c cannot override it (it is read during discovery).
  std::vector<std::string> argv = {git, "--no-pager", "--work-tree=" + dir};
  // Each setting names the row of docs/git-hardening.md it answers.
  std::vector<std::string> settings = {
      "core.pager=cat",                  // core.pager, pager.* (with --no-pager)
      "core.fsmonitor=false",            // core.fsmonitor: a hook command or an IPC daemon
      "core.hooksPath=/dev/null",        // hooks
      "core.sshCommand=/bin/false",      // core.sshCommand (transports are refused anyway)
      "core.askPass=/bin/false",         // core.askPass
      "core.attributesFile=/dev/null",   // core.attributesFile: a file outside the repo
      "core.excludesFile=/dev/null",     // core.excludesFile: a file outside the repo
      "core.untrackedCache=false",
      "credential.helper=",              // credential.*: the empty value resets the helper list
      "diff.external=",                  // diff.external (with --no-ext-diff)
      "diff.orderFile=/dev/null",        // diff.orderFile: a file outside the repo
      "mailmap.file=/dev/null",          // mailmap.file: a file outside the repo
      "blame.ignoreRevsFile=",           // blame.ignoreRevsFile (with --no-ignore-revs-file)
      "gpg.program=/bin/false",          // gpg.program and gpg.<format>.program
      "gpg.openpgp.program=/bin/false",
      "gpg.x509.program=/bin/false",
      "gpg.ssh.program=/bin/false",
      "gpg.ssh.allowedSignersFile=/dev/null",
      "log.showSignature=false",         // log.showSignature: would run gpg.program
      "color.ui=never",
      "safe.directory=" + dir,
      "diff.submodule=short",            // "diff" would start git inside submodules
      "submodule.recurse=false",
      "status.submoduleSummary=false",   // would run `git submodule summary`
      "gc.auto=0",                       // no automatic gc or maintenance in any child
      "maintenance.auto=false",
      "fetch.recurseSubmodules=false",
      "protocol.allow=never",            // protocol.*: every transport refused by name too
  };
  for (const char* p : kProtocols) settings.push_back(std::string("protocol.") + p + ".allow=never");
  settings.insert(settings.end(), overrides.begin(), overrides.end());
  for (std::string& s : settings) {
    argv.push_back("-c");
    argv.push_back(std::move(s));
  }
  argv.push_back("--no-optional-locks");
  return argv;
}

// OperationArgs is the subcommand and what follows it: options, then
// revisions (after --end-of-options where git honours it), then "--" and paths.
std::vector<std::string> OperationArgs(const Request& r) {
  const Operation& op = *r.op;
  std::vector<std::string> args = {std::string(op.name)};
  args.insert(args.end(), op.fixed.begin(), op.fixed.end());
  if (op.name == "log") args.push_back("--max-count=" + std::to_string(r.max_count));
  if (r.patch) args.push_back("-p");
  if (r.staged) args.push_back("--cached");
  if (op.name == "grep") args.insert(args.end(), {"-e", r.pattern});  // -e: a pattern may start with '-'
  if (op.end_of_options) args.push_back("--end-of-options");
  args.insert(args.end(), r.revisions.begin(), r.revisions.end());
  if (!Accepts(op, "paths")) return args;
  args.push_back("--");
  args.insert(args.end(), r.paths.begin(), r.paths.end());
  return args;
}

}  // namespace

// GitRuntime: see git_tool.h.
struct GitRuntime {
  std::string home;                       // an empty directory, removed with the runtime
  std::vector<std::string> library_dirs;  // where the loader found git's libraries
  std::vector<std::string> loaders;       // the dynamic loader(s) git's binary names
  std::map<std::string, std::string> env; // the child's whole environment

  ~GitRuntime() {
    std::error_code ec;
    if (!home.empty()) fs::remove(home, ec);
  }
};

namespace {

// LoaderTrace asks git's dynamic loader which files git needs to start
// (LD_TRACE_LOADED_OBJECTS: the loader prints them and exits; git's own code
// never runs). Unconfined: this is the operator's binary, not a repository.
void LoaderTrace(const std::string& git, GitRuntime* rt) {
  ProcessSpec spec;
  spec.argv = {git};
  spec.env = {{"LD_TRACE_LOADED_OBJECTS", "1"}, {"PATH", "/usr/bin:/bin"}};
  spec.timeout = std::chrono::seconds(10);
  CancellationToken never;
  Result<RawOutput> r = RunProcess(spec, never, ProgressFn());
  std::set<std::string> dirs, loaders;
  if (r.ok() && r->exit_status == 0) {
    const std::string& text = r->out.bytes;
    for (size_t begin = 0, end; begin < text.size(); begin = end + 1) {
      end = std::min(text.find('\n', begin), text.size());
      std::string_view line(text.data() + begin, end - begin);
      // "\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or "\t/lib64/ld-linux-x86-64.so.2 (0x...)"
      size_t arrow = line.find("=> ");
      bool loader = arrow == std::string_view::npos;
      size_t at = loader ? line.find('/') : arrow + 3;
      if (at == std::string_view::npos) continue;  // linux-vdso.so.1
      std::string_view path = line.substr(at, line.find(" (", at) - at);
      std::error_code ec;
      fs::path real = fs::canonical(fs::path(path), ec);
      if (ec) continue;
      if (loader) loaders.insert(real.string());
      else dirs.insert(real.parent_path().string());
    }
  }
  if (loaders.empty()) {
    // A static git, or a loader that does not trace: the usual places.
    spdlog::warn("git: the dynamic loader's trace of {} gave nothing; allowing the usual library directories", git);
    for (const char* d : {"/lib", "/lib64", "/usr/lib", "/usr/lib64"}) dirs.insert(d);
    for (const char* l : {"/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1"}) loaders.insert(l);
  }
  rt->library_dirs.assign(dirs.begin(), dirs.end());
  rt->loaders.assign(loaders.begin(), loaders.end());
}

std::shared_ptr<const GitRuntime> MakeRuntime(const GitConfig& config) {
  auto rt = std::make_shared<GitRuntime>();
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp == '/' ? tmp : "/tmp") + "/warden-git-home-XXXXXX";
  if (::mkdtemp(tmpl.data()) != nullptr) {
    std::error_code ec;
    rt->home = fs::canonical(tmpl, ec).string();
    if (ec) rt->home = tmpl;
  } else {
    spdlog::warn("git: cannot create an empty HOME directory ({}); using /nonexistent", std::strerror(errno));
  }
  const std::string home = rt->home.empty() ? "/nonexistent" : rt->home;
  // The child's whole environment (nothing of Warden's is inherited: no GIT_*
  // variable, no LD_PRELOAD, no proxy). docs/git-hardening.md, "Environment".
  rt->env = {
      {"PATH", "/usr/bin:/bin"},
      {"HOME", home},
      {"XDG_CONFIG_HOME", home},
      {"LC_ALL", "C"},
      {"GIT_CONFIG_NOSYSTEM", "1"},
      {"GIT_CONFIG_SYSTEM", "/dev/null"},
      {"GIT_CONFIG_GLOBAL", "/dev/null"},
      {"GIT_ATTR_NOSYSTEM", "1"},
      {"GIT_ALLOW_PROTOCOL", ""},   // names no protocol: every transport refused
      {"GIT_PROTOCOL_FROM_USER", "0"},
      {"GIT_NO_LAZY_FETCH", "1"},   // git 2.44+; see the version note above
      {"GIT_SSH_COMMAND", "/bin/false"},  // wins over core.sshCommand
      {"GIT_SSH", "/bin/false"},
      {"GIT_TERMINAL_PROMPT", "0"},
      {"GIT_OPTIONAL_LOCKS", "0"},
      {"GIT_PAGER", "cat"},
      {"PAGER", "cat"},
      {"GIT_ASKPASS", "/bin/false"},
      {"SSH_ASKPASS", "/bin/false"},
      {"GIT_EDITOR", "/bin/false"},
  };
  LoaderTrace(config.binary, rt.get());
  return rt;
}

// RepoReadRoots is what a call may read: the configured directory and, when
// its .git is a file (a linked work tree, a submodule's layout), the git
// directory it names and that directory's common directory.
std::vector<std::string> RepoReadRoots(const fs::path& root) {
  std::vector<std::string> roots = {root.string()};
  std::error_code ec;
  const fs::path dotgit = root / ".git";
  if (!fs::is_regular_file(dotgit, ec)) return roots;
  std::ifstream in(dotgit);
  std::string line;
  if (!std::getline(in, line) || !line.starts_with("gitdir: ")) return roots;
  fs::path gitdir = line.substr(8);
  if (gitdir.is_relative()) gitdir = root / gitdir;
  gitdir = fs::weakly_canonical(gitdir, ec);
  if (ec) return roots;
  roots.push_back(gitdir.string());
  std::ifstream common(gitdir / "commondir");
  if (std::getline(common, line) && !line.empty()) {
    fs::path dir = line;
    if (dir.is_relative()) dir = gitdir / dir;
    dir = fs::weakly_canonical(dir, ec);
    if (!ec) roots.push_back(dir.string());
  }
  return roots;
}

bool WithinAny(const std::vector<std::string>& roots, const fs::path& p) {
  for (const std::string& r : roots)
    if (p == fs::path(r) || IsWithin(r, p)) return true;
  return false;
}

// CheckObjectStores refuses a repository that keeps or borrows objects
// outside it: an object directory that is a symlink to elsewhere, or
// objects/info/alternates naming another directory. git would read another
// repository there. The sandbox refuses those reads too (and reads through
// deeper symlinks, which this does not look for); this gives the clear reason
// and holds where the kernel has no Landlock.
Status CheckObjectStores(const std::vector<std::string>& roots, const std::string& repo) {
  for (const std::string& r : roots)
    for (const fs::path& objects : {fs::path(r) / ".git" / "objects", fs::path(r) / "objects"}) {
      std::error_code ec;
      if (fs::exists(objects, ec) && !WithinAny(roots, fs::canonical(objects, ec)))
        return FailedPrecondition("repo \"" + repo +
                                  "\" keeps its objects in a directory outside it (a symlink); Warden reads only "
                                  "the configured repository");
      std::ifstream in(objects / "info" / "alternates");
      std::string line;
      while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        fs::path alt = fs::path(line).is_relative() ? objects / line : fs::path(line);
        alt = fs::weakly_canonical(alt, ec);
        if (ec || !WithinAny(roots, alt))
          return FailedPrecondition("repo \"" + repo +
                                    "\" borrows objects from a directory outside it (objects/info/alternates); "
                                    "Warden reads only the configured repository: repack it without alternates "
                                    "(git repack -a -d, then remove objects/info/alternates)");
      }
    }
  return Status::Ok();
}

// Confine builds this call's sandbox: read the repository, git's libraries
// and the empty HOME; execute git and its loader; write /dev/null only.
Result<std::shared_ptr<const Confinement>> Confine(const GitRuntime& rt, const std::string& git,
                                                   const std::vector<std::string>& roots) {
  SandboxPolicy policy;
  policy.read = roots;
  policy.read.insert(policy.read.end(), rt.library_dirs.begin(), rt.library_dirs.end());
  policy.read.push_back("/etc/ld.so.cache");
  if (!rt.home.empty()) policy.read.push_back(rt.home);
  policy.execute = rt.loaders;
  policy.execute.push_back(git);
  policy.write = {"/dev/null"};
  return Confinement::Make(policy);
}

ProcessSpec MakeSpec(const std::string& git, const Request& r, const GitRuntime& rt,
                     const std::shared_ptr<const Confinement>& confinement,
                     const std::vector<std::string>& overrides, const std::vector<std::string>& tail) {
  ProcessSpec spec;
  spec.argv = GlobalArgs(git, r.root, overrides);
  spec.argv.insert(spec.argv.end(), tail.begin(), tail.end());
  spec.cwd = r.root.string();
  spec.env = rt.env;
  // Discovery may not climb above the configured directory to another repository.
  spec.env["GIT_CEILING_DIRECTORIES"] = r.root.parent_path().string();
  spec.confinement = confinement;
  return spec;
}

// LastLine is the last non-empty line of `text`, at most 300 bytes.
std::string LastLine(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  size_t nl = text.rfind('\n');
  if (nl != std::string_view::npos) text.remove_prefix(nl + 1);
  return std::string(text.substr(0, 300));
}

std::string ExitText(const RawOutput& out) {
  if (out.exit_status) return "status " + std::to_string(*out.exit_status);
  return "signal " + out.exit_signal.value_or("?");
}

// ConfigOverrides reads the output of `git config --null --show-origin
// --name-only --list` (origin NUL key NUL, per entry). It refuses a
// repository whose config comes from a file outside it (include.path,
// includeIf: another repository's config, or any file on the host), and
// turns every filter driver the repo defines into settings that disable it:
// filter drivers (clean/smudge/process) run arbitrary commands during status
// and diff, and git has no switch to turn them all off, so each is emptied by
// name; "required=false" keeps git from failing on an emptied required driver
// (git-lfs sets it).
Result<std::vector<std::string>> ConfigOverrides(const RawOutput& listing, const std::string& repo,
                                                 const fs::path& root, const std::vector<std::string>& roots) {
  if (listing.exit_status != 0 || listing.out.capped()) {
    // git's last line says why ("bad config line 3 in file .git/config",
    // "unable to access '...': Permission denied"); it is untrusted text and
    // leaves only through the output pipeline, like every tool error.
    std::string why = LastLine(listing.err.bytes);
    return FailedPrecondition("cannot read the git configuration of repo \"" + repo + "\" (git config exited with " +
                              ExitText(listing) + (why.empty() ? "" : ": " + why) +
                              "); the repository's configuration needs fixing. Warden lets git read nothing "
                              "outside the repository, so a config file included from outside it fails too");
  }
  std::set<std::string> drivers;
  const std::string& text = listing.out.bytes;
  std::vector<std::string_view> fields;
  for (size_t begin = 0, end; begin < text.size(); begin = end + 1) {
    end = std::min(text.find('\0', begin), text.size());
    fields.emplace_back(text.data() + begin, end - begin);
  }
  for (size_t i = 0; i + 1 < fields.size(); i += 2) {
    std::string_view origin = fields[i], key = fields[i + 1];
    if (origin.starts_with("file:")) {
      fs::path file(origin.substr(5));
      std::error_code ec;
      fs::path real = fs::weakly_canonical(file.is_relative() ? root / file : file, ec);
      if (ec || !WithinAny(roots, real))
        return FailedPrecondition("repo \"" + repo +
                                  "\" reads configuration from a file outside the repository (include.path or "
                                  "includeIf); Warden reads only the configured repository, so it does not run git "
                                  "there");
    }
    constexpr std::string_view kPrefix = "filter.";
    size_t last_dot = key.rfind('.');
    if (!key.starts_with(kPrefix) || last_dot <= kPrefix.size()) continue;  // "filter.x": no driver name
    std::string driver(key.substr(kPrefix.size(), last_dot - kPrefix.size()));
    // -c splits at the first '=', so such a name cannot be overridden.
    if (driver.find('=') != std::string::npos)
      return FailedPrecondition("repo \"" + repo + "\" configures a filter driver whose name contains '='; " +
                                "Warden cannot disable it, so it does not run git there");
    drivers.insert(std::move(driver));
  }
  std::vector<std::string> settings;
  for (const std::string& d : drivers)
    for (const char* s : {"clean=", "smudge=", "process=", "required=false"})
      settings.push_back("filter." + d + "." + s);
  return settings;
}

// Interrupted reports a call stopped (timeout, cancellation) before its main
// command ran; the helper command's own bytes are not the answer, so none are kept.
RawOutput Interrupted(const RawOutput& helper, const Request& r) {
  RawOutput out;
  out.timed_out = helper.timed_out;
  out.cancelled = helper.cancelled;
  out.exit_signal = helper.exit_signal;
  out.duration = helper.duration;
  out.metadata["operation"] = std::string(r.op->name);
  return out;
}

json::object StringArraySchema(int max_items, const char* description) {
  return {{"type", "array"}, {"items", {{"type", "string"}}}, {"maxItems", max_items}, {"description", description}};
}

json::object InputSchema(const GitConfig& config) {
  json::object repo = {{"type", "string"}};
  if (config.repos.empty()) {
    repo["description"] = "name of a configured repository; none are configured (add git.repos to the config file)";
  } else {
    json::array names;
    for (const auto& [name, path] : config.repos) names.emplace_back(name);
    repo["enum"] = std::move(names);
    repo["description"] = "name of a configured repository";
  }
  json::array operations;
  for (const Operation& op : Operations()) operations.emplace_back(op.name);
  json::object props = {
      {"repo", std::move(repo)},
      {"operation", {{"type", "string"}, {"enum", std::move(operations)}, {"description", "the git command to run"}}},
      {"revisions", StringArraySchema(2,
                                      "log/diff/show/blame/grep: refs, commits or ranges (A..B, A...B), "
                                      "e.g. [\"main~3\", \"main\"] or [\"HEAD:README.md\"] for show")},
      {"paths", StringArraySchema(64, "paths relative to the repository root (blame: exactly one)")},
      {"pattern",
       {{"type", "string"}, {"minLength", 1}, {"description", "grep only, required: the regular expression"}}},
      {"staged", {{"type", "boolean"}, {"description", "diff only: compare the index with HEAD (--cached)"}}},
      {"max_count",
       {{"type", "integer"},
        {"minimum", 1},
        {"maximum", 1000},
        {"default", kDefaultMaxCount},
        {"description", "log only: how many commits"}}},
      {"patch", {{"type", "boolean"}, {"description", "log only: include each commit's diff (-p)"}}},
      {"timeout_seconds",
       TimeoutProperty(DefaultTimeoutSeconds(config), config.max_timeout_seconds, "stop the command after this many seconds")},
  };
  return {{"type", "object"},
          {"properties", std::move(props)},
          {"required", {"repo", "operation"}},
          {"additionalProperties", false}};
}

ToolSpec BuildSpec(const GitConfig& config) {
  ToolSpec spec;
  spec.name = "git";
  spec.title = "Git repository (read-only)";
  spec.description =
      std::string(
          "Read-only git inspection of a configured repository. Operations: status (work tree state and "
          "branch), log (history; max_count, patch, revisions, paths), diff (work tree, index (staged) or "
          "commits; revisions, paths), show (a commit, tag, or file at a revision such as HEAD:README.md), "
          "blame (who last changed each line of one path), ls-files (tracked files), grep (search tracked "
          "files for pattern, optionally at revisions), branch (all branches), tag (tags with the first "
          "line of their message). Revisions may be ranges A..B or A...B; paths are relative to the "
          "repository root.") +
      kUntrustedNotice;
  spec.input_schema = InputSchema(config);
  spec.output_schema = CommandOutputSchema();
  spec.annotations = Annotations{.read_only = true, .destructive = false, .idempotent = true, .open_world = false};
  return spec;
}

}  // namespace

GitTool::GitTool(const GitConfig& config, Sandbox sandbox)
    : config_(config),
      spec_(BuildSpec(config_)),
      // No repository, no call can run: no HOME directory, no loader trace.
      runtime_(config_.repos.empty() ? nullptr : MakeRuntime(config_)),
      sandbox_(sandbox) {
  if (!config_.repos.empty() && ProbeSandbox().landlock_abi == 0)
    spdlog::warn("git: {}; git calls run with git's own hardening and the seccomp network filter, but without the "
                 "file sandbox (docs/git-hardening.md)",
                 ProbeSandbox().landlock_error);
}
GitTool::~GitTool() = default;
GitTool::GitTool(GitTool&&) noexcept = default;

const ToolSpec& GitTool::spec() const { return spec_; }

std::string GitTool::SandboxSummary() const { return ProbeSandbox().Describe(); }

std::string GitTool::Target(const json::object& args) const {
  const json::value* repo = args.if_contains("repo");
  return "repo:" + (repo && repo->is_string() ? std::string(repo->get_string()) : std::string("?"));
}

Result<RawOutput> GitTool::Run(const json::object& args, CallContext& ctx) {
  if (Status s = CheckRepoKnown(args, config_); !s.ok()) return s;
  // The server validates too; checking here keeps the tool safe on its own.
  if (Status s = ValidateJson(args, spec_.input_schema); !s.ok()) return s;
  Result<Request> request = ParseRequest(args, config_);
  if (!request.ok()) return request.status();
  const Request& r = request.value();
  const auto deadline = Clock::Steady() + r.timeout;

  const std::vector<std::string> roots = RepoReadRoots(r.root);
  if (Status s = CheckObjectStores(roots, r.repo); !s.ok()) return s;
  Result<std::shared_ptr<const Confinement>> confinement = std::shared_ptr<const Confinement>();
  if (sandbox_ == Sandbox::kConfined) confinement = Confine(*runtime_, config_.binary, roots);
  if (!confinement.ok()) return confinement.status();

  // The repo's whole config, with where each key comes from: filter drivers
  // can only be disabled by name, and includes from outside are refused.
  ProcessSpec listing = MakeSpec(config_.binary, r, *runtime_, confinement.value(), {},
                                 {"config", "--null", "--show-origin", "--name-only", "--list"});
  listing.timeout = r.timeout;
  listing.max_capture_bytes = kConfigListCap;
  Result<RawOutput> config = RunProcess(listing, *ctx.cancel, ProgressFn());
  if (!config.ok()) return config.status();
  if (!config->completed()) return Interrupted(config.value(), r);
  Result<std::vector<std::string>> overrides = ConfigOverrides(config.value(), r.repo, r.root, roots);
  if (!overrides.ok()) return overrides.status();

  ProcessSpec command =
      MakeSpec(config_.binary, r, *runtime_, confinement.value(), overrides.value(), OperationArgs(r));
  command.timeout = std::max(milliseconds(0), std::chrono::ceil<milliseconds>(deadline - Clock::Steady()));
  command.max_capture_bytes = ctx.max_capture_bytes;
  Result<RawOutput> out = RunProcess(command, *ctx.cancel, ctx.progress);
  if (!out.ok()) return out;
  out->metadata["operation"] = std::string(r.op->name);
  out->duration += config->duration;  // the call's time includes the config listing
  return out;
}

}  // namespace warden::tools
