// storage/audit_store.h: the audit database (SQLite, WAL).
//
// Holds metadata and SANITIZED output only: raw tool output, key material and
// the session token map never reach this module. Every tool call gets a row
// when it starts (so a crash still leaves evidence) and is completed when it
// ends; if either write fails the caller must fail closed.
//
// Writes go through ONE writer thread that commits whatever is queued in one
// transaction (group commit): concurrent calls share a commit instead of
// queueing on a lock, and each write returns once its transaction committed,
// so a caller never acts on a row that is not in the database. Each write is
// a savepoint: one failing write does not undo the others in its batch.
// Reads use their own connection (WAL lets them run beside the writer), and
// so does a checkpointer thread, so no call waits for a checkpoint's fsync.
//
// Durability: WAL with synchronous=NORMAL: a committed row survives a crash of
// the process (kill -9); an OS crash may lose the last transactions.
// Failures (locked by another process past busy_timeout, read-only, disk full,
// corrupt) come back as Unavailable with SQLite's own words.
//
// Thread safety: all members may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/result.h"

struct sqlite3;

namespace warden::storage {

struct SessionRow {
  std::string id;
  int64_t started_ms = 0;
  std::string client_name;
  std::string client_version;
  std::string protocol_version;
};

struct CallStart {
  std::string call_id;
  std::string session_id;
  std::string tool;
  std::string target;
  std::string arguments_json;  // sanitized
  int64_t started_ms = 0;
};

struct CallFinish {
  std::string call_id;
  int64_t finished_ms = 0;
  std::string status;  // completed | timed_out | cancelled | refused | failed | halted | withheld
  std::optional<int> exit_status;
  std::optional<std::string> exit_signal;
  int64_t duration_ms = 0;
  uint64_t stdout_bytes = 0;
  uint64_t stderr_bytes = 0;
  uint64_t response_bytes = 0;
  bool truncated = false;
  std::string redactions_json = "{}";  // {"ip": 3, ...}
  int64_t pipeline_us = 0;
  int64_t anonymize_us = 0;   // time in the anonymizer (both streams)
  std::string canary = "none";  // inline canary: pass | leak | none (no text stream)
  std::string error;         // sanitized; empty when none
  std::string output_anon;   // sanitized output body; purged after retention
  std::string output_sha256; // of output_anon; kept after the purge
  int64_t purge_after_ms = 0;
  // Tool-specific facts (certificate serial and key id, operation, ...) as a
  // JSON object; never secrets, never raw output.
  std::string details_json = "{}";
};

struct HaltRow {
  int64_t id = 0;
  int64_t halted_ms = 0;
  std::string severity = "critical";
  std::string source;   // "inline" | "self-test" | "startup-self-test"
  std::string call_id;  // the call whose canary leaked, when inline
  std::string reason;   // names the canary family, never a value
};

struct CanaryRunRow {
  int64_t ran_ms = 0;
  std::string source;  // "warden canary" | "startup"
  int passed = 0;
  int failed = 0;
  std::string details_json = "[]";  // [{"family":..,"passed":..,"detail":..}]
};

struct PurgeResult {
  int64_t purged = 0;
  int64_t lag_ms = 0;  // how long past its purge time the oldest purged body was kept
  int64_t duration_us = 0;
};

// CallRow is a tool call as `warden audit` shows it.
struct CallRow {
  std::string call_id, session_id, tool, target, status, error, redactions_json, details_json, canary;
  int64_t started_ms = 0, duration_ms = 0, response_bytes = 0;
  std::optional<int> exit_status;
  bool output_kept = false;
};

struct ToolCount {
  std::string tool;
  int64_t calls = 0;
  int64_t errors = 0;  // anything but completed
};

// StatsRows: the raw material of `warden stats`, over calls since `since_ms`.
struct StatsRows {
  std::vector<int64_t> anonymize_us;   // completed calls, sorted
  std::vector<ToolCount> tools;
  int64_t canary_inline_pass = 0, canary_inline_leak = 0;
  int64_t canary_selftest_pass = 0, canary_selftest_fail = 0;  // canaries, over the self-test runs
  int64_t local_calls = 0, escalated_calls = 0;  // local_* tools vs the rest
  int64_t validation_rejections = 0;             // calls whose answer output validation blocked
  std::vector<double> ssh_expiry_ratio;          // ssh_run duration / certificate lifetime, sorted
  int64_t purge_runs = 0, purge_lag_max_ms = 0, purge_lag_last_ms = 0;
  int64_t bodies_pending = 0;                    // output bodies still held
  std::optional<HaltRow> active_halt;
};

struct StoreOptions {
  int busy_timeout_ms = 5000;
};

class AuditStore {
 public:
  // Open creates the database (mode 0600, parent directories 0700) or opens
  // and migrates an existing one. Unavailable with a clear reason on failure.
  static Result<std::unique_ptr<AuditStore>> Open(const std::string& path, StoreOptions options = {});
  ~AuditStore();  // writes already queued are committed first
  AuditStore(const AuditStore&) = delete;
  AuditStore& operator=(const AuditStore&) = delete;

  Status StartSession(const SessionRow& row);
  Status EndSession(const std::string& id, int64_t ended_ms);
  Status BeginCall(const CallStart& row);
  Status FinishCall(const CallFinish& row);

  // RecordHalt stores a halt; it stays active until LiftHalts.
  Result<int64_t> RecordHalt(const HaltRow& row);
  // LiftHalts ends every active halt; returns how many there were.
  Result<int64_t> LiftHalts(int64_t lifted_ms, const std::string& lifted_by);
  // ActiveHalt is the oldest halt not lifted, if any.
  Result<std::optional<HaltRow>> ActiveHalt();
  Status RecordCanaryRun(const CanaryRunRow& row);

  // PurgeExpired nulls output bodies whose purge time has passed (in chunks, so
  // tool calls' writes interleave) and records the pass when it purged any.
  Result<PurgeResult> PurgeExpired(int64_t now_ms);

  Result<std::vector<CallRow>> ListCalls(int64_t since_ms, const std::string& tool, int limit);
  Result<StatsRows> Stats(int64_t since_ms);

  static constexpr int kSchemaVersion = 3;
  const std::string& path() const { return path_; }

 private:
  using WriteFn = std::function<Status(sqlite3*)>;
  struct Write {
    WriteFn fn;
    std::promise<Status> done;
  };

  AuditStore(std::string path, StoreOptions options) : path_(std::move(path)), options_(options) {}
  // Submit queues `fn` for the writer thread and waits until its transaction ends.
  Status Submit(WriteFn fn);
  void WriterLoop();
  void CheckpointLoop();
  static int WalHook(void* self, sqlite3* db, const char* name, int pages);
  static constexpr int kCheckpointPages = 1000;  // SQLite's own autocheckpoint size
  Status Error(sqlite3* db, const char* what) const;

  std::string path_;
  StoreOptions options_;
  sqlite3* wdb_ = nullptr;  // the writer thread's connection
  sqlite3* rdb_ = nullptr;  // reads, under read_mu_
  sqlite3* cdb_ = nullptr;  // the checkpointer thread's connection
  std::mutex read_mu_;

  std::mutex mu_;
  std::condition_variable write_cv_;     // the writer waits for writes
  std::condition_variable cv_;           // the checkpointer waits for a full WAL
  std::deque<Write> queue_;              // GUARDED_BY(mu_)
  bool stop_ = false;                    // GUARDED_BY(mu_)
  bool checkpoint_wanted_ = false;       // GUARDED_BY(mu_)
  std::thread writer_;
  std::thread checkpointer_;
};

}  // namespace warden::storage
