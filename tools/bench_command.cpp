// `dogpile bench`: a region's throughput and latency percentiles, measured from the outside as
// an application sees them.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <thread>

#include "cli.hpp"

namespace tool {

namespace {

using Clock = std::chrono::steady_clock;

// Latencies in nanoseconds, in log-linear buckets: exact below 64 ns, then 64 buckets per
// power of two (under 1.6% apart), up to about 5 hours.
class Histogram {
 public:
  void record(std::uint64_t ns) { ++counts_[index(ns)]; }
  void add(const Histogram& other) {
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  }
  std::uint64_t total() const {
    std::uint64_t sum = 0;
    for (auto count : counts_) sum += count;
    return sum;
  }
  // The latency at quantile q (0..1): the upper bound of the bucket that holds it.
  double quantile_us(double q) const {
    const std::uint64_t all = total();
    if (all == 0) return 0;
    const auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(all)));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= std::max<std::uint64_t>(rank, 1)) return static_cast<double>(upper(i)) / 1000;
    }
    return static_cast<double>(upper(counts_.size() - 1)) / 1000;
  }

 private:
  static constexpr int kSubBits = 6;
  static constexpr std::size_t kSub = 1u << kSubBits;
  static constexpr std::size_t kPowers = 40;

  static std::size_t index(std::uint64_t ns) {
    if (ns < kSub) return static_cast<std::size_t>(ns);
    const int power = 63 - std::countl_zero(ns);  // ns in [2^power, 2^(power+1)), power >= 6
    const std::size_t sub = (ns >> (power - kSubBits)) & (kSub - 1);
    return std::min((static_cast<std::size_t>(power) - kSubBits + 1) * kSub + sub,
                    kSub * kPowers - 1);
  }
  static std::uint64_t upper(std::size_t index) {
    if (index < kSub) return index;
    const int power = static_cast<int>(index / kSub) + kSubBits - 1;
    const std::uint64_t sub = index % kSub;
    return ((kSub + sub + 1) << (power - kSubBits)) - 1;
  }

  std::array<std::uint64_t, kSub * kPowers> counts_{};
};

struct alignas(64) Worker {
  std::atomic<std::uint64_t> operations{0};
  std::uint64_t errors = 0;
  std::string first_error;
  Histogram latency;
};

struct Result {
  std::string operation;
  std::uint64_t operations = 0;
  double seconds = 0;
  std::uint64_t errors = 0;
  std::string first_error;
  Histogram latency;
};

// Runs `call(key index)` on `threads` threads for `seconds`, with a progress line on stderr
// when it is a terminal.
template <class Call>
Result measure(const std::string& name, int threads, double seconds, std::size_t keys, Call call) {
  std::vector<Worker> workers(static_cast<std::size_t>(threads));
  std::atomic<bool> stop{false};
  std::vector<std::thread> pool;
  const auto start = Clock::now();
  for (std::size_t t = 0; t < workers.size(); ++t) {
    pool.emplace_back([&, t] {
      Worker& me = workers[t];
      std::uint64_t state = 0x9E3779B97F4A7C15ull * (t + 1);  // xorshift: keys at random
      while (!stop.load(std::memory_order_relaxed)) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        const auto began = Clock::now();
        try {
          call(static_cast<std::size_t>(state % keys));
        } catch (const std::exception& e) {
          if (me.errors++ == 0) me.first_error = e.what();
        }
        me.latency.record(static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - began).count()));
        me.operations.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  const bool progress = ::isatty(STDERR_FILENO) == 1;
  const auto deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::mutex mutex;
  std::condition_variable never;
  for (auto now = Clock::now(); now < deadline; now = Clock::now()) {
    std::unique_lock lock(mutex);
    never.wait_until(lock, std::min(deadline, now + std::chrono::milliseconds(250)));
    if (progress) {
      std::uint64_t done = 0;
      for (const auto& worker : workers) done += worker.operations.load(std::memory_order_relaxed);
      const double so_far = std::chrono::duration<double>(Clock::now() - start).count();
      std::fprintf(stderr, "\r  %-14s %5.1f/%.1f s  %12llu ops  %12.0f ops/s ", name.c_str(),
                   so_far, seconds, static_cast<unsigned long long>(done),
                   static_cast<double>(done) / so_far);
    }
  }
  stop = true;
  for (auto& thread : pool) thread.join();
  if (progress) std::fprintf(stderr, "\r%*s\r", 72, "");
  Result result;
  result.operation = name;
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (auto& worker : workers) {
    result.operations += worker.operations.load();
    if (result.first_error.empty()) result.first_error = worker.first_error;
    result.errors += worker.errors;
    result.latency.add(worker.latency);
  }
  return result;
}

}  // namespace

int bench(const Invocation& invocation) {
  const int threads = static_cast<int>(invocation.number("--threads", 4, 1, 1024));
  const double seconds = invocation.number("--seconds", 3, 0.01, 3600);
  const auto key_count = static_cast<std::size_t>(invocation.number("--keys", 1000, 1, 1e7));
  const auto value_size =
      static_cast<std::size_t>(invocation.number("--value-size", 100, 0, 64 * 1024 * 1024));
  const Regions regions = load(invocation.value("--config"));
  auto& region = regions.pick(invocation.value("--region"));

  dogpile::Keys keys;
  for (std::size_t i = 0; i < key_count; ++i) {
    keys.push_back(scratch_key("dogpile-bench", std::to_string(i)));
  }
  const std::string value(value_size, 'x');
  RemoveOnExit cleanup{region, "the benchmark's keys", keys};

  const std::uint64_t evictions_before = region.evictions();
  std::vector<Result> results;
  results.push_back(measure("set", threads, seconds, key_count,
                            [&](std::size_t i) { region.set(keys[i], value); }));
  results.push_back(measure("get", threads, seconds, key_count,
                            [&](std::size_t i) { region.get<std::string>(keys[i]); }));
  region.invalidate();  // get_or_create starts cold: each key's first call creates it
  results.push_back(measure("get_or_create", threads, seconds, key_count, [&](std::size_t i) {
    region.get_or_create(keys[i], [&] { return value; });
  }));

  const std::uint64_t evictions = region.evictions() - evictions_before;
  std::uint64_t errors = 0;
  std::string first_error;
  for (const auto& result : results) {
    errors += result.errors;
    if (first_error.empty()) first_error = result.first_error;
  }
  if (invocation.has("--json")) {
    nlohmann::json out = {{"region", region.name()},
                          {"backend", region.backend_name()},
                          {"threads", threads},
                          {"seconds", seconds},
                          {"keys", key_count},
                          {"value_size", value_size},
                          {"evictions", evictions},
                          {"operations", nlohmann::json::object()}};
    for (const auto& r : results) {
      out["operations"][r.operation] = {
          {"operations", r.operations},
          {"ops_per_second", static_cast<double>(r.operations) / r.seconds},
          {"p50_us", r.latency.quantile_us(0.5)},
          {"p99_us", r.latency.quantile_us(0.99)},
          {"p999_us", r.latency.quantile_us(0.999)},
          {"errors", r.errors}};
    }
    std::cout << out.dump(2) << "\n";
  } else {
    std::printf("region %s on %s: %d thread(s), %s s per operation, %zu keys, %zu-byte values\n",
                region.name().c_str(), region.backend_name().c_str(), threads,
                dogpile::python_float_repr(seconds).c_str(), key_count, value_size);
    std::printf("%-14s %14s %10s %10s %10s %8s\n", "operation", "ops/s", "p50 us", "p99 us",
                "p999 us", "errors");
    for (const auto& r : results) {
      std::printf("%-14s %14.0f %10.2f %10.2f %10.2f %8llu\n", r.operation.c_str(),
                  static_cast<double>(r.operations) / r.seconds, r.latency.quantile_us(0.5),
                  r.latency.quantile_us(0.99), r.latency.quantile_us(0.999),
                  static_cast<unsigned long long>(r.errors));
    }
    std::printf("evictions      %14llu\n", static_cast<unsigned long long>(evictions));
  }
  if (errors > 0) {
    std::cerr << "dogpile: " << errors << " call(s) failed; the first: " << first_error << "\n";
    return kFailed;
  }
  return kOk;
}

}  // namespace tool
