#include "dogpile/sdk/clock.hpp"

namespace dogpile {

Clock::~Clock() = default;

double Clock::coarse_now() const noexcept { return now(); }

double SystemClock::now() const noexcept { return now_seconds(); }

double SystemClock::coarse_now() const noexcept { return coarse_now_seconds(); }

const std::shared_ptr<const SystemClock>& SystemClock::instance() {
  static const auto clock = std::make_shared<const SystemClock>();
  return clock;
}

void ManualClock::advance(double seconds) noexcept {
  double now = now_.load(std::memory_order_relaxed);
  while (!now_.compare_exchange_weak(now, now + seconds)) {
  }
}

}  // namespace dogpile
