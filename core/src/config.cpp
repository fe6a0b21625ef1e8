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

// CacheRegion::configure_from_config: the region's keys of a flat dictionary, read into
// ConfigureOptions and the settings a file may give the region.
CacheRegion& CacheRegion::configure_from_config(const ConfigDict& config, std::string_view prefix) {
  const std::string p(prefix);
  const std::string arguments_prefix = p + "arguments.";
  ConfigDict coerced = coerce_string_conf(config);

  auto backend = coerced.find(p + "backend");
  if (backend == coerced.end()) throw ConfigError("missing required key " + p + "backend");
  if (!backend->second.is_string()) {
    throw ValidationError(p + "backend must be the name of a backend plugin, not " +
                          shown_value(p + "backend", backend->second));
  }

  const std::string wrap_arguments_prefix = p + "wrap_arguments.";
  ConfigureOptions options;
  options.config_prefix = p;
  detail::RegionSettings settings;
  std::size_t pool_threads = 0;  // async_creation_runner = thread_pool
  std::size_t pool_queue = 1024;
  std::vector<std::pair<std::string, const nlohmann::json*>> wrap_arguments;
  for (const auto& [key, value] : coerced) {
    if (key.compare(0, p.size(), p) != 0) continue;
    const std::string_view name = std::string_view(key).substr(p.size());
    if (name == "backend") {
      continue;
    } else if (name == "expiration_time") {
      options.expiration_time = parse_expiration_time(value);
    } else if (key.compare(0, arguments_prefix.size(), arguments_prefix) == 0 &&
               key.size() > arguments_prefix.size()) {
      options.arguments[key.substr(arguments_prefix.size())] = value;
    } else if (key.compare(0, wrap_arguments_prefix.size(), wrap_arguments_prefix) == 0) {
      wrap_arguments.emplace_back(key, &value);
    } else if (name == "wrap") {
      if (value.is_string()) {
        std::string names = value.get<std::string>();
        for (char& c : names) {
          if (c == ',') c = ' ';
        }
        std::size_t pos = 0;
        while ((pos = names.find_first_not_of(" \t\n", pos)) != std::string::npos) {
          auto end = names.find_first_of(" \t\n", pos);
          options.wrap.emplace_back(names.substr(pos, end - pos));
          pos = end;
        }
      } else if (value.is_array()) {
        for (const auto& item : value) {
          if (!item.is_string()) {
            throw ValidationError(key + " must list proxy plugin names, not " +
                                  shown_value(key, item));
          }
          options.wrap.emplace_back(item.get<std::string>());
        }
      } else if (!value.is_null()) {
        throw ValidationError(key + " must be a list of proxy plugin names, not " +
                              shown_value(key, value));
      }
    } else if (name == "async_creation_runner") {
      if (value.is_null()) continue;
      if (value != "thread_pool") {
        throw ValidationError(key +
                              " must be thread_pool (the ready-made background runner), "
                              "not " +
                              shown_value(key, value));
      }
      if (pool_threads == 0) pool_threads = 2;
    } else if (name == "async_creation_runner_threads" || name == "async_creation_runner_queue") {
      if (!value.is_number_integer() || value.get<long long>() <= 0) {
        throw ValidationError(key + " must be a positive integer, not " + shown_value(key, value));
      }
      (name == "async_creation_runner_threads" ? pool_threads : pool_queue) =
          value.get<std::size_t>();
    } else if (name == "key_mangler") {
      if (!value.is_string())
        throw ValidationError(key + " must be sha1 or sha1:LENGTH, not " + shown_value(key, value));
      settings.key_mangler = key_mangler_from_config(value.get<std::string>(), key);
    } else if (name == "replace_existing_backend" || name == "raise_on_undecodable" ||
               name == "shared_invalidation") {
      if (!value.is_boolean())
        throw ValidationError(key + " must be true or false, not " + shown_value(key, value));
      (name == "raise_on_undecodable"  ? options.raise_on_undecodable
       : name == "shared_invalidation" ? options.shared_invalidation
                                       : options.replace_existing_backend) = value.get<bool>();
    } else if (name == "backend_errors") {
      if (value != "raise" && value != "miss") {
        throw ValidationError(key + " must be raise or miss, not " + shown_value(key, value));
      }
      options.resilience.backend_errors =
          value == "miss" ? BackendErrors::miss : BackendErrors::raise;
    } else if (name == "fail_safe" || name == "serve_stale") {
      if (!value.is_boolean())
        throw ValidationError(key + " must be true or false, not " + shown_value(key, value));
      (name == "fail_safe" ? options.resilience.fail_safe : options.resilience.serve_stale) =
          value.get<bool>();
    } else if (auto* seconds =
                   name == "backend_retry_interval" ? &options.resilience.backend_retry_interval
                   : name == "backend_error_log_interval"
                       ? &options.resilience.backend_error_log_interval
                   : name == "fail_safe_max_age"  ? &options.resilience.fail_safe_max_age
                   : name == "fail_safe_throttle" ? &options.resilience.fail_safe_throttle
                   : name == "soft_timeout"       ? &options.resilience.soft_timeout
                   : name == "hard_timeout"       ? &options.resilience.hard_timeout
                                                  : nullptr) {
      auto parsed = value.is_null() ? std::nullopt : parse_duration_seconds(value);
      if (!parsed) {
        throw ValidationError(key + " must be a number of seconds or a duration, not " +
                              shown_value(key, value));
      }
      *seconds = *parsed;
    } else if (name == "eager_refresh" || name == "expiration_jitter") {
      if (!value.is_number()) {
        throw ValidationError(key + " must be a number, not " + shown_value(key, value));
      }
      (name == "eager_refresh" ? options.resilience.eager_refresh
                               : options.resilience.expiration_jitter) = value.get<double>();
    } else {
      throw ValidationError(
          "unknown config key " + key +
          " (a region takes backend, expiration_time, arguments.<name>, wrap, "
          "wrap_arguments.<proxy>.<name>, "
          "replace_existing_backend, key_mangler, raise_on_undecodable, async_creation_runner, "
          "async_creation_runner_threads, async_creation_runner_queue, backend_errors, "
          "backend_retry_interval, backend_error_log_interval, fail_safe, fail_safe_max_age, "
          "fail_safe_throttle, soft_timeout, hard_timeout, eager_refresh, expiration_jitter, "
          "serve_stale, shared_invalidation)");
    }
  }
  // <prefix>wrap_arguments.<proxy name>.<argument>: the longest proxy name in wrap that fits.
  for (const auto& [key, value] : wrap_arguments) {
    const std::string_view rest = std::string_view(key).substr(wrap_arguments_prefix.size());
    ProxySpec* target = nullptr;
    for (auto& wrapper : options.wrap) {
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
    for (auto& wrapper : options.wrap) {
      auto& spec = std::get<ProxySpec>(wrapper);
      if (spec.name == target->name) spec.arguments[argument] = *value;
    }
  }
  if (pool_threads > 0 && coerced.count(p + "async_creation_runner") == 0) {
    throw ValidationError(p + "async_creation_runner_threads is set but " + p +
                          "async_creation_runner is not thread_pool");
  }
  if (pool_threads > 0) {
    settings.async_creation_runner = ThreadPoolRunner::owning_runner(pool_threads, pool_queue);
  }
  return configure_with(backend->second.get<std::string>(), std::move(options), settings);
}

}  // namespace dogpile
