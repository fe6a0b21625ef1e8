// The README's proxy plugin (tests/readme/slow_calls.cpp, loaded by its entry-point name as an
// application would): a call slower than threshold_ms is logged as a warning naming the
// operation and its keys; faster calls are not.
#define BOOST_TEST_MODULE readme_plugins
#include <boost/test/unit_test.hpp>
#include <dogpile/dogpile.hpp>

#include "../unit/log_capture.hpp"

namespace {

std::vector<std::string> warnings_after_a_get(double threshold_ms) {
  test::LogCapture capture;
  auto region = dogpile::make_region("slow");
  region->configure(
      "dogpile.cache.memory",
      {.wrap = {dogpile::ProxySpec("myapp.slow_calls", {{"threshold_ms", threshold_ms}})}});
  region->get<int>("k");
  std::vector<std::string> warnings;
  for (const auto& [severity, message] : capture.records()) {
    if (severity == test::Severity::warning) warnings.push_back(message);
  }
  return warnings;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_call_slower_than_the_threshold_is_logged) {
  const auto warnings = warnings_after_a_get(-1);  // every call is slower than that
  BOOST_TEST_REQUIRE(warnings.size() == 1U);
  BOOST_TEST(warnings[0].find("get of 1 keys took") != std::string::npos, warnings[0]);
}

BOOST_AUTO_TEST_CASE(faster_calls_are_not) {
  BOOST_TEST(warnings_after_a_get(60'000).empty());
}
