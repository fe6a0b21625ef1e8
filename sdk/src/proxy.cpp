#include "dogpile/sdk/proxy.hpp"

#include "dogpile/sdk/errors.hpp"

namespace dogpile {

// ProxyBackend: everything goes to the next backend in the chain.

void ProxyBackend::wrap(std::shared_ptr<CacheBackend> proxied) {
  if (!proxied) throw ValidationError("ProxyBackend::wrap: a null backend");
  if (proxied_) throw ValidationError("ProxyBackend::wrap: this proxy already wraps a backend");
  proxied_ = std::move(proxied);
}

CacheBackend& ProxyBackend::next() const {
  if (!proxied_) throw Error("a ProxyBackend was used before wrap() gave it a backend");
  return *proxied_;
}

CachedValuePtr ProxyBackend::get(std::string_view key) { return next().get(key); }
bool ProxyBackend::visit(std::string_view key, ValueVisitor visitor) {
  return next().visit(key, visitor);
}
std::vector<CachedValuePtr> ProxyBackend::get_multi(const Keys& keys) {
  return next().get_multi(keys);
}
void ProxyBackend::set(const std::string& key, CachedValuePtr value) {
  next().set(key, std::move(value));
}
void ProxyBackend::set_multi(const ValueMapping& mapping) { next().set_multi(mapping); }
std::optional<std::string> ProxyBackend::get_serialized(std::string_view key) {
  return next().get_serialized(key);
}
SerializedValues ProxyBackend::get_serialized_multi(const Keys& keys) {
  return next().get_serialized_multi(keys);
}
void ProxyBackend::set_serialized(const std::string& key, std::string_view value) {
  next().set_serialized(key, value);
}
void ProxyBackend::set_serialized_multi(const SerializedMapping& mapping) {
  next().set_serialized_multi(mapping);
}
void ProxyBackend::remove(std::string_view key) { next().remove(key); }
void ProxyBackend::remove_multi(const Keys& keys) { next().remove_multi(keys); }
std::unique_ptr<CacheMutex> ProxyBackend::get_mutex(std::string_view key) {
  return next().get_mutex(key);
}
KeyMangler ProxyBackend::key_mangler() const { return next().key_mangler(); }
bool ProxyBackend::has_lock_timeout() const { return next().has_lock_timeout(); }
BackendCapabilities ProxyBackend::capabilities() const { return next().capabilities(); }
std::shared_ptr<Broadcast> ProxyBackend::broadcast(std::string_view channel) {
  return next().broadcast(channel);
}

// ProxiedCall

std::size_t ProxiedCall::size() const noexcept {
  switch (subject_) {
    case Subject::one:
      return 1;
    case Subject::keys:
      return static_cast<const Keys*>(keys_)->size();
    case Subject::values:
      return static_cast<const ValueMapping*>(keys_)->size();
    case Subject::serialized_values:
      return static_cast<const SerializedMapping*>(keys_)->size();
  }
  return 0;
}

std::string_view ProxiedCall::key(std::size_t i) const {
  if (i >= size()) {
    throw ValidationError("ProxiedCall::key(" + std::to_string(i) + ") of a call with " +
                          std::to_string(size()) + " keys");
  }
  if (rewritten()) return rewritten_[i];
  switch (subject_) {
    case Subject::one:
      return *static_cast<const std::string_view*>(keys_);
    case Subject::keys:
      return (*static_cast<const Keys*>(keys_))[i];
    case Subject::values:
      return (*static_cast<const ValueMapping*>(keys_))[i].first;
    case Subject::serialized_values:
      return (*static_cast<const SerializedMapping*>(keys_))[i].first;
  }
  return {};
}

void ProxiedCall::rewrite_key(std::size_t i, std::string key) {
  if (proceeded_) throw Error("ProxiedCall::rewrite_key after proceed()");
  if (i >= size()) {
    throw ValidationError("ProxiedCall::rewrite_key(" + std::to_string(i) + ") of a call with " +
                          std::to_string(size()) + " keys");
  }
  if (!rewritten()) {
    std::vector<std::string> keys;
    keys.reserve(size());
    for (std::size_t k = 0; k < size(); ++k) keys.emplace_back(this->key(k));
    rewritten_ = std::move(keys);
  }
  rewritten_[i] = std::move(key);
}

void ProxiedCall::proceed() {
  if (proceeded_) throw Error("ProxiedCall::proceed() called twice for one call");
  proceeded_ = true;
  hits_ = next_(send_, *this);
}

// InterceptingProxy: each entry point describes its call, lets intercept() decide, and returns
// what the next backend gave, or a miss when the call was not proceeded. `send` forwards with
// the keys as the call has them; it returns the number of hits.

namespace {

// The mapping with the call's keys: the original when no key was rewritten.
template <class Mapping>
const Mapping& with_keys(const Mapping& mapping, const std::vector<std::string>& keys,
                         Mapping& storage) {
  if (keys.empty()) return mapping;
  storage.reserve(mapping.size());
  for (std::size_t i = 0; i < mapping.size(); ++i) storage.emplace_back(keys[i], mapping[i].second);
  return storage;
}

template <class Values>
std::size_t found(const Values& values) {
  std::size_t n = 0;
  for (const auto& value : values) n += static_cast<bool>(value);
  return n;
}

}  // namespace

bool InterceptingProxy::visit(std::string_view key, ValueVisitor visitor) {
  return CacheBackend::visit(key, visitor);
}

CachedValuePtr InterceptingProxy::get(std::string_view key) {
  CachedValuePtr value;
  auto send = [&](const ProxiedCall& call) -> std::size_t {
    value = next().get(call.key(0));
    return value ? 1 : 0;
  };
  ProxiedCall call(CacheOperation::get, false, ProxiedCall::Subject::one, &key, send);
  intercept(call);
  return value;
}

std::vector<CachedValuePtr> InterceptingProxy::get_multi(const Keys& keys) {
  std::vector<CachedValuePtr> values(keys.size());
  auto send = [&](const ProxiedCall& call) {
    values = next().get_multi(call.rewritten() ? call.rewritten_keys() : keys);
    return found(values);
  };
  ProxiedCall call(CacheOperation::get_multi, false, ProxiedCall::Subject::keys, &keys, send);
  intercept(call);
  return values;
}

void InterceptingProxy::set(const std::string& key, CachedValuePtr value) {
  auto send = [&](const ProxiedCall& call) -> std::size_t {
    next().set(call.rewritten() ? call.rewritten_keys()[0] : key, std::move(value));
    return 0;
  };
  const std::string_view view = key;
  ProxiedCall call(CacheOperation::set, false, ProxiedCall::Subject::one, &view, send);
  intercept(call);
}

void InterceptingProxy::set_multi(const ValueMapping& mapping) {
  auto send = [&](const ProxiedCall& call) -> std::size_t {
    ValueMapping storage;
    next().set_multi(with_keys(mapping, call.rewritten_keys(), storage));
    return 0;
  };
  ProxiedCall call(CacheOperation::set_multi, false, ProxiedCall::Subject::values, &mapping, send);
  intercept(call);
}

std::optional<std::string> InterceptingProxy::get_serialized(std::string_view key) {
  std::optional<std::string> value;
  auto send = [&](const ProxiedCall& call) -> std::size_t {
    value = next().get_serialized(call.key(0));
    return value ? 1 : 0;
  };
  ProxiedCall call(CacheOperation::get, true, ProxiedCall::Subject::one, &key, send);
  intercept(call);
  return value;
}

SerializedValues InterceptingProxy::get_serialized_multi(const Keys& keys) {
  SerializedValues values(keys.size());
  auto send = [&](const ProxiedCall& call) {
    values = next().get_serialized_multi(call.rewritten() ? call.rewritten_keys() : keys);
    return found(values);
  };
  ProxiedCall call(CacheOperation::get_multi, true, ProxiedCall::Subject::keys, &keys, send);
  intercept(call);
  return values;
}

void InterceptingProxy::set_serialized(const std::string& key, std::string_view value) {
  auto send = [&](const ProxiedCall& call) -> std::size_t {
    next().set_serialized(call.rewritten() ? call.rewritten_keys()[0] : key, value);
    return 0;
  };
  const std::string_view view = key;
  ProxiedCall call(CacheOperation::set, true, ProxiedCall::Subject::one, &view, send);
  intercept(call);
}

void InterceptingProxy::set_serialized_multi(const SerializedMapping& mapping) {
  auto send = [&](const ProxiedCall& call) -> std::size_t {
    SerializedMapping storage;
    next().set_serialized_multi(with_keys(mapping, call.rewritten_keys(), storage));
    return 0;
  };
  ProxiedCall call(CacheOperation::set_multi, true, ProxiedCall::Subject::serialized_values,
                   &mapping, send);
  intercept(call);
}

void InterceptingProxy::remove(std::string_view key) {
  auto send = [&](const ProxiedCall& call) -> std::size_t {
    next().remove(call.key(0));
    return 0;
  };
  ProxiedCall call(CacheOperation::remove, false, ProxiedCall::Subject::one, &key, send);
  intercept(call);
}

void InterceptingProxy::remove_multi(const Keys& keys) {
  auto send = [&](const ProxiedCall& call) -> std::size_t {
    next().remove_multi(call.rewritten() ? call.rewritten_keys() : keys);
    return 0;
  };
  ProxiedCall call(CacheOperation::remove_multi, false, ProxiedCall::Subject::keys, &keys, send);
  intercept(call);
}

std::unique_ptr<CacheMutex> InterceptingProxy::get_mutex(std::string_view key) {
  std::unique_ptr<CacheMutex> mutex;
  auto send = [&](const ProxiedCall& call) -> std::size_t {
    mutex = next().get_mutex(call.key(0));
    return 0;
  };
  ProxiedCall call(CacheOperation::get_mutex, false, ProxiedCall::Subject::one, &key, send);
  intercept(call);
  return mutex;
}

}  // namespace dogpile
