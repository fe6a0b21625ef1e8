// A ProxyBackend wraps another backend and, by default, passes every call through to it:
// both families, visit, remove, get_mutex, key_mangler, has_lock_timeout and capabilities. A proxy
// overrides what it changes (log, count, filter, transform) and calls the base method to continue
// down the chain. Because regions call the object family on the outermost backend whatever the
// backend stores, a proxy that overrides get() sees every read, on object and byte backends
// alike (unlike dogpile.cache, where proxies are bypassed on byte backends).
//
// A proxy that observes calls (counts, logs, times, traces), filters them or rewrites their keys
// derives from InterceptingProxy instead and writes one function, intercept(), which every
// call (both families, multi or not, and get_mutex) passes through as a ProxiedCall.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

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
  bool visit(std::string_view key, ValueVisitor visitor) override;
  void remove(std::string_view key) override;
  void remove_multi(const Keys& keys) override;
  std::unique_ptr<CacheMutex> get_mutex(std::string_view key) override;
  KeyMangler key_mangler() const override;
  bool has_lock_timeout() const override;
  BackendCapabilities capabilities() const override;
  std::shared_ptr<Broadcast> broadcast(std::string_view channel) override;

 protected:
  // The backend this proxy forwards to; throws Error before wrap().
  CacheBackend& next() const;

 private:
  std::shared_ptr<CacheBackend> proxied_;
};

// The first backend of the chain that starts at `backend` (through ProxyBackends) that is a
// T, e.g. a StatsProvider or an EvictionCounter; null when there is none.
template <class T>
const T* find_in_chain(const CacheBackend* backend) {
  while (backend != nullptr) {
    if (const auto* found = dynamic_cast<const T*>(backend)) return found;
    const auto* proxy = dynamic_cast<const ProxyBackend*>(backend);
    backend = proxy != nullptr ? proxy->proxied().get() : nullptr;
  }
  return nullptr;
}

// One call passing through an InterceptingProxy: what it is, its keys, and proceed() to send it
// down the chain.
class DOGPILE_API ProxiedCall {
 public:
  ProxiedCall(const ProxiedCall&) = delete;
  ProxiedCall& operator=(const ProxiedCall&) = delete;

  CacheOperation operation() const noexcept { return operation_; }
  // True for the bytes family (get_serialized, set_serialized, ...).
  bool serialized() const noexcept { return serialized_; }
  // The call's keys: one for get, set, remove and get_mutex; the keys (or the mapping's keys, in
  // order) of a multi call. Rewritten keys are shown as rewritten.
  std::size_t size() const noexcept;
  std::string_view key(std::size_t i) const;
  // Before proceed(): the next backend gets `key` in place of key(i). For get_mutex too, so a
  // proxy that rewrites keys locks what it stores.
  void rewrite_key(std::size_t i, std::string key);

  // Sends the call, with any rewritten keys, to the next backend; its exception, if any,
  // propagates (to intercept(), which may catch it). Once: a second call throws Error. A call
  // that intercept() never proceeds has not happened: a read misses every key, a write or
  // remove stores or removes nothing, get_mutex gives no mutex (the region's in-process lock).
  void proceed();
  bool proceeded() const noexcept { return proceeded_; }
  // After proceed(), for get and get_multi: how many of the keys were found.
  std::size_t hits() const noexcept { return hits_; }

 private:
  friend class InterceptingProxy;
  enum class Subject { one, keys, values, serialized_values };
  using Next = std::size_t (*)(void* send, const ProxiedCall& call);

  template <class Send>
  ProxiedCall(CacheOperation operation, bool serialized, Subject subject, const void* keys,
              Send& send)
      : operation_(operation),
        serialized_(serialized),
        subject_(subject),
        keys_(keys),
        send_(&send),
        next_([](void* s, const ProxiedCall& call) -> std::size_t {
          return (*static_cast<Send*>(s))(call);
        }) {}

  // The keys for the next backend, for calls that take Keys; and whether any were rewritten.
  const std::vector<std::string>& rewritten_keys() const noexcept { return rewritten_; }
  bool rewritten() const noexcept { return !rewritten_.empty(); }

  CacheOperation operation_;
  bool serialized_;
  Subject subject_;
  const void* keys_;  // std::string_view, Keys, ValueMapping or SerializedMapping, per subject_
  void* send_;
  Next next_;
  bool proceeded_ = false;
  std::size_t hits_ = 0;
  std::vector<std::string> rewritten_;  // every key, once one is rewritten
};

// A proxy written as one function: every backend call reaches intercept() as a ProxiedCall,
// which the proxy inspects, may rewrite, and proceeds (or not); key_mangler, has_lock_timeout
// and capabilities pass through. The shape of spdlog's base_sink: the entry points are fixed
// (final), the hook is the proxy's. For example, a proxy that counts misses:
//
//   class MissCounter final : public dogpile::InterceptingProxy {
//    protected:
//     void intercept(dogpile::ProxiedCall& call) override {
//       call.proceed();
//       if (call.operation() == dogpile::CacheOperation::get && call.hits() == 0) ++misses;
//     }
//    public:
//     std::atomic<long> misses{0};
//   };
//
// A proxy that changes values derives from ProxyBackend and overrides the calls it changes, in
// both families.
class DOGPILE_API InterceptingProxy : public ProxyBackend {
 public:
  CachedValuePtr get(std::string_view key) final;
  std::vector<CachedValuePtr> get_multi(const Keys& keys) final;
  void set(const std::string& key, CachedValuePtr value) final;
  void set_multi(const ValueMapping& mapping) final;
  std::optional<std::string> get_serialized(std::string_view key) final;
  SerializedValues get_serialized_multi(const Keys& keys) final;
  void set_serialized(const std::string& key, std::string_view value) final;
  void set_serialized_multi(const SerializedMapping& mapping) final;
  // A visit reaches intercept() as the get it is, through CacheBackend's default.
  bool visit(std::string_view key, ValueVisitor visitor) final;
  void remove(std::string_view key) final;
  void remove_multi(const Keys& keys) final;
  std::unique_ptr<CacheMutex> get_mutex(std::string_view key) final;

 protected:
  // Called from many threads at once, for every call; calls call.proceed() to continue.
  virtual void intercept(ProxiedCall& call) = 0;
};

}  // namespace dogpile
