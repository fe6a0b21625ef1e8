// A thread-safe hash map split into shards, each behind its own reader-writer lock, so
// threads working on different keys rarely contend. Shared by the memory backends.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace dogpile::memory {

// Not noexcept on purpose: libstdc++ then stores each node's hash, so a lookup compares
// hashes before keys and never rehashes the keys of a bucket's chain (as it does for
// std::hash<std::string>, whose hashes it also stores).
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view key) const {
    return std::hash<std::string_view>{}(key);
  }
};

template <class Value>
class ShardedMap {
 public:
  explicit ShardedMap(std::size_t shards) : shards_(shards) {}

  // The value stored under `key`, copied out under the shard's shared lock.
  std::optional<Value> find(std::string_view key) const {
    const std::size_t hash = StringHash{}(key);
    const Shard& shard = shards_[hash % shards_.size()];
    std::shared_lock guard(shard.mutex);
    auto it = shard.map.find(key);
    if (it == shard.map.end()) return std::nullopt;
    return it->second;
  }

  void insert_or_assign(const std::string& key, Value value) {
    Shard& shard = shards_[StringHash{}(key) % shards_.size()];
    std::unique_lock guard(shard.mutex);
    shard.map.insert_or_assign(key, std::move(value));
  }

  void erase(std::string_view key) {
    Shard& shard = shards_[StringHash{}(key) % shards_.size()];
    std::unique_lock guard(shard.mutex);
    auto it = shard.map.find(key);
    if (it != shard.map.end()) shard.map.erase(it);
  }

 private:
  // Each shard on its own cache lines, so a lock taken in one does not slow its neighbours.
  struct alignas(64) Shard {
    mutable std::shared_mutex mutex;
    std::unordered_map<std::string, Value, StringHash, std::equal_to<>> map;
  };
  std::vector<Shard> shards_;
};

}  // namespace dogpile::memory
