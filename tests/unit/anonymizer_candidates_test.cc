// Equivalence of the candidate finders (Rule::candidates): a rule anchored at
// the positions its finder gives must find exactly what its pattern finds
// unanchored, on the corpus, on random mutations of it, and on text made of
// the characters the finders look at (including the non-ASCII bytes that
// case-insensitive RE2 folds onto 'k' and 's').
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <tuple>

#include "anonymizer/rules.h"

using namespace warden::anonymizer;

namespace {

using Key = std::tuple<size_t, size_t, std::string, std::string>;

std::vector<Key> Found(const RuleEngine& engine, std::string_view text) {
  std::vector<Span> spans;
  engine.Find(text, &spans);
  std::vector<Key> keys;
  for (const Span& s : spans) keys.emplace_back(s.begin, s.end, s.rule, s.category);
  return keys;  // in the order found: the order must match too
}

// The corpus inputs when the shared corpus is there (JSON "input" fields, read crudely).
std::vector<std::string> CorpusTexts() {
  std::vector<std::string> texts;
  std::filesystem::path dir = std::filesystem::path(WARDEN_SOURCE_DIR) / ".." / "shared" / "corpus" / "cases";
  if (!std::filesystem::is_directory(dir)) return texts;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream f(entry.path());
    std::stringstream ss;
    ss << f.rdbuf();
    texts.push_back(ss.str());  // the JSON itself: escapes and all, still tool-output-like text
  }
  return texts;
}

std::vector<std::string> Samples() {
  std::vector<std::string> seeds = {
      "DB_PASSWORD=s3cr3t-P4ss\nexport API_KEY: 'abcDEF123456ghiJKL'\n\"token\" : \"eyJhbGciOi.eyJzdWIi.sig\"\n",
      "inet 10.1.2.3/24 brd 10.1.2.255 and 1234.5.6.7 v1.2.3.4 256.1.1.1 1.2.3 9.9.9.9.9\n",
      "fe80::5054:ff:fe12:3456 2a01:4f8:c17:1234::1 ::ffff:10.9.8.7 a:b:c 12345:1:2 ::1 std::abs\n",
      "mail alice.smith+tag@example.com, .x@y.co, a@b..cd, -@x.org a@b-c.d.ef\n",
      "postgres://user:pa55w0rd@db.internal:5432/app https://x-token:abcdefghijklmnopqrstuvwx@gitlab.com/a\n",
      "auth: Basic dXNlcjpwYXNzd29yZDEyMw==\nsecret= \"QUtJQUlPU0ZPRE5ON0VYQU1QTEU=\"\n",
      "paſſword=hunter2hunter2 toKen=abcdefgh12345678 \xE2\x84\xAA" "ey: value123456789 sid=\"x\"\n",
      "masterauth yes\ncookie, 'x'\npass\t= 'quoted value'\nsessionid=>abc123def456\nsig := zz\n",
      "keykeykeykeykeykey keykey=keykey.key-key_key: x\nmac 00:1a:2b:3c:4d:5e\n",
      "key\" = x1234567890abc secret' ,'abcdefgh12' 'password' => 'abcd1234' x.token.value :=abc123abc123\n",
      "db-pass\t:\t'p4ssw0rd!' api_key\"\"=zz cookie \"=\" sid\t,\"abcdefgh1234\" clé_secret=Zx81kq0Pz19a\n",
      "pa\xC5\xBFs=abcdefgh12 to\xE2\x84\xAA" "en='abcdefgh1' \xC3\xA9key=abcdefghijk1 0a-1b-2c-3d-4e-5f 0a1b.2c3d.4e5f\n",
      "ftp://user:pa55word@host.example.com/x git+ssh://tok@gitlab.example.net a://@b\n",
      "1:2:3:4:5:6:7:8:9 a::1.2.3.4 ::ffff:1.2.3.4444 1:2::12345 abcd:ef01::1.2.3 ::ABCD:ef 1:22222:3 ::1.2.3.4.5\n",
      "token\" ,x key=>v pass :=  v1234567 key'\"=abc secret\" \t, y pwd\t\t:\t\tzz SESSION_ID=abc token'\n",
      "256.1.1.1 1.256.1.1 1.1.1.256 25.5.5.5 250.249.199.99 0.0.0.0 00.1.2.3 1.2.3.04 199.1.1.1999 9.9.9.9:80\n",
      "card 4111 1111 1111 1111, 4111-1111-1111-1111-, 411111111111111 1 2 3, 12345678901234567890123 -1 2--3\n",
      "tel 06 12 34 56 78, 06.12.34.56.7, 0612345678, 00 12 34 56 78, +33 6 12 34 56 78, +49 (0)30 1234567, +1-\n",
      "s3://a:b@c.d x://:p@h http://u:@h ftp://u:p@-h.a- git://tok_tok-tok_tok-tok_tok@h.x. a+b.c-d://u:p:q@h\n",
      "db1.INTERNAL a.b.internal.c x.corp- -a.lan .local a..home.arpa h\xE2\x84\xAA.local k-.intranet.x a.b.c.d.private\n",
      "http://us\xC3\xA9r:p@h https://u:p\xC3\xA9@h.x scheme://aaaaaaaaaaaaaaaaaaaa@h https://u:p@\xC3\xA9h\n",
  };
  std::vector<std::string> out = seeds;
  for (const std::string& c : CorpusTexts()) out.push_back(c);
  std::string all;
  for (const std::string& s : out) all += s;
  const std::string alphabet = ":=@./-_ \t\n\r\f\"'()0123456789abcdefABCDEFkKsSpPtT+%|$\xC5\xBF\xE2\x84\xAA\xC3\xA9";
  std::mt19937 rng(7);
  for (int round = 0; round < 40; ++round) {
    std::string m = all.substr(rng() % all.size(), 4000);
    for (int i = 0; i < 300 && !m.empty(); ++i) {
      size_t p = rng() % m.size();
      switch (rng() % 3) {
        case 0: m[p] = alphabet[rng() % alphabet.size()]; break;
        case 1: m.insert(p, 1, alphabet[rng() % alphabet.size()]); break;
        default: m.erase(p, 1);
      }
    }
    out.push_back(m);
    std::string noise;
    for (int i = 0; i < 3000; ++i) noise.push_back(alphabet[rng() % alphabet.size()]);
    out.push_back(noise);
  }
  return out;
}

}  // namespace

TEST_CASE("every candidate finder, run everywhere, finds what its pattern finds") {
  std::vector<std::string> samples = Samples();
  size_t finders = 0;
  std::vector<Rule> rules = BuiltinRules({});  // some finders hold only for the built-in zones
  for (Rule& r : BuiltinRules({"example.net"})) rules.push_back(std::move(r));
  for (const Rule& rule : rules) {
    if (!rule.candidates) continue;
    ++finders;
    Rule r = rule;
    r.triggers.clear();  // no gating: the rule runs over all of every sample
    // Without its check too: every raw match must agree, not only those the check keeps.
    Rule raw = r;
    raw.check = nullptr;
    raw.base64_candidate = false;
    RuleEngine fast({r}, true), reference({r}, false), fast_raw({raw}, true), reference_raw({raw}, false);
    for (const std::string& s : samples) {
      INFO(rule.name << " on: " << s.substr(0, 200));
      CHECK(Found(fast, s) == Found(reference, s));
      CHECK(Found(fast_raw, s) == Found(reference_raw, s));
    }
  }
  CHECK(finders >= 6);
}

TEST_CASE("the whole rule set finds the same with and without candidate finders") {
  RuleEngine fast(BuiltinRules({"example.net"}), true), reference(BuiltinRules({"example.net"}), false);
  for (const std::string& s : Samples()) {
    INFO(s.substr(0, 200));
    CHECK(Found(fast, s) == Found(reference, s));
  }
}

// Mixed: n letters and digits, different every call (vendor checks want entropy).
std::string Mixed(size_t n) {
  static std::mt19937 rng(11);
  std::string s;
  for (size_t i = 0; i < n; ++i) s.push_back("abcdef0123456789ghijkLMNOPQ"[rng() % 27]);
  return s;
}

std::string Hex(size_t n) {
  static std::mt19937 rng(13);
  std::string s;
  for (size_t i = 0; i < n; ++i) s.push_back("0123456789abcdef"[rng() % 16]);
  return s;
}

TEST_CASE("a rule finds nothing outside the lines its triggers open") {
  // Each rule alone, gated by its triggers and run everywhere: the same findings.
  // Lines for the rules that the corpus holds few of, at a text start too.
  std::vector<std::string> samples = Samples();
  const std::vector<std::string> planted = {
      "localhost:5432:app:alice:Sup3rS3cret!\ndb.internal:*:*:replicator:r3pl-P4ss\n",
      "10.0.0.7   build-01 build-01.corp\n192.168.1.20\tnas-Émile\n",
      "Name: web-01\nStatus: RUNNING\n| db-1 | STOPPED |\n",
      "| web-02 | ERROR | x |\n",
      "| Émile Zola | émile@example.fr |\n| Ana Lima | 555 |\nx@y | Jo Do |\n",
      "Renée Müllé <renee@example.org>\nÉmile Zola (emile@example.fr)\n",
      "root:$6$saltsalt$abcdefghijklmnopqrstuvwxyz0123456789:19000:0:99999:7:::\n"
      "svc:$sha512$abcdefghijklmnop:1\nu2:$$2b$10$abcdefghijklmnopqrstuv\n",
      "IBAN FR76 3000 6000 0112 3456 7890 189 and DE89370400440532013000\n",
      "mysql -u root -p'S3cr3t!' -h db\ncurl -u admin:hunter2hunter2 https://x\n"
      "redis-cli -h r1 -a 'p@ss w0rd'\nsshpass -p 'x9!k' ssh host\n--db-password s3cret-v4lue\n",
      "USER=alice LOGNAME=bob\nansible_user=deploy\nusername=carol\nx,USER=eve\tUSERNAME=dan\n",
      "full_name='Ana Lima'\ncustomer_name=\"Bo Lindqvist\"\nSigned-off-by: Jo Smith <jo@x.org>\n",
      "Accepted publickey for alice from 10.0.0.9\nsession opened for user bob by\n/home/carol/.ssh\n",
      "  12\tJane Doe\nuser.name=John Smith\nowner=\"Mary Major\"\nAuthor: Ann Lee <ann@x.org>\n",
      "postfix/smtpd: client=mail.example.net[10.1.1.1]\nreceived from relay.example.org[10.1.1.2]\n",
      "ftp://u:pw@host.example.com http://tok_tok_tok_tok_tok_tok@h.example.com net-prod br0\n",
      "AC0123456789abcdef0123456789abcdef 1234567890:AAbcdefghijklmnopqrstuvwxyz0123456789\n",
      "web-01.desk.example.net db.ſecret.lan x.KIOSK.example.net\n",
      "AGE-SECRET-KEY-1QZ8PL4W5X6Y7Z9QZ8PL4W5X6Y7Z9QZ8PL4W5X6Y7Z9QZ8PL4W5X6Y7Z9QZ8PL ya29.a0AfH6SMBx1234567890abcd\n"
      "GOCSPX-abcdefghij1234567890 LTAIabcdefghij1234567890 dop_v1_" + Hex(64) + "\n"
      "GR1348941abcdefghij1234567890 discord.com/api/webhooks/1234/abcdefghij1234567890xyz\n"
      "pypi-AgEIcHlwaS5vcmc" + Mixed(50) + " shpat_" + Hex(32) + " ATATT3" + Mixed(100) + "\n"
      "NRAK-abcdefghij1234567890 glsa_" + Mixed(32) + " sntrys_" + Mixed(32) + "\n"
      "lin_api_" + Mixed(40) + " PMAK-" + Hex(24) + "-" + Hex(34) + "\n"
      "dp.pt." + Mixed(40) + " pul-" + Hex(40) + " abcdefghij1234.atlasv1." + Mixed(60) + "\n"
      "fo1_" + Mixed(40) + " sq0atp-abcdefghij1234567890abc HRKU-" + Mixed(40) + " dapi" + Hex(32) + "\n",
      "GRANT ALL ON db.* TO 'app'@'%' IDENTIFIED BY 'Xq9!hunter2';\nweb-01 ansible_host=10.0.0.5\n"
      "  \"project_id\": \"acme-prod-123\",\n[[runners]]\n  name = \"runner-01\"\n"
      "access-points:\n  \"HomeNet-5G\":\n",
  };
  samples.insert(samples.end(), planted.begin(), planted.end());
  for (const std::string& p : planted) samples.push_back("x " + p);  // not at a text start
  std::vector<Rule> rules = BuiltinRules({"example.net", "desk"});
  size_t gated = 0;
  for (const Rule& rule : rules) {
    if (rule.triggers.empty()) continue;
    ++gated;
    Rule everywhere = rule;
    everywhere.triggers.clear();
    everywhere.multiline = false;
    RuleEngine gate({rule}), reference({everywhere});
    // A rule matched anchored at its triggers: every raw match too, check or no check.
    Rule raw = rule, raw_everywhere = everywhere;
    raw.check = raw_everywhere.check = nullptr;
    raw.base64_candidate = raw_everywhere.base64_candidate = false;
    RuleEngine gate_raw({raw}), reference_raw({raw_everywhere});
    size_t found = 0;
    for (const std::string& s : samples) {
      INFO(rule.name << " on: " << s.substr(0, 200));
      std::vector<Key> want = Found(reference, s);
      found += want.size();
      CHECK(Found(gate, s) == want);
      if (rule.starts_at_trigger) CHECK(Found(gate_raw, s) == Found(reference_raw, s));
    }
    INFO(rule.name);
    CHECK(found > 0);  // the samples hold something for every rule to find
  }
  CHECK(gated >= 60);
}
