// A PluginContext is what a plugin's factory is handed besides its arguments: where the
// backend or proxy will serve (its region's name and clock), a way to make another backend by
// entry-point name as a region makes its own (dogpile.cache.layered makes its L1 and L2 so),
// and logging that names the region. A plugin that keeps nothing of it needs nothing else of
// the core: plugins include SDK headers only.
//
//   class MyBackend : public dogpile::BytesBackend {
//    public:
//     MyBackend(const dogpile::Arguments& arguments, const dogpile::PluginContext& context);
//   };
//
// A plugin class with a constructor taking only the arguments is made as before.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "dogpile/sdk/arguments.hpp"
#include "dogpile/sdk/backend.hpp"
#include "dogpile/sdk/clock.hpp"
#include "dogpile/sdk/export.hpp"
#include "dogpile/sdk/log.hpp"

namespace dogpile {

class DOGPILE_API PluginContext {
 public:
  virtual ~PluginContext();

  // The name of the region the object is made for; empty for an unnamed region, or when it is
  // made outside a region.
  virtual const std::string& region_name() const noexcept = 0;

  // The region's clock (the system clock outside a region). A plugin may keep it.
  virtual std::shared_ptr<const Clock> clock() const = 0;

  // Makes the backend `name` with `arguments` as a region makes its own: found by entry-point
  // name, its arguments checked (errors name them by their keys), and handed this context.
  // Throws PluginNotFound, PluginLoadError, ValidationError.
  virtual std::shared_ptr<CacheBackend> make_backend(std::string_view name,
                                                     const Arguments& arguments) const = 0;

  // Logs `message` on `component` as dogpile::log does, naming the region first.
  void log(LogLevel level, std::string_view component, std::string_view message) const;
};

}  // namespace dogpile
