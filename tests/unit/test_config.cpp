// Configuration: coerce_string_conf, expiration times, JSON and INI files, and configuring
// regions from them, with errors that name the key, file and line.
#define BOOST_TEST_MODULE config
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cstdio>
#include <dogpile/dogpile.hpp>
#include <iostream>
#include <optional>

#include "helpers.hpp"
#include "log_capture.hpp"

namespace fs = std::filesystem;
using dogpile::ConfigDict;
using nlohmann::json;

using test::message_contains;
using test::TempFile;

BOOST_AUTO_TEST_SUITE(coerce_string_conf)

BOOST_AUTO_TEST_CASE(strings_are_coerced_as_dogpile_does) {
  struct Case {
    const char* text;
    json expected;
  };
  const Case cases[] = {
      {"1", 1},           {"-5", -5},
      {"+3", 3},          {"  42  ", 42},
      {"007", 7},         {"1.5", 1.5},
      {".5", 0.5},        {"5.", 5.0},
      {"1e5", 1e5},       {"-1.5e-3", -1.5e-3},
      {"+2E2", 200.0},    {"true", true},
      {"FALSE", false},   {"True", true},
      {"None", nullptr},  {"none", "none"},
      {"NONE", "NONE"},   {"abc", "abc"},
      {"1.2.3", "1.2.3"}, {"0x10", "0x10"},
      {"", ""},           {"  padded  ", "padded"},
      {"e5", "e5"},       {"1e", "1e"},
      {"5m", "5m"},       {"-", "-"},
  };
  for (const auto& c : cases) {
    const json got = dogpile::coerce_string_value(c.text);
    BOOST_TEST_INFO("input: '" << c.text << "'");
    BOOST_TEST(got == c.expected);
    BOOST_TEST((got.type() == c.expected.type()));
  }
}

BOOST_AUTO_TEST_CASE(only_strings_are_coerced) {
  ConfigDict dict{{"a", "10"}, {"b", 10}, {"c", json::array({"1"})}, {"d", true}};
  auto out = dogpile::coerce_string_conf(dict);
  BOOST_TEST(out["a"] == 10);
  BOOST_TEST(out["b"] == 10);
  BOOST_TEST(out["c"][0] == "1");
  BOOST_TEST(out["d"] == true);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(expiration_time)

BOOST_AUTO_TEST_CASE(numbers_durations_and_never_are_accepted) {
  BOOST_TEST(*dogpile::parse_expiration_time(300) == 300.0);
  BOOST_TEST(*dogpile::parse_expiration_time(1.5) == 1.5);
  BOOST_TEST(*dogpile::parse_expiration_time("90s") == 90.0);
  BOOST_TEST(*dogpile::parse_expiration_time("5m") == 300.0);
  BOOST_TEST(*dogpile::parse_expiration_time("2h") == 7200.0);
  BOOST_TEST(*dogpile::parse_expiration_time("1d") == 86400.0);
  BOOST_TEST(*dogpile::parse_expiration_time(0) == 0.0);
  BOOST_TEST(!dogpile::parse_expiration_time(-1).has_value());
  BOOST_TEST(!dogpile::parse_expiration_time(nullptr).has_value());
  BOOST_TEST(!dogpile::parse_expiration_time("none").has_value());
}

BOOST_AUTO_TEST_CASE(anything_else_is_a_validation_error_with_dogpiles_text) {
  for (const json& bad : {json("soon"), json("5 minutes"), json(-5), json(true), json::array()}) {
    try {
      dogpile::parse_expiration_time(bad);
      BOOST_FAIL("expected ValidationError for " << bad.dump());
    } catch (const dogpile::ValidationError& e) {
      BOOST_TEST(std::string(e.what()) == "expiration_time is not a number or timedelta.");
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(files)

BOOST_AUTO_TEST_CASE(json_objects_are_flattened_with_dots) {
  auto file = dogpile::parse_json_config(
      R"({"cache": {"local": {"backend": "dogpile.cache.memory", "arguments": {"shards": 4},
          "wrap": ["a", "b"]}}})",
      "x.json");
  const auto& values = file.sections.at(0).values;
  BOOST_TEST(values.at("cache.local.backend") == "dogpile.cache.memory");
  BOOST_TEST(values.at("cache.local.arguments.shards") == 4);
  BOOST_TEST(values.at("cache.local.wrap").is_array());
}

BOOST_AUTO_TEST_CASE(malformed_json_names_the_file_and_line) {
  try {
    dogpile::parse_json_config("{\n  \"cache\": {\n    \"backend\": oops\n  }\n}", "bad.json");
    BOOST_FAIL("expected ConfigError");
  } catch (const dogpile::ConfigError& e) {
    BOOST_TEST(message_contains(e, "bad.json:3:"));
  }
  BOOST_CHECK_THROW(dogpile::parse_json_config("[1, 2]", "list.json"), dogpile::ConfigError);
}

BOOST_AUTO_TEST_CASE(ini_sections_keys_and_lines_are_read) {
  auto file = dogpile::parse_ini_config(
      "# comment\n[app:main]\ncache.local.backend = dogpile.cache.memory\n; another\n"
      "cache.local.arguments.shards: 4\n\n[cache.other]\nbackend=dogpile.cache.null\n"
      "wrap = a,\n  b\n",
      "x.ini");
  BOOST_TEST_REQUIRE(file.sections.size() == 2u);
  const auto& main = file.sections[0];
  BOOST_TEST(main.name == "app:main");
  BOOST_TEST(main.values.at("cache.local.backend") == "dogpile.cache.memory");
  BOOST_TEST(main.values.at("cache.local.arguments.shards") == "4");
  BOOST_TEST(main.lines.at("cache.local.arguments.shards") == 5);
  BOOST_TEST(file.where(main, "cache.local.backend") == "x.ini:3");
  BOOST_TEST(file.sections[1].values.at("wrap") == "a,\nb");
}

BOOST_AUTO_TEST_CASE(malformed_ini_names_the_file_and_line) {
  const std::pair<const char*, const char*> cases[] = {
      {"[s]\nkey value\n", "x.ini:2: expected 'key = value'"},
      {"key = value\n", "x.ini:1: key outside a section"},
      {"[s]\na = 1\na = 2\n", "x.ini:3: key a appears twice"},
      {"[s\n", "x.ini:1: malformed section header"},
      {"[s]\n[s]\n", "x.ini:2: section [s] appears twice"},
  };
  for (const auto& [text, expected] : cases) {
    try {
      dogpile::parse_ini_config(text, "x.ini");
      BOOST_FAIL("expected ConfigError for " << text);
    } catch (const dogpile::ConfigError& e) {
      BOOST_TEST(message_contains(e, expected));
    }
  }
}

BOOST_AUTO_TEST_CASE(unreadable_or_unknown_files_are_config_errors) {
  BOOST_CHECK_THROW(dogpile::load_config_file("/nonexistent/dogpile.json"), dogpile::ConfigError);
  TempFile yaml("c.yaml", "a: 1\n");
  BOOST_CHECK_THROW(dogpile::load_config_file(yaml.path), dogpile::ConfigError);
}

BOOST_AUTO_TEST_CASE(regions_are_found_in_both_ini_styles) {
  auto file = dogpile::parse_ini_config(
      "[app:main]\ncache.local.backend = dogpile.cache.memory\n"
      "[cache.other]\nbackend = dogpile.cache.null\n[dogpile]\nlog_level = warning\n",
      "x.ini");
  auto regions = dogpile::find_regions(file);
  BOOST_TEST_REQUIRE(regions.size() == 2u);
  BOOST_TEST(regions[0].name == "cache.local");
  BOOST_TEST(regions[0].prefix == "cache.local.");
  BOOST_TEST(regions[1].name == "cache.other");
  BOOST_TEST(regions[1].prefix == "");
}

BOOST_AUTO_TEST_CASE(regions_come_in_the_files_order) {
  auto json = dogpile::parse_json_config(
      R"({"cache": {"zeta": {"backend": "dogpile.cache.memory"},
                    "mid": {"expiration_time": 1, "backend": "dogpile.cache.null"},
                    "alpha": {"backend": "dogpile.cache.memory"}}})",
      "x.json");
  auto ini = dogpile::parse_ini_config(
      "[cache.zeta]\nbackend = dogpile.cache.memory\n[app:main]\ncache.mid.backend = "
      "dogpile.cache.null\ncache.alpha.backend = dogpile.cache.memory\n",
      "x.ini");
  for (const auto* file : {&json, &ini}) {
    std::vector<std::string> names;
    for (const auto& spec : dogpile::find_regions(*file)) names.push_back(spec.name);
    BOOST_TEST(names == (std::vector<std::string>{"cache.zeta", "cache.mid", "cache.alpha"}),
               boost::test_tools::per_element());
  }
  // Keys a program adds to a parsed file come after the file's own.
  json.sections[0].values["cache.added.backend"] = "dogpile.cache.null";
  BOOST_TEST(dogpile::find_regions(json).back().name == "cache.added");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(configure_from_config)

BOOST_AUTO_TEST_CASE(dogpiles_keys_configure_a_region) {
  ConfigDict config{{"cache.local.backend", "dogpile.cache.memory"},
                    {"cache.local.expiration_time", "5m"},
                    {"cache.local.arguments.shards", "4"},
                    {"cache.other.backend", "dogpile.cache.null"}};
  auto region = dogpile::make_region("local");
  region->configure_from_config(config, "cache.local.");
  BOOST_TEST(region->backend_name() == "dogpile.cache.memory");
  BOOST_TEST(*region->expiration_time() == 300.0);
  region->set("k", 1);
  BOOST_TEST(*region->get<int>("k") == 1);
}

BOOST_AUTO_TEST_CASE(replace_existing_backend_comes_from_config) {
  auto region = dogpile::make_region();
  region->configure("dogpile.cache.memory");
  ConfigDict config{{"backend", "dogpile.cache.null"}};
  BOOST_CHECK_THROW(region->configure_from_config(config, ""), dogpile::RegionAlreadyConfigured);
  config["replace_existing_backend"] = "true";
  region->configure_from_config(config, "");
  BOOST_TEST(region->backend_name() == "dogpile.cache.null");
}

BOOST_AUTO_TEST_CASE(errors_name_the_key_at_fault) {
  const std::pair<ConfigDict, const char*> cases[] = {
      {{{"cache.local.expiration_time", 5}}, "missing required key cache.local.backend"},
      {{{"cache.local.backend", "dogpile.cache.nope"}},
       "Couldn't find cache plugin to load: dogpile.cache.nope"},
      {{{"cache.local.backend", "dogpile.cache.memory"}, {"cache.local.arguments.shardz", "2"}},
       "unknown argument cache.local.arguments.shardz for dogpile.cache.memory"},
      {{{"cache.local.backend", "dogpile.cache.memory"}, {"cache.local.expiration_tme", "2"}},
       "unknown config key cache.local.expiration_tme (did you mean "
       "cache.local.expiration_time: seconds after which a value expires; -1: never?); a region "
       "takes backend, arguments.<name>, wrap_arguments.<proxy>.<name>, expiration_time, wrap"},
      {{{"cache.local.backend", "dogpile.cache.memory"}, {"cache.local.colour", "blue"}},
       "unknown config key cache.local.colour; a region takes"},
      {{{"cache.local.backend", "dogpile.cache.memory"}, {"cache.local.expiration_time", "soon"}},
       "expiration_time is not a number or timedelta."},
      {{{"cache.local.backend", 5}}, "cache.local.backend must be the name of a backend plugin"},
      {{{"cache.local.backend", "dogpile.cache.memory"}, {"cache.local.arguments.shards", "many"}},
       "cache.local.arguments.shards must be a non-negative integer"},
  };
  for (const auto& [config, expected] : cases) {
    auto region = dogpile::make_region();
    try {
      region->configure_from_config(config, "cache.local.");
      BOOST_FAIL("expected an error: " << expected);
    } catch (const dogpile::Error& e) {
      BOOST_TEST(message_contains(e, expected));
    }
    BOOST_TEST(!region->is_configured());
  }
}

BOOST_AUTO_TEST_CASE(wrap_names_proxy_plugins) {
  ConfigDict config{{"backend", "dogpile.cache.memory"},
                    {"wrap", "dogpile.test.counting_proxy, dogpile.test.counting_proxy"}};
  auto region = dogpile::make_region();
  region->configure_from_config(config, "");
  auto outer = std::dynamic_pointer_cast<dogpile::ProxyBackend>(region->backend());
  BOOST_TEST_REQUIRE(outer != nullptr);
  auto inner = std::dynamic_pointer_cast<dogpile::ProxyBackend>(outer->proxied());
  BOOST_TEST_REQUIRE(inner != nullptr);
  BOOST_TEST(inner->proxied() == region->actual_backend());

  ConfigDict bad{{"backend", "dogpile.cache.memory"},
                 {"wrap", json::array({"dogpile.cache.memory"})}};
  auto other = dogpile::make_region();
  try {
    other->configure_from_config(bad, "");
    BOOST_FAIL("expected ConfigError");
  } catch (const dogpile::ConfigError& e) {
    BOOST_TEST(
        message_contains(e, "wrap names dogpile.cache.memory, which is a backend, not a proxy"));
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(region_files)

BOOST_AUTO_TEST_CASE(json_and_ini_files_give_the_same_configuration) {
  TempFile json_file("regions.json", R"({
    "cache": {
      "local": {"backend": "dogpile.cache.memory", "expiration_time": "5m",
                "arguments": {"shards": 4}},
      "bytes": {"backend": "dogpile.cache.memory_pickle", "expiration_time": 3600}
    }
  })");
  TempFile ini_file("regions.ini",
                    "[app:main]\ncache.local.backend = dogpile.cache.memory\n"
                    "cache.local.expiration_time = 5m\ncache.local.arguments.shards = 4\n"
                    "[cache.bytes]\nbackend = dogpile.cache.memory_pickle\n"
                    "expiration_time = 3600\n");
  auto from_json = dogpile::load_regions(json_file.path);
  auto from_ini = dogpile::load_regions(ini_file.path);
  BOOST_TEST_REQUIRE(from_json.size() == 2u);
  BOOST_TEST_REQUIRE(from_ini.size() == 2u);
  for (const auto& [name, region] : from_json) {
    BOOST_TEST_INFO("region " << name);
    const auto& twin = from_ini.at(name);
    BOOST_TEST(region->backend_name() == twin->backend_name());
    BOOST_TEST((region->expiration_time() == twin->expiration_time()));
  }
  // The same flat keys after coercion, whichever file they came from.
  auto json_cfg = dogpile::load_config_file(json_file.path);
  auto ini_cfg = dogpile::load_config_file(ini_file.path);
  auto keys_of = [](const dogpile::ConfigFile& file, const std::string& region) {
    std::map<std::string, json> out;
    for (const auto& spec : dogpile::find_regions(file)) {
      if (spec.name != region) continue;
      for (const auto& [key, value] : dogpile::coerce_string_conf(spec.section->values)) {
        if (key.starts_with(spec.prefix)) out[key.substr(spec.prefix.size())] = value;
      }
    }
    return out;
  };
  BOOST_TEST((keys_of(json_cfg, "cache.local") == keys_of(ini_cfg, "cache.local")));
  BOOST_TEST((keys_of(json_cfg, "cache.bytes") == keys_of(ini_cfg, "cache.bytes")));
  BOOST_TEST(keys_of(json_cfg, "cache.local").size() == 3u);
}

BOOST_AUTO_TEST_CASE(the_shipped_example_configs_load) {
  const fs::path source = std::getenv("DOGPILE_SOURCE_DIR");
  for (const char* name :
       {"configs/example.json", "configs/example.ini", "configs/demo.json", "configs/redis.json",
        "configs/redis.ini", "configs/memcached.json", "configs/memcached.ini",
        "configs/pylibmc.json", "configs/redis_sentinel.json", "configs/redis_sentinel.ini",
        "configs/redis_cluster.json", "configs/redis_cluster.ini"}) {
    BOOST_TEST_INFO(name);
    BOOST_TEST(!dogpile::load_regions(source / name).empty());
  }
  // The dbm examples name a file relative to the working directory.
  test::TempDir dir;
  struct InDir {
    fs::path back = fs::current_path();
    explicit InDir(const fs::path& dir) { fs::current_path(dir); }
    ~InDir() { fs::current_path(back); }
  };
  std::optional<InDir> in_dir(std::in_place, dir.path);
  for (const char* name : {"configs/dbm.json", "configs/dbm.ini"}) {
    BOOST_TEST_INFO(name);
    auto regions = dogpile::load_regions(source / name);
    BOOST_TEST_REQUIRE(regions.count("cache.local_file") == 1u);
    regions.at("cache.local_file")->set("k", std::string("v"));
    BOOST_TEST(*regions.at("cache.local_file")->get<std::string>("k") == "v");
  }
  in_dir.reset();
  BOOST_TEST(fs::exists(dir.path / "dogpile-cache.dbm.dogpile.lock"));
}

BOOST_AUTO_TEST_CASE(a_bad_argument_in_an_ini_file_names_file_line_and_key) {
  TempFile ini("bad.ini",
               "[app:main]\ncache.local.backend = dogpile.cache.memory\n"
               "cache.local.arguments.shardz = 4\n");
  try {
    dogpile::load_regions(ini.path);
    BOOST_FAIL("expected ValidationError");
  } catch (const dogpile::ValidationError& e) {
    BOOST_TEST(message_contains(e, "cache.local.arguments.shardz"));
    BOOST_TEST(message_contains(e, "bad.ini:3"));
  }
}

BOOST_AUTO_TEST_CASE(an_unknown_backend_in_a_file_names_the_plugin_and_line) {
  TempFile ini("bad.ini", "[cache.x]\n\nbackend = dogpile.cache.redis_typo\n");
  try {
    dogpile::load_regions(ini.path);
    BOOST_FAIL("expected PluginNotFound");
  } catch (const dogpile::PluginNotFound& e) {
    BOOST_TEST(message_contains(e, "dogpile.cache.redis_typo"));
    BOOST_TEST(message_contains(e, "bad.ini:3"));
  }
}

BOOST_AUTO_TEST_CASE(settings_set_the_log_level_and_reject_unknown_names) {
  TempFile ok("ok.json", R"({"dogpile": {"log_level": "error"},
                            "cache": {"a": {"backend": "dogpile.cache.null"}}})");
  dogpile::load_regions(ok.path);
  BOOST_TEST((dogpile::log_level() == dogpile::LogLevel::error));
  dogpile::set_log_level(dogpile::LogLevel::warning);

  TempFile bad_level("bad.ini",
                     "[dogpile]\nlog_level = loud\n[cache.a]\nbackend = dogpile.cache.null\n");
  try {
    dogpile::load_regions(bad_level.path);
    BOOST_FAIL("expected ValidationError");
  } catch (const dogpile::ValidationError& e) {
    BOOST_TEST(message_contains(e, "dogpile.log_level must be one of"));
    BOOST_TEST(message_contains(e, "bad.ini:2"));
  }
  TempFile unknown("u.json", R"({"dogpile": {"log_levle": "info"}})");
  BOOST_CHECK_THROW(dogpile::load_regions(unknown.path), dogpile::ValidationError);
}

BOOST_AUTO_TEST_CASE(a_file_without_regions_is_a_config_error) {
  TempFile empty("empty.json", R"({"other": {"x": 1}})");
  BOOST_CHECK_THROW(dogpile::load_regions(empty.path), dogpile::ConfigError);
}

BOOST_AUTO_TEST_CASE(only_regions_under_the_region_prefix_are_taken) {
  // A Pyramid file holds other *.backend keys: they are not regions.
  TempFile pyramid("app.ini",
                   "[app:main]\ncelery.result.backend = redis://localhost/1\n"
                   "cache.a.backend = dogpile.cache.memory\n");
  auto regions = dogpile::load_regions(pyramid.path);
  BOOST_TEST(regions.size() == 1u);
  BOOST_TEST(regions.count("cache.a") == 1u);

  TempFile elsewhere("elsewhere.json",
                     R"({"myapp": {"users": {"backend": "dogpile.cache.null"}}})");
  try {
    dogpile::load_regions(elsewhere.path);
    BOOST_FAIL("expected ConfigError");
  } catch (const dogpile::ConfigError& e) {
    BOOST_TEST(message_contains(e, "no region found under 'cache.'"));
    BOOST_TEST(message_contains(e, "keys ignored, not under that prefix: myapp.users.backend"));
  }
  BOOST_TEST(dogpile::load_regions(elsewhere.path, "myapp.").count("myapp.users") == 1u);
  BOOST_TEST(dogpile::load_regions(elsewhere.path, "").count("myapp.users") == 1u);
}

BOOST_AUTO_TEST_CASE(a_region_configured_twice_in_a_file_is_an_error) {
  TempFile twice("twice.ini",
                 "[app:main]\ncache.a.backend = dogpile.cache.null\n[cache.a]\nbackend = "
                 "dogpile.cache.null\n");
  BOOST_CHECK_THROW(dogpile::load_regions(twice.path), dogpile::ConfigError);
}

BOOST_AUTO_TEST_SUITE_END()

// Logging ----------------------------------------------------------------------------------

namespace {

// The log level before any test changed it.
struct StartingLevel {
  static inline dogpile::LogLevel level;
  void setup() { level = dogpile::log_level(); }
};
BOOST_TEST_GLOBAL_FIXTURE(StartingLevel);

}  // namespace

// What `emit` writes to file descriptor 2.
template <class Emit>
std::string stderr_of(Emit&& emit) {
  int fds[2];
  BOOST_TEST_REQUIRE(::pipe(fds) == 0);
  const int saved = ::dup(2);
  ::dup2(fds[1], 2);
  emit();
  std::clog.flush();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  ::close(fds[1]);
  std::string out;
  char buffer[4096];
  for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) > 0;) out.append(buffer, n);
  ::close(fds[0]);
  return out;
}

BOOST_AUTO_TEST_CASE(records_go_to_stderr_unless_an_application_sink_takes_them) {
  const std::string alone =
      stderr_of([] { dogpile::log(dogpile::LogLevel::warning, "test", "nobody listens"); });
  BOOST_TEST(alone.find("[warning] dogpile[test] nobody listens") != std::string::npos, alone);

  std::string with_sink;
  {
    test::LogCapture logs;
    with_sink =
        stderr_of([] { dogpile::log(dogpile::LogLevel::warning, "test", "the application's"); });
    BOOST_TEST_REQUIRE(logs.records().size() == 1u);
    BOOST_TEST(logs.records()[0].second.find("the application's") != std::string::npos);
  }
  BOOST_TEST(with_sink.empty(), with_sink);
}

BOOST_AUTO_TEST_CASE(logging_is_quiet_by_default_and_follows_the_configured_level) {
  test::LogCapture logs;
  if (!dogpile::environment_log_level()) {
    BOOST_TEST((StartingLevel::level == dogpile::LogLevel::warning));  // the default
  }
  dogpile::set_log_level(dogpile::LogLevel::warning);
  dogpile::log(dogpile::LogLevel::info, "test", "dropped");
  dogpile::log(dogpile::LogLevel::warning, "test", "kept");
  BOOST_TEST_REQUIRE(logs.records().size() == 1u);
  BOOST_TEST((logs.records()[0].first == boost::log::trivial::warning));
  BOOST_TEST(logs.records()[0].second.find("kept") != std::string::npos);

  TempFile debug("debug.ini",
                 "[dogpile]\nlog_level = DEBUG\n[cache.a]\nbackend = dogpile.cache.memory\n");
  dogpile::load_regions(debug.path);
  BOOST_TEST(dogpile::log_enabled(dogpile::LogLevel::debug));
  bool configured_logged = false;
  for (const auto& [severity, message] : logs.records()) {
    configured_logged |= message.find("region 'cache.a' configured") != std::string::npos;
  }
  BOOST_TEST(configured_logged);

  dogpile::set_log_level(dogpile::LogLevel::off);
  dogpile::log(dogpile::LogLevel::error, "test", "silenced");
  BOOST_TEST(logs.records().back().second.find("silenced") == std::string::npos);
  dogpile::set_log_level(dogpile::LogLevel::warning);
}
