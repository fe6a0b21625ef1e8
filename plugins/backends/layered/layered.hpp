// dogpile.cache.layered: a memory backend in each process (L1) in front of a shared backend
// (L2), kept coherent through the L2's broadcast (Redis pub/sub).
//
// Reads try L1, then L2, filling L1; writes go to L2, then L1, then are published, and every
// other process drops the keys from its L1. An L1 entry is also served only for
// l1_expiration_time after it was filled, a bound on staleness should a message be lost.
// While the subscription is down, L1 is bypassed, and once it is back every entry filled
// before is dropped (entries carry the generation they were filled in), so a process never
// serves an L1 value older than its reconnection.
//
// A fill races with writes: a reader that fetched the old value from L2 must not put it in L1
// after a write's message dropped the key. Every write and message bumps `changes_`; a reader
// notes it before reading L2 and, after filling L1, drops its entry again if it moved.
#pragma once

#include <atomic>
#include <cstdint>
#include <dogpile/sdk/sdk.hpp>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dogpile::layered {

// What an L1 entry holds: the value, when it was filled and in which generation.
struct L1Entry {
  CachedValuePtr value;
  double filled = 0;
  std::uint64_t generation = 0;
};

// Messages: "<origin>|k|" then each key as "<length>:<bytes>". A process skips its own.
inline std::string key_message(std::string_view origin, const Keys& keys) {
  std::string message(origin);
  message += "|k|";
  for (const auto& key : keys) {
    message += std::to_string(key.size());
    message += ':';
    message += key;
  }
  return message;
}

// The keys of a key message not sent by `origin`; nullopt for one of ours, or for anything that
// is not a well-formed key message (a foreign or damaged message is ignored, never trusted).
inline std::optional<Keys> parse_key_message(std::string_view message, std::string_view origin) {
  const auto bar = message.find('|');
  if (bar == std::string_view::npos || message.substr(0, bar) == origin) return std::nullopt;
  std::string_view rest = message.substr(bar);
  if (!rest.starts_with("|k|")) return std::nullopt;
  rest.remove_prefix(3);
  Keys keys;
  while (!rest.empty()) {
    std::size_t length = 0;
    std::size_t i = 0;
    while (i < rest.size() && i < 10 && rest[i] >= '0' && rest[i] <= '9') {
      length = length * 10 + static_cast<std::size_t>(rest[i] - '0');
      ++i;
    }
    if (i == 0 || i >= rest.size() || rest[i] != ':' || rest.size() - i - 1 < length) {
      return std::nullopt;
    }
    keys.emplace_back(rest.substr(i + 1, length));
    rest.remove_prefix(i + 1 + length);
  }
  return keys;
}

struct LayeredParts {
  std::shared_ptr<CacheBackend> l1;  // stores objects (dogpile.cache.memory)
  std::shared_ptr<CacheBackend> l2;
  std::shared_ptr<Broadcast> broadcast;  // the L2's, on the region's channel
  double l1_expiration_time = 30;        // seconds
  std::function<double()> now;           // monotonic seconds
};

class LayeredBackend : public ObjectBackend {
 public:
  explicit LayeredBackend(LayeredParts parts)
      : l1_(std::move(parts.l1)),
        l2_(std::move(parts.l2)),
        broadcast_(std::move(parts.broadcast)),
        l1_ttl_(parts.l1_expiration_time),
        now_(std::move(parts.now)),
        origin_(random_hex(16)) {
    subscription_ = broadcast_->subscribe(
        {.on_message = [this](std::string_view message) { on_message(message); },
         .on_state = [this](bool listening) { on_state(listening); }});
  }
  ~LayeredBackend() override { subscription_.reset(); }  // no callback runs after this

  CachedValuePtr get(std::string_view key) override {
    CachedValuePtr value;
    if (l1_visit(key, [&](const CachedValuePtr& found) { value = found; })) return value;
    const std::uint64_t seen = changes_.load();
    value = l2_->get(key);
    if (value) fill(std::string(key), value, seen);
    return value;
  }

  bool visit(std::string_view key, ValueVisitor visitor) override {
    if (l1_visit(key, visitor)) return true;
    const CachedValuePtr value = get(key);
    if (!value) return false;
    visitor(value);
    return true;
  }

  std::vector<CachedValuePtr> get_multi(const Keys& keys) override {
    std::vector<CachedValuePtr> values(keys.size());
    Keys missing;
    std::vector<std::size_t> where;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (!l1_visit(keys[i], [&](const CachedValuePtr& found) { values[i] = found; })) {
        missing.push_back(keys[i]);
        where.push_back(i);
      }
    }
    if (missing.empty()) return values;
    const std::uint64_t seen = changes_.load();
    std::vector<CachedValuePtr> fetched = l2_->get_multi(missing);
    for (std::size_t j = 0; j < missing.size() && j < fetched.size(); ++j) {
      values[where[j]] = fetched[j];
      if (fetched[j]) fill(missing[j], fetched[j], seen);
    }
    return values;
  }

  void set(const std::string& key, CachedValuePtr value) override {
    l2_->set(key, value);
    changes_.fetch_add(1);
    if (broadcast_->listening()) l1_->set(key, wrap(std::move(value)));
    broadcast_->publish(key_message(origin_, {key}));
  }

  void set_multi(const ValueMapping& mapping) override {
    if (mapping.empty()) return;
    l2_->set_multi(mapping);
    changes_.fetch_add(1);
    Keys keys;
    keys.reserve(mapping.size());
    const bool listening = broadcast_->listening();
    for (const auto& [key, value] : mapping) {
      if (listening) l1_->set(key, wrap(value));
      keys.push_back(key);
    }
    broadcast_->publish(key_message(origin_, keys));
  }

  void remove(std::string_view key) override {
    l2_->remove(key);
    changes_.fetch_add(1);
    l1_->remove(key);
    broadcast_->publish(key_message(origin_, {std::string(key)}));
  }

  void remove_multi(const Keys& keys) override {
    if (keys.empty()) return;
    l2_->remove_multi(keys);
    changes_.fetch_add(1);
    l1_->remove_multi(keys);
    broadcast_->publish(key_message(origin_, keys));
  }

  // The lock, its timeout, the key mangler, the limits and the channel are the L2's: the
  // dogpile lock still holds across processes.
  std::unique_ptr<CacheMutex> get_mutex(std::string_view key) override {
    return l2_->get_mutex(key);
  }
  KeyMangler key_mangler() const override { return l2_->key_mangler(); }
  bool has_lock_timeout() const override { return l2_->has_lock_timeout(); }
  BackendCapabilities capabilities() const override { return l2_->capabilities(); }
  std::shared_ptr<Broadcast> broadcast(std::string_view channel) override {
    return l2_->broadcast(channel);
  }

  const std::shared_ptr<CacheBackend>& l1() const noexcept { return l1_; }

 private:
  // Calls `found(value)` with key's L1 value and returns true when L1 may serve it.
  template <class Found>
  bool l1_visit(std::string_view key, Found&& found) {
    if (!broadcast_->listening()) return false;
    const std::uint64_t generation = generation_.load(std::memory_order_acquire);
    bool served = false;
    auto read = [&](const CachedValuePtr& stored) {
      if (!stored->holds_object() || stored->object_type() != typeid(L1Entry)) return;
      const auto& entry = *static_cast<const L1Entry*>(stored->object().get());
      if (entry.generation != generation || now_() - entry.filled > l1_ttl_) return;
      found(entry.value);
      served = true;
    };
    l1_->visit(key, ValueVisitor(read));
    return served;
  }

  // Puts an L2 value in L1, unless a write or message since `seen` may have made it old.
  void fill(const std::string& key, const CachedValuePtr& value, std::uint64_t seen) {
    if (!broadcast_->listening() || changes_.load() != seen) return;
    l1_->set(key, wrap(value));
    if (changes_.load() != seen) l1_->remove(key);
  }

  CachedValuePtr wrap(CachedValuePtr value) const {
    const ValueMetadata metadata = value->metadata();
    auto entry = std::make_shared<const L1Entry>(
        L1Entry{std::move(value), now_(), generation_.load(std::memory_order_acquire)});
    return std::make_shared<const CachedValue>(
        std::move(entry), typeid(L1Entry), nullptr, metadata,
        [](const void* object) {  // an L1 bounded in bytes counts the value's
          return static_cast<const L1Entry*>(object)->value->payload_size();
        });
  }

  void on_message(std::string_view message) {
    auto keys = parse_key_message(message, origin_);
    if (!keys || keys->empty()) return;
    changes_.fetch_add(1);
    l1_->remove_multi(*keys);
  }

  void on_state(bool listening) {
    // Either way, what L1 holds may have missed messages: a new generation drops it.
    changes_.fetch_add(1);
    generation_.fetch_add(1, std::memory_order_acq_rel);
    (void)listening;  // the broadcast's listening() is what reads and writes check
  }

  std::shared_ptr<CacheBackend> l1_;
  std::shared_ptr<CacheBackend> l2_;
  std::shared_ptr<Broadcast> broadcast_;
  const double l1_ttl_;
  std::function<double()> now_;
  const std::string origin_;
  std::atomic<std::uint64_t> changes_{0};
  std::atomic<std::uint64_t> generation_{1};
  std::unique_ptr<Broadcast::Subscription> subscription_;
};

}  // namespace dogpile::layered
