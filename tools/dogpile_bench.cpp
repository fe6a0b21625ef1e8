// dogpile-bench: prints throughput and herd numbers for the memory backend, beside a raw
// baseline measured in the same run (what a C++ user would write by hand: a hash map of
// shared_ptr behind a reader-writer lock). A benchmark, not a test: it prints numbers and
// passes or fails nothing.
#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <dogpile/dogpile.hpp>
#include <functional>
#include <map>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Runs `op(i)` for `iterations` and returns operations per second.
template <class Op>
double ops_per_second(long iterations, Op&& op) {
  for (long i = 0; i < iterations / 10; ++i) op(i);  // warm up
  const auto start = Clock::now();
  for (long i = 0; i < iterations; ++i) op(i);
  return static_cast<double>(iterations) / seconds_since(start);
}

// What a C++ user would write by hand: 64 shards of a hash map of shared_ptr, each behind a
// reader-writer lock.
class RawCache {
 public:
  std::shared_ptr<const std::string> get(const std::string& key) const {
    const Shard& shard = shard_of(key);
    std::shared_lock guard(shard.mutex);
    auto it = shard.map.find(key);
    return it == shard.map.end() ? nullptr : it->second;
  }
  void set(const std::string& key, std::shared_ptr<const std::string> value) {
    Shard& shard = shard_of(key);
    std::unique_lock guard(shard.mutex);
    shard.map.insert_or_assign(key, std::move(value));
  }

 private:
  struct alignas(64) Shard {
    mutable std::shared_mutex mutex;
    std::unordered_map<std::string, std::shared_ptr<const std::string>> map;
  };
  Shard& shard_of(const std::string& key) const {
    return shards_[std::hash<std::string>{}(key) % shards_.size()];
  }
  mutable std::array<Shard, 64> shards_;
};

// Total operations per second of `threads` threads each calling `op(key)` for `seconds`, on
// keys drawn at random from `keys`.
template <class Op>
double scaled(int threads, double seconds, const std::vector<std::string>& keys, Op&& op) {
  std::atomic<int> ready{0};
  std::atomic<bool> stop{false};
  std::atomic<long> total{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::uint64_t state = 0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(t + 1);
      long done = 0;
      ready.fetch_add(1);
      while (ready.load() < threads) std::this_thread::yield();
      while (!stop.load(std::memory_order_relaxed)) {
        for (int i = 0; i < 256; ++i) {
          state ^= state << 13;
          state ^= state >> 7;
          state ^= state << 17;
          op(keys[state % keys.size()]);
        }
        done += 256;
      }
      total.fetch_add(done);
    });
  }
  while (ready.load() < threads) std::this_thread::yield();
  const auto start = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& thread : pool) thread.join();
  return static_cast<double>(total.load()) / seconds_since(start);
}

// get hit, visit hit, get_or_create hit and set at 1, 2, 4, ... threads up to `max_threads`, on
// 10,000 keys (uniform) and on 8 (hot), beside the hand-written map; each also on a bounded
// region (max_size above the key count: every get hits, and the policy records hits).
void scaling_rows(int max_threads, double seconds) {
  std::vector<std::string> uniform, hot;
  for (int i = 0; i < 10000; ++i) uniform.push_back("user:" + std::to_string(i));
  for (int i = 0; i < 8; ++i) hot.push_back("hot:" + std::to_string(i));
  auto region = dogpile::make_region("bench-scaling");
  region->configure("dogpile.cache.memory", {.expiration_time = 3600});
  auto bounded = dogpile::make_region("bench-bounded");
  bounded->configure("dogpile.cache.memory",
                     {.expiration_time = 3600, .arguments = {{"max_size", 20000}}});
  RawCache raw;
  for (const auto* keys : {&uniform, &hot}) {
    for (const auto& key : *keys) {
      region->set(key, std::string(64, 'x'));
      bounded->set(key, std::string(64, 'x'));
      raw.set(key, std::make_shared<const std::string>(64, 'x'));
    }
  }
  std::printf(
      "\nthreads: total ops/s of every thread, %.1f s per figure; map = a hand-written 64-shard "
      "shared_mutex map\n%-18s %-8s %7s %14s %14s %14s %7s %8s\n",
      seconds, "operation", "keys", "threads", "region", "bounded", "map", "ratio", "bounded%");
  struct Op {
    const char* name;
    std::function<void(const std::string&)> region, bounded, raw;
  };
  const std::vector<Op> ops = {
      {"get hit", [&](const std::string& k) { region->get<std::string>(k); },
       [&](const std::string& k) { bounded->get<std::string>(k); },
       [&](const std::string& k) { raw.get(k); }},
      // The same hit read in place, without get's reference count increment.
      {"visit hit",
       [&](const std::string& k) { region->visit<std::string>(k, [](const std::string&) {}); },
       [&](const std::string& k) { bounded->visit<std::string>(k, [](const std::string&) {}); },
       [&](const std::string& k) { raw.get(k); }},
      {"get_or_create hit",
       [&](const std::string& k) { region->get_or_create(k, [] { return std::string(64, 'y'); }); },
       [&](const std::string& k) {
         bounded->get_or_create(k, [] { return std::string(64, 'y'); });
       },
       [&](const std::string& k) { raw.get(k); }},
      {"set", [&](const std::string& k) { region->set(k, std::string(64, 'x')); },
       [&](const std::string& k) { bounded->set(k, std::string(64, 'x')); },
       [&](const std::string& k) { raw.set(k, std::make_shared<const std::string>(64, 'x')); }},
  };
  for (const auto& op : ops) {
    for (const auto* keys : {&uniform, &hot}) {
      for (int threads = 1; threads <= max_threads; threads *= 2) {
        const double ours = scaled(threads, seconds, *keys, op.region);
        const double ours_bounded = scaled(threads, seconds, *keys, op.bounded);
        const double theirs = scaled(threads, seconds, *keys, op.raw);
        std::printf("%-18s %-8s %7d %14.0f %14.0f %14.0f %7.2f %7.0f%%\n", op.name,
                    keys == &hot ? "hot 8" : "uniform", threads, ours, ours_bounded, theirs,
                    ours / theirs, 100 * ours_bounded / ours);
        std::fflush(stdout);
      }
    }
  }
  std::printf("evictions in the bounded region: %llu\n",
              static_cast<unsigned long long>(bounded->evictions()));
}

void row(const char* name, double ours, double raw) {
  std::printf("%-44s %12.0f ops/s   raw %12.0f ops/s   ratio %.2f\n", name, ours, raw, ours / raw);
}

// A port nothing listens on now, on 127.0.0.1.
int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

// A redis-server of the benchmark's own on `port`, stopped with it.
struct RedisServer {
  pid_t pid = -1;
  explicit RedisServer(int port) {
    pid = ::fork();
    if (pid == 0) {
      // The server's log is not the benchmark's result: stdout carries only the rows.
      const int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, STDOUT_FILENO);
      ::dup2(null, STDERR_FILENO);
      const std::string p = std::to_string(port);
      ::execlp("redis-server", "redis-server", "--port", p.c_str(), "--bind", "127.0.0.1", "--save",
               "", "--appendonly", "no", static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~RedisServer() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

void layered_rows(int port, long iterations, const std::vector<std::string>& keys,
                  double redis_get);

void redis_rows(int port, long iterations) {
  redisContext* raw = nullptr;
  for (int i = 0; i < 200 && (raw == nullptr || raw->err); ++i) {
    if (raw != nullptr) redisFree(raw);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    raw = redisConnect("127.0.0.1", port);
  }
  if (raw == nullptr || raw->err) {
    std::printf("\nredis: no server on 127.0.0.1:%d, rows skipped\n", port);
    return;
  }
  auto region = dogpile::make_region("bench-redis");
  region->configure("dogpile.cache.redis", {.arguments = {{"host", "127.0.0.1"}, {"port", port}}});
  std::vector<std::string> keys;
  for (int i = 0; i < 100; ++i) keys.push_back("bench:" + std::to_string(i));
  std::map<std::string, std::string> mapping;
  for (const auto& key : keys) mapping[key] = std::string(64, 'x');
  region->set_multi(mapping);
  auto command = [&](const char* format, const char* key) {
    freeReplyObject(redisCommand(raw, format, key));
  };
  std::printf(
      "\nredis on 127.0.0.1:%d (a server of its own), %ld operations per row; raw = one "
      "hiredis connection, the same command\n",
      port, iterations);
  const double raw_get =
      ops_per_second(iterations, [&](long i) { command("GET %s", keys[i % 100].c_str()); });
  const double region_get =
      ops_per_second(iterations, [&](long i) { region->get<std::string>(keys[i % 100]); });
  row("get<T> hit", region_get, raw_get);
  row("get_or_create hit",
      ops_per_second(iterations,
                     [&](long i) {
                       region->get_or_create(keys[i % 100], [] { return std::string(64, 'y'); });
                     }),
      raw_get);
  const std::string payload =
      dogpile::serialize_cached_value(*dogpile::make_value(std::string(64, 'x')));
  const double raw_set = ops_per_second(iterations, [&](long i) {
    freeReplyObject(
        redisCommand(raw, "SET %s %b", keys[i % 100].c_str(), payload.data(), payload.size()));
  });
  row("set",
      ops_per_second(iterations, [&](long i) { region->set(keys[i % 100], std::string(64, 'x')); }),
      raw_set);
  std::vector<const char*> argv{"MGET"};
  for (const auto& key : keys) argv.push_back(key.c_str());
  const double raw_mget = ops_per_second(iterations / 10, [&](long) {
    freeReplyObject(redisCommandArgv(raw, static_cast<int>(argv.size()), argv.data(), nullptr));
  });
  row("get_multi of 100 keys",
      ops_per_second(iterations / 10, [&](long) { region->get_multi<std::string>(keys); }),
      raw_mget);
  redisFree(raw);
  layered_rows(port, iterations, keys, region_get);
}

// dogpile.cache.layered on the same server: an L1 hit beside a plain memory hit, and an L1
// miss (an L1 of one entry, which cycling over 100 keys empties) beside a redis get.
void layered_rows(int port, long iterations, const std::vector<std::string>& keys,
                  double redis_get) {
  auto layered = [&](const char* name, nlohmann::json l1_arguments) {
    auto region = dogpile::make_region(name);
    region->configure("dogpile.cache.layered",
                      {.arguments = {{"l2_backend", "dogpile.cache.redis"},
                                     {"channel", std::string("dogpile:") + name},
                                     {"l2_arguments", {{"host", "127.0.0.1"}, {"port", port}}},
                                     {"l1_arguments", std::move(l1_arguments)}}});
    return region;
  };
  auto l1 = layered("bench-layered", nlohmann::json::object());
  auto tiny = layered("bench-layered-miss", {{"max_size", 1}});
  auto memory = dogpile::make_region("bench-memory");
  memory->configure("dogpile.cache.memory");
  for (const auto& key : keys) memory->set(key, std::string(64, 'x'));
  for (const auto& key : keys) l1->get<std::string>(key);  // filled from Redis
  const long hits = iterations * 50;
  std::printf("\ndogpile.cache.layered on the same server, %ld operations per hit row\n", hits);
  row("layered get<T> hit (L1) vs memory get<T> hit",
      ops_per_second(hits, [&](long i) { l1->get<std::string>(keys[i % 100]); }),
      ops_per_second(hits, [&](long i) { memory->get<std::string>(keys[i % 100]); }));
  row("layered get<T>, L1 miss, L2 hit vs redis get<T>",
      ops_per_second(iterations, [&](long i) { tiny->get<std::string>(keys[i % 100]); }),
      redis_get);
}

}  // namespace

int run(int argc, char** argv) {
  // dogpile-bench [--threads N] [--seconds S] [iterations [redis_iterations]]
  int max_threads =
      static_cast<int>(std::min(16u, std::max(1u, std::thread::hardware_concurrency())));
  double seconds = 0.3;
  std::vector<const char*> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if ((arg == "--threads" || arg == "--seconds") && i + 1 < argc) {
      (arg == "--threads" ? void(max_threads = std::max(1, std::atoi(argv[++i])))
                          : void(seconds = std::max(0.01, std::atof(argv[++i]))));
    } else if (arg.starts_with("--")) {
      std::fprintf(stderr, "dogpile-bench: unknown option %s (--threads N, --seconds S)\n",
                   arg.c_str());
      return 2;
    } else {
      positional.push_back(argv[i]);
    }
  }
  const long iterations = positional.size() > 0 ? std::atol(positional[0]) : 2'000'000;
  const long redis_iterations = positional.size() > 1 ? std::atol(positional[1]) : 20'000;
  constexpr int kKeys = 1000;
  std::vector<std::string> keys;
  for (int i = 0; i < kKeys; ++i) keys.push_back("user:" + std::to_string(i));

  auto region = dogpile::make_region("bench");
  region->configure("dogpile.cache.memory", {.expiration_time = 3600});
  RawCache raw;
  for (const auto& key : keys) {
    region->set(key, std::string(64, 'x'));
    raw.set(key, std::make_shared<const std::string>(64, 'x'));
  }
  std::printf("dogpile-bench: memory backend, %d keys, %ld operations per row\n\n", kKeys,
              iterations);

  std::size_t sink = 0;
  const double raw_get =
      ops_per_second(iterations, [&](long i) { sink += raw.get(keys[i % kKeys])->size(); });
  const double region_get = ops_per_second(
      iterations, [&](long i) { sink += region->get<std::string>(keys[i % kKeys])->size(); });
  const double region_goc = ops_per_second(iterations, [&](long i) {
    sink += region->get_or_create(keys[i % kKeys], [] { return std::string(64, 'y'); })->size();
  });
  row("get<T> hit, 1 thread", region_get, raw_get);
  row("get_or_create hit, 1 thread", region_goc, raw_get);

  // A cached function against the same lookup written by hand: the key built from the
  // argument, then the map.
  auto profile = region->cache_on_arguments("bench:profile",
                                            [](int id) { return std::string(64, 'a' + id % 26); });
  for (int i = 0; i < kKeys; ++i) {
    raw.set("bench:profile|" + std::to_string(i), profile.shared(i));
  }
  const double raw_fn = ops_per_second(iterations, [&](long i) {
    sink += raw.get("bench:profile|" + std::to_string(i % kKeys))->size();
  });
  const double region_fn = ops_per_second(
      iterations, [&](long i) { sink += profile(static_cast<int>(i % kKeys)).size(); });
  row("cache_on_arguments hit, 1 thread", region_fn, raw_fn);

  scaling_rows(max_threads, seconds);

  // The herd: 32 threads on one cold key, a 50 ms creator.
  std::atomic<int> calls{0};
  const auto start = Clock::now();
  std::vector<std::thread> herd;
  for (int t = 0; t < 32; ++t) {
    herd.emplace_back([&] {
      region->get_or_create("cold", [&] {
        ++calls;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        return std::string("made");
      });
    });
  }
  for (auto& t : herd) t.join();
  std::printf("\n32-thread herd on a cold key, 50 ms creator: %d creator call(s), %.1f ms wall\n",
              calls.load(), seconds_since(start) * 1000);

  const int redis_port = free_loopback_port();
  RedisServer server(redis_port);
  redis_rows(redis_port, redis_iterations);
  return sink == 0 ? 1 : 0;
}

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dogpile-bench: %s\n", e.what());
    return 1;
  }
}
