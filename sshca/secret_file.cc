#include "sshca/secret_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace warden::sshca {
namespace {

std::string Errno(int e) { return std::strerror(e); }

std::string Octal(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

}  // namespace

Status ReadSecretFile(const std::string& path, std::string_view what, std::string_view missing_hint,
                      size_t max_bytes, SecretString* out) {
  const std::string name = std::string(what) + " " + path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT) return NotFound(name + " does not exist; " + std::string(missing_hint));
    return PermissionDenied("cannot open " + name + ": " + Errno(e));
  }
  Status status = Status::Ok();
  struct stat st {};
  // fstat of the open descriptor: the checks are about the file that is read,
  // not one a rename could put at the path in between.
  if (::fstat(fd, &st) != 0) {
    status = Unavailable("cannot stat " + name + ": " + Errno(errno));
  } else if (!S_ISREG(st.st_mode)) {
    status = InvalidArgument(name + " is not a regular file");
  } else if ((st.st_mode & 077) != 0) {
    status = PermissionDenied(name + " is accessible by group or others (mode " + Octal(st.st_mode) +
                              "); run chmod 600 " + path + " (in Kubernetes: defaultMode: 0400 on the Secret volume)");
  } else if (st.st_size <= 0 || static_cast<size_t>(st.st_size) > max_bytes) {
    status = InvalidArgument(name + " is empty or larger than " + std::to_string(max_bytes) + " bytes");
  } else {
    out->Wipe();
    out->bytes.reserve(static_cast<size_t>(st.st_size) + 1);
    out->bytes.resize(static_cast<size_t>(st.st_size));
    size_t got = 0;
    while (got < out->bytes.size()) {
      ssize_t n = ::read(fd, out->bytes.data() + got, out->bytes.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    out->bytes.resize(got);
    if (got == 0) status = Unavailable("cannot read " + name);
  }
  ::close(fd);
  return status;
}

}  // namespace warden::sshca
