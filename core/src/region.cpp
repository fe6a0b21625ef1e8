#include "dogpile/region.hpp"

#include <algorithm>
#include <bit>
#include <boost/core/demangle.hpp>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <limits>
#include <map>

#include "dogpile/async_runner.hpp"
#include "dogpile/loader.hpp"
#include "dogpile/lock.hpp"
#include "dogpile/sdk/log.hpp"
#include "guarded_backend.hpp"
#include "lock_registry.hpp"
#include "registry.hpp"
#include "shared_invalidation.hpp"
#include "state_keeper.hpp"

namespace dogpile {

namespace {

using detail::RegionState;
using Decoder = CachedValuePtr (*)(CachedValuePtr&& value);
using Current = std::optional<Timestamped<CachedValuePtr>>;

constexpr const char* kSoftInvalidationNeedsExpiration =
    "Non-None expiration time required for soft invalidation";

// The key the backend sees for `key`: itself, or its mangled form kept in `storage`.
std::string_view backend_key(const RegionState& st, std::string_view key, std::string& storage) {
  if (!st.key_mangler) return key;
  storage = st.key_mangler(key);
  return storage;
}

const Keys& backend_keys(const RegionState& st, const Keys& keys, Keys& storage) {
  if (!st.key_mangler) return keys;
  storage.reserve(keys.size());
  for (const auto& key : keys) storage.push_back(st.key_mangler(key));
  return storage;
}

const ValueMapping& backend_keys(const RegionState& st, const ValueMapping& mapping,
                                 ValueMapping& storage) {
  if (!st.key_mangler) return mapping;
  storage.reserve(mapping.size());
  for (const auto& [key, value] : mapping) storage.emplace_back(st.key_mangler(key), value);
  return storage;
}

std::optional<double> normalized_expiration(std::optional<double> seconds) {
  if (!seconds || *seconds == -1) return std::nullopt;
  if (*seconds > kLongestDuration) {
    throw ValidationError("expiration_time must be at most " + python_float_repr(kLongestDuration) +
                          " seconds (about 31 years; -1 means never), not " +
                          python_float_repr(*seconds));
  }
  if (!std::isfinite(*seconds) || *seconds < 0) {
    throw ValidationError(
        "expiration_time must be -1 (never) or a non-negative number of "
        "seconds, not " +
        std::to_string(*seconds));
  }
  return seconds;
}

// The expiration time in effect: the call's if given (-1: never), else the region's.
std::optional<double> effective_expiration(std::optional<double> call,
                                           std::optional<double> region) {
  return call ? normalized_expiration(call) : region;
}

// `expiration` spread by up to `jitter` either way, by a fraction derived from the key and the
// time the value was made, so every reader of the value computes the same one (FNV-1a and
// splitmix64: the same on every build).
[[gnu::noinline]] double spread(double jitter, std::string_view key, double made,
                                double expiration) {
  std::uint64_t h = 14695981039346656037ull;
  for (const char c : key) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  h ^= std::bit_cast<std::uint64_t>(made);
  h += 0x9e3779b97f4a7c15ull;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  h ^= h >> 31;
  const double unit = static_cast<double>(h >> 11) * 0x1p-53 * 2 - 1;  // [-1, 1)
  return expiration * (1 + jitter * unit);
}

// `expiration` spread by the region's expiration_jitter.
double jittered(const RegionState& st, std::string_view key, const ValueMetadata& metadata,
                double expiration) {
  const double jitter = st.resilience.jitter;
  return jitter == 0 ? expiration : spread(jitter, key, metadata.made(), expiration);
}

// decoded() past its fast path: `value` (not null) decoded by `decode` (null: only checked),
// a value that does not decode being a miss, logged, unless the region raises on them.
[[gnu::noinline]] CachedValuePtr decoded_slowly(const RegionState& st, CachedValuePtr&& value,
                                                std::string_view key, Decoder decode) {
  try {
    return detail::decode_for_key(std::move(value), key, decode);
  } catch (const CantDeserialize& e) {
    if (st.raise_on_undecodable) throw;
    if (log_enabled(LogLevel::warning)) {
      log(LogLevel::warning, "region",
          "region '" + st.region_name + "': " + e.what() + "; treated as a miss");
    }
    return nullptr;
  }
}

// A value read from the backend for `key`, decoded by `decode` (null: not decoded). An object
// of `type` (when given: the type `decode` makes), the usual hit, is returned as it is: inline
// and moved, since a call passing the pointer costs a hit a fifth of its time.
[[gnu::always_inline]] inline CachedValuePtr decoded(const RegionState& st, CachedValuePtr&& value,
                                                     std::string_view key, Decoder decode,
                                                     const std::type_info* type = nullptr) {
  if (!value) return nullptr;
  if (type != nullptr && value->holds_object() && value->object_type() == *type) {
    return std::move(value);
  }
  return decoded_slowly(st, std::move(value), key, decode);
}

// Whether `value` may be returned by get under `options`.
bool is_fresh(const RegionState& st, std::string_view key, const CachedValue& value,
              const GetOptions& options) {
  if (options.ignore_expiration) return true;
  auto expiration = effective_expiration(options.expiration_time, st.expiration);
  const ValueMetadata& metadata = value.metadata();
  if (expiration) expiration = jittered(st, key, metadata, *expiration);
  if (older_than(metadata.ct, expiration, st.clock->coarse_now())) return false;
  // A payload made before a hard invalidation is never served; a value fail-safe kept after a
  // soft one is fresh for its throttle (see classify).
  if (metadata.origin == 0) return !st.invalidator->is_invalidated(metadata.ct);
  return !st.invalidator->is_hard_invalidated(metadata.made()) &&
         !st.invalidator->is_soft_invalidated(metadata.ct);
}

// A backend value as the dogpile lock sees it, decoded: nullopt when missing, of another
// version, hard-invalidated or undecodable; a soft-invalidated value's time is moved back so
// it reads as expired, and a jittered one's so it expires at its jittered time.
// Inlined: as a call, passing the value through one more frame costs get_or_create hits a
// quarter of their speed (measured with a get_or_create-only loop).
[[gnu::always_inline]] inline Current classify(const RegionState& st, CachedValuePtr value,
                                               std::string_view key,
                                               std::optional<double> expiration, Decoder decode,
                                               const std::type_info* type = nullptr) {
  if (!value) return std::nullopt;
  if (value->decodable() && value->metadata().v != kValueVersion) return std::nullopt;
  value = decoded(st, std::move(value), key, decode, type);
  if (!value) return std::nullopt;
  const ValueMetadata& metadata = value->metadata();
  double ct = metadata.ct;
  if (st.invalidator->is_hard_invalidated(metadata.made())) return std::nullopt;
  if (st.invalidator->is_soft_invalidated(ct)) {
    if (!expiration) throw Error(kSoftInvalidationNeedsExpiration);
    // Reads as expired: older than the expiration time on the clock expiry checks use.
    ct = st.clock->coarse_now() - *expiration - 0.0001;
  } else if (expiration && st.resilience.jitter != 0) {
    ct = std::max(ct + jittered(st, key, metadata, *expiration) - *expiration,
                  std::numeric_limits<double>::min());
  }
  return Timestamped<CachedValuePtr>{std::move(value), ct};
}

// `options` checked, with every time in seconds; errors name the option with `prefix`.
detail::Resilience checked(const ResilienceOptions& options, const std::string& prefix,
                           detail::MissPolicy& miss) {
  auto seconds = [&](const Seconds& value, const char* name, bool zero_allowed) {
    if (value && std::isfinite(*value) && *value <= kLongestDuration &&
        (*value > 0 || (zero_allowed && *value == 0))) {
      return value;
    }
    throw ValidationError(prefix + name + " must be a " +
                          (zero_allowed ? "non-negative" : "positive") + " number of seconds" +
                          (value ? ", not " + python_float_repr(*value) : std::string()));
  };
  auto fraction = [&](double value, const char* name, const char* range, bool ok) {
    if (!ok)
      throw ValidationError(prefix + name + " must be " + range + ", not " +
                            python_float_repr(value));
    return value;
  };
  miss.enabled = options.backend_errors == BackendErrors::miss;
  miss.retry_interval = *seconds(options.backend_retry_interval, "backend_retry_interval", true);
  miss.log_interval =
      *seconds(options.backend_error_log_interval, "backend_error_log_interval", true);
  detail::Resilience r;
  r.fail_safe = options.fail_safe;
  r.fail_safe_max_age = *seconds(options.fail_safe_max_age, "fail_safe_max_age", false);
  r.fail_safe_throttle = *seconds(options.fail_safe_throttle, "fail_safe_throttle", false);
  if (options.soft_timeout) r.soft_timeout = seconds(options.soft_timeout, "soft_timeout", false);
  if (options.hard_timeout) r.hard_timeout = seconds(options.hard_timeout, "hard_timeout", false);
  if (r.soft_timeout && r.hard_timeout && *r.soft_timeout >= *r.hard_timeout) {
    throw ValidationError(prefix + "soft_timeout (" + python_float_repr(*r.soft_timeout) +
                          " s) must be shorter than " + prefix + "hard_timeout (" +
                          python_float_repr(*r.hard_timeout) + " s)");
  }
  const double eager = options.eager_refresh;
  r.eager_refresh = fraction(eager, "eager_refresh", "0 (off) or between 0 and 1, exclusive",
                             eager == 0 || (eager > 0 && eager < 1));
  const double jitter = options.expiration_jitter;
  r.jitter = fraction(jitter, "expiration_jitter", "at least 0 and less than 1",
                      jitter >= 0 && jitter < 1);
  r.serve_stale = options.serve_stale;
  return r;
}

// The keys get_or_create_multi may create, with the dogpile mutex taken for each (null when
// it could not be taken); releases what is still held.
class HeldMutexes {
 public:
  ~HeldMutexes() {
    for (auto& [key, mutex] : held_) {
      if (mutex) release_logged(*mutex);
    }
  }
  void add(std::string key, std::shared_ptr<CacheMutex> mutex) {
    held_.emplace_back(std::move(key), std::move(mutex));
  }
  std::vector<std::pair<std::string, std::shared_ptr<CacheMutex>>>& items() { return held_; }

 private:
  std::vector<std::pair<std::string, std::shared_ptr<CacheMutex>>> held_;
};

}  // namespace

CacheRegion::CacheRegion(std::string name, KeyMangler key_mangler,
                         AsyncCreationRunner async_creation_runner)
    : CacheRegion(RegionOptions{.name = std::move(name),
                                .key_mangler = std::move(key_mangler),
                                .async_creation_runner = std::move(async_creation_runner)}) {}

CacheRegion::CacheRegion(RegionOptions options)
    : name_(std::move(options.name)),
      user_key_mangler_(std::move(options.key_mangler)),
      async_creation_runner_(std::move(options.async_creation_runner)),
      function_key_generator_(std::move(options.function_key_generator)),
      function_multi_key_generator_(std::move(options.function_multi_key_generator)),
      clock_(options.clock ? std::move(options.clock) : SystemClock::instance()),
      default_invalidator_(std::make_shared<DefaultInvalidationStrategy>(clock_)),
      states_(std::make_unique<detail::StateKeeper>()) {
  if (!function_key_generator_ || !function_multi_key_generator_) {
    throw ValidationError("make_region: the function key generators must not be empty");
  }
  detail::RegionRegistry::instance().add(this);
}

CacheRegion::~CacheRegion() {
  detail::RegionRegistry::instance().remove(this);
  creators_.reset();  // creators past their caller's timeout finish first
  // Background regenerations use this region: a runner that owns its pool (a config file's
  // thread_pool) finishes them when its last copy goes, while the region is still whole.
  async_creation_runner_ = nullptr;
  states_->take_runners();  // destroyed on return, before the configurations
}

std::shared_ptr<CacheRegion> make_region(RegionOptions options) {
  return std::make_shared<CacheRegion>(std::move(options));
}

CacheRegion& CacheRegion::configure(std::string_view backend, ConfigureOptions options) {
  return configure_with(backend, std::move(options), {});
}

CacheRegion& CacheRegion::configure_with(std::string_view backend, ConfigureOptions options,
                                         const detail::RegionSettings& settings) {
  std::lock_guard guard(configure_mutex_);
  if (const State* current = states_->peek();
      current != nullptr && !options.replace_existing_backend) {
    throw RegionAlreadyConfigured(
        "This region is already configured with backend: " + current->backend_name +
        ".  Specify replace_existing_backend=True to replace.");
  }
  auto state = std::make_unique<State>();
  state->region_name = name_;
  state->clock = clock_.get();
  state->backend_name = std::string(backend);
  state->expiration = normalized_expiration(options.expiration_time);
  state->raise_on_undecodable = options.raise_on_undecodable;

  auto& loader = PluginLoader::instance();
  const std::string& prefix = options.config_prefix;
  state->actual =
      loader.make_backend(backend, Arguments(std::move(options.arguments), prefix + "arguments."));
  state->outer = state->actual;
  // Every proxy is made (or checked) before any is wrapped: a failure leaves the application's
  // proxy objects unwrapped, free to be given again.
  std::vector<std::shared_ptr<ProxyBackend>> proxies;
  for (auto it = options.wrap.rbegin(); it != options.wrap.rend(); ++it) {
    std::shared_ptr<ProxyBackend> proxy;
    if (auto* spec = std::get_if<ProxySpec>(&*it)) {
      const std::string wrap_key = prefix + "wrap";
      auto entry = loader.find(spec->name);
      if (!entry) {
        throw PluginNotFound("Couldn't find cache plugin to load: " + spec->name + " (named in " +
                             wrap_key + "; `dogpile plugins` lists the proxies found)");
      }
      if (entry->kind != PluginKind::proxy) {
        throw ConfigError(wrap_key + " names " + spec->name + ", which is a backend, not a proxy");
      }
      proxy = loader.make_proxy(
          spec->name, Arguments(spec->arguments, prefix + "wrap_arguments." + spec->name + "."));
    } else {
      proxy = std::get<std::shared_ptr<ProxyBackend>>(*it);
      if (!proxy) throw ValidationError("wrap: a null ProxyBackend was given");
      if (proxy->proxied()) {
        throw ValidationError(
            "wrap: this ProxyBackend object already wraps a backend (of this or another region); "
            "a proxy object serves one region: make a new one");
      }
    }
    proxies.push_back(std::move(proxy));
  }
  for (auto& proxy : proxies) {
    proxy->wrap(state->outer);
    state->outer = std::move(proxy);
  }
  state->key_mangler = settings.key_mangler ? settings.key_mangler
                       : user_key_mangler_  ? user_key_mangler_
                                            : state->outer->key_mangler();
  if (options.shared_invalidation) {
    if (options.region_invalidator) {
      throw ValidationError(prefix + "shared_invalidation and region_invalidator exclude each "
                                     "other: shared invalidation is a region invalidator");
    }
    state->invalidator =
        detail::make_shared_invalidation(state->actual, name_, clock_, prefix + "shared_invalidation");
  } else {
    state->invalidator =
        options.region_invalidator ? std::move(options.region_invalidator) : default_invalidator_;
  }
  detail::MissPolicy miss;
  state->resilience = checked(options.resilience, prefix, miss);
  state->guard = std::make_shared<detail::BackendGuard>(state->backend_name, miss, clock_);
  auto guarded_calls = std::make_shared<detail::GuardedBackend>(state->guard);
  guarded_calls->wrap(state->outer);
  state->calls = std::move(guarded_calls);
  state->locks = std::make_shared<detail::LockRegistry>(state->calls);
  state->async_runner =
      settings.async_creation_runner ? settings.async_creation_runner : async_creation_runner_;
  if (state->resilience.eager_refresh > 0) {
    state->refresh_runner =
        state->async_runner ? state->async_runner : ThreadPoolRunner::owning_runner();
  }
  if (state->resilience.soft_timeout || state->resilience.hard_timeout) {
    if (!creators_) creators_ = std::make_unique<detail::CreatorPool>();
    state->creators = creators_.get();
  }

  log(LogLevel::info, "region",
      "region '" + name_ + "' configured with backend " + state->backend_name);
  states_->publish(std::move(state));
  return *this;
}

const CacheRegion::State& CacheRegion::pinned(detail::StatePin& pin) const {
  const State* st = states_->enter(pin);
  if (st == nullptr) throw RegionNotConfigured("No backend is configured on this region.");
  return *st;
}

bool CacheRegion::is_configured() const noexcept { return states_->peek() != nullptr; }

std::shared_ptr<CacheBackend> CacheRegion::backend() const {
  detail::StatePin pin;
  return pinned(pin).outer;
}

std::shared_ptr<CacheBackend> CacheRegion::actual_backend() const {
  detail::StatePin pin;
  return pinned(pin).actual;
}

std::string CacheRegion::backend_name() const {
  detail::StatePin pin;
  return pinned(pin).backend_name;
}

std::optional<double> CacheRegion::expiration_time() const {
  detail::StatePin pin;
  return pinned(pin).expiration;
}

std::string CacheRegion::mangle(std::string_view key) const {
  detail::StatePin pin;
  std::string storage;
  return std::string(backend_key(pinned(pin), key, storage));
}

CachedValuePtr detail::decode_for_key(CachedValuePtr value, std::string_view key,
                                      CachedValuePtr (*decode)(CachedValuePtr&&)) {
  try {
    if (!value->decodable()) throw CantDeserialize(value->problem());
    if (decode == nullptr) return value;
    return decode(std::move(value));
  } catch (const ValueTypeError& e) {
    throw ValueTypeError("cached value for key '" + std::string(key) + "' " + e.what());
  } catch (const CantDeserialize& e) {
    throw CantDeserialize("cached value for key '" + std::string(key) + "' " + e.what());
  }
}

CachedValuePtr CacheRegion::get_value_metadata(std::string_view key,
                                               const GetOptions& options) const {
  return get_decoded(key, options, nullptr, nullptr);
}

std::vector<CachedValuePtr> CacheRegion::get_value_metadata_multi(const Keys& keys,
                                                                  const GetOptions& options) const {
  return get_decoded_multi(keys, options, nullptr);
}

CachedValuePtr CacheRegion::get_decoded(std::string_view key, const GetOptions& options,
                                        Decoder decode, const std::type_info* type) const {
  detail::StatePin pin;
  const State& st = pinned(pin);
  std::string storage;
  CachedValuePtr value = st.calls->get(backend_key(st, key, storage));
  if (value && value->decodable() && !is_fresh(st, key, *value, options)) return nullptr;
  return decoded(st, std::move(value), key, decode, type);
}

bool CacheRegion::visit_decoded(std::string_view key, const GetOptions& options,
                                const std::type_info& type, Decoder decode,
                                ValueVisitor typed) const {
  detail::StatePin pin;
  const State& st = pinned(pin);
  std::string storage;
  bool read = false;
  std::exception_ptr failure;  // kept from the backend's guard, which would wrap it
  auto inspect = [&](const CachedValuePtr& value) {
    try {
      if (value->decodable() && !is_fresh(st, key, *value, options)) return;
      if (value->holds_object() && value->object_type() == type) {
        typed(value);  // in place: no copy of the pointer
        read = true;
      } else if (const CachedValuePtr made = decoded(st, CachedValuePtr(value), key, decode)) {
        typed(made);
        read = true;
      }
    } catch (...) {
      failure = std::current_exception();
    }
  };
  st.calls->visit(backend_key(st, key, storage), ValueVisitor(inspect));
  if (failure) std::rethrow_exception(failure);
  return read;
}

std::vector<CachedValuePtr> CacheRegion::get_decoded_multi(const Keys& keys,
                                                           const GetOptions& options,
                                                           Decoder decode) const {
  if (keys.empty()) return {};
  detail::StatePin pin;
  const State& st = pinned(pin);
  Keys storage;
  std::vector<CachedValuePtr> values = st.calls->get_multi(backend_keys(st, keys, storage));
  for (std::size_t i = 0; i < values.size(); ++i) {
    auto& value = values[i];
    if (value && value->decodable() && !is_fresh(st, keys[i], *value, options)) value = nullptr;
    value = decoded(st, std::move(value), keys[i], decode);
  }
  return values;
}

void CacheRegion::set_value(std::string_view key, CachedValuePtr value) {
  if (!value) throw ValidationError("set_value: a null value cannot be stored");
  detail::StatePin pin;
  const State& st = pinned(pin);
  std::string storage;
  st.calls->set(std::string(backend_key(st, key, storage)), std::move(value));
}

void CacheRegion::set_value_multi(const ValueMapping& mapping) {
  if (mapping.empty()) return;
  detail::StatePin pin;
  const State& st = pinned(pin);
  for (const auto& [key, value] : mapping) {
    if (!value) throw ValidationError("set_value_multi: a null value for key '" + key + "'");
  }
  ValueMapping storage;
  st.calls->set_multi(backend_keys(st, mapping, storage));
}

void CacheRegion::remove(std::string_view key) {
  detail::StatePin pin;
  const State& st = pinned(pin);
  std::string storage;
  st.calls->remove(backend_key(st, key, storage));
}

void CacheRegion::remove_multi(const Keys& keys) {
  if (keys.empty()) return;
  detail::StatePin pin;
  const State& st = pinned(pin);
  Keys storage;
  st.calls->remove_multi(backend_keys(st, keys, storage));
}

// get_or_create ----------------------------------------------------------------------------

CacheRegion::Lookup CacheRegion::lookup(std::string_view key, std::optional<double> expiration_time,
                                        Decoder decode, const std::type_info* type) const {
  Lookup found;
  const State& st = pinned(found.pin);
  found.state = &st;
  if (st.key_mangler) found.mangled = st.key_mangler(key);
  found.expiration = effective_expiration(expiration_time, st.expiration);
  Current current = classify(st, st.calls->get(found.mangled ? *found.mangled : key), key,
                             found.expiration, decode, type);
  if (current) {
    found.value = std::move(current->value);
    found.created = current->created;
    found.fresh = !dogpile_expired(found.created, found.expiration, *clock_);
    // A value fail-safe kept (it has an origin) is tried again when its throttle ends.
    const double eager = st.resilience.eager_refresh;
    found.refresh = found.fresh && eager > 0 && found.expiration && *found.expiration > 0 &&
                    found.value->metadata().origin == 0 &&
                    clock_->coarse_now() - found.created > eager * *found.expiration;
    found.fresh = found.fresh && !found.refresh;
  }
  return found;
}

namespace detail {

// One run of a creator under the region's resilience options, with what it needs to store its
// value: shared with a pool thread when the caller may stop waiting for it (soft_timeout,
// hard_timeout), so it holds nothing of the region's configuration.
struct Creation {
  std::shared_ptr<CacheBackend> calls;
  std::shared_ptr<RegionInvalidationStrategy> invalidator;
  std::shared_ptr<const Clock> clock;
  std::string region;
  std::string key;
  std::string mangled;
  std::optional<double> expiration;
  std::function<Created()> make;
  // Fail-safe: the stale value to give instead of an error (null: none may be), the
  // expiration it lives by (jittered), and how long it is kept when the creator fails.
  CachedValuePtr fallback;
  double fallback_expiration = 0;
  double throttle = 0;
  // The dogpile mutex, when this creation owns releasing it.
  std::shared_ptr<CacheMutex> held;

  std::mutex mutex;
  std::condition_variable finished;
  bool done = false;
  Created made;
  std::exception_ptr error;

  ~Creation() { release(); }
  void release() {
    if (auto mutex = std::exchange(held, nullptr)) release_logged(*mutex);
  }

  // Makes the value and stores it; when making it fails, keeps the fallback and rethrows.
  Created run() {
    Created result;
    try {
      result = make();
    } catch (const std::exception& e) {
      keep(e.what());
      throw;
    } catch (...) {
      keep("an exception that is not a std::exception");
      throw;
    }
    if (!expiration && invalidator->was_soft_invalidated()) {
      throw Error(kSoftInvalidationNeedsExpiration);
    }
    if (result.cache) calls->set(mangled, result.value);
    return result;
  }

  // Stores the fallback again as fresh for `throttle` seconds, keeping when it was made, so
  // the failing creator is tried once per throttle rather than by every caller.
  void keep(const std::string& why) noexcept {
    if (!fallback) return;
    try {
      ValueMetadata metadata = fallback->metadata();
      const double now = clock->now();
      const double made_at = metadata.made();
      metadata.origin = made_at;
      metadata.ct = now + throttle - fallback_expiration;
      log(LogLevel::warning, "region",
          "region '" + region + "': the creator of key '" + key + "' failed: " + why +
              "; serving the value made " + python_float_repr(now - made_at) +
              " s ago instead (fail_safe) for " + python_float_repr(throttle) + " s");
      calls->set(mangled, fallback->with_metadata(metadata));
    } catch (const std::exception& e) {
      try {
        log(LogLevel::warning, "region",
            "region '" + region + "': keeping the stale value of key '" + key +
                "' failed: " + e.what());
      } catch (...) {
      }
    }
  }
};

}  // namespace detail

namespace {

// Whether fail-safe may give `stale` (made less than fail_safe_max_age ago) instead of an error.
bool fail_safe_may_give(const RegionState& st, const Current& stale) {
  return st.resilience.fail_safe && stale && stale->value &&
         st.clock->now() - stale->value->metadata().made() <= st.resilience.fail_safe_max_age;
}

std::string seconds_text(double seconds) { return python_float_repr(seconds) + " s"; }

}  // namespace

CachedValuePtr CacheRegion::regenerate(const Lookup& found, std::string_view key, ValueMaker make,
                                       Decoder decode) {
  if (found.refresh) {
    refresh_eagerly(found, key, std::move(make));
    return found.value;
  }
  const State& st = *found.state;
  const detail::Resilience& r = st.resilience;
  const std::string mangled(found.mangled ? *found.mangled : key);
  // The newest value seen that is not fresh: what fail-safe and soft_timeout may give.
  Current stale;
  if (found.value) stale = Timestamped<CachedValuePtr>{found.value, found.created};
  auto fallback = [&]() -> CachedValuePtr {
    return fail_safe_may_give(st, stale) ? stale->value : nullptr;
  };
  // Under backend_errors = miss, with the backend failing: no cache and no lock.
  if (st.guard->failing()) {
    if (auto kept = fallback()) return kept;
    return make().value;
  }
  auto get_mutex = [&] { return st.locks->get(mangled); };
  auto getter = [&] {
    Current current = classify(st, st.calls->get(mangled), key, found.expiration, decode);
    if (current) stale = current;
    return current;
  };
  auto creation_for = [&](std::shared_ptr<CacheMutex> held) {
    auto creation = std::make_shared<detail::Creation>();
    creation->calls = st.calls;
    creation->invalidator = st.invalidator;
    creation->clock = clock_;
    creation->region = name_;
    creation->key = std::string(key);
    creation->mangled = mangled;
    creation->expiration = found.expiration;
    creation->make = make;
    creation->fallback = fallback();
    if (creation->fallback && found.expiration) {
      creation->fallback_expiration =
          jittered(st, key, creation->fallback->metadata(), *found.expiration);
    } else {
      creation->fallback = nullptr;  // nothing expires it: nothing to keep
    }
    creation->throttle = r.fail_safe_throttle;
    creation->held = std::move(held);
    return creation;
  };
  auto creator = [&](std::shared_ptr<CacheMutex>& held) -> Timestamped<CachedValuePtr> {
    if (st.guard->failing()) {  // the backend failed meanwhile (under miss)
      if (auto kept = fallback()) return {kept, 1};
    }
    if (st.creators == nullptr) {
      auto creation = creation_for(nullptr);
      try {
        return {creation->run().value, 1};
      } catch (...) {
        if (creation->fallback) return {creation->fallback, 1};
        throw;
      }
    }
    // Timed: the creation owns the mutex and runs on the pool while this caller waits.
    auto creation = creation_for(std::exchange(held, nullptr));
    const bool queued = st.creators->submit([creation] {
      Created made;
      std::exception_ptr error;
      try {
        made = creation->run();
      } catch (...) {
        error = std::current_exception();
      }
      creation->release();
      std::lock_guard guard(creation->mutex);
      creation->made = std::move(made);
      creation->error = error;
      creation->done = true;
      creation->finished.notify_all();
    });
    using Steady = std::chrono::steady_clock;
    auto after = [start = Steady::now()](double seconds) {
      return start +
             std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(seconds));
    };
    const bool soft = r.soft_timeout && r.serve_stale && stale && stale->value;
    std::unique_lock lock(creation->mutex);
    if (queued) {
      auto is_done = [&] { return creation->done; };
      if (soft) creation->finished.wait_until(lock, after(*r.soft_timeout), is_done);
      if (!creation->done && !soft && r.hard_timeout) {
        creation->finished.wait_until(lock, after(*r.hard_timeout), is_done);
      } else if (!creation->done && !soft) {
        creation->finished.wait(lock, is_done);
      }
      if (creation->done) {
        if (creation->error) {
          if (creation->fallback) return {creation->fallback, 1};
          std::rethrow_exception(creation->error);
        }
        return {creation->made.value, 1};
      }
    }
    if (soft) {
      log(LogLevel::debug, "region",
          "region '" + name_ + "': the creator of key '" + std::string(key) +
              "' runs longer than soft_timeout (" + seconds_text(*r.soft_timeout) +
              "); serving the stale value while it finishes");
      return {stale->value, 1};
    }
    if (creation->fallback) return {creation->fallback, 1};
    throw TimeoutError(
        "region '" + name_ + "': " +
        (queued ? "the creator of key '" + std::string(key) + "' ran longer than hard_timeout (" +
                      seconds_text(*r.hard_timeout) + "); it goes on in the background"
                : "no thread is free to run the creator of key '" + std::string(key) + "'"));
  };
  std::function<void(std::shared_ptr<CacheMutex>)> async;
  if (st.async_runner) {
    async = [&](std::shared_ptr<CacheMutex> mutex) {
      st.async_runner(*this, std::string(key), background_creator(creation_for(nullptr)),
                      std::move(mutex));
    };
  }
  LockWaiting waiting{.serve_stale = r.serve_stale};
  if (r.hard_timeout) {
    waiting.acquire = [&](CacheMutex& mutex, const std::function<bool()>& ready) {
      if (auto held = detail::acquire_within(mutex, ready, *r.hard_timeout)) return *held;
      throw TimeoutError("region '" + name_ + "': waited hard_timeout (" +
                         seconds_text(*r.hard_timeout) + ") for the value of key '" +
                         std::string(key) + "', which another caller is making");
    };
  }
  Current current;
  if (found.value) current = Timestamped<CachedValuePtr>{found.value, found.created};
  try {
    return dogpile_lock<CachedValuePtr>(std::move(current), get_mutex, getter, creator,
                                        found.expiration, async, *clock_, waiting);
  } catch (const TimeoutError&) {
    if (auto kept = fallback()) return kept;
    throw;
  }
}

std::function<CachedValuePtr()> CacheRegion::background_creator(
    std::shared_ptr<detail::Creation> creation) {
  // The runner stores the value; a failure keeps the fallback (if any) and is rethrown for
  // the runner to log.
  return [creation]() -> CachedValuePtr {
    Created made;
    try {
      made = creation->make();
    } catch (const std::exception& e) {
      creation->keep(e.what());
      throw;
    }
    return made.cache ? std::move(made.value) : nullptr;
  };
}

void CacheRegion::refresh_eagerly(const Lookup& found, std::string_view key, ValueMaker make) {
  const State& st = *found.state;
  auto mutex = st.locks->get(found.mangled ? *found.mangled : std::string(key));
  if (!mutex->acquire(false)) return;  // being made already
  auto creation = std::make_shared<detail::Creation>();
  creation->make = std::move(make);
  try {
    st.refresh_runner(*this, std::string(key), background_creator(std::move(creation)), mutex);
  } catch (const std::exception& e) {
    release_logged(*mutex);  // a runner that throws did not take it
    log(LogLevel::warning, "region",
        "region '" + name_ + "': starting an eager refresh of key '" + std::string(key) +
            "' failed: " + e.what());
  }
}

std::vector<CachedValuePtr> CacheRegion::get_or_create_values(const Keys& keys,
                                                              const MultiValueMaker& make,
                                                              std::optional<double> expiration_time,
                                                              Decoder decode) {
  if (keys.empty()) return {};
  detail::StatePin pin;
  const State& st = pinned(pin);
  const std::optional<double> expiration = effective_expiration(expiration_time, st.expiration);
  auto fresh = [&](const Current& current) {
    return current && !dogpile_expired(current->created, expiration, *clock_);
  };

  Keys sorted(keys);
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  Keys storage;
  const Keys& mangled_sorted = backend_keys(st, sorted, storage);
  std::map<std::string, std::string> mangled;
  for (std::size_t i = 0; i < sorted.size(); ++i) mangled.emplace(sorted[i], mangled_sorted[i]);

  std::map<std::string, CachedValuePtr> result;
  HeldMutexes held;
  auto aligned = [&] {
    std::vector<CachedValuePtr> out;
    out.reserve(keys.size());
    for (const auto& key : keys) out.push_back(result[key]);
    return out;
  };
  const auto stored = st.calls->get_multi(mangled_sorted);
  if (st.guard->failing()) {
    // Under backend_errors = miss, with the backend failing: made without cache or locks.
    std::vector<Created> made = make(sorted);
    for (std::size_t i = 0; i < made.size(); ++i) result[sorted[i]] = made[i].value;
    return aligned();
  }
  // Lock in sorted key order, so two multi calls cannot deadlock.
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    Current current = classify(st, stored.at(i), sorted[i], expiration, decode);
    if (current) result[sorted[i]] = current->value;
    if (fresh(current)) continue;
    auto mutex = st.locks->get(mangled_sorted[i]);
    if (current && st.resilience.serve_stale) {
      // A stale value: regenerate it if nobody else is, else serve it.
      if (mutex->acquire(false)) held.add(sorted[i], std::move(mutex));
    } else {
      // Not got (its blocking timeout ran out): created without the lock, as get_or_create does.
      const bool got = mutex->acquire(true);
      held.add(sorted[i], got ? std::move(mutex) : nullptr);
    }
  }
  if (held.items().empty()) return aligned();

  // Read the locked keys again in one round trip: values may have been created while we
  // waited for their locks. Only what is still missing or stale is created.
  Keys locked_mangled;
  for (const auto& [key, mutex] : held.items()) locked_mangled.push_back(mangled.at(key));
  const auto reread = st.calls->get_multi(locked_mangled);
  Keys to_create;
  for (std::size_t i = 0; i < held.items().size(); ++i) {
    auto& [key, mutex] = held.items()[i];
    Current current = classify(st, reread.at(i), key, expiration, decode);
    if (fresh(current)) {
      result[key] = current->value;
      if (mutex) release_logged(*mutex);
      mutex = nullptr;
    } else {
      to_create.push_back(key);
    }
  }
  if (!to_create.empty()) {
    std::vector<Created> made = make(to_create);
    if (!expiration && st.invalidator->was_soft_invalidated()) {
      throw Error(kSoftInvalidationNeedsExpiration);
    }
    ValueMapping to_store;
    // A creator that returned fewer values leaves the last keys as they were (dogpile.cache).
    for (std::size_t i = 0; i < made.size(); ++i) {
      result[to_create[i]] = made[i].value;
      if (made[i].cache) to_store.emplace_back(mangled.at(to_create[i]), made[i].value);
    }
    if (!to_store.empty()) st.calls->set_multi(to_store);
  }
  return aligned();
}

std::shared_ptr<CacheMutex> CacheRegion::mutex(std::string_view key) const {
  detail::StatePin pin;
  const State& st = pinned(pin);
  std::string storage;
  return st.locks->get(std::string(backend_key(st, key, storage)));
}

bool CacheRegion::key_is_locked(std::string_view key) const { return mutex(key)->locked(); }

std::size_t CacheRegion::locks_in_use() const {
  detail::StatePin pin;
  return pinned(pin).locks->size();
}

std::optional<StatsSnapshot> CacheRegion::stats() const {
  detail::StatePin pin;
  const auto* provider = find_in_chain<StatsProvider>(pinned(pin).outer.get());
  if (provider == nullptr) return std::nullopt;
  return provider->stats();
}

std::uint64_t CacheRegion::evictions() const {
  detail::StatePin pin;
  const auto* counter = find_in_chain<EvictionCounter>(pinned(pin).outer.get());
  return counter != nullptr ? counter->evictions() : 0;
}

RegionInvalidationStrategy& CacheRegion::region_invalidator() const {
  const State* st = states_->peek();
  return st != nullptr ? *st->invalidator : *default_invalidator_;
}

void CacheRegion::invalidate(bool hard) { region_invalidator().invalidate(hard); }

template <class E>
void CacheRegion::throw_cant_read(const std::type_info& wanted, std::string_view why) {
  throw E("cannot be read as a " + boost::core::demangle(wanted.name()) + ": " + std::string(why));
}
template void CacheRegion::throw_cant_read<ValueTypeError>(const std::type_info&, std::string_view);
template void CacheRegion::throw_cant_read<CantDeserialize>(const std::type_info&,
                                                            std::string_view);

void CacheRegion::throw_wrong_type(const std::type_info& stored, const std::type_info& wanted) {
  throw_cant_read<ValueTypeError>(wanted, "holds a " + boost::core::demangle(stored.name()) +
                                              ", which has no dogpile::Codec to convert it");
}

void CacheRegion::throw_no_codec(const std::type_info& wanted) {
  throw CantSerialize("a " + boost::core::demangle(wanted.name()) +
                      " has no dogpile::Codec, so it can only be stored in and read from an "
                      "object backend such as dogpile.cache.memory");
}

}  // namespace dogpile
