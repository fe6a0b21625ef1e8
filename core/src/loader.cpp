#include "dogpile/loader.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <system_error>

// Boost.DLL 1.74's library_info needs <vector> first; we use shared_library only.
#include <boost/dll/shared_library.hpp>
#include <vector>

#include "dogpile/sdk/context.hpp"
#include "dogpile/sdk/errors.hpp"
#include "dogpile/sdk/log.hpp"
#include "manifest.hpp"

#ifndef DOGPILE_PLUGIN_DIR
#error "DOGPILE_PLUGIN_DIR must be defined by the build"
#endif

namespace dogpile {

namespace fs = std::filesystem;
using Library = boost::dll::shared_library;

std::filesystem::path installed_plugin_dir() { return DOGPILE_PLUGIN_DIR; }

namespace {

constexpr int kScanDepth = 3;

bool looks_like_shared_object(const fs::path& file) {
  const std::string name = file.filename().string();
  return name.size() > 3 && (name.ends_with(".so") || name.find(".so.") != std::string::npos);
}

const char* kind_name(PluginKind kind) { return kind == PluginKind::proxy ? "proxy" : "backend"; }

template <class Map>
std::string joined_names(const Map& map) {
  std::string out;
  for (const auto& [name, info] : map) out += (out.empty() ? "" : ", ") + name;
  return out.empty() ? "(none)" : out;
}

}  // namespace

struct PluginLoader::Impl {
  mutable std::mutex mutex;
  std::vector<fs::path> extra_paths;
  bool indexed = false;
  std::map<std::string, EntryPointInfo, std::less<>> index;            // found on the search path
  std::map<std::string, EntryPointInfo, std::less<>> registered;       // register_backend
  std::map<std::string, BackendMaker, std::less<>> backend_factories;  // in process
  std::map<std::string, ProxyMaker, std::less<>> proxy_factories;
  std::map<fs::path, std::shared_ptr<Library>> libraries;

  std::vector<fs::path> search_path() const {
    std::vector<fs::path> paths;
    if (const char* env = std::getenv("DOGPILE_PLUGIN_PATH"); env != nullptr) {
      std::string_view rest(env);
      while (!rest.empty()) {
        auto colon = rest.find(':');
        if (colon != 0) paths.emplace_back(rest.substr(0, colon));
        if (colon == std::string_view::npos) break;
        rest.remove_prefix(colon + 1);
      }
    }
    paths.insert(paths.end(), extra_paths.begin(), extra_paths.end());
    paths.push_back(installed_plugin_dir());
    return paths;
  }

  // Why code in `file` could have been put there by any user of the machine (the file or its
  // directory is writable by others), as other plugin hosts refuse; empty when it could not.
  static std::string writable_by_anyone(const fs::path& file) {
    std::error_code ec;
    auto writable = [&](const fs::path& p) {
      return (fs::status(p, ec).permissions() & fs::perms::others_write) != fs::perms::none;
    };
    if (writable(file)) return "it is writable by every user (chmod o-w to use it)";
    if (writable(file.parent_path())) {
      return "its directory " + file.parent_path().string() +
             " is writable by every user (chmod o-w to use it)";
    }
    return {};
  }

  void scan_file(const fs::path& file) {
    std::vector<EntryPointInfo> entries;
    try {
      entries = detail::read_manifest(file);
    } catch (const PluginLoadError& e) {
      log(LogLevel::warning, "loader", std::string("skipping ") + e.what());
      return;
    }
    if (entries.empty()) {
      log(LogLevel::debug, "loader", "skipping " + file.string() + ": no dogpile manifest");
    }
    for (auto& entry : entries) {
      entry.incompatible = incompatibility(entry.abi_version, entry.build_tag);
      log(LogLevel::debug, "loader",
          "found " + entry.name + " (" + kind_name(entry.kind) + ") in " + file.string() +
              (entry.incompatible.empty() ? "" : "; not usable: " + entry.incompatible));
      auto [it, inserted] = index.try_emplace(entry.name, entry);
      if (!inserted && it->second.file != file) {
        it->second.shadowed.push_back(file);
        log(LogLevel::warning, "loader",
            "entry point " + entry.name + " in " + file.string() + " is ignored: " +
                it->second.file.string() + " provides it first on the search path");
      }
    }
  }

  void build_index() {
    if (indexed) return;
    index.clear();
    for (const auto& directory : search_path()) {
      std::error_code ec;
      if (!fs::is_directory(directory, ec)) {
        log(LogLevel::debug, "loader", "skipping " + directory.string() + ": no such directory");
        continue;
      }
      log(LogLevel::debug, "loader", "scanning " + directory.string());
      std::vector<fs::path> files;
      fs::recursive_directory_iterator it(directory, fs::directory_options::skip_permission_denied,
                                          ec);
      for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it.depth() >= kScanDepth) it.disable_recursion_pending();
        if (it->is_regular_file(ec) && looks_like_shared_object(it->path())) {
          if (const std::string why = writable_by_anyone(it->path()); !why.empty()) {
            log(LogLevel::warning, "loader", "skipping " + it->path().string() + ": " + why);
            continue;
          }
          files.push_back(it->path());
        }
      }
      std::sort(files.begin(), files.end());
      for (const auto& file : files) scan_file(file);
    }
    indexed = true;
  }

  const EntryPointInfo* find(std::string_view name) {
    if (auto it = registered.find(name); it != registered.end()) return &it->second;
    build_index();
    if (auto it = index.find(name); it != index.end()) return &it->second;
    return nullptr;
  }

  // What to say of a backend name Python dogpile.cache knows and dogpile-cpp does not ship.
  static std::string python_only_hint(std::string_view name) {
    if (name == "dogpile.cache.valkey") {
      return ". It is a Python dogpile.cache backend this version of dogpile-cpp does not "
             "provide";
    }
    return {};
  }

  [[noreturn]] void not_found(std::string_view name) {
    std::string paths;
    for (const auto& p : search_path()) paths += (paths.empty() ? "" : ", ") + p.string();
    std::string names = joined_names(index);
    if (!registered.empty()) names += "; registered: " + joined_names(registered);
    throw PluginNotFound("Couldn't find cache plugin to load: " + std::string(name) +
                         " (searched: " + paths + "; available: " + names + ")" +
                         python_only_hint(name));
  }

  // Why a plugin built for `abi` with `tag` cannot be used here; empty when it can.
  static std::string incompatibility(unsigned abi, std::string_view tag) {
    if (abi != DOGPILE_SDK_ABI_VERSION) {
      return "built for SDK ABI version " + std::to_string(abi) +
             ", but this libdogpile implements version " + std::to_string(DOGPILE_SDK_ABI_VERSION) +
             "; rebuild it against the installed SDK";
    }
    if (tag != DOGPILE_BUILD_TAG) {
      return "built with '" + std::string(tag) + "', but this libdogpile with '" +
             DOGPILE_BUILD_TAG +
             "'; rebuild it with the same compiler, standard library and "
             "nlohmann-json";
    }
    return {};
  }

  static void check_compatible(const std::string& name, const fs::path& file, unsigned abi,
                               std::string_view tag) {
    if (const std::string why = incompatibility(abi, tag); !why.empty()) {
      throw PluginLoadError("plugin " + name + " in " + file.string() + " was " + why);
    }
  }

  // A Boost.DLL failure's reason: dlerror's text, without the errno text Boost appends, which
  // is stale after dlopen and dlsym (they do not set errno).
  static std::string reason(const std::exception& e) {
    std::string text = e.what();
    if (const auto* failure = dynamic_cast<const std::system_error*>(&e)) {
      const std::string stale = ": " + failure->code().message();
      if (text.ends_with(stale)) text.erase(text.size() - stale.size());
    }
    // "boost::dll::shared_library::load() failed (dlerror system message: WHY)": WHY.
    constexpr std::string_view kDlerror = "(dlerror system message: ";
    if (const auto at = text.find(kDlerror); at != std::string::npos && text.ends_with(")")) {
      text = text.substr(at + kDlerror.size(), text.size() - at - kDlerror.size() - 1);
    }
    return text;
  }

  std::shared_ptr<Library> library(const std::string& name, const fs::path& file) {
    if (auto it = libraries.find(file); it != libraries.end()) return it->second;
    std::shared_ptr<Library> lib;
    try {
      // Never unloaded (RTLD_NODELETE): objects and control blocks made by a plugin may
      // outlive every handle on it.
      lib = std::make_shared<Library>(
          file, static_cast<boost::dll::load_mode::type>(RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE));
    } catch (const std::exception& e) {
      throw PluginLoadError("cannot load plugin " + name + " from " + file.string() + ": " +
                            reason(e));
    }
    log(LogLevel::debug, "loader", "loaded " + file.string() + " for " + name);
    libraries.emplace(file, lib);
    return lib;
  }

  // Loads `name` and returns its descriptor, with the library that holds it.
  std::pair<const PluginDescriptor*, std::shared_ptr<Library>> load(std::string_view name,
                                                                    PluginKind kind) {
    const EntryPointInfo* info = find(name);
    if (info == nullptr) {
      indexed = false;  // the path may have changed since the last scan
      info = find(name);
    }
    if (info == nullptr) not_found(name);
    if (info->kind != kind) {
      throw PluginLoadError("plugin " + info->name + " in " + info->file.string() + " is a " +
                            kind_name(info->kind) + ", not a " + kind_name(kind));
    }
    if (!info->registered)
      check_compatible(info->name, info->file, info->abi_version, info->build_tag);
    auto lib = library(info->name, info->file);
    const PluginDescriptor* descriptor = nullptr;
    try {
      descriptor = &lib->get<const PluginDescriptor>(info->symbol);
    } catch (const std::exception& e) {
      throw PluginLoadError("plugin library " + info->file.string() + " has no entry point " +
                            info->symbol + " for " + info->name + ": " + reason(e));
    }
    check_compatible(info->name, info->file, descriptor->abi_version,
                     descriptor->build_tag != nullptr ? descriptor->build_tag : "");
    if (descriptor->kind != kind ||
        (kind == PluginKind::backend ? descriptor->make_backend == nullptr
                                     : descriptor->make_proxy == nullptr)) {
      throw PluginLoadError("symbol " + info->symbol + " in " + info->file.string() +
                            " does not describe a " + kind_name(kind) + " plugin");
    }
    return {descriptor, std::move(lib)};
  }
};

PluginLoader& PluginLoader::instance() {
  static PluginLoader loader;
  return loader;
}

PluginLoader::PluginLoader() : impl_(std::make_unique<Impl>()) {}
PluginLoader::~PluginLoader() = default;

void PluginLoader::add_search_path(const fs::path& directory) {
  std::lock_guard guard(impl_->mutex);
  if (std::find(impl_->extra_paths.begin(), impl_->extra_paths.end(), directory) ==
      impl_->extra_paths.end()) {
    impl_->extra_paths.push_back(directory);
    impl_->indexed = false;
  }
}

std::vector<fs::path> PluginLoader::search_path() const {
  std::lock_guard guard(impl_->mutex);
  return impl_->search_path();
}

std::vector<EntryPointInfo> PluginLoader::list() {
  std::lock_guard guard(impl_->mutex);
  impl_->indexed = false;
  impl_->build_index();
  std::map<std::string, EntryPointInfo, std::less<>> all = impl_->index;
  for (const auto& [name, info] : impl_->registered) all.insert_or_assign(name, info);
  std::vector<EntryPointInfo> out;
  for (auto& [name, info] : all) out.push_back(std::move(info));
  return out;
}

void PluginLoader::register_backend(std::string_view name, const fs::path& library,
                                    std::string_view symbol) {
  EntryPointInfo info;
  info.name = std::string(name);
  info.file = fs::absolute(library);
  info.symbol = std::string(symbol);
  info.registered = true;
  info.description = "registered at run time";
  std::lock_guard guard(impl_->mutex);
  impl_->backend_factories.erase(info.name);
  impl_->proxy_factories.erase(info.name);
  impl_->registered.insert_or_assign(info.name, std::move(info));
}

namespace {

// Registers `factory` under `name` in `own`; the name leaves `other` (the other kind's).
template <class Maker, class Other>
void register_in_process(std::mutex& mutex,
                         std::map<std::string, EntryPointInfo, std::less<>>& registered,
                         std::map<std::string, Maker, std::less<>>& own,
                         std::map<std::string, Other, std::less<>>& other, std::string_view name,
                         PluginKind kind, Maker factory, std::string description) {
  if (name.empty()) throw ValidationError("a registered plugin needs a name");
  if (!factory) {
    throw ValidationError("register_" + std::string(kind_name(kind)) + ": an empty factory for " +
                          std::string(name));
  }
  EntryPointInfo info;
  info.name = std::string(name);
  info.kind = kind;
  info.registered = true;
  info.in_process = true;
  info.description = std::move(description);
  std::lock_guard guard(mutex);
  other.erase(info.name);
  own.insert_or_assign(info.name, std::move(factory));
  registered.insert_or_assign(info.name, std::move(info));
}

}  // namespace

void PluginLoader::register_backend(std::string_view name, BackendMaker factory,
                                    std::string description) {
  register_in_process(impl_->mutex, impl_->registered, impl_->backend_factories,
                      impl_->proxy_factories, name, PluginKind::backend, std::move(factory),
                      std::move(description));
}

void PluginLoader::register_proxy(std::string_view name, ProxyMaker factory,
                                  std::string description) {
  register_in_process(impl_->mutex, impl_->registered, impl_->proxy_factories,
                      impl_->backend_factories, name, PluginKind::proxy, std::move(factory),
                      std::move(description));
}

std::optional<EntryPointInfo> PluginLoader::find(std::string_view name) {
  std::lock_guard guard(impl_->mutex);
  const EntryPointInfo* info = impl_->find(name);
  if (info == nullptr) {
    impl_->indexed = false;
    info = impl_->find(name);
  }
  return info != nullptr ? std::optional<EntryPointInfo>(*info) : std::nullopt;
}

void PluginLoader::rescan() {
  std::lock_guard guard(impl_->mutex);
  impl_->indexed = false;
}

namespace {

// Objects a plugin made hold its library: it stays loaded while any of them is alive.
// Where an entry point comes from, for messages: the file used and the other files that
// provide its name too.
struct Provenance {
  fs::path used;
  std::vector<fs::path> shadowed;
};

// A plugin's argument error, with what may be behind it: an argument nobody asked for (a
// misspelling of the one it lacks), and other files providing the same name (an older copy
// first on the path, whose arguments differ).
[[noreturn]] void throw_argument_error(const ValidationError& e, std::string_view name,
                                       const Arguments& arguments, const Provenance& from) {
  std::string message = e.what();
  if (std::string unknown = arguments.unknown_argument_message(name);
      !unknown.empty() && message.find(unknown) == std::string::npos) {
    message += "; also " + unknown;
  }
  for (const auto& file : from.shadowed) {
    message += "; note: " + std::string(name) + " comes from " + from.used.string() +
               "; it is also provided by " + file.string() +
               ", which comes later on the plugin path and is not used";
  }
  throw ValidationError(message);
}

template <class Base, class Factory>
std::shared_ptr<Base> make_from(Factory factory, const std::shared_ptr<Library>& lib,
                                std::string_view name, const Arguments& arguments,
                                const PluginContext& context, const Provenance& from) {
  std::unique_ptr<Base> made;
  try {
    if constexpr (std::is_invocable_v<Factory&, const Arguments&, const PluginContext&>) {
      made = factory(arguments, context);
    } else {
      made = factory(arguments);  // registered in this process
    }
  } catch (const ValidationError& e) {
    throw_argument_error(e, name, arguments, from);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(std::string(name) + " failed to start: " + e.what());
  } catch (...) {
    throw Error(std::string(name) +
                " failed to start: it threw something that is not an exception");
  }
  if (!made) throw PluginLoadError("plugin " + std::string(name) + " made no object");
  try {
    arguments.reject_unknown(name);
  } catch (const ValidationError& e) {
    throw_argument_error(e, name, arguments, from);
  }
  return std::shared_ptr<Base>(made.release(), [lib](Base* object) { delete object; });
}

// What a region hands the plugins it makes: its name and clock, and `loader` to make others.
class RegionContext final : public PluginContext {
 public:
  RegionContext(PluginLoader& loader, std::string region_name, std::shared_ptr<const Clock> clock)
      : loader_(loader), region_name_(std::move(region_name)), clock_(std::move(clock)) {}
  const std::string& region_name() const noexcept override { return region_name_; }
  std::shared_ptr<const Clock> clock() const override { return clock_; }
  std::shared_ptr<CacheBackend> make_backend(std::string_view name,
                                             const Arguments& arguments) const override {
    return loader_.make_backend(name, arguments, *this);
  }

 private:
  PluginLoader& loader_;
  const std::string region_name_;
  const std::shared_ptr<const Clock> clock_;
};

}  // namespace

std::unique_ptr<PluginContext> PluginLoader::context_for(std::string region_name,
                                                         std::shared_ptr<const Clock> clock) {
  return std::make_unique<RegionContext>(*this, std::move(region_name),
                                         clock ? std::move(clock) : SystemClock::instance());
}

std::shared_ptr<CacheBackend> PluginLoader::make_backend(std::string_view name,
                                                         const Arguments& arguments) {
  return make_backend(name, arguments, *context_for({}, nullptr));
}

std::shared_ptr<CacheBackend> PluginLoader::make_backend(std::string_view name,
                                                         const Arguments& arguments,
                                                         const PluginContext& context) {
  std::unique_lock guard(impl_->mutex);
  if (auto it = impl_->backend_factories.find(name); it != impl_->backend_factories.end()) {
    BackendMaker factory = it->second;
    guard.unlock();
    return make_from<CacheBackend>(factory, nullptr, name, arguments, context, {});
  }
  auto [descriptor, lib] = impl_->load(name, PluginKind::backend);
  const EntryPointInfo& info = *impl_->find(name);
  const Provenance from{info.file, info.shadowed};
  guard.unlock();
  return make_from<CacheBackend>(descriptor->make_backend, lib, name, arguments, context, from);
}

std::shared_ptr<ProxyBackend> PluginLoader::make_proxy(std::string_view name,
                                                       const Arguments& arguments) {
  return make_proxy(name, arguments, *context_for({}, nullptr));
}

std::shared_ptr<ProxyBackend> PluginLoader::make_proxy(std::string_view name,
                                                       const Arguments& arguments,
                                                       const PluginContext& context) {
  std::unique_lock guard(impl_->mutex);
  if (auto it = impl_->proxy_factories.find(name); it != impl_->proxy_factories.end()) {
    ProxyMaker factory = it->second;
    guard.unlock();
    return make_from<ProxyBackend>(factory, nullptr, name, arguments, context, {});
  }
  auto [descriptor, lib] = impl_->load(name, PluginKind::proxy);
  const EntryPointInfo& info = *impl_->find(name);
  const Provenance from{info.file, info.shadowed};
  guard.unlock();
  return make_from<ProxyBackend>(descriptor->make_proxy, lib, name, arguments, context, from);
}

void register_backend(std::string_view name, const fs::path& library, std::string_view symbol) {
  PluginLoader::instance().register_backend(name, library, symbol);
}

void register_backend(std::string_view name, BackendMaker factory) {
  PluginLoader::instance().register_backend(name, std::move(factory));
}

void register_proxy(std::string_view name, ProxyMaker factory) {
  PluginLoader::instance().register_proxy(name, std::move(factory));
}

}  // namespace dogpile
