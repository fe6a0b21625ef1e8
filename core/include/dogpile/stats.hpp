// Exporting cache statistics (collected by the dogpile.proxy.stats proxy; see
// dogpile/sdk/stats.hpp and CacheRegion::stats()) in Prometheus' text format.
#pragma once

#include <string>
#include <string_view>

#include "dogpile/sdk/stats.hpp"

namespace dogpile {

// The snapshot in Prometheus' text exposition format (version 0.0.4): counters
// dogpile_cache_{gets,hits,misses,sets,deletes,errors}_total and the histogram
// dogpile_cache_operation_duration_seconds{operation=…}, each labelled region="<region>".
DOGPILE_API std::string prometheus_text(const StatsSnapshot& stats, std::string_view region);

// The same for every live, configured region whose proxy chain collects statistics (wrap it
// in dogpile.proxy.stats), one series per region name (regions sharing a name add up); ""
// when there is none. Serve it at /metrics for Prometheus, or read it with `dogpile stats`.
DOGPILE_API std::string metrics_text();

}  // namespace dogpile
