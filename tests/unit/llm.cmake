# Layer 2 (span mapping, chunking, cache, circuit breaker), the model client's
# bodies, D3 output validation, and the llm/layer2 config.
warden_unit_test(llm SOURCES unit/llm_test.cc unit/llm_config_test.cc DEPS warden_anonymizer LABELS llm)
