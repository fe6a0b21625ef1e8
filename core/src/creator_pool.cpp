#include "creator_pool.hpp"

#include <system_error>

namespace dogpile::detail {

CreatorPool::~CreatorPool() {
  std::deque<std::function<void()>> dropped;
  {
    std::lock_guard guard(mutex_);
    stopping_ = true;
    dropped.swap(queue_);
  }
  ready_.notify_all();
  dropped.clear();
  for (auto& thread : threads_) thread.join();
}

bool CreatorPool::submit(std::function<void()> job) {
  {
    std::lock_guard guard(mutex_);
    if (queue_.size() >= max_queued_) return false;
    queue_.push_back(std::move(job));
    if (idle_ < queue_.size() && threads_.size() < max_threads_) {
      try {
        threads_.emplace_back([this] { work(); });
        return true;
      } catch (const std::system_error&) {
        // No thread to be had: the job waits for a running one, if there is any.
        if (threads_.empty()) {
          queue_.pop_back();
          return false;
        }
      }
    }
  }
  ready_.notify_one();
  return true;
}

void CreatorPool::work() {
  std::unique_lock lock(mutex_);
  for (;;) {
    ++idle_;
    ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    --idle_;
    if (queue_.empty()) return;  // stopping
    auto job = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    job();  // jobs catch what their creator throws
    job = nullptr;
    lock.lock();
  }
}

}  // namespace dogpile::detail
