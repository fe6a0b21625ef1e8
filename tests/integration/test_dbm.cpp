// dogpile.cache.dbm: a GDBM file shared by threads and processes, its locks, and Python
// dogpile.cache 1.1.8 on the same file.
#define BOOST_TEST_MODULE dbm
#include <fcntl.h>
#include <gdbm.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/test/unit_test.hpp>
#include <dogpile/dogpile.hpp>
#include <fstream>
#include <random>
#include <thread>

#include "servers.hpp"

using dogpile::CacheRegion;
using nlohmann::json;
using test::message_contains;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<CacheRegion> dbm_region(const fs::path& file, json arguments = json::object()) {
  arguments["filename"] = file.string();
  auto region = dogpile::make_region("dbm");
  region->configure("dogpile.cache.dbm",
                    {.arguments = std::move(arguments), .config_prefix = "cache.dbm."});
  return region;
}

// What GDBM holds under `key`, read without the library.
std::optional<std::string> raw_get(const fs::path& file, const std::string& key) {
  GDBM_FILE db = gdbm_open(file.c_str(), 0, GDBM_READER, 0, nullptr);
  BOOST_TEST_REQUIRE(db != nullptr);
  datum found = gdbm_fetch(db, {const_cast<char*>(key.data()), static_cast<int>(key.size())});
  std::optional<std::string> out;
  if (found.dptr != nullptr) out.emplace(found.dptr, static_cast<std::size_t>(found.dsize));
  std::free(found.dptr);
  gdbm_close(db);
  return out;
}

// Runs `body` in `count` forked processes released together; how many exited with 0.
template <class Body>
int in_processes(int count, Body&& body) {
  test::StartGate gate;
  std::vector<pid_t> children;
  for (int p = 0; p < count; ++p) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      int status = 1;
      try {
        gate.arrive_and_wait();
        status = body(p) ? 0 : 1;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "process %d: %s\n", p, e.what());
      }
      ::_exit(status);
    }
    children.push_back(pid);
  }
  BOOST_TEST(gate.open(count));
  int succeeded = 0;
  for (pid_t pid : children) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    succeeded += WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  return succeeded;
}

// A value that proves itself whole: its text, then '|' and the FNV-1a of the text in hex.
std::string checked(const std::string& text) {
  std::uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : text) hash = (hash ^ c) * 1099511628211ull;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
  return text + "|" + hex;
}
bool is_whole(const std::string& value) {
  const auto bar = value.rfind('|');
  return bar != std::string::npos && checked(value.substr(0, bar)) == value;
}

// Waits at most 10 s for a byte on `fd`; whether one came.
bool byte_within_10s(int fd) {
  pollfd p{fd, POLLIN, 0};
  char c;
  return ::poll(&p, 1, 10000) == 1 && ::read(fd, &c, 1) == 1;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(dbm_file)

BOOST_AUTO_TEST_CASE(values_are_the_wire_format_in_the_gdbm_file_named) {
  test::TempDir dir;
  const fs::path file = dir.path / "cache.db";
  auto region = dbm_region(file);
  BOOST_TEST(fs::exists(file));  // created at configure, as dogpile does
  region->set("k", json{{"a", 1}});
  region->set_multi(std::map<std::string, int>{{"m1", 1}, {"m2", 2}});
  const auto stored = raw_get(file, "k");
  BOOST_TEST_REQUIRE(stored.has_value());
  BOOST_TEST(*stored == *region->actual_backend()->get_serialized("k"));
  BOOST_TEST(stored->ends_with("|{\"a\":1}"));
  BOOST_TEST((*region->get<json>("k") == json{{"a", 1}}));
  BOOST_TEST(*region->get<int>("m2") == 2);
  region->remove("k");
  BOOST_TEST(!raw_get(file, "k").has_value());
  BOOST_TEST(fs::exists(dir.path / "cache.db.rw.lock"));
  BOOST_TEST(fs::exists(dir.path / "cache.db.dogpile.lock"));
}

BOOST_AUTO_TEST_CASE(a_file_removed_behind_the_backends_back_reads_as_misses) {
  test::TempDir dir;
  auto region = dbm_region(dir.path / "cache.db");
  region->set("k", 1);
  fs::remove(dir.path / "cache.db");
  BOOST_TEST(region->get<int>("k") == nullptr);
  region->set("k", 2);
  BOOST_TEST(*region->get<int>("k") == 2);
}

BOOST_AUTO_TEST_CASE(lock_files_are_where_the_arguments_say_or_none) {
  test::TempDir dir;
  auto named = dbm_region(dir.path / "a.db", {{"rw_lockfile", (dir.path / "rw").string()},
                                              {"dogpile_lockfile", (dir.path / "dp").string()}});
  named->set("k", 1);
  BOOST_TEST(fs::exists(dir.path / "rw"));
  BOOST_TEST(fs::exists(dir.path / "dp"));
  BOOST_TEST(!fs::exists(dir.path / "a.db.rw.lock"));
  auto none = dbm_region(dir.path / "b.db", {{"rw_lockfile", false}, {"dogpile_lockfile", false}});
  none->set("k", 2);
  BOOST_TEST(*none->get<int>("k") == 2);
  BOOST_TEST(!fs::exists(dir.path / "b.db.rw.lock"));
  BOOST_TEST(!fs::exists(dir.path / "b.db.dogpile.lock"));
  BOOST_TEST(none->actual_backend()->get_mutex("k") == nullptr);  // the in-process lock
  // INI gives false as text; the coercion makes it false.
  auto from_ini = dogpile::make_region();
  from_ini->configure_from_config({{"cache.backend", "dogpile.cache.dbm"},
                                   {"cache.arguments.filename", (dir.path / "c.db").string()},
                                   {"cache.arguments.dogpile_lockfile", "false"}},
                                  "cache.");
  BOOST_TEST(from_ini->actual_backend()->get_mutex("k") == nullptr);
  BOOST_TEST(fs::exists(dir.path / "c.db.rw.lock"));
}

BOOST_AUTO_TEST_CASE(bad_arguments_and_paths_are_named) {
  test::TempDir dir;
  const std::string x = (dir.path / "x.db").string();
  test::check_bad_arguments(
      "dogpile.cache.dbm", "cache.dbm.",
      {{json::object(), "missing required argument cache.dbm.arguments.filename"},
       {{{"filename", ""}}, "cache.dbm.arguments.filename must not be empty"},
       {{{"filename", x}, {"rw_lockfile", true}},
        "cache.dbm.arguments.rw_lockfile must be a path, or false"},
       {{{"filename", x}, {"lock_factory", "FileLock"}},
        "cache.dbm.arguments.lock_factory is not supported"},
       {{{"filename", x}, {"filenam", "y"}}, "unknown argument cache.dbm.arguments.filenam"}});
  const fs::path missing = dir.path / "no such dir" / "cache.db";
  try {
    dbm_region(missing);
    BOOST_ERROR("a file in a missing directory was accepted");
  } catch (const dogpile::BackendUnavailable& e) {
    BOOST_TEST(message_contains(e, (dir.path / "no such dir").string()));
  }
  // A file that is no GDBM database.
  std::ofstream(dir.path / "text.db") << "not a database";
  try {
    dbm_region(dir.path / "text.db", {{"rw_lockfile", false}});
    BOOST_ERROR("a file that is no database was accepted");
  } catch (const dogpile::BackendUnavailable& e) {
    BOOST_TEST(message_contains(e, (dir.path / "text.db").string()));
  }
}

// 4 processes of 4 threads mix gets and sets for 10 s (DOGPILE_TEST_DBM_SECONDS changes it).
// Each thread owns 8 keys, which it alone writes: a read of one returns exactly its last
// write (no write lost, none read stale). Shared keys are written by everyone. Every value
// read, of any key, is whole (its checksum holds): no reader sees a torn write.
BOOST_AUTO_TEST_CASE(four_processes_of_four_threads_lose_no_write_and_read_no_torn_value) {
  test::TempDir dir;
  const fs::path file = dir.path / "cache.db";
  dbm_region(file);
  const char* env = std::getenv("DOGPILE_TEST_DBM_SECONDS");
  const double seconds = env != nullptr ? std::atof(env) : 10.0;
  constexpr int kProcesses = 4, kThreads = 4, kOwnKeys = 8, kSharedKeys = 8;
  const int ok = in_processes(kProcesses, [&](int p) {
    auto region = dbm_region(file);
    std::atomic<int> errors{0};
    std::atomic<long> operations{0};
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    auto report = [&](const std::string& what) {
      if (errors++ < 5) std::fprintf(stderr, "process %d: %s\n", p, what.c_str());
    };
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 random(static_cast<unsigned>(p * 100 + t));
        std::vector<std::string> last(kOwnKeys);
        auto own = [&](int i) {
          return "own:" + std::to_string(p) + ":" + std::to_string(t) + ":" + std::to_string(i);
        };
        long n = 0;
        for (; std::chrono::steady_clock::now() < end; ++n) {
          const int i = static_cast<int>(random() % kOwnKeys);
          const std::string filler(random() % 3000, static_cast<char>('a' + random() % 26));
          switch (random() % 4) {
            case 0: {  // write an own key
              last[i] = checked(own(i) + ":" + std::to_string(n) + ":" + filler);
              region->set(own(i), last[i]);
              break;
            }
            case 1: {  // read an own key: exactly the last write
              auto value = region->get<std::string>(own(i));
              const std::string seen = value ? *value : "";
              if (seen != last[i]) report(own(i) + " read another value than its last write");
              break;
            }
            case 2: {  // write a shared key
              const std::string key = "shared:" + std::to_string(random() % kSharedKeys);
              region->set(key, checked(key + ":" + filler));
              break;
            }
            default: {  // read anyone's key: whole, or missing
              const std::string key = random() % 2
                                          ? "shared:" + std::to_string(random() % kSharedKeys)
                                          : "own:" + std::to_string(random() % kProcesses) + ":" +
                                                std::to_string(random() % kThreads) + ":" +
                                                std::to_string(random() % kOwnKeys);
              auto value = region->get<std::string>(key);
              if (value && !is_whole(*value)) report(key + " read torn");
            }
          }
        }
        for (int i = 0; i < kOwnKeys; ++i) {
          auto value = region->get<std::string>(own(i));
          if ((value ? *value : "") != last[i]) report(own(i) + " lost its last write");
        }
        operations += n;
      });
    }
    for (auto& thread : threads) thread.join();
    region->set("operations:" + std::to_string(p), operations.load());
    return errors == 0;
  });
  BOOST_TEST(ok == kProcesses);
  auto region = dbm_region(file);
  long total = 0;
  for (int p = 0; p < kProcesses; ++p) {
    auto n = region->get<long>("operations:" + std::to_string(p));
    BOOST_TEST_REQUIRE(n != nullptr);
    BOOST_TEST(*n > 100, "process " << p << " did only " << *n << " operations");
    total += *n;
  }
  BOOST_TEST_MESSAGE(total << " operations in " << seconds << " s");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(dogpile_lock)

// The lock of one key held in this process: another process cannot take it, but takes
// another key's at once.
BOOST_AUTO_TEST_CASE(one_keys_lock_excludes_other_processes_and_leaves_other_keys_free) {
  test::TempDir dir;
  auto region = dbm_region(dir.path / "cache.db");
  auto held = region->actual_backend()->get_mutex("a");
  BOOST_TEST_REQUIRE(held->acquire(false));
  const int ok = in_processes(1, [&](int) {
    auto backend = dbm_region(dir.path / "cache.db")->actual_backend();
    auto a = backend->get_mutex("a");
    auto b = backend->get_mutex("b");
    const bool excluded = !a->acquire(false) && a->locked();
    const bool other_free = b->acquire(false) && !backend->get_mutex("c")->locked();
    if (other_free) b->release();
    return excluded && other_free;
  });
  BOOST_TEST(ok == 1);
  held->release();
  BOOST_TEST(!held->locked());
}

// Two processes create two keys: each creator waits (up to 10 s) for the other to start, so
// both finish only if they run at the same time, which one lock for the whole file (Python's)
// forbids. Then 2 processes of 4 threads on one cold key: one creator.
BOOST_AUTO_TEST_CASE(creators_of_two_keys_run_in_parallel_across_processes_one_keys_never) {
  test::TempDir dir;
  const fs::path file = dir.path / "cache.db";
  dbm_region(file);
  int a_started[2], b_started[2];
  BOOST_TEST_REQUIRE(::pipe(a_started) == 0);
  BOOST_TEST_REQUIRE(::pipe(b_started) == 0);
  const int both = in_processes(2, [&](int p) {
    auto region = dbm_region(file);
    const int mine = p == 0 ? a_started[1] : b_started[1];
    const int theirs = p == 0 ? b_started[0] : a_started[0];
    bool met = false;
    region->get_or_create(p == 0 ? "a" : "b", [&] {
      (void)!::write(mine, "x", 1);
      met = byte_within_10s(theirs);
      return 1;
    });
    return met;
  });
  for (int fd : {a_started[0], a_started[1], b_started[0], b_started[1]}) ::close(fd);
  BOOST_TEST(both == 2);

  // Each of the 8 threads writes a byte before its get_or_create; the creator returns only
  // once all 8 are in, so the others are waiting for the lock (or read its value) meanwhile.
  const fs::path calls = dir.path / "calls";
  int entered[2];
  BOOST_TEST_REQUIRE(::pipe(entered) == 0);
  const int herd = in_processes(2, [&](int) {
    auto region = dbm_region(file);
    std::atomic<bool> all_in{true};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        (void)!::write(entered[1], "x", 1);
        region->get_or_create("cold", [&] {
          std::ofstream(calls, std::ios::app) << "created\n";
          for (int i = 0; i < 8; ++i) {
            if (!byte_within_10s(entered[0])) all_in = false;
          }
          return 1;
        });
      });
    }
    for (auto& thread : threads) thread.join();
    return all_in.load();
  });
  for (int fd : entered) ::close(fd);
  BOOST_TEST(herd == 2);
  std::ifstream in(calls);
  const std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  BOOST_TEST(log == "created\n");
}

BOOST_AUTO_TEST_SUITE_END()

// Python dogpile.cache 1.1.8's DBMBackend on the same file (tests/integration/python_peer.py).
BOOST_AUTO_TEST_SUITE(python_interoperability)

BOOST_AUTO_TEST_CASE(values_are_shared_with_python) {
  test::TempDir dir;
  const fs::path file = dir.path / "cache.db";
  auto region = dbm_region(file);
  test::check_values_shared_with_python(*region, "dbm", file.string());
}

// Python locks the whole dogpile lockfile for any key: while it holds it no C++ creator
// starts, and while a C++ creator holds a key Python's creator waits.
BOOST_AUTO_TEST_CASE(python_and_cpp_creators_exclude_each_other) {
  test::TempDir dir;
  const fs::path file = dir.path / "cache.db";
  auto region = dbm_region(file);
  auto backend = region->actual_backend();
  int release[2];
  BOOST_TEST_REQUIRE(::pipe(release) == 0);
  const std::string command = test::python_peer_command(
      "dbm", file.string(),
      "hold_until k " + std::to_string(release[0]) + " " + std::to_string(release[1]));
  FILE* python = ::popen(command.c_str(), "r");
  ::close(release[0]);
  char line[64] = {};
  BOOST_TEST_REQUIRE(std::fgets(line, sizeof line, python) != nullptr);
  BOOST_TEST(std::string(line) == "locked\n");
  for (const char* key : {"k", "other"}) {
    auto mutex = backend->get_mutex(key);
    BOOST_TEST(mutex->locked(), key);
    BOOST_TEST(!mutex->acquire(false), key);
  }
  ::close(release[1]);
  BOOST_TEST(::pclose(python) == 0);
  auto mutex = backend->get_mutex("other");
  BOOST_TEST_REQUIRE(mutex->acquire(false));
  BOOST_TEST(test::python_peer("dbm", file.string(), "try k") == "busy\n");
  mutex->release();
  BOOST_TEST(test::python_peer("dbm", file.string(), "try k") == "acquired\n");
}

BOOST_AUTO_TEST_SUITE_END()
