// dogpile.proxy.stats: counts what passes through it (keys looked up, hits, misses, keys set
// and removed, errors) and the latency of each kind of call in a histogram, with relaxed
// atomics only: no lock on any path. Read it with CacheRegion::stats() or export it with
// dogpile::prometheus_text().
#include <algorithm>
#include <atomic>
#include <chrono>
#include <dogpile/sdk/sdk.hpp>

namespace dogpile::stats_proxy {

namespace {

using Clock = std::chrono::steady_clock;

class StatsProxy final : public InterceptingProxy, public StatsProvider {
 public:
  explicit StatsProxy(const Arguments&) {}

  StatsSnapshot stats() const override;
  void reset_stats() override;

 protected:
  void intercept(ProxiedCall& call) override {
    const CacheOperation operation = call.operation();
    if (operation == CacheOperation::get_mutex) return call.proceed();
    const auto start = Clock::now();
    try {
      call.proceed();
    } catch (...) {
      record(operation, Clock::now() - start, true);
      throw;
    }
    record(operation, Clock::now() - start, false);
    const std::uint64_t keys = call.size();
    switch (operation) {
      case CacheOperation::get:
      case CacheOperation::get_multi:
        add(gets_, keys);
        add(hits_, call.hits());
        add(misses_, keys - call.hits());
        break;
      case CacheOperation::set:
      case CacheOperation::set_multi:
        add(sets_, keys);
        break;
      default:
        add(deletes_, keys);
    }
  }

 private:
  struct Counters {
    std::atomic<std::uint64_t> calls{0};
    std::atomic<std::uint64_t> errors{0};
    std::atomic<std::uint64_t> sum_nanoseconds{0};
    std::array<std::atomic<std::uint64_t>, kLatencyBounds.size() + 1> buckets{};
  };

  static void add(std::atomic<std::uint64_t>& counter, std::uint64_t n) {
    counter.fetch_add(n, std::memory_order_relaxed);
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
  std::atomic<std::uint64_t> evictions_at_reset_{0};  // the backend's count, at reset_stats()
};

StatsSnapshot StatsProxy::stats() const {
  StatsSnapshot out;
  out.gets = gets_.load(std::memory_order_relaxed);
  out.hits = hits_.load(std::memory_order_relaxed);
  out.misses = misses_.load(std::memory_order_relaxed);
  out.sets = sets_.load(std::memory_order_relaxed);
  out.deletes = deletes_.load(std::memory_order_relaxed);
  out.errors = errors_.load(std::memory_order_relaxed);
  if (const auto* counter = find_in_chain<EvictionCounter>(proxied().get())) {
    out.evictions = counter->evictions() - evictions_at_reset_.load(std::memory_order_relaxed);
  }
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

void StatsProxy::reset_stats() {
  for (auto* counter : {&gets_, &hits_, &misses_, &sets_, &deletes_, &errors_}) counter->store(0);
  const auto* evictions = find_in_chain<EvictionCounter>(proxied().get());
  evictions_at_reset_ = evictions != nullptr ? evictions->evictions() : 0;
  for (auto& counters : operations_) {
    counters.calls = 0;
    counters.errors = 0;
    counters.sum_nanoseconds = 0;
    for (auto& bucket : counters.buckets) bucket = 0;
  }
}

}  // namespace

}  // namespace dogpile::stats_proxy

DOGPILE_PROXY_PLUGIN(stats, "dogpile.proxy.stats", "1.0.0",
                     "Counts gets, hits, misses, sets, deletes, errors, evictions and latencies",
                     dogpile::stats_proxy::StatsProxy);
