// The `dogpile` command: runs the demo, lists the plugins it can find, and checks config
// files by configuring every region in them.
#include <chrono>
#include <cstdio>
#include <dogpile/dogpile.hpp>
#include <iostream>
#include <string>
#include <thread>

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

int usage() {
  std::cerr << "usage:\n"
               "  dogpile demo [CONFIG]   show a cache at work (default: the embedded "
               "configs/demo.json, memory backend)\n"
               "  dogpile plugins         list every backend and proxy plugin found\n"
               "  dogpile check CONFIG    configure every region of a JSON or INI file\n";
  return 2;
}

int demo(const char* config_path) {
  auto regions = config_path != nullptr ? dogpile::load_regions(config_path)
                                        : dogpile::configure_regions(dogpile::parse_json_config(
                                              kEmbeddedDemoConfig, "<embedded configs/demo.json>"));
  auto& region = *regions.begin()->second;
  std::printf("region %s on %s, values expire after %s\n\n", region.name().c_str(),
              region.backend_name().c_str(), expiration_text(region).c_str());
  int hits = 0, misses = 0, created = 0;
  auto lookup = [&](const std::string& user) {
    const auto start = std::chrono::steady_clock::now();
    auto profile = region.get<Profile>(user);
    const bool hit = profile != nullptr;
    if (hit) {
      ++hits;
    } else {
      ++misses;
      ++created;
      region.set(user, load_profile(user));
      profile = region.get<Profile>(user);
    }
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    auto meta = region.get_value_metadata(user);
    std::printf("  %-5s %-6s -> {name: %s, score: %d}  %6.1f ms  (value age %.2f s)\n",
                hit ? "hit" : "miss", user.c_str(), profile->name.c_str(), profile->score, ms,
                meta ? meta->age() : 0.0);
  };

  std::printf("first lookups (a miss creates the value, a hit is served from the cache):\n");
  for (const char* user : {"alice", "bob", "alice", "carol", "bob", "alice"}) lookup(user);

  const double wait = region.expiration_time().value_or(0) + 0.2;
  std::printf("\nwaiting %.1f s for the values to expire...\n", wait);
  std::this_thread::sleep_for(std::chrono::duration<double>(wait));
  lookup("alice");

  std::printf("\nregion.invalidate(): every value created before now is stale\n");
  region.invalidate();
  lookup("alice");
  lookup("alice");

  std::printf("\nregion.remove(\"bob\")\n");
  region.remove("bob");
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
  const std::string command = argc > 1 ? argv[1] : "demo";
  try {
    if (command == "demo" && argc <= 3) return demo(argc == 3 ? argv[2] : nullptr);
    if (command == "plugins" && argc == 2) return list_plugins();
    if (command == "check" && argc == 3) return check(argv[2]);
  } catch (const dogpile::Error& e) {
    std::cerr << "dogpile: " << e.what() << "\n";
    return 1;
  }
  return usage();
}
