// bench/ssh_bench.cc: what ssh_run costs. Run by hand, never in ctest:
//   build/bench/ssh_bench [runs]      (default 200 runs per client)
//
// 1. Certificate issuance in µs/op: signing alone, and with the per-call key
//    generation and its export to libssh's PEM form (what every call does).
// 1b. The CA signer: one signature over a certificate's to-be-signed bytes,
//    p50/p99, with the key in memory (file signer) and inside a SoftHSM2
//    token through PKCS#11 (Pkcs11Signer, a scratch token); then Issue() from
//    8 threads at once through each (the token serialises on one session).
// 2. Wall time of one `true` on a loopback sshd (tests/unit/ssh_fixture.h),
//    p50/p99: ssh_run (key + certificate + libssh connect, host key check,
//    auth, exec, exit status) against OpenSSH's own `ssh` client using an
//    equivalent certificate (same principal, source-address and
//    force-command, pinned host key), interleaved in the same run so both
//    see the same machine state.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "core/cancel.h"
#include "core/clock.h"
#include "sshca/ca.h"
#include "tests/unit/softhsm_fixture.h"
#include "tests/unit/ssh_fixture.h"
#include "tools/ssh_tool.h"

namespace {

using Steady = std::chrono::steady_clock;
using warden::testing::Run;
using warden::testing::Sshd;
using warden::testing::TempDir;
using warden::testing::WriteFile;

double Micros(Steady::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "ssh_bench: %s\n", what.c_str());
  return 1;
}

// SignLatency: p50 and p99 of one Sign() over `tbs`, in µs, after 50 warm-up calls.
bool SignLatency(const warden::sshca::Signer& signer, const std::string& tbs, int n, double* p50, double* p99) {
  std::vector<double> us;
  us.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n + 50; ++i) {
    auto a = Steady::now();
    if (!signer.Sign(tbs).ok()) return false;
    if (i >= 50) us.push_back(Micros(Steady::now() - a));
  }
  *p50 = Percentile(us, 0.5);
  *p99 = Percentile(us, 0.99);
  return true;
}

// ParallelIssue: certificates per second from `threads` threads issuing at once.
double ParallelIssue(const warden::sshca::CertificateAuthority& ca, const warden::sshca::CertificateRequest& req,
                     const std::string& subject, int threads, int each) {
  std::atomic<int> failed{0};
  std::vector<std::thread> pool;
  auto t0 = Steady::now();
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      warden::SystemClock clock;
      for (int i = 0; i < each; ++i)
        if (!ca.Issue(req, subject, clock).ok()) ++failed;
    });
  for (auto& t : pool) t.join();
  if (failed > 0) return -1;
  return threads * each / std::chrono::duration<double>(Steady::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::max(1, std::atoi(argv[1])) : 200;
  spdlog::set_level(spdlog::level::warn);  // ssh_run logs each certificate at info
  auto ca_key = warden::sshca::Ed25519Key::Generate();
  if (!ca_key.ok()) return Fail(ca_key.status().message());
  auto ca = std::make_shared<warden::sshca::CertificateAuthority>(std::move(ca_key.value()));
  warden::SystemClock clock;

  // --- 1. issuance
  auto subject = warden::sshca::Ed25519Key::Generate();
  if (!subject.ok()) return Fail(subject.status().message());
  warden::sshca::CertificateRequest req;
  req.key_id = "warden:bench-call:bench-session:ssh_run";
  req.principals = {"warden-bench"};
  req.force_command = warden::tools::CertifiedCommand("true", 60);
  req.source_addresses = {"127.0.0.1/32"};
  const int n = 5000;
  auto t0 = Steady::now();
  for (int i = 0; i < n; ++i)
    if (!ca->Issue(req, subject.value()->public_key(), clock).ok()) return Fail("issue failed");
  const double issue_us = Micros(Steady::now() - t0) / n;
  t0 = Steady::now();
  for (int i = 0; i < n; ++i) {
    auto key = warden::sshca::Ed25519Key::Generate();
    if (!key.ok() || !ca->Issue(req, key.value()->public_key(), clock).ok()) return Fail("keygen+issue failed");
    warden::sshca::SecretString pem;
    if (!key.value()->WriteOpenSshPrivateKey("", &pem).ok()) return Fail("export failed");
  }
  const double keygen_issue_us = Micros(Steady::now() - t0) / n;
  std::printf("certificate issuance (sign only):            %8.1f us/op\n", issue_us);
  std::printf("per-call key + certificate + PEM for libssh: %8.1f us/op\n", keygen_issue_us);

  // --- 1b. the CA signer: key in memory vs key in a SoftHSM2 token
  {
    auto sample = ca->Issue(req, subject.value()->public_key(), clock);
    if (!sample.ok()) return Fail("issue failed");
    const std::string tbs = sample->blob.substr(0, sample->blob.size() - 87);  // what Issue() hands the signer
    double file50 = 0, file99 = 0;
    if (!SignLatency(ca->signer(), tbs, 5000, &file50, &file99)) return Fail("file signer failed");
    const double file_rate = ParallelIssue(*ca, req, subject.value()->public_key(), 8, 500);
    std::printf("CA signature over a %zu-byte certificate body, p50/p99:\n", tbs.size());
    std::printf("  file signer (key in memory, OpenSSL):  p50 %8.1f us  p99 %8.1f us\n", file50, file99);
    if (!warden::testing::SoftHsm::Available()) {
      std::printf("  SoftHSM2 signer: skipped (softhsm2 is not installed; scripts/setup.sh --tests)\n");
    } else {
      auto hsm = warden::testing::SoftHsm::Start();
      if (!hsm.ok()) return Fail(hsm.status().message());
      auto token_ca = hsm.value()->CreateCa();
      if (!token_ca.ok()) return Fail(token_ca.status().message());
      double hsm50 = 0, hsm99 = 0;
      if (!SignLatency(token_ca.value()->signer(), tbs, 5000, &hsm50, &hsm99)) return Fail("token signer failed");
      const double hsm_rate = ParallelIssue(*token_ca.value(), req, subject.value()->public_key(), 8, 500);
      std::printf("  PKCS#11 signer (SoftHSM2 token):       p50 %8.1f us  p99 %8.1f us\n", hsm50, hsm99);
      // Part of the token figure: Warden verifies every signature a token returns.
      auto sig = token_ca.value()->signer().Sign(tbs);
      if (!sig.ok()) return Fail("token signer failed");
      std::vector<double> verify_us;
      for (int i = 0; i < 5000; ++i) {
        auto a = Steady::now();
        if (!warden::sshca::VerifyEd25519(token_ca.value()->signer().public_key(), tbs, sig.value()))
          return Fail("verify failed");
        verify_us.push_back(Micros(Steady::now() - a));
      }
      std::printf("    of which Warden's check of the token's signature (OpenSSL verify): p50 %8.1f us\n",
                  Percentile(verify_us, 0.5));
      std::printf("Issue() from 8 threads at once: file %.0f certs/s, SoftHSM2 token %.0f certs/s\n", file_rate,
                  hsm_rate);
    }
  }

  // --- 2. one `true` on a loopback sshd
  auto sshd = Sshd::Start(*ca);
  if (!sshd.ok()) return Fail(sshd.status().message());
  warden::SshConfig config;
  config.source_addresses = {"127.0.0.1/32"};
  config.hosts["bench"] = sshd.value()->Host();
  warden::tools::SshTool tool(config, ca, clock);

  TempDir dir("warden-ssh-bench");
  auto client_key = warden::sshca::Ed25519Key::Generate();
  if (!client_key.ok()) return Fail(client_key.status().message());
  req.principals = {sshd.value()->principal()};
  req.key_id = "openssh-bench";
  req.lifetime = std::chrono::seconds(900);
  auto cert = ca->Issue(req, client_key.value()->public_key(), clock);
  if (!cert.ok()) return Fail(cert.status().message());
  warden::sshca::SecretString pem;
  if (!client_key.value()->WriteOpenSshPrivateKey("", &pem).ok()) return Fail("export failed");
  WriteFile(dir.path() / "id", pem.bytes, std::filesystem::perms(0600));
  WriteFile(dir.path() / "id-cert.pub", cert->OpenSshLine() + "\n");
  WriteFile(dir.path() / "known_hosts",
            "[127.0.0.1]:" + std::to_string(sshd.value()->port()) + " " + sshd.value()->HostKeyLine() + "\n");
  const std::vector<std::string> ssh_argv = {
      "ssh", "-F", "/dev/null", "-i", (dir.path() / "id").string(), "-o",
      "CertificateFile=" + (dir.path() / "id-cert.pub").string(), "-o", "IdentitiesOnly=yes", "-o",
      "UserKnownHostsFile=" + (dir.path() / "known_hosts").string(), "-o", "GlobalKnownHostsFile=/dev/null", "-o",
      "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ControlMaster=no", "-o", "ControlPath=none", "-p",
      std::to_string(sshd.value()->port()), sshd.value()->user() + "@127.0.0.1",
      warden::tools::CertifiedCommand("true", 60)};

  std::vector<double> warden_ms, openssh_ms;
  for (int i = 0; i < runs + 5; ++i) {  // the first 5 of each warm caches and are not counted
    warden::CancellationToken cancel;
    warden::tools::CallContext ctx;
    ctx.session_id = "bench-session";
    ctx.call_id = "bench-" + std::to_string(i);
    ctx.cancel = &cancel;
    auto a = Steady::now();
    auto r = tool.Run({{"host", "bench"}, {"command", "true"}}, ctx);
    auto b = Steady::now();
    if (!r.ok() || r->exit_status != 0) return Fail("ssh_run failed: " + (r.ok() ? "exit" : r.status().message()));
    warden::testing::CommandResult o = Run(ssh_argv);
    auto c = Steady::now();
    if (o.status != 0) return Fail("ssh failed: " + o.err);
    if (i < 5) continue;
    warden_ms.push_back(Micros(b - a) / 1000);
    openssh_ms.push_back(Micros(c - b) / 1000);
  }
  std::printf("`true` on loopback sshd, %d runs each, interleaved:\n", runs);
  std::printf("  ssh_run (libssh, fresh key+cert per call): p50 %7.2f ms  p99 %7.2f ms\n", Percentile(warden_ms, 0.5),
              Percentile(warden_ms, 0.99));
  std::printf("  OpenSSH ssh (equivalent certificate):      p50 %7.2f ms  p99 %7.2f ms\n",
              Percentile(openssh_ms, 0.5), Percentile(openssh_ms, 0.99));
  return 0;
}
