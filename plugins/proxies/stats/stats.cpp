// dogpile.proxy.stats: counts what passes through it (keys looked up, hits, misses, keys set
// and removed, errors) and the latency of each kind of call in a histogram, with relaxed
// atomics only: no lock on any path. Read it with CacheRegion::stats() or export it with
// dogpile::prometheus_text().
#include <algorithm>
#include <atomic>
#include <chrono>
#include <dogpile/sdk/sdk.hpp>
#include <exception>

namespace dogpile::stats_proxy {

namespace {

using Clock = std::chrono::steady_clock;

class StatsProxy final : public ProxyBackend, public StatsProvider {
 public:
  explicit StatsProxy(const Arguments&) {}

  CachedValuePtr get(std::string_view key) override {
    Timer timer(*this, CacheOperation::get);
    auto value = ProxyBackend::get(key);
    looked_up(value != nullptr);
    return value;
  }
  std::vector<CachedValuePtr> get_multi(const Keys& keys) override {
    Timer timer(*this, CacheOperation::get_multi);
    auto values = ProxyBackend::get_multi(keys);
    for (const auto& value : values) looked_up(value != nullptr);
    return values;
  }
  void set(const std::string& key, CachedValuePtr value) override {
    Timer timer(*this, CacheOperation::set);
    ProxyBackend::set(key, std::move(value));
    add(sets_, 1);
  }
  void set_multi(const ValueMapping& mapping) override {
    Timer timer(*this, CacheOperation::set_multi);
    ProxyBackend::set_multi(mapping);
    add(sets_, mapping.size());
  }
  std::optional<std::string> get_serialized(std::string_view key) override {
    Timer timer(*this, CacheOperation::get);
    auto value = ProxyBackend::get_serialized(key);
    looked_up(value.has_value());
    return value;
  }
  SerializedValues get_serialized_multi(const Keys& keys) override {
    Timer timer(*this, CacheOperation::get_multi);
    auto values = ProxyBackend::get_serialized_multi(keys);
    for (const auto& value : values) looked_up(value.has_value());
    return values;
  }
  void set_serialized(const std::string& key, std::string_view value) override {
    Timer timer(*this, CacheOperation::set);
    ProxyBackend::set_serialized(key, value);
    add(sets_, 1);
  }
  void set_serialized_multi(const SerializedMapping& mapping) override {
    Timer timer(*this, CacheOperation::set_multi);
    ProxyBackend::set_serialized_multi(mapping);
    add(sets_, mapping.size());
  }
  void remove(std::string_view key) override {
    Timer timer(*this, CacheOperation::remove);
    ProxyBackend::remove(key);
    add(deletes_, 1);
  }
  void remove_multi(const Keys& keys) override {
    Timer timer(*this, CacheOperation::remove_multi);
    ProxyBackend::remove_multi(keys);
    add(deletes_, keys.size());
  }

  StatsSnapshot stats() const override {
    StatsSnapshot out;
    out.gets = gets_.load(std::memory_order_relaxed);
    out.hits = hits_.load(std::memory_order_relaxed);
    out.misses = misses_.load(std::memory_order_relaxed);
    out.sets = sets_.load(std::memory_order_relaxed);
    out.deletes = deletes_.load(std::memory_order_relaxed);
    out.errors = errors_.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < kCacheOperationCount; ++i) {
      const Counters& from = operations_[i];
      OperationStats& to = out.operations[i];
      to.calls = from.calls.load(std::memory_order_relaxed);
      to.errors = from.errors.load(std::memory_order_relaxed);
      for (std::size_t b = 0; b < to.latency_counts.size(); ++b) {
        to.latency_counts[b] = from.buckets[b].load(std::memory_order_relaxed);
      }
      to.latency_sum_seconds =
          static_cast<double>(from.sum_nanoseconds.load(std::memory_order_relaxed)) * 1e-9;
    }
    return out;
  }

  void reset_stats() override {
    for (auto* counter : {&gets_, &hits_, &misses_, &sets_, &deletes_, &errors_}) counter->store(0);
    for (auto& counters : operations_) {
      counters.calls = 0;
      counters.errors = 0;
      counters.sum_nanoseconds = 0;
      for (auto& bucket : counters.buckets) bucket = 0;
    }
  }

 private:
  struct Counters {
    std::atomic<std::uint64_t> calls{0};
    std::atomic<std::uint64_t> errors{0};
    std::atomic<std::uint64_t> sum_nanoseconds{0};
    std::array<std::atomic<std::uint64_t>, kLatencyBounds.size() + 1> buckets{};
  };

  // Measures one call; counts it as an error when it ends by an exception.
  class Timer {
   public:
    Timer(StatsProxy& proxy, CacheOperation operation)
        : proxy_(proxy), operation_(operation), exceptions_(std::uncaught_exceptions()) {}
    ~Timer() {
      proxy_.record(operation_, Clock::now() - start_, std::uncaught_exceptions() > exceptions_);
    }
    Timer(const Timer&) = delete;
    Timer& operator=(const Timer&) = delete;

   private:
    StatsProxy& proxy_;
    CacheOperation operation_;
    int exceptions_;
    Clock::time_point start_ = Clock::now();
  };

  static void add(std::atomic<std::uint64_t>& counter, std::uint64_t n) {
    counter.fetch_add(n, std::memory_order_relaxed);
  }

  void looked_up(bool hit) {
    add(gets_, 1);
    add(hit ? hits_ : misses_, 1);
  }

  void record(CacheOperation operation, Clock::duration elapsed, bool failed) {
    Counters& counters = operations_[static_cast<std::size_t>(operation)];
    add(counters.calls, 1);
    if (failed) {
      add(counters.errors, 1);
      add(errors_, 1);
    }
    const double seconds = std::chrono::duration<double>(elapsed).count();
    const auto bucket = static_cast<std::size_t>(
        std::lower_bound(kLatencyBounds.begin(), kLatencyBounds.end(), seconds) -
        kLatencyBounds.begin());
    add(counters.buckets[bucket], 1);
    add(counters.sum_nanoseconds,
        static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count()));
  }

  std::atomic<std::uint64_t> gets_{0}, hits_{0}, misses_{0}, sets_{0}, deletes_{0}, errors_{0};
  std::array<Counters, kCacheOperationCount> operations_;
};

}  // namespace

}  // namespace dogpile::stats_proxy

DOGPILE_PROXY_PLUGIN(stats, "dogpile.proxy.stats", "1.0.0",
                     "Counts gets, hits, misses, sets, deletes, errors and latencies",
                     dogpile::stats_proxy::StatsProxy);
