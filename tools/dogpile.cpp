// The `dogpile` command: runs the demo, lists the plugins it can find, and checks config
// files by configuring every region in them.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <dogpile/dogpile.hpp>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "demo_config.hpp"

namespace {

struct Profile {
  std::string name;
  int score = 0;
  NLOHMANN_DEFINE_TYPE_INTRUSIVE(Profile, name, score)
};

// The "expensive" computation the cache saves.
Profile load_profile(const std::string& user) {
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return Profile{user, static_cast<int>(user.size()) * 10};
}

std::string expiration_text(const dogpile::CacheRegion& region) {
  auto seconds = region.expiration_time();
  return seconds ? dogpile::python_float_repr(*seconds) + " s" : "never";
}

constexpr const char* kUsage =
    "usage:\n"
    "  dogpile demo [CONFIG [REGION]]  show a cache at work (default: the embedded\n"
    "                                  configs/demo.json, memory backend)\n"
    "  dogpile plugins                 list every backend and proxy plugin found\n"
    "  dogpile check CONFIG            configure every region of a JSON or INI file\n"
    "  dogpile --help                  this text\n"
    "exit status: 0 done, 1 failed (the reason on stderr), 2 bad usage\n";

int usage(const std::string& problem) {
  std::cerr << "dogpile: " << problem << "\n" << kUsage;
  return 2;
}

// The region the demo runs on: the one named, else the first (by name) whose backend stores
// values, so that a file whose first region is dogpile.cache.null still shows a cache.
dogpile::CacheRegion& demo_region(
    const std::map<std::string, std::shared_ptr<dogpile::CacheRegion>>& regions,
    const char* config_path, const char* name) {
  if (name != nullptr) {
    auto it = regions.find(name);
    if (it != regions.end()) return *it->second;
    std::string names;
    for (const auto& entry : regions) names += " " + entry.first;
    throw dogpile::ConfigError(std::string(config_path) + " has no region " + name +
                               "; its regions:" + names);
  }
  for (const auto& entry : regions) {
    if (entry.second->backend()->capabilities().stores_values) return *entry.second;
  }
  throw dogpile::ConfigError(std::string(config_path != nullptr ? config_path : "the config") +
                             " has no region whose backend stores values");
}

// The longest the demo waits for values to expire.
constexpr double kLongestWait = 5.0;

int demo(const char* config_path, const char* region_name) {
  auto regions = config_path != nullptr ? dogpile::load_regions(config_path)
                                        : dogpile::configure_regions(dogpile::parse_json_config(
                                              kEmbeddedDemoConfig, "<embedded configs/demo.json>"));
  auto& region = demo_region(regions, config_path, region_name);
  // Keys of its own, removed at the end: the demo may run against a production cache.
  const std::string prefix = "dogpile-demo:" + std::to_string(::getpid()) + ":";
  struct RemoveKeys {
    dogpile::CacheRegion& region;
    dogpile::Keys keys;
    ~RemoveKeys() {
      try {
        region.remove_multi(keys);
      } catch (const std::exception& e) {
        std::cerr << "dogpile: could not remove the demo's keys: " << e.what() << "\n";
      }
    }
  } cleanup{region, {}};
  std::printf("region %s on %s, values expire after %s (%zu region(s) in the config)\n",
              region.name().c_str(), region.backend_name().c_str(), expiration_text(region).c_str(),
              regions.size());
  std::printf("keys start with %s and are removed at the end\n\n", prefix.c_str());
  int hits = 0, misses = 0, created = 0;
  auto lookup = [&](const std::string& user) {
    const std::string key = prefix + user;
    if (std::find(cleanup.keys.begin(), cleanup.keys.end(), key) == cleanup.keys.end()) {
      cleanup.keys.push_back(key);
    }
    const auto start = std::chrono::steady_clock::now();
    auto profile = region.get<Profile>(key);
    const bool hit = profile != nullptr;
    if (hit) {
      ++hits;
    } else {
      ++misses;
      ++created;
      profile = std::make_shared<const Profile>(load_profile(user));
      region.set(key, *profile);
    }
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    auto meta = region.get_value_metadata(key);
    std::printf("  %-5s %-6s -> {name: %s, score: %d}  %6.1f ms  (value age %.2f s)\n",
                hit ? "hit" : "miss", user.c_str(), profile->name.c_str(), profile->score, ms,
                meta ? meta->age() : 0.0);
  };

  std::printf("first lookups (a miss creates the value, a hit is served from the cache):\n");
  for (const char* user : {"alice", "bob", "alice", "carol", "bob", "alice"}) lookup(user);

  if (const auto expiration = region.expiration_time(); !expiration) {
    std::printf("\nvalues never expire: not waiting for them\n");
  } else if (*expiration > kLongestWait) {
    std::printf("\nvalues expire after %s: longer than the demo waits (%.0f s)\n",
                expiration_text(region).c_str(), kLongestWait);
  } else {
    std::printf("\nwaiting %.1f s for the values to expire...\n", *expiration + 0.2);
    std::this_thread::sleep_for(std::chrono::duration<double>(*expiration + 0.2));
    lookup("alice");
  }

  std::printf("\nregion.invalidate(): every value created before now is stale\n");
  region.invalidate();
  lookup("alice");
  lookup("alice");

  std::printf("\nregion.remove(\"bob\")\n");
  region.remove(prefix + "bob");
  lookup("bob");

  std::printf("\n%d lookups: %d hits, %d misses, %d values created\n", hits + misses, hits, misses,
              created);
  return 0;
}

int list_plugins() {
  auto entries = dogpile::PluginLoader::instance().list();
  if (entries.empty()) {
    std::cout << "no plugins found; searched:\n";
    for (const auto& p : dogpile::PluginLoader::instance().search_path()) {
      std::cout << "  " << p.string() << "\n";
    }
    return 1;
  }
  for (const auto& entry : entries) {
    std::cout << entry.name << "  ("
              << (entry.kind == dogpile::PluginKind::proxy ? "proxy" : "backend")
              << (entry.version.empty() ? "" : " " + entry.version) << ")\n"
              << "    " << entry.description << "\n"
              << "    " << entry.file.string() << "\n";
    if (!entry.incompatible.empty()) {
      std::cout << "    NOT USABLE: " << entry.incompatible << "\n";
    }
    for (const auto& other : entry.shadowed) {
      std::cout << "    also in " << other.string() << " (ignored: first on the path wins)\n";
    }
  }
  return 0;
}

int check(const char* path) {
  auto regions = dogpile::load_regions(path);
  for (const auto& [name, region] : regions) {
    std::cout << name << ": " << region->backend_name() << ", expiration "
              << expiration_text(*region) << "\n";
  }
  std::cout << path << ": " << regions.size() << " region(s) OK\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  const std::string command = args.empty() ? "demo" : args[0];
  auto arg = [&](std::size_t i) { return i < args.size() ? args[i].c_str() : nullptr; };
  try {
    if (command == "--help" || command == "-h" || command == "help") {
      std::cout << kUsage;
      return 0;
    }
    if (command == "demo" && args.size() <= 3) return demo(arg(1), arg(2));
    if (command == "plugins" && args.size() == 1) return list_plugins();
    if (command == "check" && args.size() == 2) return check(arg(1));
    if (command == "demo" || command == "plugins" || command == "check") {
      return usage("wrong arguments for " + command);
    }
    return usage("unknown command '" + command + "'");
  } catch (const std::exception& e) {
    std::cerr << "dogpile: " << e.what() << "\n";
  } catch (...) {
    std::cerr << "dogpile: failed with an exception that is not a std::exception\n";
  }
  return 1;
}
