// Cached functions (cache_on_arguments, cache_multi_on_arguments), their keys, and key
// manglers: dogpile.cache's decorator scenarios in C++ form.
#define BOOST_TEST_MODULE functions
#include <boost/test/unit_test.hpp>
#include <dogpile/dogpile.hpp>
#include <map>
#include <thread>

using dogpile::CacheRegion;
using namespace std::chrono_literals;

namespace {

std::shared_ptr<CacheRegion> memory_region(dogpile::ConfigureOptions options = {},
                                           dogpile::RegionOptions region_options = {}) {
  auto region = dogpile::make_region(std::move(region_options));
  region->configure("dogpile.cache.memory", std::move(options));
  return region;
}

int g_calls = 0;
int add(int a, int b) {
  ++g_calls;
  return a + b;
}

struct Repository {
  int lookups = 0;
  std::string find(int id) {
    ++lookups;
    return "user" + std::to_string(id);
  }
  std::string label(const std::string& prefix, int id) const { return prefix + std::to_string(id); }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(keys)

BOOST_AUTO_TEST_CASE(keys_are_byte_identical_to_pythons) {
  auto region = memory_region();
  auto fn = region->cache_on_arguments(
      "mymodule:fn", [](int, double, std::string, bool, std::optional<int>) { return 0; });
  BOOST_TEST(fn.key(1, 0.1, std::string("x y"), true, std::optional<int>()) ==
             "mymodule:fn|1 0.1 x y True None");
  BOOST_TEST(fn.key(-7, 1.0, std::string(""), false, std::optional<int>(3)) ==
             "mymodule:fn|-7 1.0  False 3");
  auto ns =
      region->cache_on_arguments("mymodule:fn", [](int a) { return a; }, {.namespace_name = "v2"});
  BOOST_TEST(ns.key(5) == "mymodule:fn|v2|5");
  auto none = region->cache_on_arguments("mymodule:none", [] { return 1; });
  BOOST_TEST(none.key() == "mymodule:none|");
  auto pointers = region->cache_on_arguments(
      "mymodule:p", [](std::nullptr_t, const char*, const char*) { return 0; });
  const char* null_text = nullptr;
  BOOST_TEST(pointers.key(nullptr, "text", null_text) == "mymodule:p|None text None");
}

BOOST_AUTO_TEST_CASE(floats_are_written_as_pythons_repr) {
  const std::pair<double, const char*> cases[] = {
      {0.1, "0.1"},
      {1.0, "1.0"},
      {1e-05, "1e-05"},
      {0.0001, "0.0001"},
      {1e16, "1e+16"},
      {1e15, "1000000000000000.0"},
      {-2.5, "-2.5"},
      {0.0, "0.0"},
      {-0.0, "-0.0"},
      {1.5e-07, "1.5e-07"},
      {123456.789, "123456.789"},
      {1e100, "1e+100"},
      {1.7976931348623157e308, "1.7976931348623157e+308"},
      {1795570724.65, "1795570724.65"},
      {12345678901234567.0, "1.2345678901234568e+16"},
  };
  for (const auto& [value, expected] : cases) {
    BOOST_TEST_INFO(expected);
    BOOST_TEST(dogpile::python_float_repr(value) == expected);
  }
}

BOOST_AUTO_TEST_CASE(multi_keys_are_one_per_argument) {
  BOOST_TEST((dogpile::function_multi_key_generator("m:f", std::nullopt, {"1", "2"}) ==
              std::vector<std::string>{"m:f|1", "m:f|2"}));
  BOOST_TEST((dogpile::function_multi_key_generator("m:f", "ns", {"a"}) ==
              std::vector<std::string>{"m:f|ns|a"}));
}

BOOST_AUTO_TEST_CASE(sha1_matches_pythons_hexdigest) {
  BOOST_TEST(dogpile::sha1_mangle_key("some_key") == "53def077a4264bd3183d4eb21b1f56f883e1b572");
  BOOST_TEST(dogpile::sha1_mangle_key("") == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

BOOST_AUTO_TEST_CASE(the_length_conditional_mangler_applies_from_the_length_on) {
  auto mangler = dogpile::length_conditional_mangler(5, dogpile::sha1_mangle_key);
  BOOST_TEST(mangler("abcd") == "abcd");
  BOOST_TEST(mangler("abcde") == dogpile::sha1_mangle_key("abcde"));
  // Characters, as Python's len(): "ééé" is 3 characters in 6 bytes.
  auto three = dogpile::length_conditional_mangler(4, dogpile::sha1_mangle_key);
  BOOST_TEST(three("\u00e9\u00e9\u00e9") == "\u00e9\u00e9\u00e9");
  BOOST_TEST(three("\u00e9\u00e9\u00e9\u00e9") ==
             dogpile::sha1_mangle_key("\u00e9\u00e9\u00e9\u00e9"));
}

BOOST_AUTO_TEST_CASE(a_key_mangler_is_selected_from_config) {
  auto region = dogpile::make_region();
  region->configure_from_config({{"backend", "dogpile.cache.memory"}, {"key_mangler", "sha1"}}, "");
  BOOST_TEST(region->mangle("some_key") == "53def077a4264bd3183d4eb21b1f56f883e1b572");
  region->set("some_key", 1);
  BOOST_TEST(region->actual_backend()->get("53def077a4264bd3183d4eb21b1f56f883e1b572") != nullptr);

  auto conditional = dogpile::make_region();
  conditional->configure_from_config(
      {{"backend", "dogpile.cache.memory"}, {"key_mangler", "sha1:10"}}, "");
  BOOST_TEST(conditional->mangle("short") == "short");
  BOOST_TEST(conditional->mangle("a-longer-key") == dogpile::sha1_mangle_key("a-longer-key"));

  auto bad = dogpile::make_region();
  try {
    bad->configure_from_config(
        {{"cache.x.backend", "dogpile.cache.memory"}, {"cache.x.key_mangler", "md5"}}, "cache.x.");
    BOOST_FAIL("expected ValidationError");
  } catch (const dogpile::ValidationError& e) {
    BOOST_TEST(std::string(e.what()).find("cache.x.key_mangler") != std::string::npos);
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(cache_on_arguments)

BOOST_AUTO_TEST_CASE(results_are_cached_per_argument_tuple) {
  auto region = memory_region({.expiration_time = 60});
  auto cached = region->cache_on_arguments("test:add", &add);
  g_calls = 0;
  BOOST_TEST(cached(1, 2) == 3);
  BOOST_TEST(cached(1, 2) == 3);
  BOOST_TEST(cached(2, 1) == 3);
  BOOST_TEST(g_calls == 2);
  BOOST_TEST(*region->get<int>("test:add|1 2") == 3);
  BOOST_TEST(cached.original()(5, 5) == 10);
}

BOOST_AUTO_TEST_CASE(results_are_recomputed_after_expiry) {
  auto clock = std::make_shared<dogpile::ManualClock>();
  auto region = memory_region({.expiration_time = 10}, {.clock = clock});
  int calls = 0;
  auto cached = region->cache_on_arguments("test:count", [&calls](int x) { return x + ++calls; });
  BOOST_TEST(cached(1) == 2);
  clock->advance(9.9);
  BOOST_TEST(cached(1) == 2);
  clock->advance(0.2);
  BOOST_TEST(cached(1) == 3);
}

BOOST_AUTO_TEST_CASE(the_functions_expiration_overrides_the_regions) {
  // The region's expiry is short and the function's long: only the function's keeps the value.
  auto clock = std::make_shared<dogpile::ManualClock>();
  auto region = memory_region({.expiration_time = 1}, {.clock = clock});
  int calls = 0;
  auto long_lived = region->cache_on_arguments("test:long", [&calls] { return ++calls; },
                                               {.expiration_time = 60});
  BOOST_TEST(long_lived() == 1);
  clock->advance(30);
  BOOST_TEST(long_lived() == 1);
  clock->advance(31);
  BOOST_TEST(long_lived() == 2);
}

BOOST_AUTO_TEST_CASE(expiration_time_fn_is_asked_on_every_call) {
  // The region never expires values: only the function's expiration can.
  auto clock = std::make_shared<dogpile::ManualClock>();
  auto region = memory_region({}, {.clock = clock});
  double expiration = 60;
  int dynamic_calls = 0;
  auto dynamic =
      region->cache_on_arguments("test:dynamic", [&dynamic_calls] { return ++dynamic_calls; },
                                 {.expiration_time_fn = [&expiration] { return expiration; }});
  BOOST_TEST(dynamic() == 1);
  clock->advance(30);
  BOOST_TEST(dynamic() == 1);
  expiration = 20;  // the value is 30 s old now
  BOOST_TEST(dynamic() == 2);
  BOOST_TEST(dynamic() == 2);
  expiration = 0;  // 0 recomputes every time, however quick
  BOOST_TEST(dynamic() == 3);
  BOOST_TEST(dynamic() == 4);
}

BOOST_AUTO_TEST_CASE(expirations_may_be_durations) {
  auto clock = std::make_shared<dogpile::ManualClock>();
  auto region = memory_region({}, {.clock = clock});
  int timed_calls = 0;
  auto timed = region->cache_on_arguments("test:timed", [&timed_calls] { return ++timed_calls; },
                                          {.expiration_time = std::chrono::minutes(1)});
  BOOST_TEST(timed() == 1);
  clock->advance(59);
  BOOST_TEST(timed() == 1);
  clock->advance(2);
  BOOST_TEST(timed() == 2);

  std::chrono::milliseconds dynamic_expiration = 50ms;
  int short_calls = 0;
  auto short_lived =
      region->cache_on_arguments("test:short", [&short_calls] { return ++short_calls; },
                                 {.expiration_time_fn = [&] { return dynamic_expiration; }});
  BOOST_TEST(short_lived() == 1);
  clock->advance(0.04);
  BOOST_TEST(short_lived() == 1);
  clock->advance(0.02);
  BOOST_TEST(short_lived() == 2);
}

BOOST_AUTO_TEST_CASE(invalidate_set_get_and_refresh) {
  auto region = memory_region();
  int calls = 0;
  auto cached = region->cache_on_arguments("test:f", [&calls](int x) { return x * 10 + ++calls; });
  BOOST_TEST(cached.get(1) == nullptr);  // a miss, without calling the function
  BOOST_TEST(calls == 0);
  BOOST_TEST(cached(1) == 11);
  BOOST_TEST(*cached.get(1) == 11);
  cached.invalidate(1);
  BOOST_TEST(cached.get(1) == nullptr);
  BOOST_TEST(cached(1) == 12);
  cached.set(99, 1);
  BOOST_TEST(cached(1) == 99);
  BOOST_TEST(cached.refresh(1) == 13);
  BOOST_TEST(cached(1) == 13);
  BOOST_TEST(calls == 3);
}

BOOST_AUTO_TEST_CASE(should_cache_fn_rejects_some_results) {
  auto region = memory_region();
  int calls = 0;
  auto cached =
      region->cache_on_arguments("test:maybe",
                                 [&calls](int x) {
                                   ++calls;
                                   return x;
                                 },
                                 {.should_cache_fn = [](const int& v) { return v >= 0; }});
  BOOST_TEST(cached(-1) == -1);
  BOOST_TEST(cached(-1) == -1);
  BOOST_TEST(calls == 2);
  cached(5);
  cached(5);
  BOOST_TEST(calls == 3);
}

BOOST_AUTO_TEST_CASE(key_generators_per_function_and_per_region) {
  auto region = memory_region();
  auto custom = region->cache_on_arguments(
      "test:custom", [](int x) { return x; },
      {.key_generator = [](std::string_view name, const std::optional<std::string>&,
                           const std::vector<std::string>& args) {
        return "custom:" + std::string(name) + ":" + args.at(0);
      }});
  custom(4);
  BOOST_TEST(*region->get<int>("custom:test:custom:4") == 4);

  auto upper = memory_region(
      {}, {.function_key_generator = [](std::string_view name, const std::optional<std::string>&,
                                        const std::vector<std::string>& args) {
        return std::string(name) + "/" + std::to_string(args.size());
      }});
  auto fn = upper->cache_on_arguments("f", [](int a, int b) { return a + b; });
  BOOST_TEST(fn.key(1, 2) == "f/2");
}

BOOST_AUTO_TEST_CASE(to_str_converts_arguments_for_the_key) {
  auto region = memory_region();
  auto fn = region->cache_on_arguments(
      "test:to_str", [](int x) { return x; }, {},
      [](const auto& value) { return "<" + std::to_string(value) + ">"; });
  BOOST_TEST(fn.key(3) == "test:to_str|<3>");
}

BOOST_AUTO_TEST_CASE(member_functions_leave_the_object_out_of_the_key) {
  auto region = memory_region();
  auto find = region->cache_on_arguments("test:Repository.find", &Repository::find);
  Repository first;
  Repository second;
  BOOST_TEST(find(first, 7) == "user7");
  BOOST_TEST(find(second, 7) == "user7");  // same key: served from the cache
  BOOST_TEST(first.lookups == 1);
  BOOST_TEST(second.lookups == 0);
  BOOST_TEST(find.key(first, 7) == "test:Repository.find|7");
  auto label = region->cache_on_arguments("test:Repository.label", &Repository::label);
  const Repository constant;
  BOOST_TEST(label(constant, std::string("id-"), 3) == "id-3");
  find.invalidate(first, 7);
  BOOST_TEST(find.get(first, 7) == nullptr);
}

BOOST_AUTO_TEST_CASE(a_function_object_with_state_is_called_as_itself) {
  auto region = memory_region();
  auto counter =
      region->cache_on_arguments("test:counter", [n = 0](int step) mutable { return n += step; });
  BOOST_TEST(counter(5) == 5);
  BOOST_TEST(counter(5) == 5);  // cached
  BOOST_TEST(counter(1) == 6);  // the same object, its state kept
  BOOST_TEST(counter.refresh(1) == 7);
}

BOOST_AUTO_TEST_CASE(a_cached_function_works_with_an_async_runner) {
  dogpile::ThreadPoolRunner pool(1);
  auto clock = std::make_shared<dogpile::ManualClock>();
  auto region = memory_region({.expiration_time = 10},
                              {.async_creation_runner = pool.runner(), .clock = clock});
  std::atomic<int> calls{0};
  auto cached = region->cache_on_arguments(
      "test:async", [&calls](std::string s) { return s + std::to_string(++calls); });
  {
    std::string argument = "a";
    BOOST_TEST(cached(argument) == "a1");
  }
  clock->advance(11);
  // The argument is gone when the background regeneration runs; its copy is used.
  BOOST_TEST(cached(std::string("a")) == "a1");
  pool.shutdown();
  BOOST_TEST(cached(std::string("a")) == "a2");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(cache_multi_on_arguments)

BOOST_AUTO_TEST_CASE(only_missing_arguments_are_created_in_sorted_key_order) {
  auto region = memory_region();
  std::vector<std::vector<int>> calls;
  auto squares =
      region->cache_multi_on_arguments("test:squares", [&calls](const std::vector<int>& xs) {
        calls.push_back(xs);
        std::vector<int> out;
        for (int x : xs) out.push_back(x * x);
        return out;
      });
  BOOST_TEST((squares({3, 1}) == std::vector<int>{9, 1}));
  BOOST_TEST((squares({10, 3, 2, 1, 2}) == std::vector<int>{100, 9, 4, 1, 4}));
  BOOST_TEST_REQUIRE(calls.size() == 2u);
  BOOST_TEST((calls[0] == std::vector<int>{1, 3}));
  // Sorted by cache key: "test:squares|10" < "test:squares|2".
  BOOST_TEST((calls[1] == std::vector<int>{10, 2}));
  BOOST_TEST(*region->get<int>("test:squares|10") == 100);
}

BOOST_AUTO_TEST_CASE(asdict_leaves_out_what_the_function_leaves_out) {
  auto region = memory_region();
  int calls = 0;
  auto lookup = region->cache_multi_on_arguments("test:lookup",
                                                 [&calls](const std::vector<std::string>& names) {
                                                   ++calls;
                                                   std::map<std::string, int> found;
                                                   for (const auto& n : names) {
                                                     if (n != "ghost")
                                                       found[n] = static_cast<int>(n.size());
                                                   }
                                                   return found;
                                                 });
  auto result = lookup({"ann", "ghost", "bob"});
  BOOST_TEST(result.size() == 2u);
  BOOST_TEST(result.at("ann") == 3);
  BOOST_TEST(result.count("ghost") == 0u);
  BOOST_TEST(region->get<int>("test:lookup|ghost") == nullptr);  // not cached
  lookup({"ann", "bob"});
  BOOST_TEST(calls == 1);
  lookup({"ghost"});
  BOOST_TEST(calls == 2);  // asked again: it was never cached
}

BOOST_AUTO_TEST_CASE(should_cache_fn_rejects_some_values) {
  auto region = memory_region();
  auto fn =
      region->cache_multi_on_arguments("test:signs", [](const std::vector<int>& xs) { return xs; },
                                       {.should_cache_fn = [](const int& v) { return v > 0; }});
  BOOST_TEST((fn({-1, 2}) == std::vector<int>{-1, 2}));
  auto cached = fn.get({-1, 2});
  BOOST_TEST(cached[0] == nullptr);
  BOOST_TEST(*cached[1] == 2);
}

BOOST_AUTO_TEST_CASE(asdict_with_should_cache_fn) {
  auto region = memory_region();
  auto fn =
      region->cache_multi_on_arguments("test:dict",
                                       [](const std::vector<int>& xs) {
                                         std::map<int, int> out;
                                         for (int x : xs) {
                                           if (x != 0) out[x] = -x;
                                         }
                                         return out;
                                       },
                                       {.should_cache_fn = [](const int& v) { return v < -1; }});
  const auto result = fn({0, 1, 2});
  BOOST_TEST((result == std::map<int, int>{{1, -1}, {2, -2}}));
  const auto cached = fn.get({0, 1, 2});
  BOOST_TEST(cached[0] == nullptr);  // left out by the function
  BOOST_TEST(cached[1] == nullptr);  // refused by should_cache_fn
  BOOST_TEST(*cached[2] == -2);
}

BOOST_AUTO_TEST_CASE(multi_key_generators_per_function_and_per_region) {
  auto upper = [](std::string_view name, const std::optional<std::string>&,
                  const std::vector<std::string>& args) {
    std::vector<std::string> keys;
    for (const auto& a : args) keys.push_back(std::string(name) + "#" + a);
    return keys;
  };
  auto identity = [](const std::vector<int>& xs) { return xs; };
  auto region = memory_region({}, {.function_multi_key_generator = upper});
  auto by_region = region->cache_multi_on_arguments("r", identity);
  by_region({1});
  BOOST_TEST(*region->get<int>("r#1") == 1);

  auto plain = memory_region();
  auto by_function = plain->cache_multi_on_arguments("f", identity, {.multi_key_generator = upper});
  by_function({2});
  BOOST_TEST(*plain->get<int>("f#2") == 2);

  auto short_of_keys = plain->cache_multi_on_arguments(
      "g", identity,
      {.multi_key_generator = [](std::string_view, const std::optional<std::string>&,
                                 const std::vector<std::string>&) {
        return std::vector<std::string>{"only-one"};
      }});
  try {
    short_of_keys({1, 2});
    BOOST_FAIL("expected ValidationError");
  } catch (const dogpile::ValidationError& e) {
    BOOST_TEST(std::string(e.what()).find("cached function 'g' returned 1 keys for 2") !=
               std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(set_invalidate_refresh_and_get) {
  auto region = memory_region();
  int calls = 0;
  auto fn = region->cache_multi_on_arguments("test:multi",
                                             [&calls](const std::vector<int>& xs) {
                                               ++calls;
                                               std::vector<int> out;
                                               for (int x : xs) out.push_back(x + 100 * calls);
                                               return out;
                                             },
                                             {.namespace_name = "ns"});
  BOOST_TEST((fn.keys({1}) == std::vector<std::string>{"test:multi|ns|1"}));
  fn.set({{1, 7}, {2, 8}});
  BOOST_TEST((fn({1, 2}) == std::vector<int>{7, 8}));
  BOOST_TEST(calls == 0);
  fn.invalidate({1});
  BOOST_TEST(fn.get({1, 2})[0] == nullptr);
  BOOST_TEST((fn({1, 2}) == std::vector<int>{101, 8}));
  BOOST_TEST((fn.refresh({1, 2}) == std::vector<int>{201, 202}));
  BOOST_TEST((fn({2, 1}) == std::vector<int>{202, 201}));
}

BOOST_AUTO_TEST_SUITE_END()
