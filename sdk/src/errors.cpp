// Key functions of the exception types and of the SDK's abstract classes, so their type
// information lives once, in libdogpile, and is shared with every plugin; and the SDK's small
// out-of-line helpers.
#include "dogpile/sdk/errors.hpp"

#include "dogpile/sdk/mutex.hpp"
#include "dogpile/sdk/stats.hpp"

namespace dogpile {

Error::~Error() = default;
RegionAlreadyConfigured::~RegionAlreadyConfigured() = default;
RegionNotConfigured::~RegionNotConfigured() = default;
ValidationError::~ValidationError() = default;
ConfigError::~ConfigError() = default;
PluginNotFound::~PluginNotFound() = default;
PluginLoadError::~PluginLoadError() = default;
BackendUnavailable::~BackendUnavailable() = default;
ServerError::~ServerError() = default;
TimeoutError::~TimeoutError() = default;
CantDeserialize::~CantDeserialize() = default;
CantSerialize::~CantSerialize() = default;
ValueTypeError::~ValueTypeError() = default;

CacheMutex::~CacheMutex() = default;
bool CacheMutex::acquire_until(Deadline deadline, const std::function<bool()>& arrived) {
  if (deadline == Deadline::max()) return acquire(true);
  LockPolling polling;
  polling.deadline = deadline;
  polling.arrived = &arrived;
  return poll_lock([this] { return acquire(false); }, polling);
}
StatsProvider::~StatsProvider() = default;
EvictionCounter::~EvictionCounter() = default;

const char* operation_name(CacheOperation operation) noexcept {
  switch (operation) {
    case CacheOperation::get:
      return "get";
    case CacheOperation::get_multi:
      return "get_multi";
    case CacheOperation::set:
      return "set";
    case CacheOperation::set_multi:
      return "set_multi";
    case CacheOperation::remove:
      return "remove";
    case CacheOperation::remove_multi:
      return "remove_multi";
    case CacheOperation::get_mutex:
      return "get_mutex";
  }
  return "unknown";
}

}  // namespace dogpile
