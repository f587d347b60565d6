// Tests for tools/git_tool.h against real repositories that each test builds
// in a temporary directory with the real git binary.
#include <stdlib.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "core/json_schema.h"
#include "tools/git_tool.h"
#include "tools/process.h"

namespace warden::tools {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

// Sh runs a setup script with a fixed, git-friendly environment and requires success.
void Sh(const fs::path& cwd, const std::string& script) {
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-ec", script};
  spec.cwd = cwd.string();
  spec.env = {{"PATH", "/usr/bin:/bin"},          {"HOME", cwd.string()},
              {"GIT_CONFIG_NOSYSTEM", "1"},       {"GIT_CONFIG_GLOBAL", "/dev/null"},
              {"GIT_AUTHOR_NAME", "Tester"},      {"GIT_AUTHOR_EMAIL", "tester@example.invalid"},
              {"GIT_COMMITTER_NAME", "Tester"},   {"GIT_COMMITTER_EMAIL", "tester@example.invalid"}};
  CancellationToken cancel;
  Result<RawOutput> r = RunProcess(spec, cancel, {});
  REQUIRE(r.ok());
  INFO(script << "\nstderr: " << r->err.bytes);
  REQUIRE(r->exit_status == 0);
}

void WriteFile(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

// Fixture: <tmp>/repo with two commits, an annotated tag v1 and a branch
// "feature"; <tmp>/outside holds a file that must never be reachable.
class RepoFixture {
 public:
  RepoFixture() {
    std::string tmpl = (fs::temp_directory_path() / "warden-git-test-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    dir = fs::canonical(tmpl);
    repo = dir / "repo";
    fs::create_directories(dir / "outside");
    WriteFile(dir / "outside" / "secret.txt", "outside-secret\n");
    Sh(dir,
       "git init -q -b main repo && cd repo\n"
       "echo hello > a.txt && mkdir d && printf 'needle one\\n--flag here\\n' > d/b.txt\n"
       "git add . && git commit -qm first\n"
       "echo world >> a.txt && git commit -qam second\n"
       "git tag -a v1 -m 'release one' && git branch feature\n");
  }
  ~RepoFixture() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }

  GitTool Tool() const {
    GitConfig config;
    config.repos["demo"] = repo.string();
    return GitTool(config);
  }

  fs::path dir;
  fs::path repo;
};

Result<RawOutput> Call(GitTool& tool, const json::object& args) {
  CancellationToken cancel;
  CallContext ctx;
  ctx.cancel = &cancel;
  return tool.Run(args, ctx);
}

// Ok runs a call that must succeed with exit status 0 and returns stdout.
std::string Ok(GitTool& tool, json::object args) {
  args["repo"] = "demo";
  Result<RawOutput> r = Call(tool, args);
  INFO(json::serialize(args) << " -> " << r.status().ToString());
  REQUIRE(r.ok());
  INFO("stderr: " << r->err.bytes);
  REQUIRE(r->exit_status == 0);
  CHECK(r->metadata.at("operation") == std::string(args.at("operation").as_string()));
  return r->out.bytes;
}

// Refused runs a call that must be refused and returns the status.
Status Refused(GitTool& tool, json::object args) {
  if (!args.contains("repo")) args["repo"] = "demo";
  Result<RawOutput> r = Call(tool, args);
  INFO(json::serialize(args));
  REQUIRE_FALSE(r.ok());
  return r.status();
}

bool Has(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

TEST_CASE("git spec: name, schema, annotations and notice", "[git]") {
  GitConfig config;
  config.repos["demo"] = "/srv/demo";
  config.max_timeout_seconds = 120;
  GitTool tool(config);
  const ToolSpec& spec = tool.spec();
  CHECK(spec.name == "git");
  CHECK(spec.description.ends_with(kUntrustedNotice));
  CHECK(spec.annotations.read_only);
  CHECK_FALSE(spec.annotations.destructive);
  CHECK(spec.annotations.idempotent);
  CHECK_FALSE(spec.annotations.open_world);
  CHECK(spec.output_schema == CommandOutputSchema());
  const json::object& props = spec.input_schema.at("properties").as_object();
  CHECK(props.at("repo").at("enum") == json::array{"demo"});
  CHECK(props.at("timeout_seconds").at("maximum") == 120);
  CHECK(spec.input_schema.at("additionalProperties") == false);
  // The schema stays inside the subset that core/json_schema.h supports.
  CHECK(ValidateJson(json::object{{"repo", "demo"}, {"operation", "log"}}, spec.input_schema).ok());
  CHECK(tool.Target({{"repo", "demo"}, {"operation", "log"}}) == "repo:demo");

  GitTool none(GitConfig{});
  const json::object& repo = none.spec().input_schema.at("properties").at("repo").as_object();
  CHECK_FALSE(repo.contains("enum"));
  CHECK(Has(std::string(repo.at("description").as_string()), "none are configured"));
  Result<RawOutput> r = Call(none, {{"repo", "demo"}, {"operation", "status"}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kNotFound);
}

TEST_CASE("git: every operation works on a small repository", "[git]") {
  RepoFixture fx;
  GitTool tool = fx.Tool();

  SECTION("status") {
    WriteFile(fx.repo / "a.txt", "changed\n");
    std::string out = Ok(tool, {{"operation", "status"}});
    CHECK(Has(out, "On branch main"));
    CHECK(Has(out, "modified:   a.txt"));
    CHECK(Has(Ok(tool, {{"operation", "status"}, {"paths", {"d"}}}), "nothing to commit"));
  }
  SECTION("log") {
    std::string out = Ok(tool, {{"operation", "log"}});
    CHECK(Has(out, "second"));
    CHECK(Has(out, "first"));
    out = Ok(tool, {{"operation", "log"}, {"max_count", 1}});
    CHECK(Has(out, "second"));
    CHECK_FALSE(Has(out, "first"));
    CHECK(Has(Ok(tool, {{"operation", "log"}, {"patch", true}, {"revisions", {"HEAD~1..HEAD"}}}), "+world"));
    out = Ok(tool, {{"operation", "log"}, {"paths", {"d/b.txt"}}});
    CHECK(Has(out, "first"));
    CHECK_FALSE(Has(out, "second"));
    CHECK(Ok(tool, {{"operation", "log"}, {"revisions", {"feature...main"}}}).empty());  // same commit
  }
  SECTION("diff") {
    CHECK(Has(Ok(tool, {{"operation", "diff"}, {"revisions", {"HEAD~1", "HEAD"}}}), "+world"));
    CHECK(Has(Ok(tool, {{"operation", "diff"}, {"revisions", {"v1~1..v1"}}, {"paths", {"a.txt"}}}), "+world"));
    WriteFile(fx.repo / "a.txt", "hello\nworld\nunstaged\n");
    CHECK(Has(Ok(tool, {{"operation", "diff"}}), "+unstaged"));
    Sh(fx.repo, "git add a.txt");
    CHECK(Ok(tool, {{"operation", "diff"}}).empty());
    CHECK(Has(Ok(tool, {{"operation", "diff"}, {"staged", true}}), "+unstaged"));
  }
  SECTION("show") {
    std::string out = Ok(tool, {{"operation", "show"}, {"revisions", {"v1"}}});
    CHECK(Has(out, "release one"));
    CHECK(Has(out, "+world"));
    CHECK(Ok(tool, {{"operation", "show"}, {"revisions", {"HEAD~1:a.txt"}}}) == "hello\n");
  }
  SECTION("blame") {
    std::string out = Ok(tool, {{"operation", "blame"}, {"paths", {"a.txt"}}});
    CHECK(Has(out, "hello"));
    CHECK(Has(out, "world"));
    out = Ok(tool, {{"operation", "blame"}, {"paths", {"a.txt"}}, {"revisions", {"HEAD~1"}}});
    CHECK(Has(out, "hello"));
    CHECK_FALSE(Has(out, "world"));
  }
  SECTION("ls-files") {
    CHECK(Ok(tool, {{"operation", "ls-files"}}) == "a.txt\nd/b.txt\n");
    CHECK(Ok(tool, {{"operation", "ls-files"}, {"paths", {"d"}}}) == "d/b.txt\n");
  }
  SECTION("grep") {
    CHECK(Ok(tool, {{"operation", "grep"}, {"pattern", "needle"}}) == "d/b.txt:1:needle one\n");
    CHECK(Ok(tool, {{"operation", "grep"}, {"pattern", "needle"}, {"revisions", {"HEAD"}}}) ==
          "HEAD:d/b.txt:1:needle one\n");
    // A pattern may start with '-': it follows -e.
    CHECK(Ok(tool, {{"operation", "grep"}, {"pattern", "--flag"}, {"paths", {"d"}}}) == "d/b.txt:2:--flag here\n");
    Result<RawOutput> none = Call(tool, {{"repo", "demo"}, {"operation", "grep"}, {"pattern", "absent-text"}});
    REQUIRE(none.ok());
    CHECK(none->exit_status == 1);
  }
  SECTION("branch") {
    std::string out = Ok(tool, {{"operation", "branch"}});
    CHECK(Has(out, "feature"));
    CHECK(Has(out, "* main"));
  }
  SECTION("tag") {
    std::string out = Ok(tool, {{"operation", "tag"}});
    CHECK(Has(out, "v1"));
    CHECK(Has(out, "release one"));
  }
}

TEST_CASE("git: refs that could be options or odd syntax are refused", "[git]") {
  RepoFixture fx;
  GitTool tool = fx.Tool();
  const fs::path pwned = fx.dir / "pwned";
  for (const char* op : {"log", "diff", "show", "blame", "grep"}) {
    json::object args = {{"operation", op}, {"revisions", {"--output=" + pwned.string()}}};
    if (std::string(op) == "blame") args["paths"] = {"a.txt"};
    if (std::string(op) == "grep") args["pattern"] = "x";
    Status s = Refused(tool, args);
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK(Has(s.message(), "revisions[0]"));
  }
  CHECK_FALSE(fs::exists(pwned));
  CHECK(Refused(tool, {{"operation", "log"}, {"revisions", {"HEAD", ""}}}).code() == Code::kInvalidArgument);
  CHECK(Refused(tool, {{"operation", "log"}, {"revisions", {"HEAD main"}}}).code() == Code::kInvalidArgument);
  CHECK(Refused(tool, {{"operation", "log"}, {"revisions", {"HEAD\n"}}}).code() == Code::kInvalidArgument);
  CHECK(Refused(tool, {{"operation", "log"}, {"revisions", {"$(id)"}}}).code() == Code::kInvalidArgument);
}

TEST_CASE("git: paths must stay inside the repository", "[git]") {
  RepoFixture fx;
  GitTool tool = fx.Tool();
  fs::create_symlink(fx.dir / "outside", fx.repo / "escape");
  fs::create_symlink(fx.dir / "outside" / "secret.txt", fx.repo / "escape-file");
  fs::create_symlink("d", fx.repo / "inner");
  auto refused = [&](const std::string& path) {
    INFO(path);
    Status s = Refused(tool, {{"operation", "log"}, {"paths", {"a.txt", path}}});
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK(Has(s.message(), "paths[1]"));
  };
  refused("-p");
  refused("--output=x");
  refused((fx.dir / "outside" / "secret.txt").string());
  refused("../outside/secret.txt");
  refused("d/../../outside");
  refused("missing/../../outside");
  refused("escape");
  refused("escape/secret.txt");
  refused("escape/not-there");
  refused("escape-file");
  refused(":(top)a.txt");
  refused(":!a.txt");
  refused("");
  refused(std::string("a\0b", 3));
  // Inside the repository, even through a symlink or not existing yet, is fine.
  CHECK(Ok(tool, {{"operation", "ls-files"}, {"paths", {"inner", "not-yet", "d/../a.txt", "."}}}) ==
        "a.txt\nd/b.txt\n");
  // Warden lets this through; git itself then declines paths beyond a symlink.
  CHECK(Call(tool, {{"repo", "demo"}, {"operation", "ls-files"}, {"paths", {"inner/b.txt"}}}).ok());
  Status blame = Refused(tool, {{"operation", "blame"}, {"paths", {"escape-file"}}});
  CHECK(blame.code() == Code::kInvalidArgument);
}

TEST_CASE("git: arguments that do not fit the operation are refused", "[git]") {
  RepoFixture fx;
  GitTool tool = fx.Tool();
  Status unknown = Refused(tool, {{"repo", "other"}, {"operation", "status"}});
  CHECK(unknown.code() == Code::kNotFound);
  CHECK(Has(unknown.message(), "demo"));
  Status grep = Refused(tool, {{"operation", "grep"}});
  CHECK(grep.code() == Code::kInvalidArgument);
  CHECK(Has(grep.message(), "pattern"));
  Status staged = Refused(tool, {{"operation", "log"}, {"staged", true}});
  CHECK(staged.code() == Code::kInvalidArgument);
  CHECK(Has(staged.message(), "\"staged\""));
  CHECK(Has(staged.message(), "diff"));
  CHECK(Refused(tool, {{"operation", "status"}, {"revisions", {"HEAD"}}}).code() == Code::kInvalidArgument);
  CHECK(Refused(tool, {{"operation", "diff"}, {"patch", true}}).code() == Code::kInvalidArgument);
  CHECK(Refused(tool, {{"operation", "log"}, {"pattern", "x"}}).code() == Code::kInvalidArgument);
  CHECK(Refused(tool, {{"operation", "branch"}, {"paths", {"a.txt"}}}).code() == Code::kInvalidArgument);
  CHECK(Refused(tool, {{"operation", "blame"}}).code() == Code::kInvalidArgument);
  CHECK(Refused(tool, {{"operation", "blame"}, {"paths", {"a.txt", "d/b.txt"}}}).code() == Code::kInvalidArgument);
  // Schema violations are caught by the tool too.
  CHECK(Refused(tool, {{"operation", "log"}, {"max_count", 0}}).code() == Code::kInvalidArgument);
  CHECK(Refused(tool, {{"operation", "rebase"}}).code() == Code::kInvalidArgument);
  CHECK(Refused(tool, {{"operation", "log"}, {"extra", 1}}).code() == Code::kInvalidArgument);
}

TEST_CASE("git: a hostile repository config never runs anything", "[git]") {
  RepoFixture fx;
  const fs::path marker = fx.dir / "marker";
  const fs::path script = fx.dir / "evil.sh";
  // The script records that it ran and behaves like cat so git keeps going.
  WriteFile(script, "#!/bin/sh\necho \"$0 $*\" >> '" + marker.string() + "'\ncat\n");
  fs::permissions(script, fs::perms::owner_all);
  const std::string s = script.string();
  const std::string outside = (fx.dir / "outside").string();
  Sh(fx.repo,
     "git config core.pager '" + s + "'\n"
     "git config pager.log '" + s + "'\n"
     "git config diff.external '" + s + "'\n"
     "git config core.fsmonitor '" + s + "'\n"
     "git config filter.evil.clean '" + s + "'\n"
     "git config filter.evil.smudge '" + s + "'\n"
     "git config filter.evil.required true\n"
     "git config 'filter.odd name.process' '" + s + "'\n"
     "git config diff.evil.textconv '" + s + "'\n"
     "git config diff.evil.command '" + s + "'\n"
     "git config log.showSignature true\n"
     "git config gpg.program '" + s + "'\n"
     "git config blame.ignoreRevsFile '" + outside + "/secret.txt'\n"
     "printf '*.txt filter=evil diff=evil\\n' > .git/info/attributes\n"
     "for h in post-index-change pre-commit post-checkout reference-transaction fsmonitor-watchman; do\n"
     "  cp '" + s + "' .git/hooks/$h; done\n");
  // A submodule whose own config carries a filter and a textconv, checked out
  // at a commit other than the recorded one, with a dirty work tree; the
  // superproject asks for full submodule diffs.
  Sh(fx.dir,
     "git init -q -b main sub && cd sub && echo s > s.txt && git add . && git commit -qm s\n"
     "cd ../repo && git -c protocol.file.allow=always submodule -q add ../sub sm 2>/dev/null\n"
     "git -c core.hooksPath=/dev/null -c core.fsmonitor=false commit -qm sub\n"
     "git config diff.submodule diff\n"
     "cd sm && git config filter.subevil.clean '" + s + "' && git config diff.subevil.textconv '" + s + "'\n"
     "info=$(git rev-parse --git-dir)/info && mkdir -p $info\n"
     "echo '*.txt filter=subevil diff=subevil' > $info/attributes\n"
     "echo more >> s.txt && git commit -qam more\n");
  // Dirty files so that status and diff would need the filters, textconv and
  // external diff. Same content with another mtime is what makes git re-hash a
  // file, through its clean filter (a size change alone says "modified").
  WriteFile(fx.repo / "a.txt", "hello\nworld\nlocal change\n");
  Sh(fx.repo, "touch -d '2001-01-01 00:00' d/b.txt sm/s.txt");
  fs::remove(marker);

  GitTool tool = fx.Tool();
  const std::vector<json::object> calls = {
      {{"operation", "status"}},
      {{"operation", "diff"}},
      {{"operation", "diff"}, {"staged", true}},
      {{"operation", "diff"}, {"revisions", {"HEAD~1"}}},
      {{"operation", "log"}, {"patch", true}},
      {{"operation", "show"}},
      {{"operation", "show"}, {"revisions", {"v1"}}},
      {{"operation", "blame"}, {"paths", {"a.txt"}}},
      {{"operation", "grep"}, {"pattern", "hello"}},
      {{"operation", "ls-files"}},
      {{"operation", "branch"}},
      {{"operation", "tag"}},
  };
  for (const json::object& call : calls) Ok(tool, call);
  CHECK_FALSE(fs::exists(marker));

  // Control: the same repository does run the script under plain git, so the
  // check above is meaningful.
  Sh(fx.repo, "git status >/dev/null 2>&1; git diff >/dev/null 2>&1; true");
  CHECK(fs::exists(marker));
}

TEST_CASE("git: core.worktree cannot point git at another directory", "[git]") {
  RepoFixture fx;
  Sh(fx.repo, "git config core.worktree '" + (fx.dir / "outside").string() + "'");
  WriteFile(fx.dir / "outside" / "a.txt", "outside-secret\n");
  GitTool tool = fx.Tool();
  CHECK(Ok(tool, {{"operation", "grep"}, {"pattern", "hello"}}) == "a.txt:1:hello\n");
  CHECK_FALSE(Has(Ok(tool, {{"operation", "diff"}}), "outside-secret"));
}

TEST_CASE("git: a filter driver name git cannot override is refused", "[git]") {
  RepoFixture fx;
  Sh(fx.repo, "git config 'filter.a=b.clean' cat");
  GitTool tool = fx.Tool();
  Status s = Refused(tool, {{"operation", "status"}});
  CHECK(s.code() == Code::kFailedPrecondition);
}

TEST_CASE("git: a cancelled call reports cancellation", "[git]") {
  RepoFixture fx;
  GitTool tool = fx.Tool();
  CancellationToken cancel;
  cancel.Cancel("test");
  CallContext ctx;
  ctx.cancel = &cancel;
  Result<RawOutput> r = tool.Run({{"repo", "demo"}, {"operation", "log"}}, ctx);
  REQUIRE(r.ok());
  CHECK(r->cancelled);
  CHECK(r->metadata.at("operation") == "log");
}

}  // namespace
}  // namespace warden::tools
