// Test-only shared object with no dogpile entry point at all.
extern "C" __attribute__((visibility("default"))) int dogpile_test_not_a_plugin() { return 42; }
