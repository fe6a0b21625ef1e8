// What the `dogpile` tool's commands share: the parsed command line, the config and region it
// names, and the errors that end a command with an exit status.
#pragma once

#include <dogpile/dogpile.hpp>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace tool {

// Exit statuses, as the usage text documents them.
inline constexpr int kOk = 0;
inline constexpr int kFailed = 1;
inline constexpr int kUsage = 2;
inline constexpr int kNotFound = 3;

// A bad command line: exit 2, the message and the command's usage on stderr.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Invocation {
  std::string command;
  std::vector<std::string> operands;           // after the command
  std::map<std::string, std::string> options;  // "--ttl" -> "5"; a flag -> ""

  bool has(const std::string& option) const { return options.count(option) != 0; }
  std::optional<std::string> value(const std::string& option) const;
  // The option's value as a number in [low, high], or `fallback` when it is not given.
  double number(const std::string& option, double fallback, double low, double high) const;
};

// The config file (--config, or the embedded configs/demo.json) and its regions.
struct Regions {
  std::string source;              // the file, or "<embedded configs/demo.json>"
  std::vector<std::string> order;  // region names in the file's order
  std::map<std::string, std::shared_ptr<dogpile::CacheRegion>> by_name;

  // --region's, else the first in the file whose backend stores values.
  dogpile::CacheRegion& pick(const std::optional<std::string>& name) const;
  // --region's alone, else all of them in the file's order.
  std::vector<dogpile::CacheRegion*> selected(const std::optional<std::string>& name) const;
};
Regions load(const std::optional<std::string>& config_path);

// A key of the tool's own: "<what>:<pid>:<suffix>", so that a run against a production cache
// touches nothing else.
std::string scratch_key(const std::string& what, const std::string& suffix);

// Removes `keys` from `region` when it goes, in batches; a failure is said on stderr.
struct RemoveOnExit {
  dogpile::CacheRegion& region;
  std::string what;  // "the demo's keys", for the message
  dogpile::Keys keys;
  ~RemoveOnExit();
};

int bench(const Invocation& invocation);
int stats(const Invocation& invocation);

}  // namespace tool
