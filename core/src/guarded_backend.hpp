// What a region calls: its backend chain behind a proxy that turns any exception that is not
// dogpile's into a dogpile::Error naming the backend, so a plugin cannot take an application
// down with a type it cannot know. The mutexes it gives are guarded the same way.
//
// Under BackendErrors::miss it also absorbs the backend's failures: reads miss, writes and
// removes are dropped, a lock that cannot be taken is treated as taken (the value is made
// without it). After a failure the backend is left alone for the retry interval; warnings are
// logged at most once per log interval.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "dogpile/options.hpp"
#include "dogpile/sdk/clock.hpp"
#include "dogpile/sdk/proxy.hpp"

namespace dogpile::detail {

// How calls to one backend are guarded, and its health under miss; shared by the backend's
// guard and the mutexes it gives, which may outlive it in a background regeneration.
class BackendGuard {
 public:
  // `options` validated: backend_errors and its intervals.
  BackendGuard(std::string backend, const ResilienceOptions& options,
               std::shared_ptr<const Clock> clock)
      : backend_(std::move(backend)),
        miss_(options.backend_errors == BackendErrors::miss),
        retry_interval_(*options.backend_retry_interval),
        log_interval_(*options.backend_error_log_interval),
        clock_(std::move(clock)) {}

  // `call()` guarded: a foreign exception becomes an Error naming the backend; under miss, a
  // backend failure returns `fallback()` instead, as does a call while the backend is left
  // alone.
  template <class Call, class Fallback>
  auto operator()(Call&& call, Fallback&& fallback) -> decltype(call());

  // Under miss: whether the last call to reach the backend failed (it is being left alone).
  bool failing() const noexcept { return failing_.load(std::memory_order_relaxed); }

 private:
  // operator() under miss: kept out of the path every call of a raising region takes.
  template <class Call, class Fallback>
  [[gnu::noinline]] auto absorbing(Call& call, Fallback& fallback) -> decltype(call());
  // Whether calls should skip the backend now.
  bool resting() noexcept;
  void note_failure(const std::string& what);
  void note_success();

  const std::string backend_;
  const bool miss_;
  const double retry_interval_;
  const double log_interval_;
  const std::shared_ptr<const Clock> clock_;
  std::atomic<bool> failing_{false};
  std::atomic<double> retry_at_{0};
  std::mutex log_mutex_;
  double last_warning_ = 0;
  std::uint64_t unlogged_failures_ = 0;
  std::uint64_t failures_ = 0;
};

class GuardedBackend final : public ProxyBackend {
 public:
  explicit GuardedBackend(std::shared_ptr<BackendGuard> guard) : guard_(std::move(guard)) {}

  CachedValuePtr get(std::string_view key) override;
  std::vector<CachedValuePtr> get_multi(const Keys& keys) override;
  bool visit(std::string_view key, ValueVisitor visitor) override;
  void set(const std::string& key, CachedValuePtr value) override;
  void set_multi(const ValueMapping& mapping) override;
  void remove(std::string_view key) override;
  void remove_multi(const Keys& keys) override;
  std::unique_ptr<CacheMutex> get_mutex(std::string_view key) override;

  const BackendGuard& guard() const noexcept { return *guard_; }

 private:
  std::shared_ptr<BackendGuard> guard_;
};

}  // namespace dogpile::detail
