// The dogpile lock and the region operations built on it: get_or_create,
// get_or_create_multi, invalidation and background regeneration.
#define BOOST_TEST_MODULE lock
#include <atomic>
#include <barrier>
#include <boost/test/data/monomorphic.hpp>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <condition_variable>
#include <dogpile/dogpile.hpp>
#include <map>
#include <mutex>
#include <thread>

#include "helpers.hpp"

namespace data = boost::unit_test::data;
using dogpile::CacheRegion;
using dogpile::Timestamped;
using namespace std::chrono_literals;
using test::kStoringBackends;
using test::region_on;
using test::wait_in_worker;
using test::wait_until;

namespace {

// A region on `backend` whose time is `clock`'s.
std::shared_ptr<CacheRegion> region_with_clock(const std::string& backend,
                                               std::shared_ptr<dogpile::ManualClock> clock,
                                               dogpile::ConfigureOptions options = {},
                                               dogpile::AsyncCreationRunner runner = {}) {
  auto region = dogpile::make_region(
      {.name = "test", .async_creation_runner = std::move(runner), .clock = std::move(clock)});
  region->configure(backend, std::move(options));
  return region;
}

// A mutex that counts what is done to it.
class CountingMutex : public dogpile::CacheMutex {
 public:
  bool acquire(bool wait) override {
    ++acquires;
    if (wait) {
      mutex_.lock();
      return held_ = true;
    }
    return held_ = mutex_.try_lock();
  }
  void release() override {
    ++releases;
    held_ = false;
    mutex_.unlock();
  }
  bool locked() const override { return held_; }
  std::atomic<int> acquires{0};
  std::atomic<int> releases{0};

 private:
  std::mutex mutex_;
  std::atomic<bool> held_{false};
};

using Entry = Timestamped<int>;

// A lock as a server's may behave: acquire gives up (its blocking timeout ran out), and
// release throws (the server is gone, or the lock is not ours).
class UnreliableMutex : public dogpile::CacheMutex {
 public:
  explicit UnreliableMutex(bool grants) : grants_(grants) {}
  bool acquire(bool) override { return grants_; }
  void release() override { throw dogpile::BackendUnavailable("lock server at 127.0.0.1:1 gone"); }
  bool locked() const override { return false; }

 private:
  bool grants_;
};

// A proxy whose backend gives UnreliableMutex locks.
struct UnreliableLocks : dogpile::ProxyBackend {
  explicit UnreliableLocks(bool grants) : grants(grants) {}
  std::unique_ptr<dogpile::CacheMutex> get_mutex(std::string_view) override {
    return std::make_unique<UnreliableMutex>(grants);
  }
  bool grants;
};

// A key's steps as the lock's tests drive them: int values that live 10 s, a CountingMutex,
// and a reader, a creator and a background creator each test sets.
struct Steps {
  using Value = int;
  double now = dogpile::now_seconds();
  std::shared_ptr<CountingMutex> the_mutex = std::make_shared<CountingMutex>();
  std::function<std::optional<Entry>()> reader = [] { return std::optional<Entry>(); };
  std::function<int()> creator = [] { return 8; };
  std::function<void(std::shared_ptr<dogpile::CacheMutex>)> background;  // empty: none
  bool stale_served = true;
  int created = 0;

  // `value`, written `age` seconds ago (past its 10 s).
  Entry stale(int value, double age = 100) const { return Entry{value, now - age, now - age}; }

  bool fresh(const std::optional<Entry>& value) const {
    return value && value->created > 0 && now - value->created <= 10;
  }
  bool serve_stale() const { return stale_served; }
  std::shared_ptr<dogpile::CacheMutex> mutex() { return the_mutex; }
  bool wait(dogpile::CacheMutex& mutex, const std::function<bool()>& arrived) {
    return mutex.acquire_until(dogpile::CacheMutex::Deadline::max(), arrived);
  }
  std::optional<Entry> read() { return reader(); }
  int create(std::shared_ptr<dogpile::CacheMutex>&) {
    ++created;
    return creator();
  }
  bool create_in_background(std::shared_ptr<dogpile::CacheMutex>& held) {
    if (!background) return false;
    background(held);
    held = nullptr;
    return true;
  }
};

}  // namespace

// The lock on its own ------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(lock_algorithm)

BOOST_AUTO_TEST_CASE(a_fresh_value_is_returned_without_touching_the_mutex) {
  Steps steps;
  BOOST_TEST(dogpile::dogpile_lock(steps, Entry{7, steps.now, steps.now}) == 7);
  BOOST_TEST(steps.created == 0);
  BOOST_TEST(steps.the_mutex->acquires == 0);
}

BOOST_AUTO_TEST_CASE(a_stale_value_is_served_at_once_while_someone_else_regenerates) {
  Steps steps;
  steps.the_mutex->acquire(true);  // someone else is regenerating
  BOOST_TEST(dogpile::dogpile_lock(steps, steps.stale(7)) == 7);
  BOOST_TEST(steps.created == 0);
  steps.the_mutex->release();
}

BOOST_AUTO_TEST_CASE(a_stale_value_is_regenerated_by_the_caller_that_gets_the_lock) {
  Steps steps;
  steps.reader = [&] { return std::optional<Entry>(steps.stale(7)); };
  BOOST_TEST(dogpile::dogpile_lock(steps, steps.stale(7)) == 8);
  BOOST_TEST(steps.the_mutex->releases == 1);
  BOOST_TEST(!steps.the_mutex->locked());
}

BOOST_AUTO_TEST_CASE(after_waiting_a_value_created_meanwhile_is_used) {
  Steps steps;
  steps.reader = [&] { return std::optional<Entry>(Entry{5, steps.now, steps.now}); };
  BOOST_TEST(dogpile::dogpile_lock(steps, std::nullopt) == 5);
  BOOST_TEST(steps.created == 0);
  BOOST_TEST(steps.the_mutex->releases == 1);
}

BOOST_AUTO_TEST_CASE(a_value_written_while_waiting_is_used_even_when_already_expired) {
  // The waiter (serve_stale off) read a stale value; another caller wrote a new one, which has
  // expired by the time the waiter reads it (made slower than it lives): it is still the
  // value the waiter waited for.
  Steps steps;
  steps.stale_served = false;
  steps.reader = [&] { return std::optional<Entry>(steps.stale(9, 50)); };
  BOOST_TEST(dogpile::dogpile_lock(steps, steps.stale(7)) == 9);
  BOOST_TEST(steps.created == 0);
  // The same stale value read again is no new value: it is made.
  steps.reader = [&] { return std::optional<Entry>(steps.stale(7)); };
  BOOST_TEST(dogpile::dogpile_lock(steps, steps.stale(7)) == 8);
  BOOST_TEST(steps.created == 1);
  BOOST_TEST(!steps.the_mutex->locked());
}

BOOST_AUTO_TEST_CASE(the_mutex_is_released_when_the_creator_throws) {
  Steps steps;
  steps.creator = []() -> int { throw std::runtime_error("boom"); };
  BOOST_CHECK_THROW(dogpile::dogpile_lock(steps, std::nullopt), std::runtime_error);
  BOOST_TEST(steps.the_mutex->releases == 1);
  BOOST_TEST(!steps.the_mutex->locked());
}

BOOST_AUTO_TEST_CASE(the_background_creator_takes_the_mutex_only_when_a_stale_value_exists) {
  Steps steps;
  std::shared_ptr<dogpile::CacheMutex> handed;
  steps.background = [&](std::shared_ptr<dogpile::CacheMutex> m) { handed = std::move(m); };
  steps.reader = [&] { return std::optional<Entry>(steps.stale(7)); };
  BOOST_TEST(dogpile::dogpile_lock(steps, steps.stale(7)) == 7);
  BOOST_TEST(handed == steps.the_mutex);
  BOOST_TEST(steps.the_mutex->locked());
  BOOST_TEST(steps.the_mutex->releases == 0);
  handed->release();
  // No value at all: created in the caller, the background creator is not used.
  handed = nullptr;
  steps.reader = [] { return std::optional<Entry>(); };
  BOOST_TEST(dogpile::dogpile_lock(steps, std::nullopt) == 8);
  BOOST_TEST(handed == nullptr);
}

BOOST_AUTO_TEST_SUITE_END()

// get_or_create ------------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(get_or_create)

BOOST_DATA_TEST_CASE(creates_once_then_serves_the_cached_value, data::make(kStoringBackends),
                     backend) {
  auto region = region_on(std::string(backend), {.expiration_time = 60});
  int calls = 0;
  auto creator = [&] { return ++calls * 10; };
  BOOST_TEST(*region->get_or_create("k", creator) == 10);
  BOOST_TEST(*region->get_or_create("k", creator) == 10);
  BOOST_TEST(calls == 1);
  BOOST_TEST(*region->get<int>("k") == 10);
}

BOOST_DATA_TEST_CASE(an_expired_value_is_regenerated, data::make(kStoringBackends), backend) {
  auto region = region_on(std::string(backend), {.expiration_time = 60});
  region->set_value("k", dogpile::make_value(1, dogpile::now_seconds() - 120));
  BOOST_TEST(*region->get_or_create("k", [] { return 2; }) == 2);
  // A per-call expiration of -1 never expires; a longer one keeps the old value.
  region->set_value("old", dogpile::make_value(1, dogpile::now_seconds() - 120));
  BOOST_TEST(*region->get_or_create(
                 "old", [] { return 2; }, -1) == 1);
  BOOST_TEST(*region->get_or_create(
                 "old", [] { return 2; }, 600) == 1);
}

BOOST_DATA_TEST_CASE(a_value_of_another_format_version_is_regenerated, data::make(kStoringBackends),
                     backend) {
  auto region = region_on(std::string(backend));
  region->actual_backend()->set_serialized("k", R"({"ct": 1795570724.0, "v": 1}|5)");
  BOOST_TEST(*region->get_or_create("k", [] { return 6; }) == 6);
}

BOOST_DATA_TEST_CASE(should_cache_fn_false_returns_without_storing, data::make(kStoringBackends),
                     backend) {
  auto region = region_on(std::string(backend));
  auto value = region->get_or_create(
      "k", [] { return -1; }, std::nullopt, [](const int& v) { return v >= 0; });
  BOOST_TEST(*value == -1);
  BOOST_TEST(region->get<int>("k") == nullptr);
  region->get_or_create(
      "k", [] { return 3; }, std::nullopt, [](const int& v) { return v >= 0; });
  BOOST_TEST(*region->get<int>("k") == 3);
}

BOOST_DATA_TEST_CASE(a_creator_exception_reaches_the_caller_and_the_next_caller_retries,
                     data::make(kStoringBackends), backend) {
  auto region = region_on(std::string(backend));
  BOOST_CHECK_THROW(region->get_or_create("k", []() -> int { throw std::runtime_error("down"); }),
                    std::runtime_error);
  BOOST_TEST(!region->key_is_locked("k"));
  BOOST_TEST(region->get<int>("k") == nullptr);
  BOOST_TEST(*region->get_or_create("k", [] { return 4; }) == 4);
}

BOOST_AUTO_TEST_CASE(a_creator_may_get_or_create_another_key) {
  auto region = region_on("dogpile.cache.memory");
  auto outer = region->get_or_create(
      "outer", [&] { return *region->get_or_create("inner", [] { return 20; }) + 1; });
  BOOST_TEST(*outer == 21);
  BOOST_TEST(*region->get<int>("inner") == 20);
}

BOOST_DATA_TEST_CASE(hard_invalidation_regenerates_for_everyone, data::make(kStoringBackends),
                     backend) {
  auto region = region_on(std::string(backend), {.expiration_time = 60});
  region->set_value("k", dogpile::make_value(1, dogpile::now_seconds() - 1));
  region->invalidate(true);
  BOOST_TEST(*region->get_or_create("k", [] { return 2; }) == 2);
  BOOST_TEST(*region->get_or_create("k", [] { return 3; }) == 2);
}

BOOST_DATA_TEST_CASE(soft_invalidation_serves_the_old_value_while_one_caller_regenerates,
                     data::make(kStoringBackends), backend) {
  auto region = region_on(std::string(backend), {.expiration_time = 60});
  region->set_value("k", dogpile::make_value(1, dogpile::now_seconds() - 1));
  region->invalidate(false);
  // While another holds the lock, the old value is served.
  auto mutex = region->mutex("k");
  BOOST_TEST(mutex->acquire(false));
  BOOST_TEST(*region->get_or_create("k", [] { return 2; }) == 1);
  mutex->release();
  // Then the caller that gets the lock regenerates.
  BOOST_TEST(*region->get_or_create("k", [] { return 3; }) == 3);
  BOOST_TEST(*region->get_or_create("k", [] { return 4; }) == 3);
}

BOOST_AUTO_TEST_CASE(soft_invalidation_without_expiration_time_is_an_error) {
  auto region = region_on("dogpile.cache.memory");
  region->set_value("k", dogpile::make_value(1, dogpile::now_seconds() - 1));
  region->invalidate(false);
  try {
    region->get_or_create("k", [] { return 2; });
    BOOST_FAIL("expected an error");
  } catch (const dogpile::Error& e) {
    BOOST_TEST(std::string(e.what()) == "Non-None expiration time required for soft invalidation");
  }
  BOOST_TEST(!region->key_is_locked("k"));
}

BOOST_AUTO_TEST_CASE(a_custom_invalidation_strategy_drives_get_or_create) {
  struct Switchable : dogpile::RegionInvalidationStrategy {
    std::atomic<bool> hard{false};
    void invalidate(bool h) override { hard = h; }
    bool is_hard_invalidated(double) const override { return hard; }
    bool is_soft_invalidated(double) const override { return false; }
    bool is_invalidated(double) const override { return hard; }
    bool was_soft_invalidated() const override { return false; }
    bool was_hard_invalidated() const override { return hard; }
  };
  auto strategy = std::make_shared<Switchable>();
  auto region = region_on("dogpile.cache.memory", {.region_invalidator = strategy});
  BOOST_TEST(*region->get_or_create("k", [] { return 1; }) == 1);
  BOOST_TEST(*region->get_or_create("k", [] { return 2; }) == 1);
  region->invalidate(true);
  BOOST_TEST(*region->get_or_create("k", [] { return 3; }) == 3);
}

BOOST_AUTO_TEST_CASE(the_null_backend_always_creates) {
  auto region = region_on("dogpile.cache.null", {.expiration_time = 60});
  int calls = 0;
  for (int i = 0; i < 3; ++i)
    BOOST_TEST(*region->get_or_create("k", [&] { return ++calls; }) == i + 1);
  std::vector<std::thread> threads;
  std::atomic<int> concurrent_calls{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] { region->get_or_create("k", [&] { return ++concurrent_calls; }); });
  }
  for (auto& t : threads) t.join();
  BOOST_TEST(concurrent_calls == 4);  // its lock never blocks anyone
}

BOOST_AUTO_TEST_CASE(a_backends_own_mutex_is_used) {
  struct OwnMutex : dogpile::ProxyBackend {
    std::unique_ptr<dogpile::CacheMutex> get_mutex(std::string_view) override {
      ++made;
      return std::make_unique<CountingMutex>();
    }
    std::atomic<int> made{0};
  };
  auto proxy = std::make_shared<OwnMutex>();
  auto region = region_on("dogpile.cache.memory", {.wrap = {proxy}});
  region->get_or_create("k", [] { return 1; });
  BOOST_TEST(proxy->made == 1);
}

BOOST_AUTO_TEST_CASE(a_lock_that_cannot_be_taken_or_released_never_loses_the_value) {
  for (const bool grants : {false, true}) {
    auto region =
        region_on("dogpile.cache.memory", {.wrap = {std::make_shared<UnreliableLocks>(grants)}});
    BOOST_TEST(*region->get_or_create("k", [] { return 1; }) == 1);
    BOOST_TEST(*region->get<int>("k") == 1);
    auto values = region->get_or_create_multi(
        {"b", "a"}, [](const dogpile::Keys& keys) { return std::vector<int>(keys.size(), 2); });
    BOOST_TEST(*values[0] == 2);
    BOOST_TEST(*values[1] == 2);
    BOOST_TEST(*region->get<int>("a") == 2);
  }
}

BOOST_AUTO_TEST_CASE(the_lock_registry_forgets_keys_nobody_holds) {
  auto region = region_on("dogpile.cache.memory");
  for (int i = 0; i < 1000; ++i) region->get_or_create("k" + std::to_string(i), [i] { return i; });
  BOOST_TEST(region->locks_in_use() == 0u);
  auto held = region->mutex("x");
  auto same = region->mutex("x");
  BOOST_TEST(held == same);
  BOOST_TEST(region->locks_in_use() == 1u);
  held.reset();
  same.reset();
  BOOST_TEST(region->locks_in_use() == 0u);
}

BOOST_AUTO_TEST_SUITE_END()

// Herds ----------------------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(herds)

BOOST_DATA_TEST_CASE(thirty_two_threads_on_a_cold_key_run_the_creator_once,
                     data::make(kStoringBackends), backend) {
  auto region = region_on(std::string(backend), {.expiration_time = 60});
  constexpr int kThreads = 32;
  std::atomic<int> calls{0};
  std::atomic<int> right{0};
  std::atomic<int> calling{0}, timeouts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      ++calling;
      auto v = region->get_or_create("cold", [&] {
        ++calls;
        // Holds the lock until every thread has called: the others wait for it meanwhile.
        wait_in_worker([&] { return calling == kThreads; }, timeouts);
        return std::string("made");
      });
      if (v && *v == "made") ++right;
    });
  }
  for (auto& t : threads) t.join();
  BOOST_TEST(timeouts == 0);
  BOOST_TEST(calls == 1);
  BOOST_TEST(right == kThreads);
}

BOOST_DATA_TEST_CASE(with_a_stale_value_others_return_it_without_waiting,
                     data::make(kStoringBackends), backend) {
  auto clock = std::make_shared<dogpile::ManualClock>();
  auto region = region_with_clock(std::string(backend), clock, {.expiration_time = 1});
  region->set("k", std::string("old"));
  clock->advance(5);
  constexpr int kOthers = 15;
  std::atomic<int> calls{0};
  std::atomic<bool> creator_started{false};
  std::atomic<bool> creator_done{false};
  std::atomic<int> others_returned{0};
  std::atomic<int> stale_before_done{0};
  std::atomic<int> timeouts{0};
  std::string creator_got;
  std::thread creator_thread([&] {
    creator_got = *region->get_or_create("k", [&] {
      ++calls;
      creator_started = true;
      // Runs until every other caller has returned: none of them waits for it.
      wait_in_worker([&] { return others_returned == kOthers; }, timeouts);
      creator_done = true;
      return std::string("new");
    });
  });
  BOOST_TEST_REQUIRE(wait_until([&] { return creator_started.load(); }));
  std::vector<std::thread> others;
  for (int t = 0; t < kOthers; ++t) {
    others.emplace_back([&] {
      auto v = region->get_or_create("k", [&] {
        ++calls;
        return std::string("other");
      });
      if (*v == "old" && !creator_done) ++stale_before_done;
      ++others_returned;
    });
  }
  for (auto& t : others) t.join();
  creator_thread.join();
  BOOST_TEST(timeouts == 0);
  BOOST_TEST(calls == 1);
  BOOST_TEST(creator_got == "new");
  BOOST_TEST(stale_before_done == kOthers);
}

BOOST_DATA_TEST_CASE(creators_of_one_key_never_overlap_and_generations_advance,
                     data::make(kStoringBackends), backend) {
  auto clock = std::make_shared<dogpile::ManualClock>();
  auto region = region_with_clock(std::string(backend), clock, {.expiration_time = 1});
  constexpr int kThreads = 10;
  constexpr int kRounds = 5;
  std::atomic<int> running{0};
  std::atomic<int> overlaps{0};
  std::atomic<int> generations{0};
  std::atomic<int> returned{0};
  std::atomic<int> timeouts{0};
  // Each round starts with the value expired; everyone calls at once.
  std::barrier round_start(kThreads, [&]() noexcept {
    clock->advance(2);
    returned = 0;
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int round = 0; round < kRounds; ++round) {
        round_start.arrive_and_wait();
        region->get_or_create("k", [&, round] {
          if (++running > 1) ++overlaps;
          // After the first round a stale value is there: everyone else returns it at once,
          // and this creator runs until they all have.
          if (round > 0) wait_in_worker([&] { return returned == kThreads - 1; }, timeouts);
          --running;
          return ++generations;
        });
        ++returned;
      }
    });
  }
  for (auto& t : threads) t.join();
  BOOST_TEST(timeouts == 0);
  BOOST_TEST(overlaps == 0);
  BOOST_TEST(generations == kRounds);
}

BOOST_AUTO_TEST_SUITE_END()

// get_or_create_multi ------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(get_or_create_multi)

BOOST_DATA_TEST_CASE(the_creator_gets_only_the_missing_keys_sorted, data::make(kStoringBackends),
                     backend) {
  auto region = region_on(std::string(backend), {.expiration_time = 60});
  region->set("b", std::string("B-cached"));
  std::vector<dogpile::Keys> calls;
  auto creator = [&](const dogpile::Keys& keys) {
    calls.push_back(keys);
    std::vector<std::string> out;
    for (const auto& k : keys) out.push_back(k + "-made");
    return out;
  };
  auto values = region->get_or_create_multi({"d", "b", "a", "d", "c"}, creator);
  BOOST_TEST_REQUIRE(calls.size() == 1u);
  BOOST_TEST((calls[0] == dogpile::Keys{"a", "c", "d"}));
  BOOST_TEST_REQUIRE(values.size() == 5u);
  BOOST_TEST(*values[0] == "d-made");
  BOOST_TEST(*values[1] == "B-cached");
  BOOST_TEST(*values[2] == "a-made");
  BOOST_TEST(*values[3] == "d-made");
  BOOST_TEST(*values[4] == "c-made");
  // Everything is cached now: the creator is not called again.
  region->get_or_create_multi({"a", "b", "c", "d"}, creator);
  BOOST_TEST(calls.size() == 1u);
  BOOST_TEST(region->locks_in_use() == 0u);
}

BOOST_DATA_TEST_CASE(expired_values_are_regenerated_unless_expiration_is_minus_one,
                     data::make(kStoringBackends), backend) {
  auto region = region_on(std::string(backend), {.expiration_time = 10});
  region->set_value("old", dogpile::make_value(1, dogpile::now_seconds() - 100));
  auto creator = [](const dogpile::Keys& keys) { return std::vector<int>(keys.size(), 2); };
  BOOST_TEST(*region->get_or_create_multi({"old"}, creator, -1)[0] == 1);
  BOOST_TEST(*region->get_or_create_multi({"old"}, creator)[0] == 2);
}

BOOST_DATA_TEST_CASE(should_cache_fn_is_asked_per_value, data::make(kStoringBackends), backend) {
  auto region = region_on(std::string(backend));
  auto values = region->get_or_create_multi(
      {"a", "b", "c"},
      [](const dogpile::Keys&) {
        return std::vector<int>{1, -2, 3};
      },
      std::nullopt, [](const int& v) { return v > 0; });
  BOOST_TEST(*values[1] == -2);
  BOOST_TEST(*region->get<int>("a") == 1);
  BOOST_TEST(region->get<int>("b") == nullptr);
  BOOST_TEST(*region->get<int>("c") == 3);
}

BOOST_DATA_TEST_CASE(every_mutex_is_released_when_the_creator_throws, data::make(kStoringBackends),
                     backend) {
  auto region = region_on(std::string(backend));
  auto held_a = region->mutex("a");
  auto held_b = region->mutex("b");
  int taken = 0;  // creators that ran with both locks held
  auto both_held = [&] { taken += held_a->locked() && held_b->locked(); };
  BOOST_CHECK_THROW(region->get_or_create_multi({"a", "b"},
                                                [&](const dogpile::Keys&) -> std::vector<int> {
                                                  both_held();
                                                  throw std::runtime_error("x");
                                                }),
                    std::runtime_error);
  BOOST_TEST(!held_a->locked());
  BOOST_TEST(!held_b->locked());
  BOOST_CHECK_THROW(region->get_or_create_multi({"a", "b"},
                                                [&](const dogpile::Keys&) {
                                                  both_held();
                                                  return std::vector<int>{1, 2, 3};
                                                }),
                    dogpile::ValidationError);
  BOOST_TEST(!held_a->locked());
  BOOST_TEST(!held_b->locked());
  BOOST_TEST(taken == 2);
}

BOOST_DATA_TEST_CASE(a_creator_returning_fewer_values_leaves_the_last_keys_without_one,
                     data::make(kStoringBackends), backend) {
  auto region = region_on(std::string(backend), {.expiration_time = 60});
  region->set_value("c", dogpile::make_value(7, dogpile::now_seconds() - 100));  // stale
  auto values = region->get_or_create_multi({"c", "a", "b", "a"}, [](const dogpile::Keys& keys) {
    BOOST_TEST((keys == dogpile::Keys{"a", "b", "c"}));
    return std::vector<int>{1};
  });
  BOOST_TEST_REQUIRE(values.size() == 4u);
  BOOST_TEST(*values[0] == 7);  // not created: its stale value, as dogpile.cache returns
  BOOST_TEST(*values[1] == 1);
  BOOST_TEST(values[2] == nullptr);  // NO_VALUE
  BOOST_TEST(*values[3] == 1);
  BOOST_TEST(*region->get<int>("a") == 1);
  BOOST_TEST(region->get<int>("b") == nullptr);
  BOOST_TEST(region->get<int>("c", {.ignore_expiration = true}) != nullptr);
  BOOST_TEST(region->get<int>("c") == nullptr);
  BOOST_TEST(region->locks_in_use() == 0u);
}

BOOST_AUTO_TEST_CASE(hard_and_soft_invalidation_apply_to_multi) {
  auto region = region_on("dogpile.cache.memory", {.expiration_time = 60});
  region->set_value("a", dogpile::make_value(1, dogpile::now_seconds() - 1));
  auto creator = [](const dogpile::Keys& keys) { return std::vector<int>(keys.size(), 9); };
  region->invalidate(true);
  BOOST_TEST(*region->get_or_create_multi({"a"}, creator)[0] == 9);

  region->set_value("b", dogpile::make_value(1, dogpile::now_seconds() - 1));
  region->invalidate(false);
  auto mutex = region->mutex("b");
  BOOST_TEST(mutex->acquire(false));
  BOOST_TEST(*region->get_or_create_multi({"b"}, creator)[0] == 1);  // stale, being regenerated
  mutex->release();
  BOOST_TEST(*region->get_or_create_multi({"b"}, creator)[0] == 9);
}

BOOST_AUTO_TEST_CASE(concurrent_multi_calls_create_each_key_once) {
  auto region = region_on("dogpile.cache.memory", {.expiration_time = 60});
  constexpr int kThreads = 8;
  std::mutex m;
  std::map<std::string, int> created;
  std::atomic<int> calling{0}, timeouts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      dogpile::Keys keys = {"k1", "k2", "k3", "k4"};
      std::rotate(keys.begin(), keys.begin() + t % 4, keys.end());
      ++calling;
      region->get_or_create_multi(keys, [&](const dogpile::Keys& missing) {
        // Creates only once every thread has called, so the calls overlap.
        wait_in_worker([&] { return calling == kThreads; }, timeouts);
        std::lock_guard g(m);
        for (const auto& k : missing) ++created[k];
        return std::vector<int>(missing.size(), 1);
      });
    });
  }
  for (auto& t : threads) t.join();
  BOOST_TEST(timeouts == 0);
  for (const auto& [key, count] : created) {
    BOOST_TEST_INFO(key);
    BOOST_TEST(count == 1);
  }
  BOOST_TEST(created.size() == 4u);
}

BOOST_AUTO_TEST_SUITE_END()

// Background regeneration --------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(async_creation)

BOOST_DATA_TEST_CASE(a_stale_value_is_refreshed_by_the_runner, data::make(kStoringBackends),
                     backend) {
  std::atomic<int> runner_calls{0};
  std::vector<std::thread> background;
  dogpile::AsyncCreationRunner runner = [&](CacheRegion& region, const std::string& key,
                                            std::function<dogpile::CachedValuePtr()> creator,
                                            std::shared_ptr<dogpile::CacheMutex> mutex) {
    ++runner_calls;
    background.emplace_back([&region, key, creator, mutex] {
      if (auto value = creator()) region.set_value(key, value);
      mutex->release();
    });
  };
  auto clock = std::make_shared<dogpile::ManualClock>();
  auto region = region_with_clock(std::string(backend), clock, {.expiration_time = 10}, runner);
  std::atomic<int> calls{0};
  std::atomic<bool> gate_open{false};
  std::atomic<int> timeouts{0};
  auto creator = [&calls, &gate_open, &timeouts] {
    // The first call creates in the caller; later ones, in the background, wait for the gate.
    if (calls > 0) wait_in_worker([&] { return gate_open.load(); }, timeouts);
    return ++calls;
  };
  // The first call has no value to serve: it creates in the caller.
  BOOST_TEST(*region->get_or_create("k", creator) == 1);
  BOOST_TEST(runner_calls == 0);
  clock->advance(11);
  // Expired: the stale value comes back while the regeneration is still held at the gate.
  BOOST_TEST(*region->get_or_create("k", creator) == 1);
  BOOST_TEST(runner_calls == 1);
  BOOST_TEST(region->key_is_locked("k"));                 // held by the runner
  BOOST_TEST(*region->get_or_create("k", creator) == 1);  // still stale, still being made
  BOOST_TEST(runner_calls == 1);
  gate_open = true;
  for (auto& t : background) t.join();
  BOOST_TEST(timeouts == 0);
  BOOST_TEST(!region->key_is_locked("k"));
  BOOST_TEST(*region->get_or_create("k", creator) == 2);
  BOOST_TEST(calls == 2);
}

BOOST_AUTO_TEST_CASE(the_thread_pool_runner_is_selected_from_config) {
  auto clock = std::make_shared<dogpile::ManualClock>();
  auto region = dogpile::make_region({.name = "pool", .clock = clock});
  region->configure_from_config({{"cache.p.backend", "dogpile.cache.memory"},
                                 {"cache.p.expiration_time", "10"},
                                 {"cache.p.async_creation_runner", "thread_pool"},
                                 {"cache.p.async_creation_runner_threads", "3"}},
                                "cache.p.");
  auto creator = [] { return std::this_thread::get_id(); };
  const auto caller = std::this_thread::get_id();
  BOOST_TEST((*region->get_or_create("k", creator) == caller));
  clock->advance(11);
  BOOST_TEST((*region->get_or_create("k", creator) == caller));  // stale; refreshed behind
  // The regeneration ran on another thread and stored its value.
  BOOST_TEST_REQUIRE(wait_until([&] {
    auto v = region->get<std::thread::id>("k");
    return v && *v != caller;
  }));
}

BOOST_AUTO_TEST_CASE(bad_runner_settings_are_errors_naming_the_key) {
  auto region = dogpile::make_region();
  BOOST_CHECK_THROW(
      region->configure_from_config(
          {{"backend", "dogpile.cache.memory"}, {"async_creation_runner", "threads"}}, ""),
      dogpile::ValidationError);
  BOOST_CHECK_THROW(
      region->configure_from_config(
          {{"backend", "dogpile.cache.memory"}, {"async_creation_runner_threads", "2"}}, ""),
      dogpile::ValidationError);
  BOOST_CHECK_THROW(region->configure_from_config({{"backend", "dogpile.cache.memory"},
                                                   {"async_creation_runner", "thread_pool"},
                                                   {"async_creation_runner_threads", "0"}},
                                                  ""),
                    dogpile::ValidationError);
  BOOST_TEST(!region->is_configured());
}

BOOST_AUTO_TEST_CASE(a_full_pool_drops_the_job_and_releases_the_lock) {
  dogpile::ThreadPoolRunner pool(1, 1);
  auto clock = std::make_shared<dogpile::ManualClock>();
  auto region =
      region_with_clock("dogpile.cache.memory", clock, {.expiration_time = 10}, pool.runner());
  for (const char* key : {"a", "b", "c"}) region->get_or_create(key, [] { return 1; });
  clock->advance(11);  // all three are stale now

  std::mutex gate;
  gate.lock();
  std::atomic<bool> a_running{false};
  std::atomic<bool> c_ran{false};
  // a: taken by the only worker, which then waits at the gate.
  region->get_or_create("a", [&] {
    a_running = true;
    std::lock_guard g(gate);
    return 2;
  });
  BOOST_TEST_REQUIRE(wait_until([&] { return a_running.load(); }));
  region->get_or_create("b", [] { return 2; });  // queued: the queue holds one
  region->get_or_create("c", [&] {               // dropped: the queue is full
    c_ran = true;
    return 2;
  });
  BOOST_TEST(!region->key_is_locked("c"));
  BOOST_TEST(region->key_is_locked("b"));
  gate.unlock();
  pool.shutdown();
  BOOST_TEST(!c_ran);
  BOOST_TEST(!region->key_is_locked("a"));
  BOOST_TEST(!region->key_is_locked("b"));
  BOOST_TEST(*region->get<int>("b", {.ignore_expiration = true}) == 2);
}

BOOST_AUTO_TEST_SUITE_END()
