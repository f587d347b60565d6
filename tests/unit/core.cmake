warden_unit_test(core SOURCES unit/core_config_test.cc unit/core_json_schema_test.cc DEPS warden_core)
