// What a config file or a cache's contents may hold must not crash, hang or mislead the
// application: hostile bytes, numbers out of range, secrets in the wrong place.
#define BOOST_TEST_MODULE hardening
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <dogpile/dogpile.hpp>
#include <dogpile/sdk/sdk.hpp>
#include <dogpile/sdk/sigpipe.hpp>
#include <fstream>
#include <string>

#include "helpers.hpp"

using test::message_contains;

namespace {

// Whatever the backend kind, the same stored bytes.
void store_bytes(dogpile::CacheRegion& region, const std::string& key, const std::string& wire) {
  region.actual_backend()->set_serialized(key, wire);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(durations)

BOOST_AUTO_TEST_CASE(non_finite_huge_and_sub_resolution_durations_are_refused_by_name) {
  for (const auto& value :
       {nlohmann::json("nan"), nlohmann::json("inf"), nlohmann::json("-inf"),
        nlohmann::json("infinity"), nlohmann::json(1e300), nlohmann::json("1e300d"),
        nlohmann::json(INFINITY), nlohmann::json(-1)}) {
    BOOST_TEST_INFO(value.dump());
    dogpile::Arguments arguments({{"socket_timeout", value}}, "cache.x.arguments.");
    BOOST_CHECK_EXCEPTION(
        arguments.find_seconds("socket_timeout"), dogpile::ValidationError,
        [](const auto& e) { return message_contains(e, "cache.x.arguments.socket_timeout must"); });
  }
  dogpile::Arguments tiny({{"socket_timeout", 1e-9}}, "cache.x.arguments.");
  BOOST_CHECK_EXCEPTION(tiny.find_seconds("socket_timeout"), dogpile::ValidationError,
                        [](const auto& e) {
                          return message_contains(e,
                                                  "socket_timeout is 1e-09 seconds, below its "
                                                  "resolution of 0.001 seconds");
                        });
  BOOST_TEST(*tiny.find_seconds("socket_timeout", 1e-9) == 1e-9);
  dogpile::Arguments fine({{"a", 0}, {"b", "250ms"}, {"c", 1e9}}, "");
  BOOST_TEST(*fine.find_seconds("a") == 0.0);
  BOOST_TEST(*fine.find_seconds("b") == 0.25);
  BOOST_TEST(*fine.find_seconds("c") == 1e9);
}

BOOST_AUTO_TEST_CASE(server_backends_refuse_bad_durations_when_configured) {
  // Each once failed on every call (setsockopt out of domain, "timeout was set to zero") or
  // silently meant never.
  const std::pair<const char*, nlohmann::json> cases[] = {
      {"dogpile.cache.redis", {{"socket_timeout", 1e-9}}},
      {"dogpile.cache.redis", {{"socket_timeout", 0}}},
      {"dogpile.cache.redis", {{"lock_timeout", "nan"}}},
      {"dogpile.cache.redis", {{"lock_sleep", 1e300}}},
      {"dogpile.cache.memcached", {{"url", "127.0.0.1:1"}, {"socket_timeout", 0.0001}}},
      {"dogpile.cache.memcached", {{"url", "127.0.0.1:1"}, {"dead_retry", 0.5}}},
      {"dogpile.cache.memcached", {{"url", "127.0.0.1:1"}, {"lock_timeout", "inf"}}},
  };
  for (const auto& [backend, arguments] : cases) {
    BOOST_TEST_INFO(backend << " " << arguments.dump());
    auto region = dogpile::make_region("x");
    BOOST_CHECK_THROW(region->configure(backend, {.arguments = arguments}),
                      dogpile::ValidationError);
  }
}

BOOST_AUTO_TEST_CASE(an_expiration_time_beyond_31_years_is_refused) {
  auto region = dogpile::make_region("x");
  BOOST_CHECK_EXCEPTION(region->configure("dogpile.cache.memory", {.expiration_time = 1e300}),
                        dogpile::ValidationError,
                        [](const auto& e) { return message_contains(e, "-1 means never"); });
  dogpile::ConfigDict config{{"cache.x.backend", "dogpile.cache.memory"},
                             {"cache.x.expiration_time", "1e400"}};
  BOOST_CHECK_THROW(region->configure_from_config(config, "cache.x."), dogpile::ValidationError);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(counts)

// A count in a config starts that many threads or connections, or tries that often: each has
// a documented bound, and beyond it the key is refused by name (a config fuzzer once drove a
// process to 21,750 threads).
BOOST_AUTO_TEST_CASE(counts_beyond_their_bound_are_refused_by_name) {
  const std::pair<dogpile::ConfigDict, const char*> region_cases[] = {
      {{{"c.backend", "dogpile.cache.memory"},
        {"c.async_creation_runner", "thread_pool"},
        {"c.async_creation_runner_threads", "20000"}},
       "c.async_creation_runner_threads must be an integer from 1 to 256, not 20000"},
      {{{"c.backend", "dogpile.cache.memory"},
        {"c.async_creation_runner", "thread_pool"},
        {"c.async_creation_runner_queue", "-1"}},
       "c.async_creation_runner_queue must be an integer from 1 to 1000000, not -1"},
      {{{"c.backend", "dogpile.cache.redis"}, {"c.arguments.connection_pool_size", "100000"}},
       "c.arguments.connection_pool_size must be an integer from 1 to 1024, not 100000"},
      {{{"c.backend", "dogpile.cache.memcached"},
        {"c.arguments.url", "127.0.0.1:1"},
        {"c.arguments.connection_pool_size", "0"}},
       "c.arguments.connection_pool_size must be an integer from 1 to 1024, not 0"},
      {{{"c.backend", "dogpile.cache.pymemcache"},
        {"c.arguments.url", "127.0.0.1:1"},
        {"c.arguments.hashclient_retry_attempts", "1e9"}},
       "c.arguments.hashclient_retry_attempts must be an integer from 1 to 100"},
      {{{"c.backend", "dogpile.cache.memory"},
        {"c.wrap", "dogpile.proxy.logging"},
        {"c.wrap_arguments.dogpile.proxy.logging.max_key_length", "2.5"}},
       "max_key_length must be an integer from 1 to 65536, not 2.5"},
  };
  for (const auto& [config, expected] : region_cases) {
    auto region = dogpile::make_region("c");
    try {
      region->configure_from_config(config, "c.");
      BOOST_ERROR("accepted: " << expected);
    } catch (const dogpile::ValidationError& e) {
      BOOST_TEST(message_contains(e, expected));
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(messages)

BOOST_AUTO_TEST_CASE(a_secret_of_the_wrong_type_is_never_echoed) {
  const nlohmann::json secrets[] = {
      {{"url", {"redis://:S3cret@127.0.0.1:6379/0"}}},
      {{"password", {{"S3cret", 1}}}},
      {{"username", {"S3cret"}}},
  };
  for (const auto& arguments : secrets) {
    auto region = dogpile::make_region("x");
    try {
      region->configure("dogpile.cache.redis", {.arguments = arguments});
      BOOST_ERROR("a secret of the wrong type was accepted: " + arguments.dump());
    } catch (const dogpile::ValidationError& e) {
      BOOST_TEST_INFO(e.what());
      BOOST_TEST(std::string(e.what()).find("S3cret") == std::string::npos);
      BOOST_TEST(message_contains(e, "not shown: it may hold a secret"));
    }
  }
}

BOOST_AUTO_TEST_CASE(bytes_that_are_not_utf8_in_a_config_value_give_a_config_error) {
  // Building the message once threw nlohmann's type_error 316.
  test::TempFile ini("bad.ini",
                     "[cache.x]\nbackend = dogpile.cache.memory\nkey_mangler = sha\xff\xfe\n");
  BOOST_CHECK_EXCEPTION(dogpile::load_regions(ini.path), dogpile::ValidationError,
                        [](const auto& e) { return message_contains(e, "key_mangler must be"); });
  test::TempFile wrap("wrap.ini", "[cache.x]\nbackend = \xff\n");
  BOOST_CHECK_THROW(dogpile::load_regions(wrap.path), dogpile::Error);
}

BOOST_AUTO_TEST_CASE(long_values_are_cut_in_messages) {
  const std::string shown = dogpile::shown_value("cache.x.key_mangler", std::string(1000, 'a'));
  BOOST_TEST(shown.size() < 120u);
  BOOST_TEST(shown.find("(1002 characters)") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(cache_contents)

BOOST_AUTO_TEST_CASE(deeply_nested_bytes_are_no_value_and_crash_nothing) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  for (const auto& backend : test::kStoringBackends) {
    auto region = test::region_on(backend);
    store_bytes(*region, "meta", "{\"x\":" + deep + "}|1");
    store_bytes(*region, "payload", R"({"ct": 1795570724.65, "v": 2}|)" + deep);
    BOOST_TEST(region->get<nlohmann::json>("meta") == nullptr);
    BOOST_TEST(region->get<nlohmann::json>("payload") == nullptr);
    BOOST_TEST(*region->get_or_create("payload", [] { return 7; }) == 7);
    auto value = dogpile::CachedValue::from_wire("{\"x\":" + deep + "}|1");
    BOOST_TEST(!value->decodable());
  }
}

BOOST_AUTO_TEST_CASE(a_creation_time_that_is_not_finite_is_no_value) {
  for (const char* ct : {"NaN", "Infinity", "-Infinity", "1e400"}) {
    BOOST_TEST_INFO(ct);
    const std::string wire = std::string(R"({"ct": )") + ct + R"(, "v": 2}|1)";
    BOOST_TEST(!dogpile::CachedValue::from_wire(wire)->decodable());
    auto region = test::region_on("dogpile.cache.memory_pickle");
    store_bytes(*region, "k", wire);
    BOOST_TEST(region->get<int>("k") == nullptr);
    region->invalidate();
    BOOST_TEST(region->get<int>("k") == nullptr);
  }
}

BOOST_AUTO_TEST_CASE(numbers_out_of_range_or_inexact_are_type_errors) {
  auto region = test::region_on("dogpile.cache.memory_pickle");
  for (const char* payload : {"3000000000", "1e308", "1.9", "-1e308", "18446744073709551616"}) {
    BOOST_TEST_INFO(payload);
    store_bytes(*region, "n", std::string(R"({"ct": 1795570724.65, "v": 2}|)") + payload);
    BOOST_CHECK_THROW(region->get<int>("n"), dogpile::ValueTypeError);
  }
  store_bytes(*region, "n", R"({"ct": 1795570724.65, "v": 2}|300)");
  BOOST_CHECK_THROW(region->get<std::int8_t>("n"), dogpile::ValueTypeError);
  BOOST_TEST(*region->get<int>("n") == 300);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(signals)

BOOST_AUTO_TEST_CASE(no_sigpipe_keeps_a_write_to_a_closed_peer_from_killing_the_process) {
  int pair[2];
  BOOST_TEST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
  ::close(pair[1]);
  const auto previous = std::signal(SIGPIPE, SIG_DFL);
  ssize_t written = 0;
  int error = 0;
  {
    const dogpile::NoSigpipe guard;
    written = ::write(pair[0], "x", 1);
    error = errno;
  }
  std::signal(SIGPIPE, previous);
  BOOST_TEST(written == -1);
  BOOST_TEST(error == EPIPE);
  sigset_t pending;
  sigpending(&pending);
  BOOST_TEST(sigismember(&pending, SIGPIPE) == 0);  // consumed, not left for later
  sigset_t mask;
  pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  BOOST_TEST(sigismember(&mask, SIGPIPE) == 0);  // the thread's mask is as it was
  ::close(pair[0]);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(threads)

BOOST_AUTO_TEST_CASE(a_pool_that_cannot_start_its_threads_is_an_error_not_a_terminate) {
  BOOST_CHECK_EXCEPTION(dogpile::ThreadPoolRunner(SIZE_MAX / 2), dogpile::ValidationError,
                        [](const auto& e) { return message_contains(e, "takes 1 to 256"); });
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // Under an address-space limit a few threads start, then one fails: the started ones must be
  // stopped (a joinable std::thread destroyed terminates the program). In a child process, as
  // the limit is the process's; sanitizers need more address space than any such limit.
  const pid_t child = ::fork();
  BOOST_TEST_REQUIRE(child >= 0);
  if (child == 0) {
    long pages = 0;
    std::ifstream("/proc/self/statm") >> pages;
    const rlim_t limit = static_cast<rlim_t>(pages) * ::sysconf(_SC_PAGESIZE) + (48u << 20);
    const rlimit tight{limit, limit};
    ::setrlimit(RLIMIT_AS, &tight);
    try {
      auto runner = dogpile::ThreadPoolRunner::owning_runner(256);
      ::_exit(1);  // 256 threads of 8 MiB stacks cannot fit
    } catch (const dogpile::Error& e) {
      ::_exit(std::string(e.what()).find("could not start 256 threads") != std::string::npos ? 0
                                                                                             : 3);
    } catch (...) {
      ::_exit(2);
    }
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  BOOST_TEST(WIFEXITED(status));
  BOOST_TEST(WEXITSTATUS(status) == 0);  // 1: no error, 2: another type, 3: another message
#endif
}

BOOST_AUTO_TEST_SUITE_END()
