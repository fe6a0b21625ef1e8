#include "dogpile/keys.hpp"

#include <algorithm>
#include <charconv>

#include "dogpile/sdk/errors.hpp"

namespace dogpile {

namespace {

std::string prefix_of(std::string_view name, const std::optional<std::string>& namespace_name) {
  std::string out(name);
  if (namespace_name) {
    out += '|';
    out += *namespace_name;
  }
  out += '|';
  return out;
}

}  // namespace

std::string function_key_generator(std::string_view name,
                                   const std::optional<std::string>& namespace_name,
                                   const std::vector<std::string>& arguments) {
  std::string key = prefix_of(name, namespace_name);
  for (std::size_t i = 0; i < arguments.size(); ++i) {
    if (i > 0) key += ' ';
    key += arguments[i];
  }
  return key;
}

std::vector<std::string> function_multi_key_generator(
    std::string_view name, const std::optional<std::string>& namespace_name,
    const std::vector<std::string>& arguments) {
  const std::string prefix = prefix_of(name, namespace_name);
  std::vector<std::string> keys;
  keys.reserve(arguments.size());
  for (const auto& argument : arguments) keys.push_back(prefix + argument);
  return keys;
}


KeyMangler length_conditional_mangler(std::size_t length, KeyMangler mangler) {
  return [length, mangler = std::move(mangler)](std::string_view key) {
    // Bytes bound code points from above: only a key of enough bytes needs counting.
    if (key.size() < length) return std::string(key);
    const auto code_points = std::count_if(key.begin(), key.end(), [](char c) {
      return (static_cast<unsigned char>(c) & 0xC0) != 0x80;  // not a continuation byte
    });
    return static_cast<std::size_t>(code_points) >= length ? mangler(key) : std::string(key);
  };
}

KeyMangler key_mangler_from_config(std::string_view spec, std::string_view config_key) {
  if (spec == "sha1") return sha1_mangle_key;
  if (spec.starts_with("sha1:")) {
    std::string_view digits = spec.substr(5);
    std::size_t length = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), length);
    if (ec == std::errc() && end == digits.data() + digits.size() && length > 0) {
      return length_conditional_mangler(length, sha1_mangle_key);
    }
  }
  throw ValidationError(std::string(config_key) + " must be sha1 or sha1:LENGTH, not '" +
                        std::string(spec) + "'");
}

}  // namespace dogpile
