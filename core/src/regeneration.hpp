// The miss path: what get_or_create and get_or_create_multi do for a key whose value is
// missing, expired, invalidated or due for an eager refresh, under the region's resilience
// options. A Regeneration is one key's steps, which the dogpile lock (lock.hpp) drives:
//   read     the backend's value now, as the lock sees it; the newest one read is what
//            fail-safe and soft_timeout may give;
//   mutex    the key's dogpile mutex; wait: take it, until the call's hard_timeout at most;
//   create   make and store the value in a Creation: in the caller's thread, or on the
//            region's creator pool while the caller waits at most soft_timeout / hard_timeout;
//   create in the background: hand the mutex and a Creation to the async creation runner;
//   fall back: the stale value, under fail-safe, when making the value fails or takes too long.
// get_or_create_multi runs the lock per key and its create step enlists the key in one
// Creation, so the creator is called once for every key that needs a value, and every option
// applies to it as to get_or_create.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "reading.hpp"

namespace dogpile::detail {

// One key in a Creation.
struct CreationKey {
  std::string key{};      // as the caller gave it
  std::string mangled{};  // as the backend sees it
  // The newest value read that is not fresh (null: none): served at a soft timeout, and the
  // result when the creator returns no value for the key.
  CachedValuePtr stale{};
  // What fail-safe gives instead of an error (null: nothing), and the expiration (jittered)
  // it lives by once kept.
  CachedValuePtr fallback{};
  double fallback_expiration = 0;
  // The key's dogpile mutex, when the creation releases it.
  std::shared_ptr<CacheMutex> held{};
};

class Regeneration {
 public:
  using Value = CachedValuePtr;

  // The key's miss path under `st`: `key` as the caller gave it, `mangled` as the backend
  // sees it, `deadline` the call's hard_timeout (max: none). With `batch`, create() enlists
  // the key there instead of making its value (get_or_create_multi).
  Regeneration(CacheRegion& region, const RegionState& st, std::string_view key,
               std::string mangled, std::optional<double> expiration, Decoder decode,
               CacheMutex::Deadline deadline, std::vector<CreationKey>* batch = nullptr);

  // get_or_create's value after a lookup found `current` not fresh, or (`refresh`) fresh but
  // due for an eager refresh, which starts in the background while `current` is returned.
  CachedValuePtr run(Current current, bool refresh, ValueMaker make);

  // The steps of DogpileLock.
  bool fresh(const Current& value) const {
    return value && !dogpile_expired(value->created, expiration_, *st_.clock);
  }
  bool serve_stale() const { return st_.resilience.serve_stale; }
  std::shared_ptr<CacheMutex> mutex() const;
  bool wait(CacheMutex& mutex, const std::function<bool()>& arrived) const;
  Current read() { return classify(st_.calls->get(mangled_)); }
  CachedValuePtr create(std::shared_ptr<CacheMutex>& held);
  bool create_in_background(std::shared_ptr<CacheMutex>& held);

  // `value` as read from the backend for this key, as the lock sees it; remembered.
  Current classify(CachedValuePtr value);
  // What fail-safe may give instead of an error: the newest value read, if made less than
  // fail_safe_max_age ago; else null.
  CachedValuePtr fallback() const;

 private:
  // This key in a Creation, its mutex `held` (null: the creation releases none).
  CreationKey creation_key(std::shared_ptr<CacheMutex> held) const;

  CacheRegion& region_;
  const RegionState& st_;
  const std::string_view key_;
  const std::string mangled_;
  const std::optional<double> expiration_;
  const Decoder decode_;
  const CacheMutex::Deadline deadline_;
  std::vector<CreationKey>* const batch_;
  ValueMaker make_;
  Current last_;  // the newest value read
};

// When a call that starts now stops waiting: its hard_timeout from now (max: none).
CacheMutex::Deadline call_deadline(const RegionState& st);

// get_or_create_multi for `keys` (sorted, unique; `mangled` aligned with them): a value for
// each (null: none), the lock taken per key in order and the keys that need a value made by
// one call of `make`.
std::vector<CachedValuePtr> regenerate_multi(CacheRegion& region, const RegionState& st,
                                             const Keys& keys, const Keys& mangled,
                                             std::optional<double> expiration, Decoder decode,
                                             const MultiValueMaker& make);

}  // namespace dogpile::detail
