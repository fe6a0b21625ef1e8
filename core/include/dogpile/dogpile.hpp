// Everything an application includes.
#pragma once

#include "dogpile/async_runner.hpp"
#include "dogpile/cached_function.hpp"
#include "dogpile/codec.hpp"
#include "dogpile/config.hpp"
#include "dogpile/invalidation.hpp"
#include "dogpile/keys.hpp"
#include "dogpile/loader.hpp"
#include "dogpile/lock.hpp"
#include "dogpile/logging.hpp"
#include "dogpile/region.hpp"
#include "dogpile/sdk/clock.hpp"
#include "dogpile/sdk/errors.hpp"
#include "dogpile/stats.hpp"
