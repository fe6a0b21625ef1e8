// dogpile.proxy.logging: logs each backend call that passes through it (kind, key, hit or
// miss, latency) on the "dogpile" channel at a configurable level. Values are never logged;
// keys can be logged in full, hashed, or truncated. When the level is disabled the proxy only
// forwards.
#include <chrono>
#include <cstdio>
#include <dogpile/sdk/sdk.hpp>
#include <exception>
#include <type_traits>

namespace dogpile::logging_proxy {

namespace {

using Clock = std::chrono::steady_clock;

LogLevel level_argument(const Arguments& arguments) {
  const std::string text = arguments.get<std::string>("level", "debug");
  const std::pair<const char*, LogLevel> levels[] = {{"trace", LogLevel::trace},
                                                     {"debug", LogLevel::debug},
                                                     {"info", LogLevel::info},
                                                     {"warning", LogLevel::warning},
                                                     {"error", LogLevel::error}};
  for (const auto& [name, level] : levels) {
    if (text == name) return level;
  }
  throw ValidationError(arguments.key("level") +
                        " must be trace, debug, info, warning or error, not '" + text + "'");
}

enum class KeyStyle { full, hash, truncate };

KeyStyle key_style_argument(const Arguments& arguments) {
  const std::string text = arguments.get<std::string>("keys", "full");
  if (text == "full") return KeyStyle::full;
  if (text == "hash") return KeyStyle::hash;
  if (text == "truncate") return KeyStyle::truncate;
  throw ValidationError(arguments.key("keys") + " must be full, hash or truncate, not '" + text +
                        "'");
}

class LoggingProxy final : public ProxyBackend {
 public:
  explicit LoggingProxy(const Arguments& arguments)
      : level_(level_argument(arguments)),
        key_style_(key_style_argument(arguments)),
        max_key_length_(arguments.get("max_key_length", 64u)) {}

  CachedValuePtr get(std::string_view key) override {
    return logged(
        "get", key, [&] { return ProxyBackend::get(key); },
        [](const CachedValuePtr& v) { return v ? " hit" : " miss"; });
  }
  std::vector<CachedValuePtr> get_multi(const Keys& keys) override {
    return logged_multi("get_multi", keys, [&] { return ProxyBackend::get_multi(keys); });
  }
  void set(const std::string& key, CachedValuePtr value) override {
    logged("set", key, [&] { ProxyBackend::set(key, std::move(value)); });
  }
  void set_multi(const ValueMapping& mapping) override {
    logged(
        "set_multi", {}, [&] { ProxyBackend::set_multi(mapping); }, nullptr, keys_text(mapping));
  }
  std::optional<std::string> get_serialized(std::string_view key) override {
    return logged(
        "get_serialized", key, [&] { return ProxyBackend::get_serialized(key); },
        [](const std::optional<std::string>& v) { return v ? " hit" : " miss"; });
  }
  SerializedValues get_serialized_multi(const Keys& keys) override {
    return logged_multi("get_serialized_multi", keys,
                        [&] { return ProxyBackend::get_serialized_multi(keys); });
  }
  void set_serialized(const std::string& key, std::string_view value) override {
    logged("set_serialized", key, [&] { ProxyBackend::set_serialized(key, value); });
  }
  void set_serialized_multi(const SerializedMapping& mapping) override {
    logged(
        "set_serialized_multi", {}, [&] { ProxyBackend::set_serialized_multi(mapping); }, nullptr,
        keys_text(mapping));
  }
  void remove(std::string_view key) override {
    logged("remove", key, [&] { ProxyBackend::remove(key); });
  }
  void remove_multi(const Keys& keys) override {
    logged(
        "remove_multi", {}, [&] { ProxyBackend::remove_multi(keys); }, nullptr, keys_text(keys));
  }
  std::unique_ptr<CacheMutex> get_mutex(std::string_view key) override {
    return logged("get_mutex", key, [&] { return ProxyBackend::get_mutex(key); });
  }

 private:
  // "<n> keys [k1, k2, …]": the keys of a multi call (or of a mapping's pairs) as the options
  // allow, the first 16 of them.
  template <class Sequence>
  std::string keys_text(const Sequence& items) const {
    constexpr std::size_t kListed = 16;
    std::string out = std::to_string(items.size()) + " keys [";
    std::size_t n = 0;
    for (const auto& item : items) {
      if (n == kListed) {
        out += ", ...";
        break;
      }
      if (n++ != 0) out += ", ";
      if constexpr (std::is_convertible_v<decltype(item), std::string_view>) {
        out += shown(item);
      } else {
        out += shown(item.first);
      }
    }
    return out + "]";
  }

  // The key as the options allow it in a log line.
  std::string shown(std::string_view key) const {
    switch (key_style_) {
      case KeyStyle::full:
        return std::string(key);
      case KeyStyle::hash: {
        std::uint64_t hash = 14695981039346656037ull;  // FNV-1a: stable across runs
        for (unsigned char c : key) hash = (hash ^ c) * 1099511628211ull;
        char text[20];
        std::snprintf(text, sizeof text, "#%016llx", static_cast<unsigned long long>(hash));
        return text;
      }
      case KeyStyle::truncate:
        return key.size() <= max_key_length_ ? std::string(key)
                                             : std::string(key.substr(0, max_key_length_)) + "...";
    }
    return {};
  }

  static std::string milliseconds(Clock::time_point start) {
    char text[32];
    std::snprintf(text, sizeof text, " %.3f ms",
                  std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    return text;
  }

  // Runs `call`, then logs "<operation> <key>[<outcome>] <latency>", or the failure. `key` is
  // a single key, shown as the options say; `subject` (when `key` is empty) the keys of a
  // multi call.
  template <class Call, class Outcome = std::nullptr_t>
  auto logged(const char* operation, std::string_view key, Call&& call, Outcome outcome = nullptr,
              std::string_view subject = {}) -> std::invoke_result_t<Call&> {
    if (!log_enabled(level_)) return call();
    const std::string what =
        std::string(operation) + " " + (subject.empty() ? shown(key) : std::string(subject));
    const auto start = Clock::now();
    try {
      if constexpr (std::is_void_v<decltype(call())>) {
        call();
        log(level_, "dogpile.proxy.logging", what + milliseconds(start));
      } else {
        auto result = call();
        std::string line = what;
        if constexpr (!std::is_same_v<Outcome, std::nullptr_t>) line += outcome(result);
        log(level_, "dogpile.proxy.logging", line + milliseconds(start));
        return result;
      }
    } catch (const std::exception& e) {
      log(LogLevel::error, "dogpile.proxy.logging",
          what + " failed after" + milliseconds(start) + ": " + e.what());
      throw;
    }
  }

  template <class Call>
  auto logged_multi(const char* operation, const Keys& keys, Call&& call)
      -> std::invoke_result_t<Call&> {
    auto count_hits = [](const auto& values) {
      std::size_t hits = 0;
      for (const auto& v : values) hits += static_cast<bool>(v);
      return " hits=" + std::to_string(hits) + " misses=" + std::to_string(values.size() - hits);
    };
    return logged(operation, {}, std::forward<Call>(call), count_hits, keys_text(keys));
  }

  const LogLevel level_;
  const KeyStyle key_style_;
  const unsigned max_key_length_;
};

}  // namespace

}  // namespace dogpile::logging_proxy

DOGPILE_PROXY_PLUGIN(logging, "dogpile.proxy.logging", "1.0.0",
                     "Logs each backend call (kind, key, hit/miss, latency), never values",
                     dogpile::logging_proxy::LoggingProxy);
