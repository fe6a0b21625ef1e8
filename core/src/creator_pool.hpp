// Threads for creators a caller may stop waiting for (soft_timeout, hard_timeout): the creator
// runs here while its caller waits with a deadline, and goes on after the caller has left,
// storing its value. Threads are started on demand, up to a cap, and reused; jobs beyond the
// cap wait in a bounded queue.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace dogpile::detail {

class CreatorPool {
 public:
  explicit CreatorPool(std::size_t max_threads = 64, std::size_t max_queued = 1024)
      : max_threads_(max_threads), max_queued_(max_queued) {}
  // Drops the jobs still queued (destroying them, which releases what they hold) and joins
  // the threads once their running jobs are done.
  ~CreatorPool();
  CreatorPool(const CreatorPool&) = delete;
  CreatorPool& operator=(const CreatorPool&) = delete;

  // Runs `job` on a pool thread; false (the job is destroyed) when the queue is full or no
  // thread can be started.
  bool submit(std::function<void()> job);

 private:
  void work();

  const std::size_t max_threads_;
  const std::size_t max_queued_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> queue_;
  std::size_t idle_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace dogpile::detail
