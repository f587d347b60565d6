#include "canary/canary.h"

#include <algorithm>

#include "core/clock.h"

namespace warden::canary {
namespace {

// Pick returns `n` characters drawn uniformly enough from `alphabet` (rejection-free:
// the alphabets are short and a canary is not a key, only unpredictable).
std::string Pick(std::string_view alphabet, size_t n) {
  std::string bytes = RandomBytes(n), out;
  for (unsigned char b : bytes) out.push_back(alphabet[b % alphabet.size()]);
  return out;
}

constexpr std::string_view kLower = "abcdefghijklmnopqrstuvwxyz";
constexpr std::string_view kDigits = "0123456789";
constexpr std::string_view kAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
constexpr std::string_view kBase64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view kHex = "0123456789abcdef";

int Byte() { return static_cast<unsigned char>(RandomBytes(1)[0]); }

// A pronounceable capitalised word ("Vadelon"): looks like a name, is no one's.
std::string NameWord(size_t syllables) {
  static constexpr std::string_view kConsonants = "bdfgklmnprstvz";
  static constexpr std::string_view kVowels = "aeiou";
  std::string w;
  for (size_t i = 0; i < syllables; ++i) w += Pick(kConsonants, 1) + Pick(kVowels, 1);
  w += Pick(kConsonants, 1);
  w[0] = static_cast<char>(w[0] - 'a' + 'A');
  return w;
}

// Luhn-valid 16-digit card number starting with 4 (the Visa range).
std::string CardNumber() {
  std::string d = "4" + Pick(kDigits, 14);
  int sum = 0;
  for (size_t i = 0; i < d.size(); ++i) {
    int v = d[d.size() - 1 - i] - '0';
    if (i % 2 == 0) v = v * 2 > 9 ? v * 2 - 9 : v * 2;  // every second digit from the check digit's left
    sum += v;
  }
  d.push_back(static_cast<char>('0' + (10 - sum % 10) % 10));
  return d;
}

// German IBAN with valid ISO 7064 mod-97 check digits.
std::string Iban() {
  std::string bban = Pick(kDigits, 18);
  std::string digits = bban + "131400";  // "DE" as 13 14, then "00"
  int rem = 0;
  for (char c : digits) rem = (rem * 10 + (c - '0')) % 97;
  int check = 98 - rem;
  return std::string("DE") + static_cast<char>('0' + check / 10) + static_cast<char>('0' + check % 10) + bban;
}

std::string Base64Url(size_t n) { return Pick("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", n); }

}  // namespace

std::vector<Canary> GenerateCatalog() {
  std::vector<Canary> c;
  auto add = [&](std::string family, std::string text, std::vector<Sensitive> sensitive) {
    c.push_back({std::move(family), std::move(text), std::move(sensitive)});
  };

  std::string aws = "AKIA" + Pick("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16);
  add("cloud_credential", "aws_access_key_id = " + aws, {{aws, {"cloud_credential"}}});

  std::string ghp = "ghp_" + Pick(kAlnum, 36);
  add("api_token", "GITHUB_TOKEN: " + ghp, {{ghp, {"api_token"}}});

  std::string pw = Pick(kAlnum, 12) + "!" + Pick(kDigits, 2);
  add("password", "DB_PASSWORD=" + pw, {{pw, {"password"}}});

  std::string key_body = Pick(kBase64, 70) + "\n" + Pick(kBase64, 70) + "\n" + Pick(kBase64, 32) + "==";
  add("private_key", "-----BEGIN OPENSSH PRIVATE KEY-----\n" + key_body + "\n-----END OPENSSH PRIVATE KEY-----",
      {{key_body, {"private_key"}}});

  std::string hash = "$6$" + Pick(kAlnum, 16) + "$" + Pick(std::string(kAlnum) + "./", 86);
  add("password_hash", "svc" + Pick(kLower, 4) + ":" + hash + ":19700:0:99999:7:::", {{hash, {"password_hash"}}});

  std::string jwt = "eyJhbGciOiJIUzI1NiJ9.eyJ" + Base64Url(40) + "." + Base64Url(43);
  add("auth_header", "Authorization: Bearer " + jwt, {{jwt, {"auth_header"}}});

  std::string db_pw = Pick(kAlnum, 14);
  std::string db_host = "db-" + Pick(kLower, 6) + ".internal";
  add("connection_string", "postgres://app:" + db_pw + "@" + db_host + ":5432/app",
      {{db_pw, {"password"}}, {db_host, {"hostname"}, false}});

  std::string ip4 = "10.255." + std::to_string(Byte()) + "." + std::to_string(1 + Byte() % 254);
  add("ip", "    inet " + ip4 + "/32 scope global canary0", {{ip4, {"ip"}, false}});

  std::string ip6 = "fd" + Pick(kHex, 2) + ":" + Pick(kHex, 4) + ":" + Pick(kHex, 4) + "::" + Pick("123456789abcdef", 1) +
                    Pick(kHex, 3);
  add("ipv6", "    inet6 " + ip6 + "/64 scope global", {{ip6, {"ip"}, false}});

  std::string email = "canary-" + Pick(kLower, 6) + "@test.internal";
  add("email", "From: " + email, {{email, {"email"}, false}});

  std::string first = NameWord(2), last = NameWord(3);
  std::string person_email = Pick(kLower, 1) + "." + last + "@canary.test";
  std::transform(person_email.begin(), person_email.end(), person_email.begin(),
                 [](char ch) { return static_cast<char>(std::tolower(static_cast<unsigned char>(ch))); });
  add("person", "User " + first + " " + last + " (" + person_email + ") logged in",
      {{first + " " + last, {"person"}, false}, {person_email, {"email"}, false}});

  std::string user = "svc" + Pick(kLower, 5);
  add("username", "Failed password for invalid user " + user + " from 10.255.0.1 port 4" + Pick(kDigits, 4) + " ssh2",
      {{user, {"username"}, false}});

  std::string mac = "02";
  for (int i = 0; i < 5; ++i) mac += ":" + Pick(kHex, 2);
  add("mac", "    link/ether " + mac + " brd ff:ff:ff:ff:ff:ff", {{mac, {"mac"}, false}});

  std::string phone = "+49 30 " + Pick("23456789", 1) + Pick(kDigits, 6);
  add("phone", "phone: " + phone, {{phone, {"phone"}, false}});

  std::string iban = Iban();
  add("iban", "IBAN " + iban, {{iban, {"iban"}, false}});

  std::string card = CardNumber();
  add("card", "card " + card, {{card, {"card"}, false}});
  return c;
}

Verdict Verify(const Canary& canary, size_t at, const anonymizer::Sanitized& sanitized) {
  Verdict v{canary.family, true, ""};
  for (const Sensitive& s : canary.sensitive) {
    size_t off = canary.text.find(s.value);
    size_t begin = at + off, end = begin + s.value.size();
    size_t covered = begin;  // everything before `covered` is redacted as expected
    for (const anonymizer::Span& sp : sanitized.spans) {
      if (sp.end <= begin) continue;
      if (sp.begin >= end) break;
      bool as_needed = sp.kind == anonymizer::Kind::kSecret ||
                       (!s.secret && std::find(s.categories.begin(), s.categories.end(), sp.category) != s.categories.end());
      if (!as_needed) {
        v.passed = false;
        v.detail = "a " + s.categories.front() + (s.secret ? " secret was tokenized (reversibly) as " : " was tokenized as ") +
                   std::string(sp.category);
        return v;
      }
      if (sp.begin > covered) break;
      covered = std::max(covered, sp.end);
    }
    if (covered < end) {
      v.passed = false;
      v.detail = "a " + s.categories.front() + " value was not redacted";
      return v;
    }
  }
  return v;
}

Guard::Guard() : Guard(GenerateCatalog()) {}
Guard::Guard(std::vector<Canary> catalog) : catalog_(std::move(catalog)) {}

const Canary& Guard::Next() { return catalog_[next_.fetch_add(1, std::memory_order_relaxed) % catalog_.size()]; }

Status Guard::Check(std::string_view sanitized) const {
  for (const Canary& c : catalog_)
    for (const Sensitive& s : c.sensitive)
      if (sanitized.find(s.value) != std::string_view::npos)
        return FailedPrecondition("canary leak: a " + c.family + " canary value passed the pipeline unredacted");
  return Status::Ok();
}

std::string HaltMessage(const std::string& reason) {
  return "Warden is HALTED (" + reason +
         "): every tool call is refused until an operator lifts the halt (`warden canary --reset`, or a restart "
         "whose canary self-test passes)";
}

Status Guard::Halted() const {
  if (!halted_.load(std::memory_order_acquire)) return Status::Ok();
  std::lock_guard<std::mutex> lock(mu_);
  return FailedPrecondition(HaltMessage(reason_));
}

void Guard::Halt(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  if (halted_.load()) return;
  reason_ = reason;
  halted_.store(true, std::memory_order_release);
}

void Guard::Lift() {
  std::lock_guard<std::mutex> lock(mu_);
  reason_.clear();
  halted_.store(false, std::memory_order_release);
}

}  // namespace warden::canary
