// storage/audit_store.h: the audit database (SQLite, WAL).
//
// Holds metadata and SANITIZED output only: raw tool output, key material and
// the session token map never reach this module. Every tool call gets a row
// when it starts (so a crash still leaves evidence) and is completed when it
// ends; if either write fails the caller must fail closed.
//
// Durability: WAL with synchronous=NORMAL: a committed row survives a crash of
// the process (kill -9); an OS crash may lose the last transactions.
//
// Thread safety: all members may be called from any thread (one connection,
// serialized by a mutex; writes are small).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "core/result.h"

struct sqlite3;
struct sqlite3_stmt;

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
  std::string status;  // completed | timed_out | cancelled | refused | failed
  std::optional<int> exit_status;
  std::optional<std::string> exit_signal;
  int64_t duration_ms = 0;
  uint64_t stdout_bytes = 0;
  uint64_t stderr_bytes = 0;
  uint64_t response_bytes = 0;
  bool truncated = false;
  std::string redactions_json = "{}";  // {"ip": 3, ...}
  int64_t pipeline_us = 0;
  std::string error;         // sanitized; empty when none
  std::string output_anon;   // sanitized output body; purged after retention
  std::string output_sha256; // of output_anon; kept after the purge
  int64_t purge_after_ms = 0;
  // Tool-specific facts (certificate serial and key id, operation, ...) as a
  // JSON object; never secrets, never raw output.
  std::string details_json = "{}";
};

class AuditStore {
 public:
  // Open creates the database (mode 0600, parent directories 0700) or opens
  // and migrates an existing one. Unavailable with a clear reason on failure.
  static Result<std::unique_ptr<AuditStore>> Open(const std::string& path);
  ~AuditStore();

  Status StartSession(const SessionRow& row);
  Status EndSession(const std::string& id, int64_t ended_ms);
  Status BeginCall(const CallStart& row);
  Status FinishCall(const CallFinish& row);
  // PurgeExpired nulls output bodies whose purge time has passed; returns rows purged.
  Result<int64_t> PurgeExpired(int64_t now_ms);

  static constexpr int kSchemaVersion = 2;
  const std::string& path() const { return path_; }

 private:
  AuditStore(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  Status Exec(const char* sql);
  Status Error(const char* what) const;

  std::mutex mu_;
  sqlite3* db_;
  std::string path_;
};

}  // namespace warden::storage
