// Logging for plugins: a thin function into the core's Boost.Log setup, so a plugin does not
// compile Boost.Log itself. Records go to the "dogpile" channel with the component named;
// the core drops records below the configured level (warning by default) before formatting.
// Never pass secrets (passwords, URLs with credentials) to these functions.
#pragma once

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

}  // namespace dogpile
