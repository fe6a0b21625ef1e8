// Threads and processes: mixed operations that must never return another key's value, and
// the backend's own mutex (get_mutex) excluding threads and processes, refusing without
// waiting, and expiring when the backend says its locks time out.
#include <fcntl.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "conformance.hpp"

extern char** environ;

namespace dogpile::conformance {

namespace {

using Clock = std::chrono::steady_clock;

void eight_threads_never_see_another_keys_value(Fixture& f) {
  f.require_storage();
  auto& region = f.region();
  constexpr int kThreads = 8, kRounds = 300, kKeys = 16;
  Keys keys;
  for (int i = 0; i < kKeys; ++i) keys.push_back(f.key("k" + std::to_string(i)));
  // A value names its key, so a value served for the wrong key is seen.
  auto value_for = [](const std::string& key, int n) { return key + "=" + std::to_string(n); };
  auto belongs = [](const std::string& key, const std::string& value) {
    return value.size() > key.size() && value.compare(0, key.size() + 1, key + "=") == 0;
  };
  std::atomic<int> wrong{0}, errors{0};
  std::string first_error;
  std::mutex error_mutex;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int n = 0; n < kRounds; ++n) {
        const std::string& key = keys[(t * 7 + n) % kKeys];
        try {
          switch (n % 6) {
            case 0:
              region.set(key, value_for(key, n));
              break;
            case 1:
              if (auto v = region.get<std::string>(key); v && !belongs(key, *v)) ++wrong;
              break;
            case 2: {
              const Keys some = {key, keys[(n + 1) % kKeys], keys[(n + 5) % kKeys], key};
              auto values = region.get_multi<std::string>(some);
              for (std::size_t i = 0; i < some.size(); ++i) {
                if (values[i] && !belongs(some[i], *values[i])) ++wrong;
              }
              break;
            }
            case 3:
              region.set_multi(std::map<std::string, std::string>{
                  {key, value_for(key, n)},
                  {keys[(n + 3) % kKeys], value_for(keys[(n + 3) % kKeys], n)}});
              break;
            case 4:
              region.remove(key);
              break;
            default:
              if (!belongs(key, *region.get_or_create(key, [&] { return value_for(key, n); }))) {
                ++wrong;
              }
          }
        } catch (const std::exception& e) {
          if (errors++ == 0) {
            std::lock_guard guard(error_mutex);
            first_error = e.what();
          }
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  expect(errors == 0, std::to_string(errors.load()) + " operations failed, first: " + first_error);
  expect(wrong == 0, std::to_string(wrong.load()) + " reads returned another key's value");
}

// The backend's own mutex, or Skipped.
std::unique_ptr<CacheMutex> backend_mutex(Fixture& f, const std::string& key) {
  auto mutex = f.backend().get_mutex(key);
  if (!mutex) {
    throw Skipped{"get_mutex gives no mutex (regions use their in-process lock, checked above)"};
  }
  if (!f.capabilities().mutexes_exclude) {
    throw Skipped{"the backend's mutexes do not exclude (capabilities().mutexes_exclude)"};
  }
  return mutex;
}

// One holder at a time: `inside` counts holders; returns false when another was inside.
bool hold_once(CacheMutex& mutex, std::atomic<int>& inside, CacheBackend& backend,
               const std::string& key) {
  if (!mutex.acquire(true)) return false;
  bool alone = inside.fetch_add(1) == 0;
  // Some work on the server while holding the lock, to give an intruder time to show.
  backend.set_serialized(key, wire(std::to_string(::getpid())));
  alone = backend.get_serialized(key).has_value() && alone;
  alone = inside.fetch_sub(1) == 1 && alone;
  mutex.release();
  return alone;
}

void the_mutex_excludes_threads(Fixture& f) {
  const std::string key = f.backend_key("lock");
  backend_mutex(f, key);
  constexpr int kThreads = 8, kRounds = 20;
  std::atomic<int> inside{0}, overlaps{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      try {
        auto mutex = f.backend().get_mutex(key);
        for (int n = 0; n < kRounds; ++n) {
          if (!hold_once(*mutex, inside, f.backend(), key)) ++overlaps;
        }
      } catch (const std::exception&) {
        ++errors;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  expect(errors == 0, std::to_string(errors.load()) + " threads failed with an exception");
  expect(overlaps == 0, std::to_string(overlaps.load()) + " of " +
                            std::to_string(kThreads * kRounds) +
                            " holds overlapped another thread's (or acquire(true) failed)");
}

void the_mutex_refuses_without_waiting(Fixture& f) {
  const std::string key = f.backend_key("lock");
  auto first = backend_mutex(f, key);
  auto second = f.backend().get_mutex(key);
  expect(first->acquire(false), "acquire(false) of a free lock succeeds");
  expect(first->locked() && second->locked(), "locked() is true for every mutex of the key");
  const auto start = Clock::now();
  expect(!second->acquire(false), "acquire(false) of a held lock fails");
  expect(Clock::now() - start < std::chrono::seconds(2), "and does not wait");
  first->release();
  expect(!second->locked(), "locked() is false once released");
  expect(second->acquire(false), "the released lock can be taken");
  second->release();
}

void the_mutex_expires(Fixture& f) {
  const std::string key = f.backend_key("lock");
  auto dead_holder = backend_mutex(f, key);
  if (!f.backend().has_lock_timeout()) {
    throw Skipped{"the backend's locks do not time out (has_lock_timeout() is false)"};
  }
  expect(dead_holder->acquire(true), "the lock is taken");
  auto waiter = f.backend().get_mutex(key);
  const auto start = Clock::now();
  expect(!waiter->acquire(false), "a held lock refuses another taker before it expires");
  // The holder never releases: the lock must expire by itself, on the server's clock, which
  // nothing here can advance; so the waiter polls without blocking (a lock that never expires
  // must fail the check, not hang the kit), for at most 60 s.
  while (!waiter->acquire(false)) {
    expect(Clock::now() - start < std::chrono::seconds(60),
           "a lock whose holder never released it did not expire within 60 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // Not long before the lock_timeout the target gives, if it gives one (seconds).
  const auto timeout = f.target().arguments.find("lock_timeout");
  if (timeout != f.target().arguments.end() && timeout->is_number()) {
    expect(Clock::now() - start >= std::chrono::duration<double>(0.5 * timeout->get<double>()),
           "the lock expired before half its lock_timeout");
  }
  waiter->release();
}

// The memory both processes count holders in: a file mapped shared.
struct Shared {
  std::atomic<int> inside;
  std::atomic<int> overlaps;
  std::atomic<int> ready;
};

Shared* map_shared(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR);
  if (fd < 0) return nullptr;
  void* memory = ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  return memory == MAP_FAILED ? nullptr : static_cast<Shared*>(memory);
}

constexpr int kProcessRounds = 40;

// Both processes: wait for the other, then take and release the lock kProcessRounds times.
int hold_rounds(Fixture& f, Shared& shared, const std::string& key, int rounds) {
  auto mutex = f.backend().get_mutex(key);
  if (!mutex) return 3;
  ++shared.ready;
  const auto until = Clock::now() + std::chrono::seconds(30);
  while (shared.ready.load() < 2 && Clock::now() < until) std::this_thread::yield();
  for (int n = 0; n < rounds; ++n) {
    if (!hold_once(*mutex, shared.inside, f.backend(), key)) ++shared.overlaps;
  }
  return 0;
}

void the_mutex_excludes_processes(Fixture& f) {
  const std::string key = f.backend_key("lock");
  backend_mutex(f, key);
  char path[] = "/tmp/dogpile-conformance-XXXXXX";
  const int fd = ::mkstemp(path);
  expect(fd >= 0 && ::ftruncate(fd, sizeof(Shared)) == 0, "a shared scratch file can be made");
  ::close(fd);
  struct Cleanup {
    const char* path;
    Shared* shared = nullptr;
    ~Cleanup() {
      if (shared) ::munmap(shared, sizeof(Shared));
      std::filesystem::remove(path);
    }
  } cleanup{path};
  Shared* shared = cleanup.shared = map_shared(path);
  expect(shared != nullptr, "the shared scratch file can be mapped");

  std::vector<std::string> args = {f.target().self,
                                   f.target().backend,
                                   "--arguments",
                                   f.target().arguments.dump(),
                                   "--lock-worker",
                                   path,
                                   std::to_string(kProcessRounds) + ":" + key};
  for (const auto& dir : f.target().plugin_paths) {
    args.insert(args.end(), {"--plugin-path", dir});
  }
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t child = 0;
  expect(::posix_spawn(&child, argv[0], nullptr, nullptr, argv.data(), environ) == 0,
         "the second process starts");
  const int mine = hold_rounds(f, *shared, key, kProcessRounds);
  int status = 0;
  ::waitpid(child, &status, 0);
  expect(mine == 0, "this process takes the lock");
  expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
         "the second process took the lock and exited cleanly (status " + std::to_string(status) +
             ")");
  expect(shared->overlaps.load() == 0, std::to_string(shared->overlaps.load()) + " of " +
                                           std::to_string(2 * kProcessRounds) +
                                           " holds overlapped one in the other process");
}

}  // namespace

int lock_worker(const Target& target, const std::string& shared_file, const std::string& job) {
  const auto colon = job.find(':');
  Shared* shared = map_shared(shared_file);
  if (shared == nullptr || colon == std::string::npos) return 3;
  Fixture fixture(target, "lock-worker");
  return hold_rounds(fixture, *shared, job.substr(colon + 1), std::stoi(job.substr(0, colon)));
}

std::vector<Check> concurrency_checks() {
  return {
      {"threads: 8 threads of mixed operations never see another key's value",
       eight_threads_never_see_another_keys_value},
      {"mutex: excludes 8 threads", the_mutex_excludes_threads},
      {"mutex: acquire(false) refuses without waiting", the_mutex_refuses_without_waiting},
      {"mutex: excludes 2 processes", the_mutex_excludes_processes},
      {"mutex: a lock whose holder died expires", the_mutex_expires},
  };
}

}  // namespace dogpile::conformance
