// server/mcp_server.h: the MCP server over a byte stream (stdio in production).
//
// Framing: JSON-RPC 2.0, one message per line. Untrusted: every byte read
// comes from the MCP client, which is driven by a model that reads untrusted
// tool output; nothing it sends is believed until validated.
//
// Concurrency: the reader thread answers initialize, ping, tools/list and
// logging/setLevel itself; each tools/call runs on its own thread, at most
// server.max_concurrent_calls at once (one more is refused with a clear
// error). Responses are written whole, one line each, under one lock.
//
// Shutdown: at EOF the server stops reading and lets calls in flight finish;
// at SIGTERM/SIGINT it cancels them; either way every audit row is completed
// before Serve() returns.
#pragma once

#include <boost/json.hpp>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "anonymizer/anonymizer.h"
#include "core/cancel.h"
#include "core/clock.h"
#include "core/config.h"
#include "server/pipeline.h"
#include "storage/audit_store.h"
#include "tools/tool.h"

namespace warden::server {

// The protocol versions this server speaks, newest first.
extern const char* const kProtocolVersions[3];
extern const char* const kServerVersion;

class McpServer {
 public:
  McpServer(const Config& config, std::vector<std::unique_ptr<tools::Tool>> tools, Pipeline& pipeline,
            storage::AuditStore& audit, const Clock& clock);
  ~McpServer();

  // Serve reads requests from in_fd and writes responses to out_fd until EOF
  // or until a signal arrives on signal_fd (a signalfd; -1 for none).
  // Returns the process exit code.
  int Serve(int in_fd, int out_fd, int signal_fd);

  const std::string& session_id() const { return session_id_; }

 private:
  using Respond = std::function<void(boost::json::value)>;
  struct Call;

  void HandleLine(std::string_view line);
  void HandleMessage(const boost::json::value& msg, const Respond& respond);
  void HandleRequest(const boost::json::value& id, const std::string& method, const boost::json::value* params,
                     const Respond& respond);
  void HandleNotification(const std::string& method, const boost::json::value* params);
  boost::json::value Initialize(const boost::json::value* params);
  boost::json::value ListTools(const boost::json::value* params, boost::json::object* error);
  void StartCall(const boost::json::value& id, const boost::json::object& params, const Respond& respond);
  void RunCall(std::shared_ptr<Call> call, tools::Tool* tool, boost::json::object arguments, Respond respond);
  boost::json::object CallResult(Call& call, tools::Tool* tool, boost::json::object arguments);
  Result<RawOutput> Execute(Call& call, tools::Tool* tool, const boost::json::object& args);
  void Send(const boost::json::value& msg);
  void Log(const std::string& level, const std::string& text);
  void CancelAll(const std::string& reason);
  void WaitForCalls();

  const Config& config_;
  std::vector<std::unique_ptr<tools::Tool>> tools_;
  Pipeline& pipeline_;
  storage::AuditStore& audit_;
  const Clock& clock_;
  std::string session_id_;
  anonymizer::TokenMap tokens_;

  int out_fd_ = -1;
  std::mutex write_mu_;
  bool out_broken_ = false;  // GUARDED_BY(write_mu_)

  std::string protocol_version_;  // set by initialize; read on the reader thread only
  bool initialized_ = false;
  std::atomic<int> log_level_{-1};  // index into kLogLevels; -1: client asked for nothing

  std::mutex calls_mu_;
  std::condition_variable calls_cv_;
  std::map<std::string, std::shared_ptr<Call>> calls_;  // GUARDED_BY(calls_mu_); key: serialized request id
  int running_ = 0;                                     // GUARDED_BY(calls_mu_)
};

}  // namespace warden::server
