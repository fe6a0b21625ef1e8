// dogpile.cache.memory: the application's objects in an in-process map; a hit returns the
// stored object itself. dogpile.cache.memory_pickle: the same map holding the serialized wire
// format, as a server would, so the bytes path is used without one. Both read without a lock
// and, given max_size and/or max_bytes, stay within them by W-TinyLFU (concurrent_map.hpp).
#include <dogpile/sdk/sdk.hpp>

#include "concurrent_map.hpp"

namespace dogpile::memory {

namespace {

struct Settings {
  std::size_t shards;
  Cost limit;
};

Settings settings_of(const Arguments& arguments) {
  arguments.ignore("cache_dict",
                   "a Python dictionary cannot be given here; the backend keeps its own map");
  const unsigned shards = arguments.get("shards", 64u);
  if (shards < 1 || shards > 4096 || (shards & (shards - 1)) != 0) {
    throw ValidationError(arguments.key("shards") +
                          " must be a power of two between 1 and 4096, not " +
                          std::to_string(shards));
  }
  auto bound = [&](std::string_view name) -> std::uint64_t {
    const auto value = arguments.find<unsigned long>(name);
    if (!value) return kUnlimited;
    if (*value == 0) {
      throw ValidationError(arguments.key(name) +
                            " must be at least 1 (leave it out for no bound)");
    }
    return *value;
  };
  return {shards, {bound("max_size"), bound("max_bytes")}};
}

class MemoryBackend final : public ObjectBackend, public EvictionCounter {
 public:
  explicit MemoryBackend(const Arguments& arguments) : MemoryBackend(settings_of(arguments)) {}

  CachedValuePtr get(std::string_view key) override {
    CachedValuePtr value;
    map_.find(key, value);
    return value;
  }
  // The stored pointer itself, not a copy: readers of a hot key share no write.
  bool visit(std::string_view key, ValueVisitor visitor) override {
    return map_.visit(key, visitor);
  }
  void set(const std::string& key, CachedValuePtr value) override {
    map_.insert_or_assign(key, std::move(value));
  }
  void remove(std::string_view key) override { map_.erase(key); }
  std::uint64_t evictions() const noexcept override { return map_.evictions(); }

 private:
  explicit MemoryBackend(const Settings& settings)
      : map_(settings.shards, settings.limit, [](const CachedValuePtr& value) -> std::uint64_t {
          try {
            return value->payload_size();
          } catch (const Error&) {  // an object its codec cannot encode: its own size
            return sizeof(CachedValue);
          }
        }) {}

  ConcurrentMap<CachedValuePtr> map_;
};

class MemoryPickleBackend final : public BytesBackend, public EvictionCounter {
 public:
  explicit MemoryPickleBackend(const Arguments& arguments)
      : MemoryPickleBackend(settings_of(arguments)) {}

  std::optional<std::string> get_serialized(std::string_view key) override {
    std::optional<std::string> value(std::in_place);
    if (!map_.find(key, *value)) value.reset();
    return value;
  }
  void set_serialized(const std::string& key, std::string_view value) override {
    map_.insert_or_assign(key, std::string(value));
  }
  void remove(std::string_view key) override { map_.erase(key); }
  std::uint64_t evictions() const noexcept override { return map_.evictions(); }

 private:
  explicit MemoryPickleBackend(const Settings& settings)
      : map_(settings.shards, settings.limit,
             [](const std::string& value) -> std::uint64_t { return value.size(); }) {}

  ConcurrentMap<std::string> map_;
};

}  // namespace

}  // namespace dogpile::memory

DOGPILE_BACKEND_PLUGIN(memory, "dogpile.cache.memory", "1.1.0",
                       "In-process store of the application's objects (no serialization), "
                       "optionally bounded (max_size, max_bytes) by W-TinyLFU",
                       dogpile::memory::MemoryBackend);
DOGPILE_BACKEND_PLUGIN(memory_pickle, "dogpile.cache.memory_pickle", "1.1.0",
                       "In-process store of serialized values in dogpile's wire format, "
                       "optionally bounded (max_size, max_bytes) by W-TinyLFU",
                       dogpile::memory::MemoryPickleBackend);
