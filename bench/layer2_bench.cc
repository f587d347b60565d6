// layer2_bench: what layer 2 costs beyond the model's own time. A loopback
// model server in this process answers every request at once ({"spans":[]},
// Ollama format), so what is measured is Warden's side: masking, chunking,
// hashing, request JSON, one HTTP exchange per chunk on loopback, answer
// parsing, span mapping. Usage: layer2_bench [calls] [bytes per call] [chunk_bytes]
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "anonymizer/anonymizer.h"
#include "anonymizer/layer2.h"

namespace asio = boost::asio;
namespace http = boost::beast::http;
using namespace warden;
using namespace warden::anonymizer;
using Clock = std::chrono::steady_clock;

namespace {
void Serve(asio::ip::tcp::acceptor* acceptor, std::atomic<bool>* stop) {
  const std::string body = R"({"model":"bench","message":{"role":"assistant","content":"{\"spans\":[]}"},"done":true})";
  while (!*stop) {
    asio::ip::tcp::socket s(acceptor->get_executor());
    boost::system::error_code ec;
    acceptor->accept(s, ec);
    if (ec || *stop) continue;
    boost::beast::flat_buffer buf;
    http::request<http::string_body> req;
    http::read(s, buf, req, ec);
    if (ec) continue;
    http::response<http::string_body> res{http::status::ok, 11};
    res.set(http::field::content_type, "application/json");
    res.body() = body;
    res.prepare_payload();
    http::write(s, res, ec);
  }
}

std::string Corpus(size_t bytes) {
  std::string t;
  for (int i = 0; t.size() < bytes; ++i)
    t += "2026-01-03T10:00:" + std::to_string(i % 60) + " app[812]: order " + std::to_string(4400 + i) +
         " for customer Globex paid by card, user=deploy from 10.2." + std::to_string(i % 250) +
         ".7 password=Zx9vQ7mR2kLp" + std::to_string(i) + "\n";
  t.resize(bytes);
  return t;
}
}  // namespace

int main(int argc, char** argv) {
  int calls = argc > 1 ? std::atoi(argv[1]) : 200;
  size_t bytes = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 4096;
  size_t chunk = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 6000;
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  std::atomic<bool> stop{false};
  std::thread server(Serve, &acceptor, &stop);
  int port = acceptor.local_endpoint().port();

  LlmConfig lc;
  lc.configured = true;
  lc.host = "127.0.0.1";
  lc.port = port;
  lc.endpoint = "http://127.0.0.1:" + std::to_string(port);
  lc.model = "bench";
  lc.max_concurrency = 1;  // one chunk at a time: per-chunk cost, not parallelism
  std::shared_ptr<LlmClient> client = std::move(LlmClient::Create(lc).value());
  Layer2Options o;
  o.config.chunk_bytes = chunk;
  o.config.overlap_bytes = std::min<size_t>(400, chunk / 2);
  o.config.cache_entries = 0;  // every chunk asks the model
  auto layer1 = MakeDefaultAnonymizer();
  auto both = MakeDefaultAnonymizer();
  both->SetSecondStage(std::make_shared<Layer2>(o, client));
  Layer2Options cached_o = o;
  cached_o.config.cache_entries = 4096;
  auto cached = MakeDefaultAnonymizer();
  cached->SetSecondStage(std::make_shared<Layer2>(cached_o, client));

  std::string text = Corpus(bytes);
  TokenMap tokens;
  auto time = [&](auto&& f) {
    for (int i = 0; i < 5; ++i) f();  // warm up
    auto t0 = Clock::now();
    for (int i = 0; i < calls; ++i) f();
    return std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / calls;
  };
  StageReport r;
  double l1 = time([&] { (void)layer1->Anonymize(text, tokens); });
  double l2 = time([&] {
    r = StageReport();
    if (!both->AnonymizeChecked(text, tokens, &r).ok()) std::abort();
  });
  double hit = time([&] {
    if (!cached->AnonymizeChecked(text, tokens, nullptr).ok()) std::abort();
  });
  std::printf("input %zu bytes, chunk_bytes %zu: %d chunk(s) per call, %d calls\n", bytes, chunk, r.chunks, calls);
  std::printf("layer 1 alone            %9.1f us/call\n", l1);
  std::printf("layers 1+2, instant model %9.1f us/call  -> layer 2 overhead %8.1f us/call, %8.1f us/chunk\n", l2,
              l2 - l1, (l2 - l1) / std::max(1, r.chunks));
  std::printf("layers 1+2, all cached    %9.1f us/call  -> layer 2 overhead %8.1f us/call\n", hit, hit - l1);
  stop = true;
  boost::system::error_code ec;
  asio::ip::tcp::socket s(io);
  s.connect({asio::ip::make_address("127.0.0.1"), static_cast<asio::ip::port_type>(port)}, ec);
  server.join();
  return 0;
}
