// Epoch-based reclamation, as crossbeam-epoch: readers of the memory backend's tables take no
// lock; a writer that unlinks a node retires it, and it is freed once every thread that could
// still be reading it has left its read section. A read section (EpochGuard) costs one
// exchange and one store on the reading thread's own cache line.
//
// Retired objects wait in the retiring thread's bag until two epochs have passed; each
// retirement frees one of them (two while more than 64 wait) and, every 16, tries to move the
// epoch on. So a writer's bag holds a few dozen objects, given back as it writes more (a
// thread that ends gives its bag to the others). Memory a writer releases is thus returned
// late by that much.
#pragma once

#include <atomic>
#include <cstdint>

namespace dogpile::memory::epoch {

struct alignas(64) Record {
  std::atomic<std::uint64_t> pinned{0};  // the epoch this thread reads in; 0: not reading
  std::atomic<bool> owned{false};
  unsigned depth = 0;                 // nested guards; the owner's only
  unsigned index = 0;                 // the record's number, a thread's stripe in the read buffers
  std::uint32_t random = 0x9E3779B9;  // the owner's random state (xorshift32), never 0
  Record* next = nullptr;
};

extern std::atomic<std::uint64_t> global_epoch;
// Initial-exec: read at a fixed offset from the thread pointer, without __tls_get_addr; the
// plugin's 8 bytes come from the static TLS that glibc reserves for dlopen()ed libraries.
extern constinit thread_local Record* this_thread __attribute__((tls_model("initial-exec")));
Record* register_thread();

class EpochGuard {
 public:
  EpochGuard() : record_(this_thread != nullptr ? this_thread : register_thread()) {
    if (record_->depth++ == 0) {
      record_->pinned.exchange(global_epoch.load(std::memory_order_relaxed),
                               std::memory_order_seq_cst);
    }
  }
  ~EpochGuard() {
    if (--record_->depth == 0) record_->pinned.store(0, std::memory_order_release);
  }
  EpochGuard(const EpochGuard&) = delete;
  EpochGuard& operator=(const EpochGuard&) = delete;

  unsigned thread_index() const noexcept { return record_->index; }
  std::uint32_t& thread_random() const noexcept { return record_->random; }

 private:
  Record* record_;
};

// Frees `object` with `deleter` once no read section that began before this call is open.
// REQUIRES: the caller unlinked `object` and retires it inside the same EpochGuard (as
// crossbeam's defer): while it is pinned the epoch cannot pass the one it read, so the tag
// cannot be earlier than the unlink is visible.
void retire(void* object, void (*deleter)(void*));

template <class T>
void retire(T* object) {
  retire(const_cast<void*>(static_cast<const void*>(object)),
         [](void* p) { delete static_cast<T*>(p); });
}

}  // namespace dogpile::memory::epoch
