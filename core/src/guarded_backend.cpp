#include "guarded_backend.hpp"

#include <exception>

#include "dogpile/sdk/errors.hpp"

namespace dogpile::detail {

namespace {

// `call()`, with an exception that is not dogpile's turned into a dogpile::Error naming the
// backend.
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

}  // namespace

CachedValuePtr GuardedBackend::get(std::string_view key) {
  return guarded(backend_, [&] { return ProxyBackend::get(key); });
}

std::vector<CachedValuePtr> GuardedBackend::get_multi(const Keys& keys) {
  return guarded(backend_, [&] { return ProxyBackend::get_multi(keys); });
}

void GuardedBackend::set(const std::string& key, CachedValuePtr value) {
  guarded(backend_, [&] { ProxyBackend::set(key, std::move(value)); });
}

void GuardedBackend::set_multi(const ValueMapping& mapping) {
  guarded(backend_, [&] { ProxyBackend::set_multi(mapping); });
}

void GuardedBackend::remove(std::string_view key) {
  guarded(backend_, [&] { ProxyBackend::remove(key); });
}

void GuardedBackend::remove_multi(const Keys& keys) {
  guarded(backend_, [&] { ProxyBackend::remove_multi(keys); });
}

std::unique_ptr<CacheMutex> GuardedBackend::get_mutex(std::string_view key) {
  auto mutex = guarded(backend_, [&] { return ProxyBackend::get_mutex(key); });
  if (!mutex) return nullptr;
  return std::make_unique<GuardedMutex>(std::move(mutex), backend_);
}

}  // namespace dogpile::detail
