// Arguments are a plugin's configuration, as the region's config gave them
// (`cache.local.arguments.port = 6379` arrives as "port" -> 6379), already coerced by
// dogpile.cache's coerce_string_conf rules.
//
// A plugin reads each argument it knows with a typed look-up; the core then rejects any
// argument nobody read, so a typo (`distibuted_lock`) is an error instead of a silently
// missing feature. Every error names the full config key, e.g.
// `cache.shared.arguments.port`. Not thread-safe: a plugin reads its arguments while it is
// being constructed.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "dogpile/sdk/export.hpp"

namespace dogpile {

class DOGPILE_API Arguments {
 public:
  Arguments() = default;
  // `values` is a JSON object of name -> value; `key_prefix` is how the names appear in the
  // config (e.g. "cache.local.arguments."), used in error messages.
  explicit Arguments(nlohmann::json values, std::string key_prefix = {});

  // Typed look-up with a default. T is one of bool, int, long, long long, unsigned,
  // unsigned long, double, std::string, std::vector<std::string> (a JSON list of strings, or
  // a string of comma-separated items, trimmed). Throws ValidationError naming the key when
  // the value has another type. An argument explicitly set to None/null reads as the default.
  template <class T>
  T get(std::string_view name, T fallback) const;
  // A string literal default reads as std::string.
  std::string get(std::string_view name, const char* fallback) const {
    return get<std::string>(name, std::string(fallback));
  }

  // Typed look-up of an argument that may be absent.
  template <class T>
  std::optional<T> find(std::string_view name) const;

  // Typed look-up of a required argument; throws ValidationError naming the key if absent.
  template <class T>
  T require(std::string_view name) const;

  // A duration in seconds: a number, or a string such as "90s", "5m", "2h", "1d", "250ms".
  // Refused with ValidationError naming the key: negative, not finite, longer than
  // kLongestDuration, or above zero but below `resolution` (the finest time the argument is
  // used at, where it would round to zero).
  std::optional<double> find_seconds(std::string_view name, double resolution = 1e-3) const;
  // A count (threads, connections, attempts): an integer from `low` to `high`, the range the
  // plugin documents; anything else is refused with ValidationError naming the key, so that a
  // config cannot ask for 20,000 threads.
  std::optional<unsigned long> find_count(std::string_view name, unsigned long low,
                                          unsigned long high) const;

  bool contains(std::string_view name) const;
  // The argument as given, for a plugin that reads a shape the typed look-ups do not (a list
  // of mixed items); counts as read. nullptr when absent or null.
  const nlohmann::json* find_json(std::string_view name) const { return lookup(name); }

  // The arguments nested under `name` (`name: {...}`, or the flat keys `name.<argument>` a
  // config file gives), for a plugin that makes another plugin with them: they count as read
  // here, and the section's own look-ups and reject_unknown name them `<prefix>name.<argument>`.
  // Throws ValidationError when `name` is neither absent nor an object.
  Arguments section(std::string_view name) const;

  // An argument Python dogpile.cache accepts that has no meaning here: accepted, with a
  // warning that says why it is ignored.
  void ignore(std::string_view name, std::string_view why) const;

  // The full config key of an argument, for messages.
  std::string key(std::string_view name) const;

  // Throws ValidationError for every argument no look-up asked for, naming the first one,
  // the plugin, the closest known name and the arguments that are known.
  void reject_unknown(std::string_view plugin_name) const;
  // That error's text, or empty when every argument was asked for.
  std::string unknown_argument_message(std::string_view plugin_name) const;

  const nlohmann::json& values() const noexcept { return values_; }

 private:
  const nlohmann::json* lookup(std::string_view name) const;

  nlohmann::json values_ = nlohmann::json::object();
  std::string key_prefix_;
  mutable std::set<std::string, std::less<>> asked_;
};

// The one of `names` closest to `name`, at most two edits away, for "did you mean"; nullopt
// when none is that close.
DOGPILE_API std::optional<std::string_view> closest_name(
    std::string_view name, const std::vector<std::string_view>& names);

// Parses a duration: a number of seconds, or a string "<number><unit>" with unit ms, s, m,
// h or d. Returns nullopt for anything else, and for a result that is not finite.
DOGPILE_API std::optional<double> parse_duration_seconds(const nlohmann::json& value);

// The longest duration an argument or expiration time takes: about 31 years. Longer ones are
// refused instead of overflowing a timeout or meaning "never" by accident (-1 says never).
inline constexpr double kLongestDuration = 1e9;

// How messages show a config or argument value: as JSON (bytes that are not UTF-8 replaced),
// at most about 80 characters; the value of a key that may hold a secret (its last part names
// a url, password, username, secret, token or *_kwargs) is never shown, only its type.
DOGPILE_API std::string shown_value(std::string_view key, const nlohmann::json& value);

}  // namespace dogpile
