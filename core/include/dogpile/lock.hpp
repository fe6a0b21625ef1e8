// The dogpile lock: dogpile.cache's algorithm for electing one creator of an expired or
// missing value while everyone else gets the previous value or waits for the new one.
//
// Given the value currently cached (with its creation time), a way to get the key's mutex,
// a creator and a getter:
//  - a fresh value is returned without touching the mutex;
//  - an expired value present: try the mutex without waiting. Not got: return the stale value
//    at once (someone else is regenerating). Got: read again (another process may have just
//    refreshed it) and, if still stale, regenerate, or hand the mutex to the async creator
//    and return the stale value;
//  - no value: wait for the mutex, read again (someone may have created it meanwhile), and
//    create only if still missing or expired. A mutex held in a server is polled; between polls
//    the value is read, and a waiter returns it as soon as it is there (acquire_unless).
// The mutex is released on every path, exceptions included, except when handed to the async
// creator, which then owns releasing it.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "dogpile/clock.hpp"
#include "dogpile/sdk/log.hpp"
#include "dogpile/sdk/mutex.hpp"
#include "dogpile/sdk/value.hpp"

namespace dogpile {

template <class Value>
struct Timestamped {
  Value value;
  double created = 0;  // epoch seconds; <= 0 means "no value"
};

// Whether a value created at `created` is older than `expiration` seconds (nullopt: never) at
// `now`. An expiration of 0 expires every value, even one made within the current tick of a
// coarse clock: 0 means "recompute on every call".
inline bool older_than(double created, std::optional<double> expiration, double now) {
  return expiration && (*expiration <= 0 || now - created > *expiration);
}

// Whether a value created at `created` is missing (<= 0) or expired under `expiration` at
// `clock`'s time.
inline bool dogpile_expired(double created, std::optional<double> expiration, const Clock& clock) {
  return created <= 0 || older_than(created, expiration, clock.coarse_now());
}

// Releases `mutex`. A failure (the lock's server gone) is logged, not thrown: the caller's
// value is good, and a lock in a server expires by its own timeout.
inline void release_logged(CacheMutex& mutex) noexcept {
  try {
    mutex.release();
  } catch (const std::exception& e) {
    try {
      log(LogLevel::error, "dogpile.lock",
          std::string("releasing a dogpile lock failed: ") + e.what());
    } catch (...) {
    }
  }
}

// How dogpile_lock waits; by default as dogpile.cache does.
struct LockWaiting {
  // false: a stale value is not served while another caller makes a new one; it is waited
  // for like a missing value.
  bool serve_stale = true;
  // How a caller without a value to serve waits for the mutex, `value_ready` as in
  // CacheMutex::acquire_unless (which is what an empty function calls). It may throw, e.g. to
  // give up at a deadline; it then holds nothing.
  std::function<bool(CacheMutex& mutex, const std::function<bool()>& value_ready)> acquire{};
};

// Runs the dogpile algorithm above and returns the value to give the caller.
//   current:      the value read before calling, nullopt when there is none;
//   get_mutex():  std::shared_ptr<CacheMutex> for the key (called only when needed);
//   getter():     std::optional<Timestamped<Value>>, the cached value now, nullopt if none;
//   creator():    Timestamped<Value>, creates and stores a new value; or
//   creator(std::shared_ptr<CacheMutex>& held): the same, given the held mutex (null when the
//                 lock's blocking timeout ran out); a creator that keeps it (leaving `held`
//                 null) owns releasing it;
//   async_creator(std::shared_ptr<CacheMutex>): optional; regenerates in the background and
//                 releases the mutex. Used only when a stale value exists.
//   clock:        whose time decides expiry;
//   waiting:      see LockWaiting.
template <class Value, class GetMutex, class Getter, class Creator>
Value dogpile_lock(std::optional<Timestamped<Value>> current, GetMutex&& get_mutex, Getter&& getter,
                   Creator&& creator, std::optional<double> expiration,
                   const std::function<void(std::shared_ptr<CacheMutex>)>& async_creator = {},
                   const Clock& clock = *SystemClock::instance(), const LockWaiting& waiting = {}) {
  auto fresh = [&](const std::optional<Timestamped<Value>>& value) {
    return value && !dogpile_expired(value->created, expiration, clock);
  };
  if (fresh(current)) return current->value;

  std::shared_ptr<CacheMutex> mutex = get_mutex();
  bool has_value = waiting.serve_stale && current && current->created > 0;
  if (has_value) {
    if (!mutex->acquire(false)) return current->value;  // regeneration in progress elsewhere
  } else {
    // Wait for the lock, or (with a lock held in a server) for the value its holder stores.
    std::optional<Timestamped<Value>> ready;
    const std::function<bool()> value_ready = [&] {
      ready = getter();
      return fresh(ready);
    };
    const bool held =
        waiting.acquire ? waiting.acquire(*mutex, value_ready) : mutex->acquire_unless(value_ready);
    if (fresh(ready)) {
      if (held) release_logged(*mutex);
      return ready->value;
    }
    // Not held: the lock's own blocking timeout ran out; create without it, as dogpile does.
    if (!held) mutex = nullptr;
  }
  // Releases the mutex on every path out of here unless handed to the async creator.
  struct Releaser {
    std::shared_ptr<CacheMutex>* held;
    ~Releaser() {
      if (*held) release_logged(**held);
    }
  } releaser{&mutex};

  // Read again now that the lock is ours: a concurrent creator may have just stored a value.
  if (auto reread = getter()) {
    if (fresh(reread)) return reread->value;
    if (reread->created > 0 && waiting.serve_stale) {
      current = std::move(reread);
      has_value = true;
    }
  }
  if (has_value && async_creator) {
    async_creator(mutex);  // if it throws, it did not take the mutex: the releaser frees it
    mutex = nullptr;
    return current->value;
  }
  if constexpr (std::is_invocable_v<Creator&, std::shared_ptr<CacheMutex>&>) {
    return creator(mutex).value;
  } else {
    return creator().value;
  }
}

}  // namespace dogpile
