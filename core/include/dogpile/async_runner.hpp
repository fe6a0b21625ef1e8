// Regenerating stale values in the background.
//
// A region's async creation runner is called by get_or_create when a value is stale and this
// caller won the dogpile lock: the caller returns the stale value at once and the runner
// regenerates. It receives the region, the (unmangled) key, a creator and the held mutex, and
// must, now or later: call `creator()`, store its result with `region.set_value(key, value)`
// unless it is null (should_cache_fn said no), and release the mutex, whatever happens.
// The first call for a key (no value at all) never uses the runner: it creates in the caller.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dogpile/sdk/export.hpp"
#include "dogpile/sdk/mutex.hpp"
#include "dogpile/sdk/value.hpp"

namespace dogpile {

class CacheRegion;

using AsyncCreationRunner =
    std::function<void(CacheRegion& region, const std::string& key,
                       std::function<CachedValuePtr()> creator, std::shared_ptr<CacheMutex> mutex)>;

// A bounded pool of background threads that regenerates values: the ready-made runner.
// At most `max_queued` regenerations wait; when the queue is full the job is dropped and its
// mutex released at once, so the next caller after expiry tries again. A creator that throws
// is logged; the stale value stays and the next caller tries again.
class DOGPILE_API ThreadPoolRunner {
 public:
  explicit ThreadPoolRunner(std::size_t threads = 2, std::size_t max_queued = 1024);
  ~ThreadPoolRunner();  // runs what is queued, then joins
  ThreadPoolRunner(const ThreadPoolRunner&) = delete;
  ThreadPoolRunner& operator=(const ThreadPoolRunner&) = delete;

  // The AsyncCreationRunner that queues onto this pool. REQUIRES: the pool outlives every
  // region using it.
  AsyncCreationRunner runner();

  // Stops accepting work, runs what is queued, and joins the threads.
  void shutdown();

  std::size_t threads() const noexcept { return workers_.size(); }

 private:
  void submit(std::function<void()> job, const std::shared_ptr<CacheMutex>& mutex);
  void work();

  const std::size_t max_queued_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace dogpile
