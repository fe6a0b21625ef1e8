// The dogpile.cache.layered plugin: its arguments, and the L1 and L2 it makes by entry-point
// name through the plugin loader, as a region makes its backend.
#include "layered.hpp"

#include <time.h>

#include <dogpile/loader.hpp>

namespace dogpile::layered {

namespace {

double monotonic_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// "cache.local" from the key prefix "cache.local.arguments."; empty when made in code.
std::string region_of(const Arguments& a) {
  std::string prefix = a.key("");
  constexpr std::string_view kTail = ".arguments.";
  if (!prefix.ends_with(kTail)) return {};
  prefix.resize(prefix.size() - kTail.size());
  return prefix;
}

LayeredParts make_parts(const Arguments& a) {
  // Every argument is read before any is refused, so that an error lists them all.
  const auto l2_name = a.require<std::string>("l2_backend");
  std::string channel = a.get("channel", std::string());
  LayeredParts parts;
  parts.l1_expiration_time = a.find_seconds("l1_expiration_time").value_or(30);
  const Arguments l2_arguments = a.section("l2_arguments");
  const Arguments l1_arguments = a.section("l1_arguments");
  if (l2_name == "dogpile.cache.layered") {
    throw ValidationError(a.key("l2_backend") + " cannot be dogpile.cache.layered itself");
  }
  if (channel.empty()) {
    const std::string region = region_of(a);
    if (region.empty()) {
      throw ValidationError(a.key("channel") +
                            " is required: the pub/sub channel the region's processes share "
                            "(a config file names it dogpile:<region> by default)");
    }
    channel = "dogpile:" + region;
  }
  if (parts.l1_expiration_time <= 0) {
    throw ValidationError(a.key("l1_expiration_time") +
                          " must be positive: it bounds how long a process may serve a value "
                          "another replaced while a message was lost");
  }
  PluginLoader& loader = PluginLoader::instance();
  parts.l2 = loader.make_backend(l2_name, l2_arguments);
  parts.l1 = loader.make_backend("dogpile.cache.memory", l1_arguments);
  parts.broadcast = parts.l2->broadcast(channel);
  if (!parts.broadcast) {
    throw ValidationError(a.key("l2_backend") + " is " + l2_name +
                          ", which cannot publish to the other processes what changed (their "
                          "L1 would serve replaced values): use dogpile.cache.redis");
  }
  parts.now = monotonic_seconds;
  return parts;
}

// The plugin's backend: LayeredBackend made from its arguments.
class ConfiguredLayered final : public LayeredBackend {
 public:
  explicit ConfiguredLayered(const Arguments& arguments) : LayeredBackend(make_parts(arguments)) {}
};

}  // namespace

}  // namespace dogpile::layered

DOGPILE_BACKEND_PLUGIN(layered, "dogpile.cache.layered", "1.0.0",
                       "A memory backend in each process in front of a shared backend (Redis), "
                       "kept coherent through pub/sub",
                       dogpile::layered::ConfiguredLayered);
