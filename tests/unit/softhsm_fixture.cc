// The SoftHSM2 token fixture: see softhsm_fixture.h.
#include "tests/unit/softhsm_fixture.h"

#include <unistd.h>

#include <cstdlib>

namespace warden::testing {

std::string SoftHsm::ModulePath() {
  for (const char* p : {"/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"})
    if (::access(p, R_OK) == 0) return p;
  return "/usr/lib/softhsm/libsofthsm2.so";
}

bool SoftHsm::Available() {
  return ::access(ModulePath().c_str(), R_OK) == 0 && ::access("/usr/bin/softhsm2-util", X_OK) == 0;
}

Result<std::unique_ptr<SoftHsm>> SoftHsm::Start(const std::string& label) {
  std::unique_ptr<SoftHsm> h(new SoftHsm());
  h->dir_ = std::make_unique<TempDir>("warden-softhsm");
  h->label_ = label;
  fs::create_directories(h->dir() / "tokens");
  WriteFile(h->conf(),
            "directories.tokendir = " + (h->dir() / "tokens").string() +
                "\n"
                "objectstore.backend = file\n"
                "log.level = ERROR\n"
                "slots.removable = false\n",
            fs::perms(0600));
  WriteFile(h->pin_file(), h->pin_ + "\n", fs::perms(0600));
  if (const char* old = std::getenv("SOFTHSM2_CONF")) {
    h->had_conf_ = true;
    h->old_conf_ = old;
  }
  ::setenv("SOFTHSM2_CONF", h->conf().c_str(), 1);
  CommandResult init = h->Tool({"softhsm2-util", "--init-token", "--free", "--label", label, "--pin", h->pin_,
                                "--so-pin", h->so_pin_});
  if (init.status != 0) return Unavailable("softhsm2-util --init-token failed: " + init.out + init.err);
  return h;
}

SoftHsm::~SoftHsm() {
  if (had_conf_)
    ::setenv("SOFTHSM2_CONF", old_conf_.c_str(), 1);
  else
    ::unsetenv("SOFTHSM2_CONF");
}

std::string SoftHsm::Uri(const std::string& object) const { return "pkcs11:token=" + label_ + ";object=" + object; }

sshca::Pkcs11Options SoftHsm::Options(const std::string& object) const {
  return {Uri(object), ModulePath(), pin_file()};
}

sshca::CaKeySource SoftHsm::Source(const std::string& object) const {
  return {Uri(object), ModulePath(), pin_file()};
}

Result<std::unique_ptr<sshca::CertificateAuthority>> SoftHsm::CreateCa(const std::string& object) const {
  Result<std::string> line = sshca::CreateCaKey(Source(object));
  if (!line.ok()) return line.status();
  return sshca::CertificateAuthority::Open(Source(object));
}

CommandResult SoftHsm::Tool(const std::vector<std::string>& argv) const {
  return Run(argv, {{"SOFTHSM2_CONF", conf()}});
}

}  // namespace warden::testing
