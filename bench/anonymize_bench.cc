// anonymize_bench: layer-1 throughput on one core and latency for a 64 KiB
// tool output. Input: files named on the command line (the corpus inputs, from
// bench/corpus_inputs.py), each followed by a newline and the whole repeated 50
// times: byte for byte the text score.py's throughput line pipes through
// `warden anonymize` at its default --reps. Figures go into the issue notes, not
// into tests.
//
// Environment: ANON_BENCH_REPS (copies, default 50, score.py's --reps);
// ANON_BENCH_MB (instead, copies up to at least that many MiB: a large output);
// ANON_BENCH_PASSES (calls on the whole text, default 5); ANON_BENCH_RUNS (64 KiB
// calls for the latency, default 500).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string_view>
#include <vector>

#include "anonymizer/anonymizer.h"

namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: anonymize_bench FILE...\n");
    return 2;
  }
  std::string corpus;
  for (int i = 1; i < argc; ++i) {
    std::ifstream f(argv[i], std::ios::binary);
    if (!f) {
      std::fprintf(stderr, "anonymize_bench: cannot read %s\n", argv[i]);
      return 2;
    }
    std::stringstream ss;
    ss << f.rdbuf();
    corpus += ss.str() + "\n";
  }
  auto anonymizer = warden::anonymizer::MakeDefaultAnonymizer();
  const char* reps_env = std::getenv("ANON_BENCH_REPS");
  const char* mb_env = std::getenv("ANON_BENCH_MB");
  const char* runs_env = std::getenv("ANON_BENCH_RUNS");
  const char* passes_env = std::getenv("ANON_BENCH_PASSES");
  const int runs = std::max(1, runs_env ? std::atoi(runs_env) : 500);
  const int passes = std::max(1, passes_env ? std::atoi(passes_env) : 5);
  std::string big;
  if (mb_env) {
    const size_t size = std::max<size_t>(1, std::strtoul(mb_env, nullptr, 10)) << 20;
    while (big.size() < size) big += corpus;
  } else {
    const int reps = std::max(1, reps_env ? std::atoi(reps_env) : 50);
    for (int r = 0; r < reps; ++r) big += corpus;
  }
  std::printf("input: %zu files, %zu bytes, repeated to %.1f MB\n", static_cast<size_t>(argc - 1), corpus.size(),
              big.size() / 1e6);
  warden::anonymizer::TokenMap tokens;

  // The whole text in one call. The first call is cold: RE2 builds its automata
  // on first use and the output and span arrays are new to the process. A server
  // is past that after a few calls: the warm figure is the median of the others.
  std::vector<double> warm;
  for (int pass = 0; pass < passes; ++pass) {
    auto t0 = std::chrono::steady_clock::now();
    size_t out = anonymizer->Anonymize(big, tokens).text.size();
    double secs = Seconds(t0);
    if (pass == 0)
      std::printf("throughput, cold (first call): %.1f MB in %.3f s = %.1f MB/s (output %zu bytes)\n", big.size() / 1e6,
                  secs, big.size() / 1e6 / secs, out);
    else
      warm.push_back(big.size() / 1e6 / secs);
  }
  if (!warm.empty()) {
    std::printf("throughput, warm (median of %zu calls after it): %.1f MB/s (range %.1f-%.1f)\n", warm.size(),
                Median(warm), *std::min_element(warm.begin(), warm.end()), *std::max_element(warm.begin(), warm.end()));
  }

  // The same text in 64 KiB calls, as a server sees most tool outputs: each call
  // pays again for what a call sets up (the learned names' dictionary, the rules'
  // state coming back into the caches).
  // Three passes whatever ANON_BENCH_PASSES says, so that a callgrind count with
  // PASSES=2 minus one with PASSES=1 is still one warm call on the whole text.
  constexpr size_t kSlice = 64 * 1024;
  constexpr int kSlicedPasses = 3;
  std::vector<double> sliced;
  for (int pass = 0; pass < kSlicedPasses; ++pass) {
    auto t0 = std::chrono::steady_clock::now();
    for (size_t p = 0; p < big.size(); p += kSlice) (void)anonymizer->Anonymize(std::string_view(big).substr(p, kSlice), tokens);
    sliced.push_back(big.size() / 1e6 / Seconds(t0));
  }
  std::printf("throughput, the same text in 64 KiB calls (median of %zu passes): %.1f MB/s\n", sliced.size(),
              Median(sliced));

  std::string chunk = big.substr(0, kSlice);
  std::vector<double> lat;
  for (int i = 0; i < runs; ++i) {
    auto s = std::chrono::steady_clock::now();
    (void)anonymizer->Anonymize(chunk, tokens);
    lat.push_back(Seconds(s) * 1e6);
  }
  std::sort(lat.begin(), lat.end());
  std::printf("64 KiB output: p50 %.0f us, p99 %.0f us (%d runs)\n", lat[lat.size() / 2], lat[lat.size() * 99 / 100], runs);
  return 0;
}
