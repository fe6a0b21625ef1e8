// dogpile-conformance BACKEND_NAME [--arguments JSON] [--plugin-path DIR]...
//
// Loads the backend plugin BACKEND_NAME as an application would and checks the contract
// every backend keeps. Prints one line per check (PASS, FAIL with why, SKIP with why), then
// "N passed, N failed, N skipped". Exit status: 0 when nothing failed, 1 when a check
// failed, 2 when the backend could not be checked at all (unknown plugin, bad arguments).
#include <unistd.h>

#include <boost/core/demangle.hpp>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <typeinfo>

#include "conformance.hpp"

namespace dogpile::conformance {

namespace {

std::string run_prefix() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return "dogpile-conformance:" + std::to_string(::getpid()) + ":" +
         std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(now).count()) + ":";
}

}  // namespace

Fixture::Fixture(const Target& target, std::string_view check)
    : target_(target), prefix_(run_prefix() + std::string(check) + ":") {
  capabilities_ = region().backend()->capabilities();
}

Fixture::~Fixture() {
  if (!region_ || used_.empty()) return;
  try {
    region_->remove_multi(used_);
  } catch (const std::exception& e) {
    std::cerr << "dogpile-conformance: could not remove the check's keys: " << e.what() << "\n";
  }
}

CacheRegion& Fixture::region() {
  if (!region_) region_ = another_region();
  return *region_;
}

std::shared_ptr<CacheRegion> Fixture::another_region(ConfigureOptions options) {
  auto region = make_region("conformance");
  options.arguments = target_.arguments;
  region->configure(target_.backend, std::move(options));
  return region;
}

std::string Fixture::key(std::string_view name) {
  used_.push_back(prefix_ + std::string(name));
  return used_.back();
}

std::string Fixture::backend_key(std::string_view name) {
  const std::string application_key = key(name);
  const KeyMangler mangler = backend().key_mangler();
  return mangler ? mangler(application_key) : application_key;
}

void Fixture::require_storage() {
  if (!capabilities_.stores_values) {
    throw Skipped{"the backend declares that it stores nothing (capabilities().stores_values)"};
  }
}

std::string wire(std::string_view payload) {
  return serialize_cached_value(CachedValue(payload, {now_seconds(), kValueVersion}));
}

namespace {

int usage(const std::string& problem) {
  std::cerr << "dogpile-conformance: " << problem
            << "\nusage: dogpile-conformance BACKEND_NAME [--arguments JSON] [--plugin-path "
               "DIR]...\n";
  return 2;
}

int run(const Target& target) {
  std::size_t passed = 0, failed = 0, skipped = 0;
  std::vector<Check> checks = backend_checks();
  for (auto more : {region_checks(), concurrency_checks()}) {
    checks.insert(checks.end(), more.begin(), more.end());
  }
  for (const Check& check : checks) {
    std::string line;
    try {
      Fixture fixture(target, check.name);
      check.run(fixture);
      line = "PASS " + check.name;
      ++passed;
    } catch (const Skipped& skip) {
      line = "SKIP " + check.name + ": " + skip.why;
      ++skipped;
    } catch (const Failed& failure) {
      line = "FAIL " + check.name + ": " + failure.why;
      ++failed;
    } catch (const std::exception& e) {
      line = "FAIL " + check.name + ": unexpected " + boost::core::demangle(typeid(e).name()) +
             ": " + e.what();
      ++failed;
    }
    std::cout << line << std::endl;
  }
  std::cout << passed << " passed, " << failed << " failed, " << skipped << " skipped" << std::endl;
  return failed == 0 ? 0 : 1;
}

}  // namespace

}  // namespace dogpile::conformance

int main(int argc, char** argv) {
  using namespace dogpile::conformance;
  Target target;
  target.self = std::filesystem::canonical("/proc/self/exe").string();
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string worker_file, worker_job;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    const bool has_value = i + 1 < args.size();
    if (arg == "--help" || arg == "-h") {
      std::cout << "usage: dogpile-conformance BACKEND_NAME [--arguments JSON] "
                   "[--plugin-path DIR]...\n"
                   "Checks that a backend plugin keeps dogpile-cpp's backend contract.\n";
      return 0;
    } else if (arg == "--arguments" && has_value) {
      target.arguments = nlohmann::json::parse(args[++i], nullptr, false);
      if (!target.arguments.is_object()) return usage("--arguments is not a JSON object");
    } else if (arg == "--plugin-path" && has_value) {
      target.plugin_paths.push_back(args[++i]);
    } else if (arg == "--lock-worker" && i + 2 < args.size()) {  // internal: the second process
      worker_file = args[++i];
      worker_job = args[++i];
    } else if (arg.starts_with("-")) {
      return usage("unknown option or missing value: " + arg);
    } else if (target.backend.empty()) {
      target.backend = arg;
    } else {
      return usage("one backend at a time, not also " + arg);
    }
  }
  if (target.backend.empty()) return usage("which backend? give its entry-point name");
  for (const auto& path : target.plugin_paths) {
    dogpile::PluginLoader::instance().add_search_path(path);
  }
  try {
    // Fails here, once, when the plugin cannot be loaded or refuses the arguments.
    dogpile::make_region("conformance")->configure(target.backend, {.arguments = target.arguments});
    if (!worker_file.empty()) return lock_worker(target, worker_file, worker_job);
  } catch (const std::exception& e) {
    std::cerr << "dogpile-conformance: " << e.what() << "\n";
    return 2;
  }
  return run(target);
}
