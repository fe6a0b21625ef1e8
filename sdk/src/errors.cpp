// Key functions of the exception types and of the SDK's abstract classes, so their type
// information lives once, in libdogpile, and is shared with every plugin.
#include "dogpile/sdk/errors.hpp"

#include "dogpile/sdk/mutex.hpp"

namespace dogpile {

Error::~Error() = default;
RegionAlreadyConfigured::~RegionAlreadyConfigured() = default;
RegionNotConfigured::~RegionNotConfigured() = default;
ValidationError::~ValidationError() = default;
ConfigError::~ConfigError() = default;
PluginNotFound::~PluginNotFound() = default;
PluginLoadError::~PluginLoadError() = default;
BackendUnavailable::~BackendUnavailable() = default;
CantDeserialize::~CantDeserialize() = default;
CantSerialize::~CantSerialize() = default;
ValueTypeError::~ValueTypeError() = default;

CacheMutex::~CacheMutex() = default;

}  // namespace dogpile
