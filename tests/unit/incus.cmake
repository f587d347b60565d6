# The pure parts of the Incus tools: config, scoping, names, paths, hashes.
# (The tools against a real incusd are the `incus` label's tests in tests/incus/.)
warden_unit_test(incus SOURCES unit/incus_test.cc DEPS warden_tools)
