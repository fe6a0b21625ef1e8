// The dogpile.cache.layered plugin: its arguments, and the L1 and L2 it makes by entry-point
// name through its context, as a region makes its backend.
#include "layered.hpp"

#include <time.h>

namespace dogpile::layered {

namespace {

double monotonic_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

LayeredParts make_parts(const Arguments& a, const PluginContext& context) {
  // Every argument is read before any is refused, so that an error names only what is wrong.
  const auto l2_name = a.get("l2_backend", std::string());
  std::string channel = a.get("channel", std::string());
  LayeredParts parts;
  parts.l1_expiration_time = a.find_seconds("l1_expiration_time").value_or(30);
  const Arguments l2_arguments = a.section("l2_arguments");
  const Arguments l1_arguments = a.section("l1_arguments");
  if (l2_name.empty()) throw ValidationError("missing required argument " + a.key("l2_backend"));
  if (l2_name == "dogpile.cache.layered") {
    throw ValidationError(a.key("l2_backend") + " cannot be dogpile.cache.layered itself");
  }
  if (channel.empty()) {
    if (context.region_name().empty()) {
      throw ValidationError(a.key("channel") +
                            " is required for an unnamed region: the pub/sub channel the "
                            "region's processes share (dogpile:<region> by default)");
    }
    channel = "dogpile:" + context.region_name();
  }
  if (parts.l1_expiration_time <= 0) {
    throw ValidationError(a.key("l1_expiration_time") +
                          " must be positive: it bounds how long a process may serve a value "
                          "another replaced while a message was lost");
  }
  parts.l2 = context.make_backend(l2_name, l2_arguments);
  parts.l1 = context.make_backend("dogpile.cache.memory", l1_arguments);
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
  ConfiguredLayered(const Arguments& arguments, const PluginContext& context)
      : LayeredBackend(make_parts(arguments, context)) {}
};

}  // namespace

}  // namespace dogpile::layered

DOGPILE_BACKEND_PLUGIN(layered, "dogpile.cache.layered", "1.0.0",
                       "A memory backend in each process in front of a shared backend (Redis), "
                       "kept coherent through pub/sub",
                       dogpile::layered::ConfiguredLayered);
