// Logging for the library and its plugins: Boost.Log records on the "dogpile" channel with the
// component named, behind thin functions so a plugin does not compile Boost.Log itself.
// Records below the level (warning by default) are dropped before they are formatted; see
// dogpile/logging.hpp for where records go. Never pass secrets (passwords, URLs with
// credentials) to these functions.
#pragma once

#include <optional>
#include <string_view>

#include "dogpile/sdk/export.hpp"

namespace dogpile {

enum class LogLevel { trace = 0, debug, info, warning, error, off };

// True when a record at `level` would be emitted; test it before building an expensive
// message.
DOGPILE_API bool log_enabled(LogLevel level) noexcept;

// Emits one record on the "dogpile" channel. `component` names the source, e.g. the
// plugin's entry point.
DOGPILE_API void log(LogLevel level, std::string_view component, std::string_view message);

// The level starts as the environment variable DOGPILE_LOG_LEVEL names (an operator's
// override, which also wins over a config file's dogpile.log_level), else warning.
DOGPILE_API void set_log_level(LogLevel level) noexcept;
DOGPILE_API LogLevel log_level() noexcept;

// "trace", "debug", "info", "warning" (or "warn"), "error", "off", any case.
DOGPILE_API std::optional<LogLevel> parse_log_level(std::string_view text);
// The level DOGPILE_LOG_LEVEL names; nullopt when it is unset or names none.
DOGPILE_API std::optional<LogLevel> environment_log_level();

}  // namespace dogpile
