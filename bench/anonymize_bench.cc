// anonymize_bench: layer-1 throughput on one core and latency for a 64 KiB
// tool output. Input: files named on the command line (e.g. the corpus
// inputs), concatenated. Figures go into the issue notes, not into tests.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

#include "anonymizer/anonymizer.h"

int main(int argc, char** argv) {
  std::string corpus;
  for (int i = 1; i < argc; ++i) {
    std::ifstream f(argv[i]);
    std::stringstream ss;
    ss << f.rdbuf();
    corpus += ss.str() + "\n";
  }
  if (corpus.size() < 2) {
    std::fprintf(stderr, "usage: anonymize_bench FILE...\n");
    return 2;
  }
  auto anonymizer = warden::anonymizer::MakeDefaultAnonymizer();
  std::string big;
  // ANON_BENCH_MB and ANON_BENCH_RUNS shrink the run (for callgrind); defaults 32 and 500.
  const char* mb = std::getenv("ANON_BENCH_MB");
  const char* runs_env = std::getenv("ANON_BENCH_RUNS");
  const size_t size = (mb ? std::strtoul(mb, nullptr, 10) : 32) << 20;
  const int runs = std::max(1, runs_env ? std::atoi(runs_env) : 500);
  while (big.size() < size) big += corpus;
  warden::anonymizer::TokenMap tokens;
  // The first call is cold: RE2 builds its automata on first use and every page
  // of the output and span arrays is new to the process. A server is past that
  // after a few calls, so the figure for a running Warden is the median of the
  // calls after it (ANON_BENCH_PASSES in all, default 5).
  const char* passes_env = std::getenv("ANON_BENCH_PASSES");
  const int passes = std::max(1, passes_env ? std::atoi(passes_env) : 5);
  std::vector<double> warm;
  for (int pass = 0; pass < passes; ++pass) {
    auto t0 = std::chrono::steady_clock::now();
    size_t out = anonymizer->Anonymize(big, tokens).text.size();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (pass == 0)
      std::printf("throughput, cold (first call): %.1f MB in %.3f s = %.1f MB/s (output %zu bytes)\n", big.size() / 1e6,
                  secs, big.size() / 1e6 / secs, out);
    else
      warm.push_back(big.size() / 1e6 / secs);
  }
  if (!warm.empty()) {
    std::sort(warm.begin(), warm.end());
    std::printf("throughput, warm (median of %zu calls after it): %.1f MB/s (range %.1f-%.1f)\n", warm.size(),
                warm[warm.size() / 2], warm.front(), warm.back());
  }

  std::string chunk = big.substr(0, 64 * 1024);
  std::vector<double> lat;
  for (int i = 0; i < runs; ++i) {
    auto s = std::chrono::steady_clock::now();
    (void)anonymizer->Anonymize(chunk, tokens);
    lat.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - s).count());
  }
  std::sort(lat.begin(), lat.end());
  std::printf("64 KiB output: p50 %.0f us, p99 %.0f us (%d runs)\n", lat[lat.size() / 2], lat[lat.size() * 99 / 100], runs);
  return 0;
}
