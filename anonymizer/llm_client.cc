#include "anonymizer/llm_client.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <fstream>
#include <sstream>

#include "core/hex.h"

namespace warden::anonymizer {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using Steady = std::chrono::steady_clock;
using ErrorCode = boost::system::error_code;

namespace {

constexpr uint64_t kMaxBody = uint64_t{8} << 20;  // a larger answer is refused unread

const json::object* Obj(const json::value* v) { return v && v->is_object() ? &v->get_object() : nullptr; }

int64_t IntField(const json::object* o, std::string_view key) {
  if (!o) return 0;
  const json::value* v = o->if_contains(key);
  if (v && v->is_int64()) return v->get_int64();
  if (v && v->is_uint64()) return static_cast<int64_t>(v->get_uint64());
  return 0;
}

std::string StrField(const json::object* o, std::string_view key) {
  if (!o) return "";
  const json::value* v = o->if_contains(key);
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

}  // namespace

// ---- breaker ----

Status CircuitBreaker::Check() const {
  if (!open_.load()) return Status::Ok();
  std::lock_guard<std::mutex> lock(mu_);
  return FailedPrecondition("the local model's circuit breaker is open (" + reason_ +
                            "); layer 2 and the local_* tools are halted until Warden restarts. An operator should "
                            "look at the audit rows of the call that opened it");
}

void CircuitBreaker::Trip(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  if (open_.load()) return;
  reason_ = reason;
  open_.store(true);
  spdlog::critical("local model circuit breaker OPEN: {}", reason);
}

bool CircuitBreaker::ObserveSize(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  const bool anomaly = seen_ >= 8 && bytes > 4096 && static_cast<double>(bytes) > 10 * mean_;
  if (!anomaly) {
    ++seen_;
    mean_ += (static_cast<double>(bytes) - mean_) / static_cast<double>(std::min<uint64_t>(seen_, 64));
  }
  return anomaly;
}

// ---- request and answer bodies ----

json::object RequestBody(const std::string& api, const std::string& model, const ChatRequest& r) {
  json::array messages{json::object{{"role", "system"}, {"content", r.system}},
                       json::object{{"role", "user"}, {"content", r.user}}};
  json::object body{{"model", model}, {"messages", std::move(messages)}, {"stream", false}};
  if (api == "ollama") {
    body["options"] = json::object{{"temperature", 0}, {"num_predict", r.max_tokens}};
    if (r.schema) body["format"] = *r.schema;
  } else {
    body["temperature"] = 0;
    body["max_tokens"] = r.max_tokens;
    if (r.schema)
      body["response_format"] = json::object{
          {"type", "json_schema"},
          {"json_schema", json::object{{"name", "warden_answer"}, {"strict", true}, {"schema", *r.schema}}}};
  }
  return body;
}

Status ParseAnswer(const std::string& api, const std::string& body, ChatAnswer* out) {
  ErrorCode ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return Unavailable("the model server's answer is not a JSON object");
  const json::object& o = v.get_object();
  out->model = StrField(&o, "model");
  if (api == "ollama") {
    const json::object* m = Obj(o.if_contains("message"));
    const json::value* c = m ? m->if_contains("content") : nullptr;
    if (!c || !c->is_string()) return Unavailable("the model server's answer has no message.content");
    out->content = std::string(c->get_string());
    out->tokens_in = IntField(&o, "prompt_eval_count");
    out->tokens_out = IntField(&o, "eval_count");
  } else {
    const json::value* ch = o.if_contains("choices");
    if (!ch || !ch->is_array() || ch->get_array().empty())
      return Unavailable("the model server's answer has no choices");
    const json::object* first = Obj(&ch->get_array()[0]);
    const json::object* m = first ? Obj(first->if_contains("message")) : nullptr;
    const json::value* c = m ? m->if_contains("content") : nullptr;
    if (!c || !c->is_string()) return Unavailable("the model server's answer has no choices[0].message.content");
    out->content = std::string(c->get_string());
    const json::object* usage = Obj(o.if_contains("usage"));
    out->tokens_in = IntField(usage, "prompt_tokens");
    out->tokens_out = IntField(usage, "completion_tokens");
  }
  if (out->content.find_first_not_of(" \t\r\n") == std::string::npos)
    return Unavailable("the model answered with empty content");
  return Status::Ok();
}

// ---- transport ----

struct LlmClient::Impl {
  std::optional<asio::ssl::context> tls;
  std::string token;  // bearer token, wiped on destruction
  ~Impl() {
    if (!token.empty()) OPENSSL_cleanse(token.data(), token.size());
  }
};

namespace {

using Tcp = beast::tcp_stream;
using Tls = beast::ssl_stream<beast::tcp_stream>;

struct Exchange {
  const LlmConfig& config;
  const LlmClient::Impl& impl;
  const CancellationToken* cancel;
  Steady::time_point deadline;
  Steady::time_point connect_deadline;
  std::string target;
  std::string body;
  Status status{};
  std::string response{};
  std::string presented{};  // the certificate the server showed (pinned mode)
  bool cancelled = false;
  bool timed_out = false;

  template <class S>
  asio::awaitable<void> Run(S& stream) {
    Tcp& tcp = beast::get_lowest_layer(stream);
    auto ex = co_await asio::this_coro::executor;
    asio::ip::tcp::resolver resolver(ex);
    auto results = co_await resolver.async_resolve(config.host, std::to_string(config.port), asio::use_awaitable);
    tcp.expires_at(std::min(connect_deadline, deadline));
    co_await tcp.async_connect(results, asio::use_awaitable);
    if constexpr (std::is_same_v<S, Tls>) {
      unsigned char addr[16];
      const bool literal = inet_pton(AF_INET, config.host.c_str(), addr) == 1 ||
                           inet_pton(AF_INET6, config.host.c_str(), addr) == 1;
      if (!literal) SSL_set_tlsext_host_name(stream.native_handle(), config.host.c_str());
      if (!config.tls_server_cert_sha256.empty()) {
        stream.set_verify_mode(asio::ssl::verify_peer);
        stream.set_verify_callback([this](bool, asio::ssl::verify_context& vc) {
          X509_STORE_CTX* x = vc.native_handle();
          if (X509_STORE_CTX_get_error_depth(x) > 0) return true;
          presented = CertSha256(X509_STORE_CTX_get_current_cert(x));
          return presented == config.tls_server_cert_sha256;
        });
      } else {
        stream.set_verify_mode(asio::ssl::verify_peer);
        stream.set_verify_callback(asio::ssl::host_name_verification(config.host));
      }
      co_await stream.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
    }
    tcp.expires_at(deadline);
    http::request<http::string_body> req{http::verb::post, target, 11};
    const bool v6 = config.host.find(':') != std::string::npos;
    req.set(http::field::host, (v6 ? "[" + config.host + "]" : config.host) + ":" + std::to_string(config.port));
    req.set(http::field::user_agent, "warden");
    req.set(http::field::content_type, "application/json");
    req.set(http::field::accept, "application/json");
    if (!impl.token.empty()) req.set(http::field::authorization, "Bearer " + impl.token);
    req.keep_alive(false);
    req.body() = std::move(body);
    req.prepare_payload();
    co_await http::async_write(stream, req, asio::use_awaitable);
    beast::flat_buffer buf;
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxBody);
    co_await http::async_read(stream, buf, parser, asio::use_awaitable);
    const unsigned code = parser.get().result_int();
    if (code != 200) {
      status = Unavailable("the model server answered HTTP " + std::to_string(code));
      co_return;
    }
    response = std::move(parser.get().body());
  }
};

}  // namespace

LlmClient::LlmClient(LlmConfig config, std::unique_ptr<Impl> impl) : config_(std::move(config)), impl_(std::move(impl)) {}
LlmClient::~LlmClient() = default;

Result<std::unique_ptr<LlmClient>> LlmClient::Create(const LlmConfig& config) {
  auto impl = std::make_unique<Impl>();
  if (!config.bearer_token_file.empty()) {
    std::ifstream f(config.bearer_token_file);
    std::stringstream ss;
    ss << f.rdbuf();
    if (!f) return InvalidArgument("llm.bearer_token_file: cannot read " + config.bearer_token_file);
    impl->token = ss.str();
    while (!impl->token.empty() && (impl->token.back() == '\n' || impl->token.back() == '\r' || impl->token.back() == ' '))
      impl->token.pop_back();
    if (impl->token.empty() || impl->token.find_first_of("\r\n") != std::string::npos)
      return InvalidArgument("llm.bearer_token_file: " + config.bearer_token_file + " must hold one token on one line");
  }
  if (config.https) {
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                    asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
    if (!config.tls_ca_file.empty()) {
      ErrorCode ec;
      ctx.load_verify_file(config.tls_ca_file, ec);
      if (ec) return InvalidArgument("llm.tls_ca_file: cannot load " + config.tls_ca_file + ": " + ec.message());
    }
    impl->tls.emplace(std::move(ctx));
  }
  return std::unique_ptr<LlmClient>(new LlmClient(config, std::move(impl)));
}

std::string LlmClient::Describe() const { return config_.api + " model " + config_.model + " at " + config_.endpoint; }

bool LlmClient::Acquire(Steady::time_point deadline, const CancellationToken* cancel) {
  std::unique_lock<std::mutex> lock(slot_mu_);
  while (in_flight_ >= config_.max_concurrency) {
    if (cancel && cancel->cancelled()) return false;
    if (slot_cv_.wait_until(lock, std::min(deadline, Steady::now() + std::chrono::milliseconds(100))) ==
            std::cv_status::timeout &&
        Steady::now() >= deadline)
      return false;
  }
  ++in_flight_;
  return true;
}

void LlmClient::Release() {
  std::lock_guard<std::mutex> lock(slot_mu_);
  --in_flight_;
  slot_cv_.notify_one();
}

Result<ChatAnswer> LlmClient::Chat(const ChatRequest& request, const CancellationToken* cancel) {
  if (Status s = breaker_.Check(); !s.ok()) return s;
  const Steady::time_point start = Steady::now();
  const Steady::time_point deadline = start + std::chrono::seconds(config_.timeout_seconds);
  if (!Acquire(deadline, cancel)) {
    if (cancel && cancel->cancelled()) return Cancelled("cancelled while waiting for the local model");
    return DeadlineExceeded("the local model had no free slot within llm.timeout_seconds (" +
                            std::to_string(config_.timeout_seconds) + " s; llm.max_concurrency " +
                            std::to_string(config_.max_concurrency) + ")");
  }
  struct SlotGuard {
    LlmClient* c;
    ~SlotGuard() { c->Release(); }
  } slot{this};

  const Steady::time_point sent = Steady::now();
  Exchange x{config_, *impl_, cancel, deadline, sent + std::chrono::seconds(config_.connect_timeout_seconds),
             config_.api == "ollama" ? "/api/chat" : "/v1/chat/completions",
             json::serialize(RequestBody(config_.api, config_.model, request))};
  asio::io_context io;
  std::optional<Tcp> tcp;
  std::optional<Tls> tls;
  if (config_.https)
    tls.emplace(io, *impl_->tls);
  else
    tcp.emplace(io);
  auto close = [&] {
    ErrorCode ec;
    if (tls) beast::get_lowest_layer(*tls).socket().close(ec);
    if (tcp) tcp->socket().close(ec);
  };
  bool done = false;
  std::optional<asio::posix::stream_descriptor> wake;
  if (cancel) {
    int fd = ::dup(cancel->wake_fd());
    if (fd >= 0) {
      wake.emplace(io, fd);
      wake->async_wait(asio::posix::stream_descriptor::wait_read, [&](ErrorCode ec) {
        if (ec || done) return;
        x.cancelled = true;
        close();
      });
    }
  }
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        if (tls)
          co_await x.Run(*tls);
        else
          co_await x.Run(*tcp);
      },
      [&](std::exception_ptr e) {
        done = true;
        if (wake) {
          ErrorCode ec;
          wake->cancel(ec);
        }
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const boost::system::system_error& err) {
          if (err.code() == beast::error::timeout) x.timed_out = true;
          if (!x.presented.empty() && x.presented != config_.tls_server_cert_sha256)
            x.status = PermissionDenied("the model server at " + config_.endpoint + " presented a certificate with "
                                        "SHA-256 " + x.presented + ", not the pinned one (llm.tls_server_cert_sha256)");
          else
            x.status = Unavailable("cannot reach the model server at " + config_.endpoint + ": " + err.code().message());
        } catch (const std::exception& err) {
          x.status = Internal(std::string("model client: ") + err.what());
        }
      });
  io.run();
  close();
  if (x.cancelled || (cancel && cancel->cancelled())) return Cancelled("cancelled while the local model was answering");
  if (x.timed_out || (!x.status.ok() && Steady::now() >= deadline))
    return DeadlineExceeded("the local model (" + Describe() + ") did not answer within llm.timeout_seconds (" +
                            std::to_string(config_.timeout_seconds) + " s)");
  if (!x.status.ok()) return x.status;
  ChatAnswer answer;
  answer.response_bytes = x.response.size();
  answer.latency_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - sent).count();
  if (Status s = ParseAnswer(config_.api, x.response, &answer); !s.ok()) return s;
  if (answer.model.empty()) answer.model = config_.model;
  return answer;
}

}  // namespace warden::anonymizer
