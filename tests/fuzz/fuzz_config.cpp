// A config file an operator wrote: the first byte picks JSON or INI, the rest is the file.
// Parsing, finding regions and reading their settings may throw only dogpile's errors.
#include <dogpile/dogpile.hpp>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    const auto file = data[0] % 2 == 0 ? dogpile::parse_json_config(text, "fuzzed.json")
                                       : dogpile::parse_ini_config(text, "fuzzed.ini");
    for (const auto& section : file.sections) {
      const auto coerced = dogpile::coerce_string_conf(section.values);
      for (const auto& [key, value] : coerced) {
        (void)file.where(section, key);
        try {
          dogpile::parse_expiration_time(value);
        } catch (const dogpile::Error&) {
        }
        (void)dogpile::shown_value(key, value);
      }
    }
    for (const auto& spec : dogpile::find_regions(file, "")) (void)spec.name;
  } catch (const dogpile::Error&) {
  }
  return 0;
}
