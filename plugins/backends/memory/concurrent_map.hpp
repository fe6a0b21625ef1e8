// The memory backends' map: shards of open-addressing tables that readers search without a
// lock, optionally bounded by W-TinyLFU.
//
// Reads. A reader pins the epoch (epoch.hpp), loads the shard's table, probes it (each slot
// holds a node pointer tagged with 16 bits of its key's hash, so most mismatches are decided
// without touching the node), and copies the value out of the node. Nodes are immutable once
// published: a new value is a new node in the old one's slot, and the old one is retired; a
// table that grows is rebuilt beside the old one, which readers may finish probing. Nothing a
// reader writes is shared with another thread, except in bounded mode: there, one hit in four
// records its key's hash in a lossy ring buffer of the reader's stripe (Caffeine's read
// buffer); a reader that finds its buffer full drains every buffer into the policy if the
// policy lock is free, and else drops the record.
//
// Writes take their shard's mutex. In bounded mode they then take the policy lock (never
// while holding a shard's), which evicts; the victims leave their shards afterwards. Readers
// never wait for either.
//
// Node states (bounded mode; read under a shard mutex, written under the policy lock):
// pending (in the table, not yet in the policy), live, evicted (out of the policy, leaving the
// table), dead (removed from the table before the policy saw it). Whoever unlinks a node from
// the table retires it.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "epoch.hpp"
#include "tinylfu.hpp"

namespace dogpile::memory {

// The policy's lock: held for a few hundred nanoseconds at most, so a waiter spins (yielding
// after a while) instead of sleeping in the kernel, which costs more than the wait.
class SpinLock {
 public:
  void lock() noexcept {
    for (unsigned spins = 0; locked_.exchange(true, std::memory_order_acquire); ++spins) {
      while (locked_.load(std::memory_order_relaxed)) {
        if (spins++ < 64) {
#if defined(__x86_64__) || defined(__i386__)
          __builtin_ia32_pause();
#elif defined(__aarch64__)
          asm volatile("yield");
#endif
        } else {
          std::this_thread::yield();
        }
      }
    }
  }
  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

template <class Value>
class ConcurrentMap {
 public:
  // `weigh` gives a value's payload bytes; called only when `limit.bytes` is bounded.
  using Weigher = std::uint64_t (*)(const Value&);

  // `shards`: a power of two.
  ConcurrentMap(std::size_t shards, Cost limit, Weigher weigh)
      : shards_(shards),
        shard_mask_(shards - 1),
        bounded_(limit.entries != kUnlimited || limit.bytes != kUnlimited),
        weigh_bytes_(limit.bytes != kUnlimited),
        weigh_(weigh),
        policy_(limit) {
    for (auto& shard : shards_) shard.table.store(Table::make(8), std::memory_order_relaxed);
  }

  ~ConcurrentMap() {
    for (auto& shard : shards_) {
      Table* table = shard.table.load(std::memory_order_relaxed);
      for (std::size_t i = 0; i <= table->mask; ++i) {
        const std::uintptr_t slot = table->slots()[i].load(std::memory_order_relaxed);
        if (is_node(slot)) destroy(node_of(slot));
      }
      Table::destroy(table);
    }
  }

  ConcurrentMap(const ConcurrentMap&) = delete;
  ConcurrentMap& operator=(const ConcurrentMap&) = delete;

  // Calls `read(const Value&)` with the value stored under `key`, in place; false when there
  // is none.
  template <class Read>
  bool visit(std::string_view key, Read&& read) {
    const std::uint64_t hash = hash_of(key);
    epoch::EpochGuard guard;
    Node* node = lookup(shard_of(hash).table.load(std::memory_order_acquire), key, hash);
    if (node == nullptr) return false;
    if (bounded_) record_read(hash, guard);
    read(node->value);
    return true;
  }

  // Copies the value stored under `key` into `out`; false when there is none.
  bool find(std::string_view key, Value& out) {
    return visit(key, [&](const Value& value) { out = value; });
  }

  void insert_or_assign(const std::string& key, Value value) {
    const std::uint64_t hash = hash_of(key);
    const std::uint64_t bytes = weigh_bytes_ ? weigh_(value) : 0;
    Node* fresh = make_node(key, hash, std::move(value), bytes);
    epoch::EpochGuard guard;  // keeps `fresh` and `old` readable until the policy is done
    Node* old = nullptr;
    Table* old_table = nullptr;
    Shard& shard = shard_of(hash);
    try {
      std::lock_guard lock(shard.mutex);
      Table* table = shard.table.load(std::memory_order_relaxed);
      auto [slot, found] = probe(table, key, hash);
      if (found == nullptr) {
        // At most half full: linear probing's paths stay short (a key added last to a
        // crowded table, such as a hot key, otherwise probes several slots on every read).
        if ((shard.used + 1) * 2 > table->mask + 1) {
          old_table = table;
          table = rebuild(shard, table);
          slot = probe(table, key, hash).first;
        }
        if (slot->load(std::memory_order_relaxed) == 0) ++shard.used;
        ++shard.live;
      }
      slot->store(tagged(fresh), std::memory_order_release);
      old = found;
    } catch (...) {  // no memory for a bigger table: nothing was changed
      destroy(fresh);
      throw;
    }
    // Retired outside the lock: freeing runs the destructors of values.
    if (old_table != nullptr) epoch::retire(old_table, &Table::destroy_erased);
    if (bounded_) to_policy(fresh, old);
    if (old != nullptr) retire(old);
  }

  void erase(std::string_view key) {
    const std::uint64_t hash = hash_of(key);
    epoch::EpochGuard guard;
    Node* node = nullptr;
    Shard& shard = shard_of(hash);
    {
      std::lock_guard lock(shard.mutex);
      auto [slot, found] = probe(shard.table.load(std::memory_order_relaxed), key, hash);
      if (found == nullptr) return;
      slot->store(kTombstone, std::memory_order_release);
      --shard.live;
      node = found;
    }
    if (bounded_) {
      std::lock_guard lock(policy_mutex_);
      leave_policy(*node);
    }
    retire(node);
  }

  // Entries the bound made the map drop.
  std::uint64_t evictions() const noexcept { return evictions_.load(std::memory_order_relaxed); }

  std::size_t size() const {
    std::size_t total = 0;
    for (auto& shard : shards_) {
      std::lock_guard lock(shard.mutex);
      total += shard.live;
    }
    return total;
  }

  // What the policy holds, in entries and bytes (bounded mode).
  Cost policy_size() {
    std::lock_guard lock(policy_mutex_);
    return policy_.size();
  }

 private:
  enum State : std::uint8_t { pending, live, evicted, dead };

  // A key and its value, immutable once published: a new value is a new node. The key's
  // bytes follow the node in the same allocation; in bounded mode the node's PolicyEntry
  // follows them on a cache line of its own, so that the policy's writes to it (moving it in
  // its queue) do not take the node from its readers' caches.
  struct Node;
  struct BoundedEntry : PolicyEntry {
    Node* node;
  };
  struct Node {
    std::uint64_t hash;
    Value value;
    std::uint64_t bytes;
    std::uint32_t key_size;
    std::atomic<std::uint8_t> state{State::pending};

    std::string_view key() const { return {reinterpret_cast<const char*>(this + 1), key_size}; }
    // Bounded mode only.
    PolicyEntry& entry() {
      const auto end = reinterpret_cast<std::uintptr_t>(this + 1) + key_size;
      return *reinterpret_cast<BoundedEntry*>((end + 63) & ~std::uintptr_t{63});
    }
    static Node& of(PolicyEntry& entry) { return *static_cast<BoundedEntry&>(entry).node; }
  };

  Node* make_node(std::string_view key, std::uint64_t hash, Value value, std::uint64_t bytes) {
    const std::size_t size = sizeof(Node) + key.size() + (bounded_ ? 63 + sizeof(BoundedEntry) : 0);
    void* memory = ::operator new(size);
    if ((reinterpret_cast<std::uintptr_t>(memory) >> 47) != 0) {
      ::operator delete(memory);
      throw std::bad_alloc();  // an address the 16-bit tags cannot share a word with
    }
    Node* node =
        new (memory) Node{hash, std::move(value), bytes, static_cast<std::uint32_t>(key.size())};
    std::memcpy(reinterpret_cast<char*>(node + 1), key.data(), key.size());
    if (bounded_) new (&node->entry()) BoundedEntry{{.hash = hash, .cost = {1, bytes}}, node};
    return node;
  }
  static void destroy(void* erased) {
    auto* node = static_cast<Node*>(erased);
    node->~Node();
    ::operator delete(node);
  }
  void retire(Node* node) { epoch::retire(node, &destroy); }

  // Slots: 0 empty, kTombstone a removed entry, otherwise tag << 48 | node.
  static constexpr std::uintptr_t kTombstone = 1;
  static bool is_node(std::uintptr_t slot) { return slot > kTombstone; }
  static Node* node_of(std::uintptr_t slot) {
    return reinterpret_cast<Node*>(slot & ((std::uintptr_t{1} << 48) - 1));
  }
  static std::uintptr_t tag_of(std::uint64_t hash) { return hash >> 48; }
  static std::uintptr_t tagged(Node* node) {
    return tag_of(node->hash) << 48 | reinterpret_cast<std::uintptr_t>(node);
  }

  struct Table {
    std::size_t mask;
    std::atomic<std::uintptr_t>* slots() {
      return reinterpret_cast<std::atomic<std::uintptr_t>*>(this + 1);
    }
    static Table* make(std::size_t capacity) {
      void* memory = ::operator new(sizeof(Table) + capacity * sizeof(std::atomic<std::uintptr_t>));
      auto* table = new (memory) Table{capacity - 1};
      for (std::size_t i = 0; i < capacity; ++i)
        new (&table->slots()[i]) std::atomic<std::uintptr_t>(0);
      return table;
    }
    static void destroy(Table* table) { ::operator delete(table); }
    static void destroy_erased(void* table) { destroy(static_cast<Table*>(table)); }
  };

  struct alignas(64) Shard {
    mutable std::mutex mutex;
    std::atomic<Table*> table{nullptr};
    std::size_t live = 0;  // entries
    std::size_t used = 0;  // slots not empty (entries and tombstones)
  };

  // A lossy ring of recent hits' hashes (Caffeine's BoundedBuffer).
  struct alignas(64) Stripe {
    static constexpr std::uint32_t kSize = 16;
    std::atomic<std::uint32_t> written{0};
    std::atomic<std::uint32_t> read{0};
    std::atomic<std::uint64_t> hashes[kSize]{};

    // False when full: the caller drains.
    bool offer(std::uint64_t hash) {
      const std::uint32_t head = read.load(std::memory_order_acquire);
      std::uint32_t tail = written.load(std::memory_order_relaxed);
      if (tail - head >= kSize) return false;
      if (written.compare_exchange_strong(tail, tail + 1, std::memory_order_relaxed)) {
        hashes[tail % kSize].store(hash, std::memory_order_release);
      }
      return true;  // or lost to another reader: a dropped record
    }
    template <class Consume>
    void drain(Consume&& consume) {
      std::uint32_t head = read.load(std::memory_order_relaxed);
      const std::uint32_t tail = written.load(std::memory_order_acquire);
      for (; head != tail; ++head) {
        const std::uint64_t hash = hashes[head % kSize].exchange(0, std::memory_order_acquire);
        if (hash == 0) break;  // claimed, not yet written
        consume(hash);
      }
      read.store(head, std::memory_order_release);
    }
  };
  static constexpr std::size_t kStripes = 16;

  // Key equality with keys of up to 16 bytes (most) compared inline, in two overlapping
  // loads from each end, instead of a call to memcmp.
  static bool same_key(std::string_view a, std::string_view b) {
    const std::size_t n = a.size();
    if (n != b.size()) return false;
    if (n > 16) return std::memcmp(a.data(), b.data(), n) == 0;
    auto word = [](const char* p, std::size_t size) {
      std::uint64_t w = 0;
      std::memcpy(&w, p, size);
      return w;
    };
    if (n >= 8) {
      return word(a.data(), 8) == word(b.data(), 8) &&
             word(a.data() + n - 8, 8) == word(b.data() + n - 8, 8);
    }
    if (n >= 4) {
      return word(a.data(), 4) == word(b.data(), 4) &&
             word(a.data() + n - 4, 4) == word(b.data() + n - 4, 4);
    }
    for (std::size_t i = 0; i < n; ++i) {
      if (a[i] != b[i]) return false;
    }
    return true;
  }

  static std::uint64_t hash_of(std::string_view key) {
    const std::uint64_t h = std::hash<std::string_view>{}(key);
    return h == 0 ? 1 : h;  // 0 marks an empty read-buffer slot
  }
  Shard& shard_of(std::uint64_t hash) { return shards_[hash & shard_mask_]; }
  static std::size_t start_of(std::uint64_t hash, const Table* table) {
    return (hash >> 16) & table->mask;
  }

  // The slot on `hash`'s probe path in `table` whose node `match(Node*)` accepts, and the
  // node; nulls when an empty slot comes first. Readers may call it: slots are loaded once.
  template <class Match>
  static std::pair<std::atomic<std::uintptr_t>*, Node*> find(Table* table, std::uint64_t hash,
                                                             Match&& match) {
    const std::uintptr_t tag = tag_of(hash);
    for (std::size_t i = start_of(hash, table);; i = (i + 1) & table->mask) {
      auto* slot = &table->slots()[i];
      const std::uintptr_t value = slot->load(std::memory_order_acquire);
      if (value == 0) return {nullptr, nullptr};
      if (is_node(value) && (value >> 48) == tag && match(node_of(value))) {
        return {slot, node_of(value)};
      }
    }
  }

  // Readers: the node for `key` in `table`.
  static Node* lookup(Table* table, std::string_view key, std::uint64_t hash) {
    return find(table, hash, [&](Node* node) { return same_key(node->key(), key); }).second;
  }

  // Writers, under the shard mutex: the slot holding `key`'s node and the node, or the slot
  // a new node would take (the first tombstone on the way, else the empty slot) and null.
  static std::pair<std::atomic<std::uintptr_t>*, Node*> probe(Table* table, std::string_view key,
                                                              std::uint64_t hash) {
    std::atomic<std::uintptr_t>* free = nullptr;
    const std::uintptr_t tag = tag_of(hash);
    for (std::size_t i = start_of(hash, table);; i = (i + 1) & table->mask) {
      auto* slot = &table->slots()[i];
      const std::uintptr_t value = slot->load(std::memory_order_relaxed);
      if (value == 0) return {free != nullptr ? free : slot, nullptr};
      if (value == kTombstone) {
        if (free == nullptr) free = slot;
      } else if ((value >> 48) == tag && same_key(node_of(value)->key(), key)) {
        return {slot, node_of(value)};
      }
    }
  }

  // A new table for the shard's entries, at most a quarter full, published for readers; the
  // caller retires the old one.
  Table* rebuild(Shard& shard, Table* old) {
    std::size_t capacity = 8;
    while (capacity < (shard.live + 1) * 4) capacity <<= 1;
    Table* table = Table::make(capacity);
    for (std::size_t i = 0; i <= old->mask; ++i) {
      const std::uintptr_t slot = old->slots()[i].load(std::memory_order_relaxed);
      if (!is_node(slot)) continue;
      std::size_t j = start_of(node_of(slot)->hash, table);
      while (table->slots()[j].load(std::memory_order_relaxed) != 0) j = (j + 1) & table->mask;
      table->slots()[j].store(slot, std::memory_order_relaxed);
    }
    shard.used = shard.live;
    shard.table.store(table, std::memory_order_release);
    return table;
  }

  // Pinned: a node whose key has `hash` (the first, if keys collide).
  Node* lookup_hash(std::uint64_t hash) {
    Table* table = shard_of(hash).table.load(std::memory_order_acquire);
    return find(table, hash, [&](Node* node) { return node->hash == hash; }).second;
  }

  // A hit, sampled (kHitSampling), buffered for the policy.
  void record_read(std::uint64_t hash, const epoch::EpochGuard& guard) {
    if (!sample_hit(guard.thread_random())) return;
    if (stripes_[guard.thread_index() % kStripes].offer(hash)) return;
    std::unique_lock lock(policy_mutex_, std::try_to_lock);
    if (lock) drain_reads();
  }

  // Under the policy mutex, pinned: the buffered hits reach the policy.
  void drain_reads() {
    for (auto& stripe : stripes_) {
      stripe.drain([&](std::uint64_t hash) {
        Node* node = lookup_hash(hash);
        if (node != nullptr && node->state.load(std::memory_order_relaxed) == State::live) {
          policy_.record_access(node->entry());
        }
      });
    }
  }

  // Pinned: `fresh` is in the table (or was, and a remover marked it dead), in place of
  // `old` (when not null), which its caller retires.
  void to_policy(Node* fresh, Node* old) {
    // Victims are chained through their entries' `next`, which the policy no longer uses:
    // nothing here can fail half-way.
    PolicyEntry* victims = nullptr;
    auto evicted = [&](PolicyEntry& entry) {
      Node::of(entry).state.store(State::evicted, std::memory_order_relaxed);
      entry.next = victims;
      victims = &entry;
      evictions_.fetch_add(1, std::memory_order_relaxed);
    };
    {
      std::lock_guard lock(policy_mutex_);
      const bool old_live =
          old != nullptr && old->state.load(std::memory_order_relaxed) == State::live;
      if (fresh->state.load(std::memory_order_relaxed) == State::dead) {
        if (old != nullptr) leave_policy(*old);
      } else if (old_live) {
        fresh->state.store(State::live, std::memory_order_relaxed);
        old->state.store(State::dead, std::memory_order_relaxed);
        policy_.replace(old->entry(), fresh->entry(), evicted);
      } else {
        if (old != nullptr) leave_policy(*old);
        fresh->state.store(State::live, std::memory_order_relaxed);
        policy_.add(fresh->entry(), evicted);
      }
    }
    unlink_victims(victims);
  }

  // Under the policy mutex: `node`, out of the table, leaves the policy; a node not yet added
  // never will be.
  void leave_policy(Node& node) {
    if (node.state.load(std::memory_order_relaxed) == State::live) policy_.remove(node.entry());
    node.state.store(State::dead, std::memory_order_relaxed);
  }

  // Takes evicted nodes out of their tables, unless a writer did first.
  void unlink_victims(PolicyEntry* victims) {
    while (victims != nullptr) {
      Node* node = &Node::of(*victims);
      victims = std::exchange(victims->next, nullptr);
      Shard& shard = shard_of(node->hash);
      bool unlinked = false;
      {
        std::lock_guard lock(shard.mutex);
        Table* table = shard.table.load(std::memory_order_relaxed);
        if (auto* slot = find(table, node->hash, [&](Node* n) { return n == node; }).first) {
          slot->store(kTombstone, std::memory_order_release);
          --shard.live;
          unlinked = true;
        }
      }
      if (unlinked) retire(node);
    }
  }

  std::vector<Shard> shards_;
  const std::size_t shard_mask_;
  const bool bounded_;
  const bool weigh_bytes_;
  const Weigher weigh_;
  SpinLock policy_mutex_;
  WTinyLfu policy_;
  Stripe stripes_[kStripes];
  std::atomic<std::uint64_t> evictions_{0};
};

}  // namespace dogpile::memory
