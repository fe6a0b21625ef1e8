// The memory backends' map (plugins/backends/memory/concurrent_map.hpp) on its own, and the
// bounded memory backends through regions: max_size, max_bytes, W-TinyLFU's admission,
// evictions in the stats, readers and writers on many threads.
#define BOOST_TEST_MODULE memory
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <boost/test/unit_test.hpp>
#include <dogpile/dogpile.hpp>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "../../plugins/backends/memory/concurrent_map.hpp"
#include "helpers.hpp"

namespace {

using dogpile::memory::ConcurrentMap;
using dogpile::memory::Cost;
using dogpile::memory::kUnlimited;

using Map = ConcurrentMap<std::string>;
std::uint64_t length(const std::string& value) { return value.size(); }

Map unbounded(std::size_t shards = 4) { return Map(shards, {kUnlimited, kUnlimited}, &length); }

std::string key(int i) { return "key:" + std::to_string(i); }

// A type without a codec whose size the application knows.
struct Image {
  std::vector<int> pixels;
  std::string name;
};

}  // namespace

template <>
struct dogpile::SizeOf<Image> {
  static std::size_t size(const Image& image) { return image.pixels.size() * 4; }
};

BOOST_AUTO_TEST_SUITE(concurrent_map)

BOOST_AUTO_TEST_CASE(stores_finds_replaces_and_erases_through_many_rebuilds) {
  Map map(4, {kUnlimited, kUnlimited}, &length);
  for (int i = 0; i < 5000; ++i) map.insert_or_assign(key(i), "v" + std::to_string(i));
  BOOST_TEST(map.size() == 5000u);
  std::string out;
  for (int i = 0; i < 5000; ++i) {
    BOOST_TEST_REQUIRE(map.find(key(i), out));
    BOOST_TEST(out == "v" + std::to_string(i));
  }
  for (int i = 0; i < 5000; i += 2) map.erase(key(i));
  for (int i = 0; i < 5000; i += 4) map.insert_or_assign(key(i), "again");
  for (int i = 1; i < 5000; i += 2) map.insert_or_assign(key(i), "odd");
  BOOST_TEST(map.size() == 2500u + 1250u);
  for (int i = 0; i < 5000; ++i) {
    const bool found = map.find(key(i), out);
    if (i % 4 == 0) {
      BOOST_TEST((found && out == "again"));
    } else if (i % 2 == 0) {
      BOOST_TEST(!found);
    } else {
      BOOST_TEST((found && out == "odd"));
    }
  }
  map.erase("absent");  // not an error
  BOOST_TEST(!map.find("", out));
  map.insert_or_assign("", "empty key");
  BOOST_TEST((map.find("", out) && out == "empty key"));
  BOOST_TEST(map.evictions() == 0u);
}

BOOST_AUTO_TEST_CASE(keys_that_differ_only_past_their_hash_tag_are_kept_apart) {
  // Binary keys and keys that share prefixes: the tag is a filter, the key decides.
  Map map = unbounded(1);
  const std::string zero("\0a", 2), other("\0b", 2);
  map.insert_or_assign(zero, "zero");
  map.insert_or_assign(other, "other");
  std::string out;
  BOOST_TEST((map.find(zero, out) && out == "zero"));
  BOOST_TEST((map.find(other, out) && out == "other"));
  BOOST_TEST(!map.find(std::string_view("\0", 1), out));
}

BOOST_AUTO_TEST_CASE(keys_of_every_length_differing_at_any_byte_are_told_apart) {
  // Keys up to 16 bytes are compared in word loads from both ends: a difference anywhere,
  // at every length, must still tell them apart.
  Map map = unbounded(1);
  std::vector<std::string> keys;
  for (std::size_t length = 0; length <= 33; ++length) {
    const std::string base(length, 'x');
    keys.push_back(base);
    for (std::size_t i = 0; i < length; ++i) {
      std::string other = base;
      other[i] = 'y';
      keys.push_back(other);
    }
  }
  for (const auto& k : keys) map.insert_or_assign(k, "=" + k);
  std::string out;
  for (const auto& k : keys) {
    BOOST_TEST_REQUIRE(map.find(k, out));
    BOOST_TEST(out == "=" + k);
  }
  BOOST_TEST(map.size() == keys.size());
}

BOOST_AUTO_TEST_CASE(max_size_is_never_exceeded_and_every_eviction_is_counted) {
  Map map(8, {100, kUnlimited}, &length);
  for (int i = 0; i < 10'000; ++i) {
    map.insert_or_assign(key(i), "v");
    BOOST_TEST_REQUIRE(map.size() <= 100u);
  }
  BOOST_TEST(map.size() == 100u);
  BOOST_TEST(map.evictions() == 10'000u - 100u);
  BOOST_TEST(map.policy_size().entries == 100u);
}

BOOST_AUTO_TEST_CASE(max_bytes_counts_payloads_and_drops_what_cannot_fit) {
  Map map(4, {kUnlimited, 1000}, &length);
  for (int i = 0; i < 100; ++i) map.insert_or_assign(key(i), std::string(100, 'x'));
  BOOST_TEST(map.policy_size().bytes <= 1000u);
  BOOST_TEST(map.size() <= 10u);
  BOOST_TEST(map.size() >= 8u);
  // A value larger than the whole bound is not kept.
  const std::uint64_t before = map.evictions();
  map.insert_or_assign("huge", std::string(1001, 'h'));
  std::string out;
  BOOST_TEST(!map.find("huge", out));
  BOOST_TEST(map.evictions() == before + 1);
  // A value that grows in place pushes others out.
  map.insert_or_assign("grow", std::string(10, 'g'));
  map.insert_or_assign("grow", std::string(900, 'g'));
  BOOST_TEST(map.policy_size().bytes <= 1000u);
  BOOST_TEST(map.size() <= 2u);
}

BOOST_AUTO_TEST_CASE(frequently_read_keys_survive_a_scan) {
  // W-TinyLFU's point: a scan of keys read once does not push out what is read often, as it
  // would in an LRU of the same size.
  Map map(8, {500, kUnlimited}, &length);
  std::string out;
  for (int round = 0; round < 30; ++round) {
    for (int i = 0; i < 200; ++i) {
      if (!map.find(key(i), out)) map.insert_or_assign(key(i), "hot");
    }
  }
  for (int i = 0; i < 20'000; ++i) map.insert_or_assign("scan:" + std::to_string(i), "cold");
  int kept = 0;
  for (int i = 0; i < 200; ++i) kept += map.find(key(i), out) ? 1 : 0;
  BOOST_TEST(kept >= 190, kept << " of 200 hot keys kept");
  BOOST_TEST(map.size() <= 500u);
}

BOOST_AUTO_TEST_CASE(replaced_and_removed_values_are_freed) {
  // Epoch reclamation frees what writers retire, late by at most a bag per thread.
  static std::atomic<int> alive{0};
  struct Counted {
    Counted() { ++alive; }
    Counted(const Counted&) { ++alive; }
    ~Counted() { --alive; }
  };
  using Value = std::shared_ptr<const Counted>;
  {
    ConcurrentMap<Value> map(4, {kUnlimited, kUnlimited}, nullptr);
    for (int i = 0; i < 10'000; ++i) map.insert_or_assign(key(i % 10), std::make_shared<Counted>());
    BOOST_TEST(alive.load() <= 10 + 64 + 64);
    for (int i = 0; i < 10; ++i) map.erase(key(i));
    for (int i = 0; i < 200; ++i) map.insert_or_assign("k", std::make_shared<Counted>());
    BOOST_TEST(alive.load() <= 1 + 64 + 64);
  }
  BOOST_TEST(alive.load() <= 64 + 64);  // the map's own are freed with it; the rest wait in the bag
}

BOOST_AUTO_TEST_CASE(a_child_of_fork_is_not_held_back_by_a_reader_of_its_parent) {
  // A thread reading when its process forks does not exist in the child: the child must free
  // what it retires all the same.
  static std::atomic<int> alive{0};
  struct Counted {
    Counted() { ++alive; }
    ~Counted() { --alive; }
  };
  using Value = std::shared_ptr<const Counted>;
  ConcurrentMap<Value> map(4, {kUnlimited, kUnlimited}, nullptr);
  map.insert_or_assign("k", std::make_shared<Counted>());
  std::latch reading(1), done(1);
  std::thread reader([&] {
    map.visit("k", [&](const Value&) {
      reading.count_down();
      done.wait();
    });
  });
  reading.wait();
  const pid_t child = ::fork();
  if (child == 0) {
    for (int i = 0; i < 10'000; ++i) map.insert_or_assign("k", std::make_shared<Counted>());
    ::_exit(alive.load() <= 200 ? 0 : 1);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  done.count_down();
  reader.join();
  BOOST_TEST(WIFEXITED(status));
  BOOST_TEST(WEXITSTATUS(status) == 0, "the child kept " << WEXITSTATUS(status));
}

BOOST_AUTO_TEST_CASE(readers_and_writers_on_many_threads_see_only_values_written_for_their_key) {
  // Run under TSan as well. Each value names its key, so a torn or misplaced read shows.
  for (const Cost limit :
       {Cost{kUnlimited, kUnlimited}, Cost{64, kUnlimited}, Cost{kUnlimited, 4000}}) {
    Map map(4, limit, &length);
    constexpr int kThreads = 4, kKeys = 256, kRounds = 20'000;
    std::atomic<int> wrong{0};
    std::barrier start(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        std::uint64_t state = 0x9E3779B97F4A7C15ULL * (t + 1);
        std::string out;
        for (int i = 0; i < kRounds; ++i) {
          state ^= state << 13;
          state ^= state >> 7;
          state ^= state << 17;
          const int k = static_cast<int>(state % kKeys);
          switch (state >> 62) {
            case 0:
              map.insert_or_assign(key(k), key(k) + std::string(state % 40, '.'));
              break;
            case 1:
              map.erase(key(k));
              break;
            case 2:
              if (map.find(key(k), out) && out.compare(0, key(k).size(), key(k)) != 0) ++wrong;
              break;
            default:  // read in place
              map.visit(key(k), [&](const std::string& value) {
                if (value.compare(0, key(k).size(), key(k)) != 0) ++wrong;
              });
          }
        }
      });
    }
    for (auto& thread : threads) thread.join();
    BOOST_TEST(wrong.load() == 0);
    if (limit.entries != kUnlimited) BOOST_TEST(map.size() <= limit.entries);
    if (limit.bytes != kUnlimited) BOOST_TEST(map.policy_size().bytes <= limit.bytes);
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(bounded_backend)

BOOST_AUTO_TEST_CASE(max_size_bounds_a_region_and_evictions_reach_the_stats) {
  auto region = dogpile::make_region("bounded");
  region->configure("dogpile.cache.memory", {.arguments = {{"max_size", 50}},
                                             .wrap = {dogpile::ProxySpec{"dogpile.proxy.stats"}}});
  for (int i = 0; i < 200; ++i) region->set(key(i), i);
  int present = 0;
  for (int i = 0; i < 200; ++i) present += region->get<int>(key(i)) ? 1 : 0;
  BOOST_TEST(present == 50);
  BOOST_TEST(region->evictions() == 150u);
  BOOST_TEST(region->stats()->evictions == 150u);
  region->set(key(1000), 1);
  BOOST_TEST(region->stats()->evictions == 151u);
}

BOOST_AUTO_TEST_CASE(max_bytes_uses_the_types_size_of) {
  auto region = dogpile::make_region("bytes");
  region->configure("dogpile.cache.memory", {.arguments = {{"max_bytes", 1000}}});
  for (int i = 0; i < 10; ++i) region->set(key(i), Image{std::vector<int>(100), "i"});  // 400 each
  int present = 0;
  for (int i = 0; i < 10; ++i) present += region->get<Image>(key(i)) ? 1 : 0;
  BOOST_TEST(present == 2);
  BOOST_TEST(region->evictions() == 8u);
  // Strings count their bytes. A value as large as the bound is let in once it has been seen
  // more often than what it pushes out (each set counts); a larger one never.
  for (int i = 0; i < 3; ++i) region->set("s", std::string(999, 's'));
  BOOST_TEST(region->get<std::string>("s"));
  BOOST_TEST(!region->get<Image>(key(0)));
  BOOST_TEST(!region->get<Image>(key(9)));
  region->set("t", std::string(1001, 't'));
  BOOST_TEST(!region->get<std::string>("t"));
  // An unbounded memory region counts no evictions.
  auto plain = dogpile::make_region("plain");
  plain->configure("dogpile.cache.memory");
  BOOST_TEST(plain->evictions() == 0u);
}

BOOST_AUTO_TEST_CASE(memory_pickle_counts_the_stored_bytes) {
  auto region = dogpile::make_region("pickle");
  region->configure("dogpile.cache.memory_pickle", {.arguments = {{"max_bytes", 2000}}});
  for (int i = 0; i < 100; ++i) region->set(key(i), std::string(100, 'p'));
  int present = 0;
  for (int i = 0; i < 100; ++i) present += region->get<std::string>(key(i)) ? 1 : 0;
  BOOST_TEST(present > 5);
  BOOST_TEST(present < 20);  // each is about 140 bytes with its metadata
  BOOST_TEST(region->evictions() == 100u - present);
}

BOOST_AUTO_TEST_CASE(a_huge_bound_costs_nothing_up_front) {
  // The frequency sketch grows with the entries held, not with max_size.
  auto region = dogpile::make_region("huge");
  region->configure("dogpile.cache.memory", {.arguments = {{"max_size", 1'000'000'000'000},
                                                           {"max_bytes", 1'000'000'000'000}}});
  for (int i = 0; i < 3000; ++i) region->set(key(i), i);
  BOOST_TEST(*region->get<int>(key(2999)) == 2999);
  BOOST_TEST(region->evictions() == 0u);
}

BOOST_AUTO_TEST_CASE(bad_bounds_are_refused_naming_the_key) {
  for (const auto& [name, value] :
       std::vector<std::pair<std::string, nlohmann::json>>{{"max_size", 0},
                                                           {"max_bytes", 0},
                                                           {"max_size", -5},
                                                           {"max_bytes", "lots"},
                                                           {"shards", 3},
                                                           {"shards", 8192}}) {
    auto region = dogpile::make_region("bad");
    BOOST_TEST_INFO(name << " = " << value.dump());
    try {
      region->configure("dogpile.cache.memory",
                        {.arguments = {{name, value}}, .config_prefix = "cache.local."});
      BOOST_FAIL("accepted");
    } catch (const dogpile::ValidationError& e) {
      BOOST_TEST(std::string(e.what()).find("cache.local.arguments." + name) != std::string::npos,
                 e.what());
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(visit)

BOOST_AUTO_TEST_CASE(reads_what_get_would_return_in_place) {
  auto region = dogpile::make_region("visit");
  region->configure("dogpile.cache.memory");
  region->set("k", std::string("value"));
  std::string seen;
  long count_inside = 0;
  BOOST_TEST(region->visit<std::string>("k", [&](const std::string& value) {
    seen = value;
    count_inside = region->get<std::string>("k").use_count();
  }));
  BOOST_TEST(seen == "value");
  // The backend's reference and get's: visit took none of its own.
  BOOST_TEST(count_inside == 2);
  BOOST_TEST(
      !region->visit<std::string>("absent", [](const std::string&) { BOOST_FAIL("called"); }));
  region->invalidate();
  BOOST_TEST(!region->visit<std::string>("k", [](const std::string&) { BOOST_FAIL("called"); }));
}

BOOST_AUTO_TEST_CASE(decodes_and_refuses_as_get_does_and_lets_the_readers_exceptions_through) {
  auto region = dogpile::make_region("visit-types");
  region->configure("dogpile.cache.memory");
  region->set("n", 42);
  long n = 0;
  BOOST_TEST(region->visit<long>("n", [&](const long& value) { n = value; }));  // 42 as JSON
  BOOST_TEST(n == 42);
  BOOST_CHECK_THROW(region->visit<std::string>("n", [](const std::string&) {}),
                    dogpile::ValueTypeError);
  struct Mine {};
  BOOST_CHECK_THROW(region->visit<int>("n", [](const int&) { throw Mine{}; }), Mine);
  // A byte backend, and a proxy in the chain: the value read through get, the same answer.
  for (const char* backend : {"dogpile.cache.memory_pickle", "dogpile.cache.memory"}) {
    auto other = dogpile::make_region("visit-other");
    other->configure(backend, {.wrap = {dogpile::ProxySpec{"dogpile.proxy.stats"}}});
    other->set("s", std::string("x"));
    std::string s;
    BOOST_TEST(other->visit<std::string>("s", [&](const std::string& value) { s = value; }));
    BOOST_TEST(s == "x");
    BOOST_TEST(other->stats()->hits == 1u);
  }
}

BOOST_AUTO_TEST_SUITE_END()
