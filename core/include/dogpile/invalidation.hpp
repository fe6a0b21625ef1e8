// How a region decides that values are invalidated, as dogpile.cache's
// RegionInvalidationStrategy. The default keeps one timestamp in the region: a value created
// before the last invalidate() is invalid. "Hard" invalidation makes such values misses that
// everyone waits for; "soft" invalidation lets callers keep getting the old value while one
// of them regenerates it. Replace the strategy to share invalidation between processes (e.g.
// keep the timestamp in the cache itself).
#pragma once

#include <atomic>
#include <memory>

#include "dogpile/sdk/clock.hpp"
#include "dogpile/sdk/export.hpp"

namespace dogpile {

class DOGPILE_API RegionInvalidationStrategy {
 public:
  virtual ~RegionInvalidationStrategy();

  // Region invalidation. `hard` selects hard (true) or soft (false) invalidation.
  virtual void invalidate(bool hard) = 0;
  // Whether a value created at `timestamp` is hard-invalidated.
  virtual bool is_hard_invalidated(double timestamp) const = 0;
  // Whether a value created at `timestamp` is soft-invalidated.
  virtual bool is_soft_invalidated(double timestamp) const = 0;
  // Whether a value created at `timestamp` is invalidated, hard or soft.
  virtual bool is_invalidated(double timestamp) const = 0;
  // Whether the last invalidation was soft.
  virtual bool was_soft_invalidated() const = 0;
  // Whether the last invalidation was hard.
  virtual bool was_hard_invalidated() const = 0;
};

// Thread-safe timestamp strategy: invalidate() records `clock`'s now (a region gives its own
// clock); values created before it are invalidated.
class DOGPILE_API DefaultInvalidationStrategy : public RegionInvalidationStrategy {
 public:
  explicit DefaultInvalidationStrategy(
      std::shared_ptr<const Clock> clock = SystemClock::instance());
  void invalidate(bool hard) override;
  bool is_hard_invalidated(double timestamp) const override;
  bool is_soft_invalidated(double timestamp) const override;
  bool is_invalidated(double timestamp) const override;
  bool was_soft_invalidated() const override;
  bool was_hard_invalidated() const override;

 private:
  // 0: never invalidated; +t: hard invalidation at t; -t: soft invalidation at t.
  // One lock-free word, read on every get.
  std::atomic<double> stamp_{0.0};
  std::shared_ptr<const Clock> clock_;
};

}  // namespace dogpile
