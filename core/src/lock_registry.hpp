// The per-key dogpile mutexes of one region configuration: the backend's (a lock in Redis or
// memcached) or, when it has none, an in-process one. One mutex object per key lives while
// anyone holds a reference to it, and its entry goes with the last reference, so memory does
// not grow with the number of keys ever locked. Sharded so that locking different keys rarely
// contends.
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "dogpile/sdk/backend.hpp"
#include "dogpile/sdk/mutex.hpp"

namespace dogpile::detail {

class LockRegistry : public std::enable_shared_from_this<LockRegistry> {
 public:
  explicit LockRegistry(std::shared_ptr<CacheBackend> backend) : backend_(std::move(backend)) {}

  // The mutex of `key` (a key as the backend sees it).
  std::shared_ptr<CacheMutex> get(const std::string& key);
  // How many mutexes exist now.
  std::size_t size();

 private:
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, std::weak_ptr<CacheMutex>> mutexes;
  };

  Shard& shard_for(const std::string& key) {
    return shards_[std::hash<std::string>{}(key) % shards_.size()];
  }
  void forget(const std::string& key);

  std::shared_ptr<CacheBackend> backend_;
  std::array<Shard, 16> shards_;
};

}  // namespace dogpile::detail
