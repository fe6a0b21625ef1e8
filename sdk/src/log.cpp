#include "dogpile/sdk/log.hpp"

#include <algorithm>
#include <atomic>
#include <boost/core/null_deleter.hpp>
#include <boost/log/attributes/constant.hpp>
#include <boost/log/core.hpp>
#include <boost/log/expressions.hpp>
#include <boost/log/sinks/sync_frontend.hpp>
#include <boost/log/sinks/text_ostream_backend.hpp>
#include <boost/log/sources/record_ostream.hpp>
#include <boost/log/sources/severity_channel_logger.hpp>
#include <boost/log/trivial.hpp>
#include <boost/make_shared.hpp>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

namespace dogpile {

namespace {

const char* const kLevelVariable = "DOGPILE_LOG_LEVEL";

// The level a program starts with: DOGPILE_LOG_LEVEL's, else warning. A variable that names
// no level is said on stderr at once (no sink may exist yet, and no record may ever come).
int initial_level() {
  const auto level = environment_log_level();
  if (const char* text = std::getenv(kLevelVariable); !level && text != nullptr && *text != '\0') {
    std::fprintf(stderr,
                 "dogpile: %s=%s is not a level (trace, debug, info, warning, error, off): "
                 "using warning\n",
                 kLevelVariable, text);
  }
  return static_cast<int>(level.value_or(LogLevel::warning));
}
std::atomic<int> g_level{initial_level()};

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

// The attribute that sends a record to the library's own sink, and nowhere else.
const char* const kFallback = "DogpileFallback";

// The library's own sink: records no application sink took, on stderr. Registered on first
// use; being a sink, it also keeps Boost.Log's default sink (stdout, where a program's output
// goes) from ever writing dogpile's records.
void register_stderr_sink() {
  static const bool registered = [] {
    auto backend = boost::make_shared<boost::log::sinks::text_ostream_backend>();
    backend->add_stream(boost::shared_ptr<std::ostream>(&std::clog, boost::null_deleter()));
    backend->auto_flush(true);
    auto sink = boost::make_shared<
        boost::log::sinks::synchronous_sink<boost::log::sinks::text_ostream_backend>>(backend);
    sink->set_filter(boost::log::expressions::has_attr<bool>(kFallback));
    sink->set_formatter(boost::log::expressions::stream << "[" << trivial::severity << "] "
                                                        << boost::log::expressions::smessage);
    boost::log::core::get()->add_sink(sink);
    return true;
  }();
  (void)registered;
}

// Whether an application sink would take a record on the dogpile channel at all: one at the
// highest severity is the likeliest to pass its filters.
bool application_sink_exists() {
  return static_cast<bool>(logger().open_record(boost::log::keywords::severity = trivial::fatal));
}

// Writes the message with control characters as \xNN, so that a key or a server's text
// holding a newline cannot forge a record; clean runs are written as they are, uncopied.
void write_printable(boost::log::record_ostream& stream, std::string_view message) {
  std::size_t clean_from = 0;
  for (std::size_t i = 0; i < message.size(); ++i) {
    const auto c = static_cast<unsigned char>(message[i]);
    if (c >= 0x20 && c != 0x7f) continue;
    char escaped[5];
    std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
    stream << message.substr(clean_from, i - clean_from) << escaped;
    clean_from = i + 1;
  }
  stream << message.substr(clean_from);
}

}  // namespace

std::optional<LogLevel> environment_log_level() {
  const char* text = std::getenv(kLevelVariable);
  return text != nullptr ? parse_log_level(text) : std::nullopt;
}

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
  register_stderr_sink();
  Logger& source = logger();
  auto record = source.open_record(boost::log::keywords::severity = to_boost(level));
  if (!record) {
    // No application sink took it: stderr, unless the application has sinks that filtered
    // it out on purpose.
    if (application_sink_exists()) return;
    boost::log::attribute_set fallback;
    fallback.insert(kFallback, boost::log::attributes::constant<bool>(true));
    fallback.insert("Severity",
                    boost::log::attributes::constant<trivial::severity_level>(to_boost(level)));
    record = boost::log::core::get()->open_record(fallback);
    if (!record) return;
  }
  boost::log::record_ostream stream(record);
  stream << "dogpile[" << component << "] ";
  write_printable(stream, message);
  stream.flush();
  boost::log::core::get()->push_record(std::move(record));
}

}  // namespace dogpile
