// One process of the layered tests: a region on dogpile.cache.layered over the Redis at PORT,
// driven by commands on stdin, one answer per line on stdout.
//   get KEY           the value, "miss", or "error <message>"
//   first KEY         get, until it answers something else than an error (at most 10 s): each
//                     of the pool's connections to a restarted server fails once
//   set KEY VALUE     "ok" or "error <message>"
//   await KEY VALUE   reads until it gets VALUE (at most 10 s): the microseconds that took, or
//                     "timeout <last answer>"
//   listening         waits (at most 10 s) until the subscription is in place: "yes" or "no"
//   lost              waits (at most 10 s) until it is not: "yes" or "no"
//   invalidate        the region's invalidate() (shared by every process): "ok" or "error ..."
// usage: layered_peer PORT
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <dogpile/dogpile.hpp>
#include <iostream>
#include <string>
#include <thread>

namespace {

using Clock = std::chrono::steady_clock;

std::string answer(dogpile::CacheRegion& region, const std::string& key) {
  try {
    auto value = region.get<std::string>(key);
    return value ? *value : "miss";
  } catch (const std::exception& e) {
    return std::string("error ") + e.what();
  }
}

template <class Condition>
bool within_10s(Condition&& condition) {
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!condition()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: layered_peer PORT\n");
    return 2;
  }
  auto region = dogpile::make_region("layered-peer");
  region->configure(
      "dogpile.cache.layered",
      {.arguments = {{"l2_backend", "dogpile.cache.redis"},
                     {"l2_arguments",
                      {{"host", "127.0.0.1"}, {"port", std::atoi(argv[1])}, {"socket_timeout", 2}}},
                     {"channel", "dogpile:layered-peer"}},
       .shared_invalidation = true});
  const auto broadcast = region->backend()->broadcast("dogpile:layered-peer");
  std::string command, key;
  while (std::cin >> command) {
    std::string out;
    if (command == "get" && std::cin >> key) {
      out = answer(*region, key);
    } else if (command == "first" && std::cin >> key) {
      within_10s([&] { return !(out = answer(*region, key)).starts_with("error "); });
    } else if (command == "set" && std::cin >> key) {
      std::string value;
      std::cin >> value;
      try {
        region->set(key, value);
        out = "ok";
      } catch (const std::exception& e) {
        out = std::string("error ") + e.what();
      }
    } else if (command == "await" && std::cin >> key) {
      std::string wanted, last;
      std::cin >> wanted;
      const auto start = Clock::now();
      if (within_10s([&] { return (last = answer(*region, key)) == wanted; })) {
        out = std::to_string(
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());
      } else {
        out = "timeout " + last;
      }
    } else if (command == "listening") {
      out = within_10s([&] { return broadcast->listening(); }) ? "yes" : "no";
    } else if (command == "invalidate") {
      try {
        region->invalidate();
        out = "ok";
      } catch (const std::exception& e) {
        out = std::string("error ") + e.what();
      }
    } else if (command == "lost") {
      out = within_10s([&] { return !broadcast->listening(); }) ? "yes" : "no";
    } else {
      out = "error unknown command " + command;
    }
    std::cout << out << std::endl;
  }
  return 0;
}
