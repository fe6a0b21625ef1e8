// A ProxyBackend wraps another backend and, by default, passes every call through to it:
// both families, remove, get_mutex, key_mangler, has_lock_timeout and capabilities. A proxy
// overrides what it changes (log, count, filter, transform) and calls the base method to continue
// down the chain. Because regions call the object family on the outermost backend whatever the
// backend stores, a proxy that overrides get() sees every read, on object and byte backends
// alike (unlike dogpile.cache, where proxies are bypassed on byte backends).
#pragma once

#include <memory>

#include "dogpile/sdk/backend.hpp"

namespace dogpile {

class DOGPILE_API ProxyBackend : public CacheBackend {
 public:
  // Sets the backend this proxy forwards to, once: a second call (the proxy object given to
  // another region) throws ValidationError.
  void wrap(std::shared_ptr<CacheBackend> proxied);
  const std::shared_ptr<CacheBackend>& proxied() const noexcept { return proxied_; }

  CachedValuePtr get(std::string_view key) override;
  std::vector<CachedValuePtr> get_multi(const Keys& keys) override;
  void set(const std::string& key, CachedValuePtr value) override;
  void set_multi(const ValueMapping& mapping) override;
  std::optional<std::string> get_serialized(std::string_view key) override;
  SerializedValues get_serialized_multi(const Keys& keys) override;
  void set_serialized(const std::string& key, std::string_view value) override;
  void set_serialized_multi(const SerializedMapping& mapping) override;
  void remove(std::string_view key) override;
  void remove_multi(const Keys& keys) override;
  std::unique_ptr<CacheMutex> get_mutex(std::string_view key) override;
  KeyMangler key_mangler() const override;
  bool has_lock_timeout() const override;
  BackendCapabilities capabilities() const override;

 private:
  CacheBackend& next() const;

  std::shared_ptr<CacheBackend> proxied_;
};

}  // namespace dogpile
