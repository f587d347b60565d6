// server/operator.h: what `warden stats` and `warden audit` print.
//
// Input: rows from the audit database (sanitized already: the store never
// holds raw output). Output: text for people, JSON for scripts, and the
// Prometheus text exposition format for a scraper (`warden stats --prometheus`
// as a textfile-collector job).
//
// The stats follow seed 004's observability table, each with its alert
// threshold: anonymization latency p99 (>500 ms warning, >2 s critical),
// canary pass rate (<100% halt), escalation ratio (>40% review), SSH sessions
// near certificate expiry (>90% of the lifetime warning), output-validation
// rejections (>5% investigate), purge lag (>10 min critical), and calls and
// errors per tool.
#pragma once

#include <boost/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "storage/audit_store.h"

namespace warden::server {

// ParseDuration reads "90s", "15m", "24h", "7d" (a bare number is seconds).
Result<int64_t> ParseDurationMs(std::string_view text);

// Percentile of a sorted vector (nearest rank); 0 when empty.
template <typename T>
T Percentile(const std::vector<T>& sorted, double p) {
  if (sorted.empty()) return T{};
  size_t rank = static_cast<size_t>(p / 100.0 * static_cast<double>(sorted.size()) + 0.999999);
  return sorted[std::min(sorted.size(), std::max<size_t>(rank, 1)) - 1];
}

boost::json::object StatsJson(const storage::StatsRows& rows, int64_t since_ms, int64_t now_ms);
std::string StatsText(const boost::json::object& stats);
std::string StatsPrometheus(const boost::json::object& stats);

boost::json::array AuditJson(const std::vector<storage::CallRow>& rows);
std::string AuditTable(const std::vector<storage::CallRow>& rows);

}  // namespace warden::server
