#include "lock_registry.hpp"

#include <atomic>
#include <chrono>
#include <semaphore>

namespace dogpile::detail {

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
  bool acquire_for(std::chrono::steady_clock::duration timeout) {
    if (!semaphore_.try_acquire_for(timeout)) return false;
    held_.store(true, std::memory_order_relaxed);
    return true;
  }

 private:
  std::binary_semaphore semaphore_{1};
  std::atomic<bool> held_{false};
};

}  // namespace

std::optional<bool> acquire_within(CacheMutex& mutex, const std::function<bool()>& value_ready,
                                   double seconds) {
  using Clock = std::chrono::steady_clock;
  const auto timeout =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  if (auto* process = dynamic_cast<ProcessMutex*>(&mutex)) {
    if (process->acquire_for(timeout)) return true;
    return value_ready() ? std::optional<bool>(false) : std::nullopt;
  }
  // A lock in a server is polled: `value_ready` is asked between polls, and so is the clock.
  const auto deadline = Clock::now() + timeout;
  bool ready = false;
  const bool held =
      mutex.acquire_unless([&] { return (ready = value_ready()) || Clock::now() >= deadline; });
  // Not held and no value before the deadline: the lock's own blocking timeout ran out.
  if (held || ready || Clock::now() < deadline) return held;
  return std::nullopt;
}

std::size_t LockRegistry::size() {
  std::size_t n = 0;
  for (auto& shard : shards_) {
    std::lock_guard guard(shard.mutex);
    n += shard.mutexes.size();
  }
  return n;
}

std::shared_ptr<CacheMutex> LockRegistry::get(const std::string& key) {
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

void LockRegistry::forget(const std::string& key) {
  Shard& shard = shard_for(key);
  std::lock_guard guard(shard.mutex);
  auto it = shard.mutexes.find(key);
  if (it != shard.mutexes.end() && it->second.expired()) shard.mutexes.erase(it);
}

}  // namespace dogpile::detail
