// audit_bench: what the audit store costs a tool call, and how long a purge
// pass takes. Usage: audit_bench [calls] [threads] [purge_rows]
//   - per call: BeginCall + FinishCall (a 4 KiB sanitized body), sequential
//     and from `threads` threads at once (group commit), in microseconds;
//   - purge: `purge_rows` expired bodies emptied by one PurgeExpired pass.
// Writes to a temp dir on the same disk as /tmp.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "storage/audit_store.h"

using Clock = std::chrono::steady_clock;
using warden::storage::AuditStore;

namespace {

warden::storage::CallFinish Finish(const std::string& id, int64_t purge_after_ms) {
  warden::storage::CallFinish f;
  f.call_id = id;
  f.finished_ms = 2;
  f.status = "completed";
  f.exit_status = 0;
  f.output_anon = std::string(4096, 'x');
  f.output_sha256 = std::string(64, 'a');
  f.redactions_json = R"({"ip":3,"password":1})";
  f.purge_after_ms = purge_after_ms;
  return f;
}

// Runs `calls` begin+finish pairs from `threads` threads; returns per-call latencies (us), sorted.
std::vector<double> Run(AuditStore& store, int calls, int threads, const std::string& prefix) {
  std::vector<std::vector<double>> lat(static_cast<size_t>(threads));
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = t; i < calls; i += threads) {
        std::string id = prefix + std::to_string(i);
        auto t0 = Clock::now();
        if (!store.BeginCall({id, "s", "git", "repo:demo", "{}", 1}).ok() || !store.FinishCall(Finish(id, 10)).ok())
          std::abort();
        lat[static_cast<size_t>(t)].push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      }
    });
  }
  for (auto& th : ts) th.join();
  std::vector<double> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  return all;
}

double At(const std::vector<double>& v, double p) { return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))]; }

}  // namespace

int main(int argc, char** argv) {
  int calls = argc > 1 ? std::atoi(argv[1]) : 5000;
  int threads = argc > 2 ? std::atoi(argv[2]) : 32;
  int purge_rows = argc > 3 ? std::atoi(argv[3]) : 100000;
  char tmpl[] = "/tmp/warden-audit-bench-XXXXXX";
  std::filesystem::path dir = mkdtemp(tmpl);
  auto store = std::move(AuditStore::Open((dir / "audit.db").string()).value());

  for (int threads_now : {1, threads}) {
    auto t0 = Clock::now();
    std::vector<double> lat = Run(*store, calls, threads_now, "t" + std::to_string(threads_now) + "-");
    double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf("audit write per call (begin+finish, 4 KiB body), %d thread(s): p50 %.1f us, p99 %.1f us, "
                "%.0f calls/s\n",
                threads_now, At(lat, 0.5), At(lat, 0.99), calls / wall);
  }

  // Purge: `purge_rows` rows, all expired.
  Run(*store, purge_rows, 8, "p-");
  auto t0 = Clock::now();
  auto r = store->PurgeExpired(1000);
  double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  if (!r.ok()) return 1;
  std::printf("purge pass: %lld bodies emptied in %.1f ms (%lld rows in the table)\n",
              static_cast<long long>(r.value().purged), ms,
              static_cast<long long>(purge_rows + 2 * calls));
  store.reset();
  std::filesystem::remove_all(dir);
  return 0;
}
