// Proxy chains from config and code, and the shipped proxies dogpile.proxy.stats and
// dogpile.proxy.logging.
#define BOOST_TEST_MODULE proxies
#include <atomic>
#include <boost/log/attributes/value_extraction.hpp>
#include <boost/log/core.hpp>
#include <boost/log/sinks/basic_sink_backend.hpp>
#include <boost/log/sinks/sync_frontend.hpp>
#include <boost/log/trivial.hpp>
#include <boost/test/data/monomorphic.hpp>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <dogpile/dogpile.hpp>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include "helpers.hpp"

namespace data = boost::unit_test::data;
using dogpile::CacheRegion;
using dogpile::ConfigDict;
using test::kStoringBackends;
using test::message_contains;

namespace {

std::shared_ptr<CacheRegion> from_config(const ConfigDict& config) {
  auto region = dogpile::make_region("cache.local");
  region->configure_from_config(config, "cache.local.");
  return region;
}

// The proxies of a region, outermost first.
std::vector<std::shared_ptr<dogpile::CacheBackend>> chain(const CacheRegion& region) {
  std::vector<std::shared_ptr<dogpile::CacheBackend>> out;
  for (auto backend = region.backend(); backend != region.actual_backend();) {
    out.push_back(backend);
    backend = std::dynamic_pointer_cast<dogpile::ProxyBackend>(backend)->proxied();
  }
  return out;
}

bool is_stats(const std::shared_ptr<dogpile::CacheBackend>& backend) {
  return dynamic_cast<const dogpile::StatsProvider*>(backend.get()) != nullptr;
}

// Counts every call of both families, per instance.
class Counting : public dogpile::ProxyBackend {
 public:
  dogpile::CachedValuePtr get(std::string_view key) override {
    ++calls["get"];
    return ProxyBackend::get(key);
  }
  void set(const std::string& key, dogpile::CachedValuePtr value) override {
    ++calls["set"];
    ProxyBackend::set(key, std::move(value));
  }
  std::optional<std::string> get_serialized(std::string_view key) override {
    ++calls["get_serialized"];
    return ProxyBackend::get_serialized(key);
  }
  void remove(std::string_view key) override {
    ++calls["remove"];
    ProxyBackend::remove(key);
  }
  std::unique_ptr<dogpile::CacheMutex> get_mutex(std::string_view key) override {
    ++calls["get_mutex"];
    return ProxyBackend::get_mutex(key);
  }
  std::map<std::string, int> calls;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(chains)

BOOST_AUTO_TEST_CASE(the_chain_follows_the_config_order_first_outermost) {
  auto region = from_config({{"cache.local.backend", "dogpile.cache.memory"},
                             {"cache.local.wrap", "dogpile.proxy.stats, dogpile.proxy.logging"}});
  auto proxies = chain(*region);
  BOOST_TEST_REQUIRE(proxies.size() == 2u);
  BOOST_TEST(is_stats(proxies[0]));
  BOOST_TEST(!is_stats(proxies[1]));

  auto reversed = from_config({{"cache.local.backend", "dogpile.cache.memory"},
                               {"cache.local.wrap", "dogpile.proxy.logging\ndogpile.proxy.stats"}});
  proxies = chain(*reversed);
  BOOST_TEST_REQUIRE(proxies.size() == 2u);
  BOOST_TEST(!is_stats(proxies[0]));
  BOOST_TEST(is_stats(proxies[1]));
}

BOOST_AUTO_TEST_CASE(each_proxy_takes_its_own_arguments_from_config) {
  auto region =
      from_config({{"cache.local.backend", "dogpile.cache.memory"},
                   {"cache.local.wrap", nlohmann::json::array({"dogpile.test.refusing_proxy"})},
                   {"cache.local.wrap_arguments.dogpile.test.refusing_proxy.key", "secret"}});
  region->set("secret", 1);
  region->set("public", 2);
  BOOST_TEST(region->get<int>("secret") == nullptr);
  BOOST_TEST(*region->get<int>("public") == 2);
  region->set_multi(std::map<std::string, int>{{"secret", 3}, {"other", 4}});
  BOOST_TEST(region->get<int>("secret") == nullptr);
  BOOST_TEST(*region->get<int>("other") == 4);
}

BOOST_AUTO_TEST_CASE(proxy_argument_errors_name_the_full_key) {
  try {
    from_config({{"cache.local.backend", "dogpile.cache.memory"},
                 {"cache.local.wrap", "dogpile.test.refusing_proxy"}});
    BOOST_FAIL("expected ValidationError");
  } catch (const dogpile::ValidationError& e) {
    BOOST_TEST(message_contains(e, "cache.local.wrap_arguments.dogpile.test.refusing_proxy.key"));
  }
  try {
    from_config({{"cache.local.backend", "dogpile.cache.memory"},
                 {"cache.local.wrap", "dogpile.proxy.logging"},
                 {"cache.local.wrap_arguments.dogpile.proxy.logging.levle", "info"}});
    BOOST_FAIL("expected ValidationError");
  } catch (const dogpile::ValidationError& e) {
    BOOST_TEST(message_contains(
        e, "unknown argument cache.local.wrap_arguments.dogpile.proxy.logging.levle"));
  }
  try {
    from_config({{"cache.local.backend", "dogpile.cache.memory"},
                 {"cache.local.wrap_arguments.dogpile.proxy.logging.level", "info"}});
    BOOST_FAIL("expected ValidationError");
  } catch (const dogpile::ValidationError& e) {
    BOOST_TEST(message_contains(e, "names no proxy of cache.local.wrap"));
  }
}

BOOST_AUTO_TEST_CASE(an_unknown_proxy_or_a_backend_as_proxy_names_the_key) {
  try {
    from_config({{"cache.local.backend", "dogpile.cache.memory"},
                 {"cache.local.wrap", "dogpile.proxy.nope"}});
    BOOST_FAIL("expected PluginNotFound");
  } catch (const dogpile::PluginNotFound& e) {
    BOOST_TEST(message_contains(e, "dogpile.proxy.nope"));
    BOOST_TEST(message_contains(e, "cache.local.wrap"));
  }
  try {
    from_config({{"cache.local.backend", "dogpile.cache.memory"},
                 {"cache.local.wrap", "dogpile.cache.null"}});
    BOOST_FAIL("expected ConfigError");
  } catch (const dogpile::ConfigError& e) {
    BOOST_TEST(
        message_contains(e, "cache.local.wrap names dogpile.cache.null, which is a backend"));
  }
}

BOOST_AUTO_TEST_CASE(the_chain_scheme_reads_the_same_from_json_and_ini) {
  auto json_file = dogpile::parse_json_config(R"({"cache": {"local": {
      "backend": "dogpile.cache.memory",
      "wrap": ["dogpile.test.refusing_proxy", "dogpile.proxy.stats"],
      "wrap_arguments": {"dogpile.test.refusing_proxy": {"key": "k"}}}}})",
                                              "x.json");
  auto ini_file = dogpile::parse_ini_config(
      "[cache.local]\nbackend = dogpile.cache.memory\n"
      "wrap = dogpile.test.refusing_proxy,\n  dogpile.proxy.stats\n"
      "wrap_arguments.dogpile.test.refusing_proxy.key = k\n",
      "x.ini");
  for (const auto* file : {&json_file, &ini_file}) {
    auto regions = dogpile::configure_regions(*file);
    auto& region = *regions.at("cache.local");
    auto proxies = chain(region);
    BOOST_TEST_REQUIRE(proxies.size() == 2u);
    BOOST_TEST(!is_stats(proxies[0]));
    BOOST_TEST(is_stats(proxies[1]));
    region.set("k", 1);
    BOOST_TEST(region.get<int>("k") == nullptr);
  }
}

BOOST_DATA_TEST_CASE(a_counting_proxy_counts_sets_and_gets, data::make(kStoringBackends), backend) {
  auto counter = std::make_shared<Counting>();
  auto region = dogpile::make_region();
  region->configure(std::string(backend), {.wrap = {counter}});
  for (int i = 0; i < 10; ++i) region->set("k" + std::to_string(i), i);
  BOOST_TEST(counter->calls["set"] == 10);
  BOOST_TEST(counter->calls["get"] == 0);
  region->get<int>("k1");
  region->get<int>("absent");
  BOOST_TEST(counter->calls["get"] == 2);  // reads seen on object and byte backends alike
  region->remove("k1");
  BOOST_TEST(counter->calls["remove"] == 1);
  region->get_or_create("new", [] { return 1; });
  BOOST_TEST(counter->calls["get_mutex"] == 1);
  region->actual_backend()->get_serialized("k2");  // around the proxy: not counted
  BOOST_TEST(counter->calls["get_serialized"] == 0);
  region->backend()->get_serialized("k2");
  BOOST_TEST(counter->calls["get_serialized"] == 1);
}

BOOST_AUTO_TEST_CASE(a_proxy_object_serves_one_region) {
  struct Plain : dogpile::ProxyBackend {};
  auto proxy = std::make_shared<Plain>();
  auto first = dogpile::make_region();
  // A configure that fails leaves the application's proxy unwrapped.
  BOOST_CHECK_THROW(first->configure("dogpile.cache.memory",
                                     {.wrap = {dogpile::ProxySpec("no.such.proxy"), proxy}}),
                    dogpile::PluginNotFound);
  BOOST_TEST(proxy->proxied() == nullptr);
  first->configure("dogpile.cache.memory", {.wrap = {proxy}});
  auto second = dogpile::make_region();
  try {
    second->configure("dogpile.cache.memory", {.wrap = {proxy}});
    BOOST_FAIL("expected ValidationError");
  } catch (const dogpile::ValidationError& e) {
    BOOST_TEST(message_contains(e, "already wraps a backend"));
  }
  first->set("k", 1);
  BOOST_TEST(*first->get<int>("k") == 1);
  BOOST_TEST(!second->is_configured());
}

BOOST_AUTO_TEST_CASE(two_instances_of_one_proxy_keep_separate_state) {
  auto first = dogpile::make_region();
  first->configure_from_config(
      {{"backend", "dogpile.cache.memory"}, {"wrap", "dogpile.proxy.stats"}}, "");
  auto second = dogpile::make_region();
  second->configure_from_config(
      {{"backend", "dogpile.cache.memory"}, {"wrap", "dogpile.proxy.stats"}}, "");
  first->set("a", 1);
  first->set("b", 2);
  second->set("a", 1);
  BOOST_TEST(first->stats()->sets == 2u);
  BOOST_TEST(second->stats()->sets == 1u);

  auto a = std::make_shared<Counting>();
  auto b = std::make_shared<Counting>();
  auto both = dogpile::make_region();
  both->configure("dogpile.cache.memory", {.wrap = {a, b}});
  both->set("k", 1);
  BOOST_TEST(a->calls["set"] == 1);
  BOOST_TEST(b->calls["set"] == 1);
  BOOST_TEST(both->backend() == a);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(intercepting_proxy)

namespace {

// Records each call as "<operation>[ serialized] <keys> hits=<n>", after forwarding it.
class Recorder final : public dogpile::InterceptingProxy {
 public:
  std::vector<std::string> calls;

 protected:
  void intercept(dogpile::ProxiedCall& call) override {
    call.proceed();
    std::string line = dogpile::operation_name(call.operation());
    if (call.serialized()) line += " serialized";
    for (std::size_t i = 0; i < call.size(); ++i) line += " " + std::string(call.key(i));
    calls.push_back(line + " hits=" + std::to_string(call.hits()));
  }
};

// Stores every key under "ns:" + key, and refuses (never forwards) keys starting with "skip".
class Namespacing final : public dogpile::InterceptingProxy {
 protected:
  void intercept(dogpile::ProxiedCall& call) override {
    for (std::size_t i = 0; i < call.size(); ++i) {
      if (call.key(i).substr(0, 4) == "skip") return;
    }
    for (std::size_t i = 0; i < call.size(); ++i) {
      call.rewrite_key(i, "ns:" + std::string(call.key(i)));
    }
    call.proceed();
  }
};

// A backend whose mutexes are real, to see get_mutex's key.
class KeyedMutexes final : public dogpile::ObjectBackend {
 public:
  dogpile::CachedValuePtr get(std::string_view) override { return nullptr; }
  void set(const std::string&, dogpile::CachedValuePtr) override {}
  void remove(std::string_view) override {}
  std::unique_ptr<dogpile::CacheMutex> get_mutex(std::string_view key) override {
    locked.emplace_back(key);
    return nullptr;
  }
  std::vector<std::string> locked;
};

std::string wire(int n) { return dogpile::serialize_cached_value(*dogpile::make_value(n)); }

}  // namespace

BOOST_AUTO_TEST_CASE(one_function_sees_every_call_of_both_families) {
  auto recorder = std::make_shared<Recorder>();
  auto region = dogpile::make_region();
  region->configure("dogpile.cache.memory", {.wrap = {recorder}});
  region->set("a", 1);
  region->get<int>("a");
  region->get_multi<int>({"a", "b"});
  region->set_multi(std::map<std::string, int>{{"b", 2}, {"c", 3}});
  region->remove("a");
  region->remove_multi({"b", "c"});
  region->key_is_locked("a");
  recorder->set_serialized("x", wire(1));
  recorder->get_serialized("x");
  recorder->get_serialized_multi({"x", "y", "x"});
  recorder->set_serialized_multi({{"y", wire(2)}});
  const std::vector<std::string> expected = {"set a hits=0",
                                             "get a hits=1",
                                             "get_multi a b hits=1",
                                             "set_multi b c hits=0",
                                             "remove a hits=0",
                                             "remove_multi b c hits=0",
                                             "get_mutex a hits=0",
                                             "set serialized x hits=0",
                                             "get serialized x hits=1",
                                             "get_multi serialized x y x hits=2",
                                             "set_multi serialized y hits=0"};
  BOOST_TEST(recorder->calls == expected, boost::test_tools::per_element());
  BOOST_TEST(*region->get<int>("y") == 2);  // forwarded, not only seen
}

BOOST_AUTO_TEST_CASE(rewritten_keys_reach_the_backend_in_every_call) {
  auto region = dogpile::make_region();
  region->configure("dogpile.cache.memory", {.wrap = {std::make_shared<Namespacing>()}});
  region->set("a", 1);
  region->set_multi(std::map<std::string, int>{{"b", 2}, {"c", 3}});
  region->backend()->set_serialized("d", wire(4));
  region->backend()->set_serialized_multi({{"e", wire(5)}});
  auto& stored = *region->actual_backend();
  int n = 1;
  for (const char* key : {"a", "b", "c", "d", "e"}) {
    BOOST_TEST(stored.get(std::string("ns:") + key) != nullptr, key);
    BOOST_TEST(stored.get(key) == nullptr, key);
    BOOST_TEST(*region->get<int>(key) == n++, key);  // read back through the same rewrite
  }
  BOOST_TEST(region->get_multi<int>({"a", "e"}).size() == 2u);
  BOOST_TEST(*region->get_multi<int>({"a", "e"})[1] == 5);
  BOOST_TEST(region->backend()->get_serialized_multi({"d"})[0].has_value());
  region->remove("a");
  region->remove_multi({"b", "c"});
  BOOST_TEST(stored.get("ns:a") == nullptr);
  BOOST_TEST(stored.get("ns:b") == nullptr);
  BOOST_TEST(stored.get("ns:c") == nullptr);

  auto keyed = std::make_shared<KeyedMutexes>();
  auto proxy = std::make_shared<Namespacing>();
  proxy->wrap(keyed);
  proxy->get_mutex("k");
  BOOST_TEST(keyed->locked == std::vector<std::string>{"ns:k"}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_call_not_proceeded_has_not_happened) {
  auto region = dogpile::make_region();
  region->configure("dogpile.cache.memory", {.wrap = {std::make_shared<Namespacing>()}});
  region->set("skip1", 1);
  BOOST_TEST(region->actual_backend()->get("skip1") == nullptr);
  BOOST_TEST(region->actual_backend()->get("ns:skip1") == nullptr);
  region->actual_backend()->set("skip2", dogpile::make_value(2));
  BOOST_TEST(region->get<int>("skip2") == nullptr);  // a read not proceeded misses
  auto values = region->get_multi<int>({"skip2", "x"});
  BOOST_TEST(values.size() == 2u);
  BOOST_TEST((values[0] == nullptr && values[1] == nullptr));
  BOOST_TEST(!region->backend()->get_serialized("skip2").has_value());
  BOOST_TEST(region->backend()->get_serialized_multi({"skip2"}).size() == 1u);
  region->remove("skip2");  // not removed
  BOOST_TEST(region->actual_backend()->get("skip2") != nullptr);
  BOOST_TEST(region->backend()->get_mutex("skip2") == nullptr);
}

BOOST_AUTO_TEST_CASE(errors_pass_through_the_hook_and_misuse_is_an_error) {
  struct Twice final : dogpile::InterceptingProxy {
    void intercept(dogpile::ProxiedCall& call) override {
      call.proceed();
      call.proceed();
    }
  };
  struct LateRewrite final : dogpile::InterceptingProxy {
    void intercept(dogpile::ProxiedCall& call) override {
      call.proceed();
      call.rewrite_key(0, "other");
    }
  };
  struct OutOfRange final : dogpile::InterceptingProxy {
    void intercept(dogpile::ProxiedCall& call) override { call.key(call.size()); }
  };
  for (std::shared_ptr<dogpile::ProxyBackend> proxy :
       {std::shared_ptr<dogpile::ProxyBackend>(std::make_shared<Twice>()),
        std::shared_ptr<dogpile::ProxyBackend>(std::make_shared<LateRewrite>()),
        std::shared_ptr<dogpile::ProxyBackend>(std::make_shared<OutOfRange>())}) {
    auto region = dogpile::make_region();
    region->configure("dogpile.cache.memory", {.wrap = {proxy}});
    BOOST_CHECK_THROW(region->set("k", 1), dogpile::Error);
  }
  // The next backend's exception reaches the hook, then the caller.
  auto recorder = std::make_shared<Recorder>();
  auto region = dogpile::make_region();
  region->configure("dogpile.cache.memory_pickle", {.wrap = {recorder}});
  struct NoCodec {};
  BOOST_CHECK_THROW(region->set("k", NoCodec{}), dogpile::CantSerialize);
  BOOST_TEST(recorder->calls.empty());  // the hook did not reach its line after proceed()
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(stats_proxy)

BOOST_DATA_TEST_CASE(figures_after_a_known_sequence, data::make(kStoringBackends), backend) {
  auto region = dogpile::make_region("cache.local");
  region->configure(std::string(backend), {.wrap = {dogpile::ProxySpec("dogpile.proxy.stats")}});
  region->set("a", 1);
  region->set_multi(std::map<std::string, int>{{"b", 2}, {"c", 3}});
  region->get<int>("a");
  region->get<int>("missing");
  region->get_multi<int>({"a", "b", "x", "y"});
  region->remove("a");
  region->remove_multi({"b", "c"});
  auto stats = region->stats();
  BOOST_TEST_REQUIRE(stats.has_value());
  BOOST_TEST(stats->gets == 6u);
  BOOST_TEST(stats->hits == 3u);
  BOOST_TEST(stats->misses == 3u);
  BOOST_TEST(stats->sets == 3u);
  BOOST_TEST(stats->deletes == 3u);
  BOOST_TEST(stats->errors == 0u);
  BOOST_TEST((*stats)[dogpile::CacheOperation::get].calls == 2u);
  BOOST_TEST((*stats)[dogpile::CacheOperation::get_multi].calls == 1u);
  BOOST_TEST((*stats)[dogpile::CacheOperation::set].calls == 1u);
  BOOST_TEST((*stats)[dogpile::CacheOperation::set_multi].calls == 1u);
  BOOST_TEST((*stats)[dogpile::CacheOperation::remove].calls == 1u);
  BOOST_TEST((*stats)[dogpile::CacheOperation::remove_multi].calls == 1u);
  std::uint64_t in_buckets = 0;
  for (auto n : (*stats)[dogpile::CacheOperation::get].latency_counts) in_buckets += n;
  BOOST_TEST(in_buckets == 2u);
}

BOOST_AUTO_TEST_CASE(errors_are_counted) {
  struct Failing : dogpile::ProxyBackend {
    dogpile::CachedValuePtr get(std::string_view) override {
      throw dogpile::BackendUnavailable("127.0.0.1:1 is down");
    }
  };
  auto region = dogpile::make_region();
  region->configure("dogpile.cache.memory", {.wrap = {dogpile::ProxySpec("dogpile.proxy.stats"),
                                                      std::make_shared<Failing>()}});
  BOOST_CHECK_THROW(region->get<int>("k"), dogpile::BackendUnavailable);
  BOOST_TEST(region->stats()->errors == 1u);
  BOOST_TEST(region->stats()->gets == 0u);
  BOOST_TEST((*region->stats())[dogpile::CacheOperation::get].errors == 1u);
}

BOOST_AUTO_TEST_CASE(a_region_without_stats_proxy_has_no_stats) {
  auto region = dogpile::make_region();
  region->configure("dogpile.cache.memory");
  BOOST_TEST(!region->stats().has_value());
}

BOOST_AUTO_TEST_CASE(the_prometheus_text_parses_back) {
  auto region = dogpile::make_region("cache.\"odd\"");
  region->configure("dogpile.cache.memory", {.wrap = {dogpile::ProxySpec("dogpile.proxy.stats")}});
  region->set("a", 1);
  region->get<int>("a");
  region->get<int>("b");
  const std::string text = dogpile::prometheus_text(*region->stats(), region->name());

  // Every line is a comment (# HELP / # TYPE) or `name{labels} value`.
  static const std::regex sample(R"(^([a-z_]+)\{((?:[a-z_]+="(?:[^"\\]|\\.)*",?)*)\} (\S+)$)");
  static const std::regex label(R"(([a-z_]+)="((?:[^"\\]|\\.)*)\")");
  std::map<std::string, double> values;  // name{operation,le} -> value
  std::istringstream lines(text);
  std::string line;
  int samples = 0;
  while (std::getline(lines, line)) {
    if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) continue;
    std::smatch m;
    BOOST_TEST_INFO(line);
    BOOST_TEST_REQUIRE(std::regex_match(line, m, sample));
    std::string id = m[1];
    std::string labels = m[2];
    std::string region_label;
    for (std::sregex_iterator it(labels.begin(), labels.end(), label), end; it != end; ++it) {
      if ((*it)[1] == "region") {
        region_label = (*it)[2];
      } else {
        id += "," + (*it)[1].str() + "=" + (*it)[2].str();
      }
    }
    BOOST_TEST(region_label == R"(cache.\"odd\")");
    values[id] = std::stod(m[3]);
    ++samples;
  }
  BOOST_TEST(samples == 7 + 6 * (13 + 2));
  BOOST_TEST(values["dogpile_cache_evictions_total"] == 0);
  BOOST_TEST(values["dogpile_cache_gets_total"] == 2);
  BOOST_TEST(values["dogpile_cache_hits_total"] == 1);
  BOOST_TEST(values["dogpile_cache_misses_total"] == 1);
  BOOST_TEST(values["dogpile_cache_sets_total"] == 1);
  BOOST_TEST(values["dogpile_cache_operation_duration_seconds_count,operation=get"] == 2);
  BOOST_TEST(values["dogpile_cache_operation_duration_seconds_bucket,operation=get,le=+Inf"] == 2);
  BOOST_TEST(values["dogpile_cache_operation_duration_seconds_count,operation=set"] == 1);
  // Buckets are cumulative.
  double previous = 0;
  for (const char* le : {"1e-06", "5e-06", "1e-05", "5e-05", "0.0001", "0.0005", "0.001", "0.005",
                         "0.01", "0.05", "0.1", "1", "+Inf"}) {
    const auto bucket = values.find(
        std::string("dogpile_cache_operation_duration_seconds_bucket,operation=get,le=") + le);
    BOOST_TEST_REQUIRE((bucket != values.end()), "no bucket le=" << le);
    const double v = bucket->second;
    BOOST_TEST(v >= previous);
    previous = v;
  }
}

BOOST_AUTO_TEST_CASE(metrics_text_shows_every_live_region_with_stats) {
  const auto stats = dogpile::ConfigureOptions{.wrap = {dogpile::ProxySpec("dogpile.proxy.stats")}};
  auto first = dogpile::make_region("cache.first");
  first->configure("dogpile.cache.memory", stats);
  auto twin_a = dogpile::make_region("cache.twin");
  twin_a->configure("dogpile.cache.memory", stats);
  auto twin_b = dogpile::make_region("cache.twin");
  twin_b->configure("dogpile.cache.memory", stats);
  auto plain = dogpile::make_region("cache.plain");
  plain->configure("dogpile.cache.memory");
  auto unconfigured = dogpile::make_region("cache.unconfigured");
  first->get<int>("a");
  twin_a->get<int>("a");
  twin_b->set("a", 1);
  twin_b->get<int>("a");

  auto count = [](const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
  };
  std::string text = dogpile::metrics_text();
  // Each family is declared once, whatever the number of regions.
  BOOST_TEST(count(text, "# TYPE dogpile_cache_gets_total counter\n") == 1u);
  BOOST_TEST(count(text, "# TYPE dogpile_cache_operation_duration_seconds histogram\n") == 1u);
  BOOST_TEST(count(text, "\ndogpile_cache_gets_total{region=\"cache.first\"} 1\n") == 1u);
  // Regions sharing a name add up: two lookups, one hit.
  BOOST_TEST(count(text, "\ndogpile_cache_gets_total{region=\"cache.twin\"} 2\n") == 1u);
  BOOST_TEST(count(text, "\ndogpile_cache_hits_total{region=\"cache.twin\"} 1\n") == 1u);
  BOOST_TEST(count(text, "cache.plain") == 0u);
  BOOST_TEST(count(text, "cache.unconfigured") == 0u);
  // The text is the same as prometheus_text's for a region alone.
  twin_a.reset();
  twin_b.reset();
  text = dogpile::metrics_text();
  BOOST_TEST(count(text, "cache.twin") == 0u);
  BOOST_TEST(text == dogpile::prometheus_text(*first->stats(), "cache.first"));
  first.reset();
  BOOST_TEST(dogpile::metrics_text() == "");
}

BOOST_AUTO_TEST_CASE(metrics_text_is_safe_while_regions_come_and_go) {
  // Run under TSan: regions made, used and destroyed on two threads while a third renders.
  std::atomic<bool> done{false};
  std::thread reader([&] {
    while (!done.load()) dogpile::metrics_text();
  });
  std::vector<std::thread> makers;
  for (int t = 0; t < 2; ++t) {
    makers.emplace_back([t] {
      for (int i = 0; i < 200; ++i) {
        auto region = dogpile::make_region("cache.churn" + std::to_string(t));
        region->configure("dogpile.cache.memory",
                          {.wrap = {dogpile::ProxySpec("dogpile.proxy.stats")}});
        region->set("k", i);
        region->get<int>("k");
      }
    });
  }
  for (auto& maker : makers) maker.join();
  done = true;
  reader.join();
  BOOST_TEST(dogpile::metrics_text() == "");
}

BOOST_AUTO_TEST_SUITE_END()

// The logging proxy ------------------------------------------------------------------------

namespace {

class Collector
    : public boost::log::sinks::basic_sink_backend<boost::log::sinks::synchronized_feeding> {
 public:
  void consume(const boost::log::record_view& record) {
    if (auto message = boost::log::extract<std::string>("Message", record)) {
      if (message->find("dogpile.proxy.logging") == std::string::npos) return;
      lines.push_back(*message);
      auto severity = boost::log::extract<boost::log::trivial::severity_level>("Severity", record);
      severities.push_back(severity ? *severity : boost::log::trivial::trace);
    }
  }
  std::vector<std::string> lines;
  std::vector<boost::log::trivial::severity_level> severities;
};

struct CollectLogs {
  CollectLogs() : collector(boost::make_shared<Collector>()) {
    sink = boost::make_shared<boost::log::sinks::synchronous_sink<Collector>>(collector);
    boost::log::core::get()->add_sink(sink);
  }
  ~CollectLogs() {
    boost::log::core::get()->remove_sink(sink);
    dogpile::set_log_level(dogpile::LogLevel::warning);
  }
  boost::shared_ptr<Collector> collector;
  boost::shared_ptr<boost::log::sinks::synchronous_sink<Collector>> sink;
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(logging_proxy, CollectLogs)

BOOST_AUTO_TEST_CASE(each_operation_is_logged_without_values) {
  dogpile::set_log_level(dogpile::LogLevel::info);
  auto region = dogpile::make_region();
  region->configure("dogpile.cache.memory_pickle",
                    {.wrap = {dogpile::ProxySpec("dogpile.proxy.logging", {{"level", "info"}})}});
  region->set("user:1", std::string("top-secret-value"));
  region->get<std::string>("user:1");
  region->get<std::string>("user:2");
  region->get_multi<std::string>({"user:1", "user:3"});
  region->remove("user:1");
  region->remove_multi({"user:1", "user:3"});
  region->key_is_locked("user:1");
  const auto& lines = collector->lines;
  BOOST_TEST_REQUIRE(lines.size() == 7u);
  BOOST_TEST(lines[0].find("set user:1") != std::string::npos);
  BOOST_TEST(lines[1].find("get user:1 hit") != std::string::npos);
  BOOST_TEST(lines[2].find("get user:2 miss") != std::string::npos);
  BOOST_TEST(lines[3].find("get_multi 2 keys [user:1, user:3] hits=1 misses=1") !=
             std::string::npos);
  BOOST_TEST(lines[4].find("remove user:1") != std::string::npos);
  BOOST_TEST(lines[5].find("remove_multi 2 keys [user:1, user:3]") != std::string::npos);
  BOOST_TEST(lines[6].find("get_mutex user:1") != std::string::npos);
  for (const auto& line : lines) {
    BOOST_TEST(line.find(" ms") != std::string::npos);
    BOOST_TEST(line.find("top-secret-value") == std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(a_key_with_a_newline_cannot_forge_a_record) {
  dogpile::set_log_level(dogpile::LogLevel::info);
  auto region = dogpile::make_region();
  region->configure("dogpile.cache.memory",
                    {.wrap = {dogpile::ProxySpec("dogpile.proxy.logging", {{"level", "info"}})}});
  region->set("a\n[error] dogpile.proxy.logging forged\r\x1b[2J", 1);
  BOOST_TEST_REQUIRE(collector->lines.size() == 1u);
  const std::string& line = collector->lines[0];
  BOOST_TEST(line.find_first_of("\n\r\x1b") == std::string::npos);
  BOOST_TEST(line.find("set a\\x0a[error] dogpile.proxy.logging forged\\x0d\\x1b[2J") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(keys_can_be_hashed_or_truncated) {
  dogpile::set_log_level(dogpile::LogLevel::debug);
  auto hashed = dogpile::make_region();
  hashed->configure("dogpile.cache.memory",
                    {.wrap = {dogpile::ProxySpec("dogpile.proxy.logging", {{"keys", "hash"}})}});
  hashed->set("email:ann@example.com", 1);
  hashed->set_multi(std::map<std::string, int>{{"email:bob@example.com", 2}});
  auto truncated = dogpile::make_region();
  truncated->configure(
      "dogpile.cache.memory",
      {.wrap = {dogpile::ProxySpec("dogpile.proxy.logging",
                                   {{"keys", "truncate"}, {"max_key_length", 5}})}});
  truncated->set("abcdefghij", 1);
  const auto& lines = collector->lines;
  BOOST_TEST_REQUIRE(lines.size() == 3u);
  BOOST_TEST(lines[0].find("ann@example.com") == std::string::npos);
  BOOST_TEST(lines[0].find("set #") != std::string::npos);
  BOOST_TEST(lines[1].find("bob@example.com") == std::string::npos);
  BOOST_TEST(lines[1].find("set_multi 1 keys [#") != std::string::npos);
  BOOST_TEST(lines[2].find("set abcde...") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_failed_call_is_logged_as_an_error_and_rethrown) {
  dogpile::set_log_level(dogpile::LogLevel::info);
  auto region = dogpile::make_region();
  region->configure("dogpile.cache.memory_pickle",
                    {.wrap = {dogpile::ProxySpec("dogpile.proxy.logging", {{"level", "info"}})}});
  struct NoCodec {};
  BOOST_CHECK_THROW(region->set("k", NoCodec{}), dogpile::CantSerialize);
  region->backend()->get_serialized_multi({"a", "b"});
  BOOST_TEST_REQUIRE(collector->lines.size() == 2u);
  BOOST_TEST(collector->severities[0] == boost::log::trivial::error);
  BOOST_TEST(collector->lines[0].find("set k failed after") != std::string::npos);
  BOOST_TEST(collector->lines[1].find("get_serialized_multi 2 keys [a, b] hits=0 misses=2") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(below_the_level_nothing_is_logged) {
  dogpile::set_log_level(dogpile::LogLevel::warning);
  auto region = dogpile::make_region();
  region->configure("dogpile.cache.memory",
                    {.wrap = {dogpile::ProxySpec("dogpile.proxy.logging")}});
  region->set("k", 1);
  region->get<int>("k");
  BOOST_TEST(collector->lines.empty());
}

BOOST_AUTO_TEST_CASE(bad_logging_arguments_are_errors) {
  auto region = dogpile::make_region();
  BOOST_CHECK_THROW(
      region->configure(
          "dogpile.cache.memory",
          {.wrap = {dogpile::ProxySpec("dogpile.proxy.logging", {{"level", "loud"}})}}),
      dogpile::ValidationError);
  BOOST_CHECK_THROW(
      region->configure(
          "dogpile.cache.memory",
          {.wrap = {dogpile::ProxySpec("dogpile.proxy.logging", {{"keys", "rot13"}})}}),
      dogpile::ValidationError);
  // Level names read as dogpile.log_level's do; "off" would make the proxy pointless.
  BOOST_CHECK_THROW(
      region->configure(
          "dogpile.cache.memory",
          {.wrap = {dogpile::ProxySpec("dogpile.proxy.logging", {{"level", "off"}})}}),
      dogpile::ValidationError);
  BOOST_CHECK_NO_THROW(region->configure(
      "dogpile.cache.memory",
      {.wrap = {dogpile::ProxySpec("dogpile.proxy.logging", {{"level", "WARN"}})}}));
}

BOOST_AUTO_TEST_SUITE_END()
