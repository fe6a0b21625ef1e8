#include "dogpile/logging.hpp"

#include <algorithm>
#include <atomic>
#include <boost/log/sources/record_ostream.hpp>
#include <boost/log/sources/severity_channel_logger.hpp>
#include <boost/log/trivial.hpp>
#include <cctype>
#include <string>

namespace dogpile {

namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::warning)};

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::trace:
      return "trace";
    case LogLevel::debug:
      return "debug";
    case LogLevel::info:
      return "info";
    case LogLevel::warning:
      return "warning";
    case LogLevel::error:
      return "error";
    case LogLevel::off:
      return "off";
  }
  return "?";
}

namespace trivial = boost::log::trivial;

// Records carry Boost.Log's trivial severity, so the default sink and the usual filters
// (trivial::severity >= trivial::warning) understand them.
using Logger =
    boost::log::sources::severity_channel_logger_mt<trivial::severity_level, std::string>;

trivial::severity_level to_boost(LogLevel level) {
  switch (level) {
    case LogLevel::trace:
      return trivial::trace;
    case LogLevel::debug:
      return trivial::debug;
    case LogLevel::info:
      return trivial::info;
    case LogLevel::warning:
      return trivial::warning;
    default:
      return trivial::error;
  }
}

Logger& logger() {
  static Logger instance(boost::log::keywords::channel = "dogpile");
  return instance;
}

}  // namespace

void set_log_level(LogLevel level) noexcept { g_level.store(static_cast<int>(level)); }

LogLevel log_level() noexcept { return static_cast<LogLevel>(g_level.load()); }

bool log_enabled(LogLevel level) noexcept {
  return level != LogLevel::off &&
         static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

std::optional<LogLevel> parse_log_level(std::string_view text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "warn") lower = "warning";
  for (auto level : {LogLevel::trace, LogLevel::debug, LogLevel::info, LogLevel::warning,
                     LogLevel::error, LogLevel::off}) {
    if (lower == level_name(level)) return level;
  }
  return std::nullopt;
}

void log(LogLevel level, std::string_view component, std::string_view message) {
  if (!log_enabled(level)) return;
  BOOST_LOG_SEV(logger(), to_boost(level)) << "dogpile[" << component << "] " << message;
}

}  // namespace dogpile
