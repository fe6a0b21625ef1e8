// A CacheMutex is the lock the dogpile algorithm takes around the creation of one key's
// value. The core uses an in-process mutex unless the backend's get_mutex() returns one of
// its own, e.g. a lock held in Redis, so creation is exclusive across processes.
#pragma once

#include <functional>

#include "dogpile/sdk/export.hpp"

namespace dogpile {

class DOGPILE_API CacheMutex {
 public:
  virtual ~CacheMutex();

  // Takes the lock. With wait=false returns at once; returns whether the lock is now held
  // by the caller.
  virtual bool acquire(bool wait = true) = 0;

  // REQUIRES: the caller holds the lock.
  virtual void release() = 0;

  // Whether anyone holds the lock now (a snapshot, for diagnostics and key_is_locked).
  virtual bool locked() const = 0;

  // Waits for the lock as acquire(true) does, but a lock that can only be polled (one held in
  // a server) also calls `value_ready` between polls and gives up, returning false, when it
  // returns true: a waiter that only needs the value then gets it as soon as the holder
  // stored it, without taking the lock in turn. The default blocks in acquire(true).
  virtual bool acquire_unless(const std::function<bool()>& value_ready);
};

}  // namespace dogpile
