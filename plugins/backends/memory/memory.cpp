// dogpile.cache.memory: the application's objects in a sharded in-process hash map; a hit
// returns the stored object itself. dogpile.cache.memory_pickle: the same map holding the
// serialized wire format, as a server would, so the bytes path is used without one.
#include <dogpile/sdk/sdk.hpp>

#include "sharded_map.hpp"

namespace dogpile::memory {

namespace {

std::size_t shard_count(const Arguments& arguments) {
  arguments.ignore("cache_dict",
                   "a Python dictionary cannot be given here; the backend keeps its own map");
  const unsigned shards = arguments.get("shards", 16u);
  if (shards < 1 || shards > 4096) {
    throw ValidationError(arguments.key("shards") + " must be between 1 and 4096, not " +
                          std::to_string(shards));
  }
  return shards;
}

class MemoryBackend final : public ObjectBackend {
 public:
  explicit MemoryBackend(const Arguments& arguments) : map_(shard_count(arguments)) {}

  CachedValuePtr get(std::string_view key) override {
    auto found = map_.find(key);
    return found ? std::move(*found) : nullptr;
  }
  void set(const std::string& key, CachedValuePtr value) override {
    map_.insert_or_assign(key, std::move(value));
  }
  void remove(std::string_view key) override { map_.erase(key); }

 private:
  ShardedMap<CachedValuePtr> map_;
};

class MemoryPickleBackend final : public BytesBackend {
 public:
  explicit MemoryPickleBackend(const Arguments& arguments) : map_(shard_count(arguments)) {}

  std::optional<std::string> get_serialized(std::string_view key) override {
    return map_.find(key);
  }
  void set_serialized(const std::string& key, std::string_view value) override {
    map_.insert_or_assign(key, std::string(value));
  }
  void remove(std::string_view key) override { map_.erase(key); }

 private:
  ShardedMap<std::string> map_;
};

}  // namespace

}  // namespace dogpile::memory

DOGPILE_BACKEND_PLUGIN(memory, "dogpile.cache.memory", "1.0.0",
                       "In-process store of the application's objects (no serialization)",
                       dogpile::memory::MemoryBackend);
DOGPILE_BACKEND_PLUGIN(memory_pickle, "dogpile.cache.memory_pickle", "1.0.0",
                       "In-process store of serialized values in dogpile's wire format",
                       dogpile::memory::MemoryPickleBackend);
