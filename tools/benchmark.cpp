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

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <dogpile/dogpile.hpp>
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

struct RawCache {
  std::shared_mutex mutex;
  std::unordered_map<std::string, std::shared_ptr<const std::string>> map;
  std::shared_ptr<const std::string> get(const std::string& key) {
    std::shared_lock guard(mutex);
    auto it = map.find(key);
    return it == map.end() ? nullptr : it->second;
  }
};

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
  row("get<T> hit",
      ops_per_second(iterations, [&](long i) { region->get<std::string>(keys[i % 100]); }),
      raw_get);
  row("get_or_create hit",
      ops_per_second(iterations,
                     [&](long i) {
                       region->get_or_create(keys[i % 100], [] { return std::string(64, 'y'); });
                     }),
      raw_get);
  const std::string payload =
      dogpile::serialize_cached_value(*dogpile::CacheRegion::make_value(std::string(64, 'x')));
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
}

}  // namespace

int run(int argc, char** argv) {
  const long iterations = argc > 1 ? std::atol(argv[1]) : 2'000'000;
  const long redis_iterations = argc > 2 ? std::atol(argv[2]) : 20'000;
  constexpr int kKeys = 1000;
  std::vector<std::string> keys;
  for (int i = 0; i < kKeys; ++i) keys.push_back("user:" + std::to_string(i));

  auto region = dogpile::make_region("bench");
  region->configure("dogpile.cache.memory", {.expiration_time = 3600});
  RawCache raw;
  for (const auto& key : keys) {
    region->set(key, std::string(64, 'x'));
    raw.map.emplace(key, std::make_shared<const std::string>(64, 'x'));
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
    raw.map.emplace("bench:profile|" + std::to_string(i), profile.shared(i));
  }
  const double raw_fn = ops_per_second(iterations, [&](long i) {
    sink += raw.get("bench:profile|" + std::to_string(i % kKeys))->size();
  });
  const double region_fn = ops_per_second(
      iterations, [&](long i) { sink += profile(static_cast<int>(i % kKeys)).size(); });
  row("cache_on_arguments hit, 1 thread", region_fn, raw_fn);

  // Two threads on different keys: the shards keep them from contending.
  auto threaded = [&](auto op) {
    std::atomic<long> total{0};
    const auto start = Clock::now();
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) {
      threads.emplace_back([&, t] {
        std::size_t local = 0;
        for (long i = 0; i < iterations; ++i) local += op(keys[(i * 2 + t) % kKeys]);
        total += static_cast<long>(local != 0);
      });
    }
    for (auto& t : threads) t.join();
    return 2.0 * static_cast<double>(iterations) / seconds_since(start);
  };
  const double raw2 = threaded([&](const std::string& k) { return raw.get(k)->size(); });
  const double goc2 = threaded([&](const std::string& k) {
    return region->get_or_create(k, [] { return std::string(64, 'y'); })->size();
  });
  row("get_or_create hit, 2 threads (total)", goc2, raw2);

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
