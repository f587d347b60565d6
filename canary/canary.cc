#include "canary/canary.h"

#include "core/clock.h"

namespace warden::canary {

std::vector<Canary> GenerateCatalog() {
  std::string r = RandomHex(8);
  auto byte = [] { return std::to_string(1 + static_cast<unsigned char>(RandomBytes(1)[0]) % 254); };
  std::vector<Canary> c;
  c.push_back({"ip", "10.255." + byte() + "." + byte()});
  c.push_back({"email", "canary-" + r.substr(0, 6) + "@test.internal"});
  c.push_back({"password", "password=Cn" + RandomHex(10) + "!x"});
  c.push_back({"private_key", "-----BEGIN RSA PRIVATE KEY-----\nCANARY" + RandomHex(24) +
                                  "\n-----END RSA PRIVATE KEY-----"});
  return c;
}

Guard::Guard() : Guard(GenerateCatalog()) {}
Guard::Guard(std::vector<Canary> catalog) : catalog_(std::move(catalog)) {}

namespace {
// The secret part of a canary: what must never appear after sanitizing.
std::string_view SensitivePart(const Canary& c) {
  std::string_view v = c.value;
  if (c.category == "password") return v.substr(v.find('=') + 1);
  if (c.category == "private_key") {
    size_t b = v.find('\n') + 1;
    return v.substr(b, v.rfind('\n') - b);
  }
  return v;
}
}  // namespace

Status Guard::Check(std::string_view sanitized) {
  for (const Canary& c : catalog_) {
    if (sanitized.find(SensitivePart(c)) != std::string_view::npos) {
      std::string reason = "canary leak: a " + c.category + " canary passed the pipeline unredacted";
      Halt(reason);
      return FailedPrecondition(reason);
    }
  }
  return Status::Ok();
}

Status Guard::Halted() const {
  if (!halted_.load(std::memory_order_acquire)) return Status::Ok();
  std::lock_guard<std::mutex> lock(mu_);
  return FailedPrecondition("Warden is HALTED (" + reason_ +
                            "); every tool call is refused until an operator lifts the halt");
}

void Guard::Halt(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  if (halted_.load()) return;
  reason_ = reason;
  halted_.store(true, std::memory_order_release);
}

}  // namespace warden::canary
