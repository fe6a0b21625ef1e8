#include "dogpile/config.hpp"

#include <cerrno>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "dogpile/async_runner.hpp"
#include "dogpile/loader.hpp"
#include "dogpile/logging.hpp"
#include "dogpile/region.hpp"
#include "dogpile/sdk/errors.hpp"

namespace dogpile {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kSettingsPrefix = "dogpile.";

std::string_view trim(std::string_view text) {
  const char* ws = " \t\r\n\f\v";
  auto first = text.find_first_not_of(ws);
  if (first == std::string_view::npos) return {};
  auto last = text.find_last_not_of(ws);
  return text.substr(first, last - first + 1);
}

}  // namespace

namespace {

// How dogpile's coerce_string_conf reads a trimmed string: 1 when it matches `[-+]?\d+`,
// 2 when it matches `[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?`, else 0.
int number_kind(std::string_view s) {
  std::size_t i = 0;
  auto digits = [&] {
    const std::size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i - start;
  };
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  const std::size_t whole = digits();
  bool fraction = false;
  std::size_t decimals = 0;
  if (i < s.size() && s[i] == '.') {
    fraction = true;
    ++i;
    decimals = digits();
  }
  if (whole == 0 && decimals == 0) return 0;
  bool exponent = false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    exponent = true;
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (digits() == 0) return 0;
  }
  if (i != s.size()) return 0;
  return fraction || exponent ? 2 : 1;
}

}  // namespace

nlohmann::json coerce_string_value(std::string_view text) {
  const std::string value(trim(text));
  switch (number_kind(value)) {
    case 1: {
      errno = 0;
      long long parsed = std::strtoll(value.c_str(), nullptr, 10);
      if (errno != ERANGE) return parsed;
      return std::strtod(value.c_str(), nullptr);  // beyond 64 bits: keep the magnitude
    }
    case 2:
      return std::strtod(value.c_str(), nullptr);
    default:
      break;
  }
  std::string lower = value;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "true") return true;
  if (lower == "false") return false;
  if (value == "None") return nullptr;
  return value;
}

ConfigDict coerce_string_conf(const ConfigDict& config) {
  ConfigDict result;
  for (const auto& [key, value] : config) {
    result.emplace(key, value.is_string() ? coerce_string_value(value.get<std::string>()) : value);
  }
  return result;
}

std::optional<double> parse_expiration_time(const nlohmann::json& value) {
  if (value.is_null()) return std::nullopt;
  if (value.is_string()) {
    const auto& text = value.get_ref<const std::string&>();
    if (text == "none" || text == "never") return std::nullopt;
  }
  auto seconds = parse_duration_seconds(value);
  if (!seconds || !std::isfinite(*seconds) || (*seconds < 0 && *seconds != -1)) {
    throw ValidationError("expiration_time is not a number or timedelta.");
  }
  if (*seconds == -1) return std::nullopt;
  return seconds;
}

std::string ConfigFile::where(const ConfigSection& section, std::string_view key) const {
  auto it = section.lines.find(key);
  if (it == section.lines.end() || it->second == 0) return path.string();
  return path.string() + ":" + std::to_string(it->second);
}

// JSON ---------------------------------------------------------------------------------

namespace {

// Read in the file's order (ordered_json), so that `order` tells which region comes first.
void flatten(const nlohmann::ordered_json& node, const std::string& prefix, ConfigSection& out) {
  if (node.is_object() && (!node.empty() || prefix.empty())) {
    for (const auto& item : node.items()) {
      flatten(item.value(), prefix.empty() ? item.key() : prefix + "." + item.key(), out);
    }
  } else {
    if (out.values.count(prefix) == 0) out.order.push_back(prefix);
    out.values[prefix] = nlohmann::json(node);
  }
}

int line_of_offset(std::string_view text, std::size_t offset) {
  offset = std::min(offset, text.size());
  return 1 + static_cast<int>(std::count(text.begin(),
                                         text.begin() + static_cast<std::ptrdiff_t>(offset), '\n'));
}

}  // namespace

ConfigFile parse_json_config(std::string_view text, const fs::path& path) {
  nlohmann::ordered_json root;
  try {
    root = nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte is one past the offending character.
    throw ConfigError(path.string() + ":" +
                      std::to_string(line_of_offset(text, e.byte == 0 ? 0 : e.byte - 1)) +
                      ": malformed JSON: " + e.what());
  } catch (const nlohmann::json::exception& e) {
    // e.g. out_of_range 406, a number too large for a double (1e400).
    throw ConfigError(path.string() + ": malformed JSON: " + e.what());
  }
  if (!root.is_object()) {
    throw ConfigError(path.string() + ":1: a config file must hold a JSON object");
  }
  ConfigFile file;
  file.path = path;
  ConfigSection section;
  flatten(root, "", section);
  file.sections.push_back(std::move(section));
  return file;
}

// INI ----------------------------------------------------------------------------------

ConfigFile parse_ini_config(std::string_view text, const fs::path& path) {
  ConfigFile file;
  file.path = path;
  ConfigSection* section = nullptr;
  std::string last_key;  // for continuation lines
  std::istringstream in{std::string(text)};
  std::string raw;
  int line_number = 0;
  auto fail = [&](const std::string& why) -> void {
    throw ConfigError(path.string() + ":" + std::to_string(line_number) + ": " + why);
  };
  while (std::getline(in, raw)) {
    ++line_number;
    std::string_view line = raw;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::string_view content = trim(line);
    if (content.empty() || content.front() == '#' || content.front() == ';') continue;
    const bool indented = line.front() == ' ' || line.front() == '\t';
    if (indented && section != nullptr && !last_key.empty()) {
      // A continuation of the previous value, as Python's configparser.
      auto& value = section->values[last_key];
      value = value.get<std::string>() + "\n" + std::string(content);
      continue;
    }
    last_key.clear();
    if (content.front() == '[') {
      if (content.back() != ']' || content.size() < 3)
        fail("malformed section header " + std::string(content));
      std::string name(trim(content.substr(1, content.size() - 2)));
      for (const auto& existing : file.sections) {
        if (existing.name == name) fail("section [" + name + "] appears twice");
      }
      section = &file.sections.emplace_back();
      section->name = name;
      continue;
    }
    auto separator = content.find_first_of("=:");
    if (separator == std::string_view::npos || separator == 0) {
      fail("expected 'key = value', got: " + std::string(content));
    }
    if (section == nullptr) fail("key outside a section (add a [section] header above it)");
    std::string key(trim(content.substr(0, separator)));
    if (section->values.count(key) != 0) {
      fail("key " + key + " appears twice in section [" + section->name + "]");
    }
    section->order.push_back(key);
    section->values[key] = std::string(trim(content.substr(separator + 1)));
    section->lines[key] = line_number;
    last_key = key;
  }
  return file;
}

ConfigFile load_config_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path.string() + ": cannot open the config file");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  const std::string ext = path.extension().string();
  if (ext == ".json") return parse_json_config(buffer.str(), path);
  if (ext == ".ini" || ext == ".cfg" || ext == ".conf") return parse_ini_config(buffer.str(), path);
  throw ConfigError(path.string() + ": unknown config file type '" + ext +
                    "' (use .json, .ini, .cfg or .conf)");
}

// Regions ------------------------------------------------------------------------------

namespace {

// Every region in the file, wherever it is named.
std::vector<RegionSpec> all_regions(const ConfigFile& file) {
  std::vector<RegionSpec> regions;
  for (const auto& section : file.sections) {
    // The file's order; keys a program added to the section without it come last.
    std::vector<std::string> keys = section.order;
    for (const auto& [key, value] : section.values) {
      if (std::find(section.order.begin(), section.order.end(), key) == section.order.end()) {
        keys.push_back(key);
      }
    }
    for (const auto& key : keys) {
      if (key.starts_with(kSettingsPrefix)) continue;
      if (key == "backend") {
        if (section.name.empty()) continue;
        regions.push_back(RegionSpec{section.name, "", &section});
      } else if (key.ends_with(".backend")) {
        std::string prefix = key.substr(0, key.size() - std::string_view("backend").size());
        regions.push_back(RegionSpec{prefix.substr(0, prefix.size() - 1), prefix, &section});
      }
    }
  }
  return regions;
}

}  // namespace

std::vector<RegionSpec> find_regions(const ConfigFile& file, std::string_view region_prefix) {
  std::vector<RegionSpec> regions = all_regions(file);
  std::erase_if(regions,
                [&](const RegionSpec& spec) { return !spec.name.starts_with(region_prefix); });
  return regions;
}

namespace {

// Re-throws the current dogpile::Error as the same type with `context` appended.
[[noreturn]] void rethrow_with_context(const std::string& context) {
  try {
    throw;
  } catch (const RegionAlreadyConfigured& e) {
    throw RegionAlreadyConfigured(e.what() + context);
  } catch (const ValidationError& e) {
    throw ValidationError(e.what() + context);
  } catch (const ConfigError& e) {
    throw ConfigError(e.what() + context);
  } catch (const PluginNotFound& e) {
    throw PluginNotFound(e.what() + context);
  } catch (const PluginLoadError& e) {
    throw PluginLoadError(e.what() + context);
  } catch (const BackendUnavailable& e) {
    throw BackendUnavailable(e.what() + context);
  } catch (const Error& e) {
    throw Error(e.what() + context);
  }
}

// The line of the config key a message names (the longest one), else of `fallback`.
std::string where_named(const ConfigFile& file, const ConfigSection& section,
                        std::string_view message, const std::string& fallback) {
  std::string best = fallback;
  for (const auto& [key, line] : section.lines) {
    if (key.size() > best.size() && message.find(key) != std::string_view::npos) best = key;
  }
  return file.where(section, best);
}

void apply_settings(const ConfigFile& file) {
  for (const auto& section : file.sections) {
    const bool settings_section = section.name == "dogpile";
    for (const auto& [raw_key, value] : section.values) {
      std::string key = settings_section ? "dogpile." + raw_key : raw_key;
      if (!key.starts_with(kSettingsPrefix)) continue;
      const std::string name = key.substr(kSettingsPrefix.size());
      const std::string where = " (" + file.where(section, raw_key) + ")";
      if (name == "log_level") {
        auto level = value.is_string() ? parse_log_level(value.get<std::string>()) : std::nullopt;
        if (!level) {
          throw ValidationError(key +
                                " must be one of trace, debug, info, warning, error, off, not " +
                                shown_value(key, value) + where);
        }
        if (!environment_log_level()) set_log_level(*level);
      } else if (name == "plugin_path") {
        std::vector<std::string> dirs;
        if (value.is_array()) {
          for (const auto& item : value) {
            if (!item.is_string()) {
              throw ValidationError(key + " must list directories, not " + shown_value(key, item) +
                                    where);
            }
            dirs.push_back(item.get<std::string>());
          }
        } else if (value.is_string()) {
          std::string_view rest = value.get_ref<const std::string&>();
          while (!rest.empty()) {
            auto colon = rest.find(':');
            if (colon != 0) dirs.emplace_back(trim(rest.substr(0, colon)));
            if (colon == std::string_view::npos) break;
            rest.remove_prefix(colon + 1);
          }
        } else {
          throw ValidationError(key + " must be a list of directories" + where);
        }
        for (const auto& dir : dirs) {
          if (dir.empty()) {
            throw ValidationError(key + " holds an empty directory name" + where);
          }
          fs::path p(dir);
          // Relative directories are relative to the config file, as a user reading it expects.
          if (p.is_relative()) p = file.path.parent_path() / p;
          PluginLoader::instance().add_search_path(p);
        }
      } else {
        throw ValidationError("unknown setting " + key + " (settings are log_level, plugin_path)" +
                              where);
      }
    }
  }
}

}  // namespace

std::map<std::string, std::shared_ptr<CacheRegion>> configure_regions(
    const ConfigFile& file, std::string_view region_prefix) {
  apply_settings(file);
  std::map<std::string, std::shared_ptr<CacheRegion>> regions;
  for (const auto& spec : find_regions(file, region_prefix)) {
    if (regions.count(spec.name) != 0) {
      throw ConfigError("region " + spec.name + " is configured twice (" +
                        file.where(*spec.section, spec.prefix + "backend") + ")");
    }
    auto region = make_region(spec.name);
    try {
      region->configure_from_config(spec.section->values, spec.prefix);
    } catch (const Error& e) {
      rethrow_with_context(" (region " + spec.name + " in " +
                           where_named(file, *spec.section, e.what(), spec.prefix + "backend") +
                           ")");
    }
    regions.emplace(spec.name, std::move(region));
  }
  if (regions.empty()) {
    std::string ignored;
    for (const auto& spec : all_regions(file)) ignored += " " + spec.prefix + "backend";
    throw ConfigError(
        file.path.string() + ": no region found under '" + std::string(region_prefix) +
        "' (a region needs a key such as " + std::string(region_prefix) + "local.backend" +
        (ignored.empty() ? std::string() : "; keys ignored, not under that prefix:" + ignored) +
        ")");
  }
  return regions;
}

std::map<std::string, std::shared_ptr<CacheRegion>> load_regions(const fs::path& path,
                                                                 std::string_view region_prefix) {
  return configure_regions(load_config_file(path), region_prefix);
}

// A region's config keys ------------------------------------------------------------------

namespace {

// What a region's config keys set: configure()'s options, and what only a config file gives a
// region (a key mangler by name, a thread pool of its own).
struct RegionConfig {
  ConfigureOptions options;
  detail::RegionSettings settings;
  bool thread_pool = false;  // async_creation_runner = thread_pool
  std::size_t pool_threads = 2;
  std::size_t pool_queue = 1024;
};

// One config key of a region (after its prefix): how its value is read, and what it does.
struct RegionKey {
  std::string_view name;
  void (*read)(const Arguments& keys, std::string_view name, RegionConfig& into);
  std::string_view help;
};

template <class>
struct MemberOf;
template <class Owner, class T>
struct MemberOf<T Owner::*> {
  using type = Owner;
};

// The field `Field` points to, in ConfigureOptions, its ResilienceOptions, or RegionConfig.
template <auto Field>
auto& field(RegionConfig& config) {
  using Owner = typename MemberOf<decltype(Field)>::type;
  if constexpr (std::is_same_v<Owner, ResilienceOptions>) {
    return config.options.resilience.*Field;
  } else if constexpr (std::is_same_v<Owner, ConfigureOptions>) {
    return config.options.*Field;
  } else {
    return config.*Field;
  }
}

template <auto Field>
void flag(const Arguments& keys, std::string_view name, RegionConfig& into) {
  if (auto value = keys.find<bool>(name)) field<Field>(into) = *value;
}

// Seconds or a duration ("90s"); validated() checks the range when the region is configured.
template <auto Field>
void seconds(const Arguments& keys, std::string_view name, RegionConfig& into) {
  const nlohmann::json* value = keys.find_json(name);
  if (value == nullptr) return;
  auto parsed = parse_duration_seconds(*value);
  if (!parsed) {
    throw ValidationError(keys.key(name) + " must be a number of seconds or a duration, not " +
                          shown_value(keys.key(name), *value));
  }
  field<Field>(into) = *parsed;
}

template <auto Field>
void number(const Arguments& keys, std::string_view name, RegionConfig& into) {
  if (auto value = keys.find<double>(name)) field<Field>(into) = *value;
}

template <auto Field, std::size_t Most>
void count(const Arguments& keys, std::string_view name, RegionConfig& into) {
  if (auto value = keys.find_count(name, 1, Most)) field<Field>(into) = *value;
}

void expiration_time(const Arguments& keys, std::string_view name, RegionConfig& into) {
  if (const nlohmann::json* value = keys.find_json(name)) {
    into.options.expiration_time = parse_expiration_time(*value);
  }
}

// A list, or names separated by commas, spaces or newlines (an INI value).
void wrap(const Arguments& keys, std::string_view name, RegionConfig& into) {
  for (const auto& item : keys.get(name, std::vector<std::string>())) {
    std::size_t pos = 0;
    while ((pos = item.find_first_not_of(" \t\n", pos)) != std::string::npos) {
      const auto end = item.find_first_of(" \t\n", pos);
      into.options.wrap.emplace_back(item.substr(pos, end - pos));
      pos = end;
    }
  }
}

void key_mangler(const Arguments& keys, std::string_view name, RegionConfig& into) {
  const nlohmann::json* value = keys.find_json(name);
  if (value == nullptr) return;
  if (!value->is_string()) {
    throw ValidationError(keys.key(name) + " must be sha1 or sha1:LENGTH, not " +
                          shown_value(keys.key(name), *value));
  }
  into.settings.key_mangler = key_mangler_from_config(value->get<std::string>(), keys.key(name));
}

void async_creation_runner(const Arguments& keys, std::string_view name, RegionConfig& into) {
  const nlohmann::json* value = keys.find_json(name);
  if (value == nullptr) return;
  if (*value != "thread_pool") {
    throw ValidationError(keys.key(name) +
                          " must be thread_pool (the ready-made background runner), not " +
                          shown_value(keys.key(name), *value));
  }
  into.thread_pool = true;
}

void backend_errors(const Arguments& keys, std::string_view name, RegionConfig& into) {
  const nlohmann::json* value = keys.find_json(name);
  if (value == nullptr) return;
  if (*value != "raise" && *value != "miss") {
    throw ValidationError(keys.key(name) + " must be raise or miss, not " +
                          shown_value(keys.key(name), *value));
  }
  into.options.resilience.backend_errors =
      *value == "miss" ? BackendErrors::miss : BackendErrors::raise;
}

// Every key a region takes besides backend, arguments.<name> and wrap_arguments.<proxy>.<name>;
// a new region option is a row here, its field, and a line in the README.
constexpr RegionKey kRegionKeys[] = {
    {"expiration_time", expiration_time, "seconds after which a value expires; -1: never"},
    {"wrap", wrap, "proxy plugins around the backend, the first outermost"},
    {"replace_existing_backend", flag<&ConfigureOptions::replace_existing_backend>,
     "true to configure a region that already is"},
    {"key_mangler", key_mangler, "sha1 or sha1:LENGTH: keys as the backend sees them"},
    {"raise_on_undecodable", flag<&ConfigureOptions::raise_on_undecodable>,
     "bytes that are no value raise instead of missing"},
    {"shared_invalidation", flag<&ConfigureOptions::shared_invalidation>,
     "invalidate() reaches every process of the region"},
    {"async_creation_runner", async_creation_runner,
     "thread_pool: stale values are regenerated in the background"},
    {"async_creation_runner_threads",
     count<&RegionConfig::pool_threads, ThreadPoolRunner::kMostThreads>,
     "the thread pool's threads (2)"},
    {"async_creation_runner_queue", count<&RegionConfig::pool_queue, ThreadPoolRunner::kMostQueued>,
     "regenerations that may wait for a thread (1024)"},
    {"backend_errors", backend_errors, "raise, or miss: a failing backend is a cache miss"},
    {"backend_retry_interval", seconds<&ResilienceOptions::backend_retry_interval>,
     "under miss, how long a failed backend is left alone"},
    {"backend_error_log_interval", seconds<&ResilienceOptions::backend_error_log_interval>,
     "under miss, at most one warning per this interval"},
    {"fail_safe", flag<&ResilienceOptions::fail_safe>,
     "a failing creator gives the stale value instead"},
    {"fail_safe_max_age", seconds<&ResilienceOptions::fail_safe_max_age>,
     "the oldest value fail-safe gives"},
    {"fail_safe_throttle", seconds<&ResilienceOptions::fail_safe_throttle>,
     "how long fail-safe keeps the stale value"},
    {"soft_timeout", seconds<&ResilienceOptions::soft_timeout>,
     "a slower creator finishes in the background while the stale value is served"},
    {"hard_timeout", seconds<&ResilienceOptions::hard_timeout>,
     "no caller waits longer for a value"},
    {"eager_refresh", number<&ResilienceOptions::eager_refresh>,
     "fraction of the expiration time after which a hit refreshes the value"},
    {"expiration_jitter", number<&ResilienceOptions::expiration_jitter>,
     "fraction by which each value's expiration time is spread"},
    {"serve_stale", flag<&ResilienceOptions::serve_stale>,
     "false: callers wait for a new value instead of getting the stale one"},
};

// The error for `key` (under `prefix`), which no region takes: the closest key it may mean, and
// what a region takes.
[[noreturn]] void unknown_key(const std::string& prefix, const std::string& key) {
  const std::string_view name = std::string_view(key).substr(prefix.size());
  std::string takes = "backend, arguments.<name>, wrap_arguments.<proxy>.<name>";
  std::vector<std::string_view> names;
  for (const auto& row : kRegionKeys) {
    takes += ", " + std::string(row.name);
    names.push_back(row.name);
  }
  std::string meant;
  if (const auto closest = closest_name(name, names)) {
    for (const auto& row : kRegionKeys) {
      if (row.name == *closest) {
        meant = " (did you mean " + prefix + std::string(row.name) + ": " + std::string(row.help) +
                "?)";
      }
    }
  }
  throw ValidationError("unknown config key " + key + meant + "; a region takes " + takes);
}

}  // namespace

// CacheRegion::configure_from_config: the region's keys of a flat dictionary, read through
// kRegionKeys into ConfigureOptions and the settings a file may give the region.
CacheRegion& CacheRegion::configure_from_config(const ConfigDict& config, std::string_view prefix) {
  const std::string p(prefix);
  const std::string arguments_prefix = p + "arguments.";
  const std::string wrap_arguments_prefix = p + "wrap_arguments.";
  ConfigDict coerced = coerce_string_conf(config);

  auto backend = coerced.find(p + "backend");
  if (backend == coerced.end()) throw ConfigError("missing required key " + p + "backend");
  if (!backend->second.is_string()) {
    throw ValidationError(p + "backend must be the name of a backend plugin, not " +
                          shown_value(p + "backend", backend->second));
  }

  RegionConfig region;
  region.options.config_prefix = p;
  nlohmann::json own = nlohmann::json::object();  // the keys kRegionKeys reads
  std::vector<std::pair<std::string, const nlohmann::json*>> wrap_arguments;
  for (const auto& [key, value] : coerced) {
    if (key.compare(0, p.size(), p) != 0 || key == p + "backend") continue;
    if (key.starts_with(arguments_prefix) && key.size() > arguments_prefix.size()) {
      region.options.arguments[key.substr(arguments_prefix.size())] = value;
    } else if (key.starts_with(wrap_arguments_prefix)) {
      wrap_arguments.emplace_back(key, &value);
    } else {
      own[key.substr(p.size())] = value;
    }
  }
  for (const auto& item : own.items()) {
    const bool known = std::any_of(std::begin(kRegionKeys), std::end(kRegionKeys),
                                   [&](const RegionKey& row) { return row.name == item.key(); });
    if (!known) unknown_key(p, p + item.key());
  }
  const Arguments keys(std::move(own), p);
  for (const auto& row : kRegionKeys) row.read(keys, row.name, region);

  // <prefix>wrap_arguments.<proxy name>.<argument>: the longest proxy name in wrap that fits.
  for (const auto& [key, value] : wrap_arguments) {
    const std::string_view rest = std::string_view(key).substr(wrap_arguments_prefix.size());
    ProxySpec* target = nullptr;
    for (auto& wrapper : region.options.wrap) {
      auto& spec = std::get<ProxySpec>(wrapper);
      if (rest.size() > spec.name.size() + 1 && rest.starts_with(spec.name) &&
          rest[spec.name.size()] == '.' && (!target || spec.name.size() > target->name.size())) {
        target = &spec;
      }
    }
    if (!target) {
      throw ValidationError(key + " names no proxy of " + p + "wrap");
    }
    const std::string argument(rest.substr(target->name.size() + 1));
    for (auto& wrapper : region.options.wrap) {
      auto& spec = std::get<ProxySpec>(wrapper);
      if (spec.name == target->name) spec.arguments[argument] = *value;
    }
  }
  for (const char* pool_key : {"async_creation_runner_threads", "async_creation_runner_queue"}) {
    if (!region.thread_pool && keys.contains(pool_key)) {
      throw ValidationError(p + pool_key + " is set but " + p +
                            "async_creation_runner is not thread_pool");
    }
  }
  if (region.thread_pool) {
    region.settings.async_creation_runner =
        ThreadPoolRunner::owning_runner(region.pool_threads, region.pool_queue);
  }
  return configure_with(backend->second.get<std::string>(), std::move(region.options),
                        region.settings);
}

}  // namespace dogpile
