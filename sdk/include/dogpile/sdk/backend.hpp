// A CacheBackend stores CachedValues under string keys. It is what a backend plugin
// implements and what a region calls, through any proxies wrapping it.
//
// There are two families of operations: on objects (CachedValuePtr, what in-process stores
// keep) and on serialized bytes (the wire format, what servers keep). A backend implements
// the family it stores natively by deriving from ObjectBackend or BytesBackend; the other
// family then has a correct default, so every caller and every proxy can use either.
// remove/remove_multi are shared by both families, as in dogpile.cache.
//
// The bytes family stores arbitrary bytes (binary-safe, NUL included) and returns exactly
// what was stored; bytes that are not in the wire format read back through the object family
// as a value whose decodable() is false.
//
// Multi operations take and return sequences aligned with their keys. A missing key is a
// null CachedValuePtr (dogpile's NO_VALUE) or an empty optional.
//
// Backends are called from many threads at once and must be thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "dogpile/sdk/broadcast.hpp"
#include "dogpile/sdk/export.hpp"
#include "dogpile/sdk/mutex.hpp"
#include "dogpile/sdk/value.hpp"

namespace dogpile {

using KeyMangler = std::function<std::string(std::string_view)>;
// The hex SHA-1 of the key's bytes (UTF-8), as dogpile's sha1_mangle_key: a mangler a backend
// can recommend (CacheBackend::key_mangler) for keys its server cannot take as they are.
DOGPILE_API std::string sha1_mangle_key(std::string_view key);
// `digits` random hex digits (a per-thread generator seeded from std::random_device): lock
// tokens, and the origin that lets a process recognize its own broadcast messages.
DOGPILE_API std::string random_hex(std::size_t digits);
using Keys = std::vector<std::string>;

// The kinds of backend call; both families are the same kind (get and get_serialized are
// `get`). The first kCacheOperationCount are the operations on values, which the stats proxy
// measures; get_mutex comes after them.
enum class CacheOperation : std::size_t {
  get,
  get_multi,
  set,
  set_multi,
  remove,
  remove_multi,
  get_mutex
};
inline constexpr std::size_t kCacheOperationCount = 6;
DOGPILE_API const char* operation_name(CacheOperation operation) noexcept;

// What a backend with a size limit (BackendCapabilities::max_value_size) calls before storing
// `value`: throws CantSerialize naming `backend` and the limit when the value is larger.
DOGPILE_API void check_value_size(std::string_view value, std::size_t limit,
                                  std::string_view backend);
using ValueMapping = std::vector<std::pair<std::string, CachedValuePtr>>;
using SerializedMapping = std::vector<std::pair<std::string, std::string>>;
using SerializedValues = std::vector<std::optional<std::string>>;

// What a backend declares about itself beyond the contract every backend keeps; the
// conformance kit reads it to know which of its checks apply.
struct BackendCapabilities {
  // False for a backend that stores nothing (dogpile.cache.null): every get misses.
  bool stores_values = true;
  // The largest value, in bytes of the wire format, the backend stores; set/set_serialized
  // refuse a larger one with CantSerialize naming the limit. 0: no limit of the backend's own.
  std::size_t max_value_size = 0;
  // False when the mutexes get_mutex gives never block anyone (dogpile.cache.null).
  bool mutexes_exclude = true;
};

// What CacheBackend::visit calls with the value it found: a callable and its context, which
// cross a plugin boundary without std::function. Refers to the callable; valid while it lives.
class ValueVisitor {
 public:
  template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, ValueVisitor>)
  explicit ValueVisitor(F& f)
      : call_([](void* c, const CachedValuePtr& v) { (*static_cast<F*>(c))(v); }), context_(&f) {}
  void operator()(const CachedValuePtr& value) const { call_(context_, value); }

 private:
  void (*call_)(void*, const CachedValuePtr&);
  void* context_;
};

class DOGPILE_API CacheBackend {
 public:
  virtual ~CacheBackend();

  // Object family.
  virtual CachedValuePtr get(std::string_view key) = 0;
  virtual std::vector<CachedValuePtr> get_multi(const Keys& keys) = 0;
  virtual void set(const std::string& key, CachedValuePtr value) = 0;
  virtual void set_multi(const ValueMapping& mapping) = 0;

  // Bytes family.
  virtual std::optional<std::string> get_serialized(std::string_view key) = 0;
  virtual SerializedValues get_serialized_multi(const Keys& keys) = 0;
  virtual void set_serialized(const std::string& key, std::string_view value) = 0;
  virtual void set_serialized_multi(const SerializedMapping& mapping) = 0;

  // Calls `visitor` with the value stored under `key` and returns true; false when there is
  // none. The value passed is valid during the call only. An in-process backend may pass the
  // pointer it holds instead of a copy, so that readers of one key share no write (the copy's
  // reference count): dogpile.cache.memory does. The default passes get(key).
  virtual bool visit(std::string_view key, ValueVisitor visitor);

  // Removing a key that is absent is not an error (idempotent).
  virtual void remove(std::string_view key) = 0;
  virtual void remove_multi(const Keys& keys) = 0;

  // The mutex for the dogpile lock of `key`; null means "use an in-process lock".
  virtual std::unique_ptr<CacheMutex> get_mutex(std::string_view key);

  // The key mangler the backend recommends (e.g. SHA-1 for servers with key limits); used by
  // a region whose user gave none. Empty means keys are stored as given.
  virtual KeyMangler key_mangler() const;

  // Whether the backend's mutexes expire by themselves (a lock timeout).
  virtual bool has_lock_timeout() const;

  virtual BackendCapabilities capabilities() const;

  // Messages on `channel` between every process that shares this backend (Redis pub/sub);
  // null when the backend cannot carry them. Calls with the same channel may share one.
  virtual std::shared_ptr<Broadcast> broadcast(std::string_view channel);
};

// Base for backends that store CachedValue objects (e.g. dogpile.cache.memory). Implement the
// object family, remove and remove_multi; the bytes family serializes and parses the wire
// format. get_multi/set_multi/remove_multi default to loops over the single operations.
class DOGPILE_API ObjectBackend : public CacheBackend {
 public:
  std::vector<CachedValuePtr> get_multi(const Keys& keys) override;
  void set_multi(const ValueMapping& mapping) override;
  void remove_multi(const Keys& keys) override;

  std::optional<std::string> get_serialized(std::string_view key) override;
  SerializedValues get_serialized_multi(const Keys& keys) override;
  void set_serialized(const std::string& key, std::string_view value) override;
  void set_serialized_multi(const SerializedMapping& mapping) override;
};

// Base for backends that store the wire format (e.g. redis, memcached). Implement the bytes
// family, remove and remove_multi; the object family serializes and parses. Multi operations
// default to loops; a server backend overrides them with one round trip.
class DOGPILE_API BytesBackend : public CacheBackend {
 public:
  SerializedValues get_serialized_multi(const Keys& keys) override;
  void set_serialized_multi(const SerializedMapping& mapping) override;
  void remove_multi(const Keys& keys) override;

  CachedValuePtr get(std::string_view key) override;
  std::vector<CachedValuePtr> get_multi(const Keys& keys) override;
  void set(const std::string& key, CachedValuePtr value) override;
  void set_multi(const ValueMapping& mapping) override;
};

}  // namespace dogpile
