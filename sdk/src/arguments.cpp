#include "dogpile/sdk/arguments.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "dogpile/sdk/errors.hpp"
#include "dogpile/sdk/log.hpp"
#include "dogpile/sdk/value.hpp"

namespace dogpile {

Arguments::Arguments(nlohmann::json values, std::string key_prefix)
    : values_(std::move(values)), key_prefix_(std::move(key_prefix)) {
  if (values_.is_null()) values_ = nlohmann::json::object();
  if (!values_.is_object()) {
    throw ValidationError("arguments" +
                          (key_prefix_.empty() ? std::string() : " (" + key_prefix_ + "*)") +
                          " must be a mapping of names to values, not a " + values_.type_name());
  }
}

std::string Arguments::key(std::string_view name) const { return key_prefix_ + std::string(name); }

Arguments Arguments::section(std::string_view name) const {
  nlohmann::json values = nlohmann::json::object();
  if (const nlohmann::json* whole = lookup(name); whole != nullptr && !whole->is_null()) {
    if (!whole->is_object()) {
      throw ValidationError(key(name) + " must be an object of arguments, not a " +
                            whole->type_name());
    }
    values = *whole;
  }
  const std::string dotted = std::string(name) + ".";
  for (const auto& item : values_.items()) {
    if (item.key().size() > dotted.size() && item.key().starts_with(dotted)) {
      asked_.emplace(item.key());
      values[item.key().substr(dotted.size())] = item.value();
    }
  }
  return Arguments(std::move(values), key_prefix_ + dotted);
}

bool Arguments::contains(std::string_view name) const {
  return values_.contains(std::string(name));
}

const nlohmann::json* Arguments::lookup(std::string_view name) const {
  asked_.emplace(name);
  auto it = values_.find(std::string(name));
  if (it == values_.end() || it->is_null()) return nullptr;
  return &*it;
}

namespace {

template <class T>
T convert(const nlohmann::json& value, const std::string& key) {
  auto fail = [&](const char* what) -> T {
    throw ValidationError(key + " must be " + what + ", not " + shown_value(key, value));
  };
  if constexpr (std::is_same_v<T, bool>) {
    if (value.is_boolean()) return value.get<bool>();
    if (value.is_number_integer() && (value == 0 || value == 1)) return value == 1;
    return fail("true or false");
  } else if constexpr (std::is_integral_v<T>) {
    if (value.is_number_integer()) {
      if (std::is_unsigned_v<T> && value.is_number_integer() && !value.is_number_unsigned() &&
          value.get<long long>() < 0) {
        return fail("a non-negative integer");
      }
      return value.get<T>();
    }
    if (value.is_number_float()) {
      double d = value.get<double>();
      if (std::trunc(d) == d && d >= static_cast<double>(std::numeric_limits<T>::min()) &&
          d <= static_cast<double>(std::numeric_limits<T>::max())) {
        return static_cast<T>(d);
      }
    }
    return fail(std::is_unsigned_v<T> ? "a non-negative integer" : "an integer");
  } else if constexpr (std::is_floating_point_v<T>) {
    if (value.is_number()) return value.get<T>();
    return fail("a number");
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    // A list of strings, or one string of comma-separated items (an INI value).
    T items;
    if (value.is_array()) {
      for (const auto& item : value) {
        if (!item.is_string()) return fail("a list of strings");
        items.push_back(item.get<std::string>());
      }
      return items;
    }
    if (!value.is_string()) return fail("a string or a list of strings");
    const std::string text = value.get<std::string>();
    std::string_view rest = text;
    for (;;) {
      const std::size_t comma = rest.find(',');
      std::string_view item = rest.substr(0, comma);
      const std::size_t first = item.find_first_not_of(" \t\r\n");
      if (first != std::string_view::npos) {
        item = item.substr(first, item.find_last_not_of(" \t\r\n") - first + 1);
        items.emplace_back(item);
      }
      if (comma == std::string_view::npos) return items;
      rest.remove_prefix(comma + 1);
    }
  } else {
    static_assert(std::is_same_v<T, std::string>);
    if (value.is_string()) return value.get<std::string>();
    // coerce_string_conf turned "1234" into a number; a string argument gets its text back.
    if (value.is_number() || value.is_boolean()) return value.dump();
    return fail("a string");
  }
}

}  // namespace

template <class T>
std::optional<T> Arguments::find(std::string_view name) const {
  const nlohmann::json* value = lookup(name);
  if (value == nullptr) return std::nullopt;
  return convert<T>(*value, key(name));
}

template <class T>
T Arguments::get(std::string_view name, T fallback) const {
  auto value = find<T>(name);
  return value ? *value : fallback;
}

template <class T>
T Arguments::require(std::string_view name) const {
  auto value = find<T>(name);
  if (!value) throw ValidationError("missing required argument " + key(name));
  return *value;
}

#define DOGPILE_INSTANTIATE_ARGUMENT(T)                                 \
  template std::optional<T> Arguments::find<T>(std::string_view) const; \
  template T Arguments::get<T>(std::string_view, T) const;              \
  template T Arguments::require<T>(std::string_view) const;

DOGPILE_INSTANTIATE_ARGUMENT(bool)
DOGPILE_INSTANTIATE_ARGUMENT(int)
DOGPILE_INSTANTIATE_ARGUMENT(long)
DOGPILE_INSTANTIATE_ARGUMENT(long long)
DOGPILE_INSTANTIATE_ARGUMENT(unsigned)
DOGPILE_INSTANTIATE_ARGUMENT(unsigned long)
DOGPILE_INSTANTIATE_ARGUMENT(double)
DOGPILE_INSTANTIATE_ARGUMENT(std::string)
DOGPILE_INSTANTIATE_ARGUMENT(std::vector<std::string>)
#undef DOGPILE_INSTANTIATE_ARGUMENT

std::optional<double> Arguments::find_seconds(std::string_view name, double resolution) const {
  const nlohmann::json* value = lookup(name);
  if (value == nullptr) return std::nullopt;
  auto seconds = parse_duration_seconds(*value);
  if (!seconds || *seconds < 0) {
    throw ValidationError(key(name) +
                          " must be a non-negative number of seconds or a duration such as "
                          "\"250ms\", \"90s\", \"5m\", \"2h\", \"1d\", not " +
                          shown_value(key(name), *value));
  }
  if (*seconds > kLongestDuration) {
    throw ValidationError(key(name) + " must be at most " + python_float_repr(kLongestDuration) +
                          " seconds (about 31 years), not " + shown_value(key(name), *value));
  }
  if (*seconds > 0 && *seconds < resolution) {
    throw ValidationError(key(name) + " is " + python_float_repr(*seconds) +
                          " seconds, below its resolution of " + python_float_repr(resolution) +
                          " seconds, where it would round to zero");
  }
  return seconds;
}

std::optional<unsigned long> Arguments::find_count(std::string_view name, unsigned long low,
                                                   unsigned long high) const {
  const nlohmann::json* value = lookup(name);
  if (value == nullptr) return std::nullopt;
  std::optional<unsigned long> count;
  if (value->is_number_unsigned()) {
    count = value->get<unsigned long>();
  } else if (value->is_number_integer() && value->get<long long>() >= 0) {
    count = static_cast<unsigned long>(value->get<long long>());
  }
  if (count && *count >= low && *count <= high) return count;
  throw ValidationError(key(name) + " must be an integer from " + std::to_string(low) + " to " +
                        std::to_string(high) + ", not " + shown_value(key(name), *value));
}

void Arguments::ignore(std::string_view name, std::string_view why) const {
  asked_.emplace(name);
  if (contains(name)) {
    log(LogLevel::warning, "arguments",
        key(name) + " is accepted for compatibility with Python dogpile.cache and ignored: " +
            std::string(why));
  }
}

namespace {

// Levenshtein distance, for "did you mean": names are short.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

std::optional<std::string_view> closest_name(std::string_view name,
                                             const std::vector<std::string_view>& names) {
  std::optional<std::string_view> closest;
  std::size_t best = 3;  // at most 2 edits away
  for (const auto candidate : names) {
    if (const std::size_t d = edit_distance(name, candidate); d < best) {
      best = d;
      closest = candidate;
    }
  }
  return closest;
}

std::string Arguments::unknown_argument_message(std::string_view plugin_name) const {
  for (const auto& item : values_.items()) {
    if (asked_.count(item.key()) != 0) continue;
    std::string known;
    const std::vector<std::string_view> names(asked_.begin(), asked_.end());
    for (const auto& name : asked_) known += (known.empty() ? "" : ", ") + name;
    const auto closest = closest_name(item.key(), names);
    return "unknown argument " + key(item.key()) + " for " + std::string(plugin_name) +
           (closest ? " (did you mean " + std::string(*closest) + "?)" : "") + " (" +
           (known.empty() ? std::string("it takes no arguments") : "its arguments are: " + known) +
           ")";
  }
  return {};
}

void Arguments::reject_unknown(std::string_view plugin_name) const {
  if (std::string message = unknown_argument_message(plugin_name); !message.empty()) {
    throw ValidationError(message);
  }
}

namespace {

std::optional<double> duration_seconds(const nlohmann::json& value) {
  if (value.is_number()) return value.get<double>();
  if (!value.is_string()) return std::nullopt;
  const std::string& text = value.get_ref<const std::string&>();
  double number = 0;
  const char* begin = text.data();
  const char* end = begin + text.size();
  auto [rest, ec] = std::from_chars(begin, end, number);
  if (ec != std::errc() || rest == begin) return std::nullopt;
  std::string_view unit(rest, static_cast<std::size_t>(end - rest));
  if (unit.empty() || unit == "s") return number;
  if (unit == "ms") return number / 1000.0;
  if (unit == "m") return number * 60.0;
  if (unit == "h") return number * 3600.0;
  if (unit == "d") return number * 86400.0;
  return std::nullopt;
}

bool may_hold_secret(std::string_view key) {
  std::string last(key.substr(key.rfind('.') == std::string_view::npos ? 0 : key.rfind('.') + 1));
  std::transform(last.begin(), last.end(), last.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (std::string_view word : {"url", "password", "username", "secret", "token", "kwargs"}) {
    if (last.find(word) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

std::optional<double> parse_duration_seconds(const nlohmann::json& value) {
  auto seconds = duration_seconds(value);
  if (seconds && !std::isfinite(*seconds)) return std::nullopt;
  return seconds;
}

std::string shown_value(std::string_view key, const nlohmann::json& value) {
  if (may_hold_secret(key)) {
    return std::string("a value of type ") + value.type_name() +
           " (not shown: it may hold a secret)";
  }
  constexpr std::size_t kLongest = 80;
  std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (text.size() > kLongest) {
    // Cut on a character boundary: never in the middle of a UTF-8 sequence.
    std::size_t cut = kLongest;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    text = text.substr(0, cut) + "... (" + std::to_string(text.size()) + " characters)";
  }
  return text;
}

}  // namespace dogpile
