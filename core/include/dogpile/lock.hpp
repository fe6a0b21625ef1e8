// The dogpile lock: dogpile.cache's algorithm for electing one creator of an expired or
// missing value while everyone else gets the previous value or waits for the new one.
//
// Given the value currently cached (with its creation time) and a key's steps (how to read
// the value, take the key's mutex, create the value in the caller or in the background):
//  - a fresh value is returned without touching the mutex;
//  - an expired value present (and served while stale): try the mutex without waiting. Not
//    got: return the stale value at once (someone else is regenerating). Got: read again
//    (another process may have just refreshed it) and, if still stale, regenerate, or hand
//    the mutex to the background creator and return the stale value;
//  - no value (or a stale one not to be served): wait for the mutex, read again, and create
//    only if no value arrived meanwhile. A mutex held in a server is polled; between polls the
//    value is read, and a waiter returns it as soon as it is there.
// A value "arrives" when it is fresh, or when it is another value than the one read first
// (another caller stored it while this one waited): the waiter takes it even if it is already
// expired (a creator slower than values live, an expiration time of 0), so one key has one
// creator call at a time and a caller that waited gets that creator's value.
// The mutex is released on every path, exceptions included, except when handed to a creator
// that keeps it (the background creator, a creator on another thread), which then owns
// releasing it.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "dogpile/sdk/clock.hpp"
#include "dogpile/sdk/log.hpp"
#include "dogpile/sdk/mutex.hpp"

namespace dogpile {

template <class Value>
struct Timestamped {
  Value value;
  double created = 0;  // epoch seconds, as the lock reads it; <= 0 means "no value"
  double written = 0;  // the stored value's own creation time: tells one write from another
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

// One key's passage through the dogpile lock, in two halves, for a caller that takes several
// keys' mutexes before reading them all again at once (get_or_create_multi); dogpile_lock()
// below is the whole passage for one key. `Steps` is the key's side of it:
//   using Value;                                  what the caller gets
//   bool fresh(const std::optional<Timestamped<Value>>&);   neither missing nor expired
//   bool serve_stale();                           a stale value may be served while another
//                                                 caller makes the new one
//   std::shared_ptr<CacheMutex> mutex();          the key's mutex
//   bool wait(CacheMutex&, const std::function<bool()>& arrived);
//                                                 takes it as CacheMutex::acquire_until does;
//                                                 false: `arrived` said so, or the lock's own
//                                                 blocking timeout ran out; may throw (a
//                                                 deadline), holding nothing
//   std::optional<Timestamped<Value>> read();     the cached value now
//   Value create(std::shared_ptr<CacheMutex>& held);
//                                                 makes and stores a value; `held` is null
//                                                 when the mutex could not be taken, and a
//                                                 creator that keeps it (leaving it null)
//                                                 owns releasing it
//   bool create_in_background(std::shared_ptr<CacheMutex>& held);
//                                                 hands the mutex to a background creator
//                                                 (true), or there is none (false)
// Releases a mutex it still holds when destroyed.
template <class Steps>
class DogpileLock {
 public:
  using Value = typename Steps::Value;
  using Current = std::optional<Timestamped<Value>>;

  // `current`: the value read before, nullopt when there is none.
  DogpileLock(Steps& steps, Current current) : steps_(steps), current_(std::move(current)) {
    if (current_ && current_->created > 0) seen_ = current_->written;
  }
  ~DogpileLock() {
    if (held_) release_logged(*held_);
  }
  DogpileLock(const DogpileLock&) = delete;
  DogpileLock& operator=(const DogpileLock&) = delete;

  // The first half: the caller's value when it is decided without a creation (fresh, served
  // stale, or arrived while waiting); nullopt when the mutex is now held (or could not be
  // taken, its blocking timeout having run out: the value is then made without it, as dogpile
  // does), and finish() decides.
  std::optional<Value> enter() {
    if (steps_.fresh(current_)) return current_->value;
    std::shared_ptr<CacheMutex> mutex = steps_.mutex();
    if (steps_.serve_stale() && current_ && current_->created > 0) {
      if (!mutex->acquire(false)) return current_->value;  // regeneration in progress elsewhere
      serving_ = true;
      held_ = std::move(mutex);
      return std::nullopt;
    }
    Current ready;
    const bool held = steps_.wait(*mutex, [&] {
      ready = steps_.read();
      return arrived(ready);
    });
    if (held) held_ = std::move(mutex);
    if (arrived(ready)) {
      if (held_) release_logged(*std::exchange(held_, nullptr));
      return ready->value;
    }
    return std::nullopt;
  }

  // The second half, after enter() returned nullopt: `reread` is the value read again with the
  // mutex held. Returns it if it arrived; else the stale value while the background creator
  // makes a new one; else the creator's value.
  Value finish(Current reread) {
    if (arrived(reread)) return reread->value;
    if (reread && reread->created > 0 && steps_.serve_stale()) {
      current_ = std::move(reread);
      serving_ = true;
    }
    if (serving_ && steps_.create_in_background(held_)) return current_->value;
    return steps_.create(held_);
  }

 private:
  bool arrived(const Current& value) {
    return steps_.fresh(value) ||
           (value && value->created > 0 && (!seen_ || value->written != *seen_));
  }

  Steps& steps_;
  Current current_;
  std::optional<double> seen_;  // `written` of the value read first
  std::shared_ptr<CacheMutex> held_;
  bool serving_ = false;  // current_ is a stale value to serve while a new one is made
};

// Runs the dogpile algorithm above for one key and returns the value to give the caller.
template <class Steps>
typename Steps::Value dogpile_lock(Steps& steps,
                                   std::optional<Timestamped<typename Steps::Value>> current) {
  DogpileLock<Steps> lock(steps, std::move(current));
  if (auto decided = lock.enter()) return std::move(*decided);
  return lock.finish(steps.read());
}

}  // namespace dogpile
