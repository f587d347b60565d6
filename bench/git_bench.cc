// git tool calls in process, confined (as Warden runs them) and without the
// file sandbox, on a small repository: what the isolation costs per call.
// Usage: git_bench REPO_DIR [calls]. Figures go into notes; never a test.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "tools/git_tool.h"
#include "tools/sandbox.h"

using namespace warden;
using namespace warden::tools;

namespace {

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

std::vector<double> Run(GitTool& tool, const boost::json::object& args, int calls) {
  std::vector<double> ms;
  for (int i = 0; i < calls; ++i) {
    CancellationToken cancel;
    CallContext ctx;
    ctx.cancel = &cancel;
    auto t0 = std::chrono::steady_clock::now();
    Result<RawOutput> r = tool.Run(args, ctx);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    if (!r.ok() || r->exit_status != 0) {
      std::fprintf(stderr, "git_bench: call failed: %s\n", r.ok() ? r->err.bytes.c_str() : r.status().ToString().c_str());
      std::exit(1);
    }
  }
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: git_bench REPO_DIR [calls]\n");
    return 1;
  }
  int calls = argc > 2 ? std::atoi(argv[2]) : 300;
  GitConfig config;
  config.repos["r"] = argv[1];
  GitTool confined(config, GitTool::Sandbox::kConfined);
  GitTool unconfined(config, GitTool::Sandbox::kUnconfinedForTesting);
  std::printf("sandbox: %s\n", ProbeSandbox().Describe().c_str());
  for (const char* op : {"status", "log"}) {
    boost::json::object args{{"repo", "r"}, {"operation", op}};
    // Interleaved rounds, so that load on the host hits both alike.
    std::vector<double> c, u;
    for (int round = 0; round < 5; ++round) {
      auto a = Run(confined, args, calls / 5);
      auto b = Run(unconfined, args, calls / 5);
      c.insert(c.end(), a.begin(), a.end());
      u.insert(u.end(), b.begin(), b.end());
    }
    std::printf("%-7s confined p50 %.2f ms p99 %.2f ms | without the file sandbox p50 %.2f ms p99 %.2f ms (%d calls each)\n",
                op, Percentile(c, 0.5), Percentile(c, 0.99), Percentile(u, 0.5), Percentile(u, 0.99), calls);
  }
  return 0;
}
