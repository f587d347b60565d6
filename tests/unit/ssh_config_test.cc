// Tests for the ssh: section of core/config.h: defaults, a full valid
// section, and every refusal with file, line and key.
#include <catch2/catch.hpp>

#include <algorithm>

#include "core/config.h"
#include "tests/unit/ssh_fixture.h"

namespace warden {
namespace {

using testing::TempDir;
using testing::WriteFile;

constexpr const char* kPin = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";

std::string Errors(const ConfigLoad& load) {
  std::string out;
  for (const auto& e : load.errors) out += e.ToString() + "\n";
  return out;
}

TEST_CASE("ssh defaults: CA under the state dir, 5-minute certificates, no hosts") {
  ConfigLoad load = LoadConfig("", "/tmp/warden-state-test");
  REQUIRE(load.ok());
  const SshConfig& s = load.config.ssh;
  CHECK(s.ca_key == "/tmp/warden-state-test/ca/ssh_ca");
  CHECK(s.cert_ttl_seconds == 300);
  CHECK(s.clock_skew_seconds == 30);
  CHECK(s.connect_timeout_seconds == 10);
  CHECK(s.timeout_seconds == 60);
  CHECK(s.max_timeout_seconds == 900);
  CHECK(s.hosts.empty());
}

TEST_CASE("a full ssh section is read; relative paths resolve against the file") {
  TempDir d;
  WriteFile(d.path() / "known_hosts", "");
  const std::string file = (d.path() / "w.yaml").string();
  WriteFile(file, std::string(R"(ssh:
  ca_key: secrets/ssh_ca
  cert_ttl_seconds: 3600
  clock_skew_seconds: 10
  source_addresses: [10.0.0.5/32, "2001:db8::/64"]
  connect_timeout_seconds: 5
  timeout_seconds: 30
  max_timeout_seconds: 120
  hosts:
    web1:
      address: 10.0.0.21
      user: deploy
      principals: [warden-deploy]
      host_key_sha256: ")") + kPin + R"("
    db.1:
      address: db1.internal
      port: 2222
      user: postgres
      principals: [warden-db, warden-ops]
      known_hosts: known_hosts
      force_command: {disabled_reason: "runs a fixed wrapper via ForceCommand in sshd_config"}
)");
  ConfigLoad load = LoadConfig(file);
  INFO(Errors(load));
  REQUIRE(load.ok());
  const SshConfig& s = load.config.ssh;
  CHECK(s.ca_key == (d.path() / "secrets/ssh_ca").string());
  CHECK(s.cert_ttl_seconds == 3600);  // accepted; capped to 900 at issuance
  CHECK(s.source_addresses == std::vector<std::string>{"10.0.0.5/32", "2001:db8::/64"});
  REQUIRE(s.hosts.size() == 2);
  const SshHostConfig& web = s.hosts.at("web1");
  CHECK(web.port == 22);
  CHECK(web.host_key_sha256 == kPin);
  CHECK(web.force_command);
  const SshHostConfig& db = s.hosts.at("db.1");
  CHECK(db.port == 2222);
  CHECK(db.principals == std::vector<std::string>{"warden-db", "warden-ops"});
  CHECK(db.known_hosts == (d.path() / "known_hosts").string());
  CHECK_FALSE(db.force_command);
  CHECK(db.force_command_disabled_reason == "runs a fixed wrapper via ForceCommand in sshd_config");
}

TEST_CASE("ssh config errors name the file, line and key") {
  TempDir d;
  const std::string file = (d.path() / "bad.yaml").string();
  WriteFile(file, std::string(R"(ssh:
  cert_ttl_seconds: 0
  source_addresses: [10.0.0.0/33]
  colour: blue
  hosts:
    "bad name!": {}
    nopin:
      address: 10.0.0.1
      user: u
      principals: [p]
    both:
      address: 10.0.0.2
      user: u
      principals: [p]
      host_key_sha256: ")") + kPin + R"("
      known_hosts: /nonexistent/known_hosts
    empty:
      address: 10.0.0.3
      user: u
      principals: []
      host_key_sha256: SHA256:short
    optout:
      address: "-oProxyCommand=x"
      user: u
      principals: ["a,b"]
      host_key_sha256: ")" + kPin + R"("
      force_command: false
      port: 70000
)");
  ConfigLoad load = LoadConfig(file);
  const std::string errors = Errors(load);
  INFO(errors);
  REQUIRE_FALSE(load.ok());
  for (const std::string& expected : std::vector<std::string>{
           file + ":2:21: ssh.cert_ttl_seconds: must be between 10 and 86400, got 0",
           file + ":3:22: ssh.source_addresses[0]: must be an address or CIDR",
           file + ":4:3: ssh.colour: unknown key",
           file + ":6:5: ssh.hosts.bad name!: host names use letters",
           file + ":8:7: ssh.hosts.nopin: give exactly one of host_key_sha256 and known_hosts",
           file + ":12:7: ssh.hosts.both: give exactly one of host_key_sha256 and known_hosts",
           "ssh.hosts.both.known_hosts: no such file: /nonexistent/known_hosts",
           "ssh.hosts.empty.principals: must list at least one principal",
           "ssh.hosts.empty.host_key_sha256: must be an OpenSSH SHA256 fingerprint",
           "ssh.hosts.optout.address: must be an IP address or host name",
           "ssh.hosts.optout.principals[0]: must be principal names",
           "ssh.hosts.optout.force_command: must be true, or {disabled_reason: \"why\"} to disable it",
           "ssh.hosts.optout.port: must be between 1 and 65535, got 70000",
       })
    CHECK_THAT(errors, Catch::Contains(expected));
  CHECK(load.config.ssh.hosts.empty());  // no host with an error is kept
}

TEST_CASE("hosts without source_addresses are refused: a certificate must be bound to Warden's egress") {
  TempDir d;
  const std::string file = (d.path() / "w.yaml").string();
  WriteFile(file, std::string("ssh:\n  hosts:\n    web1: {address: 10.0.0.21, user: u, principals: [p], "
                              "host_key_sha256: \"") + kPin + "\"}\n");
  ConfigLoad load = LoadConfig(file);
  REQUIRE_FALSE(load.ok());
  CHECK_THAT(Errors(load), Catch::Contains(file + ":2:3: ssh.source_addresses: is required when ssh.hosts are configured"));
}

TEST_CASE("a pkcs11: ca_key is kept as written, with its module and PIN file") {
  TempDir d;
  const std::string file = (d.path() / "w.yaml").string();
  WriteFile(file, R"(ssh:
  ca_key: "pkcs11:token=warden-ca;object=ca"
  pkcs11_module: /usr/lib/softhsm/libsofthsm2.so
  pkcs11_pin_file: secrets/pin
)");
  ConfigLoad load = LoadConfig(file);
  INFO(Errors(load));
  REQUIRE(load.ok());
  CHECK(load.config.ssh.ca_key == "pkcs11:token=warden-ca;object=ca");
  CHECK(load.config.ssh.pkcs11_module == "/usr/lib/softhsm/libsofthsm2.so");
  CHECK(load.config.ssh.pkcs11_pin_file == (d.path() / "secrets/pin").string());
}

TEST_CASE("pkcs11 settings are refused where they cannot mean what they say") {
  TempDir d;
  struct Case {
    const char* yaml;
    const char* error;
  };
  for (const Case& c : {
           Case{"ssh:\n  ca_key: \"pkcs11:token=t;object=ca?pin-value=123456\"\n",
                ":2:11: ssh.ca_key: must not carry the PIN (pin-value)"},
           Case{"ssh:\n  ca_key: \"pkcs11:token=t;object=ca\"\n  pkcs11_module: lib/softhsm2.so\n",
                ":3:18: ssh.pkcs11_module: must be an absolute path"},
           Case{"ssh:\n  ca_key: /etc/warden/ssh_ca\n  pkcs11_pin_file: /etc/warden/pin\n",
                ":3:20: ssh.pkcs11_pin_file: applies only when ssh.ca_key is a pkcs11: URI"},
           Case{"ssh:\n  pkcs11_module: /usr/lib/softhsm/libsofthsm2.so\n",
                ":2:18: ssh.pkcs11_module: applies only when ssh.ca_key is a pkcs11: URI"},
       }) {
    const std::string file = (d.path() / "bad.yaml").string();
    WriteFile(file, c.yaml);
    ConfigLoad load = LoadConfig(file);
    const std::string errors = Errors(load);
    INFO(errors);
    REQUIRE_FALSE(load.ok());
    CHECK_THAT(errors, Catch::Contains(file + c.error));
    CHECK_THAT(errors, !Catch::Contains("123456"));
  }
}

TEST_CASE("IsCidr takes what OpenSSH's source-address takes") {
  for (const char* ok : {"10.0.0.5", "10.0.0.0/8", "0.0.0.0/0", "127.0.0.1/32", "::1", "2001:db8::/32", "::/0"})
    CHECK(IsCidr(ok));
  for (const char* bad : {"", "10.0.0.0/33", "10.0.0/8", "10.0.0.1/", "10.0.0.1/-1", "example.com", "::1/129",
                          "10.0.0.1/8/8", "10.0.0.1 ", "1.2.3.4/+8"})
    CHECK_FALSE(IsCidr(bad));
}

}  // namespace
}  // namespace warden
