// A hostile repository runs nothing and reaches nothing: one row per entry of
// docs/git-hardening.md, each a real repository built with that setting and a
// marker command, against real git. After every operation the tool offers,
// the marker file must not exist, no byte of a file outside the repository
// may appear in the output, and no TCP connection may reach the test's
// listener. Adding a case is adding a row.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "tests/unit/temp_dir.h"
#include "tools/git_tool.h"
#include "tools/process.h"
#include "tools/sandbox.h"

namespace warden::tools {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

bool Has(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

// Listener is a TCP socket on loopback that counts connections, so a row can
// prove git opened none (a lazy fetch over http://, git://, a proxy).
class Listener {
 public:
  Listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd_, 16) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~Listener() { ::close(fd_); }
  int port() const { return port_; }
  // Accepted counts the connections that arrived (and closes them).
  int Accepted() {
    int n = 0;
    for (int c; (c = ::accept(fd_, nullptr, nullptr)) >= 0; ++n) ::close(c);
    return n;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// Sh runs a setup script (trusted test code, unconfined) and requires success.
void Sh(const fs::path& cwd, const std::string& script, const std::map<std::string, std::string>& vars) {
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-ec", script};
  spec.cwd = cwd.string();
  spec.env = {{"PATH", "/usr/bin:/bin"},        {"HOME", cwd.string()},
              {"GIT_CONFIG_NOSYSTEM", "1"},     {"GIT_CONFIG_GLOBAL", "/dev/null"},
              {"GIT_AUTHOR_NAME", "Tester"},    {"GIT_AUTHOR_EMAIL", "tester@example.invalid"},
              {"GIT_COMMITTER_NAME", "Tester"}, {"GIT_COMMITTER_EMAIL", "tester@example.invalid"}};
  for (const auto& [k, v] : vars) spec.env[k] = v;
  CancellationToken cancel;
  Result<RawOutput> r = RunProcess(spec, cancel, {});
  REQUIRE(r.ok());
  INFO(script << "\nstderr: " << r->err.bytes);
  REQUIRE(r->exit_status == 0);
}

// What a row expects of the tool's calls, beyond "nothing ran, nothing leaked".
enum class Expect {
  kWorks,    // every call runs and exits 0: the setting is simply overridden
  kRefused,  // every call is refused by Warden with a clear reason
  kAny,      // calls may fail (git's own error, a missing object): only the invariants hold
};

// One row: which documented key it tests, a setup script run in the
// repository, and variables set in Warden's own environment during the calls
// (which git must not inherit). The script sees $MARK (a command that
// records it ran, then behaves like cat), $MARKFILE, $OUT (a directory
// outside the repository holding secret.txt and an outside repository
// outrepo), $PORT (the listener) and $BLOB (the object id of lazy.txt's
// content, for the partial-clone rows).
struct Row {
  const char* key;
  std::string setup;
  Expect expect = Expect::kWorks;
  std::map<std::string, std::string> env = {};
  // Only the sandbox (Landlock) stops it: git's own settings cannot, so the
  // unconfined run of the table skips the row (docs/git-hardening.md says so).
  bool needs_sandbox = false;
};

// A partial clone whose promisor remote is `url`: the blob of lazy.txt is
// deleted, so any call that needs it would fetch it lazily.
std::string PartialClone(const std::string& url, const std::string& extra = "") {
  return "git config core.repositoryformatversion 1\n"
         "git config extensions.partialClone origin\n"
         "git config remote.origin.promisor true\n"
         "git config remote.origin.url '" + url + "'\n"
         "git config remote.origin.fetch '+refs/heads/*:refs/remotes/origin/*'\n" + extra +
         "f=.git/objects/$(echo $BLOB | cut -c1-2)/$(echo $BLOB | cut -c3-)\n"
         "test -f $f && rm -f $f\n";
}

const std::vector<Row>& Rows() {
  static const std::vector<Row> rows = {
      // Programs the config can name.
      {"core.pager", "git config core.pager \"$MARK\""},
      {"pager.<cmd>",
       "for c in log show diff status blame grep branch tag ls-files; do git config pager.$c \"$MARK\"; done"},
      {"core.fsmonitor (hook)", "git config core.fsmonitor \"$MARK\"; git config core.fsmonitorHookVersion 2"},
      {"core.fsmonitor (daemon)", "git config core.fsmonitor true"},
      {"core.hooksPath", "mkdir -p $OUT/hooks; for h in post-index-change reference-transaction "
                         "fsmonitor-watchman post-checkout pre-commit; do cp \"$MARK\" $OUT/hooks/$h; done\n"
                         "git config core.hooksPath $OUT/hooks"},
      {"hooks", "for h in post-index-change reference-transaction fsmonitor-watchman post-checkout "
                "pre-auto-gc post-rewrite; do cp \"$MARK\" .git/hooks/$h; done"},
      {"diff.external", "git config diff.external \"$MARK\""},
      {"diff.<driver>.textconv", "git config diff.evil.textconv \"$MARK\"\n"
                                 "echo '* diff=evil' > .gitattributes; git add .gitattributes; git commit -qm attrs"},
      {"diff.<driver>.command", "git config diff.evil.command \"$MARK\"\necho '* diff=evil' > .git/info/attributes"},
      {"filter.<driver>.clean/smudge/process",
       "git config filter.evil.clean \"$MARK\"; git config filter.evil.smudge \"$MARK\"\n"
       "git config filter.evil.process \"$MARK\"; git config filter.evil.required true\n"
       "echo '* filter=evil' > .git/info/attributes"},
      {"merge.<driver>.driver", "git config merge.evil.driver \"$MARK\"\necho '* merge=evil' > .git/info/attributes"},
      {"core.attributesFile",
       "echo '* filter=evil diff=evil' > $OUT/attributes; git config core.attributesFile $OUT/attributes\n"
       "git config filter.evil.clean \"$MARK\"; git config diff.evil.textconv \"$MARK\""},
      {"gpg.program, log.showSignature",
       "git config gpg.program \"$MARK\"; git config log.showSignature true\n"
       "c=$(git cat-file commit HEAD | sed '/^committer/a gpgsig -----BEGIN PGP SIGNATURE-----\\n "
       "iQEzBAABCAAdFiEE\\n -----END PGP SIGNATURE-----' | git hash-object -t commit -w --stdin)\n"
       "git update-ref refs/heads/main $c"},
      {"gpg.<format>.program", "git config gpg.format ssh; git config gpg.ssh.program \"$MARK\"\n"
                               "git config gpg.x509.program \"$MARK\"; git config gpg.openpgp.program \"$MARK\"\n"
                               "git config gpg.ssh.allowedSignersFile $OUT/secret.txt; git config log.showSignature true"},
      {"credential.helper, core.askPass",
       "git config credential.helper \"!$MARK\"; git config core.askPass \"$MARK\"\n" +
           PartialClone("http://user@127.0.0.1:$PORT/repo", "git config protocol.http.allow always\n"),
       Expect::kAny},
      {"core.editor, sequence.editor", "git config core.editor \"$MARK\"; git config sequence.editor \"$MARK\""},
      {"alias.<builtin>", "for c in log show diff status blame grep branch tag ls-files config; do "
                          "git config alias.$c \"!$MARK\"; done"},
      {"status.submoduleSummary", "git config status.submoduleSummary true\n"
                                  "git -c protocol.file.allow=always submodule -q add $OUT/outrepo sm 2>/dev/null\n"
                                  "git commit -qm sub; git -C sm config core.pager \"$MARK\"\n"
                                  "(cd sm && echo x >> o.txt && git commit -qam o)"},
      {"submodule.<name>.update", "git config submodule.sm.update \"!$MARK\"; git config submodule.recurse true"},
      {"trace2.* in the repo", "git config trace2.eventTarget $OUT/trace2; git config trace2.normalTarget $OUT/trace2"},
      // Files outside the repository.
      {"include.path", "git config include.path $OUT/included.cfg\n"
                       "printf '[core]\\n\\tpager = %s\\n' \"$MARK\" > $OUT/included.cfg",
       Expect::kRefused},
      {"includeIf", "git config 'includeIf.gitdir:/.path' $OUT/included.cfg\n"
                    "printf '[alias]\\n\\tx = log\\n' > $OUT/included.cfg",
       Expect::kRefused},
      {"mailmap.file", "echo 'outside-secret <outside@example.invalid> Tester <tester@example.invalid>' > "
                       "$OUT/mailmap; cp $OUT/mailmap $OUT/secret.txt; git config mailmap.file $OUT/mailmap\n"
                       "git config log.mailmap true"},
      {"blame.ignoreRevsFile", "git config blame.ignoreRevsFile $OUT/secret.txt"},
      {"diff.orderFile", "git config diff.orderFile $OUT/secret.txt"},
      {"core.excludesFile", "git config core.excludesFile $OUT/secret.txt"},
      {"objects/info/alternates", "echo $OUT/outrepo/.git/objects > .git/objects/info/alternates", Expect::kRefused},
      // HEAD moves to the outside repository's commit "outside-secret", which
      // only the outside object store holds.
      {"objects directory through a symlink",
       "echo $(git -C $OUT/outrepo rev-parse HEAD) > .git/refs/heads/main\n"
       "mv .git/objects .git/objects.real; ln -s $OUT/outrepo/.git/objects .git/objects",
       Expect::kRefused},
      {"a pack file through a symlink",
       "git -C $OUT/outrepo repack -q -a -d; for f in $OUT/outrepo/.git/objects/pack/pack-*; do\n"
       "  ln -s $f .git/objects/pack/; done\n"
       "echo $(git -C $OUT/outrepo rev-parse HEAD) > .git/refs/heads/main",
       Expect::kAny, {}, /*needs_sandbox=*/true},
      {"commondir", "echo $OUT/outrepo/.git > .git/commondir", Expect::kAny},
      {"core.worktree", "git config core.worktree $OUT; cp a.txt $OUT/a.txt; echo outside-secret >> $OUT/a.txt"},
      {"a tracked file replaced by a symlink to outside", "rm a.txt; ln -s $OUT/secret.txt a.txt", Expect::kAny},
      {"extensions.worktreeConfig", "git config extensions.worktreeConfig true\n"
                                    "git config --worktree core.pager \"$MARK\"\n"
                                    "git config --worktree diff.external \"$MARK\""},
      {"safe.directory in the repo", "git config safe.directory '*'"},
      // Transports: a lazy fetch (partial clone) over every protocol, remote.* and url.*.
      {"extensions.partialClone over ext::",
       PartialClone("ext::sh -c touch% $MARKFILE", "git config protocol.ext.allow always\n"), Expect::kAny},
      {"extensions.partialClone over ssh:// (core.sshCommand)",
       PartialClone("ssh://git@127.0.0.1:$PORT/repo",
                    "git config protocol.ssh.allow always; git config core.sshCommand \"$MARK\"\n"),
       Expect::kAny},
      {"extensions.partialClone over file:// (uploadpack)",
       PartialClone("file://$OUT/outrepo",
                    "git config protocol.file.allow always; git config remote.origin.uploadpack \"$MARK\"\n"
                    "git -C $OUT/outrepo config uploadpack.allowFilter true\n"
                    "git -C $OUT/outrepo config uploadpack.packObjectsHook \"$MARK\"\n"),
       Expect::kAny},
      {"extensions.partialClone over http:// (http.proxy)",
       PartialClone("http://127.0.0.1:$PORT/repo", "git config protocol.http.allow always\n"
                                                   "git config http.proxy http://127.0.0.1:$PORT\n"
                                                   "git config http.cookieFile $OUT/secret.txt\n"),
       Expect::kAny},
      {"extensions.partialClone over git:// (core.gitProxy)",
       PartialClone("git://127.0.0.1:$PORT/repo",
                    "git config protocol.git.allow always; git config core.gitProxy \"$MARK\"\n"),
       Expect::kAny},
      {"extensions.partialClone over fd::", PartialClone("fd::0", "git config protocol.fd.allow always\n"),
       Expect::kAny},
      {"remote.<name>.vcs", PartialClone("x", "git config remote.origin.vcs ext; git config protocol.ext.allow "
                                              "always; git config protocol.allow always\n"),
       Expect::kAny},
      {"url.<base>.insteadOf",
       PartialClone("https://example.invalid/repo",
                    "git config \"url.ext::sh -c touch% $MARKFILE% #.insteadOf\" https://example.invalid/\n"
                    "git config protocol.allow always\n"),
       Expect::kAny},
      {"core.alternateRefsCommand", PartialClone("file://$OUT/outrepo", "git config protocol.file.allow always\n"
                                                                        "git config core.alternateRefsCommand "
                                                                        "\"$MARK\"\n"),
       Expect::kAny},
      {"gc.auto after a fetch", PartialClone("file://$OUT/outrepo", "git config protocol.file.allow always\n"
                                                                    "git config gc.auto 1; cp \"$MARK\" "
                                                                    ".git/hooks/pre-auto-gc\n"),
       Expect::kAny},
      // Warden's own environment: git inherits none of it.
      {"GIT_* variables in Warden's environment", "true", Expect::kWorks,
       {{"GIT_EXTERNAL_DIFF", "$MARK"},
        {"GIT_PAGER", "$MARK"},
        {"PAGER", "$MARK"},
        {"GIT_SSH_COMMAND", "$MARK"},
        {"GIT_CONFIG_PARAMETERS", "'core.fsmonitor'='$MARK'"},
        {"GIT_CONFIG_COUNT", "1"},
        {"GIT_CONFIG_KEY_0", "diff.external"},
        {"GIT_CONFIG_VALUE_0", "$MARK"},
        {"GIT_CONFIG_GLOBAL", "$OUT/included.cfg"},
        {"GIT_CONFIG_SYSTEM", "$OUT/included.cfg"},
        {"GIT_EXEC_PATH", "$OUT/exec"},
        {"GIT_DIR", "$OUT/outrepo/.git"},
        {"GIT_WORK_TREE", "$OUT"},
        {"GIT_OBJECT_DIRECTORY", "$OUT/outrepo/.git/objects"},
        {"GIT_ALTERNATE_OBJECT_DIRECTORIES", "$OUT/outrepo/.git/objects"},
        {"GIT_INDEX_FILE", "$OUT/index"},
        {"GIT_TRACE", "$OUT/trace"},
        {"GIT_TRACE2", "$OUT/trace"},
        {"GIT_ALLOW_PROTOCOL", "ext:file:ssh:http"},
        {"HOME", "$OUT"},
        {"XDG_CONFIG_HOME", "$OUT"},
        {"LD_PRELOAD", "$OUT/none.so"}}},
  };
  return rows;
}

// Every operation the tool offers, in the forms that reach different code
// (a work-tree diff, a blob at a revision, a patch log, grep at a revision).
const std::vector<json::object>& Calls() {
  static const std::vector<json::object> calls = {
      {{"operation", "status"}},
      {{"operation", "log"}},
      {{"operation", "log"}, {"patch", true}},
      {{"operation", "diff"}},
      {{"operation", "diff"}, {"staged", true}},
      {{"operation", "diff"}, {"revisions", {"HEAD~1", "HEAD"}}},
      {{"operation", "show"}},
      {{"operation", "show"}, {"revisions", {"v1"}}},
      {{"operation", "show"}, {"revisions", {"HEAD:lazy.txt"}}},
      {{"operation", "blame"}, {"paths", {"a.txt"}}},
      {{"operation", "blame"}, {"paths", {"lazy.txt"}}},
      {{"operation", "grep"}, {"pattern", "e"}},
      {{"operation", "grep"}, {"pattern", "e"}, {"revisions", {"HEAD"}}},
      {{"operation", "ls-files"}},
      {{"operation", "branch"}},
      {{"operation", "tag"}},
  };
  return calls;
}

std::string Expand(std::string s, const std::map<std::string, std::string>& vars) {
  for (const auto& [k, v] : vars)
    for (size_t at; (at = s.find("$" + k)) != std::string::npos;) s.replace(at, k.size() + 1, v);
  return s;
}

// ScopedEnv sets variables in this process (Warden's environment) for a row.
class ScopedEnv {
 public:
  explicit ScopedEnv(const std::map<std::string, std::string>& vars) {
    for (const auto& [k, v] : vars) {
      const char* old = std::getenv(k.c_str());
      saved_.emplace_back(k, old ? std::optional<std::string>(old) : std::nullopt);
      ::setenv(k.c_str(), v.c_str(), 1);
    }
  }
  ~ScopedEnv() {
    for (const auto& [k, v] : saved_) v ? ::setenv(k.c_str(), v->c_str(), 1) : ::unsetenv(k.c_str());
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

void RunTable(GitTool::Sandbox sandbox) {
  testing::TempDir tmp("warden-git-hostile");
  const fs::path out = tmp.path() / "outside";
  const fs::path marker = tmp.path() / "marker";
  const fs::path mark = tmp.path() / "mark.sh";
  fs::create_directories(out / "exec");
  {
    std::ofstream(mark) << "#!/bin/sh\necho \"$0 $*\" >> '" << marker.string() << "'\ncat\n";
    fs::permissions(mark, fs::perms::owner_all);
  }
  Listener listener;
  std::map<std::string, std::string> vars = {{"MARK", mark.string()},
                                             {"MARKFILE", marker.string()},
                                             {"OUT", out.string()},
                                             {"PORT", std::to_string(listener.port())}};
  // The outside world: a secret file, an outside repository holding the lazy
  // blob, and a template repository every row starts from.
  Sh(tmp.path(),
     "echo outside-secret > $OUT/secret.txt; cp $OUT/secret.txt $OUT/included.cfg\n"
     "cp \"$MARK\" $OUT/exec/git-log; cp \"$MARK\" $OUT/exec/git-status\n"
     "git init -q -b main template && cd template\n"
     "echo hello > a.txt; echo lazy-content > lazy.txt; git add .; git commit -qm first\n"
     "echo world >> a.txt; git commit -qam second; git tag -a v1 -m 'release one'\n"
     "echo 'local change' >> a.txt; touch -d '2001-01-01 00:00' lazy.txt\n"
     "git clone -q . $OUT/outrepo; echo outside-secret > $OUT/outrepo/o.txt\n"
     "git -C $OUT/outrepo add o.txt; git -C $OUT/outrepo commit -qm outside-secret\n",
     vars);
  vars["BLOB"] = "";
  {
    CancellationToken c;
    ProcessSpec spec;
    spec.argv = {"/usr/bin/git", "-C", (tmp.path() / "template").string(), "rev-parse", "HEAD:lazy.txt"};
    spec.env = {{"PATH", "/usr/bin:/bin"}, {"GIT_CONFIG_NOSYSTEM", "1"}, {"GIT_CONFIG_GLOBAL", "/dev/null"}};
    Result<RawOutput> r = RunProcess(spec, c, {});
    REQUIRE(r.ok());
    vars["BLOB"] = r->out.bytes.substr(0, r->out.bytes.find('\n'));
  }

  int index = 0;
  for (const Row& row : Rows()) {
    if (row.needs_sandbox && sandbox != GitTool::Sandbox::kConfined) continue;
    DYNAMIC_SECTION(row.key) {
      const fs::path repo = tmp.path() / ("repo" + std::to_string(index));
      Sh(tmp.path(), "cp -a template " + repo.string(), vars);
      Sh(repo, row.setup, vars);
      std::error_code ec;
      fs::remove(marker, ec);
      GitConfig config;
      config.repos["evil"] = repo.string();
      GitTool tool(config, sandbox);
      std::map<std::string, std::string> env;
      for (const auto& [k, v] : row.env) env[k] = Expand(v, vars);
      ScopedEnv scoped(env);
      for (json::object call : Calls()) {
        call["repo"] = "evil";
        CancellationToken cancel;
        CallContext ctx;
        ctx.cancel = &cancel;
        Result<RawOutput> r = tool.Run(call, ctx);
        INFO(row.key << ": " << json::serialize(call) << " -> " << r.status().ToString()
                     << (r.ok() ? "\nstderr: " + r->err.bytes : ""));
        if (r.ok()) {
          CHECK_FALSE(Has(r->out.bytes, "outside-secret"));
          CHECK_FALSE(Has(r->err.bytes, "outside-secret"));
          CHECK_FALSE(r->timed_out);
          // The lazy blob never arrives: a partial clone's missing object is an error.
          const bool lazy_blob = call.contains("revisions") && call.at("revisions").as_array()[0] == "HEAD:lazy.txt";
          if (lazy_blob && row.setup.find("partialClone") != std::string::npos) {
            CHECK(r->exit_status != 0);
            CHECK_FALSE(Has(r->out.bytes, "lazy-content"));
          }
        }
        switch (row.expect) {
          case Expect::kWorks:
            REQUIRE(r.ok());
            if (call.at("operation") != "grep") CHECK(r->exit_status == 0);
            break;
          case Expect::kRefused:
            REQUIRE_FALSE(r.ok());
            CHECK(r.status().code() == Code::kFailedPrecondition);
            CHECK(Has(r.status().message(), "outside"));
            break;
          case Expect::kAny:
            break;
        }
        REQUIRE_FALSE(fs::exists(marker));
      }
      CHECK(listener.Accepted() == 0);
      CHECK_FALSE(fs::exists(out / "trace2"));
      CHECK_FALSE(fs::exists(out / "trace"));
      CHECK_FALSE(fs::exists(out / "index"));
    }
    ++index;
  }
}

TEST_CASE("git: a hostile repository runs nothing and reaches nothing, row by row", "[git][hostile]") {
  if (ProbeSandbox().landlock_abi == 0) WARN("no Landlock here: " << ProbeSandbox().landlock_error);
  RunTable(GitTool::Sandbox::kConfined);
}

// Without the file sandbox (a kernel without Landlock), git's own hardening
// and the seccomp filter still hold every row not marked needs_sandbox.
TEST_CASE("git: without the file sandbox, git's own hardening holds its rows", "[git][hostile]") {
  RunTable(GitTool::Sandbox::kUnconfinedForTesting);
}

// The control: the same marker and rows do run the command or connect under
// plain git, so the table above proves something. A sample of rows that
// reach a program on the first try.
TEST_CASE("git: the hostile rows are live under plain git", "[git][hostile]") {
  testing::TempDir tmp("warden-git-live");
  const fs::path marker = tmp.path() / "marker";
  const fs::path mark = tmp.path() / "mark.sh";
  std::ofstream(mark) << "#!/bin/sh\necho ran >> '" << marker.string() << "'\ncat\n";
  fs::permissions(mark, fs::perms::owner_all);
  std::map<std::string, std::string> vars = {{"MARK", mark.string()}, {"MARKFILE", marker.string()}};
  Sh(tmp.path(),
     "git init -q -b main r && cd r && echo lazy-content > lazy.txt && git add . && git commit -qm one\n"
     "BLOB=$(git rev-parse HEAD:lazy.txt)\n"
     "git config core.repositoryformatversion 1; git config extensions.partialClone origin\n"
     "git config remote.origin.promisor true; git config protocol.ext.allow always\n"
     "git config remote.origin.url \"ext::sh -c touch% $MARKFILE\"\n"
     "rm -f .git/objects/$(echo $BLOB | cut -c1-2)/$(echo $BLOB | cut -c3-)\n"
     "git show HEAD:lazy.txt >/dev/null 2>&1 || true\n",
     vars);
  CHECK(fs::exists(marker));  // the attack works against git 2.39 itself
}

}  // namespace
}  // namespace warden::tools
