// The conformance kit: checks that a backend plugin keeps the contract every backend keeps
// (see sdk/README.md, "Writing a backend plugin"), loading it by entry-point name as an
// application would. Each check runs on a fresh region and backend object, uses keys of its own (unique
// to this run, removed afterwards) and ends as passed, failed (with what was expected) or
// skipped (with why: a capability the backend declares it does not have).
#pragma once

#include <dogpile/dogpile.hpp>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dogpile::conformance {

// What to check, from the command line.
struct Target {
  std::string backend;
  nlohmann::json arguments = nlohmann::json::object();
  std::vector<std::string> plugin_paths;
  std::string self;  // this program, run again as the second process of the lock check
};

// A check's expectation was not met.
struct Failed {
  std::string why;
};
// A check does not apply to this backend.
struct Skipped {
  std::string why;
};

inline void expect(bool condition, const std::string& what) {
  if (!condition) throw Failed{what};
}

// A check's world: a region on the backend under test and unique keys.
class Fixture {
 public:
  Fixture(const Target& target, std::string_view check);
  ~Fixture();
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;

  const Target& target() const { return target_; }
  // A region on the backend under test, made on first use; its keys are removed at the end.
  CacheRegion& region();
  // Another region on a new object of the backend under test (for an in-process backend,
  // another store), with `options` and the target's arguments.
  std::shared_ptr<CacheRegion> another_region(ConfigureOptions options = {});
  // The backend the plugin made for region().
  CacheBackend& backend() { return *region().actual_backend(); }
  const BackendCapabilities& capabilities() { return capabilities_; }

  // A key unique to this run and check, as the application names it.
  std::string key(std::string_view name);
  // The same key as the backend stores it: through the backend's recommended mangler.
  std::string backend_key(std::string_view name);

  // Throws Skipped unless the backend stores values.
  void require_storage();

 private:
  const Target& target_;
  std::string prefix_;
  std::shared_ptr<CacheRegion> region_;
  BackendCapabilities capabilities_;
  Keys used_;  // application keys, removed at the end
};

// The wire format of `payload`, created now.
std::string wire(std::string_view payload);

struct Check {
  std::string name;
  std::function<void(Fixture&)> run;
};

std::vector<Check> backend_checks();
std::vector<Check> region_checks();
std::vector<Check> concurrency_checks();

// The second process of the cross-process lock check: `job` is "ROUNDS:KEY".
int lock_worker(const Target& target, const std::string& shared_file, const std::string& job);

}  // namespace dogpile::conformance
