// What several test programs share: the storing backends to run scenarios on, a configured
// region, message checks and scratch directories.
#pragma once

#include <unistd.h>

#include <atomic>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <dogpile/dogpile.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace test {

// The backends that store values, one of each family.
inline const std::vector<std::string> kStoringBackends = {"dogpile.cache.memory",
                                                          "dogpile.cache.memory_pickle"};

inline std::shared_ptr<dogpile::CacheRegion> region_on(const std::string& backend,
                                                       dogpile::ConfigureOptions options = {}) {
  auto region = dogpile::make_region("test");
  region->configure(backend, std::move(options));
  return region;
}

// Waits (yielding) until `condition()` holds, at most 10 s: a bound that turns a broken lock
// into a failure, not a hang. Returns whether it held.
template <class Condition>
bool wait_until(Condition&& condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// wait_until for a thread other than the test's, where Boost.Test's checks must not run (they
// are not thread-safe): a wait that timed out is counted in `timeouts`, which the test checks
// on its own thread.
template <class Condition>
void wait_in_worker(Condition&& condition, std::atomic<int>& timeouts) {
  if (!wait_until(std::forward<Condition>(condition))) ++timeouts;
}

// Whether the exception's message contains `text`; logs the message when it does not.
inline bool message_contains(const std::exception& e, const std::string& text) {
  if (std::string(e.what()).find(text) != std::string::npos) return true;
  BOOST_TEST_MESSAGE("message was: " << e.what());
  return false;
}

// A fresh directory under the system's temporary one, removed with the object.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    static int n = 0;
    path = std::filesystem::temp_directory_path() /
           ("dogpile-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

// A file holding `text` in its own TempDir.
struct TempFile {
  TempDir dir;
  std::filesystem::path path;
  TempFile(const std::string& name, const std::string& text) : path(dir.path / name) {
    std::ofstream(path) << text;
  }
};

}  // namespace test
