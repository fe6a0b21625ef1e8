// Logging: Boost.Log records on the "dogpile" channel. Quiet by default: records below
// `warning` are dropped before they are formatted. Applications add their own Boost.Log sinks
// as usual; the channel attribute is "Channel" (value "dogpile") and the severity attribute
// "Severity" (a boost::log::trivial::severity_level). A record no application sink takes goes
// to stderr, through a sink of the library's own, never to Boost.Log's default sink (stdout).
//
// The functions (log, log_enabled, set_log_level, log_level, parse_log_level,
// environment_log_level) are declared in dogpile/sdk/log.hpp, shared with plugins.
#pragma once

#include "dogpile/sdk/log.hpp"
