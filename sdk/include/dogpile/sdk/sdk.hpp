// Everything a plugin author includes: backends, proxies, mutexes, values, arguments, the
// plugin context (its region's name and clock, other backends), errors, logging and the
// entry-point macros.
#pragma once

#include "dogpile/sdk/arguments.hpp"
#include "dogpile/sdk/backend.hpp"
#include "dogpile/sdk/broadcast.hpp"
#include "dogpile/sdk/clock.hpp"
#include "dogpile/sdk/context.hpp"
#include "dogpile/sdk/errors.hpp"
#include "dogpile/sdk/log.hpp"
#include "dogpile/sdk/mutex.hpp"
#include "dogpile/sdk/plugin.hpp"
#include "dogpile/sdk/pool.hpp"
#include "dogpile/sdk/proxy.hpp"
#include "dogpile/sdk/stats.hpp"
#include "dogpile/sdk/value.hpp"
