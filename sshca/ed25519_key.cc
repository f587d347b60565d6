#include "sshca/ed25519_key.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstring>

#include "core/clock.h"

namespace warden::sshca {
namespace {

constexpr size_t kKeyBytes = 32;
constexpr size_t kSignatureBytes = 64;
constexpr std::string_view kKeyType = "ssh-ed25519";
constexpr std::string_view kOpenSshMagic{"openssh-key-v1\0", 15};
constexpr std::string_view kOpenSshBegin = "-----BEGIN OPENSSH PRIVATE KEY-----";
constexpr std::string_view kOpenSshEnd = "-----END OPENSSH PRIVATE KEY-----";
constexpr std::string_view kPkcs8Begin = "-----BEGIN PRIVATE KEY-----";
constexpr std::string_view kPkcs8EncryptedBegin = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
constexpr size_t kPemLineLength = 70;  // what ssh-keygen writes

// OpenSSL keeps a per-thread error queue; a failure here must not leave
// entries behind for an unrelated later caller to misreport.
Status OpenSslError(const std::string& what) {
  ERR_clear_error();
  return Internal(what + " (OpenSSL)");
}

// NoPassphrase keeps OpenSSL from prompting on a terminal for an encrypted PEM.
int NoPassphrase(char*, int, int, void*) { return 0; }

// Ed25519 public keys are public: no wiping needed for them.
Result<std::string> RawPublicKey(EVP_PKEY* pkey) {
  unsigned char pub[kKeyBytes];
  size_t len = sizeof pub;
  if (EVP_PKEY_get_raw_public_key(pkey, pub, &len) != 1 || len != kKeyBytes)
    return OpenSslError("cannot read an Ed25519 public key");
  return std::string(reinterpret_cast<char*>(pub), len);
}

// ParseOpenSsh reads OpenSSH's private key format (PROTOCOL.key): magic,
// cipher, kdf, kdf options, key count, public blob, then the private section
// (two equal check words, type, public key, seed||public key, comment, pad).
// `seed` receives the 32-byte seed (its owner wipes it).
Status ParseOpenSsh(std::string_view text, SecretString* seed) {
  const size_t begin = text.find(kOpenSshBegin);
  const size_t end = text.find(kOpenSshEnd);
  if (begin == std::string_view::npos || end == std::string_view::npos || end < begin)
    return InvalidArgument("malformed OpenSSH private key (no BEGIN/END lines)");
  std::string_view body = text.substr(begin + kOpenSshBegin.size(), end - begin - kOpenSshBegin.size());
  SecretString decoded(body.size());
  if (!Base64Decode(body, &decoded.bytes)) return InvalidArgument("malformed OpenSSH private key (bad base64)");

  const Status malformed = InvalidArgument("malformed OpenSSH private key");
  WireReader r(decoded.bytes);
  std::string_view magic, cipher, kdf, kdf_options, public_blob, private_section;
  uint32_t count = 0;
  if (!r.Raw(kOpenSshMagic.size(), &magic) || magic != kOpenSshMagic) return malformed;
  if (!r.String(&cipher) || !r.String(&kdf) || !r.String(&kdf_options) || !r.U32(&count)) return malformed;
  if (cipher != "none" || kdf != "none")
    return InvalidArgument(
        "the private key is passphrase-protected; Warden needs an unencrypted key protected by file "
        "permissions (0600)");
  if (count != 1) return InvalidArgument("the key file holds " + std::to_string(count) + " keys; expected one");
  if (!r.String(&public_blob) || !r.String(&private_section) || !r.empty()) return malformed;

  WireReader pub(public_blob);
  std::string_view type, public_key;
  if (!pub.String(&type)) return malformed;
  if (type != kKeyType) return InvalidArgument("not an Ed25519 key (type " + std::string(type) + ")");
  if (!pub.String(&public_key) || public_key.size() != kKeyBytes || !pub.empty()) return malformed;

  WireReader priv(private_section);
  uint32_t check1 = 0, check2 = 0;
  std::string_view type2, public_key2, secret, comment, padding;
  if (!priv.U32(&check1) || !priv.U32(&check2) || check1 != check2) return malformed;
  if (!priv.String(&type2) || type2 != kKeyType || !priv.String(&public_key2) || public_key2 != public_key)
    return malformed;
  // OpenSSH stores the 32-byte seed followed by the 32-byte public key.
  if (!priv.String(&secret) || secret.size() != 2 * kKeyBytes || secret.substr(kKeyBytes) != public_key)
    return malformed;
  if (!priv.String(&comment)) return malformed;
  padding = priv.rest();
  for (size_t i = 0; i < padding.size(); ++i)
    if (static_cast<unsigned char>(padding[i]) != i + 1) return malformed;

  seed->bytes.assign(secret.substr(0, kKeyBytes));
  return Status::Ok();
}

}  // namespace

Ed25519Key::~Ed25519Key() { EVP_PKEY_free(pkey_); }  // OpenSSL cleanses the private key on free

Result<std::unique_ptr<Ed25519Key>> Ed25519Key::FromSeed(std::string_view seed) {
  if (seed.size() != kKeyBytes) return Internal("an Ed25519 seed has 32 bytes");
  EVP_PKEY* pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr,
                                                reinterpret_cast<const unsigned char*>(seed.data()), seed.size());
  if (pkey == nullptr) return OpenSslError("cannot make an Ed25519 key");
  Result<std::string> pub = RawPublicKey(pkey);
  if (!pub.ok()) {
    EVP_PKEY_free(pkey);
    return pub.status();
  }
  return std::unique_ptr<Ed25519Key>(new Ed25519Key(pkey, std::move(pub.value())));
}

Result<std::unique_ptr<Ed25519Key>> Ed25519Key::Generate() {
  SecretString seed(kKeyBytes);
  seed.bytes = RandomBytes(kKeyBytes);  // a 32-byte string is on the heap; moved in, so no copy survives
  return FromSeed(seed.bytes);
}

Result<std::unique_ptr<Ed25519Key>> Ed25519Key::FromPrivateKeyText(std::string_view text) {
  if (text.find(kOpenSshBegin) != std::string_view::npos) {
    SecretString seed(kKeyBytes);
    if (Status s = ParseOpenSsh(text, &seed); !s.ok()) return s;
    Result<std::unique_ptr<Ed25519Key>> key = FromSeed(seed.bytes);
    if (!key.ok()) return key.status();
    return key;
  }
  if (text.find(kPkcs8EncryptedBegin) != std::string_view::npos)
    return InvalidArgument(
        "the private key is passphrase-protected; Warden needs an unencrypted key protected by file "
        "permissions (0600)");
  if (text.find(kPkcs8Begin) == std::string_view::npos) {
    if (text.find("-----BEGIN ") != std::string_view::npos && text.find(" PRIVATE KEY-----") != std::string_view::npos)
      return InvalidArgument("not an Ed25519 key (an RSA, DSA or ECDSA key file?)");
    return InvalidArgument("not a private key in OpenSSH or PKCS#8 PEM format");
  }
  BIO* bio = BIO_new_mem_buf(text.data(), static_cast<int>(text.size()));
  if (bio == nullptr) return OpenSslError("cannot read the private key");
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio, nullptr, NoPassphrase, nullptr);
  BIO_free(bio);
  if (pkey == nullptr) {
    ERR_clear_error();
    return InvalidArgument("malformed PKCS#8 private key");
  }
  if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
    EVP_PKEY_free(pkey);
    return InvalidArgument("not an Ed25519 key");
  }
  Result<std::string> pub = RawPublicKey(pkey);
  if (!pub.ok()) {
    EVP_PKEY_free(pkey);
    return pub.status();
  }
  return std::unique_ptr<Ed25519Key>(new Ed25519Key(pkey, std::move(pub.value())));
}

std::string Ed25519PublicKeyBlob(std::string_view public_key) {
  std::string blob;
  WireWriter w(&blob);
  w.String(kKeyType);
  w.String(public_key);
  return blob;
}

std::string Ed25519PublicKeyLine(std::string_view public_key, std::string_view comment) {
  std::string line = std::string(kKeyType) + " " + Base64Encode(Ed25519PublicKeyBlob(public_key));
  if (!comment.empty()) line += " " + std::string(comment);
  return line;
}

bool VerifyEd25519(std::string_view public_key, std::string_view data, std::string_view signature) {
  if (public_key.size() != kKeyBytes || signature.size() != kSignatureBytes) return false;
  EVP_PKEY* pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                               reinterpret_cast<const unsigned char*>(public_key.data()), kKeyBytes);
  if (pkey == nullptr) {
    ERR_clear_error();
    return false;
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx != nullptr && EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, pkey) == 1 &&
            EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                             reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(pkey);
  ERR_clear_error();
  return ok;
}

std::string Ed25519Key::PublicKeyBlob() const { return Ed25519PublicKeyBlob(public_key_); }

std::string Ed25519Key::PublicKeyLine(std::string_view comment) const {
  return Ed25519PublicKeyLine(public_key_, comment);
}

std::string Ed25519Key::Fingerprint() const { return FingerprintOfBlob(PublicKeyBlob()); }

std::string FingerprintOfBlob(std::string_view blob) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(blob.data(), blob.size(), digest, &len, EVP_sha256(), nullptr) != 1) {
    ERR_clear_error();
    return "SHA256:?";
  }
  std::string b64 = Base64Encode(std::string_view(reinterpret_cast<char*>(digest), len));
  while (!b64.empty() && b64.back() == '=') b64.pop_back();
  return "SHA256:" + b64;
}

Result<std::string> Ed25519Key::Sign(std::string_view data) const {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) return OpenSslError("cannot sign");
  unsigned char sig[kSignatureBytes];
  size_t len = sizeof sig;
  // Ed25519 is one-shot: no digest, no DigestSignUpdate.
  bool ok = EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, pkey_) == 1 &&
            EVP_DigestSign(ctx, sig, &len, reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1 &&
            len == kSignatureBytes;
  EVP_MD_CTX_free(ctx);
  if (!ok) return OpenSslError("cannot sign with the Ed25519 key");
  return std::string(reinterpret_cast<char*>(sig), len);
}

Status Ed25519Key::WriteOpenSshPrivateKey(std::string_view comment, SecretString* out) const {
  Status status = Internal("cannot export the Ed25519 private key");
  unsigned char seed[kKeyBytes];
  size_t seed_len = sizeof seed;
  // Sizes are known, so every buffer is reserved once and never reallocates.
  SecretString section(64 + 2 * kKeyBytes + kKeyType.size() + comment.size() + 32);
  SecretString binary(128 + section.bytes.capacity() + kKeyBytes + kKeyType.size());
  do {
    if (EVP_PKEY_get_raw_private_key(pkey_, seed, &seed_len) != 1 || seed_len != kKeyBytes) {
      ERR_clear_error();
      break;
    }
    // The check words only detect a wrong passphrase; with no cipher any
    // value works, and a random one is what ssh-keygen writes.
    std::string check = RandomBytes(4);
    WireWriter s(&section.bytes);
    s.Raw(check);
    s.Raw(check);
    s.String(kKeyType);
    s.String(public_key_);
    s.U32(static_cast<uint32_t>(2 * kKeyBytes));
    s.Raw(std::string_view(reinterpret_cast<char*>(seed), kKeyBytes));
    s.Raw(public_key_);
    s.String(comment);
    for (char pad = 1; section.bytes.size() % 8 != 0; ++pad) section.bytes.push_back(pad);

    WireWriter b(&binary.bytes);
    b.Raw(kOpenSshMagic);
    b.String("none");
    b.String("none");
    b.String("");
    b.U32(1);
    b.String(PublicKeyBlob());
    b.String(section.bytes);

    const size_t b64_len = (binary.bytes.size() + 2) / 3 * 4;
    SecretString b64(b64_len);
    Base64Append(binary.bytes, &b64.bytes);
    out->Wipe();
    out->bytes.reserve(kOpenSshBegin.size() + kOpenSshEnd.size() + b64_len + b64_len / kPemLineLength + 4);
    out->bytes.append(kOpenSshBegin).push_back('\n');
    for (size_t i = 0; i < b64.bytes.size(); i += kPemLineLength)
      out->bytes.append(std::string_view(b64.bytes).substr(i, kPemLineLength)).push_back('\n');
    out->bytes.append(kOpenSshEnd).push_back('\n');
    status = Status::Ok();
  } while (false);
  OPENSSL_cleanse(seed, sizeof seed);
  return status;
}

}  // namespace warden::sshca
