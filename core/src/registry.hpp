// The regions alive in the process, for metrics_text(): each registers itself when made and
// leaves when destroyed, before any of its members goes.
#pragma once

#include <mutex>
#include <vector>

namespace dogpile {

class CacheRegion;

namespace detail {

class RegionRegistry {
 public:
  static RegionRegistry& instance();
  void add(const CacheRegion* region);
  void remove(const CacheRegion* region);

  // Calls visit(const CacheRegion&) for every live region; none is destroyed meanwhile.
  template <class Visit>
  void for_each(Visit&& visit) {
    std::lock_guard guard(mutex_);
    for (const CacheRegion* region : regions_) visit(*region);
  }

 private:
  std::mutex mutex_;
  std::vector<const CacheRegion*> regions_;
};

}  // namespace detail
}  // namespace dogpile
