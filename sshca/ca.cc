#include "sshca/ca.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/config.h"
#include "sshca/pkcs11_signer.h"
#include "sshca/secret_file.h"

namespace warden::sshca {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kCertType = "ssh-ed25519-cert-v01@openssh.com";
constexpr uint32_t kUserCert = 1;  // SSH2_CERT_TYPE_USER
constexpr size_t kMaxKeyFileBytes = 64 * 1024;
constexpr size_t kMaxField = 256;
constexpr size_t kMaxPrincipals = 256;
constexpr size_t kMaxCommand = 64 * 1024;

std::string Errno(int e) { return std::strerror(e); }

bool Printable(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

Status CheckRequest(const CertificateRequest& r, std::string_view subject) {
  if (subject.size() != 32) return InvalidArgument("the subject public key must be 32 bytes (Ed25519)");
  if (r.key_id.empty() || r.key_id.size() > kMaxField || !Printable(r.key_id))
    return InvalidArgument("key_id must be 1-256 printable ASCII characters");
  if (r.principals.empty()) return InvalidArgument("principals must not be empty (it would mean: any user)");
  if (r.principals.size() > kMaxPrincipals) return InvalidArgument("too many principals (at most 256)");
  for (const std::string& p : r.principals)
    if (p.empty() || p.size() > kMaxField || !Printable(p) || p.find(',') != std::string::npos ||
        p.find(' ') != std::string::npos)
      return InvalidArgument("each principal must be 1-256 printable characters without spaces or ','");
  if (r.force_command && (r.force_command->empty() || r.force_command->size() > kMaxCommand ||
                          r.force_command->find('\0') != std::string::npos))
    return InvalidArgument("force_command must be 1-65536 bytes without NUL");
  for (const std::string& cidr : r.source_addresses)
    if (!IsCidr(cidr)) return InvalidArgument("source address \"" + cidr + "\" is not an address or CIDR");
  if (r.lifetime.count() <= 0) return InvalidArgument("lifetime must be positive");
  if (r.clock_skew.count() < 0 || r.clock_skew > kMaxClockSkew)
    return InvalidArgument("clock_skew must be between 0 and " + std::to_string(kMaxClockSkew.count()) + " s");
  return Status::Ok();
}

// CriticalOptions encodes the options sorted by name, as PROTOCOL.certkeys
// requires ("force-command" < "source-address"); each value is a string
// wrapped in a string.
std::string CriticalOptions(const CertificateRequest& r) {
  std::string out;
  WireWriter w(&out);
  auto option = [&w](std::string_view name, std::string_view value) {
    std::string data;
    WireWriter(&data).String(value);
    w.String(name);
    w.String(data);
  };
  if (r.force_command) option("force-command", *r.force_command);
  if (!r.source_addresses.empty()) {
    std::string joined;
    for (const std::string& a : r.source_addresses) joined += (joined.empty() ? "" : ",") + a;
    option("source-address", joined);
  }
  return out;
}

uint64_t RandomSerial() {
  for (;;) {  // 0 cannot be revoked by serial in a KRL; draw again (p = 2^-64)
    std::string b = RandomBytes(8);
    uint64_t v = 0;
    for (unsigned char c : b) v = (v << 8) | c;
    if (v != 0) return v;
  }
}

Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Unavailable(Errno(errno));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

}  // namespace

std::string Certificate::Base64() const { return Base64Encode(blob); }

std::string Certificate::OpenSshLine() const { return std::string(kCertType) + " " + Base64() + " " + key_id; }

Result<std::unique_ptr<CertificateAuthority>> CertificateAuthority::LoadFile(const std::string& path) {
  if (path.empty()) return InvalidArgument("no CA key file given");
  SecretString text;
  if (Status s = ReadSecretFile(path, "CA key file",
                                "create one with `warden ca init` (or set ssh.ca_key in the config)",
                                kMaxKeyFileBytes, &text);
      !s.ok())
    return s;
  Result<std::unique_ptr<Ed25519Key>> key = Ed25519Key::FromPrivateKeyText(text.bytes);
  if (!key.ok()) return InvalidArgument("CA key file " + path + ": " + key.status().message());
  return std::make_unique<CertificateAuthority>(
      std::make_unique<FileSigner>(std::move(key.value()), "CA key file " + path));
}

bool IsPkcs11Uri(std::string_view ca_key) { return ca_key.substr(0, 7) == "pkcs11:"; }

Result<std::unique_ptr<CertificateAuthority>> CertificateAuthority::Open(const CaKeySource& source) {
  if (!IsPkcs11Uri(source.ca_key)) {
    if (!source.pkcs11_module.empty() || !source.pkcs11_pin_file.empty())
      return InvalidArgument("ssh.pkcs11_module and ssh.pkcs11_pin_file apply only when ssh.ca_key is a pkcs11: URI");
    return LoadFile(source.ca_key);
  }
  Result<std::unique_ptr<Pkcs11Signer>> signer =
      Pkcs11Signer::Open({source.ca_key, source.pkcs11_module, source.pkcs11_pin_file});
  if (!signer.ok()) return signer.status();
  return std::make_unique<CertificateAuthority>(std::unique_ptr<Signer>(std::move(signer.value())));
}

Result<Certificate> CertificateAuthority::Issue(const CertificateRequest& request, std::string_view subject_public_key,
                                                const Clock& clock) const {
  if (Status s = CheckRequest(request, subject_public_key); !s.ok()) return s;
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(clock.Now().time_since_epoch()).count();
  if (now < request.clock_skew.count()) return InvalidArgument("the clock is before the Unix epoch");

  Certificate cert;
  cert.serial = RandomSerial();
  cert.key_id = request.key_id;
  cert.principals = request.principals;
  cert.force_command = request.force_command;
  cert.source_addresses = request.source_addresses;
  cert.valid_after = now - request.clock_skew.count();
  const int64_t lifetime = std::min(request.lifetime, kMaxCertificateLifetime).count();
  cert.valid_before = std::min(now + lifetime, cert.valid_after + kMaxCertificateLifetime.count());

  std::string principals;
  WireWriter pw(&principals);
  for (const std::string& p : request.principals) pw.String(p);

  WireWriter w(&cert.blob);
  w.String(kCertType);
  w.String(RandomBytes(32));  // nonce
  w.String(subject_public_key);
  w.U64(cert.serial);
  w.U32(kUserCert);
  w.String(cert.key_id);
  w.String(principals);
  w.U64(static_cast<uint64_t>(cert.valid_after));
  w.U64(static_cast<uint64_t>(cert.valid_before));
  w.String(CriticalOptions(request));
  w.String("");  // extensions: none, so no pty, forwarding, agent or user rc
  w.String("");  // reserved
  w.String(Ed25519PublicKeyBlob(signer_->public_key()));
  // The signature covers every field above, the signature key included.
  Result<std::string> signature = signer_->Sign(cert.blob);
  if (!signature.ok()) return signature.status();
  std::string signature_blob;
  WireWriter sw(&signature_blob);
  sw.String("ssh-ed25519");
  sw.String(signature.value());
  w.String(signature_blob);
  return cert;
}

Result<std::string> CreateCaKeyFile(const std::string& path) {
  if (path.empty()) return InvalidArgument("no CA key file given");
  const fs::path file(path);
  const fs::path dir = file.has_parent_path() ? file.parent_path() : fs::path(".");
  std::error_code ec;
  const bool dir_existed = fs::is_directory(dir, ec);
  if (!dir_existed && !fs::create_directories(dir, ec) && ec)
    return Unavailable("cannot create directory " + dir.string() + ": " + ec.message());
  // Only a directory made here is narrowed: an existing one (say /etc/warden)
  // may be shared on purpose. The key file itself is 0600 either way.
  if (!dir_existed && ::chmod(dir.c_str(), 0700) != 0)
    return Unavailable("cannot set mode 0700 on " + dir.string() + ": " + Errno(errno));

  Result<std::unique_ptr<Ed25519Key>> key = Ed25519Key::Generate();
  if (!key.ok()) return key.status();
  SecretString pem;
  if (Status s = key.value()->WriteOpenSshPrivateKey("warden-ssh-ca", &pem); !s.ok()) return s;

  // O_EXCL: never replace a CA that targets may already trust.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    int e = errno;
    if (e == EEXIST)
      return FailedPrecondition(path + " already exists; Warden never overwrites a CA key (targets may trust it). "
                                       "Use it as is, or move it away first");
    return Unavailable("cannot create " + path + ": " + Errno(e));
  }
  Status status = Status::Ok();
  if (::fchmod(fd, 0600) != 0) status = Unavailable("cannot set mode 0600 on " + path + ": " + Errno(errno));
  if (status.ok()) status = WriteAll(fd, pem.bytes);
  if (status.ok() && ::fsync(fd) != 0) status = Unavailable("cannot sync " + path + ": " + Errno(errno));
  if (::close(fd) != 0 && status.ok()) status = Unavailable("cannot write " + path + ": " + Errno(errno));
  if (!status.ok()) {
    ::unlink(path.c_str());
    return Unavailable("cannot write " + path + ": " + status.message());
  }
  return key.value()->PublicKeyLine("warden-ssh-ca");
}

Result<std::string> CreateCaKey(const CaKeySource& source) {
  if (!IsPkcs11Uri(source.ca_key)) return CreateCaKeyFile(source.ca_key);
  return CreatePkcs11CaKey({source.ca_key, source.pkcs11_module, source.pkcs11_pin_file});
}

}  // namespace warden::sshca
