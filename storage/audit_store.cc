#include "storage/audit_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
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
    // 3: canaries and halts, purge passes, anonymizer time per call.
    R"sql(
ALTER TABLE tool_calls ADD COLUMN anonymize_us INTEGER;
ALTER TABLE tool_calls ADD COLUMN canary TEXT;
CREATE TABLE halts(
  id INTEGER PRIMARY KEY,
  halted_ms INTEGER NOT NULL,
  severity TEXT NOT NULL,
  source TEXT NOT NULL,
  call_id TEXT,
  reason TEXT NOT NULL,
  lifted_ms INTEGER,
  lifted_by TEXT);
CREATE INDEX halts_active ON halts(id) WHERE lifted_ms IS NULL;
CREATE TABLE canary_runs(
  id INTEGER PRIMARY KEY,
  ran_ms INTEGER NOT NULL,
  source TEXT NOT NULL,
  passed INTEGER NOT NULL,
  failed INTEGER NOT NULL,
  details TEXT NOT NULL);
CREATE TABLE purge_runs(
  id INTEGER PRIMARY KEY,
  ran_ms INTEGER NOT NULL,
  purged INTEGER NOT NULL,
  lag_ms INTEGER NOT NULL,
  duration_us INTEGER NOT NULL);
CREATE INDEX tool_calls_tool ON tool_calls(tool, started_ms);
)sql",
};

// Stmt owns a prepared statement for one use; bind helpers take 1-based indexes.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~Stmt() { sqlite3_finalize(s_); }
  bool ok() const { return rc_ == SQLITE_OK; }
  void Text(int i, const std::string& v) { sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT); }
  void Int(int i, int64_t v) { sqlite3_bind_int64(s_, i, v); }
  void Null(int i) { sqlite3_bind_null(s_, i); }
  int Step() { return sqlite3_step(s_); }
  int Params() { return sqlite3_bind_parameter_count(s_); }
  int64_t Column(int i) { return sqlite3_column_int64(s_, i); }
  double Double(int i) { return sqlite3_column_double(s_, i); }
  bool IsNull(int i) { return sqlite3_column_type(s_, i) == SQLITE_NULL; }
  std::string String(int i) {
    const unsigned char* t = sqlite3_column_text(s_, i);
    return t ? std::string(reinterpret_cast<const char*>(t), static_cast<size_t>(sqlite3_column_bytes(s_, i))) : "";
  }

 private:
  sqlite3_stmt* s_ = nullptr;
  int rc_;
};

Status Exec(sqlite3* db, const std::string& path, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string m = err ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    return Unavailable("audit database " + path + ": " + m);
  }
  return Status::Ok();
}

Result<sqlite3*> Connect(const std::string& path, int busy_timeout_ms) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string m = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return Unavailable("cannot open audit database " + path + ": " + m);
  }
  sqlite3_busy_timeout(db, busy_timeout_ms);
  sqlite3_extended_result_codes(db, 1);
  return db;
}

constexpr int kPurgeChunk = 1000;  // rows per purge transaction: tool calls wait at most one chunk

}  // namespace

Status AuditStore::Error(sqlite3* db, const char* what) const {
  return Unavailable(std::string("audit database ") + path_ + ": " + what + ": " + sqlite3_errmsg(db));
}

Result<std::unique_ptr<AuditStore>> AuditStore::Open(const std::string& path, StoreOptions options) {
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

  std::unique_ptr<AuditStore> store(new AuditStore(path, options));
  Result<sqlite3*> w = Connect(path, options.busy_timeout_ms);
  if (!w.ok()) return w.status();
  store->wdb_ = w.value();
  sqlite3* db = store->wdb_;
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON"})
    if (Status s = Exec(db, path, pragma); !s.ok()) return s;
  // Reading user_version also proves the file is a database we can read before migrating it.
  int current = 0;
  {
    Stmt version(db, "PRAGMA user_version");
    if (!version.ok() || version.Step() != SQLITE_ROW) return store->Error(db, "not a readable SQLite database");
    current = static_cast<int>(version.Column(0));
  }
  if (current > kSchemaVersion)
    return Unavailable("audit database " + path + " has schema version " + std::to_string(current) +
                       ", newer than this Warden (" + std::to_string(kSchemaVersion) + ")");
  for (int v = current; v < kSchemaVersion; ++v) {
    std::string sql = std::string("BEGIN IMMEDIATE;") + kMigrations[v] + "PRAGMA user_version=" +
                      std::to_string(v + 1) + ";COMMIT;";
    if (Status s = Exec(db, path, sql.c_str()); !s.ok()) {
      Exec(db, path, "ROLLBACK").ok();
      return s;
    }
  }
  Result<sqlite3*> r = Connect(path, options.busy_timeout_ms);
  if (!r.ok()) return r.status();
  store->rdb_ = r.value();
  Result<sqlite3*> c = Connect(path, options.busy_timeout_ms);
  if (!c.ok()) return c.status();
  store->cdb_ = c.value();
  // Checkpoints (copying the WAL into the database, with an fsync) would stall
  // every call waiting on the writer; the writer only signals, another thread
  // checkpoints without blocking writers (PASSIVE).
  sqlite3_wal_hook(db, &AuditStore::WalHook, store.get());
  store->writer_ = std::thread([s = store.get()] { s->WriterLoop(); });
  store->checkpointer_ = std::thread([s = store.get()] { s->CheckpointLoop(); });
  return store;
}

int AuditStore::WalHook(void* self, sqlite3*, const char*, int pages) {
  auto* store = static_cast<AuditStore*>(self);
  if (pages >= kCheckpointPages) {
    std::lock_guard<std::mutex> lock(store->mu_);
    store->checkpoint_wanted_ = true;
    store->cv_.notify_all();
  }
  return SQLITE_OK;
}

void AuditStore::CheckpointLoop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || checkpoint_wanted_; });
      if (stop_) return;
      checkpoint_wanted_ = false;
    }
    int rc = sqlite3_wal_checkpoint_v2(cdb_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
      spdlog::warn("audit database {}: checkpoint: {}", path_, sqlite3_errmsg(cdb_));
  }
}

AuditStore::~AuditStore() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  write_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  if (checkpointer_.joinable()) checkpointer_.join();
  sqlite3_close_v2(cdb_);
  sqlite3_close_v2(rdb_);
  sqlite3_close_v2(wdb_);
}

Status AuditStore::Submit(WriteFn fn) {
  std::future<Status> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return Unavailable("audit database " + path_ + " is closing");
    queue_.push_back(Write{std::move(fn), {}});
    done = queue_.back().done.get_future();
  }
  write_cv_.notify_one();
  return done.get();
}

void AuditStore::WriterLoop() {
  for (;;) {
    std::deque<Write> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      write_cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      batch.swap(queue_);
    }
    std::vector<Status> results;
    results.reserve(batch.size());
    Status txn = Exec(wdb_, path_, "BEGIN IMMEDIATE");
    for (size_t i = 0; txn.ok() && i < batch.size(); ++i) {
      // A savepoint per write: a failed write is undone alone, the batch goes on...
      Status s = Exec(wdb_, path_, "SAVEPOINT w");
      if (s.ok()) {
        s = batch[i].fn(wdb_);
        // ...unless SQLite rolled the whole transaction back itself (disk full, I/O
        // error): then every write of the batch failed, for this write's reason.
        if (!s.ok() && sqlite3_get_autocommit(wdb_)) {
          txn = s;
          break;
        }
        if (!s.ok()) Exec(wdb_, path_, "ROLLBACK TO w").ok();
        if (Status rel = Exec(wdb_, path_, "RELEASE w"); s.ok() && !rel.ok()) s = rel;
      }
      results.push_back(s);
    }
    if (txn.ok()) txn = Exec(wdb_, path_, "COMMIT");
    if (!txn.ok() && !sqlite3_get_autocommit(wdb_)) Exec(wdb_, path_, "ROLLBACK").ok();
    for (size_t i = 0; i < batch.size(); ++i) batch[i].done.set_value(txn.ok() ? results[i] : txn);
  }
}

Status AuditStore::StartSession(const SessionRow& r) {
  return Submit([&](sqlite3* db) {
    Stmt s(db,
           "INSERT INTO sessions(id, started_ms, client_name, client_version, protocol_version) "
           "VALUES(?,?,?,?,?)");
    if (!s.ok()) return Error(db, "prepare session insert");
    s.Text(1, r.id);
    s.Int(2, r.started_ms);
    s.Text(3, r.client_name);
    s.Text(4, r.client_version);
    s.Text(5, r.protocol_version);
    if (s.Step() != SQLITE_DONE) return Error(db, "insert session");
    return Status::Ok();
  });
}

Status AuditStore::EndSession(const std::string& id, int64_t ended_ms) {
  return Submit([&](sqlite3* db) {
    Stmt s(db, "UPDATE sessions SET ended_ms=? WHERE id=?");
    if (!s.ok()) return Error(db, "prepare session update");
    s.Int(1, ended_ms);
    s.Text(2, id);
    if (s.Step() != SQLITE_DONE) return Error(db, "update session");
    return Status::Ok();
  });
}

Status AuditStore::BeginCall(const CallStart& r) {
  return Submit([&](sqlite3* db) {
    Stmt s(db,
           "INSERT INTO tool_calls(call_id, session_id, tool, target, arguments, started_ms) VALUES(?,?,?,?,?,?)");
    if (!s.ok()) return Error(db, "prepare call insert");
    s.Text(1, r.call_id);
    s.Text(2, r.session_id);
    s.Text(3, r.tool);
    s.Text(4, r.target);
    s.Text(5, r.arguments_json);
    s.Int(6, r.started_ms);
    if (s.Step() != SQLITE_DONE) return Error(db, "insert tool call");
    return Status::Ok();
  });
}

Status AuditStore::FinishCall(const CallFinish& r) {
  return Submit([&](sqlite3* db) {
    Stmt s(db,
           "UPDATE tool_calls SET finished_ms=?, status=?, exit_status=?, exit_signal=?, duration_ms=?, "
           "stdout_bytes=?, stderr_bytes=?, response_bytes=?, truncated=?, redactions=?, pipeline_us=?, error=?, "
           "output_anon=?, output_sha256=?, purge_after_ms=?, details=?, anonymize_us=?, canary=? WHERE call_id=?");
    if (!s.ok()) return Error(db, "prepare call update");
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
    s.Int(17, r.anonymize_us);
    s.Text(18, r.canary);
    s.Text(19, r.call_id);
    if (s.Step() != SQLITE_DONE) return Error(db, "update tool call");
    if (sqlite3_changes(db) != 1) return Internal("audit row for call " + r.call_id + " is missing");
    return Status::Ok();
  });
}

Result<int64_t> AuditStore::RecordHalt(const HaltRow& r) {
  int64_t id = 0;
  Status st = Submit([&](sqlite3* db) {
    Stmt s(db, "INSERT INTO halts(halted_ms, severity, source, call_id, reason) VALUES(?,?,?,?,?)");
    if (!s.ok()) return Error(db, "prepare halt insert");
    s.Int(1, r.halted_ms);
    s.Text(2, r.severity);
    s.Text(3, r.source);
    r.call_id.empty() ? s.Null(4) : s.Text(4, r.call_id);
    s.Text(5, r.reason);
    if (s.Step() != SQLITE_DONE) return Error(db, "insert halt");
    id = sqlite3_last_insert_rowid(db);
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return id;
}

Result<int64_t> AuditStore::LiftHalts(int64_t lifted_ms, const std::string& lifted_by) {
  int64_t n = 0;
  Status st = Submit([&](sqlite3* db) {
    Stmt s(db, "UPDATE halts SET lifted_ms=?, lifted_by=? WHERE lifted_ms IS NULL");
    if (!s.ok()) return Error(db, "prepare halt lift");
    s.Int(1, lifted_ms);
    s.Text(2, lifted_by);
    if (s.Step() != SQLITE_DONE) return Error(db, "lift halts");
    n = sqlite3_changes(db);
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return n;
}

Result<std::optional<HaltRow>> AuditStore::ActiveHalt() {
  std::lock_guard<std::mutex> lock(read_mu_);
  Stmt s(rdb_,
         "SELECT id, halted_ms, severity, source, call_id, reason FROM halts WHERE lifted_ms IS NULL "
         "ORDER BY id LIMIT 1");
  if (!s.ok()) return Error(rdb_, "prepare halt query");
  int rc = s.Step();
  if (rc == SQLITE_DONE) return std::optional<HaltRow>();
  if (rc != SQLITE_ROW) return Error(rdb_, "read halts");
  HaltRow h{s.Column(0), s.Column(1), s.String(2), s.String(3), s.String(4), s.String(5)};
  return std::optional<HaltRow>(std::move(h));
}

Status AuditStore::RecordCanaryRun(const CanaryRunRow& r) {
  return Submit([&](sqlite3* db) {
    Stmt s(db, "INSERT INTO canary_runs(ran_ms, source, passed, failed, details) VALUES(?,?,?,?,?)");
    if (!s.ok()) return Error(db, "prepare canary run insert");
    s.Int(1, r.ran_ms);
    s.Text(2, r.source);
    s.Int(3, r.passed);
    s.Int(4, r.failed);
    s.Text(5, r.details_json);
    if (s.Step() != SQLITE_DONE) return Error(db, "insert canary run");
    return Status::Ok();
  });
}

Result<PurgeResult> AuditStore::PurgeExpired(int64_t now_ms) {
  auto t0 = std::chrono::steady_clock::now();
  PurgeResult result;
  for (;;) {
    int64_t changed = 0;
    Status st = Submit([&](sqlite3* db) {
      if (result.purged == 0) {
        // The lag of this pass: how late the oldest body still held is being purged.
        Stmt oldest(db, "SELECT MIN(purge_after_ms) FROM tool_calls WHERE output_anon IS NOT NULL AND purge_after_ms<=?");
        if (!oldest.ok()) return Error(db, "prepare purge lag");
        oldest.Int(1, now_ms);
        if (oldest.Step() == SQLITE_ROW && !oldest.IsNull(0)) result.lag_ms = now_ms - oldest.Column(0);
      }
      Stmt s(db,
             "UPDATE tool_calls SET output_anon=NULL, purged_ms=? WHERE rowid IN (SELECT rowid FROM tool_calls "
             "WHERE output_anon IS NOT NULL AND purge_after_ms<=? LIMIT ?)");
      if (!s.ok()) return Error(db, "prepare purge");
      s.Int(1, now_ms);
      s.Int(2, now_ms);
      s.Int(3, kPurgeChunk);
      if (s.Step() != SQLITE_DONE) return Error(db, "purge");
      changed = sqlite3_changes(db);
      return Status::Ok();
    });
    if (!st.ok()) return st;
    result.purged += changed;
    if (changed < kPurgeChunk) break;
  }
  result.duration_us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
  if (result.purged == 0) return result;
  Status st = Submit([&](sqlite3* db) {
    Stmt s(db, "INSERT INTO purge_runs(ran_ms, purged, lag_ms, duration_us) VALUES(?,?,?,?)");
    if (!s.ok()) return Error(db, "prepare purge run insert");
    s.Int(1, now_ms);
    s.Int(2, result.purged);
    s.Int(3, result.lag_ms);
    s.Int(4, result.duration_us);
    if (s.Step() != SQLITE_DONE) return Error(db, "insert purge run");
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return result;
}

Result<std::vector<CallRow>> AuditStore::ListCalls(int64_t since_ms, const std::string& tool, int limit) {
  std::lock_guard<std::mutex> lock(read_mu_);
  Stmt s(rdb_,
         "SELECT call_id, session_id, tool, target, status, COALESCE(error,''), COALESCE(redactions,'{}'), "
         "COALESCE(details,'{}'), COALESCE(canary,''), started_ms, COALESCE(duration_ms,0), "
         "COALESCE(response_bytes,0), exit_status, output_anon IS NOT NULL FROM tool_calls "
         "WHERE started_ms>=? AND (?='' OR tool=?) ORDER BY started_ms DESC, rowid DESC LIMIT ?");
  if (!s.ok()) return Error(rdb_, "prepare call listing");
  s.Int(1, since_ms);
  s.Text(2, tool);
  s.Text(3, tool);
  s.Int(4, limit);
  std::vector<CallRow> rows;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    CallRow r;
    r.call_id = s.String(0);
    r.session_id = s.String(1);
    r.tool = s.String(2);
    r.target = s.String(3);
    r.status = s.String(4);
    r.error = s.String(5);
    r.redactions_json = s.String(6);
    r.details_json = s.String(7);
    r.canary = s.String(8);
    r.started_ms = s.Column(9);
    r.duration_ms = s.Column(10);
    r.response_bytes = s.Column(11);
    if (!s.IsNull(12)) r.exit_status = static_cast<int>(s.Column(12));
    r.output_kept = s.Column(13) != 0;
    rows.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return Error(rdb_, "list calls");
  return rows;
}

Result<StatsRows> AuditStore::Stats(int64_t since_ms) {
  Result<std::optional<HaltRow>> halt = ActiveHalt();
  if (!halt.ok()) return halt.status();
  std::lock_guard<std::mutex> lock(read_mu_);
  StatsRows st;
  st.active_halt = halt.value();
  // Each query binds `since_ms` as ?1 (if it has a parameter) and hands every row to `row`.
  auto each = [&](const char* sql, const std::function<void(Stmt&)>& row) -> Status {
    Stmt s(rdb_, sql);
    if (!s.ok()) return Error(rdb_, "prepare stats query");
    if (s.Params() > 0) s.Int(1, since_ms);
    int rc;
    while ((rc = s.Step()) == SQLITE_ROW) row(s);
    return rc == SQLITE_DONE ? Status::Ok() : Error(rdb_, "stats query");
  };
  std::vector<Status> results = {
      each("SELECT anonymize_us FROM tool_calls WHERE started_ms>=?1 AND status='completed' AND anonymize_us IS NOT "
           "NULL ORDER BY anonymize_us",
           [&](Stmt& s) { st.anonymize_us.push_back(s.Column(0)); }),
      each("SELECT tool, COUNT(*), SUM(status<>'completed') FROM tool_calls WHERE started_ms>=?1 GROUP BY tool "
           "ORDER BY tool",
           [&](Stmt& s) { st.tools.push_back({s.String(0), s.Column(1), s.Column(2)}); }),
      each("SELECT COALESCE(SUM(canary='pass'),0), COALESCE(SUM(canary='leak'),0), "
           "COALESCE(SUM(tool LIKE 'local\\_%' ESCAPE '\\'),0), COALESCE(SUM(tool NOT LIKE 'local\\_%' ESCAPE '\\'),0), "
           "COALESCE(SUM(status='blocked'),0) FROM tool_calls WHERE started_ms>=?1",
           [&](Stmt& s) {
             st.canary_inline_pass = s.Column(0);
             st.canary_inline_leak = s.Column(1);
             st.local_calls = s.Column(2);
             st.escalated_calls = s.Column(3);
             st.validation_rejections = s.Column(4);
           }),
      each("SELECT COALESCE(SUM(passed),0), COALESCE(SUM(failed),0) FROM canary_runs WHERE ran_ms>=?1",
           [&](Stmt& s) {
             st.canary_selftest_pass = s.Column(0);
             st.canary_selftest_fail = s.Column(1);
           }),
      each("SELECT duration_ms * 1.0 / (1000 * (json_extract(details,'$.valid_before') - "
           "json_extract(details,'$.valid_after'))) AS r FROM tool_calls WHERE started_ms>=?1 AND tool='ssh_run' "
           "AND json_extract(details,'$.valid_before') > json_extract(details,'$.valid_after') AND duration_ms IS "
           "NOT NULL ORDER BY r",
           [&](Stmt& s) { st.ssh_expiry_ratio.push_back(s.Double(0)); }),
      each("SELECT COUNT(*), COALESCE(MAX(lag_ms),0), COALESCE((SELECT lag_ms FROM purge_runs ORDER BY id DESC "
           "LIMIT 1),0) FROM purge_runs WHERE ran_ms>=?1",
           [&](Stmt& s) {
             st.purge_runs = s.Column(0);
             st.purge_lag_max_ms = s.Column(1);
             st.purge_lag_last_ms = s.Column(2);
           }),
      each("SELECT COUNT(*) FROM tool_calls WHERE output_anon IS NOT NULL",  // held now, whatever the window
           [&](Stmt& s) { st.bodies_pending = s.Column(0); }),
  };
  for (const Status& s : results)
    if (!s.ok()) return s;
  return st;
}

}  // namespace warden::storage
