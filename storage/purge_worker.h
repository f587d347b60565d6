// storage/purge_worker.h: empties sanitized output bodies once their
// retention time has passed (default 5 minutes), for as long as the server
// runs. Hashes, sizes, counts and durations stay; the body does not.
//
// Thread safety: Start/Stop from one thread; the worker owns its thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "core/clock.h"
#include "storage/audit_store.h"

namespace warden::storage {

class PurgeWorker {
 public:
  // `interval`: how often to pass; a pass purges every row whose time has come.
  PurgeWorker(AuditStore& store, const Clock& clock, std::chrono::milliseconds interval);
  ~PurgeWorker();  // stops and joins
  PurgeWorker(const PurgeWorker&) = delete;
  PurgeWorker& operator=(const PurgeWorker&) = delete;

  // Stop makes one last pass (rows expired during shutdown are not left behind) and joins.
  void Stop();

 private:
  void Run();

  AuditStore& store_;
  const Clock& clock_;
  std::chrono::milliseconds interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace warden::storage
