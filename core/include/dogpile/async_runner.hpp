// The ready-made AsyncCreationRunner (see region.hpp): a bounded pool of background threads.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "dogpile/region.hpp"
#include "dogpile/sdk/export.hpp"

namespace dogpile {

// A bounded pool of background threads that regenerates values: the ready-made runner.
// At most `max_queued` regenerations wait; when the queue is full the job is dropped and its
// mutex released at once, so the next caller after expiry tries again. A creator that throws
// is logged; the stale value stays and the next caller tries again.
class DOGPILE_API ThreadPoolRunner {
 public:
  // The bounds of `threads` and `max_queued` (a config's async_creation_runner_threads and
  // async_creation_runner_queue).
  static constexpr std::size_t kMostThreads = 256;
  static constexpr std::size_t kMostQueued = 1'000'000;

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

  // An AsyncCreationRunner that owns a pool of its own: the pool is shut down when the last
  // copy of the runner goes (a region drops its copies first thing when it is destroyed).
  // What a config file's `async_creation_runner = thread_pool` gives a region.
  static AsyncCreationRunner owning_runner(std::size_t threads = 2, std::size_t max_queued = 1024);

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
