// tests/unit/temp_dir.h: a scratch directory for tests and benches, removed on
// destruction. Header-only and free of Catch2, so every test target (and
// bench/ssh_bench.cc through ssh_fixture.h) can use it without a library.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace warden::testing {

// TempDir is a fresh directory under $TMPDIR (or /tmp), removed on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "warden-test") {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/" + prefix + "-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = std::filesystem::canonical(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

  // Write creates (or replaces) `name` in the directory holding `text`, with
  // `mode`, and returns its path.
  std::string Write(const std::string& name, const std::string& text, mode_t mode = 0600) const {
    std::filesystem::path p = path_ / name;
    std::ofstream(p) << text;
    ::chmod(p.c_str(), mode);
    return p.string();
  }

 private:
  std::filesystem::path path_;
};

}  // namespace warden::testing
