// The PluginLoader finds backend and proxy plugins by entry-point name, as Python's entry
// points: each plugin .so declares its entry points in an ELF section that is read without
// loading the library (see dogpile/sdk/plugin.hpp).
//
// Search path, first match wins: the directories in DOGPILE_PLUGIN_PATH (':'-separated), then
// those the application or config added, then the installed plugin directory. Directories are
// searched for *.so files, sub-directories included (three levels). A name provided twice is
// reported in a warning and in list().
//
// A library is loaded (RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE) only when one of its names is
// first asked for, after its SDK ABI version and build tag are checked, and stays loaded while
// any object it made is alive. Thread-safe.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dogpile/sdk/arguments.hpp"
#include "dogpile/sdk/backend.hpp"
#include "dogpile/sdk/export.hpp"
#include "dogpile/sdk/plugin.hpp"
#include "dogpile/sdk/proxy.hpp"

namespace dogpile {

class Clock;          // dogpile/sdk/clock.hpp
class PluginContext;  // dogpile/sdk/context.hpp

struct EntryPointInfo {
  std::string name;  // dogpile.cache.memory
  PluginKind kind = PluginKind::backend;
  unsigned abi_version = 0;
  std::string build_tag;
  std::string version;
  std::string description;
  std::filesystem::path file;
  std::string symbol;
  bool registered = false;  // by register_backend / register_proxy, not found on the path
  bool in_process = false;  // registered with a factory: no library (file is empty)
  std::vector<std::filesystem::path> shadowed;  // other files providing the same name
  // Why this libdogpile cannot use it (built for another SDK ABI or toolchain); empty if it can.
  std::string incompatible;
};

// Makes a backend or proxy from its arguments, in this process: what register_backend and
// register_proxy take instead of a plugin library.
using BackendMaker = std::function<std::unique_ptr<CacheBackend>(const Arguments&)>;
using ProxyMaker = std::function<std::unique_ptr<ProxyBackend>(const Arguments&)>;

class DOGPILE_API PluginLoader {
 public:
  // The process-wide loader regions use.
  static PluginLoader& instance();

  PluginLoader();
  ~PluginLoader();
  PluginLoader(const PluginLoader&) = delete;
  PluginLoader& operator=(const PluginLoader&) = delete;

  // Adds a directory after DOGPILE_PLUGIN_PATH's and before the installed one.
  void add_search_path(const std::filesystem::path& directory);
  // The directories searched, in order.
  std::vector<std::filesystem::path> search_path() const;

  // Every entry point on the search path and registered at run time, sorted by name. Reads
  // the files' manifests; loads nothing.
  std::vector<EntryPointInfo> list();

  // Registers an entry point at run time, as dogpile.cache's register_backend: `symbol` is a
  // descriptor symbol the library exports (dogpile_entry_point_<id>). Replaces any entry
  // point of that name. The library is loaded when the name is first used.
  void register_backend(std::string_view name, const std::filesystem::path& library,
                        std::string_view symbol);

  // Registers a backend or proxy made in this process by `factory`, as dogpile.cache's
  // register_backend with a class of the application's: no .so is involved. Registered names
  // are found before the search path's, and replace any registered entry of that name; the
  // arguments are checked as a plugin's are (an argument the factory did not read is an error).
  void register_backend(std::string_view name, BackendMaker factory,
                        std::string description = "registered in this process");
  void register_proxy(std::string_view name, ProxyMaker factory,
                      std::string description = "registered in this process");

  // The entry point `name` (registered or on the search path), if any; loads nothing.
  std::optional<EntryPointInfo> find(std::string_view name);

  // Makes the backend or proxy `name` with `arguments`, handing the plugin `context`, then
  // rejects any argument the plugin did not read. Throws PluginNotFound, PluginLoadError,
  // ValidationError. Without a context: made outside any region.
  std::shared_ptr<CacheBackend> make_backend(std::string_view name, const Arguments& arguments,
                                             const PluginContext& context);
  std::shared_ptr<CacheBackend> make_backend(std::string_view name, const Arguments& arguments);
  std::shared_ptr<ProxyBackend> make_proxy(std::string_view name, const Arguments& arguments,
                                           const PluginContext& context);
  std::shared_ptr<ProxyBackend> make_proxy(std::string_view name, const Arguments& arguments);

  // The context a region named `region_name` (empty: none) whose clock is `clock` (null: the
  // system clock) hands the plugins it makes; its make_backend uses this loader.
  std::unique_ptr<PluginContext> context_for(std::string region_name,
                                             std::shared_ptr<const Clock> clock);

  // Forgets the index, so the next look-up searches the path again.
  void rescan();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Shorthands for PluginLoader::instance().register_backend(...) and register_proxy(...).
DOGPILE_API void register_backend(std::string_view name, const std::filesystem::path& library,
                                  std::string_view symbol);
DOGPILE_API void register_backend(std::string_view name, BackendMaker factory);
DOGPILE_API void register_proxy(std::string_view name, ProxyMaker factory);

// The installed plugin directory compiled into libdogpile.
DOGPILE_API std::filesystem::path installed_plugin_dir();

}  // namespace dogpile
