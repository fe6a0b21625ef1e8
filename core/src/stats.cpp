#include "dogpile/stats.hpp"

#include <cstdio>

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

}  // namespace

std::string prometheus_text(const StatsSnapshot& stats, std::string_view region) {
  const std::string labels = "region=\"" + label_value(region) + "\"";
  std::string out;
  const std::pair<const char*, std::pair<std::uint64_t, const char*>> counters[] = {
      {"gets", {stats.gets, "Keys looked up."}},
      {"hits", {stats.hits, "Keys found."}},
      {"misses", {stats.misses, "Keys not found."}},
      {"sets", {stats.sets, "Keys stored."}},
      {"deletes", {stats.deletes, "Keys removed."}},
      {"errors", {stats.errors, "Backend calls that failed."}},
  };
  for (const auto& [name, value_help] : counters) {
    const std::string metric = std::string("dogpile_cache_") + name + "_total";
    out += "# HELP " + metric + " " + value_help.second + "\n";
    out += "# TYPE " + metric + " counter\n";
    out += metric + "{" + labels + "} " + std::to_string(value_help.first) + "\n";
  }
  const std::string histogram = "dogpile_cache_operation_duration_seconds";
  out += "# HELP " + histogram + " Latency of backend calls.\n";
  out += "# TYPE " + histogram + " histogram\n";
  for (std::size_t i = 0; i < kCacheOperationCount; ++i) {
    const OperationStats& op = stats.operations[i];
    const std::string op_labels =
        labels + ",operation=\"" + operation_name(static_cast<CacheOperation>(i)) + "\"";
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b < op.latency_counts.size(); ++b) {
      cumulative += op.latency_counts[b];
      const std::string le = b < kLatencyBounds.size() ? number(kLatencyBounds[b]) : "+Inf";
      out += histogram + "_bucket{" + op_labels + ",le=\"" + le + "\"} " +
             std::to_string(cumulative) + "\n";
    }
    out += histogram + "_sum{" + op_labels + "} " + number(op.latency_sum_seconds) + "\n";
    // The buckets' total, not op.calls: read at another instant under traffic, it could
    // differ from the +Inf bucket, which the format requires it to equal.
    out += histogram + "_count{" + op_labels + "} " + std::to_string(cumulative) + "\n";
  }
  return out;
}

}  // namespace dogpile
