// dogpile.cache.memcached and the names of Python dogpile.cache's other memcached clients
// (dogpile.cache.pylibmc, .bmemcached, .pymemcache), each with its own client's arguments:
// values in memcached, in dogpile.cache's wire format, through a pool of libmemcached clients
// that spread keys over the servers by consistent hashing (ketama); optionally a distributed
// dogpile lock held in memcached itself, as dogpile.cache's MemcachedLock: `add _lock<key>`
// (with lock_timeout as its expiry) takes it, `delete` releases it.
#include <libmemcached-1.0/memcached.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <dogpile/sdk/sdk.hpp>
#include <map>
#include <thread>
#include <type_traits>
#include <vector>

namespace dogpile::memcached {

namespace {

// memcached's text protocol takes keys of at most 250 bytes without spaces or control
// characters; "_lock" is put before keys for the distributed lock.
constexpr std::size_t kMaxKey = 250 - 5;
// What an item takes beside its value in memcached's item_size_max: its header, the key and
// the CAS (309 bytes at most, measured on memcached 1.6 with a 250-byte key).
constexpr std::size_t kItemOverhead = 512;
// The most tries a config may ask for (hashclient_retry_attempts, retry_attempts).
constexpr unsigned long kMostAttempts = 100;

struct Server {
  std::string host;
  in_port_t port = 11211;
};

// Which Python client's backend an entry point stands for: it decides the arguments taken.
enum class Flavor { memcached, pylibmc, bmemcached, pymemcache };

struct Settings {
  std::string name;  // the entry point, for messages
  std::vector<Server> servers;
  std::string where;  // "host:port, …" for messages
  bool distributed_lock = false;
  time_t lock_timeout = 30;  // seconds; 0: the lock never expires
  time_t memcached_expire_time = 0;
  double dead_retry = 30;
  double socket_timeout = 3;
  bool binary = false;
  unsigned pool_size = 16;
  unsigned long item_size_max = 1 << 20;  // memcached's -I, 1 MiB by default
  // Set after the defaults: pylibmc's `behaviors`, pymemcache's failure handling.
  std::vector<std::pair<memcached_behavior_t, uint64_t>> behaviors;
  std::string username;  // SASL (bmemcached), over the binary protocol
  std::string password;
  unsigned attempts = 1;  // tries of a call that finds the servers unavailable (pymemcache)
  double retry_delay = 0;
};

Server parse_server(const std::string& text, const std::string& key) {
  Server server;
  server.host = text;
  if (auto colon = text.rfind(':'); colon != std::string::npos) {
    server.host = text.substr(0, colon);
    const std::string port = text.substr(colon + 1);
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
      throw ValidationError(key + ": '" + text + "' has no valid port (expected host:port)");
    }
    server.port = static_cast<in_port_t>(value);
  }
  if (server.host.empty()) throw ValidationError(key + ": '" + text + "' has no host");
  return server;
}

// Whole seconds for memcached, rounded up so a short positive time does not mean "never".
time_t whole_seconds(double seconds) { return static_cast<time_t>(std::ceil(seconds)); }

// pylibmc's `behaviors`, as libmemcached behaviours (pylibmc sets them with the same calls).
// The ones that make a write return before memcached confirms it are refused.
void read_behaviors(const Arguments& a, Settings& s) {
  const Arguments behaviors = a.section("behaviors");
  enum Kind { flag, number, milliseconds, microseconds, seconds, hash, distribution };
  struct Known {
    const char* name;
    memcached_behavior_t behavior;
    Kind kind;
  };
  static constexpr Known kKnown[] = {
      {"tcp_nodelay", MEMCACHED_BEHAVIOR_TCP_NODELAY, flag},
      {"tcp_keepalive", MEMCACHED_BEHAVIOR_TCP_KEEPALIVE, flag},
      {"ketama", MEMCACHED_BEHAVIOR_KETAMA, flag},
      {"ketama_weighted", MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, flag},
      {"ketama_hash", MEMCACHED_BEHAVIOR_KETAMA_HASH, hash},
      {"hash", MEMCACHED_BEHAVIOR_HASH, hash},
      {"distribution", MEMCACHED_BEHAVIOR_DISTRIBUTION, distribution},
      {"connect_timeout", MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, milliseconds},
      {"_poll_timeout", MEMCACHED_BEHAVIOR_POLL_TIMEOUT, milliseconds},
      {"send_timeout", MEMCACHED_BEHAVIOR_SND_TIMEOUT, microseconds},
      {"receive_timeout", MEMCACHED_BEHAVIOR_RCV_TIMEOUT, microseconds},
      {"retry_timeout", MEMCACHED_BEHAVIOR_RETRY_TIMEOUT, seconds},
      {"dead_timeout", MEMCACHED_BEHAVIOR_DEAD_TIMEOUT, seconds},
      {"failure_limit", MEMCACHED_BEHAVIOR_SERVER_FAILURE_LIMIT, number},
      {"remove_failed", MEMCACHED_BEHAVIOR_REMOVE_FAILED_SERVERS, number},
      {"auto_eject", MEMCACHED_BEHAVIOR_AUTO_EJECT_HOSTS, flag},
      {"num_replicas", MEMCACHED_BEHAVIOR_NUMBER_OF_REPLICAS, number},
      {"verify_keys", MEMCACHED_BEHAVIOR_VERIFY_KEY, flag},
      {"cas", MEMCACHED_BEHAVIOR_SUPPORT_CAS, flag},
      {"_sort_hosts", MEMCACHED_BEHAVIOR_SORT_HOSTS, flag},
      {"_hash_with_prefix_key", MEMCACHED_BEHAVIOR_HASH_WITH_PREFIX_KEY, flag},
      {"_socket_send_size", MEMCACHED_BEHAVIOR_SOCKET_SEND_SIZE, number},
      {"_socket_recv_size", MEMCACHED_BEHAVIOR_SOCKET_RECV_SIZE, number},
      {"_io_msg_watermark", MEMCACHED_BEHAVIOR_IO_MSG_WATERMARK, number},
      {"_io_bytes_watermark", MEMCACHED_BEHAVIOR_IO_BYTES_WATERMARK, number},
      {"_io_key_prefetch", MEMCACHED_BEHAVIOR_IO_KEY_PREFETCH, number},
  };
  static const std::map<std::string, uint64_t, std::less<>> kHashes = {
      {"default", MEMCACHED_HASH_DEFAULT},   {"md5", MEMCACHED_HASH_MD5},
      {"crc", MEMCACHED_HASH_CRC},           {"fnv1_64", MEMCACHED_HASH_FNV1_64},
      {"fnv1a_64", MEMCACHED_HASH_FNV1A_64}, {"fnv1_32", MEMCACHED_HASH_FNV1_32},
      {"fnv1a_32", MEMCACHED_HASH_FNV1A_32}, {"hsieh", MEMCACHED_HASH_HSIEH},
      {"murmur", MEMCACHED_HASH_MURMUR},     {"jenkins", MEMCACHED_HASH_JENKINS}};
  static const std::map<std::string, uint64_t, std::less<>> kDistributions = {
      {"modula", MEMCACHED_DISTRIBUTION_MODULA},
      {"consistent", MEMCACHED_DISTRIBUTION_CONSISTENT},
      {"consistent ketama", MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA},
      {"consistent weighted", MEMCACHED_DISTRIBUTION_CONSISTENT_WEIGHTED},
      {"random", MEMCACHED_DISTRIBUTION_RANDOM}};
  auto one_of = [&](const std::string& name,
                    const std::map<std::string, uint64_t, std::less<>>& names) {
    const auto text = behaviors.require<std::string>(name);
    if (auto it = names.find(text); it != names.end()) return it->second;
    std::string known;
    for (const auto& [n, _] : names) known += (known.empty() ? "" : ", ") + n;
    throw ValidationError(behaviors.key(name) + ": '" + text + "' is not one of " + known);
  };
  for (const auto& [name, value] : behaviors.values().items()) {
    if (name == "no_block" || name == "buffer_requests" || name == "_noreply") {
      if (behaviors.get(name, false)) {
        throw ValidationError(behaviors.key(name) +
                              " is not supported: a write would return before memcached "
                              "confirms it, so a failed write would go unnoticed");
      }
      continue;
    }
    if (name == "pickle_protocol") {
      behaviors.ignore(name, "values are stored in dogpile.cache's wire format, not pickled");
      continue;
    }
    const auto* known = std::find_if(std::begin(kKnown), std::end(kKnown),
                                     [&](const Known& k) { return name == k.name; });
    if (known == std::end(kKnown)) continue;  // reject_unknown names it below
    uint64_t setting = 0;
    switch (known->kind) {
      case flag:
        setting = behaviors.require<bool>(name) ? 1 : 0;
        break;
      case hash:
        setting = one_of(name, kHashes);
        break;
      case distribution:
        setting = one_of(name, kDistributions);
        break;
      default: {
        const auto number = behaviors.require<long long>(name);
        const bool timeout = known->kind != number;
        if (number < 0 || (timeout && number == 0)) {
          throw ValidationError(
              behaviors.key(name) +
              (timeout ? " must be positive (0 would wait for ever)" : " must not be negative"));
        }
        setting = static_cast<uint64_t>(number);
      }
    }
    s.behaviors.emplace_back(known->behavior, setting);
  }
  behaviors.reject_unknown(s.name);
}

// Whether `name` has a value other than None (read as absent).
bool given(const Arguments& a, const char* name) {
  if (!a.contains(name)) return false;
  if (!a.values().at(name).is_null()) return true;
  (void)a.get<std::string>(name, "");  // counts as read
  return false;
}

// pymemcache's arguments: a HashClient's failure handling, and the retrying client.
void read_pymemcache(const Arguments& a, Settings& s) {
  for (const char* python_object : {"serde", "tls_context", "retry_for", "do_not_retry_for"}) {
    if (given(a, python_object)) {
      throw ValidationError(a.key(python_object) +
                            " is not supported: it takes a Python object (values are stored in "
                            "dogpile.cache's wire format; there is no TLS)");
    }
  }
  if (a.get("default_noreply", false)) {
    throw ValidationError(a.key("default_noreply") +
                          " is not supported: a write would return before memcached confirms "
                          "it, so a failed write would go unnoticed");
  }
  if (auto keepalive = a.find<bool>("socket_keepalive")) {
    s.behaviors.emplace_back(MEMCACHED_BEHAVIOR_TCP_KEEPALIVE, *keepalive ? 1 : 0);
  }
  const auto tries = a.find_count("hashclient_retry_attempts", 1, kMostAttempts).value_or(2);
  const auto retry_timeout = a.find_seconds("hashclient_retry_timeout", 1).value_or(1);
  const auto dead_timeout = a.find_seconds("hashclient_dead_timeout", 1).value_or(60);
  // As pymemcache's HashClient: a server failing `tries` times in a row leaves the ring (its
  // keys go to the others) for dead_timeout seconds.
  s.behaviors.insert(s.behaviors.end(),
                     {{MEMCACHED_BEHAVIOR_SERVER_FAILURE_LIMIT, static_cast<uint64_t>(tries)},
                      {MEMCACHED_BEHAVIOR_REMOVE_FAILED_SERVERS, 1},
                      {MEMCACHED_BEHAVIOR_RETRY_TIMEOUT, static_cast<uint64_t>(retry_timeout)},
                      {MEMCACHED_BEHAVIOR_DEAD_TIMEOUT, static_cast<uint64_t>(dead_timeout)}});
  const bool retrying = a.get("enable_retry_client", false);
  const auto attempts = a.find_count("retry_attempts", 1, kMostAttempts);
  const auto delay = a.find_seconds("retry_delay");
  if (!retrying && (attempts || delay)) {
    throw ValidationError(a.key("retry_attempts") + " and " + a.key("retry_delay") +
                          " need enable_retry_client = true");
  }
  if (retrying) {
    s.attempts = static_cast<unsigned>(attempts.value_or(2));  // pymemcache's RetryingClient
    s.retry_delay = delay.value_or(0);
  }
}

Settings read_settings(const Arguments& a, Flavor flavor, const char* name) {
  Settings s;
  s.name = name;
  for (const auto& text : a.require<std::vector<std::string>>("url")) {
    s.servers.push_back(parse_server(text, a.key("url")));
    s.where += (s.where.empty() ? "" : ", ") + text;
  }
  if (s.servers.empty()) throw ValidationError(a.key("url") + " names no server");
  s.distributed_lock = a.get("distributed_lock", s.distributed_lock);
  const double lock_timeout =
      a.find_seconds("lock_timeout").value_or(static_cast<double>(s.lock_timeout));
  const double expire = a.find_seconds("memcached_expire_time").value_or(0);
  // memcached reads an expiry of more than 30 days as a point in time (a Unix timestamp).
  constexpr double kThirtyDays = 30 * 24 * 3600;
  for (const auto& [name, seconds] :
       {std::pair{"lock_timeout", lock_timeout}, std::pair{"memcached_expire_time", expire}}) {
    if (seconds < 0 || seconds > kThirtyDays) {
      throw ValidationError(a.key(name) +
                            " must be between 0 and 2592000 seconds (30 days, memcached's limit)");
    }
  }
  // memcached's clock ticks once a second, so an item given N seconds may go after N-1: one
  // second more keeps the lock at least lock_timeout.
  s.lock_timeout = lock_timeout > 0 ? whole_seconds(lock_timeout) + 1 : 0;
  s.memcached_expire_time = whole_seconds(expire);
  s.dead_retry = a.find_seconds("dead_retry", 1).value_or(s.dead_retry);
  s.socket_timeout = a.find_seconds("socket_timeout").value_or(s.socket_timeout);
  if (s.socket_timeout <= 0) throw ValidationError(a.key("socket_timeout") + " must be positive");
  if (s.dead_retry < 0) throw ValidationError(a.key("dead_retry") + " must not be negative");
  s.binary = a.get("binary", s.binary);
  s.pool_size = static_cast<unsigned>(
      a.find_count("connection_pool_size", 1, kMostPooledConnections).value_or(s.pool_size));
  s.item_size_max = a.get("item_size_max", s.item_size_max);
  if (s.item_size_max < 1024 || s.item_size_max > (1ul << 30)) {
    throw ValidationError(a.key("item_size_max") +
                          " must be between 1024 and 1073741824 bytes (memcached's -I range)");
  }
  a.ignore("min_compress_len", "values are stored uncompressed");
  switch (flavor) {
    case Flavor::memcached:
      break;
    case Flavor::pylibmc:
      read_behaviors(a, s);
      break;
    case Flavor::bmemcached:
      if (given(a, "tls_context")) {
        throw ValidationError(a.key("tls_context") +
                              " is not supported: the libmemcached this backend is built with "
                              "has no TLS");
      }
      s.username = a.get("username", s.username);
      s.password = a.get("password", s.password);
      if (s.username.empty() != s.password.empty()) {
        throw ValidationError(a.key("username") + " and " + a.key("password") +
                              " are given together or not at all");
      }
      if (!s.username.empty()) s.binary = true;  // SASL is a binary protocol command
      break;
    case Flavor::pymemcache:
      read_pymemcache(a, s);
      break;
  }
  return s;
}

struct ClientDeleter {
  void operator()(memcached_st* client) const { memcached_free(client); }
};
using Client = std::unique_ptr<memcached_st, ClientDeleter>;

// A failure of `rc` on `client`: BackendUnavailable when the servers cannot be reached (or
// time out), Error otherwise (a value too big, a bad key).
[[noreturn]] void fail(memcached_st* client, memcached_return_t rc, const Settings& s,
                       std::string_view what) {
  // The text of `rc`, with the client's detail when it is about this failure ("CONNECTION
  // FAILURE(Connection refused), host: …"), without the heap address libmemcached puts first
  // ("(0x55fc…) ") and the source location it appends (" -> ./src/libmemcached/key.cc:73").
  std::string why = memcached_strerror(client, rc);
  if (client != nullptr && memcached_last_error(client) == rc) {
    std::string detail = memcached_last_error_message(client);
    if (detail.starts_with("(0x") && detail.find(") ") != std::string::npos) {
      detail.erase(0, detail.find(") ") + 2);
    }
    detail = detail.substr(0, detail.find(" -> "));
    if (detail.starts_with(why)) why = detail;
  }
  if (memcached_fatal(rc) && rc != MEMCACHED_BAD_KEY_PROVIDED && rc != MEMCACHED_KEY_TOO_BIG) {
    throw BackendUnavailable("memcached at " + s.where + " is unavailable (" + std::string(what) +
                             "): " + why);
  }
  throw ServerError("memcached at " + s.where + " refused " + std::string(what) + ": " + why);
}

// The clients of the backend's servers (one memcached_st each, not thread-safe) in the SDK's
// ConnectionPool: a call takes one for its round trips, waiting at most socket_timeout for one.
// libmemcached reconnects by itself, dead_retry seconds after a failure.
class Pool {
 public:
  explicit Pool(Settings settings)
      : settings_(std::move(settings)),
        prototype_(make_prototype()),
        clients_(settings_.pool_size, settings_.socket_timeout, "memcached at " + settings_.where,
                 [this] {
                   Client client(memcached_clone(nullptr, prototype_.get()));
                   if (!client) throw Error("memcached: out of memory for a client");
                   return client;
                 }) {}

  class Lease {
   public:
    explicit Lease(Pool& pool) : lease_(pool.clients_.lease()) {}
    memcached_st* get() { return lease_->get(); }

   private:
    ConnectionPool<Client>::Lease lease_;
  };

  Lease lease() { return Lease(*this); }
  const Settings& settings() const { return settings_; }

 private:
  Client make_prototype() const {
    Client client(memcached_create(nullptr));
    if (!client) throw Error("memcached: out of memory for a client");
    for (const auto& server : settings_.servers) {
      const memcached_return_t rc =
          memcached_server_add(client.get(), server.host.c_str(), server.port);
      if (memcached_failed(rc)) fail(client.get(), rc, settings_, "adding a server");
    }
    const auto ms = static_cast<uint64_t>(settings_.socket_timeout * 1000);
    const std::pair<memcached_behavior_t, uint64_t> behaviors[] = {
        {MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, ms},
        {MEMCACHED_BEHAVIOR_POLL_TIMEOUT, ms},
        {MEMCACHED_BEHAVIOR_SND_TIMEOUT, ms * 1000},
        {MEMCACHED_BEHAVIOR_RCV_TIMEOUT, ms * 1000},
        {MEMCACHED_BEHAVIOR_RETRY_TIMEOUT, static_cast<uint64_t>(settings_.dead_retry)},
        {MEMCACHED_BEHAVIOR_TCP_NODELAY, 1},
        {MEMCACHED_BEHAVIOR_VERIFY_KEY, settings_.binary ? 0u : 1u},
        {MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, settings_.binary ? 1u : 0u},
        // Consistent hashing: a server added or removed moves only its share of the keys.
        {MEMCACHED_BEHAVIOR_KETAMA, 1},
    };
    auto set = [&](memcached_behavior_t behavior, uint64_t value) {
      const memcached_return_t rc = memcached_behavior_set(client.get(), behavior, value);
      if (memcached_failed(rc)) fail(client.get(), rc, settings_, "setting a behaviour");
    };
    for (const auto& [behavior, value] : behaviors) set(behavior, value);
    for (const auto& [behavior, value] : settings_.behaviors) set(behavior, value);
    if (!settings_.username.empty()) {
      const memcached_return_t rc = memcached_set_sasl_auth_data(
          client.get(), settings_.username.c_str(), settings_.password.c_str());
      if (memcached_failed(rc)) fail(client.get(), rc, settings_, "setting SASL credentials");
    }
    return client;
  }

  const Settings settings_;
  const Client prototype_;
  ConnectionPool<Client> clients_;
};

// The dogpile lock in memcached, as dogpile.cache's MemcachedLock. Waiters poll: fast at first
// (2 ms, doubling up to 100 ms), and a waiter for a value reads it between polls.
class MemcachedMutex final : public CacheMutex {
 public:
  MemcachedMutex(std::shared_ptr<Pool> pool, std::string name)
      : pool_(std::move(pool)), name_(std::move(name)) {}

  bool acquire(bool wait) override { return take({.wait = wait}); }
  bool acquire_until(Deadline deadline, const std::function<bool()>& arrived) override {
    return take({.deadline = deadline, .arrived = &arrived});
  }

  void release() override {
    auto lease = pool_->lease();
    const memcached_return_t rc = memcached_delete(lease.get(), name_.data(), name_.size(), 0);
    if (memcached_failed(rc) && rc != MEMCACHED_NOTFOUND) {
      fail(lease.get(), rc, pool_->settings(), "releasing the lock " + name_);
    }
  }

  bool locked() const override {
    auto lease = pool_->lease();
    const memcached_return_t rc = memcached_exist(lease.get(), name_.data(), name_.size());
    if (rc == MEMCACHED_NOTFOUND) return false;
    if (memcached_failed(rc)) fail(lease.get(), rc, pool_->settings(), "reading a lock");
    return true;
  }

 private:
  bool take(const LockPolling& polling) {
    auto try_take = [&] {
      auto lease = pool_->lease();
      const memcached_return_t rc = memcached_add(lease.get(), name_.data(), name_.size(), "1", 1,
                                                  pool_->settings().lock_timeout, 0);
      if (memcached_success(rc)) return true;
      if (rc != MEMCACHED_NOTSTORED && rc != MEMCACHED_DATA_EXISTS) {
        fail(lease.get(), rc, pool_->settings(), "taking the lock " + name_);
      }
      return false;
    };
    return poll_lock(try_take, polling);
  }

  std::shared_ptr<Pool> pool_;
  const std::string name_;
};

// Keys memcached can take as they are stay readable; others (too long, with spaces, control
// characters or bytes beyond ASCII) become their SHA-1 in hex. A key that already looks like
// one (40 lowercase hex digits) is mangled too, so that it never reads another key's value.
std::string mangle_for_memcached(std::string_view key) {
  const bool fits = key.size() <= kMaxKey && std::none_of(key.begin(), key.end(), [](char c) {
                      const auto u = static_cast<unsigned char>(c);
                      return u <= 0x20 || u >= 0x7f;
                    });
  const bool looks_mangled = key.size() == 40 && std::all_of(key.begin(), key.end(), [](char c) {
                               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                             });
  return fits && !looks_mangled ? std::string(key) : sha1_mangle_key(key);
}

class MemcachedBackend : public BytesBackend {
 public:
  MemcachedBackend(const Arguments& arguments, Flavor flavor, const char* name)
      : pool_(std::make_shared<Pool>(read_settings(arguments, flavor, name))) {}

  std::optional<std::string> get_serialized(std::string_view key) override {
    return retried([&] { return get_one(key); });
  }

  SerializedValues get_serialized_multi(const Keys& keys) override {
    if (keys.empty()) return {};
    return retried([&] { return get_many(keys); });
  }

  void set_serialized(const std::string& key, std::string_view value) override {
    check_value_size(value, capabilities().max_value_size, settings().name);
    retried([&] {
      auto lease = pool_->lease();
      store(lease, key, value);
    });
  }

  void set_serialized_multi(const SerializedMapping& mapping) override {
    if (mapping.empty()) return;
    for (const auto& item : mapping)
      check_value_size(item.second, capabilities().max_value_size, settings().name);
    retried([&] {
      auto lease = pool_->lease();
      for (const auto& [key, value] : mapping) store(lease, key, value);
    });
  }

  void remove(std::string_view key) override {
    retried([&] {
      auto lease = pool_->lease();
      const memcached_return_t rc = memcached_delete(lease.get(), key.data(), key.size(), 0);
      if (memcached_failed(rc) && rc != MEMCACHED_NOTFOUND)
        fail(lease.get(), rc, settings(), "delete");
    });
  }

  std::unique_ptr<CacheMutex> get_mutex(std::string_view key) override {
    if (!settings().distributed_lock) return nullptr;
    return std::make_unique<MemcachedMutex>(pool_, "_lock" + std::string(key));
  }

  KeyMangler key_mangler() const override { return mangle_for_memcached; }

  bool has_lock_timeout() const override {
    return settings().distributed_lock && settings().lock_timeout != 0;
  }

  BackendCapabilities capabilities() const override {
    return {.max_value_size = settings().item_size_max - kItemOverhead};
  }

 private:
  const Settings& settings() const { return pool_->settings(); }

  // Calls `f` up to `attempts` times while the servers are unavailable (pymemcache's retrying
  // client), retry_delay apart.
  template <class F>
  std::invoke_result_t<F&> retried(F&& f) {
    for (unsigned attempt = 1;; ++attempt) {
      try {
        return f();
      } catch (const BackendUnavailable&) {
        if (attempt >= settings().attempts) throw;
        std::this_thread::sleep_for(std::chrono::duration<double>(settings().retry_delay));
      }
    }
  }

  std::optional<std::string> get_one(std::string_view key) {
    auto lease = pool_->lease();
    std::size_t length = 0;
    uint32_t flags = 0;
    memcached_return_t rc;
    char* value = memcached_get(lease.get(), key.data(), key.size(), &length, &flags, &rc);
    if (rc == MEMCACHED_NOTFOUND) return std::nullopt;
    if (memcached_failed(rc)) fail(lease.get(), rc, settings(), "get");
    std::string out(value != nullptr ? value : "", length);
    std::free(value);
    return out;
  }

  // One multi-get: a round trip per server, whatever the number of keys.
  SerializedValues get_many(const Keys& keys) {
    std::vector<const char*> names;
    std::vector<std::size_t> lengths;
    names.reserve(keys.size());
    lengths.reserve(keys.size());
    for (const auto& key : keys) {
      names.push_back(key.data());
      lengths.push_back(key.size());
    }
    auto lease = pool_->lease();
    memcached_return_t rc = memcached_mget(lease.get(), names.data(), lengths.data(), keys.size());
    if (memcached_failed(rc)) fail(lease.get(), rc, settings(), "get_multi");
    std::map<std::string, std::string, std::less<>> found;
    memcached_result_st result;
    memcached_result_create(lease.get(), &result);
    while (memcached_fetch_result(lease.get(), &result, &rc) != nullptr) {
      found.emplace(
          std::string(memcached_result_key_value(&result), memcached_result_key_length(&result)),
          std::string(memcached_result_value(&result), memcached_result_length(&result)));
    }
    memcached_result_free(&result);
    if (rc != MEMCACHED_END && rc != MEMCACHED_NOTFOUND && memcached_failed(rc)) {
      fail(lease.get(), rc, settings(), "get_multi");
    }
    SerializedValues values;
    values.reserve(keys.size());
    for (const auto& key : keys) {
      auto it = found.find(key);
      values.push_back(it == found.end() ? std::nullopt : std::optional<std::string>(it->second));
    }
    return values;
  }

  // REQUIRES: check_value_size passed for `value`.
  void store(Pool::Lease& lease, const std::string& key, std::string_view value) {
    const memcached_return_t rc = memcached_set(lease.get(), key.data(), key.size(), value.data(),
                                                value.size(), settings().memcached_expire_time, 0);
    if (memcached_failed(rc)) fail(lease.get(), rc, settings(), "set");
  }

  std::shared_ptr<Pool> pool_;
};

}  // namespace

}  // namespace dogpile::memcached

namespace dogpile::memcached {
namespace {
// An entry point's backend: Python's backend of that name, with its client's arguments.
template <Flavor F, const char* Name>
class Named final : public MemcachedBackend {
 public:
  explicit Named(const Arguments& arguments) : MemcachedBackend(arguments, F, Name) {}
};
constexpr char kMemcached[] = "dogpile.cache.memcached";
constexpr char kPylibmc[] = "dogpile.cache.pylibmc";
constexpr char kBmemcached[] = "dogpile.cache.bmemcached";
constexpr char kPymemcache[] = "dogpile.cache.pymemcache";
using Memcached = Named<Flavor::memcached, kMemcached>;
using Pylibmc = Named<Flavor::pylibmc, kPylibmc>;
using Bmemcached = Named<Flavor::bmemcached, kBmemcached>;
using Pymemcache = Named<Flavor::pymemcache, kPymemcache>;
}  // namespace
}  // namespace dogpile::memcached

DOGPILE_BACKEND_PLUGIN(memcached, "dogpile.cache.memcached", "1.0.0",
                       "memcached through libmemcached: the wire format, one multi-get per call, "
                       "consistent hashing, and an optional distributed dogpile lock",
                       dogpile::memcached::Memcached);
DOGPILE_BACKEND_PLUGIN(pylibmc, "dogpile.cache.pylibmc", "1.0.0",
                       "memcached, with pylibmc's arguments (binary, behaviors)",
                       dogpile::memcached::Pylibmc);
DOGPILE_BACKEND_PLUGIN(bmemcached, "dogpile.cache.bmemcached", "1.0.0",
                       "memcached, with python-binary-memcached's arguments (SASL username and "
                       "password)",
                       dogpile::memcached::Bmemcached);
DOGPILE_BACKEND_PLUGIN(pymemcache, "dogpile.cache.pymemcache", "1.0.0",
                       "memcached, with pymemcache's arguments (HashClient failure handling, the "
                       "retrying client)",
                       dogpile::memcached::Pymemcache);
