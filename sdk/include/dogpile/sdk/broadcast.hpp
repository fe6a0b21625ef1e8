// Messages between every process that shares a backend, as Redis pub/sub carries them: what
// keeps copies held in each process (dogpile.cache.layered's L1) coherent with the shared
// store. A backend that can carry them returns one from CacheBackend::broadcast(channel).
#pragma once

#include <functional>
#include <memory>
#include <string_view>

#include "dogpile/sdk/export.hpp"

namespace dogpile {

class DOGPILE_API Broadcast {
 public:
  // What a subscriber is told, on the broadcast's own thread, one call at a time. A callback
  // must return quickly; its exceptions are logged and dropped.
  struct Listener {
    // A message published on the channel, by any process (this one included).
    std::function<void(std::string_view message)> on_message;
    // false: messages may be missed from now on (the connection to the server is lost);
    // true: every message published from now on arrives (subscribed, or subscribed again).
    std::function<void(bool listening)> on_state;
  };

  // Stops the calls to its listener when destroyed; no call of it runs after the destructor
  // returns (so it must not be destroyed from inside one).
  class DOGPILE_API Subscription {
   public:
    virtual ~Subscription();
  };

  virtual ~Broadcast();

  // Sends `message` to every subscriber of the channel, in every process. Throws
  // BackendUnavailable when the server cannot be reached.
  virtual void publish(std::string_view message) = 0;

  // Calls `listener` for every message from now on; `on_state(true)` is called once the
  // subscription is in place (at once, if it already is).
  virtual std::unique_ptr<Subscription> subscribe(Listener listener) = 0;

  // Whether messages published now are sure to arrive.
  virtual bool listening() const = 0;
};

}  // namespace dogpile
