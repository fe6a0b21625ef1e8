// A CacheMutex is the lock the dogpile algorithm takes around the creation of one key's
// value. The core uses an in-process mutex unless the backend's get_mutex() returns one of
// its own, e.g. a lock held in Redis, so creation is exclusive across processes.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>
#include <thread>

#include "dogpile/sdk/export.hpp"

namespace dogpile {

class DOGPILE_API CacheMutex {
 public:
  // A point on the steady clock; Deadline::max() is no limit.
  using Deadline = std::chrono::steady_clock::time_point;

  virtual ~CacheMutex();

  // Takes the lock. With wait=false returns at once; returns whether the lock is now held
  // by the caller.
  virtual bool acquire(bool wait = true) = 0;

  // REQUIRES: the caller holds the lock.
  virtual void release() = 0;

  // Whether anyone holds the lock now (a snapshot, for diagnostics and key_is_locked).
  virtual bool locked() const = 0;

  // Waits for the lock as acquire(true) does, until `deadline` at most. A lock that is polled
  // (one held in a server) also calls `arrived` between polls and stops waiting when it
  // returns true: a waiter that only needs the value then gets it as soon as the holder stored
  // it, without taking the lock in turn. Returns whether the lock is now held; false when
  // `arrived` said so, when the deadline passed, or when the lock's own blocking timeout ran
  // out (the caller tells which). The default waits in acquire(true) without a deadline, and
  // polls acquire(false), asking `arrived` between tries, with one.
  virtual bool acquire_until(Deadline deadline, const std::function<bool()>& arrived);
};

// How a lock held in a server is waited for, by poll_lock.
struct LockPolling {
  bool wait = true;                 // false: one try
  double first_pause = 0.002;       // seconds between the first tries, doubling each time...
  double longest_pause = 0.1;       // ...up to this
  std::optional<double> timeout{};  // seconds to wait at most; unset: no limit
  CacheMutex::Deadline deadline = CacheMutex::Deadline::max();  // and no later than this
  // acquire_until's `arrived`: asked between tries; true ends the wait.
  const std::function<bool()>* arrived = nullptr;
  // Waits between tries for at most the seconds given, returning early when the lock may have
  // been released (the holder announced it); null: sleeps them.
  const std::function<void(double)>* pause = nullptr;
};

// Calls try_take() (one attempt at the server's lock, true when it is now ours) until it
// succeeds, returning true, or the polling ends, returning false.
template <class TryTake>
bool poll_lock(TryTake&& try_take, const LockPolling& polling) {
  using Clock = std::chrono::steady_clock;
  auto deadline = polling.deadline;
  if (polling.timeout) {
    deadline =
        std::min(deadline, Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                              std::chrono::duration<double>(*polling.timeout)));
  }
  double pause = polling.first_pause;
  for (;;) {
    if (try_take()) return true;
    const auto now = Clock::now();
    if (!polling.wait || now >= deadline) return false;
    if (polling.arrived != nullptr && (*polling.arrived)()) return false;
    // Not past the deadline: the last try comes at it.
    const double left = std::chrono::duration<double>(deadline - now).count();
    const double wait = std::min(pause, left);
    if (polling.pause != nullptr) {
      (*polling.pause)(wait);
    } else {
      std::this_thread::sleep_for(std::chrono::duration<double>(wait));
    }
    pause = std::min(pause * 2, polling.longest_pause);
  }
}

}  // namespace dogpile
