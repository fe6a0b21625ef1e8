// dogpile.cache.dbm: values in a GDBM file, in dogpile.cache's wire format, shared by the
// threads and processes that name the same file, as Python dogpile.cache's DBMBackend:
//  - readers and writers are coordinated by flock(2) on the rw lockfile (shared to read,
//    exclusive to write), and each operation opens the database for its own duration, so a
//    reader never sees a write half done and every process sees the others' writes;
//  - the dogpile lock is a lock on the dogpile lockfile. Python takes the whole file for every
//    key, so two keys' creators wait for each other. Here a creator takes the file shared and
//    one byte of it exclusively (an open file description lock at an offset given by the
//    key's hash): creators of different keys run at once, and a Python creator, who takes
//    the whole file exclusively, still excludes every C++ one and is excluded by them.
#include <fcntl.h>
#include <gdbm.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <dogpile/sdk/sdk.hpp>
#include <filesystem>

namespace dogpile::dbm {

namespace {

namespace fs = std::filesystem;

// How long an operation waits for the rw lock or the database before BackendUnavailable: a
// writer holds them for one operation, so only a process that stopped holding them (SIGSTOP,
// a debugger) makes anyone wait that long.
constexpr double kLockWait = 10;

struct Settings {
  fs::path filename;
  std::optional<fs::path> rw_lockfile;
  std::optional<fs::path> dogpile_lockfile;
};

// `name`: a path, false (no lock file), or absent/None (<filename><suffix>), as dogpile's.
std::optional<fs::path> lockfile(const Arguments& a, const char* name, const fs::path& filename,
                                 const char* suffix) {
  if (a.contains(name) && a.values().at(name).is_boolean()) {
    if (a.get(name, false)) {
      throw ValidationError(a.key(name) + " must be a path, or false for no lock file");
    }
    return std::nullopt;
  }
  if (auto path = a.find<std::string>(name)) {
    if (path->empty()) throw ValidationError(a.key(name) + " must not be empty");
    return fs::absolute(*path).lexically_normal();
  }
  return fs::path(filename.string() + suffix);
}

Settings read_settings(const Arguments& a) {
  Settings s;
  const auto filename = a.require<std::string>("filename");
  if (filename.empty()) throw ValidationError(a.key("filename") + " must not be empty");
  s.filename = fs::absolute(filename).lexically_normal();
  s.rw_lockfile = lockfile(a, "rw_lockfile", s.filename, ".rw.lock");
  s.dogpile_lockfile = lockfile(a, "dogpile_lockfile", s.filename, ".dogpile.lock");
  if (a.contains("lock_factory") && !a.values().at("lock_factory").is_null()) {
    throw ValidationError(a.key("lock_factory") +
                          " is not supported: it takes a Python class; the locks here are "
                          "flock(2) and byte-range locks on the lock files");
  }
  (void)a.get<std::string>("lock_factory", "");  // None reads as absent
  return s;
}

[[noreturn]] void io_failure(const std::string& what, const fs::path& path, int error) {
  throw BackendUnavailable("dogpile.cache.dbm: cannot " + what + " " + path.string() + ": " +
                           std::strerror(error));
}

// A descriptor, closed when it goes (which also drops every lock taken through it).
class Fd {
 public:
  explicit Fd(const fs::path& path)
      : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)) {
    if (fd_ < 0) io_failure("open the lock file", path, errno);
  }
  ~Fd() { ::close(fd_); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Calls `attempt` (true: done) until it succeeds or kLockWait passes (50 µs between the
// first tries, doubling up to 5 ms); whether it succeeded.
template <class Attempt>
bool retry_for_a_while(Attempt&& attempt) {
  return poll_lock(attempt, {.first_pause = 50e-6, .longest_pause = 0.005, .timeout = kLockWait});
}

// flock(2) on the rw lockfile for one operation: shared to read, exclusive to write. Each
// holder has a descriptor of its own, so threads of one process exclude each other as
// processes do.
class RwGuard {
 public:
  RwGuard(const std::optional<fs::path>& path, bool write) {
    if (!path) return;
    fd_.emplace(*path);
    const int operation = (write ? LOCK_EX : LOCK_SH) | LOCK_NB;
    int error = 0;
    retry_for_a_while([&] {
      error = ::flock(fd_->get(), operation) == 0 ? 0 : errno;
      return error != EWOULDBLOCK && error != EINTR;  // taken, or an error waiting won't mend
    });
    if (error == EWOULDBLOCK || error == EINTR) {
      throw BackendUnavailable("dogpile.cache.dbm: " + path->string() +
                               " stayed locked by another process for 10 s");
    }
    if (error != 0) io_failure("lock", *path, error);
  }

 private:
  std::optional<Fd> fd_;
};

struct GdbmCloser {
  void operator()(GDBM_FILE file) const { gdbm_close(file); }
};
using Database = std::unique_ptr<std::remove_pointer_t<GDBM_FILE>, GdbmCloser>;

// The database opened for one operation (under the rw lock); null for a reader when the file
// does not exist (every key misses). GDBM's own lock on the file is kept, so that without
// an rw lockfile a reader and a writer still never meet: they wait for each other here.
Database open_database(const fs::path& path, bool write) {
  Database database;
  int error = 0;
  int system_error = 0;
  retry_for_a_while([&] {
    database.reset(gdbm_open(path.c_str(), 0, (write ? GDBM_WRCREAT : GDBM_READER) | GDBM_CLOEXEC,
                             0644, nullptr));
    error = database ? 0 : gdbm_errno;
    system_error = errno;
    return error != GDBM_CANT_BE_READER && error != GDBM_CANT_BE_WRITER;
  });
  if (database) return database;
  if (!write && error == GDBM_FILE_OPEN_ERROR && system_error == ENOENT) return nullptr;
  std::string why = gdbm_strerror(static_cast<gdbm_error>(error));
  if (error == GDBM_CANT_BE_READER || error == GDBM_CANT_BE_WRITER) {
    why = "locked by another process for 10 s";
  } else if (gdbm_check_syserr(static_cast<gdbm_error>(error)) && system_error != 0) {
    why += std::string(": ") + std::strerror(system_error);
  }
  throw BackendUnavailable("dogpile.cache.dbm: cannot open " + path.string() + ": " + why);
}

datum as_datum(std::string_view bytes) {
  return {const_cast<char*>(bytes.data()), static_cast<int>(bytes.size())};
}

// The byte of the dogpile lockfile that stands for `key`: FNV-1a of the key, within the
// offsets fcntl takes (a collision only makes two keys' creators wait for each other).
off_t slot_of(std::string_view key) {
  std::uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : key) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return static_cast<off_t>(hash >> 2);
}

// The dogpile lock of one key in the dogpile lockfile: the file shared (flock, as Python's
// whole-file lock is taken exclusively) and the key's byte exclusively (an open file
// description lock: it belongs to this descriptor, not to the process, so threads exclude
// each other too, and any thread may release it). Both go when the holder's process dies.
class DbmMutex final : public CacheMutex {
 public:
  DbmMutex(fs::path path, off_t slot) : path_(std::move(path)), slot_(slot) {}

  bool acquire(bool wait) override { return take({.wait = wait}); }
  bool acquire_until(Deadline deadline, const std::function<bool()>& arrived) override {
    return take({.deadline = deadline, .arrived = &arrived});
  }

  void release() override {
    std::lock_guard guard(mutex_);
    if (!held_) throw Error("release of the dbm lock on " + path_.string() + ", which is not held");
    held_.reset();  // closing the descriptor drops both locks
  }

  bool locked() const override {
    Fd fd(path_);
    if (::flock(fd.get(), LOCK_SH | LOCK_NB) != 0) return true;  // a Python creator holds it all
    struct flock probe = byte(F_WRLCK);
    if (::fcntl(fd.get(), F_OFD_GETLK, &probe) != 0) io_failure("read a lock in", path_, errno);
    return probe.l_type != F_UNLCK;
  }

 private:
  struct flock byte(short type) const {
    struct flock lock {};
    lock.l_type = type;
    lock.l_whence = SEEK_SET;
    lock.l_start = slot_;
    lock.l_len = 1;
    return lock;
  }

  bool take(const LockPolling& polling) {
    auto fd = std::make_unique<Fd>(path_);
    const bool taken = poll_lock(
        [&] {
          if (::flock(fd->get(), LOCK_SH | LOCK_NB) != 0) {
            if (errno != EWOULDBLOCK && errno != EINTR) io_failure("lock", path_, errno);
            return false;
          }
          struct flock lock = byte(F_WRLCK);
          if (::fcntl(fd->get(), F_OFD_SETLK, &lock) == 0) return true;
          const int error = errno;
          ::flock(fd->get(), LOCK_UN);  // let a Python creator in while we wait
          if (error != EAGAIN && error != EACCES && error != EINTR) {
            io_failure("lock", path_, error);
          }
          return false;
        },
        polling);
    if (taken) {
      std::lock_guard guard(mutex_);
      held_ = std::move(fd);
    }
    return taken;
  }

  const fs::path path_;
  const off_t slot_;
  std::mutex mutex_;
  std::unique_ptr<Fd> held_;
};

class DbmBackend final : public BytesBackend {
 public:
  explicit DbmBackend(const Arguments& arguments) : settings_(read_settings(arguments)) {
    // As dogpile: the file exists once the backend does, so that a wrong path fails here.
    RwGuard guard(settings_.rw_lockfile, true);
    open_database(settings_.filename, true);
    if (settings_.dogpile_lockfile) Fd touch(*settings_.dogpile_lockfile);
  }

  std::optional<std::string> get_serialized(std::string_view key) override {
    RwGuard guard(settings_.rw_lockfile, false);
    Database database = open_database(settings_.filename, false);
    return database ? fetch(database.get(), key) : std::nullopt;
  }

  // One open of the file for every key.
  SerializedValues get_serialized_multi(const Keys& keys) override {
    SerializedValues values(keys.size());
    if (keys.empty()) return values;
    RwGuard guard(settings_.rw_lockfile, false);
    Database database = open_database(settings_.filename, false);
    if (!database) return values;
    for (std::size_t i = 0; i < keys.size(); ++i) values[i] = fetch(database.get(), keys[i]);
    return values;
  }

  void set_serialized(const std::string& key, std::string_view value) override {
    check_value_size(value, kMaxValue, "dogpile.cache.dbm");
    RwGuard guard(settings_.rw_lockfile, true);
    Database database = open_database(settings_.filename, true);
    store(database.get(), key, value);
  }

  void set_serialized_multi(const SerializedMapping& mapping) override {
    if (mapping.empty()) return;
    for (const auto& item : mapping) check_value_size(item.second, kMaxValue, "dogpile.cache.dbm");
    RwGuard guard(settings_.rw_lockfile, true);
    Database database = open_database(settings_.filename, true);
    for (const auto& [key, value] : mapping) store(database.get(), key, value);
  }

  void remove(std::string_view key) override { remove_multi({std::string(key)}); }

  void remove_multi(const Keys& keys) override {
    if (keys.empty()) return;
    RwGuard guard(settings_.rw_lockfile, true);
    Database database = open_database(settings_.filename, true);
    for (const auto& key : keys) {
      if (gdbm_delete(database.get(), as_datum(key)) != 0 &&
          gdbm_last_errno(database.get()) != GDBM_ITEM_NOT_FOUND) {
        failed(database.get(), "delete from");
      }
    }
  }

  std::unique_ptr<CacheMutex> get_mutex(std::string_view key) override {
    if (!settings_.dogpile_lockfile) return nullptr;
    return std::make_unique<DbmMutex>(*settings_.dogpile_lockfile, slot_of(key));
  }

  BackendCapabilities capabilities() const override { return {.max_value_size = kMaxValue}; }

 private:
  // GDBM's sizes are ints.
  static constexpr std::size_t kMaxValue = 1u << 30;

  [[noreturn]] void failed(GDBM_FILE database, const char* what) const {
    throw BackendUnavailable("dogpile.cache.dbm: cannot " + std::string(what) + " " +
                             settings_.filename.string() + ": " + gdbm_db_strerror(database));
  }

  std::optional<std::string> fetch(GDBM_FILE database, std::string_view key) const {
    const datum found = gdbm_fetch(database, as_datum(key));
    if (found.dptr == nullptr) {
      if (gdbm_last_errno(database) == GDBM_ITEM_NOT_FOUND) return std::nullopt;
      failed(database, "read");
    }
    std::string value(found.dptr, static_cast<std::size_t>(found.dsize));
    std::free(found.dptr);
    return value;
  }

  void store(GDBM_FILE database, std::string_view key, std::string_view value) const {
    if (gdbm_store(database, as_datum(key), as_datum(value), GDBM_REPLACE) != 0) {
      failed(database, "write to");
    }
  }

  const Settings settings_;
};

}  // namespace

}  // namespace dogpile::dbm

DOGPILE_BACKEND_PLUGIN(dbm, "dogpile.cache.dbm", "1.0.0",
                       "a GDBM file shared by processes: the wire format, flock(2) between "
                       "readers and writers, and a dogpile lock per key in the lock file",
                       dogpile::dbm::DbmBackend);
