// What an application sees through a region on the backend: the typed-read rule (README
// "Values"), keys of every shape, expiration, invalidation, get_or_create and undecodable
// bytes.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <set>
#include <thread>

#include "conformance.hpp"

namespace dogpile::conformance {

namespace {

using nlohmann::json;

// What reading the key back as T gives: "=<value>" (strings and Bytes as they are, other
// values as JSON), "ValueTypeError" or "miss".
template <class T>
std::string read_as(CacheRegion& region, const std::string& key) {
  try {
    auto value = region.get<T>(key);
    if (!value) return "miss";
    if constexpr (std::is_same_v<T, Bytes>) {
      return "=" + value->data;
    } else if constexpr (std::is_same_v<T, std::string>) {
      return "=" + *value;
    } else {
      return "=" + python_json::dumps(json(*value));
    }
  } catch (const ValueTypeError&) {
    return "ValueTypeError";
  }
}

// Bytes outside printable ASCII as \xNN, for messages.
std::string printable(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
      out += escaped;
    }
  }
  return out;
}

// One row of the typed-read table: what storing a value and reading it as T gives.
struct TypedRead {
  std::string what;
  std::string expected;
  std::function<std::string(CacheRegion&, const std::string& key)> read;
};

template <class T, class V>
TypedRead typed_read(std::string what, V value, std::string expected) {
  return {std::move(what), std::move(expected),
          [value](CacheRegion& region, const std::string& key) {
            region.set(key, value);
            return read_as<T>(region, key);
          }};
}

// The README's table of typed reads, row by row.
void typed_reads_follow_the_table(Fixture& f) {
  f.require_storage();
  const double inf = std::numeric_limits<double>::infinity();
  const std::string binary("\xff\xfe\0", 3);
  const TypedRead table[] = {
      typed_read<int>("int 42 as int", 42, "=42"),
      typed_read<long long>("int 42 as long long", 42, "=42"),
      typed_read<unsigned>("int -1 as unsigned", -1, "ValueTypeError"),
      typed_read<std::int8_t>("int 300 as int8_t", 300, "ValueTypeError"),
      typed_read<std::int64_t>("uint64 2^63 as int64_t", std::uint64_t(1) << 63, "ValueTypeError"),
      typed_read<double>("int 42 as double", 42, "=42.0"),
      typed_read<double>("int64 2^53+1 as double", (std::int64_t(1) << 53) + 1, "ValueTypeError"),
      typed_read<int>("double 1.5 as int", 1.5, "ValueTypeError"),
      typed_read<int>("double 2.0 as int", 2.0, "ValueTypeError"),
      typed_read<float>("double 0.1 as float", 0.1, "ValueTypeError"),
      typed_read<double>("float 0.5 as double", 0.5f, "=0.5"),
      typed_read<double>("NaN as double", std::nan(""), "=NaN"),
      typed_read<double>("-Infinity as double", -inf, "=-Infinity"),
      typed_read<int>("bool true as int", true, "ValueTypeError"),
      typed_read<bool>("int 1 as bool", 1, "ValueTypeError"),
      typed_read<bool>("bool false as bool", false, "=false"),
      typed_read<std::string>("std::string as std::string", std::string("h\xc3\xa9llo"),
                              "=h\xc3\xa9llo"),
      typed_read<std::string>("a string literal as std::string", "literal", "=literal"),
      typed_read<std::string>("int 42 as std::string", 42, "ValueTypeError"),
      typed_read<int>("std::string \"42\" as int", std::string("42"), "ValueTypeError"),
      typed_read<json>("std::string as nlohmann::json", std::string("x"), "=\"x\""),
      typed_read<std::string>("non-UTF-8 std::string as std::string", binary, "=" + binary),
      typed_read<int>("non-UTF-8 std::string as int", binary, "miss"),
      typed_read<Bytes>("Bytes as Bytes", Bytes(binary), "=" + binary),
      typed_read<Bytes>("int 42 as Bytes", 42, "=42"),
      typed_read<Bytes>("std::string as Bytes", std::string("x"), "=\"x\""),
      typed_read<int>("Bytes \"7\" as int", Bytes("7"), "=7"),
      typed_read<int>("Bytes \"seven\" as int", Bytes("seven"), "miss"),
      typed_read<std::vector<int>>("vector<int> as vector<int>", std::vector<int>{1, 2}, "=[1,2]"),
      typed_read<std::vector<double>>("vector<int> as vector<double>", std::vector<int>{1},
                                      "=[1.0]"),
      typed_read<std::vector<int>>("vector<double> as vector<int>", std::vector<double>{1.5},
                                   "ValueTypeError"),
      typed_read<std::map<std::string, int>>("json object as map<string, int>",
                                             json{{"a", 1}, {"b", 2}}, "={\"a\":1,\"b\":2}"),
      typed_read<std::map<std::string, int>>("json object with a string as map<string, int>",
                                             json{{"a", "1"}}, "ValueTypeError"),
      typed_read<json>("json null as nlohmann::json", json(nullptr), "=null"),
  };
  std::string failures;
  for (const auto& row : table) {
    const std::string got = row.read(f.region(), f.key(row.what));
    if (got != row.expected) {
      failures +=
          "; " + row.what + ": expected " + printable(row.expected) + ", got " + printable(got);
    }
  }
  expect(failures.empty(), "rows of the table not followed" + failures);
}

void keys_of_every_shape_are_kept_apart(Fixture& f) {
  f.require_storage();
  const std::string long_key(300, 'k');
  const std::vector<std::string> names = {
      "with space",      "tab\tnew\nline", "unicode-\xe6\x97\xa5\xe6\x9c\xac-\xd0\xba\xd0\xbb",
      long_key + "a",    long_key + "b",   std::string(260, 'x'),
      "pipe|and:colons",
  };
  std::vector<std::string> keys;
  for (const auto& name : names) keys.push_back(f.key(name));
  for (std::size_t i = 0; i < keys.size(); ++i) f.region().set(keys[i], static_cast<int>(i));
  for (std::size_t i = 0; i < keys.size(); ++i) {
    auto value = f.region().get<int>(keys[i]);
    expect(value && *value == static_cast<int>(i),
           "key #" + std::to_string(i) +
               " (spaces, control characters, unicode, 250+ characters) reads back its own "
               "value");
  }
  const auto values = f.region().get_multi<int>(keys);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    expect(values[i] && *values[i] == static_cast<int>(i), "get_multi reads them back too");
  }
  f.region().remove(keys[0]);
  expect(!f.region().get<int>(keys[0]) && f.region().get<int>(keys[1]),
         "removing one leaves the others");
}

void expiration_is_judged_on_the_creation_time(Fixture& f) {
  f.require_storage();
  auto region = f.another_region({.expiration_time = 60});
  const std::string old_key = f.key("old"), fresh_key = f.key("fresh");
  region->set_value(old_key, dogpile::make_value(1, now_seconds() - 120));
  region->set(fresh_key, 2);
  expect(region->get<int>(old_key) == nullptr, "a value older than the expiration time misses");
  expect(region->get<int>(old_key, {.ignore_expiration = true}) != nullptr,
         "ignore_expiration returns it");
  expect(region->get<int>(old_key, {.expiration_time = -1}) != nullptr,
         "an expiration time of -1 for the call returns it");
  expect(region->get<int>(old_key, {.expiration_time = 300}) != nullptr,
         "a longer expiration time for the call returns it");
  expect(*region->get<int>(fresh_key) == 2, "a fresh value is returned");
  int calls = 0;
  expect(*region->get_or_create(old_key, [&] { return 10 + ++calls; }) == 11 && calls == 1,
         "get_or_create regenerates an expired value");
  expect(*region->get<int>(old_key) == 11, "and stores the new one");
  auto meta = region->get_value_metadata(old_key);
  expect(meta && meta->age() >= 0 && meta->age() < 60, "its creation time is now");
}

void invalidation_applies_to_stored_values(Fixture& f) {
  f.require_storage();
  auto region = f.another_region({.expiration_time = 60});
  const std::string k = f.key("k");
  region->set_value(k, dogpile::make_value(1, now_seconds() - 5));
  region->invalidate(false);
  expect(region->get<int>(k) == nullptr, "after a soft invalidation get misses");
  int calls = 0;
  expect(*region->get_or_create(k, [&] { return ++calls + 1; }) == 2 && calls == 1,
         "get_or_create regenerates a soft-invalidated value");
  region->set_value(k, dogpile::make_value(3, now_seconds() - 5));
  region->invalidate(true);
  expect(region->get<int>(k) == nullptr, "after a hard invalidation get misses");
  expect(*region->get_or_create(k, [] { return 4; }) == 4,
         "get_or_create creates a hard-invalidated value");
  expect(*region->get<int>(k) == 4, "a value created after the invalidation is served");
}

void get_or_create_creates_once_and_multi_is_aligned(Fixture& f) {
  f.require_storage();
  auto& region = f.region();
  const std::string a = f.key("a"), b = f.key("b"), c = f.key("c");
  int calls = 0;
  auto create = [&] { return std::string("made-") + std::to_string(++calls); };
  expect(*region.get_or_create(a, create) == "made-1", "a miss calls the creator");
  expect(*region.get_or_create(a, create) == "made-1" && calls == 1, "a hit does not");
  region.set(b, std::string("stored"));
  Keys asked;
  auto values = region.get_or_create_multi({c, b, a, c}, [&](const Keys& keys) {
    asked = keys;
    return std::vector<std::string>(keys.size(), "multi");
  });
  expect(asked == Keys{c}, "get_or_create_multi asks its creator for the missing keys only");
  expect(values.size() == 4 && *values[0] == "multi" && *values[1] == "stored" &&
             *values[2] == "made-1" && *values[3] == "multi",
         "its result is aligned with the keys, duplicates included");
  expect(*region.get<std::string>(c) == "multi", "and the created values are stored");
}

void undecodable_bytes_are_a_miss(Fixture& f) {
  f.require_storage();
  const std::string k = f.key("garbage");
  const std::string stored_key = f.backend_key("garbage");
  f.backend().set_serialized(stored_key, "\x80\x04\x95not dogpile's format");
  expect(f.region().get<int>(k) == nullptr, "get of bytes not in the wire format misses");
  expect(*f.region().get_or_create(k, [] { return 5; }) == 5,
         "get_or_create replaces them with a created value");
  expect(*f.region().get<int>(k) == 5, "which is then read");
  auto strict = f.another_region({.raise_on_undecodable = true});
  strict->actual_backend()->set_serialized(stored_key, "garbage");
  try {
    strict->get<int>(k);
    throw Failed{"with raise_on_undecodable they throw CantDeserialize"};
  } catch (const CantDeserialize&) {
  }
}

void a_herd_on_a_cold_key_creates_once(Fixture& f) {
  f.require_storage();
  if (!f.capabilities().mutexes_exclude) {
    throw Skipped{"the backend's mutexes do not exclude (capabilities().mutexes_exclude)"};
  }
  auto& region = f.region();
  const std::string k = f.key("cold");
  constexpr int kThreads = 8;
  // A backend that gives mutexes must hold its own lock while the creator runs (the region's
  // in-process lock alone would also give one call here, but not across processes).
  auto backend_lock = f.backend().get_mutex(f.backend_key("cold"));
  std::atomic<int> arrived{0}, calls{0}, wrong{0}, unheld{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      try {
        ++arrived;
        auto value = region.get_or_create(k, [&] {
          ++calls;
          if (backend_lock && !backend_lock->locked()) ++unheld;
          // Hold the lock until every thread has asked, or 10 s have passed.
          const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
          while (arrived.load() < kThreads && std::chrono::steady_clock::now() < until) {
            std::this_thread::yield();
          }
          return 42;
        });
        if (!value || *value != 42) ++wrong;
      } catch (const std::exception&) {
        ++wrong;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  expect(wrong == 0, std::to_string(wrong.load()) + " of 8 threads got no value or a wrong one");
  expect(calls == 1, "8 threads on a cold key called the creator " + std::to_string(calls.load()) +
                         " times, not once");
  expect(unheld == 0, "the creator ran without the lock get_mutex gives being held");
}

}  // namespace

std::vector<Check> region_checks() {
  return {
      {"typed reads: the README's table of stored type x requested type",
       typed_reads_follow_the_table},
      {"keys: spaces, control characters, unicode, 250+ characters",
       keys_of_every_shape_are_kept_apart},
      {"region: expiration", expiration_is_judged_on_the_creation_time},
      {"region: soft and hard invalidation", invalidation_applies_to_stored_values},
      {"region: get_or_create and get_or_create_multi",
       get_or_create_creates_once_and_multi_is_aligned},
      {"region: undecodable bytes are a miss", undecodable_bytes_are_a_miss},
      {"region: 8 threads on a cold key create once", a_herd_on_a_cold_key_creates_once},
  };
}

}  // namespace dogpile::conformance
