#include "dogpile/region.hpp"

#include <algorithm>
#include <cmath>
#include <exception>

#include "dogpile/async_runner.hpp"
#include "dogpile/loader.hpp"
#include "dogpile/lock.hpp"
#include "dogpile/sdk/context.hpp"
#include "dogpile/sdk/log.hpp"
#include "guarded_backend.hpp"
#include "lock_registry.hpp"
#include "reading.hpp"
#include "regeneration.hpp"
#include "registry.hpp"
#include "shared_invalidation.hpp"
#include "state_keeper.hpp"

namespace dogpile {

namespace {

using detail::classify;
using detail::Current;
using detail::decoded;
using detail::Decoder;
using detail::jittered;
using detail::RegionState;

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

}  // namespace

ResilienceOptions ResilienceOptions::validated(std::string_view prefix) const {
  const std::string p(prefix);
  auto seconds = [&](const Seconds& value, const char* name, bool zero_allowed) {
    if (value && std::isfinite(*value) && *value <= kLongestDuration &&
        (*value > 0 || (zero_allowed && *value == 0))) {
      return;
    }
    throw ValidationError(p + name + " must be a " + (zero_allowed ? "non-negative" : "positive") +
                          " number of seconds" +
                          (value ? ", not " + python_float_repr(*value) : std::string()));
  };
  auto fraction = [&](double value, const char* name, const char* range, bool ok) {
    if (!ok) {
      throw ValidationError(p + name + " must be " + range + ", not " + python_float_repr(value));
    }
  };
  seconds(backend_retry_interval, "backend_retry_interval", true);
  seconds(backend_error_log_interval, "backend_error_log_interval", true);
  seconds(fail_safe_max_age, "fail_safe_max_age", false);
  seconds(fail_safe_throttle, "fail_safe_throttle", false);
  if (soft_timeout) seconds(soft_timeout, "soft_timeout", false);
  if (hard_timeout) seconds(hard_timeout, "hard_timeout", false);
  if (soft_timeout && hard_timeout && *soft_timeout >= *hard_timeout) {
    throw ValidationError(p + "soft_timeout (" + python_float_repr(*soft_timeout) +
                          " s) must be shorter than " + p + "hard_timeout (" +
                          python_float_repr(*hard_timeout) + " s)");
  }
  fraction(eager_refresh, "eager_refresh", "0 (off) or between 0 and 1, exclusive",
           eager_refresh == 0 || (eager_refresh > 0 && eager_refresh < 1));
  fraction(expiration_jitter, "expiration_jitter", "at least 0 and less than 1",
           expiration_jitter >= 0 && expiration_jitter < 1);
  return *this;
}

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
  state->clock = clock_;
  state->backend_name = std::string(backend);
  state->expiration = normalized_expiration(options.expiration_time);
  state->raise_on_undecodable = options.raise_on_undecodable;

  auto& loader = PluginLoader::instance();
  const std::string& prefix = options.config_prefix;
  const auto context = loader.context_for(name_, clock_);
  state->actual = loader.make_backend(
      backend, Arguments(std::move(options.arguments), prefix + "arguments."), *context);
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
          spec->name, Arguments(spec->arguments, prefix + "wrap_arguments." + spec->name + "."),
          *context);
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
      throw ValidationError(prefix +
                            "shared_invalidation and region_invalidator exclude each "
                            "other: shared invalidation is a region invalidator");
    }
    state->invalidator = detail::make_shared_invalidation(state->actual, name_, clock_,
                                                          prefix + "shared_invalidation");
  } else {
    state->invalidator =
        options.region_invalidator ? std::move(options.region_invalidator) : default_invalidator_;
  }
  state->resilience = options.resilience.validated(prefix);
  state->guard =
      std::make_shared<detail::BackendGuard>(state->backend_name, state->resilience, clock_);
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
    found.fresh = !dogpile_expired(current->created, found.expiration, *clock_);
    found.refresh = found.fresh && detail::due_for_refresh(st, *current, found.expiration);
    found.fresh = found.fresh && !found.refresh;
    found.value = std::move(current->value);
    found.created = current->created;
  }
  return found;
}

CachedValuePtr CacheRegion::regenerate(const Lookup& found, std::string_view key, ValueMaker make,
                                       Decoder decode) {
  const State& st = *found.state;
  detail::Regeneration regeneration(*this, st, key,
                                    found.mangled ? *found.mangled : std::string(key),
                                    found.expiration, decode, detail::call_deadline(st));
  Current current;
  if (found.value) {
    current = Timestamped<CachedValuePtr>{found.value, found.created, found.value->metadata().ct};
  }
  return regeneration.run(std::move(current), found.refresh, std::move(make));
}

std::vector<CachedValuePtr> CacheRegion::get_or_create_values(const Keys& keys,
                                                              const MultiValueMaker& make,
                                                              std::optional<double> expiration_time,
                                                              Decoder decode) {
  if (keys.empty()) return {};
  detail::StatePin pin;
  const State& st = pinned(pin);
  Keys sorted(keys);
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  Keys storage;
  const Keys& mangled = backend_keys(st, sorted, storage);
  const auto values =
      detail::regenerate_multi(*this, st, sorted, mangled,
                               effective_expiration(expiration_time, st.expiration), decode, make);
  std::vector<CachedValuePtr> out;
  out.reserve(keys.size());
  for (const auto& key : keys) {
    out.push_back(values[std::lower_bound(sorted.begin(), sorted.end(), key) - sorted.begin()]);
  }
  return out;
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

}  // namespace dogpile
