#include "dogpile/region.hpp"

#include <array>
#include <cmath>
#include <semaphore>
#include <unordered_map>

#include <boost/core/demangle.hpp>

#include "dogpile/loader.hpp"
#include "dogpile/sdk/log.hpp"

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

}  // namespace

// One mutex object per key while anyone holds a reference to it; the entry is removed when
// the last reference goes, so memory does not grow with the number of keys ever locked.
// Sharded so that locking different keys rarely contends.
class CacheRegion::LockRegistry : public std::enable_shared_from_this<LockRegistry> {
 public:
  explicit LockRegistry(std::shared_ptr<CacheBackend> backend) : backend_(std::move(backend)) {}

  std::shared_ptr<CacheMutex> get(const std::string& key) {
    Shard& shard = shard_for(key);
    std::lock_guard guard(shard.mutex);
    auto& slot = shard.mutexes[key];
    if (auto existing = slot.lock()) return existing;
    std::unique_ptr<CacheMutex> made = backend_->get_mutex(key);
    if (!made) made = std::make_unique<ProcessMutex>();
    std::shared_ptr<CacheMutex> shared(
        made.release(), [registry = weak_from_this(), key](CacheMutex* mutex) {
          delete mutex;
          if (auto self = registry.lock()) self->forget(key);
        });
    slot = shared;
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
  std::optional<double> expiration;
  KeyMangler key_mangler;
  std::shared_ptr<RegionInvalidationStrategy> invalidator;
  std::shared_ptr<LockRegistry> locks;
};

CacheRegion::CacheRegion(std::string name, KeyMangler key_mangler)
    : name_(std::move(name)),
      user_key_mangler_(std::move(key_mangler)),
      default_invalidator_(std::make_shared<DefaultInvalidationStrategy>()) {}

CacheRegion::~CacheRegion() = default;

std::shared_ptr<CacheRegion> make_region(std::string name, KeyMangler key_mangler) {
  return std::make_shared<CacheRegion>(std::move(name), std::move(key_mangler));
}

const CacheRegion::State& CacheRegion::state() const {
  const State* state = state_.load(std::memory_order_acquire);
  if (state == nullptr) throw RegionNotConfigured("No backend is configured on this region.");
  return *state;
}

namespace {

std::optional<double> normalized_expiration(std::optional<double> seconds) {
  if (!seconds || *seconds == -1) return std::nullopt;
  if (!std::isfinite(*seconds) || *seconds < 0) {
    throw ValidationError("expiration_time must be -1 (never) or a non-negative number of "
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
    throw RegionAlreadyConfigured("This region is already configured with backend: " +
                                  current->backend_name +
                                  ".  Specify replace_existing_backend=True to replace.");
  }
  auto state = std::make_unique<State>();
  state->backend_name = std::string(backend);
  state->expiration = normalized_expiration(options.expiration_time);

  auto& loader = PluginLoader::instance();
  state->actual = loader.make_backend(
      backend, Arguments(std::move(options.arguments), options.arguments_key_prefix));
  state->outer = state->actual;
  for (auto it = options.wrap.rbegin(); it != options.wrap.rend(); ++it) {
    std::shared_ptr<ProxyBackend> proxy;
    if (const auto* name = std::get_if<std::string>(&*it)) {
      proxy = loader.make_proxy(*name, Arguments());
    } else {
      proxy = std::get<std::shared_ptr<ProxyBackend>>(*it);
      if (!proxy) throw ValidationError("wrap: a null ProxyBackend was given");
    }
    proxy->wrap(state->outer);
    state->outer = std::move(proxy);
  }
  state->key_mangler = user_key_mangler_ ? user_key_mangler_ : state->outer->key_mangler();
  state->invalidator =
      options.region_invalidator ? std::move(options.region_invalidator) : default_invalidator_;
  state->locks = std::make_shared<LockRegistry>(state->outer);

  log(LogLevel::info, "region",
      "region '" + name_ + "' configured with backend " + state->backend_name);
  state_.store(state.get(), std::memory_order_release);
  states_.push_back(std::move(state));
  return *this;
}

CacheRegion& CacheRegion::configure_from_config(const ConfigDict& config,
                                                std::string_view prefix) {
  const std::string p(prefix);
  const std::string arguments_prefix = p + "arguments.";
  ConfigDict coerced = coerce_string_conf(config);

  auto backend = coerced.find(p + "backend");
  if (backend == coerced.end()) throw ConfigError("missing required key " + p + "backend");
  if (!backend->second.is_string()) {
    throw ValidationError(p + "backend must be the name of a backend plugin, not " +
                          backend->second.dump());
  }

  ConfigureOptions options;
  options.arguments_key_prefix = arguments_prefix;
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
            throw ValidationError(key + " must list proxy plugin names, not " + item.dump());
          }
          options.wrap.emplace_back(item.get<std::string>());
        }
      } else if (!value.is_null()) {
        throw ValidationError(key + " must be a list of proxy plugin names, not " + value.dump());
      }
    } else if (name == "replace_existing_backend") {
      if (!value.is_boolean()) throw ValidationError(key + " must be true or false, not " + value.dump());
      options.replace_existing_backend = value.get<bool>();
    } else {
      throw ValidationError("unknown config key " + key +
                            " (a region takes backend, expiration_time, arguments.<name>, wrap, "
                            "replace_existing_backend)");
    }
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

bool CacheRegion::is_fresh(const State& st, const CachedValue& value,
                           const GetOptions& options) {
  if (options.ignore_expiration) return true;
  std::optional<double> expiration = st.expiration;
  if (options.expiration_time) expiration = normalized_expiration(options.expiration_time);
  const double ct = value.metadata().ct;
  if (expiration && now_seconds() - ct > *expiration) return false;
  return !st.invalidator->is_invalidated(ct);
}

CachedValuePtr CacheRegion::get_value_metadata(std::string_view key,
                                               const GetOptions& options) const {
  const State& st = state();
  CachedValuePtr value =
      st.key_mangler ? st.outer->get(st.key_mangler(key)) : st.outer->get(key);
  if (value && !is_fresh(st, *value, options)) return nullptr;
  return value;
}

std::vector<CachedValuePtr> CacheRegion::get_value_metadata_multi(
    const Keys& keys, const GetOptions& options) const {
  if (keys.empty()) return {};
  const State& st = state();
  std::vector<CachedValuePtr> values;
  if (st.key_mangler) {
    Keys mangled;
    mangled.reserve(keys.size());
    for (const auto& key : keys) mangled.push_back(st.key_mangler(key));
    values = st.outer->get_multi(mangled);
  } else {
    values = st.outer->get_multi(keys);
  }
  for (auto& value : values) {
    if (value && !is_fresh(st, *value, options)) value = nullptr;
  }
  return values;
}

void CacheRegion::set_value(std::string_view key, CachedValuePtr value) {
  if (!value) throw ValidationError("set_value: a null value cannot be stored");
  state().outer->set(mangle(key), std::move(value));
}

void CacheRegion::set_value_multi(const ValueMapping& mapping) {
  if (mapping.empty()) return;
  const State& st = state();
  for (const auto& [key, value] : mapping) {
    if (!value) throw ValidationError("set_value_multi: a null value for key '" + key + "'");
  }
  if (!st.key_mangler) return st.outer->set_multi(mapping);
  ValueMapping mangled;
  mangled.reserve(mapping.size());
  for (const auto& [key, value] : mapping) mangled.emplace_back(st.key_mangler(key), value);
  st.outer->set_multi(mangled);
}

void CacheRegion::remove(std::string_view key) { state().outer->remove(mangle(key)); }

void CacheRegion::remove_multi(const Keys& keys) {
  if (keys.empty()) return;
  const State& st = state();
  if (!st.key_mangler) return st.outer->remove_multi(keys);
  Keys mangled;
  mangled.reserve(keys.size());
  for (const auto& key : keys) mangled.push_back(st.key_mangler(key));
  st.outer->remove_multi(mangled);
}

std::shared_ptr<CacheMutex> CacheRegion::mutex(std::string_view key) const {
  return state().locks->get(mangle(key));
}

bool CacheRegion::key_is_locked(std::string_view key) const { return mutex(key)->locked(); }

RegionInvalidationStrategy& CacheRegion::region_invalidator() const {
  const State* st = state_.load(std::memory_order_acquire);
  return st != nullptr ? *st->invalidator : *default_invalidator_;
}

void CacheRegion::invalidate(bool hard) { region_invalidator().invalidate(hard); }

void CacheRegion::throw_wrong_type(std::string_view key, const std::type_info& stored,
                                   const std::type_info& wanted) {
  throw ValueTypeError("cached value for key '" + std::string(key) + "' holds a " +
                       boost::core::demangle(stored.name()) + ", not a " +
                       boost::core::demangle(wanted.name()));
}

void CacheRegion::throw_cant_decode(std::string_view key, const std::type_info& wanted,
                                    const char* why) {
  throw CantDeserialize("cached value for key '" + std::string(key) + "' cannot be read as a " +
                        boost::core::demangle(wanted.name()) + ": " + why);
}

}  // namespace dogpile
