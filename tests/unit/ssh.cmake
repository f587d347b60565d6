# sshca and ssh_run against a real OpenSSH sshd that each test starts on its
# own port (tests/unit/ssh_fixture.h); labelled `ssh` as well as `unit`.
add_library(warden_ssh_fixture STATIC unit/ssh_fixture.cc)
target_link_libraries(warden_ssh_fixture PUBLIC warden_tools warden_sshca PRIVATE warden_warnings)
warden_unit_test(sshca SOURCES unit/sshca_test.cc DEPS warden_ssh_fixture LABELS ssh)
warden_unit_test(ssh SOURCES unit/ssh_test.cc DEPS warden_ssh_fixture LABELS ssh)
warden_unit_test(ssh_config SOURCES unit/ssh_config_test.cc DEPS warden_ssh_fixture LABELS ssh)
