// CacheRegion's non-locking operations, on the shipped backends.
#define BOOST_TEST_MODULE region
#include <atomic>
#include <boost/test/data/monomorphic.hpp>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <cctype>
#include <dogpile/dogpile.hpp>
#include <dogpile/sdk/sdk.hpp>
#include <functional>
#include <map>
#include <thread>

#include "helpers.hpp"

namespace data = boost::unit_test::data;
using dogpile::CacheRegion;
using dogpile::GetOptions;
using nlohmann::json;
using test::kStoringBackends;
using test::message_contains;
using test::region_on;
using test::wait_until;

namespace {

// A value as if created `age` seconds ago.
dogpile::CachedValuePtr aged(int payload, double age) {
  return dogpile::make_value(payload, dogpile::now_seconds() - age);
}

struct Profile {
  std::string name;
  int score = 0;
  NLOHMANN_DEFINE_TYPE_INTRUSIVE(Profile, name, score)
};

struct NoCodec {
  int x = 0;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(configuration)

BOOST_AUTO_TEST_CASE(an_unconfigured_region_raises_region_not_configured) {
  CacheRegion region("r");
  BOOST_TEST(!region.is_configured());
  BOOST_CHECK_EXCEPTION(region.get<int>("k"), dogpile::RegionNotConfigured,
                        [](const dogpile::RegionNotConfigured& e) {
                          return std::string(e.what()) ==
                                 "No backend is configured on this region.";
                        });
  BOOST_CHECK_THROW(region.set("k", 1), dogpile::RegionNotConfigured);
  BOOST_CHECK_THROW(region.backend(), dogpile::RegionNotConfigured);
  BOOST_CHECK_THROW(region.remove("k"), dogpile::RegionNotConfigured);
}

BOOST_AUTO_TEST_CASE(configuring_twice_raises_region_already_configured) {
  auto region = region_on("dogpile.cache.memory");
  BOOST_TEST(region->is_configured());
  try {
    region->configure("dogpile.cache.memory");
    BOOST_FAIL("expected RegionAlreadyConfigured");
  } catch (const dogpile::RegionAlreadyConfigured& e) {
    BOOST_TEST(std::string(e.what()) ==
               "This region is already configured with backend: dogpile.cache.memory.  "
               "Specify replace_existing_backend=True to replace.");
  }
}

BOOST_AUTO_TEST_CASE(replace_existing_backend_swaps_the_backend) {
  auto region = region_on("dogpile.cache.memory");
  region->set("k", 1);
  region->configure("dogpile.cache.null", {.replace_existing_backend = true});
  BOOST_TEST(region->backend_name() == "dogpile.cache.null");
  BOOST_TEST(region->get<int>("k") == nullptr);
}

BOOST_AUTO_TEST_CASE(a_replaced_backend_is_freed_when_no_call_uses_it) {
  auto region = region_on("dogpile.cache.memory");
  std::weak_ptr<dogpile::CacheBackend> first = region->actual_backend();
  region->configure("dogpile.cache.memory", {.replace_existing_backend = true});
  BOOST_TEST(first.expired());
  for (int i = 0; i < 5; ++i) {
    region->configure("dogpile.cache.memory", {.replace_existing_backend = true});
  }
  std::weak_ptr<dogpile::CacheBackend> last = region->actual_backend();
  BOOST_TEST(!last.expired());
}

BOOST_AUTO_TEST_CASE(a_replaced_backend_lives_until_the_calls_on_it_end) {
  auto region = region_on("dogpile.cache.memory");
  std::weak_ptr<dogpile::CacheBackend> first = region->actual_backend();
  std::atomic<bool> creating{false};
  std::atomic<bool> replaced{false};
  std::atomic<int> timeouts{0};
  std::thread caller([&] {
    region->get_or_create("k", [&] {
      creating = true;
      test::wait_in_worker([&] { return replaced.load(); }, timeouts);
      return 1;  // stored in the first backend, which this call still uses
    });
  });
  BOOST_TEST_REQUIRE(wait_until([&] { return creating.load(); }));
  region->configure("dogpile.cache.memory", {.replace_existing_backend = true});
  BOOST_TEST(!first.expired());  // the call above still runs on it
  // Calls that start now use the new backend, and do not keep the old one.
  BOOST_TEST(region->get<int>("k") == nullptr);
  BOOST_TEST(!first.expired());
  replaced = true;
  caller.join();
  BOOST_TEST(timeouts == 0);
  BOOST_TEST(first.expired());  // freed by the call that left it last
  BOOST_TEST(region->get<int>("k") == nullptr);
}

BOOST_AUTO_TEST_CASE(an_unknown_backend_is_plugin_not_found_naming_it) {
  auto region = dogpile::make_region();
  try {
    region->configure("dogpile.cache.nope");
    BOOST_FAIL("expected PluginNotFound");
  } catch (const dogpile::PluginNotFound& e) {
    BOOST_TEST(message_contains(e, "Couldn't find cache plugin to load: dogpile.cache.nope"));
  }
  BOOST_TEST(!region->is_configured());
}

BOOST_AUTO_TEST_CASE(an_unknown_argument_is_an_error_naming_the_key) {
  auto region = dogpile::make_region();
  try {
    region->configure("dogpile.cache.memory",
                      {.arguments = {{"shardz", 4}}, .config_prefix = "cache.local."});
    BOOST_FAIL("expected ValidationError");
  } catch (const dogpile::ValidationError& e) {
    BOOST_TEST(message_contains(e, "cache.local.arguments.shardz"));
    BOOST_TEST(message_contains(e, "dogpile.cache.memory"));
  }
  BOOST_CHECK_THROW(region->configure("dogpile.cache.memory", {.arguments = {{"shards", 0}}}),
                    dogpile::ValidationError);
  BOOST_CHECK_THROW(region->configure("dogpile.cache.null", {.arguments = {{"x", 1}}}),
                    dogpile::ValidationError);
}

BOOST_AUTO_TEST_CASE(a_negative_expiration_other_than_minus_one_is_rejected) {
  auto region = dogpile::make_region();
  BOOST_CHECK_THROW(region->configure("dogpile.cache.memory", {.expiration_time = -5}),
                    dogpile::ValidationError);
  region->configure("dogpile.cache.memory", {.expiration_time = -1});
  BOOST_TEST(!region->expiration_time().has_value());
}

BOOST_AUTO_TEST_CASE(backend_and_actual_backend_differ_when_wrapped) {
  auto proxy = std::make_shared<dogpile::ProxyBackend>();
  auto region = region_on("dogpile.cache.memory", {.wrap = {proxy}});
  BOOST_TEST(region->backend() == proxy);
  BOOST_TEST(region->actual_backend() != region->backend());
  BOOST_TEST(proxy->proxied() == region->actual_backend());
  auto plain = region_on("dogpile.cache.memory");
  BOOST_TEST(plain->backend() == plain->actual_backend());
}

BOOST_AUTO_TEST_SUITE_END()

// Storing and reading ----------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(operations)

BOOST_DATA_TEST_CASE(set_then_get_returns_the_value, data::make(kStoringBackends), backend) {
  auto region = region_on(std::string(backend));
  region->set("s", std::string("hello"));
  region->set("i", 42);
  region->set("p", Profile{"ann", 7});
  BOOST_TEST(*region->get<std::string>("s") == "hello");
  BOOST_TEST(*region->get<int>("i") == 42);
  BOOST_TEST(region->get<Profile>("p")->name == "ann");
  BOOST_TEST(region->get<Profile>("p")->score == 7);
}

BOOST_DATA_TEST_CASE(a_miss_differs_from_a_stored_empty_value, data::make(kStoringBackends),
                     backend) {
  auto region = region_on(std::string(backend));
  BOOST_TEST(region->get<std::string>("absent") == nullptr);
  region->set("empty", std::string());
  auto empty = region->get<std::string>("empty");
  BOOST_TEST_REQUIRE(empty != nullptr);
  BOOST_TEST(empty->empty());
  region->set("null", json(nullptr));
  auto null_json = region->get<json>("null");
  BOOST_TEST_REQUIRE(null_json != nullptr);
  BOOST_TEST(null_json->is_null());
}

BOOST_DATA_TEST_CASE(multi_operations_are_aligned_with_their_keys, data::make(kStoringBackends),
                     backend) {
  auto region = region_on(std::string(backend));
  region->set_multi(std::map<std::string, int>{{"a", 1}, {"b", 2}, {"c", 3}});
  auto values = region->get_multi<int>({"c", "missing", "a", "a"});
  BOOST_TEST_REQUIRE(values.size() == 4u);
  BOOST_TEST(*values[0] == 3);
  BOOST_TEST(values[1] == nullptr);
  BOOST_TEST(*values[2] == 1);
  BOOST_TEST(*values[3] == 1);
  BOOST_TEST(region->get_multi<int>({}).empty());
  // One creation time for the batch.
  BOOST_TEST(region->get_value_metadata("a")->cached_time() ==
             region->get_value_metadata("c")->cached_time());
  region->remove_multi({"a", "b", "missing"});
  BOOST_CHECK_NO_THROW(region->remove_multi({"a", "b"}));  // idempotent
  values = region->get_multi<int>({"a", "b", "c"});
  BOOST_TEST(values[0] == nullptr);
  BOOST_TEST(values[1] == nullptr);
  BOOST_TEST(*values[2] == 3);
}

BOOST_DATA_TEST_CASE(remove_is_idempotent, data::make(kStoringBackends), backend) {
  auto region = region_on(std::string(backend));
  region->set("k", 1);
  region->remove("k");
  region->remove("k");
  BOOST_TEST(region->get<int>("k") == nullptr);
}

BOOST_DATA_TEST_CASE(overwriting_replaces_the_value, data::make(kStoringBackends), backend) {
  auto region = region_on(std::string(backend));
  region->set("k", 1);
  region->set("k", 2);
  BOOST_TEST(*region->get<int>("k") == 2);
}

BOOST_DATA_TEST_CASE(a_values_age_is_read_on_the_regions_clock, data::make(kStoringBackends),
                     backend) {
  auto clock = std::make_shared<dogpile::ManualClock>();
  clock->set(1'000'000);
  auto region = dogpile::make_region({.clock = clock});
  region->configure(std::string(backend));
  region->set("k", 1);
  clock->advance(42.5);
  auto meta = region->get_value_metadata("k");
  BOOST_TEST_REQUIRE(meta != nullptr);
  BOOST_TEST(meta->cached_time() == 1'000'000.0);
  BOOST_TEST(meta->age(region->clock().now()) == 42.5);
}

BOOST_AUTO_TEST_CASE(the_memory_backend_returns_the_stored_object_without_copying) {
  auto region = region_on("dogpile.cache.memory");
  region->set("p", Profile{"ann", 7});
  auto first = region->get<Profile>("p");
  auto second = region->get<Profile>("p");
  BOOST_TEST(first.get() == second.get());
  // Even a type without a codec can live in an object backend.
  region->set("opaque", NoCodec{5});
  BOOST_TEST(region->get<NoCodec>("opaque")->x == 5);
}

BOOST_AUTO_TEST_CASE(a_byte_backend_refuses_a_type_without_codec) {
  auto region = region_on("dogpile.cache.memory_pickle");
  BOOST_CHECK_THROW(region->set("opaque", NoCodec{5}), dogpile::CantSerialize);
}

BOOST_AUTO_TEST_CASE(reading_an_object_without_codec_as_another_type_is_a_value_type_error) {
  auto region = region_on("dogpile.cache.memory");
  region->set("k", NoCodec{1});
  try {
    region->get<int>("k");
    BOOST_FAIL("expected ValueTypeError");
  } catch (const dogpile::ValueTypeError& e) {
    BOOST_TEST(message_contains(e,
                                "key 'k' cannot be read as int: it holds "
                                "(anonymous namespace)::NoCodec, which has no dogpile::Codec"));
  }
}

BOOST_AUTO_TEST_CASE(type_names_in_messages_read_as_code_writes_them) {
  auto region = region_on("dogpile.cache.memory");
  region->set("k", NoCodec{1});
  auto message = [&](auto read) {
    try {
      read();
    } catch (const dogpile::ValueTypeError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  BOOST_TEST(message([&] { region->get<std::string>("k"); }).find("read as std::string:") !=
             std::string::npos);
  BOOST_TEST(message([&] {
               region->get<std::vector<std::string>>("k");
             }).find("read as std::vector<std::string>:") != std::string::npos);
  BOOST_TEST(message([&] {
               region->get<std::map<std::string, std::vector<int>>>("k");
             }).find("read as std::map<std::string, std::vector<int>>:") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(the_byte_backend_stores_dogpiles_wire_format) {
  auto region = region_on("dogpile.cache.memory_pickle");
  region->set("k", json{{"a", 1}});
  auto meta = region->get_value_metadata("k");
  auto stored = region->actual_backend()->get_serialized("k");
  BOOST_TEST_REQUIRE(stored.has_value());
  BOOST_TEST(*stored == dogpile::serialize_metadata(meta->metadata()) + "|{\"a\":1}");
  BOOST_TEST(stored->starts_with("{\"ct\": "));
  BOOST_TEST(stored->find(", \"v\": 2}|{\"a\":1}") != std::string::npos);
}

BOOST_DATA_TEST_CASE(a_value_written_by_python_dogpile_is_read, data::make(kStoringBackends),
                     backend) {
  auto region = region_on(std::string(backend));
  region->actual_backend()->set_serialized("k", R"({"ct": 1795570724.65, "v": 2}|{"a": 1})");
  auto value = region->get<json>("k", {.ignore_expiration = true});
  BOOST_TEST_REQUIRE(value != nullptr);
  BOOST_TEST((*value == json{{"a", 1}}));
  BOOST_TEST(region->get_value_metadata("k")->cached_time() == 1795570724.65);
}

BOOST_AUTO_TEST_CASE(the_memory_backend_serializes_on_request_only) {
  auto region = region_on("dogpile.cache.memory");
  region->set("k", 5);
  auto bytes = region->actual_backend()->get_serialized("k");
  BOOST_TEST_REQUIRE(bytes.has_value());
  BOOST_TEST(bytes->ends_with(", \"v\": 2}|5"));
}

BOOST_AUTO_TEST_CASE(threads_reading_and_writing_distinct_keys_see_their_own_values) {
  auto region = region_on("dogpile.cache.memory");
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        const std::string key = std::to_string(t) + ":" + std::to_string(i % 50);
        region->set(key, i);
        auto v = region->get<int>(key);
        if (!v || *v != i) ++wrong;
      }
    });
  }
  for (auto& t : threads) t.join();
  BOOST_TEST(wrong.load() == 0);
}

BOOST_AUTO_TEST_CASE(a_backend_throwing_a_foreign_exception_is_a_dogpile_error_naming_it) {
  auto region = region_on("test.cache.careless", {.arguments = {{"fail_calls", true}}});
  for (const auto& call : std::vector<std::function<void()>>{
           [&] { region->get<int>("k"); }, [&] { region->set("k", 1); },
           [&] {
             region->get_multi<int>({"a", "b"});
           },
           [&] { region->get_or_create("k", [] { return 1; }); },
           [&] {
             region->get_or_create_multi(
                 {"a"}, [](const dogpile::Keys& keys) { return std::vector<int>(keys.size(), 1); });
           }}) {
    try {
      call();
      BOOST_ERROR("expected dogpile::Error");
    } catch (const dogpile::Error& e) {
      BOOST_TEST(message_contains(e, "test.cache.careless failed: careless "));
    }
  }
  // The application's own exceptions, from a creator, reach it as they are.
  auto memory = region_on("dogpile.cache.memory");
  BOOST_CHECK_THROW(memory->get_or_create("k", []() -> int { throw std::logic_error("mine"); }),
                    std::logic_error);
}

BOOST_AUTO_TEST_SUITE_END()

// Values: one typed-read rule on every backend ------------------------------------------

BOOST_AUTO_TEST_SUITE(values)

// The typed-read table itself is the conformance kit's (tools/conformance), which runs on every
// shipped backend.

BOOST_DATA_TEST_CASE(string_literals_and_c_strings_are_stored_as_std_string,
                     data::make(kStoringBackends), backend) {
  auto region = region_on(std::string(backend));
  region->set("literal", "hello");
  const char* c_string = "world";
  region->set("pointer", c_string);
  region->set("view", std::string_view("view"));
  BOOST_TEST(*region->get<std::string>("literal") == "hello");
  BOOST_TEST(*region->get<std::string>("pointer") == "world");
  BOOST_TEST(*region->get<std::string>("view") == "view");
  std::shared_ptr<const std::string> made = region->get_or_create("made", [] { return "made"; });
  BOOST_TEST(*made == "made");
  BOOST_TEST(*region->get<std::string>("made") == "made");
  auto many = region->get_or_create_multi(
      {"m"}, [](const dogpile::Keys&) { return std::vector<const char*>{"one"}; });
  BOOST_TEST(*many.at(0) == "one");
  BOOST_CHECK_THROW(region->set("null", static_cast<const char*>(nullptr)),
                    dogpile::ValidationError);
}

BOOST_AUTO_TEST_CASE(make_region_takes_designated_options) {
  auto region = dogpile::make_region({.name = "designated"});
  BOOST_TEST(region->name() == "designated");
  BOOST_TEST(dogpile::make_region()->name().empty());
}

BOOST_DATA_TEST_CASE(a_string_is_stored_as_the_json_string_python_writes,
                     data::make(kStoringBackends), backend) {
  auto region = region_on(std::string(backend));
  region->set("s", std::string("hello world"));
  BOOST_TEST(region->backend()->get_serialized("s")->ends_with(R"(|"hello world")"));
  region->backend()->set_serialized("p", R"({"ct": 1795570724.65, "v": 2}|"h\u00e9llo")");
  BOOST_TEST(*region->get<std::string>("p", {.ignore_expiration = true}) == "h\xc3\xa9llo");
}

BOOST_DATA_TEST_CASE(the_bytes_family_stores_arbitrary_bytes, data::make(kStoringBackends),
                     backend) {
  auto region = region_on(std::string(backend));
  const std::string raw("some\0value\xff|", 12);
  region->backend()->set_serialized("raw", raw);
  BOOST_TEST(*region->backend()->get_serialized("raw") == raw);
  region->backend()->set_serialized_multi({{"a", raw}, {"b", "x"}});
  auto both = region->backend()->get_serialized_multi({"a", "b"});
  BOOST_TEST(*both.at(0) == raw);
  BOOST_TEST(*both.at(1) == "x");
}

BOOST_DATA_TEST_CASE(undecodable_bytes_are_a_miss_that_get_or_create_repairs,
                     data::make(kStoringBackends), backend) {
  auto region = region_on(std::string(backend));
  // Python's default serializer pickles; other bytes are garbage.
  region->backend()->set_serialized("pickle", "\x80\x04\x95\x05\0\0\0\0\0\0\0K*.");
  region->backend()->set_serialized("payload", R"({"ct": 1795570724.65, "v": 2}|not json)");
  region->set("m", 1);
  BOOST_TEST(region->get<int>("pickle") == nullptr);
  BOOST_TEST(region->get<int>("payload", {.ignore_expiration = true}) == nullptr);
  BOOST_TEST(region->get_value_metadata("pickle") == nullptr);
  auto values = region->get_multi<int>({"pickle", "m", "payload"});
  BOOST_TEST(values[0] == nullptr);
  BOOST_TEST(*values[1] == 1);
  BOOST_TEST(values[2] == nullptr);
  int calls = 0;
  BOOST_TEST(*region->get_or_create("pickle", [&] { return ++calls; }) == 1);
  BOOST_TEST(*region->get<int>("pickle") == 1);
  auto multi = region->get_or_create_multi({"payload", "m"}, [&](const dogpile::Keys& keys) {
    BOOST_TEST((keys == dogpile::Keys{"payload"}));
    return std::vector<int>{5};
  });
  BOOST_TEST(*multi.at(0) == 5);
  BOOST_TEST(*region->get<int>("payload") == 5);
}

BOOST_DATA_TEST_CASE(raise_on_undecodable_makes_them_cant_deserialize, data::make(kStoringBackends),
                     backend) {
  auto region = dogpile::make_region("strict");
  region->configure_from_config(
      {{"cache.backend", std::string(backend)}, {"cache.raise_on_undecodable", "true"}}, "cache.");
  region->backend()->set_serialized("k", "garbage");
  try {
    region->get<int>("k");
    BOOST_FAIL("expected CantDeserialize");
  } catch (const dogpile::CantDeserialize& e) {
    BOOST_TEST(message_contains(e, "cached value for key 'k' is not in dogpile's format"));
  }
  BOOST_CHECK_THROW(region->get_or_create("k", [] { return 1; }), dogpile::CantDeserialize);
  region->set("s", std::string("x"));
  BOOST_CHECK_THROW(region->get<int>("s"), dogpile::ValueTypeError);
}

BOOST_AUTO_TEST_SUITE_END()

// Expiration, invalidation and metadata --------------------------------------------------

BOOST_AUTO_TEST_SUITE(expiration)

BOOST_DATA_TEST_CASE(a_value_older_than_the_expiration_is_a_miss, data::make(kStoringBackends),
                     backend) {
  auto region = region_on(std::string(backend), {.expiration_time = 10});
  region->set_value("old", aged(1, 20));
  region->set_value("young", aged(2, 1));
  BOOST_TEST(region->get<int>("old") == nullptr);
  BOOST_TEST(*region->get<int>("young") == 2);
  BOOST_TEST(*region->get<int>("old", {.ignore_expiration = true}) == 1);
  // A per-call expiration time overrides the region's.
  BOOST_TEST(*region->get<int>("old", {.expiration_time = 30}) == 1);
  BOOST_TEST(region->get<int>("young", {.expiration_time = 0.5}) == nullptr);
  BOOST_TEST(*region->get<int>("old", {.expiration_time = -1}) == 1);
  auto both = region->get_multi<int>({"old", "young"});
  BOOST_TEST(both[0] == nullptr);
  BOOST_TEST(*both[1] == 2);
  both = region->get_multi<int>({"old", "young"}, {.ignore_expiration = true});
  BOOST_TEST(*both[0] == 1);
}

BOOST_AUTO_TEST_CASE(without_expiration_time_values_never_expire) {
  auto region = region_on("dogpile.cache.memory");
  region->set_value("ancient", aged(1, 1e8));
  BOOST_TEST(*region->get<int>("ancient") == 1);
}

BOOST_DATA_TEST_CASE(invalidation_makes_older_values_misses, data::make(kStoringBackends),
                     backend) {
  for (bool hard : {true, false}) {
    auto region = region_on(std::string(backend));
    region->set_value("k", aged(1, 1));
    region->invalidate(hard);
    BOOST_TEST(region->region_invalidator().was_hard_invalidated() == hard);
    BOOST_TEST(region->region_invalidator().was_soft_invalidated() == !hard);
    BOOST_TEST(region->get<int>("k") == nullptr);
    BOOST_TEST(*region->get<int>("k", {.ignore_expiration = true}) == 1);
    region->set("k", 2);  // created after the invalidation
    BOOST_TEST(*region->get<int>("k") == 2);
  }
}

BOOST_AUTO_TEST_CASE(a_custom_invalidation_strategy_is_used) {
  struct EverythingInvalid : dogpile::RegionInvalidationStrategy {
    int invalidations = 0;
    void invalidate(bool) override { ++invalidations; }
    bool is_hard_invalidated(double) const override { return true; }
    bool is_soft_invalidated(double) const override { return false; }
    bool is_invalidated(double) const override { return true; }
    bool was_soft_invalidated() const override { return false; }
    bool was_hard_invalidated() const override { return true; }
  };
  auto strategy = std::make_shared<EverythingInvalid>();
  auto region = region_on("dogpile.cache.memory", {.region_invalidator = strategy});
  region->set("k", 1);
  BOOST_TEST(region->get<int>("k") == nullptr);
  region->invalidate(false);
  BOOST_TEST(strategy->invalidations == 1);
}

BOOST_DATA_TEST_CASE(metadata_gives_creation_time_and_age, data::make(kStoringBackends), backend) {
  auto region = region_on(std::string(backend), {.expiration_time = 100});
  const double before = dogpile::now_seconds();
  region->set("k", 1);
  auto meta = region->get_value_metadata("k");
  BOOST_TEST_REQUIRE(meta != nullptr);
  BOOST_TEST(meta->cached_time() >= before);
  BOOST_TEST(meta->cached_time() <= dogpile::now_seconds());
  BOOST_TEST(meta->age() >= 0.0);
  BOOST_TEST(meta->age() < 60.0);
  BOOST_TEST(meta->metadata().v == dogpile::kValueVersion);
  BOOST_TEST(region->get_value_metadata("absent") == nullptr);
  region->set_value("old", aged(1, 500));
  BOOST_TEST(region->get_value_metadata("old") == nullptr);
  BOOST_TEST(region->get_value_metadata("old", {.ignore_expiration = true})->age() >= 500.0);
}

BOOST_AUTO_TEST_SUITE_END()

// Keys and locks -------------------------------------------------------------------------

namespace {

// Recommends upper-case keys, as a server backend would recommend hashing them.
class UpperCaseKeys : public dogpile::ProxyBackend {
 public:
  dogpile::KeyMangler key_mangler() const override {
    return [](std::string_view key) {
      std::string out(key);
      for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      return out;
    };
  }
};

// Counts the reads a region makes through it.
class CountingGets : public dogpile::ProxyBackend {
 public:
  dogpile::CachedValuePtr get(std::string_view key) override {
    ++gets;
    return ProxyBackend::get(key);
  }
  int gets = 0;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(keys_and_locks)

BOOST_DATA_TEST_CASE(a_user_key_mangler_is_applied_to_storage, data::make(kStoringBackends),
                     backend) {
  std::shared_ptr<CacheRegion> region =
      dogpile::make_region("m", [](std::string_view k) { return "ns:" + std::string(k); });
  region->configure(backend);
  region->set("a", 1);
  region->set_multi(std::map<std::string, int>{{"b", 2}});
  BOOST_TEST(region->actual_backend()->get("ns:a") != nullptr);
  BOOST_TEST(region->actual_backend()->get("ns:b") != nullptr);
  BOOST_TEST(region->actual_backend()->get("a") == nullptr);
  BOOST_TEST(*region->get<int>("a") == 1);
  BOOST_TEST(*region->get_multi<int>({"b"})[0] == 2);
  region->remove("a");
  BOOST_TEST(region->actual_backend()->get("ns:a") == nullptr);
  region->remove_multi({"b"});
  BOOST_TEST(region->actual_backend()->get("ns:b") == nullptr);
  BOOST_TEST(region->mangle("x") == "ns:x");
}

BOOST_AUTO_TEST_CASE(the_backends_recommended_mangler_is_used_when_the_user_gives_none) {
  auto region = region_on("dogpile.cache.memory", {.wrap = {std::make_shared<UpperCaseKeys>()}});
  region->set("abc", 1);
  BOOST_TEST(region->actual_backend()->get("ABC") != nullptr);
  BOOST_TEST(*region->get<int>("abc") == 1);

  auto user = dogpile::make_region("u", [](std::string_view k) { return std::string(k) + "!"; });
  user->configure("dogpile.cache.memory", {.wrap = {std::make_shared<UpperCaseKeys>()}});
  user->set("abc", 1);
  BOOST_TEST(user->actual_backend()->get("abc!") != nullptr);
}

BOOST_DATA_TEST_CASE(a_proxy_sees_reads_on_object_and_byte_backends, data::make(kStoringBackends),
                     backend) {
  auto counter = std::make_shared<CountingGets>();
  auto region = region_on(std::string(backend), {.wrap = {counter}});
  region->set("k", 1);
  region->get<int>("k");
  region->get<int>("absent");
  BOOST_TEST(counter->gets == 2);
}

BOOST_DATA_TEST_CASE(key_is_locked_reports_the_dogpile_lock, data::make(kStoringBackends),
                     backend) {
  auto region = region_on(std::string(backend));
  BOOST_TEST(!region->key_is_locked("k"));
  auto mutex = region->mutex("k");
  BOOST_TEST(mutex->acquire(false));
  BOOST_TEST(region->key_is_locked("k"));
  BOOST_TEST(!region->key_is_locked("other"));
  BOOST_TEST(!region->mutex("k")->acquire(false));  // the same mutex while anyone holds it
  mutex->release();
  BOOST_TEST(!region->key_is_locked("k"));
}

BOOST_AUTO_TEST_CASE(the_in_process_mutex_can_be_released_by_another_thread) {
  auto region = region_on("dogpile.cache.memory");
  auto mutex = region->mutex("k");
  BOOST_TEST(mutex->acquire(true));
  std::thread([&] { mutex->release(); }).join();
  BOOST_TEST(mutex->acquire(false));
  mutex->release();
}

BOOST_AUTO_TEST_SUITE_END()

// The null backend -------------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(null_backend)

BOOST_AUTO_TEST_CASE(the_null_backend_stores_nothing) {
  auto region = region_on("dogpile.cache.null", {.expiration_time = 60});
  region->set("k", 1);
  region->set_multi(std::map<std::string, int>{{"a", 1}});
  BOOST_TEST(region->get<int>("k") == nullptr);
  BOOST_TEST(region->get<int>("k", {.ignore_expiration = true}) == nullptr);
  auto values = region->get_multi<int>({"k", "a"});
  BOOST_TEST(values.size() == 2u);
  BOOST_TEST(values[0] == nullptr);
  BOOST_TEST(values[1] == nullptr);
  BOOST_TEST(region->get_value_metadata("k") == nullptr);
  region->remove("k");
  region->remove_multi({"k", "a"});
  BOOST_TEST(!region->actual_backend()->get_serialized("k").has_value());
}

BOOST_AUTO_TEST_CASE(the_null_backends_mutex_never_blocks) {
  auto region = region_on("dogpile.cache.null");
  auto mutex = region->mutex("k");
  BOOST_TEST(mutex->acquire(true));
  BOOST_TEST(mutex->acquire(false));
  BOOST_TEST(region->mutex("k")->acquire(false));
  BOOST_TEST(!region->key_is_locked("k"));
  mutex->release();
}

BOOST_AUTO_TEST_SUITE_END()

// A value a backend holds as bytes (as dogpile.cache.layered's L1 holds what it read from
// Redis) is decoded once: every hit after the first gets the object the first one made, kept
// with the bytes, not a new decoding.
BOOST_AUTO_TEST_CASE(a_bytes_value_is_decoded_once) {
  auto region = test::region_on("dogpile.cache.memory");
  const auto wire = dogpile::serialize_cached_value(*dogpile::make_value(std::string("v")));
  region->set_value("k", dogpile::CachedValue::from_wire(wire));
  const auto first = region->get<std::string>("k");
  BOOST_TEST(*first == "v");
  BOOST_TEST(region->get<std::string>("k").get() == first.get());
  BOOST_TEST(*region->get<nlohmann::json>("k") == "v");  // another type: decoded for itself
  BOOST_TEST(region->get<std::string>("k").get() == first.get());
}
