// dogpile.cache.redis_sentinel against real servers started here: a master, its replica and
// three sentinels on loopback ports. Master discovery, what a failure says, and a failover
// (SENTINEL FAILOVER) under a load of get_or_create from 4 threads.
#define BOOST_TEST_MODULE redis_sentinel
#include <atomic>
#include <boost/test/unit_test.hpp>
#include <dogpile/dogpile.hpp>
#include <latch>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "redis_client.hpp"
#include "servers.hpp"

using nlohmann::json;
using test::eventually;
using test::redis_raw;

namespace {

// A master, a replica in sync with it, and three sentinels (quorum 2) that see both.
struct Service {
  test::RedisServer master;
  test::RedisServer replica{{"--replicaof", "127.0.0.1", std::to_string(master.port())}};
  std::vector<std::unique_ptr<test::RedisSentinelServer>> sentinels;

  Service() {
    BOOST_TEST_REQUIRE(eventually(
        [&] {
          return redis_raw(replica.port(), "INFO replication").find("master_link_status:up") !=
                 std::string::npos;
        },
        20));
    for (int i = 0; i < 3; ++i) {
      sentinels.push_back(std::make_unique<test::RedisSentinelServer>(master.port(), 2));
    }
    // A sentinel learns of the replica from the master's INFO, at once on connecting.
    BOOST_TEST_REQUIRE(eventually(
        [&] {
          return redis_raw(sentinels[0]->port(), "SENTINEL MASTER mymaster").find("num-slaves 1") !=
                 std::string::npos;
        },
        20));
  }

  json arguments() const {
    json list = json::array();
    for (const auto& sentinel : sentinels) list.push_back(sentinel->address());
    return {{"sentinels", list}, {"socket_timeout", 1}, {"lock_timeout", 5}};
  }

  // How many connections the first sentinel has accepted (each question is one).
  long sentinel_connections() const {
    const std::string stats = redis_raw(sentinels[0]->port(), "INFO stats");
    const std::string field = "total_connections_received:";
    const auto at = stats.find(field);
    return at == std::string::npos ? -1 : std::stol(stats.substr(at + field.size()));
  }

  // The port of the master the last sentinel names (the region asks the first one first).
  int named_master() const {
    const std::string reply =
        redis_raw(sentinels[2]->port(), "SENTINEL GET-MASTER-ADDR-BY-NAME mymaster");
    const auto space = reply.find(' ');
    return space == std::string::npos ? 0 : std::stoi(reply.substr(space + 1));
  }
};

std::shared_ptr<dogpile::CacheRegion> sentinel_region(json arguments) {
  auto region = dogpile::make_region("sentinel");
  region->configure("dogpile.cache.redis_sentinel",
                    {.arguments = std::move(arguments), .config_prefix = "cache.s."});
  return region;
}

}  // namespace

BOOST_AUTO_TEST_CASE(bad_arguments_are_named) {
  const auto args = [](const char* text) { return json::parse(text); };
  test::check_bad_arguments(
      "dogpile.cache.redis_sentinel", "cache.s.",
      {{args("{}"), "missing required argument cache.s.arguments.sentinels"},
       {args(R"({"sentinels": []})"), "cache.s.arguments.sentinels must not be empty"},
       {args(R"({"sentinels": ["localhost:port"]})"),
        "each sentinel is \"host:port\" or [host, port]"},
       {args(R"({"sentinels": [["localhost", "26379"]]})"), "cache.s.arguments.sentinels lists"},
       {args(R"({"sentinels": 26379})"), "cache.s.arguments.sentinels must be a list"},
       {args(R"({"sentinels": ["h:1"], "service_name": ""})"),
        "cache.s.arguments.service_name must not be empty"},
       {args(R"({"sentinels": ["h:1"], "sentinel_kwargs": {"ssl": true}})"),
        "unknown argument cache.s.arguments.sentinel_kwargs.ssl"},
       {args(R"({"sentinels": ["h:1"], "connection_kwargs": {"socket_timeout": -1}})"),
        "cache.s.arguments.connection_kwargs.socket_timeout"}});
}

// As dogpile.cache's: the lock is Redis' (distributed_lock defaults to true), so a region
// configured without naming it takes the lock in Redis.
BOOST_AUTO_TEST_CASE(the_distributed_lock_is_on_by_default) {
  auto region = sentinel_region({{"sentinels", {"127.0.0.1:1", json::array({"localhost", 2})}}});
  BOOST_TEST((region->actual_backend()->get_mutex("k") != nullptr));
}

BOOST_AUTO_TEST_CASE(with_no_sentinel_answering_the_error_names_the_service_and_each_sentinel) {
  const int a = test::free_loopback_port();
  const int b = test::free_loopback_port();
  auto region = sentinel_region(
      {{"sentinels", {"127.0.0.1:" + std::to_string(a), json::array({"127.0.0.1", b})}},
       {"service_name", "orders"}});
  const std::string message = test::unavailable_message(
      [&] { region->get<int>("k"); }, "Redis Sentinel service 'orders': no master known");
  BOOST_TEST(message.find("127.0.0.1:" + std::to_string(a)) != std::string::npos, message);
  BOOST_TEST(message.find("127.0.0.1:" + std::to_string(b)) != std::string::npos, message);
}

BOOST_AUTO_TEST_CASE(values_go_to_the_master_the_sentinels_name) {
  Service service;
  auto arguments = service.arguments();
  // A sentinel that does not answer is passed over.
  arguments["sentinels"].insert(arguments["sentinels"].begin(),
                                "127.0.0.1:" + std::to_string(test::free_loopback_port()));
  auto region = sentinel_region(arguments);
  region->set("k", json{{"a", 1}});
  BOOST_TEST(*region->get<json>("k") == (json{{"a", 1}}));
  BOOST_TEST(redis_raw(service.master.port(), "EXISTS k") == "1");

  auto unknown = arguments;
  unknown["service_name"] = "nosuch";
  test::unavailable_message([&] { sentinel_region(unknown)->get<int>("k"); },
                            "Redis Sentinel service 'nosuch': no master known");
}

// 4 threads calling get_or_create on 64 keys until stopped, counting how the calls end. Only
// the test's thread checks and logs (Boost.Test's checks are not thread-safe).
class Load {
 public:
  explicit Load(dogpile::CacheRegion& region) {
    for (int t = 0; t < 4; ++t) {
      threads_.emplace_back([this, &region, t] {
        for (long i = 0; !stop_; ++i) {
          try {
            region.get_or_create("load:" + std::to_string((i * 4 + t) % 64), [i] { return i; });
            ++succeeded;
          } catch (const dogpile::BackendUnavailable& e) {
            ++unavailable;
            if (std::string(e.what()).find("Redis Sentinel service 'mymaster'") ==
                std::string::npos) {
              note(e.what());
            }
          } catch (const std::exception& e) {
            note(e.what());
          }
        }
      });
    }
  }
  ~Load() { stop(); }

  // Stops the threads; checks that every failure was BackendUnavailable naming the service.
  void stop() {
    if (stop_.exchange(true)) return;
    for (auto& thread : threads_) thread.join();
    BOOST_TEST_MESSAGE(succeeded << " calls succeeded, " << unavailable
                                 << " failed with BackendUnavailable");
    BOOST_TEST(wrong_.empty());
    for (const auto& message : wrong_) BOOST_TEST_MESSAGE("a call failed otherwise: " << message);
  }

  std::atomic<long> succeeded{0};
  std::atomic<long> unavailable{0};

 private:
  void note(const std::string& message) {
    std::lock_guard guard(mutex_);
    if (wrong_.size() < 5) wrong_.push_back(message);
  }
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<std::string> wrong_;
  std::vector<std::thread> threads_;
};

// After a failover: 4 threads on one cold key create its value once (the distributed lock
// holds on the new master).
void check_one_creator(dogpile::CacheRegion& region, const std::string& key) {
  std::atomic<int> created{0}, entered{0}, timeouts{0}, failed{0};
  std::latch go(4);
  std::vector<std::thread> herd;
  for (int t = 0; t < 4; ++t) {
    herd.emplace_back([&] {
      go.arrive_and_wait();
      ++entered;
      try {
        region.get_or_create(key, [&] {
          ++created;
          test::wait_in_worker([&] { return entered == 4; }, timeouts);
          return 7;
        });
      } catch (const dogpile::Error&) {
        ++failed;
      }
    });
  }
  for (auto& thread : herd) thread.join();
  BOOST_TEST(failed == 0);
  BOOST_TEST(created == 1);
  BOOST_TEST(timeouts == 0);
  BOOST_TEST(*region.get<int>(key) == 7);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// SENTINEL FAILOVER while 4 threads call get_or_create. The old master keeps running until
// the sentinels demote it, so calls keep succeeding there; as soon as a sentinel announces
// the new master (+switch-master), writes go to it, in the same region, and the distributed
// lock still gives one creator per key.
BOOST_AUTO_TEST_CASE(a_failover_under_load_moves_the_region_to_the_new_master) {
  Service service;
  auto region = sentinel_region(service.arguments());
  Load load(*region);
  BOOST_TEST(eventually([&] { return load.succeeded > 200; }, 20));
  // Refused (NOGOODSLAVE) until the sentinel has seen the replica answer its pings.
  BOOST_TEST_REQUIRE(eventually(
      [&] { return redis_raw(service.sentinels[0]->port(), "SENTINEL FAILOVER mymaster") == "OK"; },
      20));
  BOOST_TEST(eventually(
      [&] {
        return service.named_master() == service.replica.port() &&
               redis_raw(service.replica.port(), "ROLE").starts_with("master");
      },
      30));
  const auto named = std::chrono::steady_clock::now();
  BOOST_TEST(eventually(
      [&] {
        region->set("after", 1);
        return redis_raw(service.replica.port(), "EXISTS after") == "1";
      },
      20));
  BOOST_TEST_MESSAGE("writes on the new master " << seconds_since(named)
                                                 << " s after a sentinel named it");
  const long at_switch = load.succeeded;
  BOOST_TEST(eventually([&] { return load.succeeded > at_switch + 500; }, 20));
  load.stop();
  check_one_creator(*region, "cold");
}

// The master dies under load: calls fail with BackendUnavailable naming the service until
// the sentinels agree it is down and promote the replica, then succeed on it.
BOOST_AUTO_TEST_CASE(a_killed_master_fails_calls_until_the_replica_is_promoted) {
  Service service;
  auto region = sentinel_region(service.arguments());
  Load load(*region);
  BOOST_TEST(eventually([&] { return load.succeeded > 200; }, 20));
  const long asked_before = service.sentinel_connections();
  const auto killed = std::chrono::steady_clock::now();
  service.master.stop();
  BOOST_TEST(eventually([&] { return load.unavailable > 0; }, 10));
  BOOST_TEST(eventually([&] { return service.named_master() == service.replica.port(); }, 30));
  const long at_switch = load.succeeded;
  BOOST_TEST(eventually([&] { return load.succeeded > at_switch + 500; }, 20));
  BOOST_TEST_MESSAGE("calls succeeded again " << seconds_since(killed)
                                              << " s after the master was killed");
  load.stop();
  // Calls failed without asking the sentinels each time (a round of questions, which starts
  // with the first sentinel, once per 100 ms at most), though there were many.
  const long asked = service.sentinel_connections() - asked_before;
  BOOST_TEST_MESSAGE("the first sentinel was asked " << asked << " times meanwhile");
  BOOST_TEST(asked > 0);
  BOOST_TEST(asked < 20 * seconds_since(killed) + 20);
  region->set("after", 1);
  BOOST_TEST(redis_raw(service.replica.port(), "EXISTS after") == "1");
  check_one_creator(*region, "cold");
}

// Python dogpile.cache 1.1.8's redis_sentinel on the same service: values both ways (Python
// reads from the replica, so the test waits for the replica to have C++'s write), and each
// side's distributed lock excludes the other's.
BOOST_AUTO_TEST_CASE(values_and_locks_are_shared_with_python) {
  Service service;
  auto region = sentinel_region(service.arguments());
  const std::string sentinel = std::to_string(service.sentinels[0]->port());
  test::python_peer("redis_sentinel", sentinel, "set 'from python' '{\"a\": [1, 2]}'");
  BOOST_TEST(*region->get<json>("from python") == (json{{"a", {1, 2}}}));

  region->set("from cpp", json{{"b", "x"}});
  BOOST_TEST(redis_raw(service.master.port(), "WAIT 1 5000") == "1");
  BOOST_TEST(test::python_peer("redis_sentinel", sentinel, "get 'from cpp'") == "{\"b\": \"x\"}\n");

  auto mutex = region->actual_backend()->get_mutex("contended");
  BOOST_TEST_REQUIRE(mutex->acquire(false));
  BOOST_TEST(test::python_peer("redis_sentinel", sentinel, "try contended") == "busy\n");
  mutex->release();
  BOOST_TEST(test::python_peer("redis_sentinel", sentinel, "try contended") == "acquired\n");
}
