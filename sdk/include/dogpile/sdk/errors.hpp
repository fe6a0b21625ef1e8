// The one exception hierarchy of dogpile-cpp, rooted at dogpile::Error.
//
// Names follow Python dogpile.cache (RegionAlreadyConfigured, RegionNotConfigured,
// ValidationError, PluginNotFound) plus the failures a native plugin framework adds.
// These are the only exception types that may cross the plugin boundary: each has its key
// function in libdogpile, so a plugin's throw is caught by type in the application.
#pragma once

#include <stdexcept>
#include <string>

#include "dogpile/sdk/export.hpp"

namespace dogpile {

class DOGPILE_API Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  ~Error() override;
};

// configure() on a region that already has a backend, without replace_existing_backend.
class DOGPILE_API RegionAlreadyConfigured : public Error {
 public:
  using Error::Error;
  ~RegionAlreadyConfigured() override;
};

// A cache operation on a region that has no backend yet.
class DOGPILE_API RegionNotConfigured : public Error {
 public:
  using Error::Error;
  ~RegionNotConfigured() override;
};

// A value given to the library is not acceptable: an argument of the wrong type, an unknown
// argument name, an expiration time that is not a duration.
class DOGPILE_API ValidationError : public Error {
 public:
  using Error::Error;
  ~ValidationError() override;
};

// A configuration file or dictionary is malformed or lacks a required key.
class DOGPILE_API ConfigError : public Error {
 public:
  using Error::Error;
  ~ConfigError() override;
};

// No plugin on the search path provides the requested entry point.
class DOGPILE_API PluginNotFound : public Error {
 public:
  using Error::Error;
  ~PluginNotFound() override;
};

// A plugin library exists but cannot be used: dlopen failed, the symbol is missing, or it
// was built for another SDK ABI version or toolchain.
class DOGPILE_API PluginLoadError : public Error {
 public:
  using Error::Error;
  ~PluginLoadError() override;
};

// The backend's server cannot be reached; the message names host:port, never credentials.
class DOGPILE_API BackendUnavailable : public Error {
 public:
  using Error::Error;
  ~BackendUnavailable() override;
};

// The backend's server answered with an error (a Redis error reply, a memcached refusal): it
// is reachable but would not do what was asked. The message names host:port and the server's
// reason, never credentials.
class DOGPILE_API ServerError : public Error {
 public:
  using Error::Error;
  ~ServerError() override;
};

// A value's creator ran longer than the region's hard_timeout and no stale value could be
// given instead; the creator goes on in the background and stores its value when done.
class DOGPILE_API TimeoutError : public Error {
 public:
  using Error::Error;
  ~TimeoutError() override;
};

// Bytes read from a backend are not a value this library (or dogpile.cache) wrote, or do
// not decode as the requested type.
class DOGPILE_API CantDeserialize : public Error {
 public:
  using Error::Error;
  ~CantDeserialize() override;
};

// A value cannot be stored where it was asked to go, e.g. a type without a codec given to
// a backend that stores bytes.
class DOGPILE_API CantSerialize : public Error {
 public:
  using Error::Error;
  ~CantSerialize() override;
};

// A cached object was read as a type other than the one it was stored as.
class DOGPILE_API ValueTypeError : public Error {
 public:
  using Error::Error;
  ~ValueTypeError() override;
};

}  // namespace dogpile
