#include "lock_registry.hpp"

#include <atomic>
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
  // Waits on the semaphore: nothing to poll, so `arrived` is never asked.
  bool acquire_until(Deadline deadline, const std::function<bool()>&) override {
    if (deadline == Deadline::max()) return acquire(true);
    if (!semaphore_.try_acquire_until(deadline)) return false;
    held_.store(true, std::memory_order_relaxed);
    return true;
  }

 private:
  std::binary_semaphore semaphore_{1};
  std::atomic<bool> held_{false};
};

}  // namespace

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
