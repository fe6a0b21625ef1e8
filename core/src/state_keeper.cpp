#include "state_keeper.hpp"

#include "pool_thread.hpp"

namespace dogpile::detail {

const RegionState* StateKeeper::enter(StatePin& pin) {
  std::atomic<long>* count;
  for (;;) {
    const unsigned epoch = epoch_.load();
    count = &counts_[epoch][slot()].n;
    count->fetch_add(1);
    if (epoch_.load() == epoch) break;
    count->fetch_sub(1);  // flipped meanwhile: count in the new epoch
  }
  pin.keeper_ = this;
  pin.count_ = count;
  return current_state_.load();
}

void StateKeeper::leave(std::atomic<long>& count) noexcept {
  count.fetch_sub(1);
  // A pool's worker must not free a configuration that may own its pool.
  if (retiring_.load() && !on_pool_thread()) {
    std::unique_lock guard(mutex_, std::try_to_lock);
    if (guard.owns_lock()) reclaim();
  }
}

void StateKeeper::publish(std::unique_ptr<RegionState> next) {
  std::lock_guard guard(mutex_);
  current_state_.store(next.get());
  if (current_) {
    pending_.push_back(std::move(current_));
    retiring_.store(true);
  }
  current_ = std::move(next);
  reclaim();
}

std::vector<AsyncCreationRunner> StateKeeper::take_runners() {
  std::lock_guard guard(mutex_);
  std::vector<AsyncCreationRunner> runners;
  for (auto* list : {&draining_, &pending_}) {
    for (auto& state : *list) {
      runners.push_back(std::move(state->async_runner));
      runners.push_back(std::move(state->refresh_runner));
    }
  }
  if (current_) {
    runners.push_back(std::move(current_->async_runner));
    runners.push_back(std::move(current_->refresh_runner));
  }
  return runners;
}

namespace {
// A thread's slot + 1 (0: none yet). Constant-initialized and initial-exec, so reading it is
// one load from the thread pointer on every call, not a TLS wrapper and __tls_get_addr.
constinit thread_local std::size_t slot_plus_one __attribute__((tls_model("initial-exec"))) = 0;
}  // namespace

std::size_t StateKeeper::slot() noexcept {
  if (slot_plus_one == 0) [[unlikely]] {
    static std::atomic<std::size_t> next{0};
    slot_plus_one = next.fetch_add(1, std::memory_order_relaxed) % kSlots + 1;
  }
  return slot_plus_one - 1;
}

void StateKeeper::reclaim() {
  for (;;) {
    if (!draining_.empty()) {
      long in_flight = 0;
      for (const auto& count : counts_[1 - epoch_.load()]) in_flight += count.n.load();
      if (in_flight != 0) return;
      draining_.clear();
    }
    if (pending_.empty()) {
      retiring_.store(false);
      return;
    }
    draining_ = std::move(pending_);
    pending_.clear();
    epoch_.store(1 - epoch_.load());
  }
}

void StatePin::release() noexcept { keeper_->leave(*count_); }

}  // namespace dogpile::detail
