#include "epoch.hpp"

#include <pthread.h>

#include <cassert>
#include <deque>
#include <mutex>
#include <vector>

namespace dogpile::memory::epoch {

std::atomic<std::uint64_t> global_epoch{1};
constinit thread_local Record* this_thread = nullptr;

namespace {

// A thread tries to move the epoch on every kAdvanceEvery retirements.
constexpr unsigned kAdvanceEvery = 16;
// And frees one object per retirement, oldest first (one free for each allocation of the
// writer that retires, which keeps glibc's per-thread cache balanced; in bursts, frees of
// objects another thread allocated overflow it into that thread's arena lock), two while
// more than kBagTarget wait, so that a backlog drains.
constexpr std::size_t kBagTarget = 64;

struct Retired {
  void* object;
  void (*deleter)(void*);
  std::uint64_t epoch;
};

std::atomic<Record*> records{nullptr};
std::atomic<unsigned> record_count{0};
// What threads that ended left to free; taken by the next thread that moves the epoch on.
// Never destroyed: a thread may end after static destructors ran.
std::mutex& orphans_mutex() {
  static auto* mutex = new std::mutex;
  return *mutex;
}
std::vector<Retired>& orphans() {
  static auto* bag = new std::vector<Retired>;
  return *bag;
}

void give_to_orphans(const std::deque<Retired>& bag) {
  std::lock_guard lock(orphans_mutex());
  orphans().insert(orphans().end(), bag.begin(), bag.end());
}

// The epoch moves on when every thread reading is in the current one. Objects retired two
// epochs ago can then no longer be reached by any reader.
std::uint64_t try_advance() {
  std::uint64_t current = global_epoch.load(std::memory_order_seq_cst);
  for (Record* r = records.load(std::memory_order_acquire); r != nullptr; r = r->next) {
    const std::uint64_t pinned = r->pinned.load(std::memory_order_seq_cst);
    if (pinned != 0 && pinned != current) return current;
  }
  if (global_epoch.compare_exchange_strong(current, current + 1, std::memory_order_seq_cst)) {
    return current + 1;
  }
  return current;
}

// Set once the thread's bag is destroyed: a cache used by a later thread_local destructor then
// retires into the orphans, and keeps its record.
thread_local bool exiting = false;

// A thread's retired objects, oldest (lowest epoch) first, freed as the thread retires more.
struct ThreadBag {
  std::deque<Retired> bag;
  unsigned since_advance = 0;
  ~ThreadBag() {
    exiting = true;
    if (this_thread != nullptr) this_thread->owned.store(false, std::memory_order_release);
    this_thread = nullptr;
    if (!bag.empty()) give_to_orphans(bag);
  }
};
thread_local ThreadBag thread_bag;

// In a child of fork(), only the forking thread lives: the records of the others are freed,
// so that a thread that was reading when its process forked does not hold the epoch back.
void after_fork_in_child() {
  for (Record* r = records.load(std::memory_order_acquire); r != nullptr; r = r->next) {
    if (r == this_thread) continue;
    r->pinned.store(0, std::memory_order_relaxed);
    r->depth = 0;
    r->owned.store(false, std::memory_order_release);
  }
}

}  // namespace

Record* register_thread() {
  static const int at_fork = pthread_atfork(nullptr, nullptr, &after_fork_in_child);
  (void)at_fork;
  Record* mine = nullptr;
  for (Record* r = records.load(std::memory_order_acquire); r != nullptr && mine == nullptr;
       r = r->next) {
    bool free = false;
    if (r->owned.compare_exchange_strong(free, true, std::memory_order_acquire)) mine = r;
  }
  if (mine == nullptr) {
    mine = new Record;  // never freed: other threads walk the list at any time
    mine->owned.store(true, std::memory_order_relaxed);
    mine->index = record_count.fetch_add(1, std::memory_order_relaxed);
    mine->random ^= mine->index * 0x85EBCA6BU;  // threads sample different hits
    if (mine->random == 0) mine->random = 1;
    Record* head = records.load(std::memory_order_relaxed);
    do {
      mine->next = head;
    } while (!records.compare_exchange_weak(head, mine, std::memory_order_release,
                                            std::memory_order_relaxed));
  }
  // The bag is constructed now, so that its destructor releases the record.
  if (!exiting) thread_bag.since_advance = 0;
  this_thread = mine;
  return mine;
}

void retire(void* object, void (*deleter)(void*)) {
  assert(this_thread != nullptr && this_thread->depth > 0);
  const Retired retired{object, deleter, global_epoch.load(std::memory_order_seq_cst)};
  if (exiting) return give_to_orphans({retired});
  ThreadBag& mine = thread_bag;
  mine.bag.push_back(retired);
  std::uint64_t epoch = retired.epoch;
  if (++mine.since_advance >= kAdvanceEvery) {
    mine.since_advance = 0;
    if (std::unique_lock lock(orphans_mutex(), std::try_to_lock); lock && !orphans().empty()) {
      mine.bag.insert(mine.bag.end(), orphans().begin(), orphans().end());
      orphans().clear();
    }
    epoch = try_advance();
  }
  const unsigned frees = mine.bag.size() > kBagTarget ? 2 : 1;
  for (unsigned i = 0; i < frees && !mine.bag.empty(); ++i) {
    const Retired oldest = mine.bag.front();
    if (oldest.epoch + 2 > epoch) break;
    mine.bag.pop_front();
    oldest.deleter(oldest.object);  // may retire more: the bag is consistent here
  }
}

}  // namespace dogpile::memory::epoch
