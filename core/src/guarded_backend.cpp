#include "guarded_backend.hpp"

#include <exception>
#include <type_traits>

#include "dogpile/sdk/errors.hpp"
#include "dogpile/sdk/log.hpp"

namespace dogpile::detail {

namespace {

// Whether `e` says the backend failed (rather than that the call was wrong, e.g. a value
// without a codec): what BackendErrors::miss absorbs.
bool is_backend_failure(const Error& e) {
  return typeid(e) == typeid(Error) || dynamic_cast<const BackendUnavailable*>(&e) != nullptr ||
         dynamic_cast<const ServerError*>(&e) != nullptr;
}

class GuardedMutex final : public CacheMutex {
 public:
  GuardedMutex(std::unique_ptr<CacheMutex> mutex, std::shared_ptr<BackendGuard> guard)
      : mutex_(std::move(mutex)), guard_(std::move(guard)) {}
  // Under miss, a lock that cannot be taken because the backend fails is treated as taken:
  // the caller makes the value without it, and its release does not reach the backend.
  bool acquire(bool wait) override {
    return (*guard_)([&] { return mutex_->acquire(wait); }, [&] { return pretend(); });
  }
  bool acquire_until(Deadline deadline, const std::function<bool()>& arrived) override {
    return (*guard_)([&] { return mutex_->acquire_until(deadline, arrived); },
                     [&] { return pretend(); });
  }
  void release() override {
    for (int n = pretended_.load(); n > 0;) {
      if (pretended_.compare_exchange_weak(n, n - 1)) return;
    }
    (*guard_)([&] { mutex_->release(); }, [] {});
  }
  bool locked() const override {
    return (*guard_)([&] { return mutex_->locked(); }, [] { return false; });
  }

 private:
  bool pretend() {
    pretended_.fetch_add(1);
    return true;
  }

  std::unique_ptr<CacheMutex> mutex_;
  std::shared_ptr<BackendGuard> guard_;
  std::atomic<int> pretended_{0};
};

}  // namespace

template <class Call, class Fallback>
auto BackendGuard::operator()(Call&& call, Fallback&& fallback) -> decltype(call()) {
  if (miss_) return absorbing(call, fallback);
  try {
    return call();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(backend_ + " failed: " + e.what());
  } catch (...) {
    throw Error(backend_ + " failed with an exception that is not a std::exception");
  }
}

template <class Call, class Fallback>
auto BackendGuard::absorbing(Call& call, Fallback& fallback) -> decltype(call()) {
  if (resting()) return fallback();
  try {
    if constexpr (std::is_void_v<decltype(call())>) {
      call();
      if (failing()) note_success();
      return;
    } else {
      auto result = call();
      if (failing()) note_success();
      return result;
    }
  } catch (const Error& e) {
    if (!is_backend_failure(e)) throw;
    note_failure(e.what());
  } catch (const std::exception& e) {
    note_failure(backend_ + " failed: " + e.what());
  } catch (...) {
    note_failure(backend_ + " failed with an exception that is not a std::exception");
  }
  return fallback();
}

bool BackendGuard::resting() noexcept {
  if (!failing()) return false;
  double retry_at = retry_at_.load(std::memory_order_relaxed);
  const double now = clock_->coarse_now();
  if (now < retry_at) return true;
  // The interval is over: one call tries the backend, the others go on resting meanwhile.
  return !retry_at_.compare_exchange_strong(retry_at, now + retry_interval_);
}

void BackendGuard::note_failure(const std::string& what) {
  retry_at_.store(clock_->coarse_now() + retry_interval_, std::memory_order_relaxed);
  failing_.store(true, std::memory_order_relaxed);
  std::lock_guard guard(log_mutex_);
  ++failures_;
  const double now = clock_->now();
  if (last_warning_ != 0 && now - last_warning_ < log_interval_) {
    ++unlogged_failures_;
    return;
  }
  std::string message = what + "; treated as a cache miss (backend_errors = miss)";
  if (unlogged_failures_ > 0) {
    message +=
        ", and " + std::to_string(unlogged_failures_) + " more failures since the last warning";
  }
  last_warning_ = now;
  unlogged_failures_ = 0;
  log(LogLevel::warning, "region", message);
}

void BackendGuard::note_success() {
  std::lock_guard guard(log_mutex_);
  if (!failing_.exchange(false)) return;
  log(LogLevel::warning, "region",
      backend_ + " answers again after " + std::to_string(failures_) + " failed calls");
  failures_ = 0;
  unlogged_failures_ = 0;
  last_warning_ = 0;
}

// The calls go straight to the wrapped backend (proxied(), set before any call), without
// ProxyBackend's out-of-line forwarding: one call less on every hit.
CachedValuePtr GuardedBackend::get(std::string_view key) {
  return (*guard_)([&] { return proxied()->get(key); }, [] { return CachedValuePtr(); });
}

// The region's visitor catches its own exceptions: what arrives here is the backend's.
bool GuardedBackend::visit(std::string_view key, ValueVisitor visitor) {
  return (*guard_)([&] { return proxied()->visit(key, visitor); }, [] { return false; });
}

std::vector<CachedValuePtr> GuardedBackend::get_multi(const Keys& keys) {
  return (*guard_)([&] { return proxied()->get_multi(keys); },
                   [&] { return std::vector<CachedValuePtr>(keys.size()); });
}

void GuardedBackend::set(const std::string& key, CachedValuePtr value) {
  (*guard_)([&] { proxied()->set(key, std::move(value)); }, [] {});
}

void GuardedBackend::set_multi(const ValueMapping& mapping) {
  (*guard_)([&] { proxied()->set_multi(mapping); }, [] {});
}

void GuardedBackend::remove(std::string_view key) {
  (*guard_)([&] { proxied()->remove(key); }, [] {});
}

void GuardedBackend::remove_multi(const Keys& keys) {
  (*guard_)([&] { proxied()->remove_multi(keys); }, [] {});
}

std::unique_ptr<CacheMutex> GuardedBackend::get_mutex(std::string_view key) {
  // Under miss, a backend that fails to give a lock gives the in-process one.
  auto mutex = (*guard_)([&] { return proxied()->get_mutex(key); },
                         [] { return std::unique_ptr<CacheMutex>(); });
  if (!mutex) return nullptr;
  return std::make_unique<GuardedMutex>(std::move(mutex), guard_);
}

}  // namespace dogpile::detail
