warden_unit_test(anonymizer SOURCES unit/anonymizer_test.cc DEPS warden_anonymizer)
