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

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <variant>
#include <vector>

#include "dogpile/async_runner.hpp"
#include "dogpile/cached_function.hpp"
#include "dogpile/codec.hpp"
#include "dogpile/config.hpp"
#include "dogpile/invalidation.hpp"
#include "dogpile/keys.hpp"
#include "dogpile/lock.hpp"
#include "dogpile/sdk/backend.hpp"
#include "dogpile/sdk/errors.hpp"
#include "dogpile/sdk/proxy.hpp"
#include "dogpile/sdk/stats.hpp"
#include "dogpile/sdk/value.hpp"
#include "dogpile/seconds.hpp"

namespace dogpile {

namespace detail {

template <class T>
T& unwrap(T& value) {
  return value;
}
template <class T>
T& unwrap(std::optional<T>& value) {
  return *value;
}

template <class T>
struct unwrap_optional {
  using type = T;
};
template <class T>
struct unwrap_optional<std::optional<T>> {
  using type = T;
};

// The value type get_or_create_multi stores for a creator's results.
template <class Creator>
using multi_value_t = stored_t<typename unwrap_optional<
    typename std::remove_cvref_t<std::invoke_result_t<Creator&, const Keys&>>::value_type>::type>;

}  // namespace detail

// A proxy plugin to load by entry-point name, with its arguments.
struct ProxySpec {
  ProxySpec(std::string proxy_name, nlohmann::json proxy_arguments = nlohmann::json::object())
      : name(std::move(proxy_name)), arguments(std::move(proxy_arguments)) {}
  ProxySpec(const char* proxy_name) : ProxySpec(std::string(proxy_name)) {}
  std::string name;
  nlohmann::json arguments;
};

// A proxy to wrap around the backend: a proxy plugin, or an instance the application made.
using Wrapper = std::variant<ProxySpec, std::shared_ptr<ProxyBackend>>;

// What make_region() takes, as dogpile.cache's make_region(): all optional.
struct RegionOptions {
  std::string name{};
  // Applied to every key; otherwise the backend's recommended mangler, if any.
  KeyMangler key_mangler{};
  // Regenerates stale values in the background (see async_runner.hpp).
  AsyncCreationRunner async_creation_runner{};
  // The keys of cached functions (see keys.hpp and cached_function.hpp).
  FunctionKeyGenerator function_key_generator = dogpile::function_key_generator;
  FunctionMultiKeyGenerator function_multi_key_generator = dogpile::function_multi_key_generator;
};

struct ConfigureOptions {
  // Seconds (or a std::chrono::duration) after creation at which a value expires; unset or -1:
  // never.
  Seconds expiration_time{};
  // The backend's arguments, name -> value.
  nlohmann::json arguments = nlohmann::json::object();
  // Proxies; the first is the outermost (called first), as dogpile.cache's `wrap`.
  std::vector<Wrapper> wrap{};
  bool replace_existing_backend = false;
  std::shared_ptr<RegionInvalidationStrategy> region_invalidator{};
  // How the config names this region's keys in error messages (e.g. "cache.local.").
  std::string config_prefix{};
  // Regenerates stale values in the background (see async_runner.hpp); replaces the runner
  // given to the region's constructor.
  AsyncCreationRunner async_creation_runner{};
  // Or: a ThreadPoolRunner with this many threads, owned by the region (0: none), holding at
  // most async_queue_limit waiting regenerations.
  std::size_t async_thread_pool = 0;
  std::size_t async_queue_limit = 1024;
  // Replaces the region's key mangler (e.g. from config: key_mangler = sha1).
  KeyMangler key_mangler{};
  // Bytes that decode as no value (garbage, another serializer's output) throw
  // CantDeserialize instead of being a miss that is logged at warning.
  bool raise_on_undecodable = false;
};

struct GetOptions {
  // Overrides the region's expiration time for this call; -1: never expires.
  Seconds expiration_time{};
  // Return the value whatever its age and the region's invalidation.
  bool ignore_expiration = false;
};

class DOGPILE_API CacheRegion {
 public:
  // `key_mangler`, when given, is applied to every key; otherwise the backend's recommended
  // mangler, if any. `async_creation_runner`, when given, regenerates stale values in the
  // background (see async_runner.hpp).
  explicit CacheRegion(std::string name = {}, KeyMangler key_mangler = {},
                       AsyncCreationRunner async_creation_runner = {});
  explicit CacheRegion(RegionOptions options);
  ~CacheRegion();
  CacheRegion(const CacheRegion&) = delete;
  CacheRegion& operator=(const CacheRegion&) = delete;

  const std::string& name() const noexcept { return name_; }

  // Loads the backend plugin `backend` with options.arguments and makes it this region's.
  // Throws RegionAlreadyConfigured when already configured (unless
  // replace_existing_backend), PluginNotFound / PluginLoadError, ValidationError for bad
  // arguments or expiration time.
  CacheRegion& configure(std::string_view backend, ConfigureOptions options = {});

  // dogpile.cache's configure_from_config: reads `<prefix>backend`,
  // `<prefix>expiration_time`, `<prefix>arguments.*`, `<prefix>wrap` and
  // `<prefix>replace_existing_backend` from a flat dictionary, after coerce_string_conf.
  // Other keys under the prefix are rejected, naming the key.
  CacheRegion& configure_from_config(const ConfigDict& config, std::string_view prefix);

  bool is_configured() const noexcept { return state_.load(std::memory_order_acquire) != nullptr; }

  // The outermost backend (the first proxy, or the backend itself) and the backend itself.
  std::shared_ptr<CacheBackend> backend() const;
  std::shared_ptr<CacheBackend> actual_backend() const;
  // The entry-point name the region was configured with.
  const std::string& backend_name() const;
  // nullopt: values never expire.
  std::optional<double> expiration_time() const;

  // Typed operations.
  template <class T>
  std::shared_ptr<const T> get(std::string_view key, const GetOptions& options = {}) const;
  template <class T>
  std::vector<std::shared_ptr<const T>> get_multi(const Keys& keys,
                                                  const GetOptions& options = {}) const;
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
  template <class Creator, class T = detail::multi_value_t<Creator>>
  std::vector<std::shared_ptr<const T>> get_or_create_multi(
      const Keys& keys, Creator&& creator, Seconds expiration_time = {},
      std::type_identity_t<std::function<bool(const T&)>> should_cache_fn = {});

  // The stored CachedValue (payload and metadata: cached_time(), age()), or null if there is
  // none or it is expired or invalidated (unless ignore_expiration).
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
      ToStr to_str = {}) {
    return {*this, std::move(name), std::forward<Fn>(fn), std::move(options), std::move(to_str)};
  }

  // A cached multi-argument function, served through get_or_create_multi.
  template <class Fn, class ToStr = PythonStr>
  CachedMultiFunction<std::decay_t<Fn>, ToStr> cache_multi_on_arguments(
      std::string name, Fn&& fn,
      FunctionCacheOptions<typename CachedMultiFunction<std::decay_t<Fn>, ToStr>::result_type>
          options = {},
      ToStr to_str = {}) {
    return {*this, std::move(name), std::forward<Fn>(fn), std::move(options), std::move(to_str)};
  }

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

  // Invalidates every value created before now; see RegionInvalidationStrategy.
  void invalidate(bool hard = true);
  RegionInvalidationStrategy& region_invalidator() const;

  // The key the backend sees for `key`.
  std::string mangle(std::string_view key) const;

  // Builds a CachedValue holding `value` as an object (a stored_t<T>), created at `created`.
  template <class T>
  static CachedValuePtr make_value(T&& value, double created = now_seconds());

  // The payload of `value` as a T (null when `value` is null), by the rule of codec.hpp;
  // `key` is for messages. Throws ValueTypeError, or CantDeserialize for bytes that decode as
  // no value.
  template <class T>
  static std::shared_ptr<const T> value_as(CachedValuePtr value, std::string_view key);

 private:
  template <class, class, class>
  friend class CachedFunction;
  // get_or_create, with the creator made by make_creator() only when a value has to be
  // created: a hit builds nothing (a cached function's creator copies its arguments).
  template <class T, class MakeCreator>
  std::shared_ptr<const T> get_or_create_made(std::string_view key, MakeCreator&& make_creator,
                                              std::optional<double> expiration_time,
                                              const std::function<bool(const T&)>& should_cache_fn);

  struct State;
  class LockRegistry;
  // Turns a stored value into one whose object is a T: the value itself when it already is.
  // Throws ValueTypeError / CantDeserialize with "cannot be read as a T: why".
  using Decoder = CachedValuePtr (*)(const CachedValuePtr& value);
  template <class T>
  static CachedValuePtr decode_as(const CachedValuePtr& value);
  template <class T>
  static CachedValuePtr make_value_with(T&& value, ValueMetadata metadata);
  // `value` (not null) decoded by `decode` (null: only checked to be decodable); errors name
  // `key`.
  static CachedValuePtr decode_for_key(const CachedValuePtr& value, std::string_view key,
                                       Decoder decode);
  // `value`, read from the backend for `key`, decoded by `decode` (null: not decoded). A
  // value that does not decode is a miss, logged, unless the region raises on them.
  CachedValuePtr decoded(const State& state, CachedValuePtr value, std::string_view key,
                         Decoder decode) const;
  // get / get_multi, decoding with `decode`.
  CachedValuePtr get_decoded(std::string_view key, const GetOptions& options, Decoder decode) const;
  std::vector<CachedValuePtr> get_decoded_multi(const Keys& keys, const GetOptions& options,
                                                Decoder decode) const;
  using Current = std::optional<Timestamped<CachedValuePtr>>;
  // A value the creator made, and whether should_cache_fn lets it be stored.
  struct Created {
    CachedValuePtr value;
    bool cache = true;
  };
  using ValueMaker = std::function<Created()>;
  using MultiValueMaker = std::function<std::vector<Created>(const Keys&)>;

  // The first read of get_or_create, before any lock.
  struct Lookup {
    const State* state = nullptr;
    std::string mangled_storage;
    std::string_view mangled;
    std::optional<double> expiration;  // in effect for this call; nullopt: never
    Current current;
    bool fresh() const { return current && !dogpile_expired(current->created, expiration); }
  };
  Lookup lookup(std::string_view key, std::optional<double> expiration_time, Decoder decode) const;
  CachedValuePtr regenerate(const Lookup& lookup, std::string_view key, ValueMaker make,
                            Decoder decode);
  std::vector<CachedValuePtr> get_or_create_values(const Keys& keys, const MultiValueMaker& make,
                                                   std::optional<double> expiration_time,
                                                   Decoder decode);
  // A backend value as the dogpile lock sees it, decoded: nullopt when missing, of another
  // version, hard-invalidated or undecodable; a soft-invalidated value's time is moved back
  // so it reads as expired.
  Current classify(const State& state, CachedValuePtr value, std::string_view key,
                   std::optional<double> expiration, Decoder decode) const;

  const State& state() const;
  static bool is_fresh(const State& state, const CachedValue& value, const GetOptions& options);

  // Throws Error `what` with "cannot be read as a <wanted>: why".
  template <class E>
  [[noreturn]] static void throw_cant_read(const std::type_info& wanted, std::string_view why);
  [[noreturn]] static void throw_wrong_type(const std::type_info& stored,
                                            const std::type_info& wanted);
  [[noreturn]] static void throw_no_codec(const std::type_info& wanted);

  std::string name_;
  KeyMangler user_key_mangler_;
  AsyncCreationRunner async_creation_runner_;
  FunctionKeyGenerator function_key_generator_;
  FunctionMultiKeyGenerator function_multi_key_generator_;
  std::shared_ptr<RegionInvalidationStrategy> default_invalidator_;
  // The configuration in effect, read lock-free on every call. A replaced configuration is
  // retired, not freed, so calls still running on it stay valid until the region dies.
  std::atomic<const State*> state_{nullptr};
  std::mutex configure_mutex_;
  std::vector<std::unique_ptr<const State>> states_;
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

// ---------------------------------------------------------------------------------------
// Template definitions.

template <class T>
CachedValuePtr CacheRegion::make_value_with(T&& value, ValueMetadata metadata) {
  using V = stored_t<T>;
  CachedValue::Encoder encoder = nullptr;
  if constexpr (HasCodec<V>) {
    encoder = [](const void* object) -> std::string {
      return Codec<V>::encode(*static_cast<const V*>(object));
    };
  }
  std::shared_ptr<const V> object;
  if constexpr (std::is_pointer_v<std::remove_cvref_t<T>>) {
    if (value == nullptr) throw ValidationError("a null C string cannot be cached");
    object = std::make_shared<const V>(value);
  } else {
    object = std::make_shared<const V>(std::forward<T>(value));
  }
  return std::make_shared<const CachedValue>(std::move(object), typeid(V), encoder, metadata);
}

template <class T>
CachedValuePtr CacheRegion::make_value(T&& value, double created) {
  return make_value_with(std::forward<T>(value), ValueMetadata{created, kValueVersion});
}

template <class T>
CachedValuePtr CacheRegion::decode_as(const CachedValuePtr& value) {
  if (value->holds_object() && value->object_type() == typeid(T)) return value;
  if constexpr (!HasCodec<T>) {
    if (value->holds_object()) throw_wrong_type(value->object_type(), typeid(T));
    throw_no_codec(typeid(T));
  } else {
    // An object of another type reads as its bytes would: the same answer on every backend.
    std::string encoded;
    std::string_view bytes;
    if (value->holds_object()) {
      if (!value->has_codec()) throw_wrong_type(value->object_type(), typeid(T));
      encoded = value->payload_bytes();
      bytes = encoded;
    } else {
      bytes = value->bytes();
    }
    try {
      return make_value_with(Codec<T>::decode(bytes), value->metadata());
    } catch (const ValueTypeError& e) {
      throw_cant_read<ValueTypeError>(typeid(T), e.what());
    } catch (const CantDeserialize& e) {
      throw_cant_read<CantDeserialize>(typeid(T), e.what());
    } catch (const Error&) {
      throw;
    } catch (const nlohmann::json::type_error& e) {
      throw_cant_read<ValueTypeError>(typeid(T), e.what());
    } catch (const nlohmann::json::out_of_range& e) {
      throw_cant_read<ValueTypeError>(typeid(T), e.what());
    } catch (const std::exception&) {
      // Its message may quote the bytes: not repeated.
      throw_cant_read<CantDeserialize>(typeid(T), "its dogpile::Codec could not decode the bytes");
    }
  }
}

template <class T>
std::shared_ptr<const T> CacheRegion::value_as(CachedValuePtr value, std::string_view key) {
  if (!value) return nullptr;
  if (!value->holds_object() || value->object_type() != typeid(T)) {
    value = decode_for_key(value, key, &decode_as<T>);
  }
  // Aliasing: takes over the ownership of the CachedValue, no copy of the object.
  const T* object = static_cast<const T*>(value->object().get());
  return std::shared_ptr<const T>(std::move(value), object);
}

template <class T>
std::shared_ptr<const T> CacheRegion::get(std::string_view key, const GetOptions& options) const {
  return value_as<T>(get_decoded(key, options, &decode_as<T>), key);
}

template <class T>
std::vector<std::shared_ptr<const T>> CacheRegion::get_multi(const Keys& keys,
                                                             const GetOptions& options) const {
  auto values = get_decoded_multi(keys, options, &decode_as<T>);
  std::vector<std::shared_ptr<const T>> out;
  out.reserve(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    out.push_back(value_as<T>(std::move(values[i]), keys[i]));
  }
  return out;
}

template <class T>
void CacheRegion::set(std::string_view key, T&& value) {
  set_value(key, make_value(std::forward<T>(value)));
}

template <class Creator, class T>
std::shared_ptr<const T> CacheRegion::get_or_create(
    std::string_view key, Creator&& creator, Seconds expiration_time,
    std::type_identity_t<std::function<bool(const T&)>> should_cache_fn) {
  return get_or_create_made<T>(
      key, [&creator] { return std::decay_t<Creator>(std::forward<Creator>(creator)); },
      expiration_time, should_cache_fn);
}

template <class T, class MakeCreator>
std::shared_ptr<const T> CacheRegion::get_or_create_made(
    std::string_view key, MakeCreator&& make_creator, std::optional<double> expiration_time,
    const std::function<bool(const T&)>& should_cache_fn) {
  Lookup found = lookup(key, expiration_time, &decode_as<T>);
  if (found.fresh()) return value_as<T>(std::move(found.current->value), key);
  // Slow path: the creator is shared so an async runner can keep it past this call.
  auto shared = std::make_shared<std::invoke_result_t<MakeCreator&>>(make_creator());
  ValueMaker make = [shared, should = should_cache_fn]() -> Created {
    CachedValuePtr value = make_value(std::invoke(*shared));
    const bool cache = !should || should(*static_cast<const T*>(value->object().get()));
    return {std::move(value), cache};
  };
  return value_as<T>(regenerate(found, key, std::move(make), &decode_as<T>), key);
}

template <class Creator, class T>
std::vector<std::shared_ptr<const T>> CacheRegion::get_or_create_multi(
    const Keys& keys, Creator&& creator, Seconds expiration_time,
    std::type_identity_t<std::function<bool(const T&)>> should_cache_fn) {
  MultiValueMaker make = [&](const Keys& to_create) {
    auto made = std::invoke(creator, to_create);
    if (std::size(made) > to_create.size()) {
      throw ValidationError("get_or_create_multi: the creator returned " +
                            std::to_string(std::size(made)) + " values for " +
                            std::to_string(to_create.size()) + " keys");
    }
    const double created = now_seconds();
    std::vector<Created> out;
    out.reserve(to_create.size());
    for (auto& item : made) {
      if constexpr (detail::is_optional<std::remove_cvref_t<decltype(item)>>) {
        if (!item) {
          out.push_back({nullptr, false});
          continue;
        }
      }
      CachedValuePtr value = make_value(std::move(detail::unwrap(item)), created);
      const bool cache =
          !should_cache_fn || should_cache_fn(*static_cast<const T*>(value->object().get()));
      out.push_back({std::move(value), cache});
    }
    return out;
  };
  auto values = get_or_create_values(keys, make, expiration_time, &decode_as<T>);
  std::vector<std::shared_ptr<const T>> out;
  out.reserve(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    out.push_back(value_as<T>(std::move(values[i]), keys[i]));
  }
  return out;
}

template <class Mapping>
void CacheRegion::set_multi(const Mapping& mapping) {
  ValueMapping values;
  // One creation time for the whole batch, as dogpile.cache.
  const double created = now_seconds();
  for (const auto& [key, value] : mapping) {
    values.emplace_back(std::string(key), make_value(value, created));
  }
  set_value_multi(values);
}

}  // namespace dogpile
