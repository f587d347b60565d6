#include <catch2/catch.hpp>
#include <sqlite3.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "core/clock.h"
#include "storage/audit_store.h"
#include "storage/purge_worker.h"

namespace fs = std::filesystem;
using warden::storage::AuditStore;

namespace {
struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/warden-storage-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

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
  TempDir d;
  fs::path db = d.path / "sub/dir/audit.db";
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
  TempDir d;
  fs::path db = d.path / "audit.db";
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
  CHECK(Query(db, "PRAGMA user_version") == "2");
  CHECK(Query(db, "SELECT tool FROM tool_calls WHERE call_id='old'") == "git");
  warden::storage::CallFinish f;
  f.call_id = "old";
  f.status = "completed";
  f.details_json = R"({"operation":"status"})";
  REQUIRE(store.value()->FinishCall(f).ok());
  CHECK(Query(db, "SELECT details FROM tool_calls WHERE call_id='old'") == R"({"operation":"status"})");
}

TEST_CASE("a database from a newer Warden is refused, not downgraded") {
  TempDir d;
  fs::path db = d.path / "audit.db";
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
  TempDir d;
  fs::path db = d.path / "audit.db";
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
  TempDir d;
  fs::path db = d.path / "audit.db";
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
  CHECK(purged.value() == 1);
  CHECK(Query(db, "SELECT output_anon FROM tool_calls WHERE call_id='old'") == "(null)");
  CHECK(Query(db, "SELECT output_sha256 FROM tool_calls WHERE call_id='old'") == "hash");
  CHECK(Query(db, "SELECT output_anon FROM tool_calls WHERE call_id='new'") == "body");
}

TEST_CASE("a corrupt, foreign or unwritable database is a clear error") {
  TempDir d;
  fs::path junk = d.path / "junk.db";
  std::ofstream(junk) << std::string(8192, 'x');
  auto bad = AuditStore::Open(junk.string());
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == warden::Code::kUnavailable);
  CHECK(bad.status().message().find(junk.string()) != std::string::npos);

  if (geteuid() != 0) {  // root ignores permissions
    fs::path ro = d.path / "ro";
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
  TempDir d;
  fs::path db = d.path / "audit.db";
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
