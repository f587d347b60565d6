#include "storage/purge_worker.h"

#include <spdlog/spdlog.h>

namespace warden::storage {

PurgeWorker::PurgeWorker(AuditStore& store, const Clock& clock, std::chrono::milliseconds interval)
    : store_(store), clock_(clock), interval_(interval), thread_([this] { Run(); }) {}

PurgeWorker::~PurgeWorker() { Stop(); }

void PurgeWorker::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void PurgeWorker::Run() {
  for (;;) {
    Result<PurgeResult> purged = store_.PurgeExpired(UnixMillis(clock_.Now()));
    if (!purged.ok())
      spdlog::error("purge: {}", purged.status().message());  // retried at the next pass
    else if (purged.value().purged > 0)
      spdlog::debug("purge: emptied {} output bodies, {} ms late", purged.value().purged, purged.value().lag_ms);
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, interval_, [this] { return stop_; })) break;
  }
  if (Result<PurgeResult> last = store_.PurgeExpired(UnixMillis(clock_.Now())); !last.ok())
    spdlog::error("purge at shutdown: {}", last.status().message());
}

}  // namespace warden::storage
