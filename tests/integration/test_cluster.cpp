// dogpile.cache.redis_cluster against real clusters made here (redis-server
// --cluster-enabled, redis-cli --cluster create): routing by slot (checked against the
// servers' CLUSTER KEYSLOT), every operation, a resharding under load (MOVED and ASK, no error
// reaches the caller) and a master killed (its slots fail, naming it, until its replica is
// promoted).
#define BOOST_TEST_MODULE redis_cluster
#include <atomic>
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <dogpile/dogpile.hpp>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "../../plugins/backends/redis/slots.hpp"
#include "redis_client.hpp"
#include "servers.hpp"

using nlohmann::json;
using test::eventually;
using test::redis_raw;

namespace {

// A cluster every node of which sees every slot served.
struct Cluster {
  explicit Cluster(int replicas_each) : servers(3, replicas_each) {
    BOOST_TEST_REQUIRE(eventually(
        [&] {
          for (const auto& node : servers.nodes) {
            if (redis_raw(node->port(), "CLUSTER INFO").find("cluster_state:ok") ==
                std::string::npos) {
              return false;
            }
          }
          return true;
        },
        30));
  }

  std::shared_ptr<dogpile::CacheRegion> region(json arguments = json::object()) const {
    arguments["startup_nodes"] = servers.startup_nodes();
    arguments["socket_timeout"] = 2;
    auto region = dogpile::make_region("cluster");
    region->configure("dogpile.cache.redis_cluster",
                      {.arguments = std::move(arguments), .config_prefix = "cache.c."});
    return region;
  }

  // The ports of the nodes that are masters now.
  std::vector<int> masters() const {
    std::vector<int> out;
    for (const auto& node : servers.nodes) {
      if (redis_raw(node->port(), "ROLE").starts_with("master")) out.push_back(node->port());
    }
    return out;
  }

  // The master holding `key` (0: none).
  int holder(const std::string& key) const {
    for (int port : masters()) {
      if (redis_raw(port, "EXISTS " + key) == "1") return port;
    }
    return 0;
  }

  test::RedisClusterServers servers;
};

}  // namespace

BOOST_AUTO_TEST_CASE(bad_arguments_are_named) {
  const auto args = [](const char* text) { return json::parse(text); };
  test::check_bad_arguments(
      "dogpile.cache.redis_cluster", "cache.c.",
      {{args(R"({"startup_nodes": []})"), "cache.c.arguments.startup_nodes must not be empty"},
       {args(R"({"startup_nodes": ["h:x"]})"), "each startup node is \"host:port\""},
       {args(R"({"startup_nodes": ["h:1"], "db": 2})"), "cache.c.arguments.db must be 0"},
       {args(R"({"startup_nodes": ["h:1"], "lock_prefix": "{l}"})"),
        "cache.c.arguments.lock_prefix must not hold braces"},
       {args(R"({"startup_nodes": ["h:1"], "connection_kwargs": {"ssl": true}})"),
        "unknown argument cache.c.arguments.connection_kwargs.ssl"}});
}

BOOST_AUTO_TEST_CASE(with_no_node_answering_the_error_names_each) {
  const int port = test::free_loopback_port();
  auto region = dogpile::make_region("cluster");
  region->configure(
      "dogpile.cache.redis_cluster",
      {.arguments = {{"startup_nodes", {json::object({{"host", "127.0.0.1"}, {"port", port}})}}}});
  test::unavailable_message([&] { region->get<int>("k"); },
                            "Redis Cluster: no node answered CLUSTER SLOTS; cannot connect to "
                            "Redis at 127.0.0.1:" +
                                std::to_string(port));
}

// Keys are routed as the servers hash them, hash tags included, and a key's lock is in its
// slot: no operation of the region meets a MOVED on a stable cluster.
BOOST_AUTO_TEST_CASE(slots_are_the_servers_and_every_operation_works) {
  Cluster cluster(0);
  const int any = cluster.servers.nodes[0]->port();
  for (const std::string key :
       {"", "a", "123456789", "{user1000}.following", "foo{}{bar}", "foo{{bar}}zap", "{}x", "x{y",
        "k\xc3\xa9y", "a}b", "dogpile-demo:alice"}) {
    BOOST_TEST(dogpile::redis::key_slot(key) ==
                   static_cast<unsigned>(std::stoul(redis_raw(any, {"CLUSTER", "KEYSLOT", key}))),
               key);
    if (key.find('}') == std::string::npos && !key.empty()) {
      BOOST_TEST(dogpile::redis::key_slot(dogpile::redis::cluster_lock_name("_lock", key)) ==
                     dogpile::redis::key_slot(key),
                 key);
    }
  }
  BOOST_TEST(dogpile::redis::crc16("123456789") == 0x31C3);  // the specification's check value

  auto region = cluster.region({{"distributed_lock", true}, {"thread_local_lock", false}});
  std::vector<std::string> keys;
  for (int i = 0; i < 300; ++i) keys.push_back("key:" + std::to_string(i));
  for (int i = 0; i < 100; ++i) region->set(keys[i], i);
  std::map<std::string, int> many;
  for (int i = 100; i < 300; ++i) many[keys[i]] = i;
  region->set_multi(many);
  const auto values = region->get_multi<int>(keys);
  BOOST_TEST_REQUIRE(values.size() == keys.size());
  for (int i = 0; i < 300; ++i) {
    BOOST_TEST_REQUIRE(values[i] != nullptr);
    BOOST_TEST(*values[i] == i);
  }
  for (int port : cluster.masters()) {
    BOOST_TEST(std::stoi(redis_raw(port, "DBSIZE")) > 50, "keys on every master");
  }
  region->remove("key:0");
  region->remove_multi({"key:1", "key:150", "key:299"});
  const auto after = region->get_multi<int>({"key:0", "key:1", "key:2", "key:150", "key:299"});
  BOOST_TEST(after[0] == nullptr);
  BOOST_TEST(after[1] == nullptr);
  BOOST_TEST(*after[2] == 2);
  BOOST_TEST(after[3] == nullptr);
  BOOST_TEST(after[4] == nullptr);

  // One node's url is enough: the others are found from it.
  auto from_url = dogpile::make_region("url");
  from_url->configure(
      "dogpile.cache.redis_cluster",
      {.arguments = {{"url", "redis://127.0.0.1:" + std::to_string(cluster.masters()[0])}}});
  const auto through_url = from_url->get_multi<int>(keys);
  for (int i = 2; i < 300; ++i) {
    if (i != 150 && i != 299) BOOST_TEST((through_url[i] && *through_url[i] == i), keys[i]);
  }

  // The lock lives beside its value and excludes a second holder.
  auto backend = region->actual_backend();
  auto mutex = backend->get_mutex("key:2");
  BOOST_TEST_REQUIRE(mutex->acquire(false));
  BOOST_TEST(!backend->get_mutex("key:2")->acquire(false));
  const int holder = cluster.holder("key:2");
  BOOST_TEST(holder != 0);
  BOOST_TEST(redis_raw(holder, "EXISTS _lock{key:2}") == "1");
  mutex->release();
  BOOST_TEST(backend->get_mutex("key:2")->acquire(false));
}

// 4 threads read and write 500 keys while redis-cli moves 2000 slots from one master to
// another: the region follows MOVED and ASK; no call fails.
BOOST_AUTO_TEST_CASE(a_resharding_under_load_reaches_no_caller) {
  Cluster cluster(0);
  auto region = cluster.region();
  const auto masters = cluster.masters();
  BOOST_TEST_REQUIRE(masters.size() == 3u);
  for (int i = 0; i < 500; ++i) region->set("r:" + std::to_string(i), i);

  std::atomic<bool> stop{false};
  std::atomic<long> calls{0}, wrong{0};
  std::mutex mutex;
  std::vector<std::string> errors;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (long i = t; !stop; i += 4) {
        const std::string key = "r:" + std::to_string(i % 500);
        try {
          if (i % 3 == 0) {
            region->set(key, static_cast<int>(i % 500));
          } else if (i % 3 == 1) {
            auto value = region->get<int>(key);
            if (!value || *value != i % 500) ++wrong;
          } else {
            auto values = region->get_multi<int>({key, "r:" + std::to_string((i + 1) % 500)});
            if (!values[0] || *values[0] != i % 500) ++wrong;
          }
          ++calls;
        } catch (const std::exception& e) {
          std::lock_guard guard(mutex);
          if (errors.size() < 5) errors.push_back(e.what());
        }
      }
    });
  }
  BOOST_TEST(eventually([&] { return calls > 1000; }, 20));
  const std::string from = redis_raw(masters[0], "CLUSTER MYID");
  const std::string to = redis_raw(masters[1], "CLUSTER MYID");
  const std::string reshard =
      "redis-cli --cluster reshard 127.0.0.1:" + std::to_string(masters[0]) + " --cluster-from " +
      from + " --cluster-to " + to + " --cluster-slots 2000 --cluster-yes > /dev/null 2>&1";
  BOOST_TEST(std::system(reshard.c_str()) == 0);
  const long at_end = calls;
  BOOST_TEST(eventually([&] { return calls > at_end + 1000; }, 20));
  stop = true;
  for (auto& thread : threads) thread.join();
  BOOST_TEST_MESSAGE(calls << " calls during and after the resharding");
  BOOST_TEST(errors.empty());
  for (const auto& error : errors) BOOST_TEST_MESSAGE("a call failed: " << error);
  BOOST_TEST(wrong == 0);
  // The region was redirected (the servers count the MOVED and ASK replies they sent).
  long moved = 0, ask = 0;
  for (int port : masters) {
    const std::string stats = redis_raw(port, "INFO errorstats");
    for (auto [name, count] :
         {std::pair{"errorstat_MOVED:count=", &moved}, std::pair{"errorstat_ASK:count=", &ask}}) {
      const auto at = stats.find(name);
      if (at != std::string::npos) *count += std::stol(stats.substr(at + std::strlen(name)));
    }
  }
  BOOST_TEST_MESSAGE(moved << " MOVED and " << ask << " ASK replies followed");
  BOOST_TEST(moved > 0);
  // The slots did move: the second master holds more keys than before.
  BOOST_TEST(std::stoi(redis_raw(masters[1], "DBSIZE")) >
             std::stoi(redis_raw(masters[2], "DBSIZE")));
}

// A master dies: its keys fail with BackendUnavailable naming it, the other masters' keys
// still work, and once its replica is promoted its keys are served again, by the same region.
BOOST_AUTO_TEST_CASE(a_killed_master_fails_its_slots_until_its_replica_is_promoted) {
  Cluster cluster(1);
  auto region = cluster.region();
  for (int i = 0; i < 100; ++i) region->set("m:" + std::to_string(i), i);
  const int victim = cluster.holder("m:0");
  BOOST_TEST_REQUIRE(victim != 0);
  std::string elsewhere;
  for (int i = 1; i < 100 && elsewhere.empty(); ++i) {
    const std::string key = "m:" + std::to_string(i);
    if (cluster.holder(key) != victim) elsewhere = key;
  }
  BOOST_TEST_REQUIRE(!elsewhere.empty());
  BOOST_TEST(redis_raw(victim, "WAIT 1 5000") == "1");  // the replica has the values

  for (auto& node : cluster.servers.nodes) {
    if (node->port() == victim) node->stop();
  }
  const auto killed = std::chrono::steady_clock::now();
  test::unavailable_message([&] { region->get<int>("m:0"); },
                            "127.0.0.1:" + std::to_string(victim));
  BOOST_TEST(*region->get<int>(elsewhere) >= 0);
  bool served = false;
  BOOST_TEST(eventually(
      [&] {
        try {
          served = region->get<int>("m:0") != nullptr;
          return true;
        } catch (const dogpile::BackendUnavailable&) {
          return false;
        }
      },
      30));
  BOOST_TEST(served);
  BOOST_TEST_MESSAGE(
      "its slots were served again "
      << std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count()
      << " s after the master was killed");
  region->set("m:0", 42);
  BOOST_TEST(*region->get<int>("m:0") == 42);
}
