// tests/unit/softhsm_fixture.h: a real PKCS#11 token for the tests and
// bench/ssh_bench.cc: SoftHSM2 (Debian's softhsm2) with its token store in a
// fresh scratch directory, so that no state outside that directory is read,
// used or left behind.
//
// Start() writes <dir>/softhsm2.conf (tokendir <dir>/tokens), points this
// process's SOFTHSM2_CONF at it (SoftHSM reads it at C_Initialize; the
// destructor restores the previous value), and initialises one token with
// softhsm2-util --init-token, user PIN in <dir>/pin (mode 0600).
//
// Free of Catch2 (the bench uses it too): failures come back as Status.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "sshca/ca.h"
#include "sshca/pkcs11_signer.h"
#include "tests/unit/ssh_fixture.h"
#include "tests/unit/temp_dir.h"

namespace warden::testing {

class SoftHsm {
 public:
  // ModulePath is SoftHSM2's PKCS#11 library; Available() tells whether it
  // and softhsm2-util are installed (scripts/setup.sh --tests installs them).
  static std::string ModulePath();
  static bool Available();

  // Start makes the directory and the token labelled `label`.
  // Errors: Unavailable with softhsm2-util's output.
  static Result<std::unique_ptr<SoftHsm>> Start(const std::string& label = "warden-ca");
  ~SoftHsm();

  const fs::path& dir() const { return dir_->path(); }
  const std::string& label() const { return label_; }
  const std::string& pin() const { return pin_; }
  const std::string& so_pin() const { return so_pin_; }
  std::string pin_file() const { return (dir() / "pin").string(); }
  std::string conf() const { return (dir() / "softhsm2.conf").string(); }

  // Uri is "pkcs11:token=<label>;object=<object>".
  std::string Uri(const std::string& object = "ca") const;
  // Options are the URI with the module and the PIN file, as a config gives them.
  sshca::Pkcs11Options Options(const std::string& object = "ca") const;
  // Source is the same as an sshca::CaKeySource (ssh.ca_key and its keys).
  sshca::CaKeySource Source(const std::string& object = "ca") const;

  // CreateCa generates the key in the token (`warden ca init --pkcs11`) and
  // opens a CertificateAuthority on it.
  Result<std::unique_ptr<sshca::CertificateAuthority>> CreateCa(const std::string& object = "ca") const;

  // Tool runs one of SoftHSM's or OpenSC's tools with SOFTHSM2_CONF set
  // (another process acting on the token, as an operator would).
  CommandResult Tool(const std::vector<std::string>& argv) const;

 private:
  SoftHsm() = default;
  std::unique_ptr<TempDir> dir_;
  std::string label_;
  std::string pin_ = "1234-warden";
  std::string so_pin_ = "5678-warden-so";
  bool had_conf_ = false;
  std::string old_conf_;
};

}  // namespace warden::testing
