// The region's resilience options (ResilienceOptions): backend errors as misses, fail-safe,
// soft and hard creator timeouts, eager refresh, expiration jitter, serve_stale. Times that
// decide expiry are a ManualClock's; the timeouts are real time, and every creator that must
// outlive one waits on a latch the test opens, so no outcome depends on the machine's speed.
#define BOOST_TEST_MODULE resilience
#include <atomic>
#include <boost/test/unit_test.hpp>
#include <dogpile/dogpile.hpp>
#include <dogpile/sdk/sdk.hpp>
#include <latch>
#include <stdexcept>
#include <thread>

#include "helpers.hpp"
#include "log_capture.hpp"

using dogpile::BackendErrors;
using dogpile::ConfigureOptions;
using dogpile::ManualClock;
using dogpile::ResilienceOptions;
using test::message_contains;
using test::wait_until;

namespace {

// A proxy whose backend can be taken down: every call then throws BackendUnavailable.
class Outage final : public dogpile::InterceptingProxy {
 public:
  std::atomic<bool> down{false};
  std::atomic<int> calls{0};
  std::atomic<int> down_from_call{1 << 30};  // goes down at this call

 protected:
  void intercept(dogpile::ProxiedCall& call) override {
    if (++calls >= down_from_call) down = true;
    if (down) throw dogpile::BackendUnavailable("test backend at 127.0.0.1:1 is down");
    call.proceed();
  }
};

struct Fixture {
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>(1'700'000'000.0);
  std::shared_ptr<dogpile::CacheRegion> region =
      dogpile::make_region({.name = "r", .clock = clock});
  std::shared_ptr<Outage> outage = std::make_shared<Outage>();

  void configure(ResilienceOptions resilience, double expiration = 10) {
    region->configure("dogpile.cache.memory", ConfigureOptions{.expiration_time = expiration,
                                                               .wrap = {outage},
                                                               .resilience = resilience});
  }
};

// Whether `key` reads as `expected` now.
bool holds(const dogpile::CacheRegion& region, const std::string& key, int expected,
           const dogpile::GetOptions& options = {}) {
  auto value = region.get<int>(key, options);
  return value && *value == expected;
}

int warnings_containing(const test::LogCapture& logs, const std::string& text) {
  int n = 0;
  for (const auto& [severity, message] : logs.records()) {
    if (severity == test::Severity::warning && message.find(text) != std::string::npos) ++n;
  }
  return n;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(backend_errors)

BOOST_FIXTURE_TEST_CASE(raise_is_the_default, Fixture) {
  configure({});
  outage->down = true;
  BOOST_CHECK_THROW(region->get<int>("k"), dogpile::BackendUnavailable);
  BOOST_CHECK_THROW(region->set("k", 1), dogpile::BackendUnavailable);
  BOOST_CHECK_THROW(region->get_or_create("k", [] { return 1; }), dogpile::BackendUnavailable);
}

BOOST_FIXTURE_TEST_CASE(miss_reads_miss_writes_drop_and_values_are_made_without_cache, Fixture) {
  configure({.backend_errors = BackendErrors::miss, .backend_retry_interval = 0});
  region->set("k", 1);
  outage->down = true;
  test::LogCapture logs;
  BOOST_TEST(!region->get<int>("k"));
  BOOST_TEST(region->get_multi<int>({"k", "j"}).size() == 2u);
  BOOST_CHECK_NO_THROW(region->set("k", 2));
  BOOST_CHECK_NO_THROW(region->remove("k"));
  int made = 0;
  for (int i = 0; i < 3; ++i) {
    const int got = *region->get_or_create("k", [&] { return 10 + ++made; });
    BOOST_TEST(got == 10 + made);
  }
  BOOST_TEST(made == 3);  // no cache to keep it in
  auto multi = region->get_or_create_multi(
      {"a", "b"}, [](const dogpile::Keys& keys) { return std::vector<int>(keys.size(), 7); });
  BOOST_TEST(*multi[0] == 7);
  BOOST_TEST(*multi[1] == 7);
  // One warning per interval, not one per call.
  BOOST_TEST(warnings_containing(logs, "treated as a cache miss") == 1);
  // Back up: the region uses the backend again by itself, and says so.
  outage->down = false;
  BOOST_TEST(*region->get<int>("k") == 1);  // the dropped writes never happened
  BOOST_TEST(warnings_containing(logs, "answers again") == 1);
  region->set("k", 3);
  BOOST_TEST(*region->get<int>("k") == 3);
}

BOOST_FIXTURE_TEST_CASE(a_failing_backend_is_left_alone_for_the_retry_interval, Fixture) {
  configure({.backend_errors = BackendErrors::miss, .backend_retry_interval = 5});
  outage->down = true;
  BOOST_TEST(!region->get<int>("k"));
  const int after_failure = outage->calls;
  for (int i = 0; i < 10; ++i) BOOST_TEST(*region->get_or_create("k", [] { return 1; }) == 1);
  BOOST_TEST(outage->calls == after_failure);  // not one call reached it
  outage->down = false;
  clock->advance(5.1);
  region->set("k", 2);
  BOOST_TEST(outage->calls == after_failure + 1);
  BOOST_TEST(*region->get<int>("k") == 2);
}

BOOST_FIXTURE_TEST_CASE(mistakes_are_not_backend_failures, Fixture) {
  configure({.backend_errors = BackendErrors::miss});
  struct NoCodec {
    int x;
  };
  // A value without a codec on a byte backend is the program's mistake: it still throws.
  auto bytes = dogpile::make_region("b");
  bytes->configure("dogpile.cache.memory_pickle",
                   {.resilience = {.backend_errors = BackendErrors::miss}});
  BOOST_CHECK_THROW(bytes->set("k", NoCodec{1}), dogpile::CantSerialize);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(fail_safe)

BOOST_FIXTURE_TEST_CASE(a_failing_creator_gives_the_stale_value_once_per_throttle, Fixture) {
  configure({.fail_safe = true, .fail_safe_max_age = 100, .fail_safe_throttle = 5});
  region->set("k", 1);
  const double made_at = clock->now();
  clock->advance(11);  // stale
  int tries = 0;
  auto failing = [&]() -> int {
    ++tries;
    throw std::runtime_error("database down");
  };
  test::LogCapture logs;
  BOOST_TEST(*region->get_or_create("k", failing) == 1);
  BOOST_TEST(tries == 1);
  BOOST_TEST(warnings_containing(logs, "database down") == 1);
  // Kept: fresh for the throttle, and still knows when it was made.
  auto meta = region->get_value_metadata("k");
  BOOST_TEST_REQUIRE(meta);
  BOOST_TEST(meta->metadata().origin == made_at);
  clock->advance(4);
  BOOST_TEST(*region->get_or_create("k", failing) == 1);
  BOOST_TEST(tries == 1);
  clock->advance(2);  // the throttle is over: tried again, and kept again
  BOOST_TEST(*region->get_or_create("k", failing) == 1);
  BOOST_TEST(tries == 2);
  // Older than fail_safe_max_age: the error comes through.
  clock->advance(100);
  BOOST_CHECK_THROW(region->get_or_create("k", failing), std::runtime_error);
  // A creator that works again replaces it.
  BOOST_TEST(*region->get_or_create("k", [] { return 2; }) == 2);
  BOOST_TEST(region->get_value_metadata("k")->metadata().origin == 0);
}

BOOST_FIXTURE_TEST_CASE(without_fail_safe_or_a_stale_value_the_error_comes_through, Fixture) {
  configure({});
  region->set("k", 1);
  clock->advance(11);
  auto failing = []() -> int { throw std::runtime_error("boom"); };
  BOOST_CHECK_THROW(region->get_or_create("k", failing), std::runtime_error);
  auto safe = dogpile::make_region({.name = "s", .clock = clock});
  safe->configure("dogpile.cache.memory",
                  {.expiration_time = 10, .resilience = {.fail_safe = true}});
  BOOST_CHECK_THROW(safe->get_or_create("none", failing), std::runtime_error);
}

BOOST_FIXTURE_TEST_CASE(a_failing_backend_gives_the_stale_value_under_miss, Fixture) {
  configure({.backend_errors = BackendErrors::miss, .fail_safe = true});
  region->set("k", 1);
  clock->advance(11);
  // The stale value is read, then the backend fails: it is served, the creator never runs.
  outage->down_from_call = outage->calls + 2;
  BOOST_TEST(*region->get_or_create("k", []() -> int { throw std::logic_error("ran"); }) == 1);
  BOOST_TEST(outage->down);
  // Without fail-safe, the value is made without the cache.
  auto plain_outage = std::make_shared<Outage>();
  auto plain = dogpile::make_region({.name = "p", .clock = clock});
  plain->configure("dogpile.cache.memory", {.expiration_time = 10,
                                            .wrap = {plain_outage},
                                            .resilience = {.backend_errors = BackendErrors::miss}});
  plain->set("k", 1);
  clock->advance(11);
  plain_outage->down_from_call = plain_outage->calls + 2;
  BOOST_TEST(*plain->get_or_create("k", [] { return 2; }) == 2);
}

BOOST_FIXTURE_TEST_CASE(the_kept_value_crosses_the_wire_format, Fixture) {
  auto bytes = dogpile::make_region({.name = "b", .clock = clock});
  bytes->configure("dogpile.cache.memory_pickle",
                   {.expiration_time = 10, .resilience = {.fail_safe = true}});
  bytes->set("k", 1);
  const double made_at = clock->now();
  clock->advance(11);
  BOOST_TEST(*bytes->get_or_create("k", []() -> int { throw std::runtime_error("x"); }) == 1);
  auto wire = bytes->actual_backend()->get_serialized("k");
  BOOST_TEST_REQUIRE(wire.has_value());
  BOOST_TEST(wire->find("\"v\": 2, \"origin\": " + dogpile::python_float_repr(made_at) + "}|") !=
             std::string::npos);
  BOOST_TEST(bytes->get_value_metadata("k")->metadata().origin == made_at);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(timeouts)

// get_or_create("k") with a creator held until the call has returned (past its timeout): what
// the call returned. The creator then finishes with `made`; it owns its latch, as a creator
// that outlives its caller must.
int while_the_creator_blocks(dogpile::CacheRegion& region, int made) {
  auto go = std::make_shared<std::latch>(1);
  const int got = *region.get_or_create("k", [go, made] {
    go->wait();
    return made;
  });
  go->count_down();
  return got;
}

BOOST_FIXTURE_TEST_CASE(soft_timeout_serves_the_stale_value_and_the_creator_finishes, Fixture) {
  configure({.soft_timeout = 0.05});
  region->set("k", 1);
  clock->advance(11);
  BOOST_TEST(while_the_creator_blocks(*region, 2) == 1);
  BOOST_TEST(wait_until([&] { return holds(*region, "k", 2); }));
  BOOST_TEST(wait_until([&] { return !region->key_is_locked("k"); }));
}

BOOST_FIXTURE_TEST_CASE(soft_timeout_without_a_stale_value_waits_for_the_value, Fixture) {
  configure({.soft_timeout = 0.01});
  // A creator slower than the soft timeout (its work, not a synchronization).
  BOOST_TEST(*region->get_or_create("k", [&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return 3;
  }) == 3);
}

BOOST_FIXTURE_TEST_CASE(hard_timeout_throws_a_named_timeout_error, Fixture) {
  configure({.hard_timeout = 0.05});
  std::latch go(1);
  try {
    region->get_or_create("slow", [&] {
      go.wait();
      return 1;
    });
    BOOST_FAIL("no TimeoutError");
  } catch (const dogpile::TimeoutError& e) {
    BOOST_TEST(message_contains(e, "key 'slow' ran longer than hard_timeout (0.05 s)"));
  }
  // A waiter does not wait longer either.
  try {
    region->get_or_create("slow", [] { return 2; });
    BOOST_FAIL("no TimeoutError for the waiter");
  } catch (const dogpile::TimeoutError& e) {
    BOOST_TEST(message_contains(e, "waited hard_timeout"));
  }
  go.count_down();  // the creator finishes in the background and stores its value
  BOOST_TEST(wait_until([&] { return holds(*region, "slow", 1); }));
}

BOOST_FIXTURE_TEST_CASE(hard_timeout_under_fail_safe_gives_the_stale_value, Fixture) {
  configure({.fail_safe = true, .hard_timeout = 0.05, .serve_stale = false});
  region->set("k", 1);
  clock->advance(11);
  BOOST_TEST(while_the_creator_blocks(*region, 2) == 1);
  BOOST_TEST(wait_until([&] { return holds(*region, "k", 2, {.ignore_expiration = true}); }));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(staleness)

BOOST_FIXTURE_TEST_CASE(serve_stale_false_waits_for_the_new_value, Fixture) {
  // Another caller is making the value (it holds the key's lock throughout): with serve_stale
  // the stale value comes back at once; without, the caller waits, here until its
  // hard_timeout, and never gets the stale value.
  for (bool serve_stale : {true, false}) {
    auto region = dogpile::make_region({.name = "s", .clock = clock});
    region->configure(
        "dogpile.cache.memory",
        {.expiration_time = 10, .resilience = {.hard_timeout = 0.05, .serve_stale = serve_stale}});
    region->set("k", 1);
    clock->advance(11);
    auto mutex = region->mutex("k");
    BOOST_TEST_REQUIRE(mutex->acquire(false));
    if (serve_stale) {
      BOOST_TEST(*region->get_or_create("k", [] { return 99; }) == 1);
    } else {
      BOOST_CHECK_THROW(region->get_or_create("k", [] { return 99; }), dogpile::TimeoutError);
    }
    mutex->release();
    if (!serve_stale) BOOST_TEST(*region->get_or_create("k", [] { return 99; }) == 99);
  }
}

// A second caller that reads the key before, during or after the first caller's creation gets
// that value, even one made slower than values live (0.3 s here, 0.5 s to make) or one that
// expires at once (expiration 0): never a second creator call. (After the creation, a value
// that expires at once is made again, as expiration 0 asks.)
BOOST_FIXTURE_TEST_CASE(a_second_caller_gets_the_first_callers_value, Fixture) {
  using test::Arrival;
  for (const double expiration : {0.3, 0.0}) {
    for (const Arrival arrival : {Arrival::before, Arrival::during, Arrival::after}) {
      if (expiration == 0 && arrival == Arrival::after) continue;
      for (const bool stale_first : {false, true}) {
        for (const bool multi : {false, true}) {
          BOOST_TEST_CONTEXT("expiration " << expiration << ", " << arrival
                                           << " the creation, stale value first " << stale_first
                                           << ", multi " << multi) {
            auto gate = std::make_shared<test::ReadGate>();
            auto region = dogpile::make_region({.name = "w", .clock = clock});
            region->configure("dogpile.cache.memory", {.expiration_time = expiration,
                                                       .wrap = {gate},
                                                       .resilience = {.serve_stale = false}});
            if (stale_first) {
              region->set("k", 0);
              clock->advance(1);
            }
            const auto outcome = test::second_caller_around_a_creation(*region, *region, *clock,
                                                                       *gate, arrival, multi);
            BOOST_TEST(outcome.got == 1);
            BOOST_TEST(outcome.own_creations == 0);
          }
        }
      }
    }
  }
}

BOOST_FIXTURE_TEST_CASE(eager_refresh_regenerates_a_hot_key_before_it_expires, Fixture) {
  configure({.eager_refresh = 0.8});
  region->set("k", 1);
  clock->advance(7);  // 70%: nothing
  std::atomic<int> made{0};
  auto creator = [&] { return 100 + ++made; };
  BOOST_TEST(*region->get_or_create("k", creator) == 1);
  BOOST_TEST(made == 0);
  clock->advance(1.5);  // 85%: the old value now, a new one in the background
  BOOST_TEST(*region->get_or_create("k", creator) == 1);
  BOOST_TEST(wait_until([&] { return holds(*region, "k", 101); }));
  BOOST_TEST(made == 1);
  BOOST_TEST(wait_until([&] { return !region->key_is_locked("k"); }));
}

BOOST_FIXTURE_TEST_CASE(jitter_spreads_expiry_the_same_for_every_reader, Fixture) {
  configure({.expiration_jitter = 0.1}, 100);
  auto other = dogpile::make_region({.name = "o", .clock = clock});
  other->configure("dogpile.cache.memory",
                   {.expiration_time = 100, .resilience = {.expiration_jitter = 0.1}});
  std::vector<std::string> keys;
  for (int i = 0; i < 200; ++i) {
    keys.push_back("k" + std::to_string(i));
    region->set(keys.back(), i);
    other->set(keys.back(), i);
  }
  auto alive = [&](dogpile::CacheRegion& r) {
    int n = 0;
    for (const auto& key : keys) n += r.get<int>(key) ? 1 : 0;
    return n;
  };
  clock->advance(89.9);
  BOOST_TEST(alive(*region) == 200);
  clock->advance(10.1);  // 100 s: about half expired
  const int half = alive(*region);
  BOOST_TEST(half > 60);
  BOOST_TEST(half < 140);
  BOOST_TEST(alive(*other) == half);  // the same keys and times give the same expiries
  for (const auto& key : keys) {
    BOOST_TEST(bool(region->get<int>(key)) == bool(other->get<int>(key)));
    // get_or_create agrees with get.
    const bool fresh = bool(region->get<int>(key));
    BOOST_TEST((*region->get_or_create(key, [] { return -1; }) != -1) == fresh);
  }
}

BOOST_AUTO_TEST_SUITE_END()

// Every option applies to get_or_create_multi and cached multi-functions as to get_or_create.
BOOST_AUTO_TEST_SUITE(multi)

using dogpile::Keys;

// get_or_create_multi's values for `keys` as ints (-1: null).
std::vector<int> multi_values(dogpile::CacheRegion& region, const Keys& keys,
                              std::function<std::vector<int>(const Keys&)> creator) {
  std::vector<int> out;
  for (const auto& value : region.get_or_create_multi(keys, creator))
    out.push_back(value ? *value : -1);
  return out;
}

BOOST_FIXTURE_TEST_CASE(fail_safe_gives_each_key_its_stale_value_once_per_throttle, Fixture) {
  configure({.fail_safe = true, .fail_safe_throttle = 5});
  region->set("a", 1);
  region->set("b", 2);
  clock->advance(11);
  int tries = 0;
  auto failing = [&](const Keys&) -> std::vector<int> {
    ++tries;
    throw std::runtime_error("database down");
  };
  BOOST_TEST((multi_values(*region, {"b", "a"}, failing) == std::vector<int>{2, 1}));
  BOOST_TEST(tries == 1);
  clock->advance(4);  // kept for the throttle: the creator is not tried
  BOOST_TEST((multi_values(*region, {"a", "b"}, failing) == std::vector<int>{1, 2}));
  BOOST_TEST(tries == 1);
  // A key without a stale value: the error comes through (the others are kept all the same).
  clock->advance(2);
  BOOST_CHECK_THROW(multi_values(*region, {"a", "b", "new"}, failing), std::runtime_error);
  BOOST_TEST(tries == 2);
  BOOST_TEST(holds(*region, "a", 1));
}

BOOST_FIXTURE_TEST_CASE(soft_timeout_serves_the_stale_values_and_the_creator_finishes, Fixture) {
  configure({.soft_timeout = 0.05});
  region->set("a", 1);
  region->set("b", 2);
  clock->advance(11);
  auto go = std::make_shared<std::latch>(1);
  auto calls = std::make_shared<std::atomic<int>>(0);
  auto slow = [go, calls](const Keys& keys) {
    ++*calls;
    go->wait();
    return std::vector<int>(keys.size(), 7);
  };
  BOOST_TEST((multi_values(*region, {"a", "b"}, slow) == std::vector<int>{1, 2}));
  go->count_down();
  BOOST_TEST(wait_until([&] { return holds(*region, "a", 7) && holds(*region, "b", 7); }));
  BOOST_TEST(*calls == 1);  // one call for both keys
  BOOST_TEST(
      wait_until([&] { return !region->key_is_locked("a") && !region->key_is_locked("b"); }));
}

BOOST_FIXTURE_TEST_CASE(hard_timeout_names_the_keys_or_gives_stale_values_under_fail_safe,
                        Fixture) {
  configure({.hard_timeout = 0.05});
  auto go = std::make_shared<std::latch>(1);
  auto slow = [go](const Keys& keys) {
    go->wait();
    return std::vector<int>(keys.size(), 7);
  };
  try {
    multi_values(*region, {"x", "y"}, slow);
    BOOST_FAIL("no TimeoutError");
  } catch (const dogpile::TimeoutError& e) {
    BOOST_TEST(message_contains(e, "keys 'x', 'y' ran longer than hard_timeout (0.05 s)"));
  }
  go->count_down();
  BOOST_TEST(wait_until([&] { return holds(*region, "x", 7) && holds(*region, "y", 7); }));

  auto safe = dogpile::make_region({.name = "s", .clock = clock});
  safe->configure("dogpile.cache.memory",
                  {.expiration_time = 10,
                   .resilience = {.fail_safe = true, .hard_timeout = 0.05, .serve_stale = false}});
  safe->set("a", 1);
  safe->set("b", 2);
  clock->advance(11);
  auto gate = std::make_shared<std::latch>(1);
  BOOST_TEST((multi_values(*safe, {"a", "b"}, [gate](const Keys& keys) {
                gate->wait();
                return std::vector<int>(keys.size(), 8);
              }) == std::vector<int>{1, 2}));
  gate->count_down();
  BOOST_TEST(wait_until([&] { return holds(*safe, "a", 8, {.ignore_expiration = true}); }));
}

BOOST_FIXTURE_TEST_CASE(a_waiter_on_another_callers_key_stops_at_hard_timeout, Fixture) {
  configure({.hard_timeout = 0.05});
  auto mutex = region->mutex("b");  // another caller is making "b"
  BOOST_TEST_REQUIRE(mutex->acquire(false));
  try {
    multi_values(*region, {"a", "b"},
                 [](const Keys& keys) { return std::vector<int>(keys.size(), 1); });
    BOOST_FAIL("no TimeoutError");
  } catch (const dogpile::TimeoutError& e) {
    BOOST_TEST(message_contains(e, "waited hard_timeout (0.05 s) for the value of key 'b'"));
  }
  BOOST_TEST(!region->key_is_locked("a"));  // released on the way out
  mutex->release();
}

BOOST_FIXTURE_TEST_CASE(eager_refresh_makes_the_due_keys_again_in_one_background_call, Fixture) {
  configure({.eager_refresh = 0.8});
  region->set("a", 1);
  region->set("b", 2);
  clock->advance(7);
  region->set("c", 3);  // young: not due
  clock->advance(1.5);  // a and b are at 85%
  auto calls = std::make_shared<std::atomic<int>>(0);
  auto keys_asked = std::make_shared<std::vector<Keys>>();
  auto mutex = std::make_shared<std::mutex>();
  auto creator = [calls, keys_asked, mutex](const Keys& keys) {
    ++*calls;
    std::lock_guard guard(*mutex);
    keys_asked->push_back(keys);
    return std::vector<int>(keys.size(), 9);
  };
  BOOST_TEST((multi_values(*region, {"a", "b", "c"}, creator) == std::vector<int>{1, 2, 3}));
  BOOST_TEST(wait_until([&] { return holds(*region, "a", 9) && holds(*region, "b", 9); }));
  BOOST_TEST(wait_until([&] { return !region->key_is_locked("a"); }));
  BOOST_TEST(*calls == 1);
  std::lock_guard guard(*mutex);
  BOOST_TEST((keys_asked->at(0) == Keys{"a", "b"}));
  BOOST_TEST(holds(*region, "c", 3));
}

BOOST_FIXTURE_TEST_CASE(jitter_gives_multi_the_expiry_get_gives, Fixture) {
  configure({.expiration_jitter = 0.1}, 100);
  Keys keys;
  for (int i = 0; i < 100; ++i) {
    keys.push_back("k" + std::to_string(i));
    region->set(keys.back(), i);
  }
  clock->advance(100);  // about half expired
  std::vector<bool> fresh;
  for (const auto& key : keys) fresh.push_back(region->get<int>(key) != nullptr);
  const auto values =
      multi_values(*region, keys, [](const Keys& k) { return std::vector<int>(k.size(), -2); });
  for (std::size_t i = 0; i < keys.size(); ++i) BOOST_TEST((values[i] != -2) == fresh[i], keys[i]);
}

BOOST_FIXTURE_TEST_CASE(a_cached_multi_function_is_resilient_too, Fixture) {
  configure({.fail_safe = true});
  int calls = 0;
  bool failing = false;
  auto squares = region->cache_multi_on_arguments("squares", [&](const std::vector<int>& numbers) {
    ++calls;
    if (failing) throw std::runtime_error("down");
    std::vector<int> out;
    for (int n : numbers) out.push_back(n * n);
    return out;
  });
  BOOST_TEST((squares({2, 3}) == std::vector<int>{4, 9}));
  clock->advance(11);
  failing = true;
  BOOST_TEST((squares({2, 3}) == std::vector<int>{4, 9}));
  BOOST_TEST(calls == 2);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(configuration)

BOOST_AUTO_TEST_CASE(every_option_is_read_from_a_config) {
  dogpile::ConfigDict config{{"c.backend", "dogpile.cache.memory"},
                             {"c.expiration_time", "10"},
                             {"c.backend_errors", "miss"},
                             {"c.fail_safe", "true"},
                             {"c.fail_safe_throttle", "2"},
                             {"c.hard_timeout", "1.5"},
                             {"c.soft_timeout", "0.5"},
                             {"c.eager_refresh", "0.9"},
                             {"c.expiration_jitter", "0.2"},
                             {"c.serve_stale", "false"}};
  auto region = dogpile::make_region("c");
  BOOST_CHECK_NO_THROW(region->configure_from_config(config, "c."));
  BOOST_TEST(*region->get_or_create("k", [] { return 1; }) == 1);
}

BOOST_AUTO_TEST_CASE(bad_values_are_named) {
  auto check = [](const std::string& key, const std::string& value, const std::string& text) {
    dogpile::ConfigDict config{{"c.backend", "dogpile.cache.memory"}, {"c." + key, value}};
    auto region = dogpile::make_region("c");
    try {
      region->configure_from_config(config, "c.");
      BOOST_ERROR("accepted " << key << " = " << value);
    } catch (const dogpile::ValidationError& e) {
      BOOST_TEST(message_contains(e, text));
    }
  };
  check("backend_errors", "ignore", "c.backend_errors must be raise or miss");
  check("fail_safe", "maybe", "c.fail_safe must be true or false");
  check("fail_safe_throttle", "0", "c.fail_safe_throttle must be a positive number of seconds");
  check("hard_timeout", "-1", "c.hard_timeout must be a positive number of seconds");
  check("eager_refresh", "1", "c.eager_refresh must be 0 (off) or between 0 and 1");
  check("expiration_jitter", "1.5", "c.expiration_jitter must be at least 0 and less than 1");
  dogpile::ConfigDict both{
      {"c.backend", "dogpile.cache.memory"}, {"c.soft_timeout", "2"}, {"c.hard_timeout", "1"}};
  auto region = dogpile::make_region("c");
  try {
    region->configure_from_config(both, "c.");
    BOOST_ERROR("soft_timeout >= hard_timeout accepted");
  } catch (const dogpile::ValidationError& e) {
    BOOST_TEST(message_contains(e, "c.soft_timeout (2.0 s) must be shorter than c.hard_timeout"));
  }
}

BOOST_AUTO_TEST_SUITE_END()
