// dogpile.cache.redis against a real redis-server started for the test.
#define BOOST_TEST_MODULE redis
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/test/unit_test.hpp>
#include <csignal>
#include <cstdio>
#include <dogpile/dogpile.hpp>
#include <fstream>
#include <future>
#include <latch>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "redis_client.hpp"
#include "servers.hpp"

using dogpile::CacheRegion;
using nlohmann::json;
using test::message_contains;
using namespace std::chrono_literals;

namespace {

struct Server {
  test::RedisServer redis;
};

std::shared_ptr<CacheRegion> redis_region(const test::RedisServer& server,
                                          json arguments = json::object()) {
  arguments["url"] = server.url();
  auto region = dogpile::make_region("redis");
  region->configure("dogpile.cache.redis",
                    {.arguments = std::move(arguments), .config_prefix = "cache.redis."});
  return region;
}

// A command sent outside the library, to look at the server.
std::string raw(const test::RedisServer& server, const std::string& command) {
  return test::redis_raw(server.port(), command);
}

// The integer at index 1 of an array reply (PUBSUB NUMSUB's count); -1 when there is none.
long long raw_array_integer(const test::RedisServer& server, const std::string& command) {
  redisContext* context = redisConnect("127.0.0.1", server.port());
  auto* reply = static_cast<redisReply*>(redisCommand(context, command.c_str()));
  long long out = -1;
  if (reply != nullptr && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
      reply->element[1]->type == REDIS_REPLY_INTEGER) {
    out = reply->element[1]->integer;
  }
  if (reply != nullptr) freeReplyObject(reply);
  redisFree(context);
  return out;
}

// How often the server ran `command`, from INFO commandstats.
long calls_of(const test::RedisServer& server, const std::string& command) {
  const std::string info = raw(server, "INFO commandstats");
  const std::string marker = "cmdstat_" + command + ":calls=";
  auto at = info.find(marker);
  return at == std::string::npos ? 0 : std::stol(info.substr(at + marker.size()));
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(redis_protocol, Server)

BOOST_AUTO_TEST_CASE(set_then_get_stores_the_wire_format) {
  auto region = redis_region(redis);
  region->set("k", json{{"a", 1}});
  BOOST_TEST((*region->get<json>("k") == json{{"a", 1}}));
  const std::string stored = raw(redis, "GET k");
  BOOST_TEST(stored.starts_with("{\"ct\": "));
  BOOST_TEST(stored.ends_with(", \"v\": 2}|{\"a\":1}"));
}

BOOST_AUTO_TEST_CASE(get_multi_of_a_hundred_keys_is_one_round_trip) {
  auto region = redis_region(redis);
  dogpile::Keys keys;
  std::map<std::string, int> mapping;
  for (int i = 0; i < 100; ++i) {
    keys.push_back("k" + std::to_string(i));
    mapping[keys.back()] = i;
  }
  region->set_multi(mapping);
  const long mget_before = calls_of(redis, "mget");
  const long get_before = calls_of(redis, "get");
  auto values = region->get_multi<int>(keys);
  BOOST_TEST(calls_of(redis, "mget") - mget_before == 1);
  BOOST_TEST(calls_of(redis, "get") - get_before == 0);
  BOOST_TEST(*values[42] == 42);
}

BOOST_AUTO_TEST_CASE(the_distributed_mutex_excludes_and_reports_locked) {
  auto region = redis_region(redis, {{"distributed_lock", true}, {"thread_local_lock", false}});
  auto mutex = region->actual_backend()->get_mutex("k");
  BOOST_TEST_REQUIRE(mutex != nullptr);
  BOOST_TEST(!mutex->locked());
  BOOST_TEST(mutex->acquire(false));
  BOOST_TEST(mutex->locked());
  BOOST_TEST(raw(redis, "EXISTS _lockk") == "1");
  auto other = region->actual_backend()->get_mutex("k");  // as another process would
  BOOST_TEST(!other->acquire(false));
  mutex->release();
  BOOST_TEST(!mutex->locked());
  BOOST_TEST(other->acquire(false));
  other->release();
}

BOOST_AUTO_TEST_CASE(lock_blocking_settings_bound_the_wait) {
  auto region = redis_region(redis, {{"distributed_lock", true},
                                     {"thread_local_lock", false},
                                     {"lock_blocking_timeout", 0.2},
                                     {"lock_sleep", 0.02}});
  auto holder = region->actual_backend()->get_mutex("k");
  BOOST_TEST(holder->acquire(false));
  auto waiter = region->actual_backend()->get_mutex("k");
  BOOST_TEST(!waiter->acquire(true));  // gives up after lock_blocking_timeout
  auto non_blocking = redis_region(
      redis, {{"distributed_lock", true}, {"thread_local_lock", false}, {"lock_blocking", false}});
  const auto start = std::chrono::steady_clock::now();
  BOOST_TEST(!non_blocking->actual_backend()->get_mutex("k")->acquire(true));
  BOOST_TEST(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < 0.5);
  // A lock not got is not waited for: the values are created without it, as dogpile does.
  auto values = non_blocking->get_or_create_multi(
      {"k", "other"}, [](const dogpile::Keys& keys) { return std::vector<int>(keys.size(), 5); });
  BOOST_TEST(*values[0] == 5);
  BOOST_TEST(*values[1] == 5);
  non_blocking->remove("k");
  BOOST_TEST(*region->get_or_create("k", [] { return 6; }) == 6);  // after lock_blocking_timeout
  BOOST_TEST(holder->locked());
  holder->release();
}

BOOST_AUTO_TEST_CASE(a_thread_local_lock_is_released_only_by_its_thread) {
  auto region = redis_region(redis, {{"distributed_lock", true}});  // thread_local_lock: true
  auto mutex = region->actual_backend()->get_mutex("k");
  BOOST_TEST(mutex->acquire(false));
  bool refused = false;
  std::thread([&] {
    try {
      mutex->release();
    } catch (const dogpile::Error&) {
      refused = true;
    }
  }).join();
  BOOST_TEST(refused);
  mutex->release();
  BOOST_TEST(!mutex->locked());
}

BOOST_AUTO_TEST_CASE(redis_expiration_time_sets_a_server_side_ttl) {
  auto region = redis_region(redis, {{"redis_expiration_time", 30}});
  region->set("k", 1);
  region->set_multi(std::map<std::string, int>{{"m", 2}});
  const int ttl = std::stoi(raw(redis, "TTL k"));
  BOOST_TEST(ttl > 0);
  BOOST_TEST(ttl <= 30);
  BOOST_TEST(std::stoi(raw(redis, "TTL m")) > 0);
  auto plain = redis_region(redis);
  plain->set("p", 1);
  BOOST_TEST(raw(redis, "TTL p") == "-1");
}

BOOST_AUTO_TEST_CASE(a_unix_socket_url_and_the_db_argument_choose_the_database) {
  auto over_socket = dogpile::make_region();
  over_socket->configure("dogpile.cache.redis",
                         {.arguments = {{"url", "unix://" + redis.socket_path() + "?db=3"}}});
  over_socket->set("k", 7);
  BOOST_TEST(*over_socket->get<int>("k") == 7);

  auto over_tcp = dogpile::make_region();
  over_tcp->configure("dogpile.cache.redis",
                      {.arguments = {{"host", "127.0.0.1"}, {"port", redis.port()}, {"db", 5}}});
  over_tcp->set("k", 8);
  auto db_in_query = dogpile::make_region();  // redis-py's ?db=N on a redis:// URL
  db_in_query->configure(
      "dogpile.cache.redis",
      {.arguments = {{"url", "redis://127.0.0.1:" + std::to_string(redis.port()) + "?db=6"}}});
  db_in_query->set("k", 9);
  const std::string keyspace = raw(redis, "INFO keyspace");
  BOOST_TEST(keyspace.find("db3:keys=1") != std::string::npos);
  BOOST_TEST(keyspace.find("db5:keys=1") != std::string::npos);
  BOOST_TEST(keyspace.find("db6:keys=1") != std::string::npos);
  BOOST_TEST(keyspace.find("db0:") == std::string::npos);
}

// Whether an established connection to `port` from this process has its keepalive timer set
// (the `tr` column of /proc/net/tcp is 2 for keepalive).
std::vector<bool> keepalive_of_connections_to(int port) {
  std::ifstream tcp("/proc/net/tcp");
  std::string line;
  std::getline(tcp, line);  // header
  char remote_port[8];
  std::snprintf(remote_port, sizeof remote_port, ":%04X", port);
  std::vector<bool> out;
  while (std::getline(tcp, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state, queues, timer;
    fields >> slot >> local >> remote >> state >> queues >> timer;
    if (remote.ends_with(remote_port) && state == "01") out.push_back(timer.starts_with("02"));
  }
  return out;
}

BOOST_AUTO_TEST_CASE(socket_keepalive_turns_on_tcp_keepalive) {
  auto with = redis_region(redis, {{"socket_keepalive", true}, {"socket_connect_timeout", 2}});
  with->set("k", 1);
  BOOST_TEST(keepalive_of_connections_to(redis.port()) == std::vector<bool>{true});
  with.reset();  // its pool closes
  auto without = redis_region(redis);
  without->set("k", 1);
  BOOST_TEST(keepalive_of_connections_to(redis.port()) == std::vector<bool>{false});
}

BOOST_AUTO_TEST_CASE(the_pool_opens_at_most_connection_pool_size_connections) {
  auto region = redis_region(redis, {{"connection_pool_size", 2}});
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      const std::string key = "t" + std::to_string(t);
      for (int i = 0; i < 200; ++i) {
        region->set(key, i);
        if (*region->get<int>(key) != i) ++wrong;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  BOOST_TEST(wrong == 0);
  // Idle pool connections stay open, so this counts every one the pool ever opened (plus the
  // connection asking).
  const std::string info = raw(redis, "INFO clients");
  const auto at = info.find("connected_clients:");
  BOOST_TEST_REQUIRE(at != std::string::npos);
  BOOST_TEST(std::stoi(info.substr(at + 18)) <= 3);
}

BOOST_AUTO_TEST_CASE(an_error_reply_in_a_pipeline_leaves_no_reply_behind) {
  auto region = redis_region(redis, {{"connection_pool_size", 1}});  // one connection, reused
  region->set("k", 1);
  raw(redis, "CONFIG SET maxmemory 1");  // every write is now refused with OOM
  try {
    region->set_multi(std::map<std::string, int>{{"a", 1}, {"b", 2}, {"c", 3}});
    BOOST_FAIL("expected the OOM error");
  } catch (const dogpile::BackendUnavailable&) {
    BOOST_FAIL("an error reply is not an unavailable server");
  } catch (const dogpile::ServerError& e) {
    BOOST_TEST(message_contains(e, "OOM"));
  }
  raw(redis, "CONFIG SET maxmemory 0");
  BOOST_TEST(*region->get<int>("k") == 1);  // not the OOM reply of "b"
  region->set("a", 4);
  BOOST_TEST(*region->get<int>("a") == 4);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_CASE(a_password_and_database_from_the_url_are_used_and_never_shown) {
  test::RedisServer redis({"--requirepass", "s3cret"});
  auto region = dogpile::make_region();
  region->configure(
      "dogpile.cache.redis",
      {.arguments = {{"url", "redis://:s3cret@127.0.0.1:" + std::to_string(redis.port()) + "/2"}}});
  region->set("k", 1);
  BOOST_TEST(*region->get<int>("k") == 1);
  // In database 2: database 0 does not have it.
  auto db0 = dogpile::make_region();
  db0->configure(
      "dogpile.cache.redis",
      {.arguments = {{"url", "redis://:s3cret@127.0.0.1:" + std::to_string(redis.port()) + "/0"}}});
  BOOST_TEST(db0->get<int>("k") == nullptr);

  // A wrong password, given as an argument or in the URL, is never shown.
  auto wrong = dogpile::make_region();
  wrong->configure(
      "dogpile.cache.redis",
      {.arguments = {{"host", "127.0.0.1"}, {"port", redis.port()}, {"password", "nope"}}});
  auto wrong_url = dogpile::make_region();
  wrong_url->configure(
      "dogpile.cache.redis",
      {.arguments = {{"url", "redis://:n0pe@127.0.0.1:" + std::to_string(redis.port()) + "/2"}}});
  for (const auto& [region, password] : {std::pair{wrong, "nope"}, std::pair{wrong_url, "n0pe"}}) {
    try {
      region->get<int>("k");
      BOOST_FAIL("expected an error");
    } catch (const dogpile::Error& e) {
      BOOST_TEST(std::string(e.what()).find(password) == std::string::npos, e.what());
    }
  }
}

BOOST_AUTO_TEST_CASE(a_username_and_password_authenticate_an_acl_user) {
  test::RedisServer redis({"--user", "alice", "on", ">pw", "~*", "&*", "+@all"});
  const std::string port = std::to_string(redis.port());
  auto from_url = dogpile::make_region();
  from_url->configure("dogpile.cache.redis",
                      {.arguments = {{"url", "redis://alice:pw@127.0.0.1:" + port + "/0"}}});
  from_url->set("k", 1);
  auto from_arguments = dogpile::make_region();
  from_arguments->configure("dogpile.cache.redis", {.arguments = {{"host", "127.0.0.1"},
                                                                  {"port", redis.port()},
                                                                  {"username", "alice"},
                                                                  {"password", "pw"}}});
  BOOST_TEST(*from_arguments->get<int>("k") == 1);
  auto wrong = dogpile::make_region();
  wrong->configure("dogpile.cache.redis",
                   {.arguments = {{"url", "redis://alice:wrong@127.0.0.1:" + port}}});
  try {
    wrong->get<int>("k");
    BOOST_FAIL("expected an error");
  } catch (const dogpile::ServerError& e) {
    BOOST_TEST(message_contains(e, "WRONGPASS"));
    BOOST_TEST(std::string(e.what()).find("wrong@") == std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(a_server_that_stops_answering_fails_within_socket_timeout) {
  test::RedisServer redis;
  auto region = redis_region(redis, {{"socket_timeout", 0.5}});
  region->set("k", 1);
  test::check_a_stalled_server_fails_then_recovers(redis, *region, 0.5);
}

BOOST_AUTO_TEST_CASE(a_server_that_is_down_is_backend_unavailable_naming_host_and_port) {
  const int port = test::free_loopback_port();
  auto region = dogpile::make_region();
  region->configure("dogpile.cache.redis",
                    {.arguments = {{"url", "redis://:hidden@127.0.0.1:" + std::to_string(port)},
                                   {"socket_timeout", 1}}});
  const std::string message = test::unavailable_message([&] { region->get<int>("k"); },
                                                        "127.0.0.1:" + std::to_string(port));
  BOOST_TEST(message.find("hidden") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(the_backend_recovers_when_the_server_comes_back) {
  test::RedisServer redis;
  auto region = redis_region(redis, {{"socket_timeout", 1}});
  region->set("k", 1);
  redis.stop();
  BOOST_CHECK_THROW(region->get<int>("k"), dogpile::BackendUnavailable);
  BOOST_CHECK_THROW(region->set("k", 2), dogpile::BackendUnavailable);
  redis.start();  // the same port, empty (no persistence)
  BOOST_TEST(region->get<int>("k") == nullptr);
  region->set("k", 3);
  BOOST_TEST(*region->get<int>("k") == 3);
}

BOOST_AUTO_TEST_CASE(bad_arguments_name_the_key) {
  test::check_bad_arguments(
      "dogpile.cache.redis", "cache.redis.",
      {
          {{{"prot", 1}}, "unknown argument cache.redis.arguments.prot"},
          {{{"url", "http://x"}}, "cache.redis.arguments.url is not a Redis URL"},
          {{{"url", "unix:///tmp/r.sock?db=x"}}, "the database is not a number"},
          {{{"url", "rediss://localhost:6380/0"}},
           "cache.redis.arguments.url: rediss:// is "
           "Redis over TLS, which this build cannot speak"},
          {{{"url", "redis://localhost:6379/0?socket_timeout=1"}},
           "query option 'socket_timeout' is not read from the URL here; give it as the argument "
           "socket_timeout"},
          {{{"connection_pool_size", 0}}, "cache.redis.arguments.connection_pool_size"},
          {{{"ssl", true}}, "cache.redis.arguments.ssl is not supported"},
          {{{"port", 70000}}, "cache.redis.arguments.port must be between 1 and 65535"},
          {{{"lock_prefix", ""}}, "cache.redis.arguments.lock_prefix"},
          {{{"socket_timeout", "soon"}}, "cache.redis.arguments.socket_timeout"},
      });
}

// A waiter sleeps between polls (lock_sleep, 10 s here) unless the holder announces its
// release, which wakes it at once.
BOOST_AUTO_TEST_CASE(a_release_wakes_the_waiters_before_their_next_poll) {
  test::RedisServer redis;
  auto holder = redis_region(redis, {{"distributed_lock", true}, {"thread_local_lock", false}});
  auto waiter = redis_region(
      redis, {{"distributed_lock", true}, {"thread_local_lock", false}, {"lock_sleep", 10}});
  auto held = holder->backend()->get_mutex("k");
  BOOST_TEST_REQUIRE(held->acquire(true));
  const long sets = calls_of(redis, "set");
  std::atomic<bool> taken{false};
  std::thread waiting([&] {
    auto mutex = waiter->backend()->get_mutex("k");
    taken = mutex->acquire(true);
    mutex->release();
  });
  // The waiter tried once, failed, and listens for releases.
  BOOST_TEST(test::wait_until([&] {
    return calls_of(redis, "set") > sets &&
           raw_array_integer(redis, "PUBSUB NUMSUB dogpile:lock-released") >= 1;
  }));
  const auto released = std::chrono::steady_clock::now();
  held->release();
  waiting.join();
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - released).count();
  BOOST_TEST(taken);
  BOOST_TEST(waited < 5.0);  // its next poll was 10 s away
  BOOST_TEST_MESSAGE("the waiter had the lock " << waited * 1000 << " ms after the release");
}

BOOST_AUTO_TEST_CASE(four_processes_of_eight_threads_on_a_cold_key_create_once) {
  test::RedisServer redis;
  const char* herd = std::getenv("DOGPILE_TEST_REDIS_HERD");
  BOOST_TEST_REQUIRE(herd != nullptr);
  test::StartGate gate;
  std::vector<pid_t> processes;
  for (int p = 0; p < 4; ++p) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      const std::string port = std::to_string(redis.port());
      const std::string ready = std::to_string(gate.ready_fd());
      const std::string go = std::to_string(gate.go_fd());
      ::execl(herd, herd, port.c_str(), "8", ready.c_str(), go.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    processes.push_back(pid);
  }
  BOOST_TEST(gate.open(4));
  const auto start = std::chrono::steady_clock::now();
  int failures = 0;
  for (pid_t pid : processes) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    failures += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  const double wall_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  BOOST_TEST_MESSAGE("4 x 8 herd on a 50 ms creator finished " << wall_ms << " ms after the start");
  BOOST_TEST(failures == 0);
  BOOST_TEST(raw(redis, "GET herd:calls") == "1");
}

// Interoperability with Python dogpile.cache 1.1.8 (Debian's python3-dogpile.cache and
// python3-redis) configured with a JSON serializer.
BOOST_FIXTURE_TEST_SUITE(python_interoperability, Server)

BOOST_AUTO_TEST_CASE(values_are_shared_with_python_both_ways) {
  auto region = redis_region(redis);
  test::check_values_shared_with_python(*region, "redis", std::to_string(redis.port()));
}

BOOST_AUTO_TEST_CASE(while_python_holds_the_lock_cpp_waits_instead_of_creating) {
  auto region = redis_region(
      redis, {{"distributed_lock", true}, {"thread_local_lock", false}, {"lock_timeout", 30}});
  const std::string command =
      test::python_peer_command("redis", redis.port(), "hold contended 1.0 '{\"by\": \"python\"}'");
  FILE* holder = ::popen(command.c_str(), "r");
  BOOST_TEST_REQUIRE(holder != nullptr);
  char line[64] = {};
  BOOST_TEST_REQUIRE(std::fgets(line, sizeof line, holder) != nullptr);  // "locked"
  BOOST_TEST(std::string(line) == "locked\n");
  BOOST_TEST(region->key_is_locked("contended"));

  int created = 0;
  const auto start = std::chrono::steady_clock::now();
  auto value = region->get_or_create("contended", [&created] {
    ++created;
    return json{{"by", "c++"}};
  });
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  BOOST_TEST(::pclose(holder) == 0);
  BOOST_TEST(created == 0);
  BOOST_TEST((*value == json{{"by", "python"}}));
  BOOST_TEST(waited > 0.5);
}

// C++ announces its releases on a channel; Python's lock neither listens nor minds: it polls,
// and reads the value C++ made.
BOOST_AUTO_TEST_CASE(while_cpp_holds_the_lock_python_waits_and_reads_its_value) {
  auto region = redis_region(
      redis, {{"distributed_lock", true}, {"thread_local_lock", false}, {"lock_timeout", 30}});
  auto mutex = region->backend()->get_mutex("held");
  BOOST_TEST_REQUIRE(mutex->acquire(true));
  const std::string command =
      test::python_peer_command("redis", redis.port(), "create held '{\"by\": \"python\"}'");
  FILE* waiter = ::popen(command.c_str(), "r");
  BOOST_TEST_REQUIRE(waiter != nullptr);
  // Python polls the lock (SET NX) while C++ holds it: seen in the server's counts.
  BOOST_TEST(test::wait_until([&] { return calls_of(redis, "set") >= 2; }));
  region->set("held", json{{"by", "c++"}});
  mutex->release();
  char line[256] = {};
  BOOST_TEST_REQUIRE(std::fgets(line, sizeof line, waiter) != nullptr);
  BOOST_TEST(::pclose(waiter) == 0);
  BOOST_TEST(std::string(line) == "{\"by\": \"c++\"} read\n");
}

BOOST_AUTO_TEST_SUITE_END()

// A server that answers one command, then closes the connection: the next write on it fails
// with EPIPE, which raises SIGPIPE. The application's SIGPIPE is left at its default (which
// kills the process): the write must fail as BackendUnavailable, and the process live on.
BOOST_AUTO_TEST_CASE(a_server_gone_during_a_large_write_raises_no_sigpipe) {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof address;
  BOOST_TEST_REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&address), size) == 0);
  BOOST_TEST_REQUIRE(::listen(listener, 1) == 0);
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &size);
  std::promise<void> closed;
  std::thread server([&] {
    const int connection = ::accept(listener, nullptr, nullptr);
    char buffer[4096];
    [[maybe_unused]] const auto n = ::read(connection, buffer, sizeof buffer);  // SET small 1
    [[maybe_unused]] const auto w = ::write(connection, "+OK\r\n", 5);
    ::close(connection);  // everything was read: a FIN, then a RST for what comes next
    closed.set_value();
  });
  const auto previous = std::signal(SIGPIPE, SIG_DFL);
  auto region = dogpile::make_region("gone");
  region->configure("dogpile.cache.redis", {.arguments = {{"host", "127.0.0.1"},
                                                          {"port", ntohs(address.sin_port)},
                                                          {"connection_pool_size", 1}}});
  region->set("small", 1);
  closed.get_future().wait();
  BOOST_CHECK_THROW(region->set("big", std::string(8 << 20, 'x')), dogpile::BackendUnavailable);
  std::signal(SIGPIPE, previous);
  server.join();
  ::close(listener);
}

BOOST_FIXTURE_TEST_SUITE(foreign_types, Server)

// get, get_multi and get_or_create once disagreed on a key holding a list: WRONGTYPE, a miss,
// and an overwrite.
BOOST_AUTO_TEST_CASE(a_key_holding_another_type_is_a_miss_for_every_read_and_a_write_replaces_it) {
  auto region = redis_region(redis);
  raw(redis, "RPUSH listed a b");
  BOOST_TEST(region->get<int>("listed") == nullptr);
  BOOST_TEST(region->get_multi<int>({"listed"}).at(0) == nullptr);
  BOOST_TEST(region->get_value_metadata("listed") == nullptr);
  BOOST_TEST(*region->get_or_create("listed", [] { return 5; }) == 5);
  BOOST_TEST(raw(redis, "TYPE listed") == "string");
  BOOST_TEST(*region->get<int>("listed") == 5);
}

BOOST_AUTO_TEST_SUITE_END()

// The region's resilience options on a real Redis (see test_resilience for each option's
// details on the memory backend).
BOOST_AUTO_TEST_SUITE(resilience)

std::shared_ptr<CacheRegion> resilient_region(const test::RedisServer& server,
                                              std::shared_ptr<dogpile::ManualClock> clock,
                                              dogpile::ResilienceOptions resilience) {
  auto region = dogpile::make_region({.name = "resilient", .clock = std::move(clock)});
  region->configure("dogpile.cache.redis", {.expiration_time = 10,
                                            .arguments = {{"url", server.url()},
                                                          {"socket_timeout", 1},
                                                          {"distributed_lock", true},
                                                          {"thread_local_lock", false}},
                                            .resilience = resilience});
  return region;
}

BOOST_AUTO_TEST_CASE(backend_errors_miss_rides_out_a_stopped_redis_and_recovers) {
  test::RedisServer redis;
  auto clock = std::make_shared<dogpile::ManualClock>();
  auto region = resilient_region(
      redis, clock, {.backend_errors = dogpile::BackendErrors::miss, .backend_retry_interval = 2});
  region->set("a", 1);
  redis.stop();
  BOOST_TEST(!region->get<int>("a"));
  BOOST_CHECK_NO_THROW(region->set("a", 2));
  BOOST_CHECK_NO_THROW(region->remove("a"));
  int made = 0;
  for (int i = 0; i < 3; ++i)
    BOOST_TEST(*region->get_or_create("b", [&] { return ++made; }) == i + 1);
  redis.start();  // the same port, empty (no persistence)
  // Still resting: the region has not looked yet.
  region->set("c", 3);
  BOOST_TEST(raw(redis, "EXISTS c") == "0");
  clock->advance(2.1);  // the retry interval is over: the next call uses Redis again
  region->set("c", 3);
  BOOST_TEST(raw(redis, "EXISTS c") == "1");
  BOOST_TEST(*region->get_or_create("b", [&] { return ++made; }) == 4);
  BOOST_TEST(*region->get_or_create("b", [&] { return ++made; }) == 4);  // cached again
}

BOOST_AUTO_TEST_CASE(fail_safe_keeps_the_stale_value_in_redis_for_the_throttle) {
  test::RedisServer redis;
  auto clock = std::make_shared<dogpile::ManualClock>();
  auto region = resilient_region(redis, clock, {.fail_safe = true, .fail_safe_throttle = 5});
  region->set("k", 1);
  clock->advance(11);
  int tries = 0;
  auto failing = [&]() -> int {
    ++tries;
    throw std::runtime_error("database down");
  };
  BOOST_TEST(*region->get_or_create("k", failing) == 1);
  BOOST_TEST(raw(redis, "GET k").find("\"origin\": ") != std::string::npos);
  // Another process reads it as kept, fresh for the throttle.
  auto other = resilient_region(redis, clock, {.fail_safe = true, .fail_safe_throttle = 5});
  BOOST_TEST(*other->get_or_create("k", failing) == 1);
  BOOST_TEST(tries == 1);
}

BOOST_AUTO_TEST_CASE(hard_timeout_bounds_a_wait_on_the_distributed_lock) {
  test::RedisServer redis;
  auto clock = std::make_shared<dogpile::ManualClock>();
  auto holder = resilient_region(redis, clock, {});
  auto region = resilient_region(redis, clock, {.hard_timeout = 0.2});
  auto lock = holder->mutex("k");  // another process is making the value
  BOOST_TEST_REQUIRE(lock->acquire(false));
  const auto start = std::chrono::steady_clock::now();
  BOOST_CHECK_THROW(region->get_or_create("k", [] { return 1; }), dogpile::TimeoutError);
  BOOST_TEST((std::chrono::steady_clock::now() - start < 5s));
  holder->set("k", 2);
  lock->release();
  BOOST_TEST(*region->get_or_create("k", [] { return 1; }) == 2);
}

BOOST_AUTO_TEST_CASE(serve_stale_false_waits_on_the_distributed_lock_instead_of_serving) {
  test::RedisServer redis;
  auto clock = std::make_shared<dogpile::ManualClock>();
  auto holder = resilient_region(redis, clock, {});
  holder->set("k", 1);
  clock->advance(11);
  auto lock = holder->mutex("k");  // another process is making the value
  BOOST_TEST_REQUIRE(lock->acquire(false));
  auto serving = resilient_region(redis, clock, {.hard_timeout = 0.2});
  BOOST_TEST(*serving->get_or_create("k", [] { return 2; }) == 1);  // dogpile's way: stale
  auto waiting = resilient_region(redis, clock, {.hard_timeout = 0.2, .serve_stale = false});
  BOOST_CHECK_THROW(waiting->get_or_create("k", [] { return 2; }), dogpile::TimeoutError);
  holder->set("k", 3);
  lock->release();
  BOOST_TEST(*waiting->get_or_create("k", [] { return 2; }) == 3);
}

// Two processes on the distributed lock: the second caller, reading before, during or after
// the first one's creation, gets its value, even one made slower than values live (0.3 s here,
// 0.5 s to make), single and multi.
BOOST_AUTO_TEST_CASE(a_second_process_gets_the_value_the_first_made) {
  using test::Arrival;
  test::RedisServer redis;
  for (const Arrival arrival : {Arrival::before, Arrival::during, Arrival::after}) {
    for (const bool stale_first : {false, true}) {
      for (const bool multi : {false, true}) {
        BOOST_TEST_CONTEXT(arrival << " the creation, stale value first " << stale_first
                                   << ", multi " << multi) {
          auto clock = std::make_shared<dogpile::ManualClock>();
          auto on_redis = [&](std::shared_ptr<dogpile::ProxyBackend> proxy) {
            auto region = dogpile::make_region({.name = "w", .clock = clock});
            dogpile::ConfigureOptions options{.expiration_time = 0.3,
                                              .arguments = {{"url", redis.url()},
                                                            {"socket_timeout", 1},
                                                            {"distributed_lock", true},
                                                            {"thread_local_lock", false}},
                                              .resilience = {.serve_stale = false}};
            if (proxy) options.wrap = {std::move(proxy)};
            region->configure("dogpile.cache.redis", std::move(options));
            return region;
          };
          auto gate = std::make_shared<test::ReadGate>();
          auto a = on_redis(nullptr);
          auto b = on_redis(gate);
          a->remove("k");
          if (stale_first) {
            a->set("k", 0);
            clock->advance(1);
          }
          const auto outcome =
              test::second_caller_around_a_creation(*a, *b, *clock, *gate, arrival, multi);
          BOOST_TEST(outcome.got == 1);
          BOOST_TEST(outcome.own_creations == 0);
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(jittered_expiry_is_the_same_for_every_process) {
  test::RedisServer redis;
  auto clock = std::make_shared<dogpile::ManualClock>();
  auto a = resilient_region(redis, clock, {.expiration_jitter = 0.1});
  auto b = resilient_region(redis, clock, {.expiration_jitter = 0.1});
  constexpr int kKeys = 20;
  for (int i = 0; i < kKeys; ++i) a->set("k" + std::to_string(i), i);
  std::map<int, double> expired_at;  // key -> first time both regions miss it
  clock->advance(8.95);
  for (int step = 0; step < 42; ++step, clock->advance(0.05)) {
    for (int i = 0; i < kKeys; ++i) {
      const std::string key = "k" + std::to_string(i);
      const bool in_a = a->get<int>(key) != nullptr;
      BOOST_TEST(in_a == (b->get<int>(key) != nullptr), key);
      if (!in_a && !expired_at.contains(i)) expired_at[i] = 8.95 + 0.05 * step;
    }
  }
  BOOST_TEST(expired_at.size() == std::size_t{kKeys});  // all gone by 11 s
  std::set<double> distinct;
  for (const auto& [key, at] : expired_at) {
    BOOST_TEST(at >= 9.0 - 1e-9);
    distinct.insert(at);
  }
  BOOST_TEST(distinct.size() > 5);  // spread, not all at 10 s
}

BOOST_AUTO_TEST_CASE(soft_timeout_and_eager_refresh_store_in_the_background) {
  test::RedisServer redis;
  auto clock = std::make_shared<dogpile::ManualClock>();
  auto region = resilient_region(redis, clock, {.soft_timeout = 0.05, .eager_refresh = 0.5});
  region->set("k", 1);
  clock->advance(6);  // past half its life: refreshed in the background
  BOOST_TEST(*region->get_or_create("k", [] { return 2; }) == 1);
  BOOST_TEST(test::wait_until([&] {
    auto v = region->get<int>("k");
    return v && *v == 2;
  }));
  BOOST_TEST(test::wait_until([&] { return !region->key_is_locked("k"); }));  // refresh done
  clock->advance(11);  // stale: the slow creator passes its soft timeout
  std::latch go(1);
  BOOST_TEST(*region->get_or_create("k", [&] {
    go.wait();
    return 3;
  }) == 2);
  go.count_down();
  BOOST_TEST(test::wait_until([&] {
    auto v = region->get<int>("k");
    return v && *v == 3;
  }));
}

BOOST_AUTO_TEST_CASE(multi_calls_take_every_resilience_option) {
  test::RedisServer redis;
  auto clock = std::make_shared<dogpile::ManualClock>();
  using dogpile::Keys;
  auto ints = [](CacheRegion& region, const Keys& keys, auto creator) {
    std::vector<int> out;
    for (const auto& v : region.get_or_create_multi(keys, creator)) out.push_back(v ? *v : -1);
    return out;
  };
  auto holds = [](CacheRegion& region, const std::string& key, int expected) {
    auto v = region.get<int>(key, {.ignore_expiration = true});
    return v && *v == expected;
  };
  // fail_safe: each key's stale value, kept in Redis for the throttle.
  auto safe = resilient_region(redis, clock, {.fail_safe = true, .fail_safe_throttle = 5});
  safe->set("a", 1);
  safe->set("b", 2);
  clock->advance(11);
  int tries = 0;
  auto failing = [&](const Keys&) -> std::vector<int> {
    ++tries;
    throw std::runtime_error("database down");
  };
  BOOST_TEST((ints(*safe, {"a", "b"}, failing) == std::vector<int>{1, 2}));
  BOOST_TEST(raw(redis, "GET b").find("\"origin\": ") != std::string::npos);
  BOOST_TEST((ints(*safe, {"a", "b"}, failing) == std::vector<int>{1, 2}));
  BOOST_TEST(tries == 1);
  // soft_timeout: the stale values while the creator finishes in the background.
  auto soft = resilient_region(redis, clock, {.soft_timeout = 0.05});
  clock->advance(11);
  auto go = std::make_shared<std::latch>(1);
  BOOST_TEST((ints(*soft, {"a", "b"}, [go](const Keys& keys) {
                go->wait();
                return std::vector<int>(keys.size(), 3);
              }) == std::vector<int>{1, 2}));
  go->count_down();
  BOOST_TEST(test::wait_until([&] { return holds(*soft, "a", 3) && holds(*soft, "b", 3); }));
  // hard_timeout on a key another process is making.
  auto hard = resilient_region(redis, clock, {.hard_timeout = 0.2});
  auto lock = soft->mutex("c");
  BOOST_TEST_REQUIRE(lock->acquire(false));
  BOOST_CHECK_THROW(
      ints(*hard, {"b", "c"}, [](const Keys& keys) { return std::vector<int>(keys.size(), 4); }),
      dogpile::TimeoutError);
  lock->release();
  BOOST_TEST(test::wait_until([&] { return !hard->key_is_locked("b"); }));
  // eager_refresh: the due keys made again in the background, in one call.
  auto eager = resilient_region(redis, clock, {.eager_refresh = 0.5});
  eager->set_multi(std::map<std::string, int>{{"a", 5}, {"b", 6}});
  clock->advance(6);
  auto calls = std::make_shared<std::atomic<int>>(0);
  BOOST_TEST((ints(*eager, {"a", "b"}, [calls](const Keys& keys) {
                ++*calls;
                return std::vector<int>(keys.size(), 7);
              }) == std::vector<int>{5, 6}));
  BOOST_TEST(test::wait_until([&] { return holds(*eager, "a", 7) && holds(*eager, "b", 7); }));
  BOOST_TEST(test::wait_until([&] { return !eager->key_is_locked("a"); }));
  BOOST_TEST(*calls == 1);
}

BOOST_AUTO_TEST_SUITE_END()

// dogpile.cache.layered on a real Redis: processes of tests/integration/layered_peer.cpp,
// each with its own L1, driven over pipes.
BOOST_AUTO_TEST_SUITE(layered)

namespace {

class Peer {
 public:
  explicit Peer(int port) {
    const char* program = std::getenv("DOGPILE_TEST_LAYERED_PEER");
    BOOST_TEST_REQUIRE(program != nullptr);
    // Close-on-exec: no other child (another peer, a restarted server) may keep its input open.
    int to_child[2], from_child[2];
    BOOST_TEST_REQUIRE(::pipe2(to_child, O_CLOEXEC) == 0);
    BOOST_TEST_REQUIRE(::pipe2(from_child, O_CLOEXEC) == 0);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(to_child[0], STDIN_FILENO);
      ::dup2(from_child[1], STDOUT_FILENO);
      for (int fd : {to_child[0], to_child[1], from_child[0], from_child[1]}) ::close(fd);
      const std::string p = std::to_string(port);
      ::execl(program, program, p.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(to_child[0]);
    ::close(from_child[1]);
    in_ = ::fdopen(to_child[1], "w");
    out_ = ::fdopen(from_child[0], "r");
  }
  ~Peer() {
    std::fclose(in_);  // end of its input: it exits
    std::fclose(out_);
    ::waitpid(pid_, nullptr, 0);
  }
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  std::string operator()(const std::string& command) {
    std::fputs((command + "\n").c_str(), in_);
    std::fflush(in_);
    char line[4096];
    if (std::fgets(line, sizeof line, out_) == nullptr) return "(no answer)";
    std::string answer(line);
    if (!answer.empty() && answer.back() == '\n') answer.pop_back();
    return answer;
  }

 private:
  pid_t pid_ = -1;
  FILE* in_ = nullptr;
  FILE* out_ = nullptr;
};

// Stores `value` (a string) as a C++ or Python process would, without any process's L1
// knowing.
void set_behind_their_backs(const test::RedisServer& server, const std::string& key,
                            const std::string& value) {
  const std::string wire = dogpile::serialize_cached_value(*dogpile::make_value(value));
  redisContext* context = redisConnect("127.0.0.1", server.port());
  freeReplyObject(
      redisCommand(context, "SET %b %b", key.data(), key.size(), wire.data(), wire.size()));
  redisFree(context);
}

bool is_number(const std::string& text) {
  return !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_write_in_one_process_reaches_the_others_l1) {
  test::RedisServer redis;
  Peer a(redis.port()), b(redis.port()), c(redis.port());
  for (Peer* peer : {&a, &b, &c}) BOOST_TEST((*peer)("listening") == "yes");
  // Stored without a message (a message in flight makes a read skip filling L1): b and c
  // keep it in L1, where a value changed behind everyone's back is not seen...
  set_behind_their_backs(redis, "k", "one");
  BOOST_TEST(b("get k") == "one");
  BOOST_TEST(c("get k") == "one");
  set_behind_their_backs(redis, "k", "hidden");
  BOOST_TEST(b("get k") == "one");
  BOOST_TEST(c("get k") == "one");
  // ...but a write through the layered backend is, by every other process.
  BOOST_TEST(a("set k two") == "ok");
  const std::string to_b = b("await k two");
  const std::string to_c = c("await k two");
  BOOST_TEST(is_number(to_b), to_b);
  BOOST_TEST(is_number(to_c), to_c);
  BOOST_TEST_MESSAGE("the write reached the others' L1 within " << to_b << " and " << to_c
                                                                << " us of being asked");
  BOOST_TEST(c("set k three") == "ok");
  BOOST_TEST(is_number(a("await k three")));
  BOOST_TEST(is_number(b("await k three")));
}

BOOST_AUTO_TEST_CASE(an_invalidation_in_one_process_makes_every_process_miss) {
  test::RedisServer redis;
  Peer a(redis.port()), b(redis.port()), c(redis.port());
  for (Peer* peer : {&a, &b, &c}) BOOST_TEST((*peer)("listening") == "yes");
  BOOST_TEST(a("set k one") == "ok");
  for (Peer* peer : {&a, &b, &c}) BOOST_TEST((*peer)("await k one") != "timeout one");
  BOOST_TEST(b("invalidate") == "ok");
  for (Peer* peer : {&a, &b, &c}) {
    const std::string took = (*peer)("await k miss");
    BOOST_TEST(is_number(took), took);
  }
  // A process that starts now reads the time stored in Redis.
  Peer late(redis.port());
  BOOST_TEST(late("listening") == "yes");
  BOOST_TEST(late("get k") == "miss");
  BOOST_TEST(late("set k two") == "ok");
  BOOST_TEST(is_number(a("await k two")));
}

BOOST_AUTO_TEST_CASE(after_a_restart_no_process_serves_what_was_replaced_meanwhile) {
  test::RedisServer redis;
  Peer a(redis.port()), b(redis.port());
  for (Peer* peer : {&a, &b}) BOOST_TEST((*peer)("listening") == "yes");
  BOOST_TEST(a("set k before") == "ok");
  BOOST_TEST(b("get k") == "before");
  redis.stop();
  for (Peer* peer : {&a, &b}) BOOST_TEST((*peer)("lost") == "yes");
  BOOST_TEST(a("get k").starts_with("error "));  // L1 is not served while disconnected
  redis.start();                                 // the same port, empty
  set_behind_their_backs(redis, "k", "after");   // replaced while they were disconnected
  for (Peer* peer : {&a, &b}) {
    BOOST_TEST((*peer)("listening") == "yes");
    BOOST_TEST((*peer)("first k") == "after");
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(layered_configs)

// configs/layered.{json,ini}, pointed at the test's server: a region on each shares values
// through Redis and sees the other's writes.
BOOST_AUTO_TEST_CASE(the_shipped_layered_configs_work) {
  test::RedisServer redis;
  const std::filesystem::path source = std::getenv("DOGPILE_SOURCE_DIR");
  std::vector<std::shared_ptr<CacheRegion>> regions;
  for (const char* name : {"configs/layered.json", "configs/layered.ini"}) {
    std::ifstream file(source / name);
    std::stringstream text;
    text << file.rdbuf();
    std::string config = text.str();
    const std::string shipped = "127.0.0.1:6379";
    BOOST_TEST_REQUIRE(config.find(shipped) != std::string::npos);
    config.replace(config.find(shipped), shipped.size(),
                   "127.0.0.1:" + std::to_string(redis.port()));
    test::TempFile copy(std::filesystem::path(name).filename().string(), config);
    auto loaded = dogpile::load_regions(copy.path);
    regions.push_back(loaded.at("cache.layered"));
  }
  auto& json_region = *regions[0];
  auto& ini_region = *regions[1];
  BOOST_TEST(test::wait_until([&] {
    return json_region.backend()->broadcast("dogpile:cache.layered")->listening() &&
           ini_region.backend()->broadcast("dogpile:cache.layered")->listening();
  }));
  json_region.set("k", std::string("one"));
  BOOST_TEST(*ini_region.get<std::string>("k") == "one");
  ini_region.set("k", std::string("two"));
  BOOST_TEST(test::wait_until([&] { return *json_region.get<std::string>("k") == "two"; }));
  BOOST_TEST(json_region.backend_name() == "dogpile.cache.layered");
}

BOOST_AUTO_TEST_SUITE_END()

// shared_invalidation without an L1: regions on dogpile.cache.redis itself (processes of a
// service with no layered backend).
BOOST_FIXTURE_TEST_SUITE(shared_invalidation, Server)

BOOST_AUTO_TEST_CASE(an_invalidation_reaches_the_other_regions_on_plain_redis) {
  auto make = [&] {
    auto region = dogpile::make_region("shared");
    region->configure(
        "dogpile.cache.redis",
        {.expiration_time = 600, .arguments = {{"url", redis.url()}}, .shared_invalidation = true});
    return region;
  };
  auto a = make();
  auto b = make();
  a->set("k", 1);
  BOOST_TEST(*b->get<int>("k") == 1);
  BOOST_TEST(test::wait_until([&] {
    return raw_array_integer(redis, "PUBSUB NUMSUB dogpile:shared") >= 2;  // both listen
  }));
  a->invalidate();
  BOOST_TEST(test::wait_until([&] { return b->get<int>("k") == nullptr; }));
  BOOST_TEST(b->region_invalidator().was_hard_invalidated());
  BOOST_TEST(raw(redis, "EXISTS dogpile:shared:invalidated") == "1");
}

BOOST_AUTO_TEST_SUITE_END()
