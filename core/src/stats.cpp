#include "dogpile/stats.hpp"

#include <cstdio>
#include <map>

#include "dogpile/region.hpp"
#include "dogpile/sdk/log.hpp"
#include "registry.hpp"

namespace dogpile {

namespace {

// A label value with backslash, double quote and newline escaped, as the format requires.
std::string label_value(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.9g", value);
  return text;
}

using Figures = std::map<std::string, StatsSnapshot>;  // by region name

// Every family once (HELP, TYPE), with one series per region of `figures`.
std::string exposition(const Figures& figures) {
  std::string out;
  struct Counter {
    const char* name;
    std::uint64_t StatsSnapshot::*value;
    const char* help;
  };
  const Counter counters[] = {
      {"gets", &StatsSnapshot::gets, "Keys looked up."},
      {"hits", &StatsSnapshot::hits, "Keys found."},
      {"misses", &StatsSnapshot::misses, "Keys not found."},
      {"sets", &StatsSnapshot::sets, "Keys stored."},
      {"deletes", &StatsSnapshot::deletes, "Keys removed."},
      {"errors", &StatsSnapshot::errors, "Backend calls that failed."},
      {"evictions", &StatsSnapshot::evictions, "Entries evicted to stay within the bound."},
  };
  for (const auto& [name, value, help] : counters) {
    const std::string metric = std::string("dogpile_cache_") + name + "_total";
    out += "# HELP " + metric + " " + help + "\n";
    out += "# TYPE " + metric + " counter\n";
    for (const auto& [region, stats] : figures) {
      out += metric + "{region=\"" + label_value(region) + "\"} " + std::to_string(stats.*value) +
             "\n";
    }
  }
  const std::string histogram = "dogpile_cache_operation_duration_seconds";
  out += "# HELP " + histogram + " Latency of backend calls.\n";
  out += "# TYPE " + histogram + " histogram\n";
  for (const auto& [region, stats] : figures) {
    for (std::size_t i = 0; i < kCacheOperationCount; ++i) {
      const OperationStats& op = stats.operations[i];
      const std::string labels = "region=\"" + label_value(region) + "\",operation=\"" +
                                 operation_name(static_cast<CacheOperation>(i)) + "\"";
      std::uint64_t cumulative = 0;
      for (std::size_t b = 0; b < op.latency_counts.size(); ++b) {
        cumulative += op.latency_counts[b];
        const std::string le = b < kLatencyBounds.size() ? number(kLatencyBounds[b]) : "+Inf";
        out += histogram + "_bucket{" + labels + ",le=\"" + le + "\"} " +
               std::to_string(cumulative) + "\n";
      }
      out += histogram + "_sum{" + labels + "} " + number(op.latency_sum_seconds) + "\n";
      // The buckets' total, not op.calls: read at another instant under traffic, it could
      // differ from the +Inf bucket, which the format requires it to equal.
      out += histogram + "_count{" + labels + "} " + std::to_string(cumulative) + "\n";
    }
  }
  return out;
}

void add(StatsSnapshot& to, const StatsSnapshot& from) {
  to.gets += from.gets;
  to.hits += from.hits;
  to.misses += from.misses;
  to.sets += from.sets;
  to.deletes += from.deletes;
  to.errors += from.errors;
  to.evictions += from.evictions;
  for (std::size_t i = 0; i < kCacheOperationCount; ++i) {
    to.operations[i].calls += from.operations[i].calls;
    to.operations[i].errors += from.operations[i].errors;
    to.operations[i].latency_sum_seconds += from.operations[i].latency_sum_seconds;
    for (std::size_t b = 0; b < from.operations[i].latency_counts.size(); ++b) {
      to.operations[i].latency_counts[b] += from.operations[i].latency_counts[b];
    }
  }
}

}  // namespace

std::string prometheus_text(const StatsSnapshot& stats, std::string_view region) {
  return exposition({{std::string(region), stats}});
}

namespace detail {

RegionRegistry& RegionRegistry::instance() {
  // Never destroyed: regions in static storage may unregister after it would be.
  static auto* registry = new RegionRegistry;
  return *registry;
}

void RegionRegistry::add(const CacheRegion* region) {
  std::lock_guard guard(mutex_);
  regions_.push_back(region);
}

void RegionRegistry::remove(const CacheRegion* region) {
  std::lock_guard guard(mutex_);
  std::erase(regions_, region);
}

}  // namespace detail

std::string metrics_text() {
  Figures figures;
  detail::RegionRegistry::instance().for_each([&](const CacheRegion& region) {
    if (!region.is_configured()) return;
    try {
      if (auto stats = region.stats()) add(figures[region.name()], *stats);
    } catch (const std::exception& e) {
      log(LogLevel::warning, "stats",
          "no figures for region " + region.name() + ": its stats proxy failed: " + e.what());
    }
  });
  return figures.empty() ? std::string() : exposition(figures);
}

}  // namespace dogpile
