// Cache statistics, as a proxy collects them (dogpile.proxy.stats) and an application reads
// them through CacheRegion::stats(). A proxy that counts implements StatsProvider; the
// region finds the first one in its chain.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "dogpile/sdk/backend.hpp"
#include "dogpile/sdk/export.hpp"

namespace dogpile {

// Latency buckets, upper bounds in seconds; the last bucket is everything above.
inline constexpr std::array<double, 12> kLatencyBounds = {1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4,
                                                          1e-3, 5e-3, 1e-2, 5e-2, 1e-1, 1.0};

struct OperationStats {
  std::uint64_t calls = 0;
  std::uint64_t errors = 0;
  // counts[i]: calls that took at most kLatencyBounds[i] and more than the bound before it;
  // counts.back(): calls above the last bound.
  std::array<std::uint64_t, kLatencyBounds.size() + 1> latency_counts{};
  double latency_sum_seconds = 0;
};

struct StatsSnapshot {
  std::uint64_t gets = 0;  // keys looked up (a get_multi of n keys counts n)
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t sets = 0;     // keys stored
  std::uint64_t deletes = 0;  // keys removed
  std::uint64_t errors = 0;   // calls that threw
  // Entries the backend below dropped to stay within its bound (EvictionCounter); 0 when it
  // has none.
  std::uint64_t evictions = 0;
  std::array<OperationStats, kCacheOperationCount> operations{};

  const OperationStats& operator[](CacheOperation op) const {
    return operations[static_cast<std::size_t>(op)];
  }
};

// Implemented by a backend that evicts entries to stay within a bound (dogpile.cache.memory
// with max_size or max_bytes): how many it has evicted since it was made. The stats proxy and
// CacheRegion::evictions() find it below them in the chain (find_in_chain).
class DOGPILE_API EvictionCounter {
 public:
  virtual ~EvictionCounter();
  virtual std::uint64_t evictions() const noexcept = 0;
};

class DOGPILE_API StatsProvider {
 public:
  virtual ~StatsProvider();
  virtual StatsSnapshot stats() const = 0;
  virtual void reset_stats() = 0;
};

}  // namespace dogpile
