// A bounded pool of connections to a server, for a backend whose client connections are not
// thread-safe (hiredis contexts, libmemcached clients): each call leases one connection for its
// round trips and gives it back. At most `max_size` are open; a call that finds none idle opens
// one while fewer are open, else waits for one to come back, for at most `wait` seconds, then
// throws BackendUnavailable. A lease that saw its connection fail discards it, so the next
// lease opens a fresh one and the backend recovers by itself when the server returns. No lock
// is held across a round trip or while connecting.
//
//   ConnectionPool<Context> pool(16, 5.0, "Redis at 127.0.0.1:6379", [&] { return connect(); });
//   auto lease = pool.lease();
//   use(*lease);       // on a failure that leaves the connection unusable: lease.discard()
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "dogpile/sdk/errors.hpp"
#include "dogpile/sdk/value.hpp"

namespace dogpile {

// The largest connection_pool_size a backend's config may ask for.
inline constexpr unsigned long kMostPooledConnections = 1024;

// Connection: movable; a moved-from or default Connection is never used again.
template <class Connection>
class ConnectionPool {
 public:
  using Connect = std::function<Connection()>;

  // `server` names the pool's server in the error of a wait that times out.
  ConnectionPool(std::size_t max_size, double wait_seconds, std::string server, Connect connect)
      : max_size_(max_size == 0 ? 1 : max_size),
        wait_(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            std::chrono::duration<double>(wait_seconds))),
        wait_seconds_(wait_seconds),
        server_(std::move(server)),
        connect_(std::move(connect)) {}
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  class Lease {
   public:
    Lease(Lease&& other) noexcept
        : pool_(std::exchange(other.pool_, nullptr)),
          connection_(std::move(other.connection_)),
          discarded_(other.discarded_) {}
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    ~Lease() {
      if (pool_ != nullptr) pool_->give_back(std::move(connection_), discarded_);
    }

    Connection& operator*() noexcept { return connection_; }
    Connection* operator->() noexcept { return &connection_; }
    // The connection is not to be used again (it failed, or holds replies nobody will read):
    // closed when the lease ends instead of going back to the pool.
    void discard() noexcept { discarded_ = true; }

   private:
    friend class ConnectionPool;
    Lease(ConnectionPool& pool, Connection connection)
        : pool_(&pool), connection_(std::move(connection)) {}

    ConnectionPool* pool_;
    Connection connection_;
    bool discarded_ = false;
  };

  // An idle connection, else a new one (connect's exception propagates), else the first given
  // back within the wait.
  Lease lease() {
    std::unique_lock guard(mutex_);
    if (!available_.wait_for(guard, wait_, [&] { return !idle_.empty() || open_ < max_size_; })) {
      throw BackendUnavailable(server_ + ": all " + std::to_string(max_size_) +
                               " connections of the pool stayed busy for " +
                               python_float_repr(wait_seconds_) + " s");
    }
    if (!idle_.empty()) {
      Connection connection = std::move(idle_.back());
      idle_.pop_back();
      return Lease(*this, std::move(connection));
    }
    ++open_;
    guard.unlock();
    try {
      return Lease(*this, connect_());
    } catch (...) {
      {
        std::lock_guard relock(mutex_);
        --open_;
      }
      available_.notify_one();
      throw;
    }
  }

  // Connections open now: leased or idle.
  std::size_t open() const {
    std::lock_guard guard(mutex_);
    return open_;
  }

 private:
  void give_back(Connection connection, bool discarded) {
    {
      std::lock_guard guard(mutex_);
      if (discarded) {
        --open_;
      } else {
        idle_.push_back(std::move(connection));
      }
    }
    available_.notify_one();
    // A discarded connection closes here, outside the lock.
  }

  const std::size_t max_size_;
  const std::chrono::steady_clock::duration wait_;
  const double wait_seconds_;
  const std::string server_;
  const Connect connect_;
  mutable std::mutex mutex_;
  std::condition_variable available_;
  std::vector<Connection> idle_;
  std::size_t open_ = 0;
};

}  // namespace dogpile
