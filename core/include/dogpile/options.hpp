// What a region is made and configured with: make_region's RegionOptions, configure's
// ConfigureOptions (the backend's arguments, proxies, resilience) and a read's GetOptions.
// Plain data; a region checks them when it is configured (ResilienceOptions::validated).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "dogpile/invalidation.hpp"
#include "dogpile/keys.hpp"
#include "dogpile/sdk/clock.hpp"
#include "dogpile/sdk/mutex.hpp"
#include "dogpile/sdk/proxy.hpp"
#include "dogpile/sdk/value.hpp"
#include "dogpile/seconds.hpp"

namespace dogpile {

class CacheRegion;

// Regenerates stale values in the background, as dogpile.cache's async_creation_runner. It is
// called by get_or_create when a value is stale and this caller won the dogpile lock: the
// caller returns the stale value at once. It receives the region, the (unmangled) key, a
// creator and the held mutex, and must, now or later: call `creator()`, store its result with
// `region.set_value(key, value)` unless it is null (should_cache_fn said no), and release the
// mutex, whatever happens. The first call for a key (no value at all) never uses it. An eager
// refresh of several keys (get_or_create_multi) hands it the first key and its mutex; the
// creator stores the others and releases their mutexes itself.
// ThreadPoolRunner (async_runner.hpp) is the ready-made one.
using AsyncCreationRunner =
    std::function<void(CacheRegion& region, const std::string& key,
                       std::function<CachedValuePtr()> creator, std::shared_ptr<CacheMutex> mutex)>;

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

// What make_region() takes, as dogpile.cache's make_region(): all optional. These are the
// region's for its whole life, whatever backend it is configured with.
struct RegionOptions {
  std::string name{};
  // Applied to every key; otherwise the backend's recommended mangler, if any. (A config file
  // sets it with `<prefix>key_mangler = sha1`.)
  KeyMangler key_mangler{};
  // Regenerates stale values in the background; see AsyncCreationRunner. (A config file sets
  // it with `<prefix>async_creation_runner = thread_pool`.)
  AsyncCreationRunner async_creation_runner{};
  // The keys of cached functions (see keys.hpp and cached_function.hpp).
  FunctionKeyGenerator function_key_generator = dogpile::function_key_generator;
  FunctionMultiKeyGenerator function_multi_key_generator = dogpile::function_multi_key_generator;
  // The time of every creation, expiry and invalidation decision; null: the system clock.
  std::shared_ptr<const Clock> clock{};
};

// What a backend failure (BackendUnavailable, ServerError, or a plugin's own failure) does to
// a region's calls.
enum class BackendErrors {
  raise,  // the call throws, as in dogpile.cache
  miss,   // get misses; set and remove are dropped; get_or_create computes the value without
          // the cache and without the distributed lock. Logged, at most once per interval.
};

// Behaviours beyond dogpile.cache; each is off by default, so a region behaves as
// dogpile.cache's unless asked. The README's "Resilience" section has the combinations.
struct ResilienceOptions {
  BackendErrors backend_errors = BackendErrors::raise;
  // Under `miss`: after a failure, calls leave the backend alone this long (they miss at once),
  // then the next call tries it again; 0: every call tries.
  Seconds backend_retry_interval = 1.0;
  // Under `miss`: at most one warning per backend per this interval; the failures in between
  // are counted in the next one.
  Seconds backend_error_log_interval = 60.0;
  // When the creator throws (or, under `miss`, the backend is failing), get_or_create returns
  // the stale value if it was made less than fail_safe_max_age ago, and stores it again as
  // fresh for fail_safe_throttle, so the failing creator is tried once per throttle.
  bool fail_safe = false;
  Seconds fail_safe_max_age = 86400.0;
  Seconds fail_safe_throttle = 30.0;
  // A creator running longer than soft_timeout is left to finish in the background (it
  // stores its value) and the caller gets the stale value, if there is one.
  Seconds soft_timeout{};
  // No caller (the creator's or a waiter) waits longer than hard_timeout: it gets the stale
  // value under fail_safe, else TimeoutError. The creator still finishes in the background.
  Seconds hard_timeout{};
  // In (0, 1): a get_or_create hit on a value older than this fraction of its expiration time
  // starts one background regeneration of it (0: never).
  double eager_refresh = 0;
  // In [0, 1): each value's expiration time is spread by up to this fraction either way, the
  // same for every reader (it is derived from the key and the value's creation time).
  double expiration_jitter = 0;
  // false: get_or_create never returns an expired value while a new one is made; callers
  // wait for it (fail-safe still returns one when making it fails).
  bool serve_stale = true;

  // These options, checked: every time a finite number of seconds in its range, the
  // fractions in theirs, soft_timeout shorter than hard_timeout. Throws ValidationError naming
  // the option with `prefix` (a config's "cache.local.").
  ResilienceOptions validated(std::string_view prefix = {}) const;
};

// A flat configuration dictionary, as dogpile.cache's configure_from_config reads.
using ConfigDict = std::map<std::string, nlohmann::json, std::less<>>;

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
  // Bytes that decode as no value (garbage, another serializer's output) throw
  // CantDeserialize instead of being a miss that is logged at warning.
  bool raise_on_undecodable = false;
  // Fail-safe, timeouts, eager refresh, jitter, backend errors as misses: all off by default.
  ResilienceOptions resilience{};
  // invalidate() reaches every process of the region: the time is stored in the backend
  // (under `dogpile:<region>:invalidated`) and published on its channel `dogpile:<region>`.
  // Needs a backend that can publish (CacheBackend::broadcast): redis, layered.
  bool shared_invalidation = false;
};

struct GetOptions {
  // Overrides the region's expiration time for this call; -1: never expires.
  Seconds expiration_time{};
  // Return the value whatever its age and the region's invalidation.
  bool ignore_expiration = false;
};

}  // namespace dogpile
