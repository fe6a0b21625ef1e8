// dogpile.proxy.logging: logs each backend call that passes through it (kind, key, hit or
// miss, latency) on the "dogpile" channel at a configurable level. Values are never logged;
// keys can be logged in full, hashed, or truncated. When the level is disabled the proxy only
// forwards.
#include <chrono>
#include <cstdio>
#include <dogpile/sdk/sdk.hpp>
#include <exception>

namespace dogpile::logging_proxy {

namespace {

using Clock = std::chrono::steady_clock;

LogLevel level_argument(const Arguments& arguments) {
  const std::string text = arguments.get<std::string>("level", "debug");
  const auto level = parse_log_level(text);
  if (!level || *level == LogLevel::off) {
    throw ValidationError(arguments.key("level") +
                          " must be trace, debug, info, warning or error, not '" + text + "'");
  }
  return *level;
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

class LoggingProxy final : public InterceptingProxy {
 public:
  explicit LoggingProxy(const Arguments& arguments)
      : level_(level_argument(arguments)),
        key_style_(key_style_argument(arguments)),
        max_key_length_(arguments.find_count("max_key_length", 1, 65536).value_or(64)) {}

 protected:
  // Forwards the call, then logs "<operation> <keys>[ <outcome>] <latency>", or the failure.
  void intercept(ProxiedCall& call) override {
    if (!log_enabled(level_)) return call.proceed();
    std::string what = operation_name(call.operation());
    if (call.serialized()) what.insert(3, "_serialized");  // get_serialized_multi, ...
    what += " " + keys_text(call);
    const auto start = Clock::now();
    try {
      call.proceed();
    } catch (const std::exception& e) {
      log(LogLevel::error, "dogpile.proxy.logging",
          what + " failed after" + milliseconds(start) + ": " + e.what());
      throw;
    }
    switch (call.operation()) {
      case CacheOperation::get:
        what += call.hits() ? " hit" : " miss";
        break;
      case CacheOperation::get_multi:
        what += " hits=" + std::to_string(call.hits()) +
                " misses=" + std::to_string(call.size() - call.hits());
        break;
      default:
        break;
    }
    log(level_, "dogpile.proxy.logging", what + milliseconds(start));
  }

 private:
  // The call's key as the options allow, or for a multi call "<n> keys [k1, k2, …]" with the
  // first 16 of them.
  std::string keys_text(const ProxiedCall& call) const {
    const CacheOperation operation = call.operation();
    if (operation != CacheOperation::get_multi && operation != CacheOperation::set_multi &&
        operation != CacheOperation::remove_multi) {
      return shown(call.key(0));
    }
    constexpr std::size_t kListed = 16;
    std::string out = std::to_string(call.size()) + " keys [";
    for (std::size_t i = 0; i < call.size(); ++i) {
      if (i == kListed) {
        out += ", ...";
        break;
      }
      if (i != 0) out += ", ";
      out += shown(call.key(i));
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

  const LogLevel level_;
  const KeyStyle key_style_;
  const std::size_t max_key_length_;
};

}  // namespace

}  // namespace dogpile::logging_proxy

DOGPILE_PROXY_PLUGIN(logging, "dogpile.proxy.logging", "1.0.0",
                     "Logs each backend call (kind, key, hit/miss, latency), never values",
                     dogpile::logging_proxy::LoggingProxy);
