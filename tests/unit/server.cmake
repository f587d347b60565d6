warden_unit_test(server SOURCES unit/server_envelope_test.cc unit/server_pipeline_test.cc DEPS warden_server)
warden_unit_test(storage SOURCES unit/storage_test.cc DEPS warden_storage)
