#include "dogpile/invalidation.hpp"

#include <cmath>

#include "dogpile/sdk/errors.hpp"

namespace dogpile {

RegionInvalidationStrategy::~RegionInvalidationStrategy() = default;

DefaultInvalidationStrategy::DefaultInvalidationStrategy(std::shared_ptr<const Clock> clock)
    : clock_(std::move(clock)) {
  if (!clock_) throw ValidationError("DefaultInvalidationStrategy: the clock must not be null");
}

void DefaultInvalidationStrategy::invalidate(bool hard) {
  const double now = clock_->now();
  stamp_.store(hard ? now : -now, std::memory_order_release);
}

bool DefaultInvalidationStrategy::is_invalidated(double timestamp) const {
  const double stamp = stamp_.load(std::memory_order_acquire);
  return stamp != 0.0 && timestamp < std::fabs(stamp);
}

bool DefaultInvalidationStrategy::was_hard_invalidated() const {
  return stamp_.load(std::memory_order_acquire) > 0.0;
}

bool DefaultInvalidationStrategy::was_soft_invalidated() const {
  return stamp_.load(std::memory_order_acquire) < 0.0;
}

bool DefaultInvalidationStrategy::is_hard_invalidated(double timestamp) const {
  const double stamp = stamp_.load(std::memory_order_acquire);
  return stamp > 0.0 && timestamp < stamp;
}

bool DefaultInvalidationStrategy::is_soft_invalidated(double timestamp) const {
  const double stamp = stamp_.load(std::memory_order_acquire);
  return stamp < 0.0 && timestamp < -stamp;
}

}  // namespace dogpile
