#include "tools/incus_client.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <functional>
#include <map>
#include <type_traits>

#include "core/clock.h"
#include "core/hex.h"

namespace warden::tools::incus {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;
using asio::awaitable;
using asio::use_awaitable;
using std::chrono::milliseconds;
using ErrorCode = boost::system::error_code;

namespace {

constexpr uint64_t kMaxApiBody = uint64_t{32} << 20;  // a larger JSON answer is refused
constexpr size_t kMaxWsMessage = size_t{4} << 20;     // Incus sends output in 32 KiB messages
constexpr milliseconds kTick{1000};
// After SIGKILL, how long Incus has to report the command's end before
// Warden closes the streams itself.
constexpr milliseconds kStopGrace{3000};
constexpr size_t kMaxErrorText = 400;  // of an Incus error string quoted in a tool error

// The sweep (see the header): SIGKILL every process whose environment holds
// WARDEN_EXEC_ID=<$1>, until none is left (at most 5 rounds). Its own
// processes do not carry the marker: it comes as an argument.
constexpr const char* kSweepScript =
    "n=0; while [ $n -lt 5 ]; do hit=; "
    "for e in /proc/[0-9]*/environ; do "
    "if tr '\\000' '\\n' <\"$e\" 2>/dev/null | grep -qxF \"WARDEN_EXEC_ID=$1\"; then "
    "p=${e#/proc/}; kill -9 \"${p%/environ}\" 2>/dev/null; hit=1; fi; done; "
    "[ -z \"$hit\" ] && exit 0; n=$((n+1)); done; exit 1";

using UnixSocket = asio::local::stream_protocol::socket;
using TlsStream = asio::ssl::stream<asio::ip::tcp::socket>;

// Failure carries a Status out of a coroutine to the session's driver.
struct Failure : std::exception {
  explicit Failure(Status s) : status(std::move(s)) {}
  const char* what() const noexcept override { return "incus call failed"; }
  Status status;
};

std::string Clip(std::string s) {
  if (s.size() > kMaxErrorText) s = s.substr(0, kMaxErrorText) + "...";
  return s;
}

// ErrorFor maps an Incus error code (an HTTP status) to a Status.
Status ErrorFor(int code, const std::string& message) {
  if (code == 404) return NotFound(message);
  if (code == 401 || code == 403) return PermissionDenied(message);
  if (code >= 500) return Unavailable(message);
  return FailedPrecondition(message);
}

const json::object* Object(const json::value* v) { return v && v->is_object() ? &v->get_object() : nullptr; }

std::string StringField(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

InstanceInfo InstanceFrom(const json::object& o) {
  return {StringField(o, "name"), StringField(o, "project"), StringField(o, "type"), StringField(o, "status")};
}

}  // namespace

// ---- pure helpers ----

std::string PercentEncode(std::string_view s) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kDigits[c >> 4]);
      out.push_back(kDigits[c & 0xf]);
    }
  }
  return out;
}

Result<std::string> InstancePath(std::string_view project, std::string_view instance, std::string_view suffix) {
  if (!IsIncusName(project))
    return InvalidArgument("\"project\" must be an Incus project name (letters, digits and '-', at most 63)");
  if (!IsIncusName(instance))
    return InvalidArgument(
        "\"instance\" must be an Incus instance name (letters, digits and '-', at most 63, not starting or "
        "ending with '-')");
  return "/1.0/instances/" + PercentEncode(instance) + std::string(suffix) + "?project=" + PercentEncode(project);
}

std::string ArgvSha256(const std::vector<std::string>& argv) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  static const char kNul = '\0';
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  for (const auto& a : argv) {
    EVP_DigestUpdate(ctx, a.data(), a.size());
    EVP_DigestUpdate(ctx, &kNul, 1);
  }
  EVP_DigestFinal_ex(ctx, md, &n);
  EVP_MD_CTX_free(ctx);
  return HexOf(std::string_view(reinterpret_cast<const char*>(md), n));
}

// ---- the client ----

struct Client::Impl {
  IncusConfig config;
  std::optional<asio::ssl::context> tls;  // https only
  bool https() const { return !config.host.empty(); }
  std::string Describe() const {
    if (!https()) return "unix:" + config.socket_path;
    const bool v6 = config.host.find(':') != std::string::npos;
    return "https://" + (v6 ? "[" + config.host + "]" : config.host) + ":" + std::to_string(config.port);
  }
  std::string HostHeader() const { return https() ? config.host : "incus"; }
};

namespace {

enum class Phase { kSetup, kRunning, kCleanup };

// Session is one call: its own io_context, its connections, and a watchdog
// that enforces the deadlines and the cancellation token. Everything runs on
// the calling thread (io_context::run), so no member needs a lock.
template <class S>
class Session {
 public:
  using Ws = websocket::stream<S>;

  Session(const Client::Impl& client, const CancellationToken& cancel)
      : client_(client), cancel_(cancel), wake_(io_), streams_done_(io_) {}

  // Drive runs `main` to its end, with the setup deadline armed; returns the
  // first failure (or OK).
  Status Drive(std::function<awaitable<void>()> main) {
    SetAbort(Steady::now() + std::chrono::seconds(client_.config.connect_timeout_seconds));
    asio::co_spawn(io_, Watch(), asio::detached);
    asio::co_spawn(io_, WatchCancel(), asio::detached);
    asio::co_spawn(io_, Guarded(std::move(main)), asio::detached);
    io_.run();
    return status_;
  }

  // Request sends one HTTP request on a fresh connection and returns the
  // Incus response envelope; an Incus error becomes a Failure with its code.
  // `what` completes "cannot ..." in messages.
  awaitable<json::object> Request(http::verb verb, std::string target, std::string body, std::string what) {
    auto stream = Make<S>();
    Tracked tracked(this, [s = stream.get()] { CloseLowest(*s); });
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxApiBody);
    try {
      co_await Connect(*stream);
      http::request<http::string_body> req{verb, target, 11};
      req.set(http::field::host, client_.HostHeader());
      req.set(http::field::user_agent, "warden");
      req.keep_alive(false);
      if (!body.empty()) {
        req.set(http::field::content_type, "application/json");
        req.body() = std::move(body);
      }
      req.prepare_payload();
      co_await http::async_write(*stream, req, use_awaitable);
      beast::flat_buffer buf;
      co_await http::async_read(*stream, buf, parser, use_awaitable);
    } catch (const boost::system::system_error& e) {
      throw Failure(TransportError(e.code(), what));
    }
    CloseLowest(*stream);
    co_return Envelope(parser.get(), what);
  }

  // OpenWebsocket connects one of an exec operation's websockets.
  awaitable<std::unique_ptr<Ws>> OpenWebsocket(const std::string& operation, const std::string& secret) {
    auto ws = Make<Ws>();
    Tracked tracked(this, [w = ws.get()] { CloseLowest(beast::get_lowest_layer(*w)); });
    try {
      co_await Connect(ws->next_layer());
      ws->read_message_max(kMaxWsMessage);
      co_await ws->async_handshake(client_.HostHeader(),
                                   "/1.0/operations/" + PercentEncode(operation) +
                                       "/websocket?secret=" + PercentEncode(secret),
                                   use_awaitable);
    } catch (const boost::system::system_error& e) {
      throw Failure(TransportError(e.code(), "connect to the command's streams"));
    }
    co_return ws;
  }

  // GetInstance reads the instance and checks that it is in `project`.
  awaitable<InstanceInfo> GetInstance(const std::string& project, const std::string& instance) {
    Result<std::string> path = InstancePath(project, instance);
    if (!path.ok()) throw Failure(path.status());
    json::object env = co_await Request(http::verb::get, path.value(), "",
                                        "read instance \"" + instance + "\" in project \"" + project + "\"");
    const json::object* meta = Object(env.if_contains("metadata"));
    if (!meta) throw Failure(Unavailable("Incus answered without the instance's description"));
    InstanceInfo info = InstanceFrom(*meta);
    if (info.project != project || info.name != instance)
      throw Failure(PermissionDenied("Incus resolved \"" + instance + "\" in project \"" + project +
                                     "\" to an instance of another project; Warden refuses it"));
    co_return info;
  }

  // ---- exec (the websocket mode) ----

  awaitable<void> Exec(const ExecRequest& r, const ExecCallbacks& callbacks, ExecResult* result) {
    callbacks_ = &callbacks;
    result_ = result;
    command_deadline_ = r.deadline;
    InstanceInfo info = co_await GetInstance(r.project, r.instance);
    if (info.status != "Running")
      throw Failure(FailedPrecondition("instance \"" + r.instance + "\" in project \"" + r.project + "\" is " +
                                       (info.status.empty() ? "not running" : info.status) +
                                       "; it must be running (start it first)"));
    marker_ = RandomHex(16);
    if (marker_.empty()) throw Failure(Internal("no random bytes for the command's marker"));
    json::array argv;
    for (const auto& a : r.argv) argv.emplace_back(a);
    json::object env;
    for (const auto& [k, v] : r.environment) env[k] = v;
    env[kMarkerVariable] = marker_;
    json::object body = {{"command", std::move(argv)},    {"environment", std::move(env)},
                         {"wait-for-websocket", true},     {"interactive", false},
                         {"record-output", false},         {"width", 0},
                         {"height", 0}};
    if (!r.cwd.empty()) body["cwd"] = r.cwd;
    if (r.user) body["user"] = *r.user;
    if (r.group) body["group"] = *r.group;
    const std::string exec_path = InstancePath(r.project, r.instance, "/exec").value();
    json::object op = co_await Request(http::verb::post, exec_path, json::serialize(body),
                                       "start the command in " + r.project + "/" + r.instance);
    const json::object* meta = Object(op.if_contains("metadata"));
    const json::object* fds = meta ? Object(Object(meta->if_contains("metadata"))
                                                ? Object(meta->if_contains("metadata"))->if_contains("fds")
                                                : nullptr)
                                   : nullptr;
    operation_ = meta ? StringField(*meta, "id") : "";
    result_->operation = operation_;
    if (operation_.empty() || !fds)
      throw Failure(Unavailable("Incus answered the exec request without an operation and its websockets"));
    std::array<std::string, 4> secrets = {StringField(*fds, "0"), StringField(*fds, "1"), StringField(*fds, "2"),
                                          StringField(*fds, "control")};
    for (const auto& s : secrets)
      if (s.empty()) throw Failure(Unavailable("Incus answered the exec request without all four websockets"));
    project_ = r.project;
    instance_ = r.instance;
    // Control first: once it is connected, losing it makes Incus kill the
    // command, so an abort during the rest of the setup cannot leave it running.
    ws_[3] = co_await OpenWebsocket(operation_, secrets[3]);
    for (int fd = 0; fd < 3; ++fd) ws_[fd] = co_await OpenWebsocket(operation_, secrets[fd]);
    // The command starts when stdin, stdout and stderr are all connected.
    phase_ = Phase::kRunning;
    next_tick_ = Steady::now() + kTick;
    SetAbort(Steady::time_point::max());
    pending_ = 2;
    asio::co_spawn(io_, CloseStdin(), asio::detached);
    asio::co_spawn(io_, Drain(3), asio::detached);
    asio::co_spawn(io_, Pump(1), asio::detached);
    asio::co_spawn(io_, Pump(2), asio::detached);
    while (pending_ > 0) {
      ErrorCode ec;
      streams_done_.expires_at(Steady::time_point::max());
      co_await streams_done_.async_wait(asio::redirect_error(use_awaitable, ec));
    }
    phase_ = Phase::kCleanup;
    SetAbort(Steady::now() + std::chrono::seconds(client_.config.connect_timeout_seconds));
    if (result_->killed) co_await Sweep();
    co_await Finish();
  }

  bool cancelled() const { return cancelled_; }

 private:
  // Tracked registers a way to close a connection while it is open, so the
  // watchdog can abort whatever is in flight.
  class Tracked {
   public:
    Tracked(Session* s, std::function<void()> close) : s_(s), id_(s->next_id_++) { s_->open_[id_] = std::move(close); }
    ~Tracked() { s_->open_.erase(id_); }
    Tracked(const Tracked&) = delete;
    Tracked& operator=(const Tracked&) = delete;

   private:
    Session* s_;
    int id_;
  };

  template <class T>
  std::unique_ptr<T> Make() {
    if constexpr (std::is_same_v<S, TlsStream>)
      return std::make_unique<T>(io_.get_executor(), const_cast<asio::ssl::context&>(*client_.tls));
    else
      return std::make_unique<T>(io_.get_executor());
  }

  template <class L>
  static void CloseLowest(L& layer) {
    ErrorCode ec;
    if constexpr (std::is_same_v<L, TlsStream>)
      layer.lowest_layer().close(ec);
    else
      layer.close(ec);
  }

  // Connect opens S: the unix socket, or TCP + TLS with the pinned server certificate.
  awaitable<void> Connect(S& s) {
    const IncusConfig& c = client_.config;
    if constexpr (std::is_same_v<S, UnixSocket>) {
      co_await s.async_connect(asio::local::stream_protocol::endpoint(c.socket_path), use_awaitable);
    } else {
      asio::ip::tcp::resolver resolver(io_);
      auto results = co_await resolver.async_resolve(c.host, std::to_string(c.port), use_awaitable);
      co_await asio::async_connect(s.next_layer(), results, use_awaitable);
      unsigned char addr[16];
      const bool literal = inet_pton(AF_INET, c.host.c_str(), addr) == 1 || inet_pton(AF_INET6, c.host.c_str(), addr) == 1;
      if (!literal) SSL_set_tlsext_host_name(s.native_handle(), c.host.c_str());
      // The pin is checked on the leaf certificate during the handshake (no
      // CA chain counts); a wrong certificate aborts it before Warden's
      // certificate is used for anything.
      presented_.clear();
      s.set_verify_mode(asio::ssl::verify_peer);
      s.set_verify_callback([this](bool, asio::ssl::verify_context& vc) {
        X509_STORE_CTX* x = vc.native_handle();
        if (X509_STORE_CTX_get_error_depth(x) > 0) return true;
        presented_ = CertSha256(X509_STORE_CTX_get_current_cert(x));
        return presented_ == client_.config.server_cert_sha256;
      });
      ErrorCode ec;
      co_await s.async_handshake(asio::ssl::stream_base::client, asio::redirect_error(use_awaitable, ec));
      X509* peer = ec ? nullptr : SSL_get1_peer_certificate(s.native_handle());
      const std::string after = CertSha256(peer);
      X509_free(peer);
      if (!presented_.empty() && presented_ != c.server_cert_sha256)
        throw Failure(PermissionDenied(
            "the Incus server at " + client_.Describe() + " presented a certificate with SHA-256 " + presented_ +
            ", not the pinned " + c.server_cert_sha256 +
            " (incus.server_cert_sha256): the certificate changed or the connection is intercepted; Warden sent "
            "no request. Update the pin only after checking the new certificate out of band"));
      if (ec) throw boost::system::system_error(ec);
      if (after != c.server_cert_sha256)
        throw Failure(PermissionDenied("the Incus server at " + client_.Describe() +
                                       " did not present the pinned certificate; Warden sent no request"));
    }
  }

  // TransportError explains a failed connection or exchange: the watchdog's
  // reason when it aborted the call, else the socket error.
  Status TransportError(const ErrorCode& ec, const std::string& what) const {
    if (abort_reason_) return *abort_reason_;
    return Unavailable("cannot " + what + ": the Incus server at " + client_.Describe() + ": " + ec.message());
  }

  // Envelope parses an Incus answer, {"type": "sync"|"async"|"error", ...};
  // an error answer becomes a Failure with the Incus error code's Status.
  json::object Envelope(const http::response<http::string_body>& res, const std::string& what) const {
    ErrorCode ec;
    json::value v = json::parse(res.body(), ec);
    const int http_status = static_cast<int>(res.result_int());
    if (ec || !v.is_object())
      throw Failure(Unavailable("cannot " + what + ": the Incus server at " + client_.Describe() +
                                " answered HTTP " + std::to_string(http_status) + " without an API response"));
    json::object& o = v.get_object();
    const std::string type = StringField(o, "type");
    if (type == "error" || http_status >= 400) {
      int code = http_status;
      if (const json::value* c = o.if_contains("error_code"); c && c->is_int64() && c->get_int64() > 0)
        code = static_cast<int>(c->get_int64());
      std::string message = StringField(o, "error");
      throw Failure(ErrorFor(code, "cannot " + what + ": Incus says: " + Clip(message.empty() ? "error " + std::to_string(code) : message)));
    }
    return std::move(o);
  }

  void SetAbort(Steady::time_point t) {
    abort_at_ = t;
    aborted_ = false;
    wake_.cancel();
  }

  void CloseAll() {
    for (auto& [id, close] : open_) close();  // closing only fails pending operations later, on this thread
    for (auto& ws : ws_)
      if (ws) CloseLowest(beast::get_lowest_layer(*ws));
  }

  // Watch is the watchdog: setup deadline, command deadline, cancellation,
  // the grace after a stop, progress ticks.
  awaitable<void> Watch() {
    for (;;) {
      if (finished_) co_return;
      const Steady::time_point now = Steady::now();
      if (cancel_.cancelled() && !cancelled_) {
        cancelled_ = true;
        Stop(now, /*cancelled=*/true);
      }
      if (phase_ == Phase::kRunning && !stopping_ && now >= command_deadline_) Stop(now, /*cancelled=*/false);
      if (!aborted_ && now >= abort_at_) {
        aborted_ = true;
        if (!abort_reason_ && phase_ == Phase::kSetup)
          abort_reason_ = Unavailable("the Incus server at " + client_.Describe() + " did not answer within " +
                                      std::to_string(client_.config.connect_timeout_seconds) +
                                      " s (incus.connect_timeout_seconds)");
        CloseAll();
      }
      if (phase_ == Phase::kRunning && !stopping_ && now >= next_tick_) {
        if (callbacks_ && callbacks_->tick) callbacks_->tick();
        next_tick_ = now + kTick;
      }
      Steady::time_point next = aborted_ ? Steady::time_point::max() : abort_at_;
      if (phase_ == Phase::kRunning && !stopping_) next = std::min({next, command_deadline_, next_tick_});
      wake_.expires_at(next);
      ErrorCode ec;
      co_await wake_.async_wait(asio::redirect_error(use_awaitable, ec));
    }
  }

  // Stop reacts to the deadline or the cancellation: before the command
  // started, abort; while it runs, SIGKILL it and give Incus a grace period.
  void Stop(Steady::time_point now, bool cancelled) {
    if (phase_ == Phase::kSetup) {
      if (cancelled) abort_reason_ = Cancelled("cancelled before the command started");
      abort_at_ = now;
      aborted_ = false;
      return;
    }
    if (phase_ != Phase::kRunning || stopping_) return;
    stopping_ = true;
    if (result_) {
      result_->cancelled = cancelled;
      result_->timed_out = !cancelled;
      result_->killed = true;
    }
    asio::co_spawn(io_, SendKill(), asio::detached);
    abort_at_ = now + kStopGrace;
    aborted_ = false;
  }

  awaitable<void> WatchCancel() {
    const int fd = ::dup(cancel_.wake_fd());
    if (fd < 0) co_return;
    asio::posix::stream_descriptor d(io_, fd);
    cancel_fd_ = &d;
    ErrorCode ec;
    if (!finished_) co_await d.async_wait(asio::posix::stream_descriptor::wait_read, asio::redirect_error(use_awaitable, ec));
    cancel_fd_ = nullptr;
    wake_.cancel();
  }

  awaitable<void> Guarded(std::function<awaitable<void>()> main) {
    try {
      co_await main();
    } catch (const Failure& f) {
      status_ = f.status;
    } catch (const boost::system::system_error& e) {
      status_ = TransportError(e.code(), "complete the request");
    } catch (const std::exception& e) {
      status_ = Internal(std::string("Incus client: ") + e.what());
    }
    finished_ = true;
    wake_.cancel();
    CloseAll();
    if (cancel_fd_) {
      ErrorCode ec;
      cancel_fd_->cancel(ec);
    }
  }

  awaitable<void> CloseStdin() {
    // An empty text message is Incus's end-of-stream barrier: stdin reads EOF.
    ErrorCode ec;
    ws_[0]->text(true);
    co_await ws_[0]->async_write(asio::buffer(std::string_view()), asio::redirect_error(use_awaitable, ec));
    co_await Drain(0);
  }

  // Drain reads and drops what arrives (pings are answered while a read is pending).
  awaitable<void> Drain(int i) {
    beast::flat_buffer buf;
    for (;;) {
      ErrorCode ec;
      co_await ws_[i]->async_read(buf, asio::redirect_error(use_awaitable, ec));
      if (ec) co_return;
      buf.consume(buf.size());
    }
  }

  // Pump forwards one output stream to the callback until Incus's barrier
  // (an empty text message) or the connection's end.
  awaitable<void> Pump(int fd) {
    beast::flat_buffer buf;
    for (;;) {
      ErrorCode ec;
      co_await ws_[fd]->async_read(buf, asio::redirect_error(use_awaitable, ec));
      if (ec || ws_[fd]->got_text()) break;
      const auto data = buf.data();
      if (callbacks_ && callbacks_->output)
        callbacks_->output(fd, std::string_view(static_cast<const char*>(data.data()), data.size()));
      buf.consume(buf.size());
    }
    if (--pending_ == 0) streams_done_.cancel();
  }

  awaitable<void> SendKill() {
    static constexpr std::string_view kKill = R"({"command":"signal","signal":9})";
    ErrorCode ec;
    ws_[3]->text(true);
    co_await ws_[3]->async_write(asio::buffer(kKill), asio::redirect_error(use_awaitable, ec));
    if (ec) {
      // Closing the control websocket makes Incus kill the command too.
      CloseLowest(beast::get_lowest_layer(*ws_[3]));
      Note("control signal failed (" + ec.message() + "), control closed");
    } else {
      Note("SIGKILL sent");
    }
  }

  // Sweep kills what the first process left behind (see the header).
  awaitable<void> Sweep() {
    try {
      json::array argv = {"sh", "-c", kSweepScript, "warden-stop", marker_};
      json::object body = {{"command", std::move(argv)},
                           {"wait-for-websocket", false},
                           {"interactive", false},
                           {"record-output", false}};
      json::object op = co_await Request(http::verb::post, InstancePath(project_, instance_, "/exec").value(),
                                         json::serialize(body), "start the stop sweep");
      const json::object* meta = Object(op.if_contains("metadata"));
      const std::string id = meta ? StringField(*meta, "id") : "";
      if (id.empty()) throw Failure(Unavailable("no operation for the stop sweep"));
      json::object done = co_await WaitOperation(id, "run the stop sweep");
      const std::optional<int> rc = ReturnOf(done);
      Note(rc == 0 ? "sweep: no marked process left"
                   : rc == 1 ? "sweep: marked processes remained after 5 rounds"
                             : "sweep: did not run (the instance needs sh, tr and grep)");
    } catch (const Failure& f) {
      Note("sweep failed: " + f.status.message());
    }
  }

  // WaitOperation waits for an operation's end (bounded by the abort
  // deadline). A failed operation is an Incus error ("Command not found").
  awaitable<json::object> WaitOperation(const std::string& id, const std::string& what) {
    const auto left = std::chrono::duration_cast<std::chrono::seconds>(abort_at_ - Steady::now()).count();
    const std::string target = "/1.0/operations/" + PercentEncode(id) + "/wait?timeout=" +
                               std::to_string(std::max<int64_t>(1, left)) + "&project=" + PercentEncode(project_);
    json::object env = co_await Request(http::verb::get, target, "", what);
    const json::object* meta = Object(env.if_contains("metadata"));
    co_return meta ? *meta : json::object();
  }

  static std::optional<int> ReturnOf(const json::object& op) {
    const json::object* m = Object(op.if_contains("metadata"));
    const json::value* r = m ? m->if_contains("return") : nullptr;
    if (r && r->is_int64()) return static_cast<int>(r->get_int64());
    if (r && r->is_double()) return static_cast<int>(r->get_double());
    return std::nullopt;
  }

  // Finish reads the operation's end: the exit status, or why the command
  // could not start.
  awaitable<void> Finish() {
    json::object op;
    try {
      op = co_await WaitOperation(operation_, "run the command in " + project_ + "/" + instance_);
    } catch (const Failure& f) {
      if (!result_->killed) throw;
      Note("exit status unknown: " + f.status.message());
      co_return;
    }
    result_->exit_status = ReturnOf(op);
    const std::string status = StringField(op, "status");
    const std::string err = StringField(op, "err");
    if (status == "Failure" && !result_->killed && (!result_->exit_status || *result_->exit_status < 0))
      throw Failure(FailedPrecondition("the command did not start in " + project_ + "/" + instance_ +
                                       ": Incus says: " + Clip(err.empty() ? "failure" : err)));
    if (result_->exit_status && *result_->exit_status < 0) result_->exit_status.reset();
  }

  void Note(const std::string& s) {
    if (result_) result_->stop += (result_->stop.empty() ? "" : "; ") + s;
  }

  const Client::Impl& client_;
  const CancellationToken& cancel_;
  asio::io_context io_;
  asio::steady_timer wake_;          // the watchdog's timer; cancel() wakes it
  asio::steady_timer streams_done_;  // cancel() when both output streams ended
  asio::posix::stream_descriptor* cancel_fd_ = nullptr;
  std::map<int, std::function<void()>> open_;
  int next_id_ = 0;
  std::array<std::unique_ptr<Ws>, 4> ws_;  // stdin, stdout, stderr, control
  Phase phase_ = Phase::kSetup;
  Steady::time_point abort_at_ = Steady::time_point::max();
  Steady::time_point command_deadline_ = Steady::time_point::max();
  Steady::time_point next_tick_ = Steady::time_point::max();
  bool aborted_ = false;
  bool stopping_ = false;
  bool cancelled_ = false;
  bool finished_ = false;
  int pending_ = 0;
  std::optional<Status> abort_reason_;
  Status status_ = Status::Ok();
  std::string presented_;  // SHA-256 of the certificate the server presented (TLS)
  const ExecCallbacks* callbacks_ = nullptr;
  ExecResult* result_ = nullptr;
  std::string operation_, marker_, project_, instance_;
};

// With calls `body(session)` on a session of the configured transport.
template <class F>
Status With(const Client::Impl& impl, const CancellationToken& cancel, F body) {
  if (impl.https()) {
    Session<TlsStream> s(impl, cancel);
    return s.Drive([&]() -> awaitable<void> { co_await body(s); });
  }
  Session<UnixSocket> s(impl, cancel);
  return s.Drive([&]() -> awaitable<void> { co_await body(s); });
}

}  // namespace

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::Create(const IncusConfig& config) {
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  if (impl->https()) {
    if (config.client_cert.empty() || config.client_key.empty() || config.server_cert_sha256.size() != 64)
      return InvalidArgument("an https Incus server needs incus.client_cert, incus.client_key and "
                             "incus.server_cert_sha256");
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                    asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
    SSL_CTX_set_options(ctx.native_handle(), SSL_OP_NO_RENEGOTIATION);
    ErrorCode ec;
    ctx.use_certificate_chain_file(config.client_cert, ec);
    if (ec) return InvalidArgument("incus.client_cert " + config.client_cert + " cannot be used: " + ec.message());
    ctx.use_private_key_file(config.client_key, asio::ssl::context::pem, ec);
    if (ec) return InvalidArgument("incus.client_key " + config.client_key + " cannot be used: " + ec.message());
    if (SSL_CTX_check_private_key(ctx.native_handle()) != 1)
      return InvalidArgument("incus.client_key does not match incus.client_cert");
    impl->tls.emplace(std::move(ctx));
  }
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

std::string Client::Describe() const { return impl_->Describe(); }

Result<InstanceInfo> Client::GetInstance(const std::string& project, const std::string& instance,
                                         const CancellationToken& cancel) {
  InstanceInfo info;
  Status st = With(*impl_, cancel, [&](auto& s) -> awaitable<void> { info = co_await s.GetInstance(project, instance); });
  if (!st.ok()) return st;
  return info;
}

Result<std::vector<InstanceInfo>> Client::ListInstances(const std::string& project, const CancellationToken& cancel) {
  if (!IsIncusName(project)) return InvalidArgument("\"project\" must be an Incus project name");
  std::vector<InstanceInfo> list;
  Status st = With(*impl_, cancel, [&](auto& s) -> awaitable<void> {
    json::object env = co_await s.Request(http::verb::get, "/1.0/instances?recursion=1&project=" + PercentEncode(project),
                                          "", "list the instances of project \"" + project + "\"");
    const json::value* meta = env.if_contains("metadata");
    if (!meta || !meta->is_array()) throw Failure(Unavailable("Incus answered the instance list without a list"));
    for (const auto& v : meta->get_array()) {
      if (!v.is_object()) continue;
      InstanceInfo info = InstanceFrom(v.get_object());
      // Only what Incus says is in this project (an unrestricted listing never mixes them in).
      if (info.project == project && IsIncusName(info.name)) list.push_back(std::move(info));
    }
  });
  if (!st.ok()) return st;
  std::sort(list.begin(), list.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return list;
}

Result<ExecResult> Client::Exec(const ExecRequest& request, const ExecCallbacks& callbacks,
                                const CancellationToken& cancel) {
  ExecResult result;
  bool cancelled = false;
  Status st = With(*impl_, cancel, [&](auto& s) -> awaitable<void> {
    try {
      co_await s.Exec(request, callbacks, &result);
    } catch (...) {
      cancelled = s.cancelled();
      throw;
    }
  });
  if (!st.ok()) {
    // Cancelled before the command started: nothing ran, and that is what the caller asked.
    if (st.code() == Code::kCancelled || (cancelled && !result.killed)) {
      ExecResult r;
      r.cancelled = true;
      return r;
    }
    return st;
  }
  return result;
}

}  // namespace warden::tools::incus
