// W-TinyLFU, the eviction policy of Caffeine (Einziger, Friedman and Manes, "TinyLFU: A Highly
// Efficient Cache Admission Policy"): new entries enter a small LRU window (1% of the bound);
// the window's overflow competes for a place in the main region, a segmented LRU (probation
// 20%, protected 80%), against the main region's LRU victim, and the one a count-min sketch of
// 4-bit counters has seen more often stays. The sketch halves its counters every 10 x capacity
// increments, so old popularity fades. Scans and one-hit wonders pass through the window
// without pushing out what is used often.
//
// The policy is single-threaded: the memory backend calls it under its policy mutex, the
// simulator (tools/simulate.cpp) directly. Entries are intrusive (PolicyEntry), owned by the
// caller; the policy links, counts and chooses victims, and hands each victim to a callback.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

namespace dogpile::memory {

// What an entry costs against the bounds: one entry, and its payload's bytes.
struct Cost {
  std::uint64_t entries = 0;
  std::uint64_t bytes = 0;
  Cost& operator+=(const Cost& o) {
    entries += o.entries;
    bytes += o.bytes;
    return *this;
  }
  Cost& operator-=(const Cost& o) {
    entries -= o.entries;
    bytes -= o.bytes;
    return *this;
  }
  friend Cost operator+(Cost a, const Cost& b) { return a += b; }
  // Whether this cost is over `limit` in either dimension.
  bool exceeds(const Cost& limit) const { return entries > limit.entries || bytes > limit.bytes; }
};
inline constexpr std::uint64_t kUnlimited = std::numeric_limits<std::uint64_t>::max();

// The memory backend gives the policy one hit in kHitSampling, chosen at random per thread:
// recording costs readers a quarter as much, for a hit ratio within about half a point of
// recording every hit (dogpile-sim compares them).
inline constexpr unsigned kHitSampling = 4;
// Whether to record this hit; `state` (never 0) is the thread's xorshift32.
inline bool sample_hit(std::uint32_t& state) {
  state ^= state << 13;
  state ^= state >> 17;
  state ^= state << 5;
  return (state & (kHitSampling - 1)) == 0;
}

enum class Queue : std::uint8_t { none, window, probation, protect };

struct PolicyEntry {
  PolicyEntry* prev = nullptr;
  PolicyEntry* next = nullptr;
  std::uint64_t hash = 0;
  Cost cost;
  Queue queue = Queue::none;
};

// A count-min sketch of 4-bit counters, 4 rows. As in Caffeine 3, a key's 4 counters lie in
// one 64-byte block (8 words, two per row), so that counting a key touches one cache line.
class FrequencySketch {
 public:
  // Sizes the sketch for `entries` distinct keys; a larger size than before resets it.
  void ensure_capacity(std::uint64_t entries) {
    entries = std::clamp<std::uint64_t>(entries, 16, std::uint64_t{1} << 30);
    if (!table_.empty() && entries <= table_.size() * 8) return;
    std::uint64_t words = 16;  // a word per key (16 counters for 4 rows of 4 keys)
    while (words < entries) words <<= 1;
    table_.assign(words / 8, Block{});
    sample_size_ = 10 * words;
    additions_ = 0;
  }

  unsigned frequency(std::uint64_t hash) const {
    const std::uint64_t h = spread(hash);
    const std::uint64_t* block = table_[h & (table_.size() - 1)].words;
    unsigned least = 15;
    for (unsigned row = 0; row < 4; ++row) {
      least = std::min(least, static_cast<unsigned>((block[word(h, row)] >> shift(h, row)) & 0xF));
    }
    return least;
  }

  void increment(std::uint64_t hash) {
    const std::uint64_t h = spread(hash);
    std::uint64_t* block = table_[h & (table_.size() - 1)].words;
    bool added = false;
    for (unsigned row = 0; row < 4; ++row) {
      std::uint64_t& w = block[word(h, row)];
      const unsigned at = shift(h, row);
      if (((w >> at) & 0xF) != 0xF) {
        w += std::uint64_t{1} << at;
        added = true;
      }
    }
    if (added && ++additions_ >= sample_size_) age();
  }

 private:
  // splitmix64's finalizer: the key's hash, spread over every bit.
  static std::uint64_t spread(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // The low bits of the hash choose the block. Row `row` uses words 2*row and 2*row+1 of it,
  // one of them by a bit of the hash, and one of its 16 counters by 4 more: bits the block
  // choice does not use.
  static unsigned word(std::uint64_t h, unsigned row) {
    return row * 2 + static_cast<unsigned>((h >> (32 + row)) & 1);
  }
  static unsigned shift(std::uint64_t h, unsigned row) {
    return static_cast<unsigned>((h >> (40 + 4 * row)) & 0xF) * 4;
  }
  // Halves every counter, so that popularity fades.
  void age() {
    for (auto& block : table_) {
      for (auto& w : block.words) w = (w >> 1) & 0x7777777777777777ULL;
    }
    additions_ /= 2;
  }

  struct alignas(64) Block {
    std::uint64_t words[8] = {};
  };
  std::vector<Block> table_;
  std::uint64_t sample_size_ = 0;
  std::uint64_t additions_ = 0;
};

class WTinyLfu {
 public:
  // `limit`: the bound in entries and in bytes (kUnlimited for none).
  explicit WTinyLfu(Cost limit) : limit_(limit) {
    // The window 1% (at least one unit), the main region the rest, 80% of it protected.
    const Cost main = {share(limit.entries, 99), share(limit.bytes, 99)};
    window_limit_ = {rest(limit.entries, main.entries), rest(limit.bytes, main.bytes)};
    protected_limit_ = {share(main.entries, 80), share(main.bytes, 80)};
    sketch_.ensure_capacity(1024);
  }

  Cost size() const { return window_.cost + probation_.cost + protected_.cost; }
  const Cost& limit() const { return limit_; }

  // A hit on `entry`, which the policy holds.
  void record_access(PolicyEntry& entry) {
    sketch_.increment(entry.hash);
    switch (entry.queue) {
      case Queue::window:
        window_.move_to_back(entry);
        break;
      case Queue::probation:
        probation_.unlink(entry);
        protected_.push_back(entry, Queue::protect);
        demote_protected();
        break;
      case Queue::protect:
        protected_.move_to_back(entry);
        break;
      case Queue::none:
        break;
    }
  }

  // A new entry (its cost set); evicts what no longer fits, through `evicted(PolicyEntry&)`.
  template <class Evicted>
  void add(PolicyEntry& entry, Evicted&& evicted) {
    // The sketch grows with the entries held (a large max_size costs nothing up front).
    sketch_.ensure_capacity(size().entries + 1);
    sketch_.increment(entry.hash);
    window_.push_back(entry, Queue::window);
    evict(evicted);
  }

  // `replacement` (its cost set) takes the place of `entry`, which the policy then no longer
  // holds: a new value for the same key. Counts as an access.
  template <class Evicted>
  void replace(PolicyEntry& entry, PolicyEntry& replacement, Evicted&& evicted) {
    List& list = queue_of(entry);
    replacement.queue = entry.queue;
    replacement.prev = entry.prev;
    replacement.next = entry.next;
    (entry.prev ? entry.prev->next : list.head) = &replacement;
    (entry.next ? entry.next->prev : list.tail) = &replacement;
    list.cost -= entry.cost;
    list.cost += replacement.cost;
    entry.prev = entry.next = nullptr;
    entry.queue = Queue::none;
    record_access(replacement);
    evict(evicted);
  }

  void remove(PolicyEntry& entry) {
    if (entry.queue != Queue::none) queue_of(entry).unlink(entry);
  }

  unsigned frequency(std::uint64_t hash) const { return sketch_.frequency(hash); }

 private:
  struct List {
    PolicyEntry* head = nullptr;  // least recently used
    PolicyEntry* tail = nullptr;
    Cost cost;
    void push_back(PolicyEntry& e, Queue q) {
      e.queue = q;
      e.prev = tail;
      e.next = nullptr;
      (tail ? tail->next : head) = &e;
      tail = &e;
      cost += e.cost;
    }
    void unlink(PolicyEntry& e) {
      (e.prev ? e.prev->next : head) = e.next;
      (e.next ? e.next->prev : tail) = e.prev;
      e.prev = e.next = nullptr;
      e.queue = Queue::none;
      cost -= e.cost;
    }
    void move_to_back(PolicyEntry& e) {
      if (tail == &e) return;
      const Queue q = e.queue;
      unlink(e);
      push_back(e, q);
    }
  };

  // `percent` of `limit`, rounded down; an unlimited bound stays unlimited.
  static std::uint64_t share(std::uint64_t limit, std::uint64_t percent) {
    if (limit == kUnlimited) return kUnlimited;
    return limit / 100 * percent + limit % 100 * percent / 100;
  }
  static std::uint64_t rest(std::uint64_t limit, std::uint64_t part) {
    return limit == kUnlimited ? kUnlimited : limit - part;
  }

  List& queue_of(PolicyEntry& e) {
    return e.queue == Queue::window      ? window_
           : e.queue == Queue::probation ? probation_
                                         : protected_;
  }

  void demote_protected() {
    while (protected_.cost.exceeds(protected_limit_) && protected_.head != nullptr) {
      PolicyEntry& oldest = *protected_.head;
      protected_.unlink(oldest);
      probation_.push_back(oldest, Queue::probation);
    }
  }

  // Whether `candidate` from the window should replace `victim` of the main region: the one
  // seen more often wins; ties go to the victim. A candidate that is often seen but loses is
  // still let in now and then (1 in 128), so that an attacker who raises a victim's counters
  // with colliding keys cannot pin it (Caffeine's defence against hash flooding).
  bool admit(const PolicyEntry& candidate, const PolicyEntry& victim) {
    const unsigned candidate_frequency = sketch_.frequency(candidate.hash);
    const unsigned victim_frequency = sketch_.frequency(victim.hash);
    if (candidate_frequency > victim_frequency) return true;
    if (candidate_frequency <= 5) return false;
    random_ = random_ * 6364136223846793005ULL + 1442695040888963407ULL;
    return (random_ >> 57) == 0;
  }

  PolicyEntry* main_victim() {
    if (probation_.head) return probation_.head;
    return protected_.head;
  }

  template <class Evicted>
  void evict(Evicted& evicted) {
    // The window's overflow, oldest first, competes for a place in the main region, when the
    // cache is full, with the main region's victims.
    while (window_.cost.exceeds(window_limit_) && window_.head != nullptr) {
      PolicyEntry& candidate = *window_.head;
      window_.unlink(candidate);
      bool admitted = !candidate.cost.exceeds(limit_);
      while (admitted && (size() + candidate.cost).exceeds(limit_)) {
        PolicyEntry* victim = main_victim();
        if (victim == nullptr || !admit(candidate, *victim)) {
          admitted = false;
        } else {
          queue_of(*victim).unlink(*victim);
          evicted(*victim);
        }
      }
      if (admitted) {
        probation_.push_back(candidate, Queue::probation);
      } else {
        evicted(candidate);
      }
    }
    // A grown entry may leave the cache over its bound: the oldest go.
    while (size().exceeds(limit_)) {
      PolicyEntry* victim = main_victim();
      if (victim == nullptr) victim = window_.head;
      queue_of(*victim).unlink(*victim);
      evicted(*victim);
    }
  }

  Cost limit_;
  Cost window_limit_;
  Cost protected_limit_;
  List window_;
  List probation_;
  List protected_;
  FrequencySketch sketch_;
  std::uint64_t random_ = 0x853C49E6748FEA9BULL;
};

}  // namespace dogpile::memory
