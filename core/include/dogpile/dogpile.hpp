// Everything an application includes.
#pragma once

#include "dogpile/codec.hpp"
#include "dogpile/config.hpp"
#include "dogpile/invalidation.hpp"
#include "dogpile/loader.hpp"
#include "dogpile/logging.hpp"
#include "dogpile/region.hpp"
#include "dogpile/sdk/errors.hpp"
