#include <catch2/catch.hpp>

#include <algorithm>
#include <random>

#include "anonymizer/anonymizer.h"

using namespace warden::anonymizer;

namespace {
std::string Run(const std::string& in, TokenMap& tokens) { return MakeDefaultAnonymizer()->Anonymize(in, tokens).text; }
std::string Run(const std::string& in) {
  TokenMap t;
  return Run(in, t);
}
}  // namespace

TEST_CASE("IPv4 addresses become consistent session tokens") {
  TokenMap t;
  std::string out = Run("from 10.1.2.3 to 172.16.0.9, again 10.1.2.3:22 and 10.1.2.0/24", t);
  CHECK(out == "from [IP_1] to [IP_2], again [IP_1]:22 and [IP_3]/24");
  CHECK(t.Resolve("[IP_2]") == std::optional<std::string>("172.16.0.9"));
  // The same session keeps the numbering across outputs.
  CHECK(Run("ping 172.16.0.9", t) == "ping [IP_2]");
}

TEST_CASE("loopback, unspecified, documentation ranges, netmasks and versions stay") {
  CHECK(Run("127.0.0.1 0.0.0.0 192.0.2.5 198.51.100.7 203.0.113.9 255.255.255.0") ==
        "127.0.0.1 0.0.0.0 192.0.2.5 198.51.100.7 203.0.113.9 255.255.255.0");
  CHECK(Run("openssl 1.1.1.1.2 and v10.2.3.4") == "openssl 1.1.1.1.2 and v10.2.3.4");
  CHECK(Run("::1 and :: and 2001:db8::1") == "::1 and :: and 2001:db8::1");
}

TEST_CASE("IPv6 addresses in several notations") {
  TokenMap t;
  CHECK(Run("inet6 fe80::5054:ff:fe12:3456/64 scope link", t) == "inet6 [IP_1]/64 scope link");
  CHECK(Run("2a01:4f8:c17:1234::1 and [2a01:4f8:c17:1234::1]:443", t) == "[IP_2] and [[IP_2]]:443");
  CHECK(Run("::ffff:10.9.8.7", t) == "[IP_3]");
}

TEST_CASE("things that look like IPv6 but are not stay as they are") {
  CHECK(Run("std::string a::b 12:34:56 std::abs") == "std::string a::b 12:34:56 std::abs");
}

TEST_CASE("emails are identifiers") {
  TokenMap t;
  CHECK(Run("From: Alice <alice.smith@corp.example.com>, bob+ops@mail.acme.io", t) ==
        "From: Alice <[EMAIL_1]>, [EMAIL_2]");
}

TEST_CASE("a PEM private key loses its body and keeps its armour") {
  std::string key =
      "-----BEGIN OPENSSH PRIVATE KEY-----\n"
      "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
      "QyNTUxOQAAACDx8Y7lZkV1mZ9sQm1pZ2h0IGJlIGEga2V5IGJ1dCBpdCBpcyBub3QAAAAA\n"
      "-----END OPENSSH PRIVATE KEY-----\n";
  std::string out = Run("key:\n" + key + "done");
  CHECK(out ==
        "key:\n-----BEGIN OPENSSH PRIVATE KEY-----\n[PRIVKEY_REDACTED]\n-----END OPENSSH PRIVATE KEY-----\ndone");
}

TEST_CASE("a private key in a JSON value keeps its armour too") {
  // A service-account file: the key = value rule and the PEM rule both find it.
  std::string json =
      "{\"private_key_id\": \"x\", \"private_key\": \"-----BEGIN PRIVATE KEY-----\\nMIIEvgIBADANBgkqhkiG9w0BAQEFAASC"
      "\\nBKgwggSkAgEAAoIBAQC7VJTUt9Us8cKj\\n-----END PRIVATE KEY-----\\n\", \"client_email\": \"a\"}";
  std::string out = Run(json);
  CHECK(out.find("MIIEvg") == std::string::npos);
  CHECK(out.find("BKgwgg") == std::string::npos);
  CHECK(out.find("\"private_key\": \"-----BEGIN PRIVATE KEY-----\\n[PRIVKEY_REDACTED]\\n-----END PRIVATE KEY-----\\n\"") !=
        std::string::npos);
}

TEST_CASE("a private key cut before its END line is still redacted") {
  std::string out = Run("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw\n7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW/VDL5AaWTg0nLVkjRo9z+40RQzuVaE8AkAFmxZzow3x+VJYKdjykkJ0iT9wCS0DRTXu269V264Vf/3jvredZiKRkgwlL9xNAwxXFg0x/XFw005UWVRIkdgcKWTjpBP2dPwVZ4WWC+9aGVd+Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbcmwIDAQAB\n\nafter");
  CHECK(out.find("MIIEow") == std::string::npos);
  CHECK(out.find("[PRIVKEY_REDACTED]") != std::string::npos);
  CHECK(out.find("after") != std::string::npos);
}

TEST_CASE("obvious passwords in key=value, JSON, YAML and URLs") {
  CHECK(Run("DB_PASSWORD=s3cr3t-Value") == "DB_PASSWORD=[PASSWORD_REDACTED]");
  CHECK(Run("  password: \"hunter2!x\"") == "  password: \"[PASSWORD_REDACTED]\"");
  CHECK(Run("{\"api_key\": \"abc123def456\"}") == "{\"api_key\": \"[PASSWORD_REDACTED]\"}");
  CHECK(Run("postgres://app:Pg.pass-77@10.0.0.5:5432/app") == "postgres://app:[PASSWORD_REDACTED]@[IP_1]:5432/app");
}

TEST_CASE("placeholders and field names without values are kept") {
  CHECK(Run("password=changeme") == "password=changeme");
  CHECK(Run("password: ${DB_PASSWORD}") == "password: ${DB_PASSWORD}");
  CHECK(Run("the password field is required") == "the password field is required");
  CHECK(Run("commit 3f2c1e9b8a7d6c5b4a3928171615141312111009") == "commit 3f2c1e9b8a7d6c5b4a3928171615141312111009");
}

TEST_CASE("overlaps resolve once: secrets beat identifiers, longer beats shorter") {
  std::vector<Span> spans = {{0, 10, Kind::kIdentifier, "ip", "a"},
                             {5, 20, Kind::kSecret, "password", "b"},
                             {2, 4, Kind::kIdentifier, "ip", "c"},
                             {20, 25, Kind::kIdentifier, "email", "d"},
                             {21, 30, Kind::kIdentifier, "ip", "e"}};
  std::vector<Span> kept = ResolveSpans(spans);
  REQUIRE(kept.size() == 3);
  CHECK(kept[0].rule == "c");  // 2-4 does not overlap the secret 5-20
  CHECK(kept[1].rule == "b");
  CHECK(kept[2].rule == "e");  // 21-30 is longer than 20-25
}

TEST_CASE("overlapping secrets are redacted over their union, named by the stronger rule") {
  std::vector<Span> spans = {{12, 24, Kind::kSecret, "auth_header", "base64-decoded", 2},
                             {12, 27, Kind::kSecret, "password", "keyvalue-secret", 0},
                             {30, 40, Kind::kSecret, "password", "other", 0},
                             {26, 32, Kind::kIdentifier, "ip", "ip"}};
  std::vector<Span> kept = ResolveSpans(spans);
  REQUIRE(kept.size() == 2);
  CHECK(kept[0].begin == 12);
  CHECK(kept[0].end == 27);  // the base64 rule won, but the whole password stays covered
  CHECK(kept[0].rule == "base64-decoded");
  CHECK(kept[1].rule == "other");
  // The case the canary self-test found: a password whose first 12 characters decode as "x:y".
  CHECK(Run("DB_PASSWORD=wK0rRzpD4KWJ!41") == "DB_PASSWORD=[AUTH_REDACTED]");
}

// ResolveAllAtOnce is the definition ResolveSpans must agree with: secrets
// merged over their unions, then every span in priority order kept when it
// overlaps nothing kept so far. Quadratic; ResolveSpans resolves each group of
// overlapping spans on its own.
std::vector<Span> ResolveAllAtOnce(std::vector<Span> spans) {
  std::vector<Span> v;
  for (const Span& s : spans)
    if (s.end > s.begin) v.push_back(s);
  std::stable_sort(v.begin(), v.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
  std::vector<Span> merged;
  std::vector<bool> used(v.size(), false);
  for (size_t i = 0; i < v.size(); ++i) {
    if (used[i]) continue;
    Span s = v[i];
    if (s.kind == Kind::kSecret) {
      Span best = s;
      size_t end = s.end;
      for (size_t j = i + 1; j < v.size() && v[j].begin < end; ++j) {
        if (v[j].kind != Kind::kSecret) continue;
        used[j] = true;
        end = std::max(end, v[j].end);
        if (v[j].priority > best.priority || (v[j].priority == best.priority && v[j].length() > best.length())) best = v[j];
      }
      best.begin = s.begin;
      best.end = end;
      s = best;
    }
    merged.push_back(s);
  }
  std::stable_sort(merged.begin(), merged.end(), [](const Span& a, const Span& b) {
    if (a.kind != b.kind) return a.kind == Kind::kSecret;
    if (a.priority != b.priority) return a.priority > b.priority;
    if (a.length() != b.length()) return a.length() > b.length();
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.category != b.category) return a.category < b.category;
    return a.rule < b.rule;
  });
  std::vector<Span> kept;
  for (const Span& s : merged) {
    bool free = true;
    for (const Span& k : kept) free = free && (s.end <= k.begin || k.end <= s.begin);
    if (free) kept.push_back(s);
  }
  std::sort(kept.begin(), kept.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
  return kept;
}

TEST_CASE("resolving groups of overlapping spans one by one is resolving them all at once") {
  std::mt19937 rng(7);
  const char* categories[] = {"ip", "email", "password", "api_token"};
  const char* rules[] = {"a", "b", "c"};
  for (int round = 0; round < 2000; ++round) {
    std::vector<Span> spans;
    size_t n = rng() % 40, width = 20 + rng() % 200;
    for (size_t i = 0; i < n; ++i) {
      Span s;
      s.begin = rng() % width;
      s.end = s.begin + rng() % 25;  // some empty
      s.kind = rng() % 2 ? Kind::kSecret : Kind::kIdentifier;
      s.category = categories[rng() % 4];
      s.rule = rules[rng() % 3];
      s.priority = static_cast<int>(rng() % 3);
      spans.push_back(s);
    }
    std::vector<Span> got = ResolveSpans(spans), want = ResolveAllAtOnce(spans);
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      INFO("round " << round << " span " << i);
      CHECK(got[i].begin == want[i].begin);
      CHECK(got[i].end == want[i].end);
      CHECK(got[i].kind == want[i].kind);
      CHECK(got[i].category == want[i].category);
      CHECK(got[i].rule == want[i].rule);
    }
  }
}

TEST_CASE("detokenize resolves issued tokens and refuses invented ones") {
  TokenMap t;
  Run("host 10.20.30.40", t);
  std::string arg = "ping -c1 [IP_1]";
  REQUIRE(Detokenize(&arg, t).ok());
  CHECK(arg == "ping -c1 10.20.30.40");

  std::string invented = "cat [IP_7]";
  warden::Status s = Detokenize(&invented, t);
  CHECK(s.code() == warden::Code::kNotFound);
  CHECK(invented == "cat [IP_7]");

  std::string secret = "echo [PASSWORD_REDACTED]";  // secrets have no reverse mapping: left as typed
  REQUIRE(Detokenize(&secret, t).ok());
  CHECK(secret == "echo [PASSWORD_REDACTED]");
}

TEST_CASE("a private key inside a diff keeps its END line") {
  std::string out = Run("+-----BEGIN OPENSSH PRIVATE KEY-----\n+b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
                        "+QyNTUxOQAAACDx8Y7lZkV1mZ9sQm1pZ2h0IGJl\n+-----END OPENSSH PRIVATE KEY-----\n");
  CHECK(out == "+-----BEGIN OPENSSH PRIVATE KEY-----\n[PRIVKEY_REDACTED]\n+-----END OPENSSH PRIVATE KEY-----\n");
}
