// dogpile-sim: replays key traces against the memory backend's eviction policy (W-TinyLFU,
// plugins/backends/memory/tinylfu.hpp, the same code the backend runs, given one hit in
// kHitSampling as the backend gives it, and given every hit) and against an LRU of the same
// size, and prints each one's hit ratio.
//
//   dogpile-sim                  the built-in traces: Zipf(0.9), 1,000,000 requests over
//                                100,000 keys; the same with a scan of 10,000 new keys after
//                                every 40,000 requests; caches of 1%, 5% and 10% of the keys
//   dogpile-sim --trace FILE     a trace of your own: one key per line
//   --size N[,N...]              cache sizes in entries (default: 1%, 5%, 10% of the keys)
//   --check                      exit 1 unless W-TinyLFU (as the backend runs it) beats LRU on
//                                every row (and, on the scan trace, by at least 5 points)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <list>
#include <random>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "../plugins/backends/memory/tinylfu.hpp"

namespace {

using dogpile::memory::Cost;
using dogpile::memory::kUnlimited;
using dogpile::memory::PolicyEntry;
using dogpile::memory::WTinyLfu;

struct Trace {
  std::string name;
  std::vector<std::uint64_t> keys;
  std::size_t distinct = 0;
};

std::uint64_t mix(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Requests drawn from a Zipf(s) distribution over `keys` keys, seeded.
class Zipf {
 public:
  Zipf(std::size_t keys, double s, std::uint64_t seed) : random_(seed), cdf_(keys) {
    double sum = 0;
    for (std::size_t k = 0; k < keys; ++k) cdf_[k] = sum += 1 / std::pow(double(k + 1), s);
    for (auto& c : cdf_) c /= sum;
  }
  std::uint64_t next() {
    const double u = std::uniform_real_distribution<double>(0, 1)(random_);
    return static_cast<std::uint64_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
  }

 private:
  std::mt19937_64 random_;
  std::vector<double> cdf_;
};

Trace zipf_trace(bool scans) {
  constexpr std::size_t kKeys = 100'000, kRequests = 1'000'000;
  Trace trace{scans ? "zipf 0.9 + scans" : "zipf 0.9", {}, kKeys};
  Zipf zipf(kKeys, 0.9, 42);
  std::uint64_t next_scan_key = kKeys;
  while (trace.keys.size() < kRequests) {
    for (int i = 0; i < 40'000 && trace.keys.size() < kRequests; ++i) {
      trace.keys.push_back(zipf.next());
    }
    if (!scans) continue;
    for (int i = 0; i < 10'000 && trace.keys.size() < kRequests; ++i) {
      trace.keys.push_back(next_scan_key++);  // each scanned key is new and never seen again
    }
  }
  return trace;
}

Trace file_trace(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  Trace trace{path, {}, 0};
  std::unordered_map<std::string, std::uint64_t> ids;
  std::string line;
  while (std::getline(in, line)) {
    auto [it, added] = ids.emplace(line, ids.size());
    trace.keys.push_back(it->second);
  }
  trace.distinct = ids.size();
  return trace;
}

double lru_hit_ratio(const Trace& trace, std::size_t size) {
  std::list<std::uint64_t> order;  // most recent first
  std::unordered_map<std::uint64_t, std::list<std::uint64_t>::iterator> where;
  std::size_t hits = 0;
  for (const std::uint64_t key : trace.keys) {
    auto it = where.find(key);
    if (it != where.end()) {
      ++hits;
      order.splice(order.begin(), order, it->second);
      continue;
    }
    order.push_front(key);
    where[key] = order.begin();
    if (order.size() > size) {
      where.erase(order.back());
      order.pop_back();
    }
  }
  return double(hits) / double(trace.keys.size());
}

// `sampled`: the policy is given one hit in kHitSampling, as the backend gives it.
double tinylfu_hit_ratio(const Trace& trace, std::size_t size, bool sampled) {
  struct Entry : PolicyEntry {
    std::uint64_t key;
  };
  WTinyLfu policy(Cost{size, kUnlimited});
  std::unordered_map<std::uint64_t, Entry> entries;
  std::vector<std::uint64_t> evicted;
  std::size_t hits = 0;
  std::uint32_t random = 0x9E3779B9;
  for (const std::uint64_t key : trace.keys) {
    auto it = entries.find(key);
    if (it != entries.end()) {
      ++hits;
      if (!sampled || dogpile::memory::sample_hit(random)) policy.record_access(it->second);
      continue;
    }
    Entry& entry = entries[key];
    entry.key = key;
    entry.hash = mix(key);
    entry.cost = {1, 0};
    policy.add(entry,
               [&](PolicyEntry& victim) { evicted.push_back(static_cast<Entry&>(victim).key); });
    for (const std::uint64_t victim : evicted) entries.erase(victim);
    evicted.clear();
  }
  return double(hits) / double(trace.keys.size());
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::vector<Trace> traces;
    std::vector<std::size_t> sizes;
    bool check = false;
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--trace" && i + 1 < argc) {
        traces.push_back(file_trace(argv[++i]));
      } else if (arg == "--size" && i + 1 < argc) {
        std::string list = argv[++i];
        for (std::size_t at = 0; at <= list.size();) {
          const std::size_t comma = std::min(list.find(',', at), list.size());
          sizes.push_back(std::stoul(list.substr(at, comma - at)));
          at = comma + 1;
        }
      } else if (arg == "--check") {
        check = true;
      } else {
        std::fprintf(stderr,
                     "dogpile-sim: unknown argument %s\nusage: dogpile-sim [--trace FILE] "
                     "[--size N[,N...]] [--check]\n",
                     arg.c_str());
        return 2;
      }
    }
    if (traces.empty()) {
      traces.push_back(zipf_trace(false));
      traces.push_back(zipf_trace(true));
    }
    bool beaten = true;
    std::printf("%-20s %9s %10s %10s %10s %12s\n", "trace", "size", "LRU", "W-TinyLFU", "gain",
                "every hit");
    for (const auto& trace : traces) {
      std::vector<std::size_t> these = sizes;
      if (these.empty()) {
        for (const double share : {0.01, 0.05, 0.10}) {
          these.push_back(std::max<std::size_t>(1, std::size_t(share * double(trace.distinct))));
        }
      }
      for (const std::size_t size : these) {
        const double lru = lru_hit_ratio(trace, size);
        const double tinylfu = tinylfu_hit_ratio(trace, size, true);
        const double exact = tinylfu_hit_ratio(trace, size, false);
        std::printf("%-20s %9zu %9.2f%% %9.2f%% %+9.2f %11.2f%%\n", trace.name.c_str(), size,
                    100 * lru, 100 * tinylfu, 100 * (tinylfu - lru), 100 * exact);
        const double margin = trace.name.find("scan") != std::string::npos ? 0.05 : 0;
        if (!(tinylfu > lru + margin)) beaten = false;
      }
    }
    if (check && !beaten) {
      std::fprintf(stderr, "dogpile-sim: W-TinyLFU did not beat LRU on every row\n");
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dogpile-sim: %s\n", e.what());
    return 1;
  }
}
