// Logging: Boost.Log records on the "dogpile" channel. Quiet by default: records below
// `warning` are dropped before they are formatted. Applications add their own Boost.Log sinks
// as usual; the channel attribute is "Channel" (value "dogpile") and the severity attribute
// "Severity" (a boost::log::trivial::severity_level). A record no application sink takes goes
// to stderr, through a sink of the library's own, never to Boost.Log's default sink (stdout).
#pragma once

#include <optional>
#include <string_view>

#include "dogpile/sdk/log.hpp"

namespace dogpile {

// The level starts as the environment variable DOGPILE_LOG_LEVEL names (an operator's
// override, which also wins over a config file's dogpile.log_level), else warning.
DOGPILE_API void set_log_level(LogLevel level) noexcept;
DOGPILE_API LogLevel log_level() noexcept;

// "trace", "debug", "info", "warning" (or "warn"), "error", "off", any case.
DOGPILE_API std::optional<LogLevel> parse_log_level(std::string_view text);
// The level DOGPILE_LOG_LEVEL names; nullopt when it is unset or names none.
DOGPILE_API std::optional<LogLevel> environment_log_level();

}  // namespace dogpile
