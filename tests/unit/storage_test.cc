#include <catch2/catch.hpp>
#include <sqlite3.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <atomic>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "storage/audit_store.h"
#include "storage/purge_worker.h"
#include "tests/unit/temp_dir.h"

namespace fs = std::filesystem;
using warden::storage::AuditStore;
using warden::testing::TempDir;

namespace {
std::string Query(const fs::path& db_path, const std::string& sql) {
  sqlite3* db;
  sqlite3_open(db_path.c_str(), &db);
  sqlite3_stmt* s;
  std::string v = "(error)";
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK) {
    v = sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0) ? reinterpret_cast<const char*>(sqlite3_column_text(s, 0))
                                                                   : "(null)";
    sqlite3_finalize(s);
  }
  sqlite3_close(db);
  return v;
}
}  // namespace

TEST_CASE("a new database is WAL, mode 0600, at the current schema version") {
  TempDir d("warden-storage");
  fs::path db = d.path() / "sub/dir/audit.db";
  auto store = AuditStore::Open(db.string());
  REQUIRE(store.ok());
  struct stat st;
  REQUIRE(stat(db.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(stat(db.parent_path().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  CHECK(Query(db, "PRAGMA journal_mode") == "wal");
  CHECK(Query(db, "PRAGMA user_version") == std::to_string(AuditStore::kSchemaVersion));
}

TEST_CASE("a database at schema version 1 is migrated, its rows kept") {
  TempDir d("warden-storage");
  fs::path db = d.path() / "audit.db";
  {
    sqlite3* raw;
    REQUIRE(sqlite3_open(db.c_str(), &raw) == SQLITE_OK);
    REQUIRE(sqlite3_exec(raw,
                         "CREATE TABLE sessions(id TEXT PRIMARY KEY, started_ms INTEGER NOT NULL, ended_ms INTEGER,"
                         " client_name TEXT, client_version TEXT, protocol_version TEXT);"
                         "CREATE TABLE tool_calls(call_id TEXT PRIMARY KEY, session_id TEXT NOT NULL, tool TEXT NOT NULL,"
                         " target TEXT NOT NULL, arguments TEXT NOT NULL, started_ms INTEGER NOT NULL, finished_ms INTEGER,"
                         " status TEXT NOT NULL DEFAULT 'running', exit_status INTEGER, exit_signal TEXT, duration_ms INTEGER,"
                         " stdout_bytes INTEGER, stderr_bytes INTEGER, response_bytes INTEGER, truncated INTEGER,"
                         " redactions TEXT, pipeline_us INTEGER, error TEXT, output_anon TEXT, output_sha256 TEXT,"
                         " purge_after_ms INTEGER, purged_ms INTEGER);"
                         "INSERT INTO tool_calls(call_id, session_id, tool, target, arguments, started_ms)"
                         " VALUES('old', 's', 'git', 'repo:x', '{}', 1);"
                         "PRAGMA user_version=1;",
                         nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(raw);
  }
  auto store = AuditStore::Open(db.string());
  REQUIRE(store.ok());
  CHECK(Query(db, "PRAGMA user_version") == std::to_string(AuditStore::kSchemaVersion));
  CHECK(Query(db, "SELECT tool FROM tool_calls WHERE call_id='old'") == "git");
  warden::storage::CallFinish f;
  f.call_id = "old";
  f.status = "completed";
  f.details_json = R"({"operation":"status"})";
  REQUIRE(store.value()->FinishCall(f).ok());
  CHECK(Query(db, "SELECT details FROM tool_calls WHERE call_id='old'") == R"({"operation":"status"})");
}

TEST_CASE("a database from a newer Warden is refused, not downgraded") {
  TempDir d("warden-storage");
  fs::path db = d.path() / "audit.db";
  REQUIRE(AuditStore::Open(db.string()).ok());
  sqlite3* raw;
  sqlite3_open(db.c_str(), &raw);
  sqlite3_exec(raw, "PRAGMA user_version=99", nullptr, nullptr, nullptr);
  sqlite3_close(raw);
  auto newer = AuditStore::Open(db.string());
  REQUIRE_FALSE(newer.ok());
  CHECK(newer.status().message().find("newer than this Warden") != std::string::npos);
}

TEST_CASE("a call row is written at start and completed at the end") {
  TempDir d("warden-storage");
  fs::path db = d.path() / "audit.db";
  auto store = std::move(AuditStore::Open(db.string()).value());
  REQUIRE(store->StartSession({"s1", 1000, "client", "1.0", "2025-11-25"}).ok());
  REQUIRE(store->BeginCall({"c1", "s1", "git", "repo:demo", "{}", 1001}).ok());
  CHECK(Query(db, "SELECT status FROM tool_calls WHERE call_id='c1'") == "running");
  warden::storage::CallFinish f;
  f.call_id = "c1";
  f.finished_ms = 1002;
  f.status = "completed";
  f.exit_status = 0;
  f.output_anon = "sanitized";
  f.purge_after_ms = 5000;
  REQUIRE(store->FinishCall(f).ok());
  CHECK(Query(db, "SELECT status || ':' || exit_status || ':' || output_anon FROM tool_calls") == "completed:0:sanitized");

  f.call_id = "never-begun";
  CHECK(store->FinishCall(f).code() == warden::Code::kInternal);
}

TEST_CASE("purge nulls expired bodies and keeps their hashes") {
  TempDir d("warden-storage");
  fs::path db = d.path() / "audit.db";
  auto store = std::move(AuditStore::Open(db.string()).value());
  for (const char* id : {"old", "new"}) {
    REQUIRE(store->BeginCall({id, "s", "git", "t", "{}", 1}).ok());
    warden::storage::CallFinish f;
    f.call_id = id;
    f.status = "completed";
    f.output_anon = "body";
    f.output_sha256 = "hash";
    f.purge_after_ms = std::string(id) == "old" ? 100 : 10'000;
    REQUIRE(store->FinishCall(f).ok());
  }
  auto purged = store->PurgeExpired(5000);
  REQUIRE(purged.ok());
  CHECK(purged.value().purged == 1);
  CHECK(purged.value().lag_ms == 4900);  // due at 100, purged at 5000
  CHECK(Query(db, "SELECT purged || ':' || lag_ms FROM purge_runs") == "1:4900");
  CHECK(Query(db, "SELECT output_anon FROM tool_calls WHERE call_id='old'") == "(null)");
  CHECK(Query(db, "SELECT output_sha256 FROM tool_calls WHERE call_id='old'") == "hash");
  CHECK(Query(db, "SELECT output_anon FROM tool_calls WHERE call_id='new'") == "body");
}

TEST_CASE("a corrupt, foreign or unwritable database is a clear error") {
  TempDir d("warden-storage");
  fs::path junk = d.path() / "junk.db";
  std::ofstream(junk) << std::string(8192, 'x');
  auto bad = AuditStore::Open(junk.string());
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == warden::Code::kUnavailable);
  CHECK(bad.status().message().find(junk.string()) != std::string::npos);

  if (geteuid() != 0) {  // root ignores permissions
    fs::path ro = d.path() / "ro";
    fs::create_directories(ro);
    fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
    auto denied = AuditStore::Open((ro / "audit.db").string());
    CHECK_FALSE(denied.ok());
  }
  auto nodir = AuditStore::Open("/proc/warden-cannot-exist/audit.db");
  REQUIRE_FALSE(nodir.ok());
  CHECK(nodir.status().message().find("cannot create state directory") != std::string::npos);
}

TEST_CASE("the purge worker empties expired bodies by the store's clock, and once more when stopped") {
  TempDir d("warden-storage");
  fs::path db = d.path() / "audit.db";
  auto store = std::move(AuditStore::Open(db.string()).value());
  for (const char* id : {"early", "late"}) {
    REQUIRE(store->BeginCall({id, "s", "git", "t", "{}", 1}).ok());
    warden::storage::CallFinish f;
    f.call_id = id;
    f.status = "completed";
    f.output_anon = "sanitized body";
    f.output_sha256 = "h";
    f.purge_after_ms = std::string(id) == "early" ? 1'000 : 5'000;
    REQUIRE(store->FinishCall(f).ok());
  }
  warden::ManualClock clock(std::chrono::system_clock::time_point(std::chrono::milliseconds(2'000)));
  {
    warden::storage::PurgeWorker worker(*store, clock, std::chrono::hours(1));
    worker.Stop();  // the first pass and the last one both ran by now
  }
  CHECK(Query(db, "SELECT output_anon FROM tool_calls WHERE call_id='early'") == "(null)");
  CHECK(Query(db, "SELECT output_anon FROM tool_calls WHERE call_id='late'") == "sanitized body");
  clock.Set(std::chrono::system_clock::time_point(std::chrono::milliseconds(6'000)));
  { warden::storage::PurgeWorker worker(*store, clock, std::chrono::hours(1)); }
  CHECK(Query(db, "SELECT output_anon FROM tool_calls WHERE call_id='late'") == "(null)");
  CHECK(Query(db, "SELECT output_sha256 FROM tool_calls WHERE call_id='late'") == "h");
  CHECK(Query(db, "SELECT purged_ms FROM tool_calls WHERE call_id='late'") == "6000");
}

TEST_CASE("concurrent writers share commits and every row lands; a failed write undoes only itself") {
  TempDir d("warden-storage");
  fs::path db = d.path() / "audit.db";
  auto store = std::move(AuditStore::Open(db.string()).value());
  std::vector<std::thread> threads;
  std::atomic<int> failures{0}, missing_refused{0};
  for (int t = 0; t < 32; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        std::string id = std::to_string(t) + "-" + std::to_string(i);
        if (!store->BeginCall({id, "s", "git", "t", "{}", i}).ok()) ++failures;
        warden::storage::CallFinish f;
        f.call_id = id;
        f.status = "completed";
        if (!store->FinishCall(f).ok()) ++failures;
        f.call_id = "no-such-" + id;  // fails inside the batch of the others
        if (store->FinishCall(f).code() == warden::Code::kInternal) ++missing_refused;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(failures == 0);
  CHECK(missing_refused == 32 * 40);
  CHECK(Query(db, "SELECT COUNT(*) FROM tool_calls WHERE status='completed'") == "1280");
  CHECK(Query(db, "PRAGMA integrity_check") == "ok");
}

TEST_CASE("a halt stays active until lifted, and the lift is recorded") {
  TempDir d("warden-storage");
  fs::path db = d.path() / "audit.db";
  auto store = std::move(AuditStore::Open(db.string()).value());
  REQUIRE(store->ActiveHalt().ok());
  CHECK_FALSE(store->ActiveHalt().value().has_value());
  warden::storage::HaltRow h;
  h.halted_ms = 10;
  h.source = "inline";
  h.call_id = "c9";
  h.reason = "canary leak: the inline email canary";
  REQUIRE(store->RecordHalt(h).ok());
  auto active = store->ActiveHalt();
  REQUIRE(active.ok());
  REQUIRE(active.value().has_value());
  CHECK(active.value()->reason == h.reason);
  CHECK(active.value()->severity == "critical");
  // A second store on the same file (another process, the CronJob) sees it.
  auto other = std::move(AuditStore::Open(db.string()).value());
  CHECK(other->ActiveHalt().value().has_value());
  auto lifted = other->LiftHalts(20, "warden canary --reset");
  REQUIRE(lifted.ok());
  CHECK(lifted.value() == 1);
  CHECK_FALSE(store->ActiveHalt().value().has_value());
  CHECK(Query(db, "SELECT lifted_by FROM halts") == "warden canary --reset");
}

TEST_CASE("a database locked by another process fails writes with a clear error, then recovers") {
  TempDir d("warden-storage");
  fs::path db = d.path() / "audit.db";
  auto store = std::move(AuditStore::Open(db.string(), {100}).value());
  sqlite3* locker;
  REQUIRE(sqlite3_open(db.c_str(), &locker) == SQLITE_OK);
  REQUIRE(sqlite3_exec(locker, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK);
  warden::Status locked = store->BeginCall({"c1", "s", "git", "t", "{}", 1});
  CHECK(locked.code() == warden::Code::kUnavailable);
  CHECK(locked.message().find("locked") != std::string::npos);
  sqlite3_exec(locker, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_close(locker);
  CHECK(store->BeginCall({"c1", "s", "git", "t", "{}", 1}).ok());
}

TEST_CASE("stats gather latency, canaries, tools, ssh expiry and purge lag from the rows") {
  TempDir d("warden-storage");
  fs::path db = d.path() / "audit.db";
  auto store = std::move(AuditStore::Open(db.string()).value());
  auto call = [&](const std::string& id, const std::string& tool, const std::string& status, int64_t anon_us,
                  const std::string& canary, const std::string& details, int64_t duration_ms) {
    REQUIRE(store->BeginCall({id, "s", tool, "t", "{}", 1000}).ok());
    warden::storage::CallFinish f;
    f.call_id = id;
    f.status = status;
    f.anonymize_us = anon_us;
    f.canary = canary;
    f.details_json = details;
    f.duration_ms = duration_ms;
    f.purge_after_ms = 2000;
    f.output_anon = "x";
    REQUIRE(store->FinishCall(f).ok());
  };
  call("a", "git", "completed", 100, "pass", "{}", 5);
  call("b", "git", "failed", 0, "none", "{}", 5);
  call("c", "ssh_run", "completed", 300, "pass", R"({"valid_after":"100","valid_before":"400"})", 285'000);
  call("d", "ssh_run", "halted", 200, "leak", R"({"valid_after":"100","valid_before":"400"})", 30'000);
  REQUIRE(store->RecordCanaryRun({1000, "startup", 16, 0, "[]"}).ok());
  REQUIRE(store->PurgeExpired(2500).ok());
  auto st = store->Stats(0);
  REQUIRE(st.ok());
  const auto& r = st.value();
  CHECK(r.anonymize_us == std::vector<int64_t>{100, 300});
  CHECK(r.canary_inline_pass == 2);
  CHECK(r.canary_inline_leak == 1);
  CHECK(r.canary_selftest_pass == 16);
  REQUIRE(r.tools.size() == 2);
  CHECK(r.tools[0].tool == "git");
  CHECK(r.tools[0].errors == 1);
  CHECK(r.tools[1].errors == 1);
  REQUIRE(r.ssh_expiry_ratio.size() == 2);
  CHECK(r.ssh_expiry_ratio.back() == Approx(0.95));
  CHECK(r.purge_lag_max_ms == 500);
  CHECK(r.bodies_pending == 0);
  CHECK(r.escalated_calls == 4);
  CHECK(r.local_calls == 0);
}
