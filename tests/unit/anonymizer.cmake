warden_unit_test(anonymizer SOURCES unit/anonymizer_test.cc unit/anonymizer_rules_test.cc DEPS warden_anonymizer)
