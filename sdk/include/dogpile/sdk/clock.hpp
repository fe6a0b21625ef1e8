// The clock a region reads for every decision that depends on time: a value's creation time,
// its expiry, the region's invalidation. The default is the system clock (dogpile.cache's
// time.time()); give a ManualClock through RegionOptions::clock to test expiry and
// invalidation without waiting, as Caffeine's Ticker:
//
//   auto clock = std::make_shared<dogpile::ManualClock>();
//   auto region = dogpile::make_region({.name = "t", .clock = clock});
//   region->configure("dogpile.cache.memory", {.expiration_time = 60});
//   region->set("k", 1);
//   clock->advance(61);  // "k" is now expired, at once
//
// A value's age by the region's clock is `value->age(region->clock().now())`. Lock timeouts are
// not the core's to decide: the in-process lock has none, and a server's lock (Redis,
// memcached) expires on the server, by the server's clock.
//
// Values carry their creation time, so every process sharing a backend should read the same
// clock: a ManualClock is for tests and simulations, not for a region shared with others.
#pragma once

#include <atomic>
#include <memory>

#include "dogpile/sdk/export.hpp"
#include "dogpile/sdk/value.hpp"

namespace dogpile {

class DOGPILE_API Clock {
 public:
  virtual ~Clock();
  // Seconds since the epoch, with sub-second precision.
  virtual double now() const noexcept = 0;
  // The same time read cheaply, at a coarser resolution and never ahead of now(); checked on
  // every hit. By default now().
  virtual double coarse_now() const noexcept;
};

// The system clock: now_seconds() and coarse_now_seconds() (value.hpp).
class DOGPILE_API SystemClock final : public Clock {
 public:
  double now() const noexcept override;
  double coarse_now() const noexcept override;
  // The one instance regions use by default.
  static const std::shared_ptr<const SystemClock>& instance();
};

// A clock that moves only when told to. Thread-safe.
class DOGPILE_API ManualClock final : public Clock {
 public:
  // Starts at `start` seconds since the epoch (by default the system clock's now).
  explicit ManualClock(double start = now_seconds()) : now_(start) {}
  double now() const noexcept override { return now_.load(std::memory_order_acquire); }
  void advance(double seconds) noexcept;
  void set(double seconds_since_epoch) noexcept { now_.store(seconds_since_epoch); }

 private:
  std::atomic<double> now_;
};

}  // namespace dogpile
