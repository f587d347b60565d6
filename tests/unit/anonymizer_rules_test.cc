// Layer-1 rules, family by family: what must go, what must stay, and the
// IaC, operator-pattern, keep-list and Crypto-PAn options.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <tuple>

#include "anonymizer/anonymizer.h"
#include "anonymizer/checks.h"
#include "anonymizer/crypto_pan.h"
#include "anonymizer/iac.h"
#include "anonymizer/rules.h"
#include "tests/unit/temp_dir.h"

using namespace warden::anonymizer;

namespace {
std::string Run(const std::string& in) {
  static auto anonymizer = MakeDefaultAnonymizer();
  TokenMap t;
  return anonymizer->Anonymize(in, t).text;
}

struct Case {
  const char* input;
  const char* secret;  // must not survive
  const char* kept;    // must survive ("" for none)
};

template <size_t N>
void CheckCases(const Case (&cases)[N]) {
  for (const Case& c : cases) {
    INFO(c.input);
    std::string out = Run(c.input);
    INFO(out);
    CHECK(out.find(c.secret) == std::string::npos);
    CHECK(out.find(c.kept) != std::string::npos);
  }
}
}  // namespace

TEST_CASE("every secret family is redacted and its context kept") {
  const Case cases[] = {
      {"AWS_ACCESS_KEY_ID=AKIAUSF2TDXB3ZUSPNSQ", "AKIAUSF2TDXB3ZUSPNSQ", "AWS_ACCESS_KEY_ID="},
      {"aws_secret_access_key = eZCPSZev3zTfOTR59cCpibzrAascLuL3+TqlnWwv", "eZCPSZev3zTf", "aws_secret_access_key = "},
      {"GET /v1?api_key=AIzaQ5egQVgiIHSE0I_9WVa9qtPgjH_BqpHuSUL&x=1", "AIzaQ5egQVgi", "&x=1"},
      {"url = https://x:ghp_VPD2Uk3RPPdHkUeUW0DLaVgViPY2pQESdDoV@github.com/a", "ghp_VPD2Uk3R", "github.com/a"},
      {"token: glpat-I9fDLDjetlX09Z7o_g-D", "glpat-I9fDLDjetlX09Z7o_g-D", "token: "},
      {"SLACK=xoxb-081319220333-4696095994525-qnErnc2gUc43Zvm7Hb5jxaab", "qnErnc2gUc43", "SLACK="},
      {"https://hooks.slack.com/services/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", "tabMDdEMsJY0",
       "https://hooks.slack.com/services/"},
      {"STRIPE=sk_live_51xiVb0qOpfwQedWJuTHEJz3QOEHSk1YZzLPYKVXMnYDdce7p9lno7MK5", "sk_live_51xiVb0q", "STRIPE="},
      {"OPENAI_API_KEY=sk-proj-WPxJuMs0EALiPle7_TRU9Y_STkZYaFaWnJfbleyVYmp7nLRekqu", "WPxJuMs0EALi", "OPENAI_API_KEY="},
      {"x sk-ant-api03-EjyY2aIiG_2K_eJGj_71WMMZttlvyCq7W-LcCkhAYflh7lpqzK9V12f", "EjyY2aIiG_2K", ""},
      {"HF_TOKEN=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", "hf_KdqvPfaHTN", "HF_TOKEN="},
      {"VAULT_TOKEN=hvs.7qbiAVUB6D7ytvXvAc4PNpZ2ZVGO3woSoK0C36p8nAxJ70ZMFTT", "7qbiAVUB6D7y", "VAULT_TOKEN="},
      {"bot 6446590731:AAV4GdwpckWSp5Htdli0hSsyMgvIAyStkdu", "AAV4Gdwpckw", ""},
      {"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlLXZhbHVl", "eyJzdWIiOiIx",
       "Authorization: Bearer "},
      {"> Authorization: Basic b3BzLWFkbWluOkdyYWZfQWRtMW4tT2JzIzc=", "b3BzLWFkbWlu", "Authorization: Basic"},
      {"define( 'DB_PASSWORD', 'Wp!Prod#2023_secure' );", "Wp!Prod#2023", "DB_PASSWORD"},
      {"  MYSQL_ROOT_PASSWORD: \"RootMy$ql_Vn39kPw\"", "RootMy$ql_Vn", "MYSQL_ROOT_PASSWORD"},
      {"mysqldump -h db -u backup -p'Bkp_Sql!x92Lmq' --all", "Bkp_Sql!x92", "--all"},
      {"30 3 * * 0 mysqldump -uroot -pCronDump#Mysql_4 db", "CronDump#Mys", "mysqldump -uroot"},
      {"export PGPASSWORD=\"Pg-Backup_7734!zz\"", "Pg-Backup_77", "PGPASSWORD"},
      {"sshpass -p 'Sup3rSsh_Pwd!' rsync -az", "Sup3rSsh_Pwd", "rsync -az"},
      {"redis-server *:6379 --requirepass PsRedis-Req!pass8", "PsRedis-Req!", "--requirepass"},
      {"redis-cli -h 10.0.0.2 -a 'PsRedis-Req!pass8' INFO", "PsRedis-Req!", "INFO"},
      {"ALTER USER app IDENTIFIED BY 'Or4cle-Pw_x1';", "Or4cle-Pw_x1", "IDENTIFIED BY"},
      {"curl -u admin:Adm!nGrafana_55 -X POST", "Adm!nGrafana", "-X POST"},
      {"echo 'EchoSudo!Pass_42' | sudo -S apt-get upgrade -y", "EchoSudo!Pas", "sudo -S apt-get upgrade -y"},
      {"pg-main:5432:*:backup:Pg-Backup_7734!zz", "Pg-Backup_77", ":5432:"},
      {"//nas/x /mnt cifs username=bob,password=N4s_Sh4re!perso,uid=1000 0 0", "N4s_Sh4re!pe", "uid=1000"},
      {"deploy:$6$2S1kHita4lxnfYE.$ZD/.v7/EOApiFwrnu5NFvbTSRy0/u.o53Zi03P0:19880:0", "2S1kHita4lxn", ":19880:0"},
      {"mongodb+srv://shop_rw:Mng0#Clust3r_2024@cluster0.k7x2p.mongodb.net/shop", "Mng0#Clust3r", "mongodb+srv://"},
      {"  DATABASE_URL: cG9zdGdyZXNxbDovL3Nob3BfYXBwOlRmUmRzLU1hc3RlciFwdzc3QDEwLjEyMC4wLjIzOjU0MzIvc2hv",
       "cG9zdGdyZXNx", "DATABASE_URL:"},
      {"\"auth\": \"Y2ktcHVzaGVyOlJlZzFzdHJ5LVB1NWgh\"", "Y2ktcHVzaGVy", "\"auth\":"},
      {"JWT_SECRET=PtdSVwBBZndAAxB1jQRQpwCMvBUKYjguVQF4g8dmwiZHcQu5kzzNfVIVDkQO9jaS", "PtdSVwBBZndA", "JWT_SECRET="},
      {"PrivateKey = /tjQVMPz+swlRrkDpC89e0Tpo5y5rKp3ryR3FXq1cfg=", "tjQVMPz+swlR", "PrivateKey = "},
      {"set-cookie: grafana_session=yazpaoayjysx9ltxhgahfhsz6889lja2; Path=/", "yazpaoayjysx", "Path=/"},
  };
  CheckCases(cases);
}

TEST_CASE("identifier families become tokens") {
  const Case cases[] = {
      {"link/ether 00:16:3e:5a:91:c4 brd ff:ff:ff:ff:ff:ff", "00:16:3e:5a:91:c4", "brd ff:ff:ff:ff:ff:ff"},
      {"upstream: \"http://backend-pay.svc.vlx.corp/api\"", "backend-pay", "/api"},
      {"Accepted publickey for jdupont from 88.164.201.15 port 5", "jdupont", "Accepted publickey for"},
      {"PWD=/home/jdupont", "jdupont", "PWD=/home/"},
      {"Author:     Jean Dupont <jean.dupont@veltrix.fr>", "Jean Dupont", "Author:"},
      {"iban=FR9730004008310001234567806 ok", "FR97300040", "ok"},
      {"IBAN check failed for FR49 2004 1010 0505 0087 5123 447", "2004 1010", "IBAN check failed"},
      {"raw card payload pan=5139477531573734", "5139477531573734", "pan="},
      {"phone=+33 6 47 82 19 53 ok", "47 82 19 53", "ok"},
      {"| 06 71 38 94 20     |", "06 71 38 94 20", "|"},
      {"10.100.0.0/24 dev net-anklume proto kernel", "net-anklume", "proto kernel"},
      {"| pro     | pro-web          | RUNNING | 10.120.0.31 (eth0)     |", "pro-web", "RUNNING"},
      {"/?email=sophie.marchand84%40gmail.com&x", "sophie.marchand84", "&x"},
  };
  CheckCases(cases);
}

TEST_CASE("things that are not secrets stay as they are") {
  const char* clean[] = {
      "commit 3f2c1e9b8a7d6c5b4a3928171615141312111009",
      "sha256:9986c4d2bdbd897c1a9456b02d6e7e8d33203dd26ab1c5c195b846c50259797",
      "\"integrity\": \"sha512-mIWlZmLyAjY3a6HwchL/oxHi2qxFohn5cCoGNKzH7cHOvQ5EDjsEFrXEi3uM9Zo\"",
      "id=4b1f0a27-8e3c-4d52-9f61-2a7c0e9d3b18 version 1.22.1-9 pid 48324 port 5432",
      "2024-06-11T08:22:03.127774+02:00 up 37 days",
      "DB_PASSWORD=changeme", "REDIS_PASSWORD=null", "api_key = os.environ[\"PAYMENT_API_KEY\"]",
      "TOKEN_TTL_SECONDS = 3600", "PASSWORD_MIN_LENGTH = 12", "sk_test_xxxxxxxxxxxxxxxxxxxxxxxx",
      "db_password    = var.db_password_from_vault", "credentials=/root/.smbcredentials,vers=3.0",
      "\"token_uri\": \"https://oauth2.googleapis.com/token\"", "SASL LOGIN authentication failed: UGFzc3dvcmQ6",
      "User-Agent: Mozilla/5.0 Chrome/125.0.0.0 Safari/537.36", "ff02::1\t\tip6-allnodes", "127.0.0.1\tlocalhost",
      "session closed for user root", "ansible_user=admin", "credential.helper=store", "max_tokens: 1024",
  };
  for (const char* c : clean) CHECK(Run(c) == c);
}

TEST_CASE("checksum validators") {
  CHECK(LuhnValid("5139477531573734"));
  CHECK_FALSE(LuhnValid("5139477531573735"));
  CHECK(IbanValid("FR9730004008310001234567806"));
  CHECK(IbanValid("DE89 3704 0044 0532 0130 00"));
  CHECK_FALSE(IbanValid("DE89 3704 0044 0532 0130 01"));
}

TEST_CASE("infra.yml names, operator patterns, dictionary and keep list") {
  warden::testing::TempDir dir("warden-iac");
  warden::AnonymizerConfig config;
  config.infra_yml = dir.Write("infra.yml",
                               "project_name: acme\ndomains:\n  pro:\n    description: \"Client Veltrix - contrat 24-117\"\n"
                               "    machines:\n      pro-dev: {type: lxc}\n  lab:\n    machines:\n      lab-box: {}\n");
  config.patterns.push_back({"ticket", R"(TCK-([0-9]{6}))", "ticket", false});
  config.patterns.push_back({"internal-key", R"(ik_[a-z0-9]{12})", "internal_key", true});
  config.dictionary["customer"] = {"Globex"};
  config.keep = {"pro-dev-staging"};
  auto anonymizer = MakeAnonymizer(config);
  REQUIRE(anonymizer.ok());
  TokenMap t;
  std::string out = anonymizer.value()
                        ->Anonymize("pro-dev on net-pro for Client Veltrix - contrat 24-117, lab-box, Globex TCK-123456 "
                                    "ik_abcdefabcdef pro-dev-staging",
                                    t)
                        .text;
  INFO(out);
  CHECK(out.find("pro-dev on") == std::string::npos);
  CHECK(out.find("net-pro") == std::string::npos);
  CHECK(out.find("Veltrix") == std::string::npos);
  CHECK(out.find("lab-box") == std::string::npos);
  CHECK(out.find("Globex") == std::string::npos);
  CHECK(out.find("TCK-[TICKET_1]") != std::string::npos);
  CHECK(out.find("[INTERNAL_KEY_REDACTED]") != std::string::npos);
  CHECK(out.find("pro-dev-staging") != std::string::npos);  // the keep list wins

  config.infra_yml = (dir.path() / "missing.yml").string();
  CHECK_FALSE(MakeAnonymizer(config).ok());
  config.infra_yml = dir.Write("bad.yml", "just: [a list\n");
  CHECK_FALSE(MakeAnonymizer(config).ok());
}

TEST_CASE("Crypto-PAn keeps prefixes and is keyed") {
  std::string k1(32, 'a'), k2(32, 'b');
  auto a = CryptoPan(k1, "10.120.0.21"), b = CryptoPan(k1, "10.120.0.22"), c = CryptoPan(k1, "10.121.0.21");
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(c);
  CHECK(*a != "10.120.0.21");
  CHECK(a->substr(0, a->rfind('.')) == b->substr(0, b->rfind('.')));  // same /24, same pseudonym /24
  CHECK(a->substr(0, a->find('.')) == c->substr(0, c->find('.')));    // same /8
  CHECK(*CryptoPan(k2, "10.120.0.21") != *a);
  CHECK(CryptoPan(k1, "2a01:e0a:4f2:1c80::1").has_value());
  CHECK_FALSE(CryptoPan(k1, "not an ip").has_value());
}

TEST_CASE("prefix-preserving mode: pseudonyms resolve back, unknown addresses pass") {
  TokenMap t(TokenMap::IpMode::kPrefixPreserving);
  auto anonymizer = MakeDefaultAnonymizer();
  std::string out = anonymizer->Anonymize("ping 10.120.0.21", t).text;
  REQUIRE(out.rfind("ping ", 0) == 0);
  std::string pseudonym = out.substr(5);
  CHECK(pseudonym != "10.120.0.21");
  std::string arg = "ssh " + pseudonym;
  REQUIRE(Detokenize(&arg, t).ok());
  CHECK(arg == "ssh 10.120.0.21");
  std::string invented = "cat [HOST_3]";
  CHECK(Detokenize(&invented, t).code() == warden::Code::kNotFound);
}

TEST_CASE("property: planted secrets of every family never survive random text") {
  std::mt19937 rng(12345);
  const char* alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  auto rand_str = [&](size_t n) {
    std::string s;
    for (size_t i = 0; i < n; ++i) s.push_back(alphabet[rng() % 62]);
    return s;
  };
  const char* words[] = {"the", "service", "restarted", "at", "upstream", "ok", "error", "config", "for", "user",
                         "=", ":", "-", "|", "\n", "\t", "42", "v1.2.3", "GET", "/api/v1"};
  for (int round = 0; round < 300; ++round) {
    std::vector<std::pair<std::string, std::string>> planted = {
        {"AKIA" + [&] { std::string s; for (int i = 0; i < 16; ++i) s.push_back("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[rng() % 32]); return s; }(), ""},
        {"ghp_" + rand_str(36), ""},
        {"glpat-" + rand_str(20), ""},
        {"xoxb-" + rand_str(12) + "-" + rand_str(24), ""},
        {"sk_live_" + rand_str(40), ""},
        {"eyJ" + rand_str(20) + ".eyJ" + rand_str(30) + "." + rand_str(24), ""},
        {"DB_PASSWORD=", "Pw!" + rand_str(12)},
        {"api_key: \"", rand_str(32)},
        {"postgres://app:", "Cx9!" + rand_str(10) + "@db.example.com:5432/app"},
        {"-----BEGIN RSA PRIVATE KEY-----\n", rand_str(64) + "\n" + rand_str(64)},
        {"10." + std::to_string(rng() % 250 + 1) + "." + std::to_string(rng() % 250) + "." + std::to_string(rng() % 250 + 1), ""},
        {rand_str(8) + "@corp.example.com", ""},
    };
    std::string text, secrets_only;
    std::vector<std::string> must_go;
    for (auto& [a, b] : planted) {
      for (int w = 0; w < 5; ++w) text += std::string(words[rng() % 20]) + " ";
      text += a + b;
      if (a.rfind("-----BEGIN", 0) == 0) text += "\n-----END RSA PRIVATE KEY-----";
      text += rng() % 2 ? "\n" : " ";
      must_go.push_back(b.empty() ? a : b.substr(0, b.find('@')));
    }
    std::string out = Run(text);
    for (const std::string& secret : must_go) {
      INFO(text);
      INFO(out);
      std::string probe = secret.substr(secret.size() > 12 ? secret.size() - 12 : 0);  // the random tail
      CHECK(out.find(probe) == std::string::npos);
    }
  }
}

TEST_CASE("the Unicode letter tables are RE2's \\p{Lu} and \\p{L}") {
  // On failure (a new RE2 with a new Unicode version), regenerate
  // anonymizer/unicode_letters.inc from these same two patterns.
  RE2 upper("\\p{Lu}"), letter("\\p{L}");
  size_t upper_diff = 0, letter_diff = 0, decode_diff = 0;
  for (char32_t c = 0; c <= 0x10FFFF; ++c) {
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    std::string s;
    if (c < 0x80) s = {static_cast<char>(c)};
    else if (c < 0x800) s = {static_cast<char>(0xC0 | (c >> 6)), static_cast<char>(0x80 | (c & 0x3F))};
    else if (c < 0x10000)
      s = {static_cast<char>(0xE0 | (c >> 12)), static_cast<char>(0x80 | ((c >> 6) & 0x3F)), static_cast<char>(0x80 | (c & 0x3F))};
    else
      s = {static_cast<char>(0xF0 | (c >> 18)), static_cast<char>(0x80 | ((c >> 12) & 0x3F)),
           static_cast<char>(0x80 | ((c >> 6) & 0x3F)), static_cast<char>(0x80 | (c & 0x3F))};
    upper_diff += IsUnicodeUpper(c) != RE2::FullMatch(s, upper);
    letter_diff += IsUnicodeLetter(c) != RE2::FullMatch(s, letter);
    char32_t d = 0;
    decode_diff += DecodeUtf8(s, 0, &d) != s.size() || d != c;
  }
  CHECK(upper_diff == 0);
  CHECK(letter_diff == 0);
  CHECK(decode_diff == 0);
  char32_t d;
  CHECK(DecodeUtf8("\xC0\xAF", 0, &d) == 0);      // overlong
  CHECK(DecodeUtf8("\xED\xA0\x80", 0, &d) == 0);  // surrogate
  CHECK(DecodeUtf8("\xE2\x80", 0, &d) == 0);      // cut short
}

TEST_CASE("person rules find what the \\p{L} patterns find") {
  // The built-in person rules use cheap classes and a check; the patterns they
  // stand for are these. Random lines built from names, non-letters and
  // contexts must give the same spans under both.
  const std::string kName = R"(\p{Lu}[\p{L}'’\-]+(?:[ ]\p{Lu}[\p{L}'’\-]+){1,3})";
  std::map<std::string, std::string> reference = {
      {"git-person",
       "(?:Author|Commit|Committer|Reported-by|Co-authored-by|Signed-off-by|Reviewed-by|Acked-by|Tested-by|Suggested-by|Helped-by):[ \\t]+(" +
           kName + ")[ \\t]+<"},
      {"shortlog-person", "(?m)^[ \\t]*[0-9]+\\t(" + kName + ")(?:[ \\t]+<|$)"},
      {"git-config-name", "user\\.name=(" + kName + ")"},
      {"field-person", "(?:name|holder|full_name|fullname|owner|customer|customer_name)=[\"'](" + kName + ")[\"']"},
      {"person-before-email", "(" + kName + ")[ \\t]+[<(][^>)\\s]+@"},
      {"table-person", "\\|[ \\t]*(" + kName + ")[ \\t]+\\|"},
  };
  std::vector<Rule> cheap, exact;
  for (Rule& r : BuiltinRules({})) {
    auto it = reference.find(r.name);
    if (it == reference.end()) continue;
    Rule e = r;
    e.pattern = it->second;
    if (r.name != "table-person") e.check = nullptr;  // table-person keeps its email-on-the-line check
    else e.check = [](std::string_view t, size_t* b, size_t*) {
      size_t s = t.rfind('\n', *b), f = t.find('\n', *b);
      std::string_view line = t.substr(s == std::string_view::npos ? 0 : s + 1, f == std::string_view::npos ? std::string_view::npos : f - (s == std::string_view::npos ? 0 : s + 1));
      return line.find('@') != std::string_view::npos;
    };
    cheap.push_back(r);
    exact.push_back(e);
  }
  REQUIRE(cheap.size() == reference.size());
  RuleEngine cheap_engine(cheap), exact_engine(exact);
  const char* prefixes[] = {"Author: ", "Signed-off-by: ", "Commit:\t", "user.name=", "name=\"", "owner='", "| ",
                            "  3\t", "", "x ", "€"};
  const char* suffixes[] = {" <a@b.example>", " (x@y.example)", "\"", "'", " | a@b.example |", " |", "", "\t<", "€", " x"};
  const char* pieces[] = {"José", "Müller", "O’Brien", "Dœ", "€", "Ανδρέας", "Жанна", "ÉLODIE", "van", "Anne-Marie", "X",
                          "ab", "😀", "-", "'", "Bob", "A", "\xC3", "ǅungla", "ŉ", "ß", "Ⅻ", "Ǆ", "ʰ", "\xE2\x80\x99"};
  std::mt19937 rng(2024);
  size_t found = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string text;
    for (int line = 0; line < 3; ++line) {
      text += prefixes[rng() % (sizeof prefixes / sizeof *prefixes)];
      int words = 1 + static_cast<int>(rng() % 5);
      for (int w = 0; w < words; ++w) {
        if (w) text += rng() % 8 ? " " : "  ";
        int n = 1 + static_cast<int>(rng() % 3);
        for (int k = 0; k < n; ++k) text += pieces[rng() % (sizeof pieces / sizeof *pieces)];
      }
      text += suffixes[rng() % (sizeof suffixes / sizeof *suffixes)];
      text += "\n";
    }
    std::vector<Span> a, b;
    cheap_engine.Find(text, &a);
    exact_engine.Find(text, &b);
    auto key = [](const std::vector<Span>& v) {
      std::vector<std::tuple<size_t, size_t, std::string>> k;
      for (const Span& s : v) k.emplace_back(s.begin, s.end, s.rule);
      std::sort(k.begin(), k.end());
      return k;
    };
    INFO(text);
    REQUIRE(key(a) == key(b));
    found += b.size();
  }
  CHECK(found > 200);  // the lines do hold names
}

TEST_CASE("entropy is the Shannon sum over byte counts, the same to the bit for short and long values") {
  auto reference = [](std::string_view s) {
    int counts[256] = {};
    for (unsigned char c : s) ++counts[c];
    double h = 0;
    for (int c : counts)
      if (c) {
        double p = static_cast<double>(c) / s.size();
        h -= p * std::log2(p);
      }
    return h;
  };
  std::mt19937 rng(11);
  for (int round = 0; round < 3000; ++round) {
    std::string s(1 + rng() % 100, ' ');
    unsigned alphabet = 1 + rng() % 255;
    for (char& c : s) c = static_cast<char>(rng() % alphabet);
    INFO("length " << s.size() << " alphabet " << alphabet);
    CHECK(ShannonEntropy(s) == reference(s));
  }
  CHECK(ShannonEntropy("aaaa") == 0.0);
  CHECK(ShannonEntropy("ab") == 1.0);
}

TEST_CASE("the dictionary finds every whole-word occurrence, longest term first, whatever its scan") {
  // The reference: at each position in turn, the longest term there; reported
  // when it is a whole word, the search going on after it (or one byte on).
  auto naive = [](std::string_view text, std::vector<std::string> terms) {
    std::stable_sort(terms.begin(), terms.end(), [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
    std::vector<std::pair<size_t, size_t>> out;
    for (size_t pos = 0; pos < text.size();) {
      size_t b = std::string_view::npos, len = 0;
      for (size_t p = pos; p < text.size() && b == std::string_view::npos; ++p)
        for (const std::string& t : terms)
          if (text.substr(p, t.size()) == t) {
            b = p;
            len = t.size();
            break;
          }
      if (b == std::string_view::npos) break;
      size_t e = b + len;
      bool whole = (b == 0 || !IsWordByte(text[b - 1])) && (e >= text.size() || !IsWordByte(text[e]));
      if (!whole) {
        pos = b + 1;
        continue;
      }
      out.emplace_back(b, e);
      pos = e;
    }
    return out;
  };
  // Both scans: AVX-512 compares for a few anchor pairs (where the CPU has it), and the bitmap.
  const bool vectors = GENERATE(true, false);
  TriggerGate::UseVectors(vectors);
  std::mt19937 rng(5);
  const std::string letters = "abde-. _\n";
  auto word = [&](size_t n) {
    std::string w;
    for (size_t i = 0; i < n; ++i) w.push_back(letters[rng() % 4]);
    return w;
  };
  for (int round = 0; round < 400; ++round) {
    std::vector<std::string> terms;
    size_t count = 1 + rng() % (round % 2 ? 12 : 5);  // few two-byte starts, and more than the vector scan takes
    for (size_t i = 0; i < count; ++i) terms.push_back(word((round % 7 == 0 ? 1 : 2) + rng() % 5));
    std::string text;
    for (int i = 0, len = round % 3 ? 300 : 100 + static_cast<int>(rng() % 200); i < len; ++i)
      text.push_back(letters[rng() % letters.size()]);
    auto source = MakeDictionarySource({{"username", terms}});
    std::vector<Span> spans;
    source->Find(text, &spans);
    std::vector<std::pair<size_t, size_t>> got;
    for (const Span& s : spans) got.emplace_back(s.begin, s.end);
    INFO("round " << round << (vectors ? " (vectors allowed)" : " (bitmap scan)"));
    CHECK(got == naive(text, terms));
  }
  TriggerGate::UseVectors(true);
}

TEST_CASE("base64 decodes both alphabets, with or without padding, and refuses other bytes") {
  auto encode = [](const std::string& in, bool url, bool pad) {
    const char* a = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                        : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    size_t i = 0;
    for (; i + 3 <= in.size(); i += 3) {
      uint32_t v = uint32_t(uint8_t(in[i])) << 16 | uint32_t(uint8_t(in[i + 1])) << 8 | uint8_t(in[i + 2]);
      for (int k = 3; k >= 0; --k) out.push_back(a[(v >> (6 * k)) & 63]);
    }
    if (in.size() - i == 1) {
      uint32_t v = uint32_t(uint8_t(in[i])) << 16;
      out += std::string{a[v >> 18], a[(v >> 12) & 63]} + (pad ? "==" : "");
    } else if (in.size() - i == 2) {
      uint32_t v = uint32_t(uint8_t(in[i])) << 16 | uint32_t(uint8_t(in[i + 1])) << 8;
      out += std::string{a[v >> 18], a[(v >> 12) & 63], a[(v >> 6) & 63]} + (pad ? "=" : "");
    }
    return out;
  };
  std::mt19937 rng(3);
  for (int round = 0; round < 500; ++round) {
    std::string raw(rng() % 40, '\0');
    for (char& c : raw) c = static_cast<char>(rng());
    std::optional<std::string> got = Base64Decode(encode(raw, round % 2, round % 3 == 0));
    REQUIRE(got);
    CHECK(*got == raw);
  }
  CHECK(Base64Decode("dXNlcjpwYXNz") == std::optional<std::string>("user:pass"));
  CHECK_FALSE(Base64Decode("dXNlc jpwYXNz"));
  CHECK_FALSE(Base64Decode("dXNlcjpwY"));  // nine characters: one left over is no byte
  CHECK_FALSE(Base64Decode("dXNl\xC3\xA9pw"));
}
