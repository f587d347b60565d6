#include "storage/audit_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace warden::storage {
namespace {

// Migrations, applied in order; index i brings the schema to version i + 1.
const char* const kMigrations[] = {
    R"sql(
CREATE TABLE sessions(
  id TEXT PRIMARY KEY,
  started_ms INTEGER NOT NULL,
  ended_ms INTEGER,
  client_name TEXT,
  client_version TEXT,
  protocol_version TEXT);
CREATE TABLE tool_calls(
  call_id TEXT PRIMARY KEY,
  session_id TEXT NOT NULL,
  tool TEXT NOT NULL,
  target TEXT NOT NULL,
  arguments TEXT NOT NULL,
  started_ms INTEGER NOT NULL,
  finished_ms INTEGER,
  status TEXT NOT NULL DEFAULT 'running',
  exit_status INTEGER,
  exit_signal TEXT,
  duration_ms INTEGER,
  stdout_bytes INTEGER,
  stderr_bytes INTEGER,
  response_bytes INTEGER,
  truncated INTEGER,
  redactions TEXT,
  pipeline_us INTEGER,
  error TEXT,
  output_anon TEXT,
  output_sha256 TEXT,
  purge_after_ms INTEGER,
  purged_ms INTEGER);
CREATE INDEX tool_calls_started ON tool_calls(started_ms);
CREATE INDEX tool_calls_purge ON tool_calls(purge_after_ms) WHERE output_anon IS NOT NULL;
)sql",
    // 2: tool-specific facts (certificate serial, key id, operation) as JSON.
    "ALTER TABLE tool_calls ADD COLUMN details TEXT;",
};

// Stmt owns a prepared statement for one call; bind helpers take 1-based indexes.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~Stmt() { sqlite3_finalize(s_); }
  bool ok() const { return rc_ == SQLITE_OK; }
  void Text(int i, const std::string& v) { sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT); }
  void Int(int i, int64_t v) { sqlite3_bind_int64(s_, i, v); }
  void Null(int i) { sqlite3_bind_null(s_, i); }
  int Step() { return sqlite3_step(s_); }
  int64_t Column(int i) { return sqlite3_column_int64(s_, i); }

 private:
  sqlite3_stmt* s_ = nullptr;
  int rc_;
};

}  // namespace

Status AuditStore::Error(const char* what) const {
  return Unavailable(std::string("audit database ") + path_ + ": " + what + ": " + sqlite3_errmsg(db_));
}

Status AuditStore::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string m = err ? err : "unknown error";
    sqlite3_free(err);
    return Unavailable("audit database " + path_ + ": " + m);
  }
  return Status::Ok();
}

Result<std::unique_ptr<AuditStore>> AuditStore::Open(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path parent = fs::path(path).parent_path();
  if (!parent.empty() && !fs::exists(parent, ec)) {
    fs::create_directories(parent, ec);
    if (ec) return Unavailable("cannot create state directory " + parent.string() + ": " + ec.message());
    ::chmod(parent.c_str(), 0700);
  }
  // Create the file ourselves so that it is 0600 from its first byte; SQLite
  // gives the -wal and -shm files the database file's mode.
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Unavailable("cannot open audit database " + path + ": " + std::strerror(errno));
  ::close(fd);

  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, nullptr);
  std::unique_ptr<AuditStore> store(new AuditStore(db, path));
  if (rc != SQLITE_OK) return store->Error("cannot open");
  sqlite3_busy_timeout(db, 5000);
  sqlite3_extended_result_codes(db, 1);

  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON"}) {
    if (Status s = store->Exec(pragma); !s.ok()) return s;
  }
  // Reading user_version also proves the file is a database we can read before migrating it.
  int current = 0;
  {
    Stmt version(db, "PRAGMA user_version");
    if (!version.ok() || version.Step() != SQLITE_ROW) return store->Error("not a readable SQLite database");
    current = static_cast<int>(version.Column(0));
  }
  if (current > kSchemaVersion)
    return Unavailable("audit database " + path + " has schema version " + std::to_string(current) +
                       ", newer than this Warden (" + std::to_string(kSchemaVersion) + ")");
  for (int v = current; v < kSchemaVersion; ++v) {
    std::string sql = std::string("BEGIN IMMEDIATE;") + kMigrations[v] + "PRAGMA user_version=" +
                      std::to_string(v + 1) + ";COMMIT;";
    if (Status s = store->Exec(sql.c_str()); !s.ok()) {
      store->Exec("ROLLBACK").ok();
      return s;
    }
  }
  return store;
}

AuditStore::~AuditStore() { sqlite3_close_v2(db_); }

Status AuditStore::StartSession(const SessionRow& r) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_,
         "INSERT INTO sessions(id, started_ms, client_name, client_version, protocol_version) "
         "VALUES(?,?,?,?,?)");
  if (!s.ok()) return Error("prepare session insert");
  s.Text(1, r.id);
  s.Int(2, r.started_ms);
  s.Text(3, r.client_name);
  s.Text(4, r.client_version);
  s.Text(5, r.protocol_version);
  if (s.Step() != SQLITE_DONE) return Error("insert session");
  return Status::Ok();
}

Status AuditStore::EndSession(const std::string& id, int64_t ended_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_, "UPDATE sessions SET ended_ms=? WHERE id=?");
  if (!s.ok()) return Error("prepare session update");
  s.Int(1, ended_ms);
  s.Text(2, id);
  if (s.Step() != SQLITE_DONE) return Error("update session");
  return Status::Ok();
}

Status AuditStore::BeginCall(const CallStart& r) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_,
         "INSERT INTO tool_calls(call_id, session_id, tool, target, arguments, started_ms) VALUES(?,?,?,?,?,?)");
  if (!s.ok()) return Error("prepare call insert");
  s.Text(1, r.call_id);
  s.Text(2, r.session_id);
  s.Text(3, r.tool);
  s.Text(4, r.target);
  s.Text(5, r.arguments_json);
  s.Int(6, r.started_ms);
  if (s.Step() != SQLITE_DONE) return Error("insert tool call");
  return Status::Ok();
}

Status AuditStore::FinishCall(const CallFinish& r) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_,
         "UPDATE tool_calls SET finished_ms=?, status=?, exit_status=?, exit_signal=?, duration_ms=?, "
         "stdout_bytes=?, stderr_bytes=?, response_bytes=?, truncated=?, redactions=?, pipeline_us=?, error=?, "
         "output_anon=?, output_sha256=?, purge_after_ms=?, details=? WHERE call_id=?");
  if (!s.ok()) return Error("prepare call update");
  s.Int(1, r.finished_ms);
  s.Text(2, r.status);
  r.exit_status ? s.Int(3, *r.exit_status) : s.Null(3);
  r.exit_signal ? s.Text(4, *r.exit_signal) : s.Null(4);
  s.Int(5, r.duration_ms);
  s.Int(6, static_cast<int64_t>(r.stdout_bytes));
  s.Int(7, static_cast<int64_t>(r.stderr_bytes));
  s.Int(8, static_cast<int64_t>(r.response_bytes));
  s.Int(9, r.truncated);
  s.Text(10, r.redactions_json);
  s.Int(11, r.pipeline_us);
  r.error.empty() ? s.Null(12) : s.Text(12, r.error);
  s.Text(13, r.output_anon);
  s.Text(14, r.output_sha256);
  s.Int(15, r.purge_after_ms);
  s.Text(16, r.details_json);
  s.Text(17, r.call_id);
  if (s.Step() != SQLITE_DONE) return Error("update tool call");
  if (sqlite3_changes(db_) != 1) return Internal("audit row for call " + r.call_id + " is missing");
  return Status::Ok();
}

Result<int64_t> AuditStore::PurgeExpired(int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_,
         "UPDATE tool_calls SET output_anon=NULL, purged_ms=? WHERE output_anon IS NOT NULL AND purge_after_ms<=?");
  if (!s.ok()) return Error("prepare purge");
  s.Int(1, now_ms);
  s.Int(2, now_ms);
  if (s.Step() != SQLITE_DONE) return Error("purge");
  return static_cast<int64_t>(sqlite3_changes(db_));
}

}  // namespace warden::storage
