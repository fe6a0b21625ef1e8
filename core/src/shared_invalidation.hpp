// Region invalidation shared by every process of a region, through its backend: see
// ConfigureOptions::shared_invalidation.
#pragma once

#include <memory>
#include <string>

#include "dogpile/invalidation.hpp"
#include "dogpile/sdk/backend.hpp"
#include "dogpile/sdk/clock.hpp"

namespace dogpile::detail {

// The strategy for region `region` on `backend`; throws ValidationError naming `config_key`
// when the backend cannot publish.
std::shared_ptr<RegionInvalidationStrategy> make_shared_invalidation(
    std::shared_ptr<CacheBackend> backend, const std::string& region,
    std::shared_ptr<const Clock> clock, const std::string& config_key);

}  // namespace dogpile::detail
