// One process of the cross-process herd test: at a given moment, THREADS threads call
// get_or_create on one cold key with the Redis distributed lock. The creator counts its calls
// in Redis itself (INCR herd:calls), so the test can add up every process's calls.
// usage: redis_herd PORT START_EPOCH_MS THREADS
#include <hiredis/hiredis.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <dogpile/dogpile.hpp>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: redis_herd PORT START_EPOCH_MS THREADS\n");
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const long long start_ms = std::atoll(argv[2]);
  const int threads = std::atoi(argv[3]);
  try {
    auto region = dogpile::make_region("herd");
    region->configure("dogpile.cache.redis", {.arguments = {{"host", "127.0.0.1"},
                                                            {"port", port},
                                                            {"distributed_lock", true},
                                                            {"thread_local_lock", false},
                                                            {"lock_timeout", 10}}});
    std::this_thread::sleep_until(
        std::chrono::system_clock::time_point(std::chrono::milliseconds(start_ms)));
    std::vector<std::thread> herd;
    for (int t = 0; t < threads; ++t) {
      herd.emplace_back([&] {
        region->get_or_create("herd", [port] {
          redisContext* context = redisConnect("127.0.0.1", port);
          freeReplyObject(redisCommand(context, "INCR herd:calls"));
          redisFree(context);
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
          return 1;
        });
      });
    }
    for (auto& t : herd) t.join();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "redis_herd: %s\n", e.what());
    return 1;
  }
  return 0;
}
