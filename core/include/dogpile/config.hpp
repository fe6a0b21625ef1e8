// Configuration as dogpile.cache reads it: a flat dictionary of dotted keys
// (`cache.local.backend`, `cache.local.arguments.port`), string values coerced by
// coerce_string_conf, and loaders that turn JSON and INI files into such dictionaries.
//
// JSON files: nested objects are flattened with "." ({"cache": {"local": {"backend": …}}}
// gives `cache.local.backend`); arrays are kept as values.
// INI files: Pyramid style (`cache.local.backend = …` inside any section, e.g. [app:main]),
// or a section per region ([cache.local] with `backend = …`).
// Either way the region is named by its dotted prefix ("cache.local"). Settings of the library
// itself live under "dogpile." (JSON {"dogpile": {...}}, INI [dogpile]): `log_level` and
// `plugin_path` (a list, or directories separated by ':').
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dogpile/region.hpp"
#include "dogpile/sdk/export.hpp"

namespace dogpile {

// dogpile.cache's coerce_string_conf for one value: after trimming, `[-+]?\d+` is an integer,
// a decimal or exponent number (`1.5`, `.5`, `5.`, `1e5`) a float, `true`/`false` in any case a
// boolean, exactly `None` null; anything else the trimmed string.
DOGPILE_API nlohmann::json coerce_string_value(std::string_view text);
// Applies coerce_string_value to every string value.
DOGPILE_API ConfigDict coerce_string_conf(const ConfigDict& config);

// An expiration time from config: a number of seconds, null or -1 (never: nullopt), or a
// duration string ("90s", "5m", "2h", "1d"). Anything else throws ValidationError
// "expiration_time is not a number or timedelta."
DOGPILE_API std::optional<double> parse_expiration_time(const nlohmann::json& value);

// One section of a file: its flat keys and the line each came from (0 when unknown).
struct ConfigSection {
  std::string name;  // "" for a JSON file
  ConfigDict values;
  std::map<std::string, int, std::less<>> lines;
  std::vector<std::string> order;  // the keys of `values` in the order the file gives them
};

struct DOGPILE_API ConfigFile {
  std::filesystem::path path;
  std::vector<ConfigSection> sections;

  // "file:line" of `key` in `section`, or just "file" when the line is unknown.
  std::string where(const ConfigSection& section, std::string_view key) const;
};

// Reads a file by its extension: .json, or .ini / .cfg / .conf. Throws ConfigError naming
// the file and line of a syntax error, or the file when it cannot be read.
DOGPILE_API ConfigFile load_config_file(const std::filesystem::path& path);
DOGPILE_API ConfigFile parse_json_config(std::string_view text, const std::filesystem::path& path);
DOGPILE_API ConfigFile parse_ini_config(std::string_view text, const std::filesystem::path& path);

// Where one region's keys are: the section, and the prefix of its keys in it.
struct RegionSpec {
  std::string name;    // e.g. "cache.local"
  std::string prefix;  // e.g. "cache.local." (or "" in a section per region)
  const ConfigSection* section = nullptr;
};

// Where regions are looked for by default: `cache.<name>.backend` (JSON {"cache": {...}}, INI
// `cache.local.backend = …` or a section [cache.local]), so that other `*.backend` keys of an
// application's file (`celery.result.backend`) are not taken for regions.
inline constexpr std::string_view kDefaultRegionPrefix = "cache.";

// Every region in the file whose name starts with `region_prefix` ("" for every
// `<name>.backend` key outside "dogpile."), in the file's order.
DOGPILE_API std::vector<RegionSpec> find_regions(
    const ConfigFile& file, std::string_view region_prefix = kDefaultRegionPrefix);

// Applies the file's "dogpile." settings, then makes and configures every region found under
// `region_prefix`. Errors name the file (and line, for INI) of the key at fault; a file with no
// region there is a ConfigError naming the prefix and the `*.backend` keys it ignored.
DOGPILE_API std::map<std::string, std::shared_ptr<CacheRegion>> configure_regions(
    const ConfigFile& file, std::string_view region_prefix = kDefaultRegionPrefix);
DOGPILE_API std::map<std::string, std::shared_ptr<CacheRegion>> load_regions(
    const std::filesystem::path& path, std::string_view region_prefix = kDefaultRegionPrefix);

}  // namespace dogpile
