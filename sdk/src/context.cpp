#include "dogpile/sdk/context.hpp"

namespace dogpile {

PluginContext::~PluginContext() = default;

void PluginContext::log(LogLevel level, std::string_view component,
                        std::string_view message) const {
  if (!log_enabled(level)) return;
  const std::string& region = region_name();
  dogpile::log(
      level, component,
      region.empty() ? std::string(message) : "region '" + region + "': " + std::string(message));
}

}  // namespace dogpile
