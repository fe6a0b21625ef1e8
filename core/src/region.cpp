#include "dogpile/region.hpp"

#include <algorithm>
#include <array>
#include <boost/core/demangle.hpp>
#include <cmath>
#include <map>
#include <semaphore>
#include <unordered_map>

#include "dogpile/loader.hpp"
#include "dogpile/sdk/log.hpp"
#include "registry.hpp"

namespace dogpile {

namespace {

// The in-process dogpile mutex. A semaphore rather than std::mutex: an async creation runner
// releases the lock from another thread than the one that took it.
class ProcessMutex final : public CacheMutex {
 public:
  bool acquire(bool wait) override {
    if (wait) {
      semaphore_.acquire();
    } else if (!semaphore_.try_acquire()) {
      return false;
    }
    held_.store(true, std::memory_order_relaxed);
    return true;
  }
  void release() override {
    held_.store(false, std::memory_order_relaxed);
    semaphore_.release();
  }
  bool locked() const override { return held_.load(std::memory_order_relaxed); }

 private:
  std::binary_semaphore semaphore_{1};
  std::atomic<bool> held_{false};
};

// `call()`, with an exception that is not dogpile's turned into a dogpile::Error naming the
// backend: a plugin must not take an application down with a type it cannot know.
template <class Call>
auto guarded(const std::string& backend, Call&& call) -> decltype(call()) {
  try {
    return call();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(backend + " failed: " + e.what());
  } catch (...) {
    throw Error(backend + " failed with an exception that is not a std::exception");
  }
}

class GuardedMutex final : public CacheMutex {
 public:
  GuardedMutex(std::unique_ptr<CacheMutex> mutex, std::string backend)
      : mutex_(std::move(mutex)), backend_(std::move(backend)) {}
  bool acquire(bool wait) override {
    return guarded(backend_, [&] { return mutex_->acquire(wait); });
  }
  bool acquire_unless(const std::function<bool()>& value_ready) override {
    return guarded(backend_, [&] { return mutex_->acquire_unless(value_ready); });
  }
  void release() override {
    guarded(backend_, [&] { mutex_->release(); });
  }
  bool locked() const override {
    return guarded(backend_, [&] { return mutex_->locked(); });
  }

 private:
  std::unique_ptr<CacheMutex> mutex_;
  const std::string backend_;
};

// What a region calls: the backend chain, guarded.
class GuardedBackend final : public ProxyBackend {
 public:
  explicit GuardedBackend(std::string backend) : backend_(std::move(backend)) {}

  CachedValuePtr get(std::string_view key) override {
    return guarded(backend_, [&] { return ProxyBackend::get(key); });
  }
  std::vector<CachedValuePtr> get_multi(const Keys& keys) override {
    return guarded(backend_, [&] { return ProxyBackend::get_multi(keys); });
  }
  void set(const std::string& key, CachedValuePtr value) override {
    guarded(backend_, [&] { ProxyBackend::set(key, std::move(value)); });
  }
  void set_multi(const ValueMapping& mapping) override {
    guarded(backend_, [&] { ProxyBackend::set_multi(mapping); });
  }
  void remove(std::string_view key) override {
    guarded(backend_, [&] { ProxyBackend::remove(key); });
  }
  void remove_multi(const Keys& keys) override {
    guarded(backend_, [&] { ProxyBackend::remove_multi(keys); });
  }
  std::unique_ptr<CacheMutex> get_mutex(std::string_view key) override {
    auto mutex = guarded(backend_, [&] { return ProxyBackend::get_mutex(key); });
    if (!mutex) return nullptr;
    return std::make_unique<GuardedMutex>(std::move(mutex), backend_);
  }

 private:
  const std::string backend_;
};

}  // namespace

// One mutex object per key while anyone holds a reference to it; the entry is removed when
// the last reference goes, so memory does not grow with the number of keys ever locked.
// Sharded so that locking different keys rarely contends.
class CacheRegion::LockRegistry : public std::enable_shared_from_this<LockRegistry> {
 public:
  explicit LockRegistry(std::shared_ptr<CacheBackend> backend) : backend_(std::move(backend)) {}

  std::size_t size() {
    std::size_t n = 0;
    for (auto& shard : shards_) {
      std::lock_guard guard(shard.mutex);
      n += shard.mutexes.size();
    }
    return n;
  }

  std::shared_ptr<CacheMutex> get(const std::string& key) {
    Shard& shard = shard_for(key);
    std::lock_guard guard(shard.mutex);
    auto it = shard.mutexes.find(key);
    if (it != shard.mutexes.end()) {
      if (auto existing = it->second.lock()) return existing;
    }
    std::unique_ptr<CacheMutex> made = backend_->get_mutex(key);
    if (!made) made = std::make_unique<ProcessMutex>();
    std::shared_ptr<CacheMutex> shared(made.release(),
                                       [registry = weak_from_this(), key](CacheMutex* mutex) {
                                         delete mutex;
                                         if (auto self = registry.lock()) self->forget(key);
                                       });
    shard.mutexes.insert_or_assign(key, shared);
    return shared;
  }

 private:
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, std::weak_ptr<CacheMutex>> mutexes;
  };

  Shard& shard_for(const std::string& key) {
    return shards_[std::hash<std::string>{}(key) % shards_.size()];
  }

  void forget(const std::string& key) {
    Shard& shard = shard_for(key);
    std::lock_guard guard(shard.mutex);
    auto it = shard.mutexes.find(key);
    if (it != shard.mutexes.end() && it->second.expired()) shard.mutexes.erase(it);
  }

  std::shared_ptr<CacheBackend> backend_;
  std::array<Shard, 16> shards_;
};

struct CacheRegion::State {
  std::string backend_name;
  std::shared_ptr<CacheBackend> actual;
  std::shared_ptr<CacheBackend> outer;
  std::shared_ptr<CacheBackend> calls;  // outer, guarded: what the region calls
  std::optional<double> expiration;
  KeyMangler key_mangler;
  std::shared_ptr<RegionInvalidationStrategy> invalidator;
  std::shared_ptr<LockRegistry> locks;
  AsyncCreationRunner async_runner;
  std::unique_ptr<ThreadPoolRunner> pool;  // when the configuration asked for one
  bool raise_on_undecodable = false;
};

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
      default_invalidator_(std::make_shared<DefaultInvalidationStrategy>()) {
  if (!function_key_generator_ || !function_multi_key_generator_) {
    throw ValidationError("make_region: the function key generators must not be empty");
  }
  detail::RegionRegistry::instance().add(this);
}

CacheRegion::~CacheRegion() {
  detail::RegionRegistry::instance().remove(this);
  // Background regenerations use this region: finish them while it is still whole.
  for (auto& state : states_) {
    if (state->pool) state->pool->shutdown();
  }
}

std::shared_ptr<CacheRegion> make_region(RegionOptions options) {
  return std::make_shared<CacheRegion>(std::move(options));
}

const CacheRegion::State& CacheRegion::state() const {
  const State* state = state_.load(std::memory_order_acquire);
  if (state == nullptr) throw RegionNotConfigured("No backend is configured on this region.");
  return *state;
}

namespace {

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

}  // namespace

CacheRegion& CacheRegion::configure(std::string_view backend, ConfigureOptions options) {
  std::lock_guard guard(configure_mutex_);
  if (const State* current = state_.load(std::memory_order_acquire);
      current != nullptr && !options.replace_existing_backend) {
    throw RegionAlreadyConfigured(
        "This region is already configured with backend: " + current->backend_name +
        ".  Specify replace_existing_backend=True to replace.");
  }
  auto state = std::make_unique<State>();
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
  state->key_mangler = options.key_mangler ? std::move(options.key_mangler)
                       : user_key_mangler_ ? user_key_mangler_
                                           : state->outer->key_mangler();
  state->invalidator =
      options.region_invalidator ? std::move(options.region_invalidator) : default_invalidator_;
  auto guarded_calls = std::make_shared<GuardedBackend>(state->backend_name);
  guarded_calls->wrap(state->outer);
  state->calls = std::move(guarded_calls);
  state->locks = std::make_shared<LockRegistry>(state->calls);
  if (options.async_creation_runner) {
    state->async_runner = std::move(options.async_creation_runner);
  } else if (options.async_thread_pool > 0) {
    state->pool =
        std::make_unique<ThreadPoolRunner>(options.async_thread_pool, options.async_queue_limit);
    state->async_runner = state->pool->runner();
  } else {
    state->async_runner = async_creation_runner_;
  }

  log(LogLevel::info, "region",
      "region '" + name_ + "' configured with backend " + state->backend_name);
  state_.store(state.get(), std::memory_order_release);
  states_.push_back(std::move(state));
  return *this;
}

CacheRegion& CacheRegion::configure_from_config(const ConfigDict& config, std::string_view prefix) {
  const std::string p(prefix);
  const std::string arguments_prefix = p + "arguments.";
  ConfigDict coerced = coerce_string_conf(config);

  auto backend = coerced.find(p + "backend");
  if (backend == coerced.end()) throw ConfigError("missing required key " + p + "backend");
  if (!backend->second.is_string()) {
    throw ValidationError(p + "backend must be the name of a backend plugin, not " +
                          shown_value(p + "backend", backend->second));
  }

  const std::string wrap_arguments_prefix = p + "wrap_arguments.";
  ConfigureOptions options;
  options.config_prefix = p;
  std::vector<std::pair<std::string, const nlohmann::json*>> wrap_arguments;
  for (const auto& [key, value] : coerced) {
    if (key.compare(0, p.size(), p) != 0) continue;
    const std::string_view name = std::string_view(key).substr(p.size());
    if (name == "backend") {
      continue;
    } else if (name == "expiration_time") {
      options.expiration_time = parse_expiration_time(value);
    } else if (key.compare(0, arguments_prefix.size(), arguments_prefix) == 0 &&
               key.size() > arguments_prefix.size()) {
      options.arguments[key.substr(arguments_prefix.size())] = value;
    } else if (key.compare(0, wrap_arguments_prefix.size(), wrap_arguments_prefix) == 0) {
      wrap_arguments.emplace_back(key, &value);
    } else if (name == "wrap") {
      if (value.is_string()) {
        std::string names = value.get<std::string>();
        for (char& c : names) {
          if (c == ',') c = ' ';
        }
        std::size_t pos = 0;
        while ((pos = names.find_first_not_of(" \t\n", pos)) != std::string::npos) {
          auto end = names.find_first_of(" \t\n", pos);
          options.wrap.emplace_back(names.substr(pos, end - pos));
          pos = end;
        }
      } else if (value.is_array()) {
        for (const auto& item : value) {
          if (!item.is_string()) {
            throw ValidationError(key + " must list proxy plugin names, not " +
                                  shown_value(key, item));
          }
          options.wrap.emplace_back(item.get<std::string>());
        }
      } else if (!value.is_null()) {
        throw ValidationError(key + " must be a list of proxy plugin names, not " +
                              shown_value(key, value));
      }
    } else if (name == "async_creation_runner") {
      if (value.is_null()) continue;
      if (value != "thread_pool") {
        throw ValidationError(key +
                              " must be thread_pool (the ready-made background runner), "
                              "not " +
                              shown_value(key, value));
      }
      if (options.async_thread_pool == 0) options.async_thread_pool = 2;
    } else if (name == "async_creation_runner_threads" || name == "async_creation_runner_queue") {
      if (!value.is_number_integer() || value.get<long long>() <= 0) {
        throw ValidationError(key + " must be a positive integer, not " + shown_value(key, value));
      }
      (name == "async_creation_runner_threads" ? options.async_thread_pool
                                               : options.async_queue_limit) =
          value.get<std::size_t>();
    } else if (name == "key_mangler") {
      if (!value.is_string())
        throw ValidationError(key + " must be sha1 or sha1:LENGTH, not " + shown_value(key, value));
      options.key_mangler = key_mangler_from_config(value.get<std::string>(), key);
    } else if (name == "replace_existing_backend" || name == "raise_on_undecodable") {
      if (!value.is_boolean())
        throw ValidationError(key + " must be true or false, not " + shown_value(key, value));
      (name == "raise_on_undecodable" ? options.raise_on_undecodable
                                      : options.replace_existing_backend) = value.get<bool>();
    } else {
      throw ValidationError(
          "unknown config key " + key +
          " (a region takes backend, expiration_time, arguments.<name>, wrap, "
          "wrap_arguments.<proxy>.<name>, "
          "replace_existing_backend, key_mangler, raise_on_undecodable, async_creation_runner, "
          "async_creation_runner_threads, async_creation_runner_queue)");
    }
  }
  // <prefix>wrap_arguments.<proxy name>.<argument>: the longest proxy name in wrap that fits.
  for (const auto& [key, value] : wrap_arguments) {
    const std::string_view rest = std::string_view(key).substr(wrap_arguments_prefix.size());
    ProxySpec* target = nullptr;
    for (auto& wrapper : options.wrap) {
      auto& spec = std::get<ProxySpec>(wrapper);
      if (rest.size() > spec.name.size() + 1 && rest.starts_with(spec.name) &&
          rest[spec.name.size()] == '.' && (!target || spec.name.size() > target->name.size())) {
        target = &spec;
      }
    }
    if (!target) {
      throw ValidationError(key + " names no proxy of " + p + "wrap");
    }
    const std::string argument(rest.substr(target->name.size() + 1));
    for (auto& wrapper : options.wrap) {
      auto& spec = std::get<ProxySpec>(wrapper);
      if (spec.name == target->name) spec.arguments[argument] = *value;
    }
  }
  if (options.async_thread_pool > 0 && coerced.count(p + "async_creation_runner") == 0) {
    throw ValidationError(p + "async_creation_runner_threads is set but " + p +
                          "async_creation_runner is not thread_pool");
  }
  return configure(backend->second.get<std::string>(), std::move(options));
}

std::shared_ptr<CacheBackend> CacheRegion::backend() const { return state().outer; }
std::shared_ptr<CacheBackend> CacheRegion::actual_backend() const { return state().actual; }
const std::string& CacheRegion::backend_name() const { return state().backend_name; }
std::optional<double> CacheRegion::expiration_time() const { return state().expiration; }

std::string CacheRegion::mangle(std::string_view key) const {
  const State& st = state();
  return st.key_mangler ? st.key_mangler(key) : std::string(key);
}

bool CacheRegion::is_fresh(const State& st, const CachedValue& value, const GetOptions& options) {
  if (options.ignore_expiration) return true;
  std::optional<double> expiration = st.expiration;
  if (options.expiration_time) expiration = normalized_expiration(options.expiration_time);
  const double ct = value.metadata().ct;
  if (older_than(ct, expiration)) return false;
  return !st.invalidator->is_invalidated(ct);
}

CachedValuePtr CacheRegion::decode_for_key(const CachedValuePtr& value, std::string_view key,
                                           Decoder decode) {
  try {
    if (!value->decodable()) throw CantDeserialize(value->problem());
    return decode != nullptr ? decode(value) : value;
  } catch (const ValueTypeError& e) {
    throw ValueTypeError("cached value for key '" + std::string(key) + "' " + e.what());
  } catch (const CantDeserialize& e) {
    throw CantDeserialize("cached value for key '" + std::string(key) + "' " + e.what());
  }
}

CachedValuePtr CacheRegion::decoded(const State& st, CachedValuePtr value, std::string_view key,
                                    Decoder decode) const {
  if (!value) return nullptr;
  try {
    return decode_for_key(value, key, decode);
  } catch (const CantDeserialize& e) {
    if (st.raise_on_undecodable) throw;
    if (log_enabled(LogLevel::warning)) {
      log(LogLevel::warning, "region",
          "region '" + name_ + "': " + e.what() + "; treated as a miss");
    }
    return nullptr;
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
  const State& st = state();
  CachedValuePtr value = st.key_mangler ? st.calls->get(st.key_mangler(key)) : st.calls->get(key);
  if (value && value->decodable() && !is_fresh(st, *value, options)) return nullptr;
  return decoded(st, std::move(value), key, decode);
}

std::vector<CachedValuePtr> CacheRegion::get_decoded_multi(const Keys& keys,
                                                           const GetOptions& options,
                                                           Decoder decode) const {
  if (keys.empty()) return {};
  const State& st = state();
  std::vector<CachedValuePtr> values;
  if (st.key_mangler) {
    Keys mangled;
    mangled.reserve(keys.size());
    for (const auto& key : keys) mangled.push_back(st.key_mangler(key));
    values = st.calls->get_multi(mangled);
  } else {
    values = st.calls->get_multi(keys);
  }
  for (std::size_t i = 0; i < values.size(); ++i) {
    auto& value = values[i];
    if (value && value->decodable() && !is_fresh(st, *value, options)) value = nullptr;
    value = decoded(st, std::move(value), keys[i], decode);
  }
  return values;
}

void CacheRegion::set_value(std::string_view key, CachedValuePtr value) {
  if (!value) throw ValidationError("set_value: a null value cannot be stored");
  state().calls->set(mangle(key), std::move(value));
}

void CacheRegion::set_value_multi(const ValueMapping& mapping) {
  if (mapping.empty()) return;
  const State& st = state();
  for (const auto& [key, value] : mapping) {
    if (!value) throw ValidationError("set_value_multi: a null value for key '" + key + "'");
  }
  if (!st.key_mangler) return st.calls->set_multi(mapping);
  ValueMapping mangled;
  mangled.reserve(mapping.size());
  for (const auto& [key, value] : mapping) mangled.emplace_back(st.key_mangler(key), value);
  st.calls->set_multi(mangled);
}

// get_or_create ----------------------------------------------------------------------------

namespace {

constexpr const char* kSoftInvalidationNeedsExpiration =
    "Non-None expiration time required for soft invalidation";

// The expiration time in effect: the call's if given (-1: never), else the region's.
std::optional<double> effective_expiration(std::optional<double> call,
                                           std::optional<double> region) {
  return call ? normalized_expiration(call) : region;
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

CacheRegion::Current CacheRegion::classify(const State& st, CachedValuePtr value,
                                           std::string_view key, std::optional<double> expiration,
                                           Decoder decode) const {
  if (!value) return std::nullopt;
  if (value->decodable() && value->metadata().v != kValueVersion) return std::nullopt;
  value = decoded(st, std::move(value), key, decode);
  if (!value) return std::nullopt;
  double ct = value->metadata().ct;
  if (st.invalidator->is_hard_invalidated(ct)) return std::nullopt;
  if (st.invalidator->is_soft_invalidated(ct)) {
    if (!expiration) throw Error(kSoftInvalidationNeedsExpiration);
    // Reads as expired: older than the expiration time on the clock expiry checks use.
    ct = coarse_now_seconds() - *expiration - 0.0001;
  }
  return Timestamped<CachedValuePtr>{std::move(value), ct};
}

CacheRegion::Lookup CacheRegion::lookup(std::string_view key, std::optional<double> expiration_time,
                                        Decoder decode) const {
  Lookup found;
  const State& st = state();
  found.state = &st;
  if (st.key_mangler) {
    found.mangled_storage = st.key_mangler(key);
    found.mangled = found.mangled_storage;
  } else {
    found.mangled = key;
  }
  found.expiration = effective_expiration(expiration_time, st.expiration);
  found.current = classify(st, st.calls->get(found.mangled), key, found.expiration, decode);
  return found;
}

CachedValuePtr CacheRegion::regenerate(const Lookup& found, std::string_view key, ValueMaker make,
                                       Decoder decode) {
  const State& st = *found.state;
  const std::string mangled(found.mangled);
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
  return dogpile_lock<CachedValuePtr>(found.current, get_mutex, getter, creator, found.expiration,
                                      async);
}

std::vector<CachedValuePtr> CacheRegion::get_or_create_values(const Keys& keys,
                                                              const MultiValueMaker& make,
                                                              std::optional<double> expiration_time,
                                                              Decoder decode) {
  if (keys.empty()) return {};
  const State& st = state();
  const std::optional<double> expiration = effective_expiration(expiration_time, st.expiration);

  Keys sorted(keys);
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  std::map<std::string, std::string> mangled;
  Keys mangled_sorted;
  mangled_sorted.reserve(sorted.size());
  for (const auto& key : sorted) {
    mangled_sorted.push_back(st.key_mangler ? st.key_mangler(key) : key);
    mangled.emplace(key, mangled_sorted.back());
  }

  std::map<std::string, CachedValuePtr> result;
  HeldMutexes held;
  const auto stored = st.calls->get_multi(mangled_sorted);
  // Lock in sorted key order, so two multi calls cannot deadlock.
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    Current current = classify(st, stored.at(i), sorted[i], expiration, decode);
    if (current) result[sorted[i]] = current->value;
    if (current && !dogpile_expired(current->created, expiration)) continue;
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
    if (current && !dogpile_expired(current->created, expiration)) {
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

void CacheRegion::remove(std::string_view key) { state().calls->remove(mangle(key)); }

void CacheRegion::remove_multi(const Keys& keys) {
  if (keys.empty()) return;
  const State& st = state();
  if (!st.key_mangler) return st.calls->remove_multi(keys);
  Keys mangled;
  mangled.reserve(keys.size());
  for (const auto& key : keys) mangled.push_back(st.key_mangler(key));
  st.calls->remove_multi(mangled);
}

std::shared_ptr<CacheMutex> CacheRegion::mutex(std::string_view key) const {
  return state().locks->get(mangle(key));
}

bool CacheRegion::key_is_locked(std::string_view key) const { return mutex(key)->locked(); }

std::size_t CacheRegion::locks_in_use() const { return state().locks->size(); }

std::optional<StatsSnapshot> CacheRegion::stats() const {
  for (const CacheBackend* backend = state().outer.get(); backend != nullptr;) {
    if (const auto* provider = dynamic_cast<const StatsProvider*>(backend))
      return provider->stats();
    const auto* proxy = dynamic_cast<const ProxyBackend*>(backend);
    backend = proxy != nullptr ? proxy->proxied().get() : nullptr;
  }
  return std::nullopt;
}

RegionInvalidationStrategy& CacheRegion::region_invalidator() const {
  const State* st = state_.load(std::memory_order_acquire);
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
