// One config value as text: coerce_string_conf's rules, durations, and the argument look-ups
// plugins use on it.
#include <dogpile/dogpile.hpp>
#include <dogpile/sdk/sdk.hpp>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const nlohmann::json values[] = {nlohmann::json(text), dogpile::coerce_string_value(text)};
  for (const auto& value : values) {
    (void)dogpile::parse_duration_seconds(value);
    const dogpile::Arguments arguments({{"a", value}}, "cache.fuzz.arguments.");
    auto attempt = [](auto&& call) {
      try {
        call();
      } catch (const dogpile::Error&) {
      }
    };
    attempt([&] { arguments.find_seconds("a"); });
    attempt([&] { arguments.find<int>("a"); });
    attempt([&] { arguments.find<unsigned>("a"); });
    attempt([&] { arguments.find<bool>("a"); });
    attempt([&] { arguments.find<double>("a"); });
    attempt([&] { arguments.find<std::string>("a"); });
    attempt([&] { arguments.find<std::vector<std::string>>("a"); });
  }
  return 0;
}
