// What several test programs share: the storing backends to run scenarios on, a configured
// region, message checks and scratch directories.
#pragma once

#include <unistd.h>

#include <atomic>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <dogpile/dogpile.hpp>
#include <dogpile/sdk/sdk.hpp>
#include <filesystem>
#include <fstream>
#include <latch>
#include <ostream>
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

// Counts the reads (get, get_multi) that pass through it, and can hold one thread's next read,
// once answered, until the test releases it: a caller stopped between its read and the lock.
class ReadGate final : public dogpile::InterceptingProxy {
 public:
  std::atomic<int> reads{0};

  // The calling thread's next read waits for `release` once it has its answer.
  void hold_my_next_read(std::latch& release) {
    release_ = &release;
    held_ = std::this_thread::get_id();
  }

 protected:
  void intercept(dogpile::ProxiedCall& call) override {
    call.proceed();
    const auto op = call.operation();
    if (op != dogpile::CacheOperation::get && op != dogpile::CacheOperation::get_multi) return;
    ++reads;
    if (held_ == std::this_thread::get_id()) {
      held_ = std::thread::id();
      release_->wait();
    }
  }

 private:
  std::atomic<std::thread::id> held_{};
  std::latch* release_ = nullptr;  // set and read by the held thread only
};

// When the second caller reads the key, against the first caller's creation.
enum class Arrival { before, during, after };

inline std::ostream& operator<<(std::ostream& out, Arrival arrival) {
  return out << (arrival == Arrival::before   ? "before"
                 : arrival == Arrival::during ? "during"
                                              : "after");
}

// What the second caller got, and how often its own creator ran.
struct WaiterOutcome {
  int got = 0;
  int own_creations = 0;
};

// The dogpile lock's promise under `a` and `b`, two regions on one backend sharing `clock`
// (or one region twice), whose value of "k" has expired or is missing: caller A makes it with
// a creator that takes 0.5 s by the clock; caller B (in another thread) reads it `arrival`
// A's creation: before it starts (B is then held between its read and the lock until A has
// stored its value), while it runs, or after A returned. B must get A's value (1) without
// running its own creator, whatever the region's expiration time (a value made slower than it
// lives) and serve_stale. `b_gate` is on B's region. `multi`: both ask with
// get_or_create_multi.
inline WaiterOutcome second_caller_around_a_creation(dogpile::CacheRegion& a,
                                                     dogpile::CacheRegion& b,
                                                     dogpile::ManualClock& clock, ReadGate& b_gate,
                                                     Arrival arrival, bool multi) {
  auto ask = [multi](dogpile::CacheRegion& region, auto creator) -> int {
    if (!multi) return *region.get_or_create("k", creator);
    auto values = region.get_or_create_multi(
        {"k"}, [&](const dogpile::Keys& keys) { return std::vector<int>(keys.size(), creator()); });
    return *values.at(0);
  };
  std::latch a_started(1);
  std::latch a_go(1);
  std::latch b_go(1);
  int a_got = 0;
  auto run_a = [&] {
    a_got = ask(a, [&] {
      if (arrival == Arrival::during) {
        a_started.count_down();
        a_go.wait();
      }
      clock.advance(0.5);  // the creator's work
      return 1;
    });
  };
  WaiterOutcome outcome;
  auto run_b = [&] {
    if (arrival == Arrival::before) b_gate.hold_my_next_read(b_go);
    outcome.got = ask(b, [&] {
      ++outcome.own_creations;
      return 2;
    });
  };
  // Starts B and waits until it has read (a or b may be one region: A's reads count too).
  auto start_b = [&](bool& b_read) {
    const int reads_before = b_gate.reads.load();
    std::thread waiter_b(run_b);
    b_read = wait_until([&] { return b_gate.reads.load() > reads_before; });
    return waiter_b;
  };
  bool b_read = true;
  if (arrival == Arrival::before) {
    std::thread waiter_b = start_b(b_read);  // B is held after its read
    std::thread(run_a).join();
    b_go.count_down();
    waiter_b.join();
  } else if (arrival == Arrival::during) {
    std::thread creator_a(run_a);
    a_started.wait();
    std::thread waiter_b = start_b(b_read);
    a_go.count_down();
    creator_a.join();
    waiter_b.join();
  } else {
    std::thread(run_a).join();
    std::thread(run_b).join();
  }
  BOOST_TEST(b_read);
  BOOST_TEST(a_got == 1);
  return outcome;
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
