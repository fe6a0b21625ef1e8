#include "epoch.hpp"

#include <mutex>
#include <utility>
#include <vector>

namespace dogpile::memory::epoch {

std::atomic<std::uint64_t> global_epoch{1};
thread_local Record* this_thread = nullptr;

namespace {

constexpr std::size_t kBagSize = 64;

struct Retired {
  void* object;
  void (*deleter)(void*);
  std::uint64_t epoch;
};

std::atomic<Record*> records{nullptr};
std::atomic<unsigned> record_count{0};
// Bags of threads that ended; taken by the next thread that collects. Never destroyed: a
// thread may end after static destructors ran.
std::mutex& orphans_mutex() {
  static auto* mutex = new std::mutex;
  return *mutex;
}
std::vector<Retired>& orphans() {
  static auto* bag = new std::vector<Retired>;
  return *bag;
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

// Frees what is safe to free in `bag`, keeping the rest.
void collect(std::vector<Retired>& bag) {
  const std::uint64_t epoch = try_advance();
  std::size_t kept = 0;
  for (std::size_t i = 0; i < bag.size(); ++i) {
    if (bag[i].epoch + 2 <= epoch) {
      bag[i].deleter(bag[i].object);
    } else {
      bag[kept++] = bag[i];
    }
  }
  bag.resize(kept);
}

void give_to_orphans(const std::vector<Retired>& bag) {
  std::lock_guard lock(orphans_mutex());
  orphans().insert(orphans().end(), bag.begin(), bag.end());
}

// Set once the thread's bag is destroyed: a cache used by a later thread_local destructor then
// retires into the orphans, and keeps its record.
thread_local bool exiting = false;

struct ThreadBag {
  std::vector<Retired> bag;
  // The size at which the bag is next collected: kBagSize more than what the last collection
  // kept, so that objects still in use are not scanned on every retirement.
  std::size_t next_collection = kBagSize;
  ~ThreadBag() {
    exiting = true;
    if (this_thread != nullptr) this_thread->owned.store(false, std::memory_order_release);
    this_thread = nullptr;
    if (!bag.empty()) give_to_orphans(bag);
  }
};
thread_local ThreadBag thread_bag;

}  // namespace

Record* register_thread() {
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
    Record* head = records.load(std::memory_order_relaxed);
    do {
      mine->next = head;
    } while (!records.compare_exchange_weak(head, mine, std::memory_order_release,
                                            std::memory_order_relaxed));
  }
  // The bag is constructed now, so that its destructor releases the record.
  if (!exiting) thread_bag.bag.reserve(kBagSize);
  this_thread = mine;
  return mine;
}

void retire(void* object, void (*deleter)(void*)) {
  const Retired retired{object, deleter, global_epoch.load(std::memory_order_seq_cst)};
  if (exiting) return give_to_orphans({retired});
  auto& bag = thread_bag.bag;
  bag.push_back(retired);
  if (bag.size() < thread_bag.next_collection) return;
  {
    std::unique_lock lock(orphans_mutex(), std::try_to_lock);
    if (lock && !orphans().empty()) {
      auto& o = orphans();
      bag.insert(bag.end(), o.begin(), o.end());
      o.clear();
    }
  }
  collect(bag);
  thread_bag.next_collection = bag.size() + kBagSize;
}

}  // namespace dogpile::memory::epoch
