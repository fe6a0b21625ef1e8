// The plugin loader: discovery without loading, the errors for each way a plugin can be
// unusable, run-time registration and the search path.
#define BOOST_TEST_MODULE loader
#include <atomic>
#include <boost/dll/shared_library.hpp>
#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <dogpile/dogpile.hpp>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <vector>

#include "helpers.hpp"

namespace fs = std::filesystem;
using dogpile::Arguments;
using dogpile::PluginLoader;

namespace {

fs::path test_plugin(const std::string& name) {
  return fs::path(std::getenv("DOGPILE_TEST_PLUGIN_DIR")) / name;
}

fs::path memory_plugin() {
  return fs::path(std::getenv("DOGPILE_BUILD_PLUGIN_DIR")) / "backends" / "memory" /
         "dogpile-memory.so";
}

template <class Exception, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Exception& e) {
    return e.what();
  }
  BOOST_FAIL("expected an exception");
  return {};
}

}  // namespace

using test::TempDir;

BOOST_AUTO_TEST_CASE(list_shows_every_entry_point_with_description_and_file) {
  PluginLoader loader;
  auto entries = loader.list();
  std::map<std::string, dogpile::EntryPointInfo> by_name;
  for (auto& e : entries) by_name[e.name] = e;
  for (const char* name : {"dogpile.cache.memory", "dogpile.cache.memory_pickle",
                           "dogpile.cache.null", "dogpile.test.counting_proxy"}) {
    BOOST_TEST_INFO(name);
    BOOST_TEST_REQUIRE(by_name.count(name) == 1u);
    BOOST_TEST(!by_name[name].description.empty());
    BOOST_TEST(fs::exists(by_name[name].file));
    BOOST_TEST(by_name[name].abi_version == unsigned(DOGPILE_SDK_ABI_VERSION));
  }
  BOOST_TEST(by_name["dogpile.cache.memory"].file == by_name["dogpile.cache.memory_pickle"].file);
  BOOST_TEST((by_name["dogpile.test.counting_proxy"].kind == dogpile::PluginKind::proxy));
  BOOST_TEST(by_name["dogpile.cache.memory"].version == "1.1.0");
  // The broken plugins are listed too: listing reads manifests, it does not load.
  BOOST_TEST(by_name["dogpile.test.wrong_build"].incompatible.find("cxx11abi0") !=
             std::string::npos);
  BOOST_TEST(by_name["dogpile.cache.memory"].incompatible.empty());
  BOOST_TEST(by_name.count("dogpile.test.undefined_symbol") == 1u);
  BOOST_TEST(by_name.count("dogpile.test.wrong_abi") == 1u);
}

BOOST_AUTO_TEST_CASE(an_unknown_name_is_plugin_not_found_with_paths_and_names) {
  PluginLoader loader;
  auto message = error_of<dogpile::PluginNotFound>(
      [&] { loader.make_backend("dogpile.cache.nope", Arguments()); });
  BOOST_TEST(message.starts_with("Couldn't find cache plugin to load: dogpile.cache.nope"));
  BOOST_TEST(message.find(std::getenv("DOGPILE_TEST_PLUGIN_DIR")) != std::string::npos);
  BOOST_TEST(message.find(dogpile::installed_plugin_dir().string()) != std::string::npos);
  BOOST_TEST(message.find("dogpile.cache.memory") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_plugin_for_another_abi_is_refused_before_loading) {
  PluginLoader loader;
  auto message = error_of<dogpile::PluginLoadError>(
      [&] { loader.make_backend("dogpile.test.wrong_abi", Arguments()); });
  BOOST_TEST(message.find("SDK ABI version 999") != std::string::npos);
  BOOST_TEST(message.find("wrong-abi.so") != std::string::npos);
  // Refused from the manifest: the library was never loaded.
  BOOST_TEST(dlopen(test_plugin("wrong-abi.so").c_str(), RTLD_NOW | RTLD_NOLOAD) == nullptr);
}

BOOST_AUTO_TEST_CASE(a_plugin_built_with_another_toolchain_is_refused) {
  PluginLoader loader;
  auto message = error_of<dogpile::PluginLoadError>(
      [&] { loader.make_backend("dogpile.test.wrong_build", Arguments()); });
  BOOST_TEST(message.find("cxx11abi0") != std::string::npos);
  BOOST_TEST(message.find("rebuild it") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_plugin_with_an_undefined_symbol_fails_with_the_loaders_reason) {
  PluginLoader loader;
  auto message = error_of<dogpile::PluginLoadError>(
      [&] { loader.make_backend("dogpile.test.undefined_symbol", Arguments()); });
  BOOST_TEST(message.find("cannot load plugin dogpile.test.undefined_symbol") != std::string::npos);
  BOOST_TEST(message.find("undefined symbol") != std::string::npos);
  BOOST_TEST(message.find("dogpile_test_function_nobody_defines") != std::string::npos);
  // dlerror's text, not a stale errno after it.
  BOOST_TEST(message.find("Bad file descriptor") == std::string::npos, message);
  BOOST_TEST(message.ends_with("dogpile_test_function_nobody_defines"), message);
}

BOOST_AUTO_TEST_CASE(a_plugin_whose_constructor_throws_anything_is_a_dogpile_error) {
  PluginLoader loader;
  for (const std::string thrown : {"int", "runtime_error"}) {
    auto message = error_of<dogpile::Error>([&] {
      loader.make_backend(
          "test.cache.careless",
          Arguments(nlohmann::json{{"fail_to_start", thrown}}, "cache.x.arguments."));
    });
    BOOST_TEST(message.find("test.cache.careless failed to start") != std::string::npos, message);
  }
}

BOOST_AUTO_TEST_CASE(a_plugin_linked_with_gc_sections_keeps_its_manifest) {
  PluginLoader loader;
  bool listed = false;
  for (const auto& e : loader.list()) listed |= e.name == "test.cache.gc_sections";
  BOOST_TEST(listed);
  BOOST_TEST(loader.make_backend("test.cache.gc_sections", Arguments()) != nullptr);
}

BOOST_AUTO_TEST_CASE(python_backend_names_not_provided_say_so) {
  PluginLoader loader;
  auto message = error_of<dogpile::PluginNotFound>(
      [&] { loader.make_backend("dogpile.cache.valkey", Arguments()); });
  BOOST_TEST(message.find("this version of dogpile-cpp does not provide") != std::string::npos,
             message);
}

BOOST_AUTO_TEST_CASE(every_python_name_shipped_is_an_entry_point) {
  PluginLoader loader;
  std::set<std::string> names;
  for (const auto& e : loader.list()) names.insert(e.name);
  for (const char* name :
       {"dogpile.cache.memcached", "dogpile.cache.pylibmc", "dogpile.cache.bmemcached",
        "dogpile.cache.pymemcache", "dogpile.cache.dbm", "dogpile.cache.redis_sentinel",
        "dogpile.cache.redis_cluster"}) {
    BOOST_TEST(names.count(name) == 1u, name);
  }
}

BOOST_AUTO_TEST_CASE(the_build_tag_carries_nlohmann_jsons_abi_tags_not_macro_names) {
  const std::string tag = DOGPILE_BUILD_TAG;
  BOOST_TEST(tag.find("-json_abi") != std::string::npos, tag);
  // JSON_DIAGNOSTICS and JSON_USE_LEGACY_DISCARDED_VALUE_COMPARISON are #undef'd by
  // <nlohmann/json.hpp>: their names would stand in the tag whatever they were.
  BOOST_TEST(tag.find("JSON_") == std::string::npos, tag);
}

BOOST_AUTO_TEST_CASE(registering_a_non_plugin_library_fails_on_the_missing_symbol) {
  PluginLoader loader;
  loader.register_backend("dogpile.test.plain", test_plugin("not-a-plugin.so"),
                          "dogpile_entry_point_plain");
  auto message = error_of<dogpile::PluginLoadError>(
      [&] { loader.make_backend("dogpile.test.plain", Arguments()); });
  BOOST_TEST(message.find("has no entry point dogpile_entry_point_plain") != std::string::npos);
  BOOST_TEST(message.find("Illegal seek") == std::string::npos, message);
}

BOOST_AUTO_TEST_CASE(registering_a_missing_file_fails_with_the_path) {
  PluginLoader loader;
  loader.register_backend("dogpile.test.gone", "/nonexistent/gone.so", "dogpile_entry_point_x");
  auto message = error_of<dogpile::PluginLoadError>(
      [&] { loader.make_backend("dogpile.test.gone", Arguments()); });
  BOOST_TEST(message.find("/nonexistent/gone.so") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(register_backend_adds_a_name_at_run_time) {
  PluginLoader loader;
  loader.register_backend("myapp.cache.fast", memory_plugin(), "dogpile_entry_point_memory");
  auto backend = loader.make_backend("myapp.cache.fast", Arguments());
  backend->set("k", dogpile::make_value(1));
  BOOST_TEST(backend->get("k") != nullptr);
  bool listed = false;
  for (const auto& e : loader.list()) listed |= e.name == "myapp.cache.fast" && e.registered;
  BOOST_TEST(listed);
  // Unknown arguments are still rejected.
  BOOST_CHECK_THROW(loader.make_backend("myapp.cache.fast", Arguments(nlohmann::json{{"x", 1}})),
                    dogpile::ValidationError);
}

BOOST_AUTO_TEST_CASE(the_global_register_backend_is_seen_by_regions) {
  dogpile::register_backend("myapp.cache.global", memory_plugin(), "dogpile_entry_point_memory");
  auto region = dogpile::make_region();
  region->configure("myapp.cache.global");
  region->set("k", 1);
  BOOST_TEST(*region->get<int>("k") == 1);
}

BOOST_AUTO_TEST_CASE(a_backend_name_used_as_a_proxy_is_refused_and_vice_versa) {
  PluginLoader loader;
  BOOST_CHECK_THROW(loader.make_proxy("dogpile.cache.memory", Arguments()),
                    dogpile::PluginLoadError);
  BOOST_CHECK_THROW(loader.make_backend("dogpile.test.counting_proxy", Arguments()),
                    dogpile::PluginLoadError);
}

BOOST_AUTO_TEST_CASE(a_proxy_plugin_counts_through_a_region) {
  auto region = dogpile::make_region();
  region->configure("dogpile.cache.memory_pickle",
                    {.wrap = {std::string("dogpile.test.counting_proxy")}});
  boost::dll::shared_library lib(test_plugin("counting-proxy.so"));
  auto gets = lib.get<int()>("dogpile_test_counting_proxy_gets");
  auto sets = lib.get<int()>("dogpile_test_counting_proxy_sets");
  const int gets_before = gets();
  const int sets_before = sets();
  region->set("k", 1);
  region->get<int>("k");
  region->get<int>("absent");
  BOOST_TEST(sets() - sets_before == 1);
  BOOST_TEST(gets() - gets_before == 2);
}

BOOST_AUTO_TEST_CASE(objects_keep_working_after_the_loader_and_region_are_gone) {
  std::shared_ptr<dogpile::CacheBackend> backend, kept;
  {
    PluginLoader loader;
    backend = loader.make_backend("dogpile.cache.memory", Arguments());
    auto region = dogpile::make_region();
    region->configure("dogpile.cache.memory");
    region->set("r", 1);
    kept = region->actual_backend();
  }
  backend->set("k", dogpile::make_value(std::string("v")));
  BOOST_TEST(backend->get("k") != nullptr);
  BOOST_TEST(kept->get("r") != nullptr);  // the region's backend outlives its region
  backend.reset();                        // the plugin's destructor runs; the library stays mapped
  kept.reset();
}

BOOST_AUTO_TEST_CASE(the_first_plugin_on_the_path_wins_and_duplicates_are_reported) {
  TempDir dir;
  fs::copy_file(memory_plugin(), dir.path / "copy-of-memory.so");
  PluginLoader loader;
  loader.add_search_path(dir.path);
  auto path = loader.search_path();
  BOOST_TEST_REQUIRE(path.size() >= 3u);
  BOOST_TEST(path[path.size() - 2] == dir.path);  // after DOGPILE_PLUGIN_PATH
  BOOST_TEST(path.back() == dogpile::installed_plugin_dir());
  const auto memory = loader.find("dogpile.cache.memory");
  BOOST_TEST_REQUIRE(memory.has_value());
  BOOST_TEST(memory->file == memory_plugin());
  BOOST_TEST_REQUIRE(memory->shadowed.size() == 1u);
  BOOST_TEST(memory->shadowed[0] == dir.path / "copy-of-memory.so");
  // An argument error names the file used and the copy that was not: it may be the one meant.
  auto message = error_of<dogpile::ValidationError>([&] {
    loader.make_backend("dogpile.cache.memory",
                        Arguments(nlohmann::json{{"bogus", 1}}, "cache.x.arguments."));
  });
  BOOST_TEST(message.find("comes from " + memory_plugin().string() + "; it is also provided by " +
                          (dir.path / "copy-of-memory.so").string()) != std::string::npos,
             message);
}

BOOST_AUTO_TEST_CASE(a_misspelled_argument_is_named_with_the_closest_valid_name) {
  PluginLoader loader;
  auto message = error_of<dogpile::ValidationError>([&] {
    loader.make_backend("dogpile.cache.memory",
                        Arguments(nlohmann::json{{"shardz", 4}}, "cache.x.arguments."));
  });
  BOOST_TEST(message.find("unknown argument cache.x.arguments.shardz") != std::string::npos,
             message);
  BOOST_TEST(message.find("did you mean shards?") != std::string::npos, message);
  // A required argument misspelled: the missing one and the unknown one are both named.
  message = error_of<dogpile::ValidationError>([&] {
    loader.make_backend(
        "dogpile.cache.memcached",
        Arguments(nlohmann::json{{"ulr", "127.0.0.1:11211"}}, "cache.x.arguments."));
  });
  BOOST_TEST(message.find("cache.x.arguments.url") != std::string::npos, message);
  BOOST_TEST(message.find("unknown argument cache.x.arguments.ulr") != std::string::npos, message);
  BOOST_TEST(message.find("did you mean url?") != std::string::npos, message);
}

BOOST_AUTO_TEST_CASE(files_that_are_not_plugins_are_skipped) {
  TempDir dir;
  std::ofstream(dir.path / "garbage.so") << "not an ELF file";
  std::ofstream(dir.path / "empty.so");
  fs::copy_file(test_plugin("not-a-plugin.so"), dir.path / "plain.so");
  fs::copy_file(memory_plugin(), dir.path / "real.so");  // a control: the directory is read
  PluginLoader loader;
  loader.add_search_path(dir.path);
  for (const auto& e : loader.list()) {
    if (e.file.parent_path() == dir.path) BOOST_TEST(e.file.filename() == "real.so");
  }
  const auto memory = loader.find("dogpile.cache.memory");
  BOOST_TEST_REQUIRE(memory.has_value());
  BOOST_TEST((memory->shadowed == std::vector<fs::path>{dir.path / "real.so"}));
}

BOOST_AUTO_TEST_CASE(plugins_anyone_could_have_written_are_not_loaded) {
  const std::string saved = std::getenv("DOGPILE_PLUGIN_PATH");
  ::unsetenv("DOGPILE_PLUGIN_PATH");
  for (const bool open_directory : {true, false}) {
    TempDir dir;
    const auto file = dir.path / "planted-memory.so";
    fs::copy_file(memory_plugin(), file);
    fs::permissions(open_directory ? dir.path : file, fs::perms::others_write,
                    fs::perm_options::add);
    PluginLoader loader;
    loader.add_search_path(dir.path);
    BOOST_CHECK_THROW(loader.make_backend("dogpile.cache.memory", Arguments()),
                      dogpile::PluginNotFound);
    fs::permissions(open_directory ? dir.path : file, fs::perms::others_write,
                    fs::perm_options::remove);
    loader.rescan();
    BOOST_TEST(loader.make_backend("dogpile.cache.memory", Arguments()) != nullptr);
  }
  ::setenv("DOGPILE_PLUGIN_PATH", saved.c_str(), 1);
}

BOOST_AUTO_TEST_CASE(an_empty_plugin_path_entry_is_a_config_error) {
  for (
      const char* text :
      {R"({"dogpile": {"plugin_path": [""]}, "cache": {"a": {"backend": "dogpile.cache.memory"}}})",
       R"({"dogpile": {"plugin_path": [7]}, "cache": {"a": {"backend": "dogpile.cache.memory"}}})"}) {
    BOOST_TEST_INFO(text);
    auto file = dogpile::parse_json_config(text, "p.json");
    BOOST_CHECK_EXCEPTION(
        dogpile::configure_regions(file), dogpile::ValidationError,
        [](const auto& e) { return test::message_contains(e, "dogpile.plugin_path"); });
  }
}

BOOST_AUTO_TEST_CASE(plugins_are_found_through_paths_added_by_the_application) {
  TempDir dir;
  fs::copy_file(test_plugin("counting-proxy.so"), dir.path / "renamed-proxy.so");
  fs::copy_file(memory_plugin(), dir.path / "renamed-memory.so");
  const std::string saved = std::getenv("DOGPILE_PLUGIN_PATH");
  ::unsetenv("DOGPILE_PLUGIN_PATH");
  PluginLoader loader;
  BOOST_CHECK_THROW(loader.make_backend("dogpile.cache.memory", Arguments()),
                    dogpile::PluginNotFound);
  loader.add_search_path(dir.path);
  auto backend = loader.make_backend("dogpile.cache.memory", Arguments());
  BOOST_TEST(backend != nullptr);
  const auto proxy = loader.find("dogpile.test.counting_proxy");
  BOOST_TEST_REQUIRE(proxy.has_value());
  BOOST_TEST(proxy->file == dir.path / "renamed-proxy.so");
  BOOST_TEST(loader.make_proxy("dogpile.test.counting_proxy", Arguments()) != nullptr);
  ::setenv("DOGPILE_PLUGIN_PATH", saved.c_str(), 1);
}

// In-process registration ---------------------------------------------------------------

namespace {

// A backend of the application's own, made without any library.
class MapBackend final : public dogpile::ObjectBackend {
 public:
  explicit MapBackend(const Arguments& arguments) : tag_(arguments.get("tag", std::string())) {}
  dogpile::CachedValuePtr get(std::string_view key) override {
    std::lock_guard guard(mutex_);
    auto it = values_.find(tag_ + std::string(key));
    return it == values_.end() ? nullptr : it->second;
  }
  void set(const std::string& key, dogpile::CachedValuePtr value) override {
    std::lock_guard guard(mutex_);
    values_[tag_ + key] = std::move(value);
  }
  void remove(std::string_view key) override {
    std::lock_guard guard(mutex_);
    values_.erase(tag_ + std::string(key));
  }
  std::map<std::string, dogpile::CachedValuePtr> values_;

 private:
  std::string tag_;
  std::mutex mutex_;
};

// A proxy of the application's own that counts sets.
struct CountingSets final : dogpile::ProxyBackend {
  explicit CountingSets(const Arguments&) {}
  void set(const std::string& key, dogpile::CachedValuePtr value) override {
    ++sets;
    ProxyBackend::set(key, std::move(value));
  }
  static inline std::atomic<int> sets{0};
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_backend_and_a_proxy_registered_in_process_serve_a_region) {
  dogpile::register_backend("test.map",
                            [](const Arguments& a) { return std::make_unique<MapBackend>(a); });
  dogpile::register_proxy("test.counting",
                          [](const Arguments& a) { return std::make_unique<CountingSets>(a); });
  auto region = dogpile::make_region();
  region->configure("test.map", {.arguments = {{"tag", "t:"}}, .wrap = {"test.counting"}});
  region->set("k", 42);
  BOOST_TEST(*region->get<int>("k") == 42);
  BOOST_TEST(CountingSets::sets == 1);
  auto* backend = dynamic_cast<MapBackend*>(region->actual_backend().get());
  BOOST_TEST_REQUIRE(backend != nullptr);
  BOOST_TEST(backend->values_.count("t:k") == 1u);

  const auto entries = PluginLoader::instance().list();
  auto it = std::find_if(entries.begin(), entries.end(),
                         [](const auto& e) { return e.name == "test.map"; });
  BOOST_TEST_REQUIRE((it != entries.end()));
  BOOST_TEST(it->in_process);
  BOOST_TEST(it->registered);
  BOOST_TEST(it->file.empty());
  BOOST_TEST(it->description == "registered in this process");
}

BOOST_AUTO_TEST_CASE(an_in_process_registration_comes_before_the_search_path) {
  PluginLoader loader;
  BOOST_TEST((loader.find("dogpile.cache.null")->file.filename() == "dogpile-null.so"));
  loader.register_backend("dogpile.cache.null",
                          [](const Arguments& a) { return std::make_unique<MapBackend>(a); });
  BOOST_TEST(loader.find("dogpile.cache.null")->in_process);
  auto made = loader.make_backend("dogpile.cache.null", Arguments(nlohmann::json::object()));
  BOOST_TEST(dynamic_cast<MapBackend*>(made.get()) != nullptr);
}

BOOST_AUTO_TEST_CASE(an_in_process_factory_is_checked_as_a_plugin_is) {
  PluginLoader loader;
  loader.register_backend("test.map",
                          [](const Arguments& a) { return std::make_unique<MapBackend>(a); });
  // An argument the factory did not read.
  const std::string unread = error_of<dogpile::ValidationError>([&] {
    loader.make_backend("test.map", Arguments({{"tga", "x"}}, "arguments."));
  });
  BOOST_TEST(unread.find("arguments.tga") != std::string::npos, unread);
  loader.register_backend("test.throws",
                          [](const Arguments&) -> std::unique_ptr<dogpile::CacheBackend> {
                            throw std::runtime_error("no disk");
                          });
  BOOST_TEST(error_of<dogpile::Error>([&] {
               loader.make_backend("test.throws", Arguments(nlohmann::json::object()));
             }).find("test.throws failed to start: no disk") != std::string::npos);
  loader.register_backend(
      "test.null", [](const Arguments&) { return std::unique_ptr<dogpile::CacheBackend>(); });
  BOOST_CHECK_THROW(loader.make_backend("test.null", Arguments(nlohmann::json::object())),
                    dogpile::PluginLoadError);
  BOOST_CHECK_THROW(loader.register_backend("test.empty", dogpile::BackendMaker()),
                    dogpile::ValidationError);
  // A backend asked for as a proxy.
  BOOST_CHECK_THROW(loader.make_proxy("test.map", Arguments(nlohmann::json::object())),
                    dogpile::Error);
}
