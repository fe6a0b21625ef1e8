#include "regeneration.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>

#include "dogpile/sdk/log.hpp"

namespace dogpile::detail {

namespace {

using Steady = std::chrono::steady_clock;

std::string seconds_text(double seconds) { return python_float_repr(seconds) + " s"; }

Steady::time_point after(Steady::time_point start, double seconds) {
  return start +
         std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(seconds));
}

// The keys one creator call makes, and what it needs to store them and to fall back: shared
// with a pool thread or a background runner when the caller may leave before it ends, so it
// holds nothing of the region's configuration. Releases the mutexes it holds when destroyed.
class Creation {
 public:
  // `multi`: the values are stored with set_multi, as get_or_create_multi stores them.
  Creation(const RegionState& st, std::optional<double> expiration, MultiValueMaker make,
           std::vector<CreationKey> keys, bool multi)
      : keys_(std::move(keys)),
        calls_(st.calls),
        invalidator_(st.invalidator),
        clock_(st.clock),
        region_(st.region_name),
        expiration_(expiration),
        throttle_(*st.resilience.fail_safe_throttle),
        make_(std::move(make)),
        multi_(multi) {}
  ~Creation() { release(); }
  Creation(const Creation&) = delete;
  Creation& operator=(const Creation&) = delete;

  // The values for the caller under `st`'s options, aligned with keys(): made in this thread,
  // or on the creator pool while the caller waits until soft_timeout (then the stale values,
  // when every key has one) or `deadline` (hard_timeout). Where the value cannot be had, the
  // fallbacks if every key has one, else the error (TimeoutError when the time ran out).
  static std::vector<CachedValuePtr> for_caller(std::shared_ptr<Creation> creation,
                                                const RegionState& st,
                                                CacheMutex::Deadline deadline);

  // What a background runner calls: makes the values, stores all but the first key's and
  // releases their mutexes (the runner is given the first key's), and returns the first key's
  // value for the runner to store (null: not to be stored).
  static std::function<CachedValuePtr()> in_background(std::shared_ptr<Creation> creation) {
    return [creation]() -> CachedValuePtr {
      std::vector<Created> made = creation->make_and_store(1);
      creation->release();
      return !made.empty() && made[0].cache ? std::move(made[0].value) : nullptr;
    };
  }

 private:
  // Makes the values and stores those from the `first`-th on that should_cache_fn lets; when
  // making them fails, keeps every key's fallback and rethrows.
  std::vector<Created> make_and_store(std::size_t first = 0);
  // Stores each key's fallback again as fresh for the throttle, keeping when it was made, so
  // the failing creator is tried once per throttle rather than by every caller.
  void keep(const std::string& why) noexcept;
  void release() noexcept {
    for (auto& key : keys_) {
      if (auto mutex = std::exchange(key.held, nullptr)) release_logged(*mutex);
    }
  }
  // Makes the values on a pool thread and tells the waiting caller.
  void run_on_pool();
  // The values of `made`, aligned with keys(): a key without one keeps its stale value.
  std::vector<CachedValuePtr> values(std::vector<Created>& made) const;
  // Each key's fallback, or an empty vector when a key has none.
  std::vector<CachedValuePtr> fallbacks() const;
  std::vector<CachedValuePtr> stale_values() const;
  // "key 'a'" or "keys 'a', 'b'", for messages.
  std::string naming() const;

  std::vector<CreationKey> keys_;
  std::shared_ptr<CacheBackend> calls_;
  std::shared_ptr<RegionInvalidationStrategy> invalidator_;
  std::shared_ptr<const Clock> clock_;
  std::string region_;
  std::optional<double> expiration_;
  double throttle_;
  MultiValueMaker make_;
  bool multi_;

  // A pool thread's outcome.
  std::mutex mutex_;
  std::condition_variable finished_;
  bool done_ = false;
  std::vector<Created> made_;
  std::exception_ptr error_;
};

std::vector<Created> Creation::make_and_store(std::size_t first) {
  Keys names;
  names.reserve(keys_.size());
  for (const auto& key : keys_) names.push_back(key.key);
  std::vector<Created> made;
  try {
    made = make_(names);
  } catch (const std::exception& e) {
    keep(e.what());
    throw;
  } catch (...) {
    keep("an exception that is not a std::exception");
    throw;
  }
  if (!expiration_ && invalidator_->was_soft_invalidated()) {
    throw Error(kSoftInvalidationNeedsExpiration);
  }
  ValueMapping to_store;
  for (std::size_t i = first; i < made.size(); ++i) {
    if (made[i].cache && made[i].value) to_store.emplace_back(keys_[i].mangled, made[i].value);
  }
  if (multi_ && !to_store.empty()) {
    calls_->set_multi(to_store);
  } else if (!to_store.empty()) {
    calls_->set(to_store[0].first, std::move(to_store[0].second));
  }
  return made;
}

void Creation::keep(const std::string& why) noexcept {
  for (const auto& key : keys_) {
    if (!key.fallback) continue;
    try {
      ValueMetadata metadata = key.fallback->metadata();
      const double now = clock_->now();
      const double made_at = metadata.made();
      metadata.origin = made_at;
      metadata.ct = now + throttle_ - key.fallback_expiration;
      log(LogLevel::warning, "region",
          "region '" + region_ + "': the creator of key '" + key.key + "' failed: " + why +
              "; serving the value made " + python_float_repr(now - made_at) +
              " s ago instead (fail_safe) for " + python_float_repr(throttle_) + " s");
      calls_->set(key.mangled, key.fallback->with_metadata(metadata));
    } catch (const std::exception& e) {
      try {
        log(LogLevel::warning, "region",
            "region '" + region_ + "': keeping the stale value of key '" + key.key +
                "' failed: " + e.what());
      } catch (...) {
      }
    }
  }
}

void Creation::run_on_pool() {
  std::vector<Created> made;
  std::exception_ptr error;
  try {
    made = make_and_store();
  } catch (...) {
    error = std::current_exception();
  }
  release();
  std::lock_guard guard(mutex_);
  made_ = std::move(made);
  error_ = error;
  done_ = true;
  finished_.notify_all();
}

std::vector<CachedValuePtr> Creation::values(std::vector<Created>& made) const {
  std::vector<CachedValuePtr> out;
  out.reserve(keys_.size());
  for (std::size_t i = 0; i < keys_.size(); ++i) {
    out.push_back(i < made.size() ? std::move(made[i].value) : keys_[i].stale);
  }
  return out;
}

std::vector<CachedValuePtr> Creation::fallbacks() const {
  std::vector<CachedValuePtr> out;
  for (const auto& key : keys_) {
    if (!key.fallback) return {};
    out.push_back(key.fallback);
  }
  return out;
}

std::vector<CachedValuePtr> Creation::stale_values() const {
  std::vector<CachedValuePtr> out;
  for (const auto& key : keys_) out.push_back(key.stale);
  return out;
}

std::string Creation::naming() const {
  std::string out = keys_.size() == 1 ? "key " : "keys ";
  constexpr std::size_t kNamed = 5;
  for (std::size_t i = 0; i < keys_.size() && i < kNamed; ++i) {
    out += (i > 0 ? ", '" : "'") + keys_[i].key + "'";
  }
  if (keys_.size() > kNamed) out += " and " + std::to_string(keys_.size() - kNamed) + " more";
  return out;
}

std::vector<CachedValuePtr> Creation::for_caller(std::shared_ptr<Creation> creation,
                                                 const RegionState& st,
                                                 CacheMutex::Deadline deadline) {
  // Under backend_errors = miss, the backend failed since the value was read.
  if (st.guard->failing()) {
    if (auto kept = creation->fallbacks(); !kept.empty()) return kept;
  }
  if (st.creators == nullptr) {
    try {
      auto made = creation->make_and_store();
      return creation->values(made);
    } catch (...) {
      if (auto kept = creation->fallbacks(); !kept.empty()) return kept;
      throw;
    }
  }
  // Timed: the creation owns the mutexes and runs on the pool while this caller waits.
  const ResilienceOptions& r = st.resilience;
  const auto start = Steady::now();
  const bool queued = st.creators->submit([creation] { creation->run_on_pool(); });
  const auto& keys = creation->keys_;
  const bool soft = r.soft_timeout && r.serve_stale &&
                    std::all_of(keys.begin(), keys.end(), [](const auto& k) { return k.stale; });
  {
    std::unique_lock lock(creation->mutex_);
    if (queued) {
      auto done = [&] { return creation->done_; };
      const auto soft_end = soft ? after(start, *r.soft_timeout) : Steady::time_point::max();
      if (const auto until = std::min(soft_end, deadline); until == Steady::time_point::max()) {
        creation->finished_.wait(lock, done);
      } else {
        creation->finished_.wait_until(lock, until, done);
      }
      if (creation->done_) {
        if (creation->error_) {
          if (auto kept = creation->fallbacks(); !kept.empty()) return kept;
          std::rethrow_exception(creation->error_);
        }
        return creation->values(creation->made_);
      }
    }
  }
  if (soft) {
    log(LogLevel::debug, "region",
        "region '" + st.region_name + "': the creator of " + creation->naming() +
            " runs longer than soft_timeout (" + seconds_text(*r.soft_timeout) +
            "); serving the stale value while it finishes");
    return creation->stale_values();
  }
  if (auto kept = creation->fallbacks(); !kept.empty()) return kept;
  throw TimeoutError("region '" + st.region_name + "': " +
                     (queued ? "the creator of " + creation->naming() +
                                   " ran longer than hard_timeout (" +
                                   seconds_text(*r.hard_timeout) + "); it goes on in the background"
                             : "no thread is free to run the creator of " + creation->naming()));
}

// Whether fail-safe may give `value` (made less than fail_safe_max_age ago) instead of an
// error.
bool fail_safe_may_give(const RegionState& st, const Current& value) {
  return st.resilience.fail_safe && value && value->value &&
         st.clock->now() - value->value->metadata().made() <= *st.resilience.fail_safe_max_age;
}

// Starts one background creation of `keys` (fresh values due for an eager refresh) on the
// refresh runner, for the keys whose mutex is free: a key being made already is left alone.
void refresh_eagerly(CacheRegion& region, const RegionState& st, std::optional<double> expiration,
                     std::vector<CreationKey> keys, MultiValueMaker make, bool multi) {
  std::erase_if(keys, [&](CreationKey& key) {
    auto mutex = st.locks->get(key.mangled);
    if (!mutex->acquire(false)) return true;
    key.held = std::move(mutex);
    return false;
  });
  if (keys.empty()) return;
  // The runner is given the first key's mutex; the creation releases the others'.
  std::shared_ptr<CacheMutex> first = std::exchange(keys[0].held, nullptr);
  const std::string key = keys[0].key;
  auto creation =
      std::make_shared<Creation>(st, expiration, std::move(make), std::move(keys), multi);
  try {
    st.refresh_runner(region, key, Creation::in_background(std::move(creation)), first);
  } catch (const std::exception& e) {
    release_logged(*first);  // a runner that throws did not take it
    log(LogLevel::warning, "region",
        "region '" + st.region_name + "': starting an eager refresh of key '" + key +
            "' failed: " + e.what());
  }
}

// get_or_create's maker in a Creation's shape: the value of its one key.
MultiValueMaker of_one_key(ValueMaker make) {
  return [make = std::move(make)](const Keys&) { return std::vector<Created>{make()}; };
}

// A Creation of the one key `key`, made by `make`.
std::shared_ptr<Creation> one_key_creation(const RegionState& st, std::optional<double> expiration,
                                           ValueMaker make, CreationKey key) {
  std::vector<CreationKey> keys;
  keys.push_back(std::move(key));
  return std::make_shared<Creation>(st, expiration, of_one_key(std::move(make)), std::move(keys),
                                    false);
}

}  // namespace

CacheMutex::Deadline call_deadline(const RegionState& st) {
  const auto& hard = st.resilience.hard_timeout;
  return hard ? after(Steady::now(), *hard) : CacheMutex::Deadline::max();
}

Regeneration::Regeneration(CacheRegion& region, const RegionState& st, std::string_view key,
                           std::string mangled, std::optional<double> expiration, Decoder decode,
                           CacheMutex::Deadline deadline, std::vector<CreationKey>* batch)
    : region_(region),
      st_(st),
      key_(key),
      mangled_(std::move(mangled)),
      expiration_(expiration),
      decode_(decode),
      deadline_(deadline),
      batch_(batch) {}

CachedValuePtr Regeneration::run(Current current, bool refresh, ValueMaker make) {
  make_ = std::move(make);
  if (refresh) {
    std::vector<CreationKey> keys;
    keys.push_back({.key = std::string(key_), .mangled = mangled_});
    refresh_eagerly(region_, st_, expiration_, std::move(keys), of_one_key(make_), false);
    return current->value;
  }
  last_ = current;
  // Under backend_errors = miss, with the backend failing: no cache and no lock.
  if (st_.guard->failing()) {
    if (auto kept = fallback()) return kept;
    return make_().value;
  }
  try {
    return dogpile_lock(*this, std::move(current));
  } catch (const TimeoutError&) {
    if (auto kept = fallback()) return kept;
    throw;
  }
}

std::shared_ptr<CacheMutex> Regeneration::mutex() const { return st_.locks->get(mangled_); }

bool Regeneration::wait(CacheMutex& mutex, const std::function<bool()>& arrived) const {
  if (deadline_ == CacheMutex::Deadline::max()) return mutex.acquire_until(deadline_, arrived);
  bool came = false;
  if (mutex.acquire_until(deadline_, [&] { return came = arrived(); })) return true;
  // The value came, or the lock's own blocking timeout ran out (the value is then made
  // without the lock, as dogpile does).
  if (came || Steady::now() < deadline_ || arrived()) return false;
  throw TimeoutError("region '" + st_.region_name + "': waited hard_timeout (" +
                     seconds_text(*st_.resilience.hard_timeout) + ") for the value of key '" +
                     std::string(key_) + "', which another caller is making");
}

Current Regeneration::classify(CachedValuePtr value) {
  Current current = detail::classify(st_, std::move(value), key_, expiration_, decode_);
  if (current) last_ = current;
  return current;
}

CachedValuePtr Regeneration::fallback() const {
  return fail_safe_may_give(st_, last_) ? last_->value : nullptr;
}

CreationKey Regeneration::creation_key(std::shared_ptr<CacheMutex> held) const {
  CreationKey key{.key = std::string(key_),
                  .mangled = mangled_,
                  .stale = last_ ? last_->value : nullptr,
                  .fallback = fallback(),
                  .held = std::move(held)};
  if (key.fallback && expiration_) {
    key.fallback_expiration = jittered(st_, key_, key.fallback->metadata(), *expiration_);
  } else {
    key.fallback = nullptr;  // nothing expires it: nothing to keep
  }
  return key;
}

CachedValuePtr Regeneration::create(std::shared_ptr<CacheMutex>& held) {
  CreationKey key = creation_key(std::exchange(held, nullptr));
  if (batch_ != nullptr) {
    batch_->push_back(std::move(key));
    return nullptr;  // made with the batch
  }
  return Creation::for_caller(one_key_creation(st_, expiration_, make_, std::move(key)), st_,
                              deadline_)
      .front();
}

bool Regeneration::create_in_background(std::shared_ptr<CacheMutex>& held) {
  if (batch_ != nullptr || !st_.async_runner) return false;
  auto creation = one_key_creation(st_, expiration_, make_, creation_key(nullptr));
  // A runner that throws did not take the mutex: the lock still holds it.
  st_.async_runner(region_, std::string(key_), Creation::in_background(std::move(creation)), held);
  held = nullptr;
  return true;
}

std::vector<CachedValuePtr> regenerate_multi(CacheRegion& region, const RegionState& st,
                                             const Keys& keys, const Keys& mangled,
                                             std::optional<double> expiration, Decoder decode,
                                             const MultiValueMaker& make) {
  const auto stored = st.calls->get_multi(mangled);
  const auto deadline = call_deadline(st);
  std::vector<CreationKey> batch;
  std::deque<Regeneration> each;  // stable addresses: the locks refer to them
  std::vector<Current> current;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    each.emplace_back(region, st, keys[i], mangled[i], expiration, decode, deadline, &batch);
    current.push_back(each[i].classify(stored.at(i)));
  }
  std::vector<CachedValuePtr> result(keys.size());
  // Fills `result` with what `make` gives for `to_make` (indexes into keys).
  auto made_for = [&](const std::vector<std::size_t>& to_make, std::vector<CachedValuePtr> made) {
    for (std::size_t j = 0; j < to_make.size(); ++j) result[to_make[j]] = std::move(made[j]);
  };

  // Under backend_errors = miss, with the backend failing: made without cache or locks.
  if (st.guard->failing()) {
    std::vector<std::size_t> to_make;
    Keys names;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (each[i].fresh(current[i])) {
        result[i] = current[i]->value;
      } else if (auto kept = each[i].fallback()) {
        result[i] = std::move(kept);
      } else {
        to_make.push_back(i);
        names.push_back(keys[i]);
      }
    }
    if (!to_make.empty()) {
      auto made = make(names);
      std::vector<CachedValuePtr> values(to_make.size());
      for (std::size_t j = 0; j < made.size() && j < values.size(); ++j) values[j] = made[j].value;
      made_for(to_make, std::move(values));
    }
    return result;
  }

  // Fresh values are served; those due for an eager refresh are made again in the background.
  std::vector<CreationKey> due;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (!each[i].fresh(current[i])) continue;
    result[i] = current[i]->value;
    if (due_for_refresh(st, *current[i], expiration)) {
      due.push_back({.key = keys[i], .mangled = mangled[i]});
    }
  }
  if (!due.empty()) refresh_eagerly(region, st, expiration, std::move(due), make, true);

  // The lock, key by key in sorted order (so two multi calls cannot deadlock); the keys it
  // leaves to create are read again in one round trip.
  std::deque<DogpileLock<Regeneration>> locks;
  std::vector<std::size_t> entered;
  std::vector<DogpileLock<Regeneration>*> lock_of(keys.size(), nullptr);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (each[i].fresh(current[i])) continue;
    auto& lock = locks.emplace_back(each[i], current[i]);
    try {
      if (auto decided = lock.enter()) {
        result[i] = std::move(*decided);
        continue;
      }
    } catch (const TimeoutError&) {
      if (auto kept = each[i].fallback()) {
        result[i] = std::move(kept);
        continue;
      }
      throw;
    }
    entered.push_back(i);
    lock_of[i] = &lock;
  }
  if (entered.empty()) return result;
  Keys again;
  for (const std::size_t i : entered) again.push_back(mangled[i]);
  const auto reread = st.calls->get_multi(again);
  for (std::size_t j = 0; j < entered.size(); ++j) {
    const std::size_t i = entered[j];
    result[i] = lock_of[i]->finish(each[i].classify(reread.at(j)));  // null when enlisted
  }
  if (batch.empty()) return result;

  std::vector<std::size_t> to_make;
  for (const auto& key : batch) {
    to_make.push_back(std::lower_bound(keys.begin(), keys.end(), key.key) - keys.begin());
  }
  auto creation = std::make_shared<Creation>(st, expiration, make, std::move(batch), true);
  made_for(to_make, Creation::for_caller(std::move(creation), st, deadline));
  return result;
}

}  // namespace dogpile::detail
