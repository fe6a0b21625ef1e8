#include "dogpile/async_runner.hpp"

#include "dogpile/lock.hpp"
#include "dogpile/sdk/log.hpp"
#include "pool_thread.hpp"

namespace dogpile {

namespace {
thread_local bool t_on_pool_thread = false;
}  // namespace

bool detail::on_pool_thread() noexcept { return t_on_pool_thread; }

ThreadPoolRunner::ThreadPoolRunner(std::size_t threads, std::size_t max_queued)
    : max_queued_(max_queued) {
  if (threads == 0 || threads > kMostThreads || max_queued == 0 || max_queued > kMostQueued) {
    throw ValidationError("a ThreadPoolRunner takes 1 to " + std::to_string(kMostThreads) +
                          " threads and queues 1 to " + std::to_string(kMostQueued) +
                          " jobs, not " + std::to_string(threads) + " and " +
                          std::to_string(max_queued));
  }
  try {
    workers_.reserve(threads);
    for (std::size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
  } catch (const std::exception& e) {
    // No destructor runs for a constructor that throws: stop the threads already started,
    // else their std::thread objects would terminate the program.
    const std::size_t started = workers_.size();
    shutdown();
    throw Error("a ThreadPoolRunner could not start " + std::to_string(threads) +
                " threads (it started " + std::to_string(started) + "): " + e.what());
  }
}

ThreadPoolRunner::~ThreadPoolRunner() { shutdown(); }

void ThreadPoolRunner::shutdown() {
  {
    std::lock_guard guard(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  ready_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPoolRunner::work() {
  t_on_pool_thread = true;
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock guard(mutex_);
      ready_.wait(guard, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to run
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    job();
  }
}

void ThreadPoolRunner::submit(std::function<void()> job, const std::shared_ptr<CacheMutex>& mutex) {
  {
    std::lock_guard guard(mutex_);
    if (!stopping_ && queue_.size() < max_queued_) {
      queue_.push_back(std::move(job));
      ready_.notify_one();
      return;
    }
  }
  log(LogLevel::warning, "async_runner",
      "regeneration dropped: the background queue is full or stopping; the stale value stays "
      "and the next caller will try again");
  release_logged(*mutex);
}

AsyncCreationRunner ThreadPoolRunner::runner() {
  return [this](CacheRegion& region, const std::string& key,
                std::function<CachedValuePtr()> creator, std::shared_ptr<CacheMutex> mutex) {
    auto job = [&region, key, creator = std::move(creator), mutex] {
      try {
        if (auto value = creator()) region.set_value(key, std::move(value));
      } catch (const std::exception& e) {
        log(LogLevel::error, "async_runner",
            "background regeneration of key '" + key + "' failed: " + e.what());
      }
      release_logged(*mutex);
    };
    submit(std::move(job), mutex);
  };
}

AsyncCreationRunner ThreadPoolRunner::owning_runner(std::size_t threads, std::size_t max_queued) {
  auto pool = std::make_shared<ThreadPoolRunner>(threads, max_queued);
  return [pool, run = pool->runner()](CacheRegion& region, const std::string& key,
                                      std::function<CachedValuePtr()> creator,
                                      std::shared_ptr<CacheMutex> mutex) {
    run(region, key, std::move(creator), std::move(mutex));
  };
}

}  // namespace dogpile
