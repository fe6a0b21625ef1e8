// One process of the cross-process herd test: at a given moment, THREADS threads call
// get_or_create on one cold key with the Redis distributed lock. The creator counts its calls
// in Redis itself (INCR herd:calls), so the test can add up every process's calls.
// It starts when the test opens its StartGate (servers.hpp), whose two descriptors it gets.
// usage: redis_herd PORT THREADS READY_FD GO_FD
#include <hiredis/hiredis.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <dogpile/dogpile.hpp>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: redis_herd PORT THREADS READY_FD GO_FD\n");
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const int threads = std::atoi(argv[2]);
  try {
    auto region = dogpile::make_region("herd");
    region->configure("dogpile.cache.redis", {.arguments = {{"host", "127.0.0.1"},
                                                            {"port", port},
                                                            {"distributed_lock", true},
                                                            {"thread_local_lock", false},
                                                            {"lock_timeout", 10}}});
    // Ready (configured and connected): tell the test, and wait for its start.
    region->set("herd:ready", 1);
    char c = 1;
    (void)!::write(std::atoi(argv[3]), &c, 1);
    ::close(std::atoi(argv[3]));
    (void)!::read(std::atoi(argv[4]), &c, 1);
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
