// sshca/secret_file.h: reading a small file that holds a secret (the CA key
// file, a PKCS#11 PIN file) with the checks every such file gets. Internal to
// sshca/.
//
// Trust: the path is operator input; the file's bytes are secret and never
// appear in a message. Symlinks are followed (a Kubernetes Secret mount is
// a chain of symlinks); the checks apply to the file reached.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/result.h"
#include "sshca/wire.h"

namespace warden::sshca {

// ReadSecretFile replaces out->bytes with the file's contents, reserving the
// file's size first so that nothing reallocates (and leaves a copy behind).
// `what` names the file in messages ("CA key file", "PKCS#11 PIN file");
// `missing_hint` ends the NotFound message. Errors: NotFound (no such file),
// PermissionDenied (group or others have any access: mode & 077, with the
// chmod to run; or it cannot be opened), InvalidArgument (not a regular
// file, empty, or larger than `max_bytes`), Unavailable (read errors).
Status ReadSecretFile(const std::string& path, std::string_view what, std::string_view missing_hint,
                      size_t max_bytes, SecretString* out);

}  // namespace warden::sshca
