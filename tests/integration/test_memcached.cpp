// dogpile.cache.memcached against a real memcached started for the test.
#define BOOST_TEST_MODULE memcached
#include <arpa/inet.h>
#include <libmemcached-1.0/memcached.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/test/unit_test.hpp>
#include <dogpile/dogpile.hpp>
#include <map>
#include <thread>

#include "servers.hpp"

using dogpile::CacheRegion;
using nlohmann::json;
using test::message_contains;
using namespace std::chrono_literals;

namespace {

struct Server {
  test::MemcachedServer memcached;
};

std::shared_ptr<CacheRegion> memcached_region(const test::MemcachedServer& server,
                                              json arguments = json::object()) {
  arguments["url"] = server.url();
  auto region = dogpile::make_region("memcached");
  region->configure("dogpile.cache.memcached",
                    {.arguments = std::move(arguments), .config_prefix = "cache.mc."});
  return region;
}

// A client outside the library, to look at the server.
class Raw {
 public:
  explicit Raw(const test::MemcachedServer& server)
      : client_(memcached_create(nullptr)), port_(server.port()) {
    memcached_server_add(client_, "127.0.0.1", static_cast<in_port_t>(port_));
  }
  ~Raw() { memcached_free(client_); }
  Raw(const Raw&) = delete;
  Raw& operator=(const Raw&) = delete;

  std::optional<std::string> get(const std::string& key) {
    std::size_t length = 0;
    uint32_t flags = 0;
    memcached_return_t rc;
    char* value = memcached_get(client_, key.data(), key.size(), &length, &flags, &rc);
    if (value == nullptr) return std::nullopt;
    std::string out(value, length);
    std::free(value);
    return out;
  }

  // The seconds `key` has left on the server (memcached's meta get, `mg <key> t`): -1 for
  // none, nullopt when the key is missing.
  std::optional<long> ttl(const std::string& key) const {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<uint16_t>(port_));
    std::string reply;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
      const std::string request = "mg " + key + " t\r\n";
      if (::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
        char buffer[256];
        ssize_t n;
        while (reply.find("\r\n") == std::string::npos &&
               (n = ::read(fd, buffer, sizeof buffer)) > 0) {
          reply.append(buffer, static_cast<std::size_t>(n));
        }
      }
    }
    ::close(fd);
    if (reply.starts_with("EN")) return std::nullopt;
    const auto t = reply.find(" t");
    BOOST_TEST_REQUIRE((reply.starts_with("HD") && t != std::string::npos), reply);
    return std::stol(reply.substr(t + 2));
  }

  // Adds 1 to the number under `key` (0 if missing).
  void increment(const std::string& key) {
    memcached_add(client_, key.data(), key.size(), "0", 1, 0, 0);
    uint64_t value = 0;
    memcached_increment(client_, key.data(), key.size(), 1, &value);
  }

 private:
  memcached_st* client_;
  int port_;
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(memcached_protocol, Server)

BOOST_AUTO_TEST_CASE(set_then_get_stores_the_wire_format) {
  auto region = memcached_region(memcached);
  region->set("k", json{{"a", 1}});
  BOOST_TEST((*region->get<json>("k") == json{{"a", 1}}));
  const auto stored = Raw(memcached).get("k");
  BOOST_TEST_REQUIRE(stored.has_value());
  BOOST_TEST(stored->starts_with("{\"ct\": "));
  BOOST_TEST(stored->ends_with(", \"v\": 2}|{\"a\":1}"));
}

BOOST_AUTO_TEST_CASE(keys_memcached_cannot_take_are_mangled_by_default) {
  auto region = memcached_region(memcached);
  const std::string spaced = "user profile 7";
  const std::string long_key(300, 'x');
  region->set(spaced, 1);
  region->set(long_key, 2);
  region->set("plain:key", 3);
  BOOST_TEST(*region->get<int>(spaced) == 1);
  BOOST_TEST(*region->get<int>(long_key) == 2);
  Raw raw(memcached);
  BOOST_TEST(raw.get(dogpile::sha1_mangle_key(spaced)).has_value());
  BOOST_TEST(raw.get(dogpile::sha1_mangle_key(long_key)).has_value());
  BOOST_TEST(raw.get("plain:key").has_value());  // readable keys stay as they are
}

BOOST_AUTO_TEST_CASE(keys_beyond_ascii_are_mangled_and_no_key_reads_anothers_value) {
  auto region = memcached_region(memcached);
  region->set("cl\u00e9:caf\u00e9", 1);  // libmemcached once refused it: "A BAD KEY"
  BOOST_TEST(*region->get<int>("cl\u00e9:caf\u00e9") == 1);
  Raw raw(memcached);
  BOOST_TEST(raw.get(dogpile::sha1_mangle_key("cl\u00e9:caf\u00e9")).has_value());
  // A key that is another key's SHA-1 must not read that key's value.
  const std::string spaced = "user profile 8";
  region->set(spaced, 8);
  BOOST_TEST(region->get<int>(dogpile::sha1_mangle_key(spaced)) == nullptr);
  region->set(dogpile::sha1_mangle_key(spaced), 9);
  BOOST_TEST(*region->get<int>(spaced) == 8);
}

BOOST_AUTO_TEST_CASE(a_server_that_is_not_there_is_named_without_addresses) {
  test::MemcachedServer gone;
  const std::string url = gone.url();
  gone.stop();
  auto region = dogpile::make_region("gone");
  region->configure("dogpile.cache.memcached", {.arguments = {{"url", url}}});
  try {
    region->get<int>("k");
    BOOST_ERROR("a get from a stopped server succeeded");
  } catch (const dogpile::BackendUnavailable& e) {
    const std::string text = e.what();
    BOOST_TEST_INFO(text);
    BOOST_TEST(text.find(url) != std::string::npos);
    BOOST_TEST(text.find("0x") == std::string::npos);
    BOOST_TEST(text.find(" -> ") == std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(a_value_the_server_refuses_says_why_without_addresses) {
  // The server's items are 1 MiB; the argument claims 4 MiB, so the server refuses.
  auto region = memcached_region(memcached, {{"item_size_max", 4 << 20}});
  try {
    region->set("big", std::string(2 << 20, 'x'));
    BOOST_ERROR("a 2 MiB value on a 1 MiB server was accepted");
  } catch (const dogpile::ServerError& e) {
    const std::string text = e.what();
    BOOST_TEST_INFO(text);
    BOOST_TEST(text.find("refused set") != std::string::npos);
    BOOST_TEST(text.find("SUCCESS") == std::string::npos);
    BOOST_TEST(text.find("0x") == std::string::npos);
    BOOST_TEST(text.find(" -> ") == std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(the_distributed_mutex_excludes_and_reports_locked) {
  auto region = memcached_region(memcached, {{"distributed_lock", true}});
  auto mutex = region->actual_backend()->get_mutex("k");
  auto other = region->actual_backend()->get_mutex("k");
  BOOST_TEST_REQUIRE(mutex != nullptr);
  BOOST_TEST(!mutex->locked());
  BOOST_TEST(mutex->acquire(false));
  BOOST_TEST(mutex->locked());
  BOOST_TEST(Raw(memcached).get("_lockk").has_value());  // dogpile.cache's lock key
  BOOST_TEST(!other->acquire(false));
  mutex->release();
  BOOST_TEST(!mutex->locked());
  BOOST_TEST(other->acquire(false));
  other->release();
  auto plain = memcached_region(memcached);
  BOOST_TEST(plain->actual_backend()->get_mutex("k") == nullptr);  // in-process lock
}

BOOST_AUTO_TEST_CASE(memcached_expire_time_gives_values_a_server_side_expiry) {
  // Read on the server as the time each key has left, instead of waiting for it to pass.
  auto region = memcached_region(memcached, {{"memcached_expire_time", 100}});
  region->set("k", 1);
  region->set_multi(std::map<std::string, int>{{"m", 2}});
  Raw raw(memcached);
  for (const char* key : {"k", "m"}) {
    const auto ttl = raw.ttl(key);
    BOOST_TEST_REQUIRE(ttl.has_value(), key);
    BOOST_TEST((*ttl > 90 && *ttl <= 100), key << " has " << *ttl << " s left");
  }
  memcached_region(memcached)->set("forever", 3);
  BOOST_TEST((raw.ttl("forever") == std::optional<long>(-1)));
  BOOST_TEST(!raw.ttl("missing").has_value());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_CASE(four_processes_of_eight_threads_on_a_cold_key_create_once) {
  test::MemcachedServer memcached;
  test::StartGate gate;
  std::vector<pid_t> processes;
  for (int p = 0; p < 4; ++p) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      int status = 0;
      try {
        auto region =
            memcached_region(memcached, {{"distributed_lock", true}, {"lock_timeout", 10}});
        region->set("herd:ready", 1);  // connected
        gate.arrive_and_wait();
        std::vector<std::thread> herd;
        for (int t = 0; t < 8; ++t) {
          herd.emplace_back([&] {
            region->get_or_create("herd", [&] {
              Raw(memcached).increment("herd:calls");
              std::this_thread::sleep_for(50ms);
              return 1;
            });
          });
        }
        for (auto& thread : herd) thread.join();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "herd process: %s\n", e.what());
        status = 1;
      }
      ::_exit(status);
    }
    processes.push_back(pid);
  }
  BOOST_TEST(gate.open(4));
  int failures = 0;
  for (pid_t pid : processes) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    failures += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  BOOST_TEST(failures == 0);
  BOOST_TEST(Raw(memcached).get("herd:calls").value_or("none") == "1");
}

BOOST_AUTO_TEST_CASE(a_server_that_is_down_is_backend_unavailable_naming_host_and_port) {
  const int port = test::free_loopback_port();
  auto region = dogpile::make_region();
  region->configure(
      "dogpile.cache.memcached",
      {.arguments = {{"url", "127.0.0.1:" + std::to_string(port)}, {"socket_timeout", 1}}});
  test::unavailable_message([&] { region->get<int>("k"); }, "127.0.0.1:" + std::to_string(port));
}

BOOST_AUTO_TEST_CASE(the_backend_recovers_when_the_server_comes_back) {
  test::MemcachedServer memcached;
  auto region = memcached_region(memcached, {{"socket_timeout", 1}, {"dead_retry", 0}});
  region->set("k", 1);
  memcached.stop();
  BOOST_CHECK_THROW(region->get<int>("k"), dogpile::BackendUnavailable);
  BOOST_CHECK_THROW(region->set("k", 2), dogpile::BackendUnavailable);
  memcached.start();  // the same port, empty; libmemcached retries it after dead_retry
  BOOST_TEST_REQUIRE(test::once_available([&] { region->set("k", 3); }));
  BOOST_TEST(*region->get<int>("k") == 3);
}

BOOST_AUTO_TEST_CASE(a_server_that_stops_answering_fails_within_socket_timeout) {
  test::MemcachedServer memcached;
  auto region = memcached_region(memcached, {{"socket_timeout", 0.5}, {"dead_retry", 0}});
  region->set("k", 1);
  test::check_a_stalled_server_fails_then_recovers(memcached, *region, 0.5);
}

BOOST_AUTO_TEST_CASE(bad_arguments_name_the_key) {
  test::check_bad_arguments(
      "dogpile.cache.memcached", "cache.mc.",
      {
          {json::object(), "missing required argument cache.mc.arguments.url"},
          {{{"url", "127.0.0.1:11211"}, {"urls", 1}}, "unknown argument cache.mc.arguments.urls"},
          {{{"url", "127.0.0.1:99999"}},
           "cache.mc.arguments.url: '127.0.0.1:99999' has no valid port"},
          {{{"url", json::array()}}, "cache.mc.arguments.url names no server"},
          {{{"url", "h:1"}, {"memcached_expire_time", -1}},
           "cache.mc.arguments.memcached_expire_time"},
          {{{"url", "h:1"}, {"lock_timeout", "31d"}},
           "cache.mc.arguments.lock_timeout must be between"},
          {{{"url", "h:1"}, {"connection_pool_size", 0}},
           "cache.mc.arguments.connection_pool_size"},
          {{{"url", "h:1"}, {"socket_timeout", "soon"}}, "cache.mc.arguments.socket_timeout"},
      });
}

// Interoperability with Python dogpile.cache 1.1.8 on both of its memcached clients (Debian's
// python3-pylibmc and python3-memcache), configured with a JSON serializer and, as keys with
// spaces need on memcached, the sha1 key mangler on both sides.
BOOST_FIXTURE_TEST_SUITE(python_interoperability, Server)

BOOST_AUTO_TEST_CASE(values_are_shared_with_python_on_pylibmc_and_python_memcache) {
  for (const std::string peer : {"pylibmc", "memcached"}) {
    BOOST_TEST_CONTEXT("dogpile.cache." << peer) {
      auto region = dogpile::make_region("memcached-" + peer);
      region->configure_from_config({{"cache.backend", "dogpile.cache.memcached"},
                                     {"cache.arguments.url", memcached.url()},
                                     {"cache.key_mangler", "sha1"}},
                                    "cache.");
      test::check_values_shared_with_python(*region, peer, std::to_string(memcached.port()));
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

// The names of Python dogpile.cache's other memcached backends, each with its client's
// arguments, and the consistent hashing they all share.
namespace {

std::shared_ptr<CacheRegion> family_region(const std::string& backend, json arguments) {
  auto region = dogpile::make_region();
  region->configure(backend, {.arguments = std::move(arguments), .config_prefix = "cache.mc."});
  return region;
}

std::string urls(const std::vector<const test::MemcachedServer*>& servers) {
  std::string out;
  for (const auto* server : servers) out += (out.empty() ? "" : ",") + server->url();
  return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(memcached_family)

BOOST_AUTO_TEST_CASE(removing_one_of_three_servers_moves_only_its_own_keys) {
  test::MemcachedServer a, b, c;
  constexpr int kKeys = 600;
  auto three = family_region("dogpile.cache.memcached", {{"url", urls({&a, &b, &c})}});
  for (int i = 0; i < kKeys; ++i) three->set("key-" + std::to_string(i), i);
  // Where each key went, read on each server.
  std::map<const test::MemcachedServer*, int> held;
  for (const auto* server : {&a, &b, &c}) {
    Raw raw(*server);
    for (int i = 0; i < kKeys; ++i) held[server] += raw.get("key-" + std::to_string(i)).has_value();
  }
  BOOST_TEST(held[&a] + held[&b] + held[&c] == kKeys);
  for (const auto& [server, count] : held) {
    BOOST_TEST(count > kKeys / 6, server->url() << " holds " << count << " keys");
  }
  // Without b, every key a or c holds is still found there: only b's third moved. (Modulo
  // hashing would move about two thirds.)
  auto two = family_region("dogpile.cache.memcached", {{"url", urls({&a, &c})}});
  int found = 0;
  for (int i = 0; i < kKeys; ++i) found += two->get<int>("key-" + std::to_string(i)) != nullptr;
  BOOST_TEST(found == held[&a] + held[&c]);
  BOOST_TEST_MESSAGE("of " << kKeys << " keys, " << kKeys - found << " moved");
}

BOOST_AUTO_TEST_CASE(pylibmc_takes_binary_and_behaviors) {
  test::MemcachedServer memcached;
  auto region = family_region("dogpile.cache.pylibmc", {{"url", memcached.url()},
                                                        {"binary", true},
                                                        {"behaviors",
                                                         {{"tcp_nodelay", true},
                                                          {"ketama", true},
                                                          {"connect_timeout", 500},
                                                          {"send_timeout", 500000},
                                                          {"receive_timeout", 500000},
                                                          {"hash", "md5"},
                                                          {"distribution", "consistent ketama"},
                                                          {"pickle_protocol", 2}}}});
  region->set("k", 1);
  BOOST_TEST(*region->get<int>("k") == 1);
  // The flat keys an INI file gives.
  auto from_ini = dogpile::make_region();
  from_ini->configure_from_config({{"cache.backend", "dogpile.cache.pylibmc"},
                                   {"cache.arguments.url", memcached.url()},
                                   {"cache.arguments.behaviors.ketama", "true"},
                                   {"cache.arguments.behaviors.connect_timeout", "500"}},
                                  "cache.");
  BOOST_TEST(*from_ini->get<int>("k") == 1);
  test::check_bad_arguments(
      "dogpile.cache.pylibmc", "cache.mc.",
      {{{{"url", "h:1"}, {"behaviors", {{"no_block", true}}}},
        "cache.mc.arguments.behaviors.no_block is not supported: a write would return before"},
       {{{"url", "h:1"}, {"behaviors", {{"ketamma", true}}}},
        "unknown argument cache.mc.arguments.behaviors.ketamma"},
       {{{"url", "h:1"}, {"behaviors", {{"distribution", "ring"}}}},
        "cache.mc.arguments.behaviors.distribution: 'ring' is not one of"},
       {{{"url", "h:1"}, {"behaviors", {{"connect_timeout", 0}}}},
        "cache.mc.arguments.behaviors.connect_timeout must be positive"},
       {{{"url", "h:1"}, {"behaviors", 3}}, "cache.mc.arguments.behaviors"}});
}

BOOST_AUTO_TEST_CASE(bmemcached_authenticates_with_sasl_and_never_shows_the_password) {
  test::SaslMemcachedServer memcached("alice", "s3cret-pw");
  auto region =
      family_region("dogpile.cache.bmemcached",
                    {{"url", memcached.url()}, {"username", "alice"}, {"password", "s3cret-pw"}});
  region->set("k", 1);
  BOOST_TEST(*region->get<int>("k") == 1);
  for (const json& wrong :
       {json{{"username", "alice"}, {"password", "wrong-pw"}}, json::object()}) {
    json arguments = wrong;
    arguments["url"] = memcached.url();
    auto refused = family_region("dogpile.cache.bmemcached", arguments);
    try {
      refused->set("k", 2);
      BOOST_ERROR("a write without the right credentials was accepted: " << wrong.dump());
    } catch (const dogpile::Error& e) {
      const std::string text = e.what();
      BOOST_TEST(text.find(memcached.url()) != std::string::npos, text);
      BOOST_TEST(text.find("wrong-pw") == std::string::npos, text);
    }
  }
  BOOST_TEST(*region->get<int>("k") == 1);
  test::check_bad_arguments(
      "dogpile.cache.bmemcached", "cache.mc.",
      {{{{"url", "h:1"}, {"username", "alice"}},
        "cache.mc.arguments.username and cache.mc.arguments.password are given together"},
       {{{"url", "h:1"}, {"tls_context", "ctx"}},
        "cache.mc.arguments.tls_context is not supported"}});
}

BOOST_AUTO_TEST_CASE(pymemcache_drops_a_dead_server_from_the_ring_as_its_hash_client_does) {
  test::MemcachedServer a, b;
  auto region = family_region("dogpile.cache.pymemcache", {{"url", urls({&a, &b})},
                                                           {"socket_timeout", 1},
                                                           {"hashclient_retry_attempts", 1},
                                                           {"hashclient_retry_timeout", 1},
                                                           {"hashclient_dead_timeout", 60}});
  for (int i = 0; i < 50; ++i) region->set("key-" + std::to_string(i), i);
  b.stop();
  // Once b has failed, its keys go to a: every key can be written and read again.
  BOOST_TEST(test::once_available([&] {
    for (int i = 0; i < 50; ++i) {
      region->set("key-" + std::to_string(i), i + 1);
      BOOST_TEST_REQUIRE(*region->get<int>("key-" + std::to_string(i)) == i + 1);
    }
  }));
}

BOOST_AUTO_TEST_CASE(pymemcache_retries_as_its_retrying_client_and_refuses_python_objects) {
  const int port = test::free_loopback_port();
  auto region =
      family_region("dogpile.cache.pymemcache", {{"url", "127.0.0.1:" + std::to_string(port)},
                                                 {"socket_timeout", 1},
                                                 {"enable_retry_client", true},
                                                 {"retry_attempts", 3},
                                                 {"retry_delay", 0.001},
                                                 {"serde", nullptr},
                                                 {"retry_for", nullptr}});
  test::unavailable_message([&] { region->get<int>("k"); }, "127.0.0.1:" + std::to_string(port));
  test::check_bad_arguments(
      "dogpile.cache.pymemcache", "cache.mc.",
      {{{{"url", "h:1"}, {"serde", "pickle"}},
        "cache.mc.arguments.serde is not supported: it takes a Python object"},
       {{{"url", "h:1"}, {"default_noreply", true}},
        "cache.mc.arguments.default_noreply is not supported"},
       {{{"url", "h:1"}, {"retry_attempts", 2}}, "need enable_retry_client = true"},
       {{{"url", "h:1"}, {"hashclient_retry_attempts", 0}},
        "cache.mc.arguments.hashclient_retry_attempts must be an integer from 1 to 100, not 0"}});
}

BOOST_AUTO_TEST_SUITE_END()
