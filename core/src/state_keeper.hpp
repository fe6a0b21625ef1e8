// A region's configurations (what configure() made): the one in effect, read by every call
// without a lock, and the replaced ones until no call can use them.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "creator_pool.hpp"
#include "dogpile/region.hpp"
#include "guarded_backend.hpp"
#include "lock_registry.hpp"

namespace dogpile {

// One configuration of a region: what configure() made. Immutable once published.
struct detail::RegionState {
  std::string region_name;
  std::shared_ptr<const Clock> clock;  // the region's
  std::string backend_name;
  std::shared_ptr<CacheBackend> actual;
  std::shared_ptr<CacheBackend> outer;
  std::shared_ptr<CacheBackend> calls;  // outer, guarded: what the region calls
  std::shared_ptr<BackendGuard> guard;  // calls' guard: the backend's health under miss
  std::optional<double> expiration;
  KeyMangler key_mangler;
  std::shared_ptr<RegionInvalidationStrategy> invalidator;
  std::shared_ptr<detail::LockRegistry> locks;
  AsyncCreationRunner async_runner;
  bool raise_on_undecodable = false;
  ResilienceOptions resilience;        // validated
  AsyncCreationRunner refresh_runner;  // eager refresh: async_runner, or a pool of its own
  CreatorPool* creators = nullptr;     // the region's, when a timeout is set
};

// Calls announce themselves on counters, without a lock: a call raises the counter of the
// current epoch (in its thread's slot, on a cache line of its own) and then reads the
// configuration; a replacement publishes the new one and flips the epoch, and the
// configurations replaced before the flip are freed once the old epoch's counters are all zero,
// which they reach because new calls count in the other epoch (two-epoch RCU). The last call to
// leave frees them, or the next replacement, or the region's destructor.
class detail::StateKeeper {
 public:
  // The configuration in effect, pinned by `pin`; null when there is none.
  const RegionState* enter(StatePin& pin);
  void leave(std::atomic<long>& count) noexcept;
  const RegionState* peek() const noexcept { return current_state_.load(); }

  // Makes `next` the configuration in effect; the one it replaces is freed once no call uses
  // it.
  void publish(std::unique_ptr<RegionState> next);

  // Takes the async runners out of every configuration, for the region's destructor.
  std::vector<AsyncCreationRunner> take_runners();

 private:
  static constexpr std::size_t kSlots = 16;
  struct alignas(64) Count {
    std::atomic<long> n{0};
  };

  static std::size_t slot() noexcept;
  // Frees what no call can use any more. REQUIRES: mutex_ held.
  void reclaim();

  std::array<std::array<Count, kSlots>, 2> counts_{};
  std::atomic<unsigned> epoch_{0};
  std::atomic<const RegionState*> current_state_{nullptr};
  std::atomic<bool> retiring_{false};
  std::mutex mutex_;
  std::unique_ptr<RegionState> current_;
  std::vector<std::unique_ptr<RegionState>> draining_;  // freed when the old epoch drains
  std::vector<std::unique_ptr<RegionState>> pending_;   // replaced since the last flip
};

}  // namespace dogpile
