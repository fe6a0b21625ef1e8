// How a region reads what its backend returns: decoding (a value that does not decode is a
// miss, unless the region raises), expiration jitter, and the view the dogpile lock takes of a
// value (its time moved for soft invalidation and jitter). Shared by the hit path (region.cpp)
// and the miss path (regeneration.cpp).
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>
#include <typeinfo>

#include "dogpile/lock.hpp"
#include "dogpile/sdk/log.hpp"
#include "state_keeper.hpp"

namespace dogpile::detail {

using Decoder = CachedValuePtr (*)(CachedValuePtr&& value);
using Current = std::optional<Timestamped<CachedValuePtr>>;

inline constexpr const char* kSoftInvalidationNeedsExpiration =
    "Non-None expiration time required for soft invalidation";

// `expiration` spread by up to `jitter` either way, by a fraction derived from the key and the
// time the value was made, so every reader of the value computes the same one (FNV-1a and
// splitmix64: the same on every build).
[[gnu::noinline]] inline double spread(double jitter, std::string_view key, double made,
                                       double expiration) {
  std::uint64_t h = 14695981039346656037ull;
  for (const char c : key) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  h ^= std::bit_cast<std::uint64_t>(made);
  h += 0x9e3779b97f4a7c15ull;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  h ^= h >> 31;
  const double unit = static_cast<double>(h >> 11) * 0x1p-53 * 2 - 1;  // [-1, 1)
  return expiration * (1 + jitter * unit);
}

// `expiration` spread by the region's expiration_jitter.
inline double jittered(const RegionState& st, std::string_view key, const ValueMetadata& metadata,
                       double expiration) {
  const double jitter = st.resilience.expiration_jitter;
  return jitter == 0 ? expiration : spread(jitter, key, metadata.made(), expiration);
}

// decoded() past its fast path: `value` (not null) decoded by `decode` (null: only checked),
// a value that does not decode being a miss, logged, unless the region raises on them.
[[gnu::noinline]] inline CachedValuePtr decoded_slowly(const RegionState& st,
                                                       CachedValuePtr&& value, std::string_view key,
                                                       Decoder decode) {
  try {
    return decode_for_key(std::move(value), key, decode);
  } catch (const CantDeserialize& e) {
    if (st.raise_on_undecodable) throw;
    if (log_enabled(LogLevel::warning)) {
      log(LogLevel::warning, "region",
          "region '" + st.region_name + "': " + e.what() + "; treated as a miss");
    }
    return nullptr;
  }
}

// A value read from the backend for `key`, decoded by `decode` (null: not decoded). An object
// of `type` (when given: the type `decode` makes), the usual hit, is returned as it is: inline
// and moved, since a call passing the pointer costs a hit a fifth of its time.
[[gnu::always_inline]] inline CachedValuePtr decoded(const RegionState& st, CachedValuePtr&& value,
                                                     std::string_view key, Decoder decode,
                                                     const std::type_info* type = nullptr) {
  if (!value) return nullptr;
  if (type != nullptr && value->holds_object() && value->object_type() == *type) {
    return std::move(value);
  }
  return decoded_slowly(st, std::move(value), key, decode);
}

// A backend value as the dogpile lock sees it, decoded: nullopt when missing, of another
// version, hard-invalidated or undecodable; a soft-invalidated value's time is moved back so
// it reads as expired, and a jittered one's so it expires at its jittered time.
// Inlined: as a call, passing the value through one more frame costs get_or_create hits a
// quarter of their speed (measured with a get_or_create-only loop).
[[gnu::always_inline]] inline Current classify(const RegionState& st, CachedValuePtr value,
                                               std::string_view key,
                                               std::optional<double> expiration, Decoder decode,
                                               const std::type_info* type = nullptr) {
  if (!value) return std::nullopt;
  if (value->decodable() && value->metadata().v != kValueVersion) return std::nullopt;
  value = decoded(st, std::move(value), key, decode, type);
  if (!value) return std::nullopt;
  const ValueMetadata& metadata = value->metadata();
  double ct = metadata.ct;
  if (st.invalidator->is_hard_invalidated(metadata.made())) return std::nullopt;
  if (st.invalidator->is_soft_invalidated(ct)) {
    if (!expiration) throw Error(kSoftInvalidationNeedsExpiration);
    // Reads as expired: older than the expiration time on the clock expiry checks use.
    ct = st.clock->coarse_now() - *expiration - 0.0001;
  } else if (expiration && st.resilience.expiration_jitter != 0) {
    ct = std::max(ct + jittered(st, key, metadata, *expiration) - *expiration,
                  std::numeric_limits<double>::min());
  }
  const double written = metadata.ct;
  return Timestamped<CachedValuePtr>{std::move(value), ct, written};
}

// Whether `value`, fresh, is due for an eager refresh: older than eager_refresh of its
// expiration time, and not a value fail-safe kept (that one is tried again when its throttle
// ends).
inline bool due_for_refresh(const RegionState& st, const Timestamped<CachedValuePtr>& value,
                            std::optional<double> expiration) {
  const double eager = st.resilience.eager_refresh;
  return eager > 0 && expiration && *expiration > 0 && value.value->metadata().origin == 0 &&
         st.clock->coarse_now() - value.created > eager * *expiration;
}

}  // namespace dogpile::detail
