// Seconds: an expiration time that may be unset, given as a number of seconds (as
// dogpile.cache takes them) or as any std::chrono::duration.
//
//   region->configure("dogpile.cache.memory", {.expiration_time = std::chrono::minutes(5)});
//   region->get_or_create("k", make, 30);  // seconds
#pragma once

#include <chrono>
#include <optional>

namespace dogpile {

struct Seconds : std::optional<double> {
  using std::optional<double>::optional;  // nullopt, or a number of seconds
  Seconds() = default;
  Seconds(std::optional<double> seconds) : std::optional<double>(seconds) {}
  template <class Rep, class Period>
  Seconds(std::chrono::duration<Rep, Period> duration)
      : std::optional<double>(std::chrono::duration<double>(duration).count()) {}
};

}  // namespace dogpile
