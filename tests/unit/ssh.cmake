# sshca and ssh_run against a real OpenSSH sshd that each test starts on its
# own port (tests/unit/ssh_fixture.h); labelled `ssh` as well as `unit`. The CA
# key in a PKCS#11 token runs against SoftHSM2 with a scratch token store per
# test (tests/unit/softhsm_fixture.h); those tests are labelled `pkcs11` too.
add_library(warden_ssh_fixture STATIC unit/ssh_fixture.cc unit/softhsm_fixture.cc)
target_link_libraries(warden_ssh_fixture PUBLIC warden_tools warden_sshca PRIVATE warden_warnings)
warden_unit_test(sshca SOURCES unit/sshca_test.cc DEPS warden_ssh_fixture LABELS ssh)
warden_unit_test(sshca_pkcs11 SOURCES unit/sshca_pkcs11_test.cc DEPS warden_ssh_fixture LABELS "ssh;pkcs11")
warden_unit_test(ssh SOURCES unit/ssh_test.cc DEPS warden_ssh_fixture LABELS ssh)
warden_unit_test(ssh_config SOURCES unit/ssh_config_test.cc DEPS warden_ssh_fixture LABELS ssh)
