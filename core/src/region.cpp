#include "dogpile/region.hpp"

#include <algorithm>
#include <boost/core/demangle.hpp>
#include <cmath>
#include <map>

#include "dogpile/loader.hpp"
#include "dogpile/lock.hpp"
#include "dogpile/sdk/log.hpp"
#include "guarded_backend.hpp"
#include "lock_registry.hpp"
#include "registry.hpp"
#include "state_keeper.hpp"

namespace dogpile {



namespace {

using detail::RegionState;
using Decoder = CachedValuePtr (*)(const CachedValuePtr& value);
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

// A value read from the backend for `key`, decoded by `decode` (null: not decoded). A value
// that does not decode is a miss, logged, unless the region raises on them.
CachedValuePtr decoded(const RegionState& st, CachedValuePtr value, std::string_view key,
                       Decoder decode) {
  if (!value) return nullptr;
  try {
    return detail::decode_for_key(value, key, decode);
  } catch (const CantDeserialize& e) {
    if (st.raise_on_undecodable) throw;
    if (log_enabled(LogLevel::warning)) {
      log(LogLevel::warning, "region",
          "region '" + st.region_name + "': " + e.what() + "; treated as a miss");
    }
    return nullptr;
  }
}

// Whether `value` may be returned by get under `options`.
bool is_fresh(const RegionState& st, const CachedValue& value, const GetOptions& options) {
  if (options.ignore_expiration) return true;
  const auto expiration = effective_expiration(options.expiration_time, st.expiration);
  const double ct = value.metadata().ct;
  if (older_than(ct, expiration, st.clock->coarse_now())) return false;
  return !st.invalidator->is_invalidated(ct);
}

// A backend value as the dogpile lock sees it, decoded: nullopt when missing, of another
// version, hard-invalidated or undecodable; a soft-invalidated value's time is moved back so
// it reads as expired.
Current classify(const RegionState& st, CachedValuePtr value, std::string_view key,
                 std::optional<double> expiration, Decoder decode) {
  if (!value) return std::nullopt;
  if (value->decodable() && value->metadata().v != kValueVersion) return std::nullopt;
  value = decoded(st, std::move(value), key, decode);
  if (!value) return std::nullopt;
  double ct = value->metadata().ct;
  if (st.invalidator->is_hard_invalidated(ct)) return std::nullopt;
  if (st.invalidator->is_soft_invalidated(ct)) {
    if (!expiration) throw Error(kSoftInvalidationNeedsExpiration);
    // Reads as expired: older than the expiration time on the clock expiry checks use.
    ct = st.clock->coarse_now() - *expiration - 0.0001;
  }
  return Timestamped<CachedValuePtr>{std::move(value), ct};
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
  state->invalidator =
      options.region_invalidator ? std::move(options.region_invalidator) : default_invalidator_;
  auto guarded_calls = std::make_shared<detail::GuardedBackend>(state->backend_name);
  guarded_calls->wrap(state->outer);
  state->calls = std::move(guarded_calls);
  state->locks = std::make_shared<detail::LockRegistry>(state->calls);
  state->async_runner =
      settings.async_creation_runner ? settings.async_creation_runner : async_creation_runner_;

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

CachedValuePtr detail::decode_for_key(const CachedValuePtr& value, std::string_view key,
                                      CachedValuePtr (*decode)(const CachedValuePtr&)) {
  try {
    if (!value->decodable()) throw CantDeserialize(value->problem());
    return decode != nullptr ? decode(value) : value;
  } catch (const ValueTypeError& e) {
    throw ValueTypeError("cached value for key '" + std::string(key) + "' " + e.what());
  } catch (const CantDeserialize& e) {
    throw CantDeserialize("cached value for key '" + std::string(key) + "' " + e.what());
  }
}

CachedValuePtr CacheRegion::get_value_metadata(std::string_view key,
                                               const GetOptions& options) const {
  return get_decoded(key, options, nullptr);
}

std::vector<CachedValuePtr> CacheRegion::get_value_metadata_multi(const Keys& keys,
                                                                  const GetOptions& options) const {
  return get_decoded_multi(keys, options, nullptr);
}

CachedValuePtr CacheRegion::get_decoded(std::string_view key, const GetOptions& options,
                                        Decoder decode) const {
  detail::StatePin pin;
  const State& st = pinned(pin);
  std::string storage;
  CachedValuePtr value = st.calls->get(backend_key(st, key, storage));
  if (value && value->decodable() && !is_fresh(st, *value, options)) return nullptr;
  return decoded(st, std::move(value), key, decode);
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
    if (value && value->decodable() && !is_fresh(st, *value, options)) value = nullptr;
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
                                        Decoder decode) const {
  Lookup found;
  const State& st = pinned(found.pin);
  found.state = &st;
  if (st.key_mangler) found.mangled = st.key_mangler(key);
  found.expiration = effective_expiration(expiration_time, st.expiration);
  const Current current = classify(st, st.calls->get(found.mangled ? *found.mangled : key), key,
                                   found.expiration, decode);
  if (current) {
    found.value = current->value;
    found.created = current->created;
    found.fresh = !dogpile_expired(found.created, found.expiration, *clock_);
  }
  return found;
}

CachedValuePtr CacheRegion::regenerate(const Lookup& found, std::string_view key, ValueMaker make,
                                       Decoder decode) {
  const State& st = *found.state;
  const std::string mangled(found.mangled ? *found.mangled : key);
  auto get_mutex = [&] { return st.locks->get(mangled); };
  auto getter = [&] { return classify(st, st.calls->get(mangled), key, found.expiration, decode); };
  auto creator = [&]() -> Timestamped<CachedValuePtr> {
    Created made = make();
    if (!found.expiration && st.invalidator->was_soft_invalidated()) {
      throw Error(kSoftInvalidationNeedsExpiration);
    }
    if (made.cache) st.calls->set(mangled, made.value);
    const double ct = made.value->metadata().ct;
    return {std::move(made.value), ct};
  };
  std::function<void(std::shared_ptr<CacheMutex>)> async;
  if (st.async_runner) {
    async = [&](std::shared_ptr<CacheMutex> mutex) {
      st.async_runner(
          *this, std::string(key),
          [make]() -> CachedValuePtr {
            Created made = make();
            return made.cache ? std::move(made.value) : nullptr;
          },
          std::move(mutex));
    };
  }
  Current current;
  if (found.value) current = Timestamped<CachedValuePtr>{found.value, found.created};
  return dogpile_lock<CachedValuePtr>(std::move(current), get_mutex, getter, creator,
                                      found.expiration, async, *clock_);
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
  const auto stored = st.calls->get_multi(mangled_sorted);
  // Lock in sorted key order, so two multi calls cannot deadlock.
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    Current current = classify(st, stored.at(i), sorted[i], expiration, decode);
    if (current) result[sorted[i]] = current->value;
    if (fresh(current)) continue;
    auto mutex = st.locks->get(mangled_sorted[i]);
    if (current) {
      // A stale value: regenerate it if nobody else is, else serve it.
      if (mutex->acquire(false)) held.add(sorted[i], std::move(mutex));
    } else {
      // Not got (its blocking timeout ran out): created without the lock, as get_or_create does.
      const bool got = mutex->acquire(true);
      held.add(sorted[i], got ? std::move(mutex) : nullptr);
    }
  }
  auto aligned = [&] {
    std::vector<CachedValuePtr> out;
    out.reserve(keys.size());
    for (const auto& key : keys) out.push_back(result[key]);
    return out;
  };
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
  for (const CacheBackend* backend = pinned(pin).outer.get(); backend != nullptr;) {
    if (const auto* provider = dynamic_cast<const StatsProvider*>(backend))
      return provider->stats();
    const auto* proxy = dynamic_cast<const ProxyBackend*>(backend);
    backend = proxy != nullptr ? proxy->proxied().get() : nullptr;
  }
  return std::nullopt;
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
