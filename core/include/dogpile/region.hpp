// A CacheRegion is the application's handle on one cache: a name, a backend plugin chosen
// by entry-point name (possibly wrapped in proxies), an expiration time, a key mangler and an
// invalidation strategy, as dogpile.cache's CacheRegion.
//
//   auto region = dogpile::make_region("local");
//   region->configure("dogpile.cache.memory", {.expiration_time = 300});
//   region->set("answer", 42);
//   if (auto v = region->get<int>("answer")) use(*v);
//
// Values are typed: set<T> stores a T; get<T> returns a shared pointer to it, null on a miss
// (dogpile's NO_VALUE), so a stored empty value and a miss differ. An object backend returns
// the stored object itself (no copy, no serialization); a byte backend's bytes are decoded by
// Codec<T>. Every backend gives the same answer (codec.hpp): a value reads as T when that is
// lossless, else ValueTypeError; bytes that are no value at all are a miss, logged at warning
// (or CantDeserialize, with ConfigureOptions::raise_on_undecodable).
//
// get() honours the expiration time and the region's invalidation: a value older than
// either is a miss unless ignore_expiration is set.
//
// get_or_create() runs the dogpile lock (see lock.hpp): the creator of a missing or expired
// value runs at most once per key at a time; while it runs, callers are given the stale value
// if there is one, or wait for the new one. Thread-safe.
#pragma once

#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "dogpile/codec.hpp"
#include "dogpile/keys.hpp"
#include "dogpile/options.hpp"
#include "dogpile/sdk/stats.hpp"
#include "dogpile/values.hpp"

namespace dogpile {

class CacheRegion;
template <class Fn, class ToStr>
class CachedFunction;
template <class Fn, class ToStr>
class CachedMultiFunction;
template <class R>
struct FunctionCacheOptions;

namespace detail {
// The region's private types: see region.cpp and detail/region_impl.hpp.
struct RegionState;
struct RegionSettings;
class BackendGuard;
class CreatorPool;
class StateKeeper;
class StatePin;
struct Lookup;
struct Created;
// Makes get_or_create's value; get_or_create_multi's values for the keys given, in their
// order (fewer leave the last keys without one).
using ValueMaker = std::function<Created()>;
using MultiValueMaker = std::function<std::vector<Created>(const Keys&)>;
}  // namespace detail

class DOGPILE_API CacheRegion {
 public:
  // `key_mangler`, when given, is applied to every key; otherwise the backend's recommended
  // mangler, if any. `async_creation_runner`, when given, regenerates stale values in the
  // background.
  explicit CacheRegion(std::string name = {}, KeyMangler key_mangler = {},
                       AsyncCreationRunner async_creation_runner = {});
  explicit CacheRegion(RegionOptions options);
  ~CacheRegion();
  CacheRegion(const CacheRegion&) = delete;
  CacheRegion& operator=(const CacheRegion&) = delete;

  const std::string& name() const noexcept { return name_; }
  const Clock& clock() const noexcept { return *clock_; }

  // Loads the backend plugin `backend` with options.arguments and makes it this region's.
  // Throws RegionAlreadyConfigured when already configured (unless
  // replace_existing_backend), PluginNotFound / PluginLoadError, ValidationError for bad
  // arguments or expiration time. A replaced backend is released once no call uses it.
  CacheRegion& configure(std::string_view backend, ConfigureOptions options = {});

  // dogpile.cache's configure_from_config: reads `<prefix>backend`,
  // `<prefix>expiration_time`, `<prefix>arguments.*`, `<prefix>wrap` and
  // `<prefix>replace_existing_backend` from a flat dictionary, after coerce_string_conf, and
  // this library's keys (see the README's configuration reference). Other keys under the
  // prefix are rejected, naming the key.
  CacheRegion& configure_from_config(const ConfigDict& config, std::string_view prefix);

  bool is_configured() const noexcept;

  // The outermost backend (the first proxy, or the backend itself) and the backend itself.
  std::shared_ptr<CacheBackend> backend() const;
  std::shared_ptr<CacheBackend> actual_backend() const;
  // The entry-point name the region was configured with.
  std::string backend_name() const;
  // nullopt: values never expire.
  std::optional<double> expiration_time() const;

  // Typed operations.
  template <class T>
  std::shared_ptr<const T> get(std::string_view key, const GetOptions& options = {}) const;
  template <class T>
  std::vector<std::shared_ptr<const T>> get_multi(const Keys& keys,
                                                  const GetOptions& options = {}) const;
  // Calls `reader(const T&)` with the value get<T>(key, options) would return, and returns
  // true; returns false without calling it when get<T> would return null. Its exceptions,
  // and get<T>'s, propagate. On dogpile.cache.memory without proxies the value is read where
  // it is stored, without the reference count increment of get's shared_ptr, the one write
  // that every reader of a hot key shares. Keep `reader` short (memory the backend retires
  // meanwhile waits for it to return) and keep no reference to the value past it.
  template <class T, class Reader>
  bool visit(std::string_view key, Reader&& reader, const GetOptions& options = {}) const;
  template <class T>
  void set(std::string_view key, T&& value);
  // `mapping` is any range of (key, value) pairs, e.g. std::map<std::string, T>.
  template <class Mapping>
  void set_multi(const Mapping& mapping);

  void remove(std::string_view key);
  void remove_multi(const Keys& keys);

  // The cached value of `key`, or the creator's result when it is missing, expired, of
  // another format version or invalidated. `creator` takes no argument and returns the value
  // (any type T). expiration_time overrides the region's; -1: never expires. When
  // should_cache_fn returns false the value is returned but not stored. Exceptions from the
  // creator reach the caller that ran it; nothing is stored and the lock is released.
  // With an async runner the creator is copied and may run after this call returns: capture
  // by value.
  template <class Creator, class T = stored_t<std::invoke_result_t<Creator&>>>
  std::shared_ptr<const T> get_or_create(
      std::string_view key, Creator&& creator, Seconds expiration_time = {},
      std::type_identity_t<std::function<bool(const T&)>> should_cache_fn = {});

  // dogpile.cache's get_or_create_multi: one backend get_multi for all keys; `creator` is
  // called once with the keys that need a value, sorted, and returns a sequence of values for
  // them in that order; the result is aligned with `keys` (duplicates allowed). As in
  // dogpile.cache, keys left without a value by a shorter sequence are not stored and read as
  // null (or their stale value); a longer sequence throws ValidationError. should_cache_fn is
  // asked per value.
  // A creator may return std::optional<T> values: an empty one is neither cached nor returned
  // (its result is null).
  template <class Creator,
            class T = stored_t<typename detail::unwrap_optional<typename std::remove_cvref_t<
                std::invoke_result_t<Creator&, const Keys&>>::value_type>::type>>
  std::vector<std::shared_ptr<const T>> get_or_create_multi(
      const Keys& keys, Creator&& creator, Seconds expiration_time = {},
      std::type_identity_t<std::function<bool(const T&)>> should_cache_fn = {});

  // The stored CachedValue (payload and metadata: cached_time(), age(clock().now()) by this
  // region's clock), or null if there is none or it is expired or invalidated (unless
  // ignore_expiration).
  CachedValuePtr get_value_metadata(std::string_view key, const GetOptions& options = {}) const;
  std::vector<CachedValuePtr> get_value_metadata_multi(const Keys& keys,
                                                       const GetOptions& options = {}) const;
  // Stores an already built value under `key` (after key mangling).
  void set_value(std::string_view key, CachedValuePtr value);
  void set_value_multi(const ValueMapping& mapping);

  // A cached function: `fn` (a function, a member function, a lambda or another function
  // object) served through get_or_create, keyed by `name` and its arguments. See
  // cached_function.hpp.
  template <class Fn, class ToStr = PythonStr>
  CachedFunction<std::decay_t<Fn>, ToStr> cache_on_arguments(
      std::string name, Fn&& fn,
      FunctionCacheOptions<typename CachedFunction<std::decay_t<Fn>, ToStr>::result_type> options =
          {},
      ToStr to_str = {});

  // A cached multi-argument function, served through get_or_create_multi.
  template <class Fn, class ToStr = PythonStr>
  CachedMultiFunction<std::decay_t<Fn>, ToStr> cache_multi_on_arguments(
      std::string name, Fn&& fn,
      FunctionCacheOptions<typename CachedMultiFunction<std::decay_t<Fn>, ToStr>::result_type>
          options = {},
      ToStr to_str = {});

  const FunctionKeyGenerator& function_key_generator() const noexcept {
    return function_key_generator_;
  }
  const FunctionMultiKeyGenerator& function_multi_key_generator() const noexcept {
    return function_multi_key_generator_;
  }

  // Whether the dogpile lock of `key` is held now.
  bool key_is_locked(std::string_view key) const;
  // The dogpile mutex of `key` (after key mangling): the backend's, or an in-process one
  // shared by everyone asking for this key while anyone holds it.
  std::shared_ptr<CacheMutex> mutex(std::string_view key) const;

  // How many per-key dogpile mutexes exist now (each lives while anyone holds it).
  std::size_t locks_in_use() const;

  // The figures of the first StatsProvider in the proxy chain (e.g. dogpile.proxy.stats),
  // nullopt when there is none.
  std::optional<StatsSnapshot> stats() const;
  // Entries the backend evicted to stay within its bound (dogpile.cache.memory's max_size or
  // max_bytes) since it was configured; 0 for a backend without a bound.
  std::uint64_t evictions() const;

  // Invalidates every value created before now; see RegionInvalidationStrategy.
  void invalidate(bool hard = true);
  // The strategy in effect: the one given to configure, valid while that configuration is
  // (a replaced one is released), else the region's own.
  RegionInvalidationStrategy& region_invalidator() const;

  // The key the backend sees for `key`.
  std::string mangle(std::string_view key) const;

 private:
  template <class, class>
  friend class CachedFunction;

  using State = detail::RegionState;
  using Lookup = detail::Lookup;
  using Created = detail::Created;
  using Decoder = CachedValuePtr (*)(CachedValuePtr&& value);
  using ValueMaker = detail::ValueMaker;
  using MultiValueMaker = detail::MultiValueMaker;

  // The configuration in effect, pinned: it stays valid while `pin` lives. Throws
  // RegionNotConfigured when there is none.
  const State& pinned(detail::StatePin& pin) const;

  // configure, with the settings a config file gives the region (key mangler, async runner)
  // in place of its own.
  CacheRegion& configure_with(std::string_view backend, ConfigureOptions options,
                              const detail::RegionSettings& settings);

  // get_or_create, with the creator made by make_creator() only when a value has to be
  // created: a hit builds nothing (a cached function's creator copies its arguments).
  template <class T, class MakeCreator>
  std::shared_ptr<const T> get_or_create_made(std::string_view key, MakeCreator&& make_creator,
                                              std::optional<double> expiration_time,
                                              const std::function<bool(const T&)>& should_cache_fn);

  // get / get_multi, decoding with `decode`.
  // `type`, when given, is the type `decode` makes: a stored object of it is not decoded.
  CachedValuePtr get_decoded(std::string_view key, const GetOptions& options, Decoder decode,
                             const std::type_info* type) const;
  // visit: calls `typed` with the value, when fresh, if it holds a `type` object, else decoded
  // with `decode`; exceptions (`typed`'s too) propagate after the backend's visit returns.
  bool visit_decoded(std::string_view key, const GetOptions& options, const std::type_info& type,
                     Decoder decode, ValueVisitor typed) const;
  std::vector<CachedValuePtr> get_decoded_multi(const Keys& keys, const GetOptions& options,
                                                Decoder decode) const;
  // The first read of get_or_create, before any lock.
  Lookup lookup(std::string_view key, std::optional<double> expiration_time, Decoder decode,
                const std::type_info* type) const;
  // get_or_create past a lookup that found no fresh value: the miss path
  // (regeneration.hpp), or for a value due for an eager refresh, that value while a refresh
  // starts.
  CachedValuePtr regenerate(const Lookup& lookup, std::string_view key, ValueMaker make,
                            Decoder decode);
  // get_or_create_multi's values, aligned with `keys`.
  std::vector<CachedValuePtr> get_or_create_values(const Keys& keys, const MultiValueMaker& make,
                                                   std::optional<double> expiration_time,
                                                   Decoder decode);

  std::string name_;
  KeyMangler user_key_mangler_;
  AsyncCreationRunner async_creation_runner_;
  FunctionKeyGenerator function_key_generator_;
  FunctionMultiKeyGenerator function_multi_key_generator_;
  std::shared_ptr<const Clock> clock_;
  std::shared_ptr<RegionInvalidationStrategy> default_invalidator_;
  std::mutex configure_mutex_;
  // Runs creators under soft_timeout / hard_timeout; made by the first configure that sets one.
  std::unique_ptr<detail::CreatorPool> creators_;
  // The configuration in effect, read on every call, and the replaced ones until no call uses
  // them (region.cpp).
  std::unique_ptr<detail::StateKeeper> states_;
};

// dogpile.cache's make_region(): a new, unconfigured region.
DOGPILE_API std::shared_ptr<CacheRegion> make_region(RegionOptions options = {});
// A template so that make_region({.name = "x"}) picks the overload above.
template <std::convertible_to<std::string> Name>
std::shared_ptr<CacheRegion> make_region(Name&& name, KeyMangler key_mangler = {},
                                         AsyncCreationRunner async_creation_runner = {}) {
  return make_region(RegionOptions{.name = std::string(std::forward<Name>(name)),
                                   .key_mangler = std::move(key_mangler),
                                   .async_creation_runner = std::move(async_creation_runner)});
}

}  // namespace dogpile

// The template definitions, and cached functions.
#include "dogpile/cached_function.hpp"
#include "dogpile/detail/region_impl.hpp"
