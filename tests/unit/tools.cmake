warden_unit_test(tools SOURCES unit/tools_process_test.cc unit/tools_git_test.cc DEPS warden_tools)
