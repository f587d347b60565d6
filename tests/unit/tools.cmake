warden_unit_test(tools SOURCES unit/tools_process_test.cc unit/tools_git_test.cc unit/tools_git_hostile_test.cc unit/tools_sandbox_test.cc DEPS warden_tools)
