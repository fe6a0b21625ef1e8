// dogpile.cache.redis: values in Redis, in dogpile.cache's wire format, through a pool of
// hiredis connections; optionally a distributed dogpile lock held in Redis itself, with the
// same key and protocol as Python dogpile.cache on redis-py (`SET _lock<key> <token> NX PX`,
// released by a script only while the token is still ours), so C++ and Python processes
// exclude each other's creators; the release is also published, to wake C++ waiters at once.
// Pub/sub carries messages between the processes sharing the server (CacheBackend::broadcast).
#include <hiredis/hiredis.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <dogpile/sdk/sdk.hpp>
#include <dogpile/sdk/sigpipe.hpp>
#include <list>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "slots.hpp"

namespace dogpile::redis {

namespace {

struct Settings {
  std::string host = "localhost";
  int port = 6379;
  std::string unix_socket;  // from unix:// URLs
  long db = 0;
  std::string username;
  std::string password;
  double socket_timeout = 5;  // redis-py's default is none: a stalled server blocks for ever
  std::optional<double> socket_connect_timeout;
  bool socket_keepalive = false;
  long long redis_expiration_time = 0;  // seconds; 0: no server-side expiry
  bool distributed_lock = false;
  double lock_timeout = 30;  // seconds; 0: the lock never expires
  double lock_sleep = 0.1;
  bool lock_blocking = true;
  std::optional<double> lock_blocking_timeout;
  bool thread_local_lock = true;
  std::string lock_prefix = "_lock";
  unsigned pool_size = 16;

  // dogpile.cache.redis_sentinel: the master of `service_name` is the server, as the sentinels
  // name it (host and port are then where it was found).
  std::string service_name;
  std::vector<std::pair<std::string, int>> sentinels;
  std::vector<std::pair<std::string, int>> startup_nodes;  // dogpile.cache.redis_cluster
  std::string sentinel_username;
  std::string sentinel_password;
  double sentinel_socket_timeout = 5;
  std::optional<double> sentinel_connect_timeout;

  // Where the server is, for messages: never credentials.
  std::string where() const {
    std::string out =
        unix_socket.empty() ? host + ":" + std::to_string(port) : "unix:" + unix_socket;
    if (!service_name.empty()) out += " (master of Redis Sentinel service '" + service_name + "')";
    return out;
  }
};

// Applies redis://[[user]:password@]host[:port][/db][?db=N] or unix:///path[?db=N].
void apply_url(Settings& s, const std::string& url, const std::string& key) {
  auto fail = [&](const char* why) {
    throw ValidationError(key + " is not a Redis URL (" + why +
                          "): expected redis://[[user]:password@]host:port/db or unix:///path");
  };
  if (url.starts_with("rediss://")) {
    throw ValidationError(key +
                          ": rediss:// is Redis over TLS, which this build cannot speak "
                          "(Debian's hiredis 0.14 has no TLS); use redis:// on a network you "
                          "trust, or a TLS tunnel");
  }
  // The query: db=N, as redis-py reads it; other redis-py query options are arguments here.
  std::string_view without_query = url;
  if (auto q = url.find('?'); q != std::string::npos) {
    without_query = std::string_view(url).substr(0, q);
    std::string_view query = std::string_view(url).substr(q + 1);
    while (!query.empty()) {
      const std::string_view item = query.substr(0, query.find('&'));
      query.remove_prefix(std::min(query.size(), item.size() + 1));
      const std::string_view name = item.substr(0, item.find('='));
      if (name != "db") {
        throw ValidationError(key + ": the URL's query option '" + std::string(name) +
                              "' is not read from the URL here; give it as the argument " +
                              std::string(name) + " beside url");
      }
      const std::string_view db = item.substr(std::min(item.size(), name.size() + 1));
      auto [end, ec] = std::from_chars(db.data(), db.data() + db.size(), s.db);
      if (db.empty() || ec != std::errc() || end != db.data() + db.size()) {
        fail("the database is not a number");
      }
    }
  }
  if (without_query.starts_with("unix://")) {
    std::string rest(without_query.substr(7));
    if (rest.empty() || rest.front() != '/') fail("no socket path");
    s.unix_socket = rest;
    return;
  }
  if (!without_query.starts_with("redis://")) fail("unknown scheme");
  std::string rest(without_query.substr(8));
  if (auto at = rest.rfind('@'); at != std::string::npos) {
    const std::string credentials = rest.substr(0, at);
    rest = rest.substr(at + 1);
    if (auto colon = credentials.find(':'); colon != std::string::npos) {
      s.username = credentials.substr(0, colon);
      s.password = credentials.substr(colon + 1);
    } else {
      s.password = credentials;
    }
  }
  if (auto slash = rest.find('/'); slash != std::string::npos) {
    const std::string db = rest.substr(slash + 1);
    rest.resize(slash);
    if (!db.empty()) {
      auto [end, ec] = std::from_chars(db.data(), db.data() + db.size(), s.db);
      if (ec != std::errc() || end != db.data() + db.size()) fail("the database is not a number");
    }
  }
  if (auto colon = rest.rfind(':'); colon != std::string::npos) {
    const std::string port = rest.substr(colon + 1);
    rest.resize(colon);
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), s.port);
    if (ec != std::errc() || end != port.data() + port.size()) fail("the port is not a number");
  }
  if (!rest.empty()) s.host = rest;
}

// One server of a list (sentinels, a cluster's startup nodes): "host:port" (`default_port`
// when left out), [host, port], or {"host": host, "port": port} as redis-py's ClusterNode.
std::pair<std::string, int> node_address(const nlohmann::json& item, const std::string& key,
                                         const char* what, long default_port) {
  const auto fail = [&] {
    throw ValidationError(key + " lists " + item.dump() + ": each " + what +
                          " is \"host:port\" or [host, port]");
  };
  std::string host;
  long port = default_port;
  if (item.is_array() && item.size() == 2 && item[0].is_string() && item[1].is_number_integer()) {
    host = item[0].get<std::string>();
    port = item[1].get<long>();
  } else if (item.is_object() && item.size() == 2 && item.contains("host") &&
             item["host"].is_string() && item.contains("port") &&
             item["port"].is_number_integer()) {
    host = item["host"].get<std::string>();
    port = item["port"].get<long>();
  } else if (item.is_string()) {
    host = item.get<std::string>();
    if (auto colon = host.rfind(':'); colon != std::string::npos) {
      const std::string digits = host.substr(colon + 1);
      auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
      if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) fail();
      host.resize(colon);
    }
  } else {
    fail();
  }
  if (host.empty() || port <= 0 || port > 65535) fail();
  return {host, static_cast<int>(port)};
}

// The options of a connection (`c`, a section: connection_kwargs or sentinel_kwargs) that
// have a meaning here, on top of `s`.
void read_connection_options(const Arguments& c, std::string& username, std::string& password,
                             double& socket_timeout, std::optional<double>& connect_timeout) {
  username = c.get("username", username);
  password = c.get("password", password);
  socket_timeout = c.find_seconds("socket_timeout", 1e-6).value_or(socket_timeout);
  if (auto connect = c.find_seconds("socket_connect_timeout", 1e-6)) connect_timeout = connect;
}

// The list argument `name` of servers (a JSON list, or "host:port, ..." in INI).
std::vector<std::pair<std::string, int>> node_list(const Arguments& a, const char* name,
                                                   const char* what, long default_port) {
  std::vector<std::pair<std::string, int>> nodes;
  const nlohmann::json* list = a.find_json(name);
  if (list == nullptr) return nodes;
  if (list->is_string()) {
    for (const auto& item : a.get<std::vector<std::string>>(name, {})) {
      nodes.push_back(node_address(item, a.key(name), what, default_port));
    }
  } else if (list->is_array()) {
    for (const auto& item : *list) {
      nodes.push_back(node_address(item, a.key(name), what, default_port));
    }
  } else {
    throw ValidationError(a.key(name) + " must be a list of \"host:port\" or [host, port]");
  }
  if (nodes.empty()) throw ValidationError(a.key(name) + " must not be empty");
  return nodes;
}

// connection_kwargs of dogpile.cache's redis_sentinel and redis_cluster: redis-py's options
// for the servers' connections, over the top-level arguments; those with a meaning here.
void read_connection_kwargs(Settings& s, const Arguments& a, const char* plugin) {
  const Arguments connection = a.section("connection_kwargs");
  read_connection_options(connection, s.username, s.password, s.socket_timeout,
                          s.socket_connect_timeout);
  s.db = connection.get("db", s.db);
  s.socket_keepalive = connection.get("socket_keepalive", s.socket_keepalive);
  connection.reject_unknown(plugin);
}

void read_sentinel_settings(Settings& s, const Arguments& a) {
  s.service_name = a.get<std::string>("service_name", "mymaster");
  if (s.service_name.empty()) throw ValidationError(a.key("service_name") + " must not be empty");
  s.sentinels = node_list(a, "sentinels", "sentinel", 26379);
  if (s.sentinels.empty()) {
    throw ValidationError("missing required argument " + a.key("sentinels") +
                          ": the sentinels to ask for the master, as [\"host:port\", ...]");
  }
  for (const char* name : {"url", "host", "port"}) {
    a.ignore(name, "the master's address comes from the sentinels");
  }
  // As dogpile.cache: the master's connections take connection_kwargs over the top-level
  // arguments, the sentinels' take sentinel_kwargs over the top-level password and
  // socket_timeout.
  s.sentinel_password = s.password;
  s.sentinel_socket_timeout = s.socket_timeout;
  const Arguments sentinel = a.section("sentinel_kwargs");
  read_connection_options(sentinel, s.sentinel_username, s.sentinel_password,
                          s.sentinel_socket_timeout, s.sentinel_connect_timeout);
  sentinel.ignore("db", "a sentinel has no databases");
  sentinel.reject_unknown("dogpile.cache.redis_sentinel");
  read_connection_kwargs(s, a, "dogpile.cache.redis_sentinel");
}

// The startup nodes of dogpile.cache.redis_cluster: startup_nodes, else the url's node.
void read_cluster_settings(Settings& s, const Arguments& a) {
  s.startup_nodes = node_list(a, "startup_nodes", "startup node", 6379);
  if (s.startup_nodes.empty()) s.startup_nodes.emplace_back(s.host, s.port);
  read_connection_kwargs(s, a, "dogpile.cache.redis_cluster");
  if (s.db != 0) {
    throw ValidationError(a.key("db") + " must be 0: a Redis Cluster has only database 0");
  }
  if (s.lock_prefix.find_first_of("{}") != std::string::npos) {
    throw ValidationError(a.key("lock_prefix") +
                          " must not hold braces on a cluster: the lock key's hash tag is the "
                          "key's, so that lock and value live in one slot");
  }
}

enum class Mode { plain, sentinel, cluster };

// dogpile.cache.redis_sentinel's locks default to distributed and free to be released by
// another thread, as dogpile.cache's.
Settings read_settings(const Arguments& a, const PluginContext& context, Mode mode) {
  Settings s;
  if (mode == Mode::sentinel) {
    s.distributed_lock = true;
    s.thread_local_lock = false;
  } else {
    if (auto url = a.find<std::string>("url")) apply_url(s, *url, a.key("url"));
    s.host = a.get("host", s.host);
    s.port = a.get("port", s.port);
  }
  s.db = a.get("db", s.db);
  s.username = a.get("username", s.username);
  s.password = a.get("password", s.password);
  // hiredis takes timeouts in microseconds, Redis' PX milliseconds.
  s.socket_timeout = a.find_seconds("socket_timeout", 1e-6).value_or(s.socket_timeout);
  s.socket_connect_timeout = a.find_seconds("socket_connect_timeout", 1e-6);
  s.socket_keepalive = a.get("socket_keepalive", s.socket_keepalive);
  s.lock_prefix = a.get("lock_prefix", s.lock_prefix);
  if (mode == Mode::sentinel) read_sentinel_settings(s, a);
  if (mode == Mode::cluster) read_cluster_settings(s, a);
  s.redis_expiration_time = a.get("redis_expiration_time", s.redis_expiration_time);
  s.distributed_lock = a.get("distributed_lock", s.distributed_lock);
  s.lock_timeout = a.find_seconds("lock_timeout", 1e-3).value_or(s.lock_timeout);
  s.lock_sleep = a.find_seconds("lock_sleep", 1e-6).value_or(s.lock_sleep);
  s.lock_blocking = a.get("lock_blocking", s.lock_blocking);
  s.lock_blocking_timeout = a.find_seconds("lock_blocking_timeout", 1e-6);
  s.thread_local_lock = a.get("thread_local_lock", s.thread_local_lock);
  s.lock_prefix = a.get("lock_prefix", s.lock_prefix);
  s.pool_size = static_cast<unsigned>(
      a.find_count("connection_pool_size", 1, kMostPooledConnections).value_or(s.pool_size));
  // Ignoring these would connect without the encryption or probes the config asks for.
  for (const char* unsupported : {"ssl", "socket_keepalive_options"}) {
    if (a.contains(unsupported)) {
      throw ValidationError(a.key(unsupported) +
                            " is not supported: the hiredis this backend is built with (0.14) "
                            "has no TLS and no keepalive options");
    }
  }
  if (mode == Mode::plain) {
    a.ignore("connection_kwargs", "redis-py's own connection options have no hiredis equivalent");
  }
  a.ignore("connection_pool",
           "a redis-py pool object cannot be given here; see connection_pool_size");
  if (s.port <= 0 || s.port > 65535) {
    throw ValidationError(a.key("port") + " must be between 1 and 65535");
  }
  if (s.redis_expiration_time < 0) {
    throw ValidationError(a.key("redis_expiration_time") + " must not be negative");
  }
  if (s.lock_prefix.empty() || s.lock_prefix.find_first_of(" \t\r\n") != std::string::npos) {
    throw ValidationError(a.key("lock_prefix") + " must be a non-empty string without spaces");
  }
  if (s.lock_sleep <= 0) throw ValidationError(a.key("lock_sleep") + " must be positive");
  // A command or connection that may wait for ever is not offered.
  if (s.socket_timeout <= 0) throw ValidationError(a.key("socket_timeout") + " must be positive");
  if (s.socket_connect_timeout && *s.socket_connect_timeout <= 0) {
    throw ValidationError(a.key("socket_connect_timeout") + " must be positive");
  }
  if (s.distributed_lock && s.thread_local_lock) {
    context.log(
        LogLevel::warning, "dogpile.cache.redis",
        a.key("thread_local_lock") +
            " should be false when distributed_lock is true: a background regeneration releases "
            "the lock from another thread");
  }
  return s;
}

timeval to_timeval(double seconds) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(seconds);
  tv.tv_usec = static_cast<suseconds_t>((seconds - static_cast<double>(tv.tv_sec)) * 1e6);
  return tv;
}

struct ReplyDeleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

struct ContextDeleter {
  void operator()(redisContext* context) const { redisFree(context); }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;

[[noreturn]] void unavailable(redisContext* context, const Settings& s) {
  throw BackendUnavailable("Redis at " + s.where() + " is unavailable: " +
                           (context != nullptr ? context->errstr : "out of memory"));
}

// Queues one command on `context`; throws BackendUnavailable on a connection error.
void append(redisContext* context, const std::vector<std::string_view>& args, const Settings& s) {
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  argv.reserve(args.size());
  lengths.reserve(args.size());
  for (auto arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  if (redisAppendCommandArgv(context, static_cast<int>(argv.size()), argv.data(), lengths.data()) !=
      REDIS_OK) {
    unavailable(context, s);
  }
}

// A key that holds another type than a string (a list, a hash).
struct WrongType : Error {
  using Error::Error;
};

// A cluster node's MOVED or ASK: the slot is served at host:port (for good, or for this
// command while the slot migrates).
struct Redirect : Error {
  Redirect(const std::string& text, bool ask, unsigned slot, std::string host, int port)
      : Error(text), ask(ask), slot(slot), host(std::move(host)), port(port) {}
  bool ask;
  unsigned slot;
  std::string host;
  int port;
};

// "MOVED <slot> <host>:<port>" or "ASK ..."; nullopt for another error. An empty host means
// the node that answered.
std::optional<Redirect> redirect_of(const std::string& text, const Settings& from) {
  const bool ask = text.starts_with("ASK ");
  if (!ask && !text.starts_with("MOVED ")) return std::nullopt;
  std::istringstream fields(text);
  std::string word, address;
  unsigned slot = 0;
  if (!(fields >> word >> slot >> address) || slot >= kClusterSlots) return std::nullopt;
  const auto colon = address.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  int port = 0;
  const std::string digits = address.substr(colon + 1);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (ec != std::errc() || end != digits.data() + digits.size() || port <= 0 || port > 65535) {
    return std::nullopt;
  }
  std::string host = address.substr(0, colon);
  if (host.empty()) host = from.host;
  return Redirect("Redis at " + from.where() + " answered: " + text, ask, slot, host, port);
}

// Reads the next reply, after writing what is queued; throws BackendUnavailable on a
// connection error and Error on an error reply.
Reply read_reply(redisContext* context, const Settings& s) {
  void* raw = nullptr;
  int status;
  {
    const NoSigpipe guard;  // hiredis writes with write(2): a server gone would raise SIGPIPE
    status = redisGetReply(context, &raw);
  }
  if (status != REDIS_OK || raw == nullptr) unavailable(context, s);
  Reply reply(static_cast<redisReply*>(raw));
  if (reply->type == REDIS_REPLY_ERROR) {
    const std::string text(reply->str, reply->len);
    if (text.starts_with("WRONGTYPE"))
      throw WrongType("Redis at " + s.where() + " answered: " + text);
    if (auto redirect = redirect_of(text, s)) throw *redirect;
    if (text.starts_with("CLUSTERDOWN") || text.starts_with("TRYAGAIN")) {
      throw BackendUnavailable("Redis at " + s.where() + " answered: " + text);
    }
    if (text.starts_with("READONLY") && !s.service_name.empty()) {
      // A master demoted under us: the sentinels are asked for the new one.
      throw BackendUnavailable("Redis at " + s.where() + " is a replica now: " + text);
    }
    throw ServerError("Redis at " + s.where() + " answered: " + text);
  }
  return reply;
}

Context connect(const Settings& s) {
  const double connect_seconds = s.socket_connect_timeout.value_or(s.socket_timeout);
  Context context(
      s.unix_socket.empty()
          ? redisConnectWithTimeout(s.host.c_str(), s.port, to_timeval(connect_seconds))
          : redisConnectUnixWithTimeout(s.unix_socket.c_str(), to_timeval(connect_seconds)));
  if (!context || context->err) {
    throw BackendUnavailable("cannot connect to Redis at " + s.where() + ": " +
                             (context ? context->errstr : "out of memory"));
  }
  redisSetTimeout(context.get(), to_timeval(s.socket_timeout));
  if (s.socket_keepalive) redisEnableKeepAlive(context.get());
  auto run = [&](const std::vector<std::string_view>& args) {
    append(context.get(), args, s);
    read_reply(context.get(), s);
  };
  if (!s.password.empty()) {
    if (s.username.empty()) {
      run({"AUTH", s.password});
    } else {
      run({"AUTH", s.username, s.password});
    }
  }
  if (s.db != 0) run({"SELECT", std::to_string(s.db)});
  return context;
}

std::optional<std::string> string_of(const redisReply& reply) {
  if (reply.type == REDIS_REPLY_STRING) return std::string(reply.str, reply.len);
  return std::nullopt;
}

// A connection, and the server it is to (for messages; the master of a Sentinel service
// changes).
struct Connection {
  Context context;
  std::shared_ptr<const Settings> server;
  std::uint64_t epoch = 0;  // the master it was opened to; connections to an older one go
};

// How to reach one of the sentinels of `s`.
Settings sentinel_settings(const Settings& s, const std::pair<std::string, int>& address) {
  Settings sentinel;
  sentinel.host = address.first;
  sentinel.port = address.second;
  sentinel.username = s.sentinel_username;
  sentinel.password = s.sentinel_password;
  sentinel.socket_timeout = s.sentinel_socket_timeout;
  sentinel.socket_connect_timeout = s.sentinel_connect_timeout;
  return sentinel;
}

// Asks the sentinels, in order, for the master of the service: the first that names one
// whose state is not down (SENTINEL MASTER) tells where it is. Throws BackendUnavailable
// naming the service and what each sentinel said.
std::pair<std::string, int> discover_master(const Settings& s) {
  std::string said;
  for (const auto& address : s.sentinels) {
    const Settings sentinel = sentinel_settings(s, address);
    const std::string name = sentinel.where();
    try {
      Context context = connect(sentinel);
      append(context.get(), {"SENTINEL", "MASTER", s.service_name}, sentinel);
      Reply reply = read_reply(context.get(), sentinel);
      std::map<std::string, std::string, std::less<>> state;
      for (std::size_t i = 0; reply->type == REDIS_REPLY_ARRAY && i + 1 < reply->elements; i += 2) {
        auto field = string_of(*reply->element[i]);
        auto value = string_of(*reply->element[i + 1]);
        if (field && value) state[*field] = *value;
      }
      const std::string flags = state["flags"];
      int master_port = 0;
      const std::string& digits = state["port"];
      auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), master_port);
      if (state["ip"].empty() || ec != std::errc() || end != digits.data() + digits.size()) {
        said += "; sentinel " + name + ": no address for it";
      } else if (flags.find("s_down") != std::string::npos ||
                 flags.find("o_down") != std::string::npos) {
        said += "; sentinel " + name + ": its master " + state["ip"] + ":" + digits + " is down";
      } else {
        return {state["ip"], master_port};
      }
    } catch (const Error& e) {  // unreachable, or does not know the service
      said += std::string("; ") + e.what();
    }
  }
  throw BackendUnavailable("Redis Sentinel service '" + s.service_name + "': no master known" +
                           said);
}

// Where a key's commands go: the one server (Pool), or the cluster node that serves its slot
// (Cluster). Also what the pub/sub and the locks are built on.
class Router {
 public:
  virtual ~Router() = default;
  virtual const Settings& settings() const = 0;
  // One command about `key` (its first key), its reply; error replies throw.
  virtual Reply command(std::string_view key, const std::vector<std::string_view>& args) = 0;
  virtual void publish(std::string_view channel, std::string_view message) = 0;
  // A connection of its own, for a subscriber; forget() hears of its failure.
  virtual Connection open_subscriber() = 0;
  virtual void forget(std::uint64_t epoch, const std::string& why) = 0;
};

// The backend's connections (the SDK's ConnectionPool) and its settings. A call waits at most
// socket_timeout for a free connection. A connection that fails is dropped and the next call
// reconnects, so the backend recovers by itself once the server is back.
// With Sentinel, the server is the master the sentinels name: asked before the first
// connection and again after a connection failed or found a replica (a failover). A new
// connection checks that its server is a master (ROLE); when the sentinels name another
// master, connections to the old one are closed instead of used.
class Pool final : public Router {
 public:
  explicit Pool(Settings settings)
      : settings_(std::move(settings)),
        connections_(settings_.pool_size, settings_.socket_timeout,
                     settings_.service_name.empty()
                         ? "Redis at " + settings_.where()
                         : "Redis Sentinel service '" + settings_.service_name + "'",
                     [this] { return open(); }) {
    if (settings_.service_name.empty()) server_ = std::make_shared<const Settings>(settings_);
  }

  // One connection for the caller's round trips; back to the pool unless it failed.
  class Lease {
   public:
    explicit Lease(Pool& pool) : pool_(pool), lease_(pool.current_lease()) {}
    // A connection with replies still unread (a pipeline cut short by an error) would hand
    // them to its next user: it is closed instead.
    ~Lease() {
      if (unread_ != 0) lease_.discard();
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;

    Reply command(const std::vector<std::string_view>& args) {
      send(args);
      return reply();
    }
    // Pipelining: send several commands, then read their replies in order.
    void send(const std::vector<std::string_view>& args) {
      guarded([&] { append(lease_->context.get(), args, *lease_->server); });
      ++unread_;
    }
    Reply reply() {
      Reply out;
      --unread_;  // read, or failed to read: either way this reply is gone
      guarded([&] { out = read_reply(lease_->context.get(), *lease_->server); });
      return out;
    }

   private:
    template <class F>
    void guarded(F&& f) {
      try {
        f();
      } catch (const BackendUnavailable& e) {
        lease_.discard();  // never reused
        pool_.forget(lease_->epoch, e.what());
        throw;
      }
    }
    Pool& pool_;
    ConnectionPool<Connection>::Lease lease_;
    unsigned unread_ = 0;
  };

  Lease lease() { return Lease(*this); }
  const Settings& settings() const override { return settings_; }

  Reply command(std::string_view, const std::vector<std::string_view>& args) override {
    return lease().command(args);
  }
  void publish(std::string_view channel, std::string_view message) override {
    lease().command({"PUBLISH", channel, message});
  }
  Connection open_subscriber() override { return open(); }

  // A connection of its own (a subscriber's), to the server the pool's connections go to.
  Connection open() {
    std::uint64_t epoch = 0;
    auto server = current(epoch);
    Connection connection{connect(*server), server, epoch};
    if (!settings_.service_name.empty()) {
      // The sentinels may name a master that a failover has just demoted.
      append(connection.context.get(), {"ROLE"}, *server);
      Reply role = read_reply(connection.context.get(), *server);
      const auto what = role->type == REDIS_REPLY_ARRAY && role->elements > 0
                            ? string_of(*role->element[0])
                            : std::nullopt;
      if (what != "master") {
        const std::string why = "Redis at " + server->where() + " is no master (its role is " +
                                what.value_or("unknown") + ")";
        forget(epoch, why);
        throw BackendUnavailable(why);
      }
    }
    return connection;
  }

  // A connection to the first sentinel that answers, for a subscriber.
  Connection open_sentinel() const {
    std::string said;
    for (const auto& address : settings_.sentinels) {
      auto sentinel = std::make_shared<const Settings>(sentinel_settings(settings_, address));
      try {
        return {connect(*sentinel), sentinel, 0};
      } catch (const BackendUnavailable& e) {
        said += std::string("; ") + e.what();
      }
    }
    throw BackendUnavailable("Redis Sentinel service '" + settings_.service_name +
                             "': no sentinel answers" + said);
  }

  // A sentinel announced a new master (+switch-master): connections to the old one close.
  void master_is(const std::string& host, int port) {
    auto server = std::make_shared<Settings>(settings_);
    server->host = host;
    server->port = port;
    std::lock_guard guard(mutex_);
    if (!last_ || last_->host != host || last_->port != port) ++epoch_;
    server_ = last_ = server;
    ask_after_ = {};
  }

  // The connection opened at `epoch` failed (`why`): with Sentinel, the sentinels are asked
  // where the master is, not before kRediscoveryPause (calls meanwhile fail with `why`, so that
  // an outage does not turn every call into a round of questions to the sentinels).
  void forget(std::uint64_t epoch, const std::string& why) override {
    if (settings_.service_name.empty()) return;
    std::lock_guard guard(mutex_);
    if (epoch == epoch_ && server_) {
      server_.reset();
      failure_ = why;
      ask_after_ = std::chrono::steady_clock::now() + kRediscoveryPause;
    }
  }

 private:
  // The server to connect to, and its epoch; with Sentinel, asked of the sentinels when it
  // is not known (one thread asks, the others wait for its answer).
  std::shared_ptr<const Settings> current(std::uint64_t& epoch) {
    // Known (or asked by another thread meanwhile), or failed too recently to ask again.
    const auto known = [&] {
      std::lock_guard guard(mutex_);
      if (server_) {
        epoch = epoch_;
        return true;
      }
      if (std::chrono::steady_clock::now() < ask_after_) throw BackendUnavailable(failure_);
      return false;
    };
    if (known()) return server_;
    std::lock_guard asking(discovery_);
    if (known()) return server_;
    std::pair<std::string, int> master;
    try {
      master = discover_master(settings_);
    } catch (const BackendUnavailable& e) {
      std::lock_guard guard(mutex_);
      failure_ = e.what();
      ask_after_ = std::chrono::steady_clock::now() + kRediscoveryPause;
      throw;
    }
    master_is(master.first, master.second);
    std::lock_guard guard(mutex_);
    epoch = epoch_;
    return server_;
  }

  // A connection to the current master: connections opened to an earlier one are closed.
  ConnectionPool<Connection>::Lease current_lease() {
    for (;;) {
      auto lease = connections_.lease();
      if (lease->epoch == epoch_.load()) return lease;
      lease.discard();
    }
  }

  static constexpr std::chrono::milliseconds kRediscoveryPause{100};

  const Settings settings_;
  ConnectionPool<Connection> connections_;
  std::mutex discovery_;
  std::mutex mutex_;                        // guards what follows
  std::shared_ptr<const Settings> server_;  // none: to be asked of the sentinels
  std::shared_ptr<const Settings> last_;    // the last master the sentinels named
  std::atomic<std::uint64_t> epoch_{0};     // changed under mutex_
  std::string failure_;                     // why the master was forgotten
  std::chrono::steady_clock::time_point ask_after_;
};

// A Redis Cluster, as its specification asks of a client: a key's commands go to the master
// serving its slot, from a slot map read with CLUSTER SLOTS (from the startup nodes, or any
// node known since); MOVED updates the map and is followed, ASK is followed for the one
// command (after ASKING). A node that fails, or a MOVED, has the whole map read again, at
// most every 100 ms. Each node has its own pool of connections.
class Cluster final : public Router {
 public:
  explicit Cluster(Settings settings) : settings_(std::move(settings)), slots_(kClusterSlots) {}

  const Settings& settings() const override { return settings_; }

  Reply command(std::string_view key, const std::vector<std::string_view>& args) override {
    return run(key_slot(key), args);
  }

  void publish(std::string_view channel, std::string_view message) override {
    run(key_slot(channel), {"PUBLISH", channel, message});  // the cluster passes it to every node
  }

  Connection open_subscriber() override {
    try {
      return node_for(0)->open();
    } catch (const BackendUnavailable&) {
      refresh_soon();
      throw;
    }
  }
  void forget(std::uint64_t, const std::string&) override { refresh_soon(); }

  // The node serving `slot`; BackendUnavailable when none does.
  std::shared_ptr<Pool> node_for(unsigned slot) {
    refresh_if_wanted();
    std::shared_lock guard(map_mutex_);
    if (auto node = slots_[slot]) return node;
    throw BackendUnavailable("Redis Cluster: no node serves slot " + std::to_string(slot) +
                             (failure_.empty() ? "" : " (" + failure_ + ")"));
  }

  // `count` commands, one per key, in one round trip per node: `key_of(i)` routes command i,
  // `args_of(i)` is it; `on_reply(i, reply)` hears each reply, null for a key holding another
  // type. A redirected command is run again on its own, following the redirection.
  template <class KeyOf, class ArgsOf, class OnReply>
  void pipelined(std::size_t count, KeyOf&& key_of, ArgsOf&& args_of, OnReply&& on_reply) {
    std::vector<std::pair<std::shared_ptr<Pool>, std::vector<std::size_t>>> by_node;
    for (std::size_t i = 0; i < count; ++i) {
      auto node = node_for(key_slot(key_of(i)));
      auto it = std::find_if(by_node.begin(), by_node.end(),
                             [&](const auto& group) { return group.first == node; });
      if (it == by_node.end()) it = by_node.insert(by_node.end(), {node, {}});
      it->second.push_back(i);
    }
    std::vector<std::size_t> redirected;
    try {
      for (auto& [node, indexes] : by_node) {
        auto lease = node->lease();
        for (auto i : indexes) lease.send(args_of(i));
        for (auto i : indexes) {
          try {
            on_reply(i, lease.reply());
          } catch (const Redirect& redirect) {
            follow(redirect);
            redirected.push_back(i);
          } catch (const WrongType&) {
            on_reply(i, Reply());
          }
        }
      }
    } catch (const BackendUnavailable&) {
      refresh_soon();
      throw;
    }
    for (auto i : redirected) {
      try {
        on_reply(i, command(key_of(i), args_of(i)));
      } catch (const WrongType&) {
        on_reply(i, Reply());
      }
    }
  }

 private:
  static constexpr int kMostRedirections = 5;
  static constexpr std::chrono::milliseconds kRefreshPause{100};

  Reply run(unsigned slot, const std::vector<std::string_view>& args) {
    std::shared_ptr<Pool> node = node_for(slot);
    bool asking = false;
    for (int hop = 0;; ++hop) {
      try {
        auto lease = node->lease();
        if (!asking) return lease.command(args);
        lease.send({"ASKING"});
        lease.send(args);
        lease.reply();
        return lease.reply();
      } catch (const Redirect& redirect) {
        if (hop == kMostRedirections) {
          refresh_soon();
          throw BackendUnavailable("Redis Cluster: slot " + std::to_string(slot) + " moved " +
                                   std::to_string(hop + 1) +
                                   " times in a row; last: " + redirect.what());
        }
        node = follow(redirect);
        asking = redirect.ask;
      } catch (const BackendUnavailable&) {
        refresh_soon();
        throw;
      }
    }
  }

  // The node a redirection names; a MOVED also moves its slot in the map, and asks for the
  // whole map again (a resharding moves many slots).
  std::shared_ptr<Pool> follow(const Redirect& redirect) {
    std::unique_lock guard(map_mutex_);
    auto node = pool_at(redirect.host, redirect.port);
    if (!redirect.ask) {
      slots_[redirect.slot] = node;
      refresh_wanted_ = true;
    }
    return node;
  }

  void refresh_soon() { refresh_wanted_ = true; }

  // Reads the slot map when there is none (waiting for it), or when one was asked for and
  // nobody reads it now; not within 100 ms of the last try (without a map, calls meanwhile
  // fail as it did).
  void refresh_if_wanted() {
    if (loaded_.load() && !refresh_wanted_.load()) return;  // every call: no lock
    // Whether the map is to be read now.
    const auto due = [&] {
      std::shared_lock guard(map_mutex_);
      if (std::chrono::steady_clock::now() < next_refresh_) {
        if (loaded_) return false;
        throw BackendUnavailable("Redis Cluster: " + failure_);
      }
      return !loaded_ || refresh_wanted_;
    };
    if (!due()) return;
    std::unique_lock refreshing(refresh_mutex_, std::defer_lock);
    if (loaded_.load()) {
      if (!refreshing.try_lock()) return;  // another thread reads it; the old map serves
    } else {
      refreshing.lock();  // no map to serve: wait for the thread reading it
    }
    if (due()) refresh();
  }

  // CLUSTER SLOTS from the first node that answers: the known masters first, then the
  // startup nodes. Keeps the old map when none answers (throws when there is none).
  void refresh() {
    std::vector<std::pair<std::string, int>> candidates;
    {
      std::shared_lock guard(map_mutex_);
      for (const auto& [address, pool] : pools_) {
        candidates.emplace_back(pool->settings().host, pool->settings().port);
      }
    }
    candidates.insert(candidates.end(), settings_.startup_nodes.begin(),
                      settings_.startup_nodes.end());
    std::string said;
    for (const auto& [host, port] : candidates) {
      Settings node = settings_;
      node.host = host;
      node.port = port;
      try {
        Context context = connect(node);
        append(context.get(), {"CLUSTER", "SLOTS"}, node);
        Reply reply = read_reply(context.get(), node);
        if (install(*reply, node)) return;
        said += "; " + node.where() + " serves no slot map";
      } catch (const Error& e) {
        said += std::string("; ") + e.what();
      }
    }
    std::unique_lock guard(map_mutex_);
    next_refresh_ = std::chrono::steady_clock::now() + kRefreshPause;
    failure_ = "no node answered CLUSTER SLOTS" + said;
    if (!loaded_) throw BackendUnavailable("Redis Cluster: " + failure_);
  }

  // A CLUSTER SLOTS reply ([[first, last, [host, port, ...], replicas...], ...]) as the map.
  bool install(const redisReply& reply, const Settings& from) {
    if (reply.type != REDIS_REPLY_ARRAY || reply.elements == 0) return false;
    std::unique_lock guard(map_mutex_);
    std::vector<std::shared_ptr<Pool>> slots(kClusterSlots);
    for (std::size_t r = 0; r < reply.elements; ++r) {
      const redisReply& range = *reply.element[r];
      if (range.type != REDIS_REPLY_ARRAY || range.elements < 3 ||
          range.element[0]->type != REDIS_REPLY_INTEGER ||
          range.element[1]->type != REDIS_REPLY_INTEGER ||
          range.element[2]->type != REDIS_REPLY_ARRAY || range.element[2]->elements < 2 ||
          range.element[2]->element[1]->type != REDIS_REPLY_INTEGER) {
        return false;
      }
      const long long first = range.element[0]->integer;
      const long long last = range.element[1]->integer;
      const long long port = range.element[2]->element[1]->integer;
      std::string host = string_of(*range.element[2]->element[0]).value_or("");
      if (host.empty() || host == "?") host = from.host;
      if (first < 0 || last < first || last >= kClusterSlots || port <= 0 || port > 65535) {
        return false;
      }
      auto node = pool_at(host, static_cast<int>(port));
      for (long long slot = first; slot <= last; ++slot) slots[slot] = node;
    }
    slots_ = std::move(slots);
    loaded_ = true;
    refresh_wanted_ = false;
    failure_.clear();
    next_refresh_ = std::chrono::steady_clock::now() + kRefreshPause;
    return true;
  }

  // REQUIRES: map_mutex_ held exclusively.
  std::shared_ptr<Pool> pool_at(const std::string& host, int port) {
    auto& pool = pools_[host + ":" + std::to_string(port)];
    if (!pool) {
      Settings node = settings_;
      node.host = host;
      node.port = port;
      pool = std::make_shared<Pool>(std::move(node));
    }
    return pool;
  }

  const Settings settings_;
  std::mutex refresh_mutex_;     // one reader of the map at a time
  std::shared_mutex map_mutex_;  // guards what follows
  std::vector<std::shared_ptr<Pool>> slots_;
  std::map<std::string, std::shared_ptr<Pool>> pools_;  // by host:port
  std::atomic<bool> loaded_{false};
  std::atomic<bool> refresh_wanted_{false};
  std::chrono::steady_clock::time_point next_refresh_;
  std::string failure_;  // why the last reading failed
};

// Redis pub/sub on one channel: PUBLISH through the pool; a thread of its own holds a
// subscribed connection, pings it every second and reconnects (50 ms, doubling up to 1 s,
// between attempts) when it fails, telling the listeners when it stops and starts listening.
class RedisBroadcast final : public Broadcast {
 public:
  // Subscribes and publishes through `router`.
  RedisBroadcast(std::shared_ptr<Router> router, std::string channel)
      : RedisBroadcast(
            std::move(channel), [router = router.get()] { return router->open_subscriber(); },
            [router = router.get()](std::uint64_t epoch, const std::string& why) {
              router->forget(epoch, why);
            },
            router) {}
  // Subscribes on the server `open` connects to; `failed` hears of a subscribed connection's
  // failure (its epoch). Publishes through `router` (none: publishing is an error).
  RedisBroadcast(std::string channel, std::function<Connection()> open,
                 std::function<void(std::uint64_t, const std::string&)> failed,
                 std::shared_ptr<Router> router)
      : router_(std::move(router)),
        channel_(std::move(channel)),
        open_(std::move(open)),
        failed_(std::move(failed)) {
    if (::pipe(wake_) != 0) throw Error("dogpile.cache.redis: pipe() failed for the subscriber");
    thread_ = std::thread([this] { run(); });
  }
  ~RedisBroadcast() override {
    stopping_ = true;
    (void)!::write(wake_[1], "x", 1);
    thread_.join();
    ::close(wake_[0]);
    ::close(wake_[1]);
  }

  void publish(std::string_view message) override {
    if (!router_) {
      throw Error("dogpile.cache.redis: channel " + channel_ + " is only listened to");
    }
    router_->publish(channel_, message);
  }

  std::unique_ptr<Subscription> subscribe(Listener listener) override {
    std::lock_guard guard(dispatch_);
    auto it = listeners_.insert(listeners_.end(), std::move(listener));
    if (listening_ && it->on_state) call([&] { it->on_state(true); });
    return std::make_unique<Handle>(*this, it);
  }

  bool listening() const override { return listening_; }

 private:
  class Handle final : public Subscription {
   public:
    Handle(RedisBroadcast& owner, std::list<Listener>::iterator it) : owner_(owner), it_(it) {}
    ~Handle() override {
      std::lock_guard guard(owner_.dispatch_);
      owner_.listeners_.erase(it_);
    }

   private:
    RedisBroadcast& owner_;
    std::list<Listener>::iterator it_;
  };

  template <class F>
  void call(F&& f) noexcept {
    try {
      f();
    } catch (const std::exception& e) {
      log(LogLevel::error, "dogpile.cache.redis",
          "a listener of channel " + channel_ + " failed: " + e.what());
    } catch (...) {
      log(LogLevel::error, "dogpile.cache.redis", "a listener of channel " + channel_ + " failed");
    }
  }

  // Listeners hear of a loss after listening() turns false, and of a return before it turns
  // true: whoever sees listening() true sees what the listeners did on being told.
  void set_listening(bool listening) {
    std::lock_guard guard(dispatch_);
    if (listening_ == listening) return;
    if (!listening) listening_ = false;
    for (auto& listener : listeners_) {
      if (listener.on_state) call([&] { listener.on_state(listening); });
    }
    if (listening) listening_ = true;
  }

  void deliver(std::string_view message) {
    std::lock_guard guard(dispatch_);
    for (auto& listener : listeners_) {
      if (listener.on_message) call([&] { listener.on_message(message); });
    }
  }

  // Waits up to `seconds` for the socket `fd` (-1: none) to be readable; false when the
  // broadcast is stopping.
  bool wait(int fd, double seconds, bool& readable) {
    pollfd fds[2] = {{wake_[0], POLLIN, 0}, {fd, POLLIN, 0}};
    const int ready = ::poll(fds, fd < 0 ? 1 : 2, static_cast<int>(seconds * 1000));
    readable = ready > 0 && fd >= 0 && (fds[1].revents & (POLLIN | POLLERR | POLLHUP)) != 0;
    return !stopping_;
  }

  void run() {
    double pause = 0.05;
    bool readable = false;
    bool warned = false;
    while (!stopping_) {
      try {
        listen();
        pause = 0.05;
        warned = false;
      } catch (const Error& e) {
        if (!warned && !stopping_) {
          log(LogLevel::warning, "dogpile.cache.redis",
              "the subscription to channel " + channel_ + " is lost, retrying: " + e.what());
          warned = true;
        }
      }
      set_listening(false);
      if (!wait(-1, pause, readable)) break;
      pause = std::min(pause * 2, 1.0);
    }
  }

  // Subscribes and delivers messages until the connection fails (throws) or the broadcast
  // stops.
  void listen() {
    Connection connection = open_();
    try {
      listen(connection.context, *connection.server);
    } catch (const BackendUnavailable& e) {
      failed_(connection.epoch, e.what());
      throw;
    }
  }
  void listen(const Context& context, const Settings& s) {
    append(context.get(), {"SUBSCRIBE", channel_}, s);
    read_reply(context.get(), s);  // ["subscribe", channel, 1]
    set_listening(true);
    bool awaiting_pong = false;
    bool readable = false;
    while (wait(context->fd, 1.0, readable)) {
      if (!readable) {
        // A second without traffic: a server that answers no PING in the next one is gone.
        if (awaiting_pong) {
          throw BackendUnavailable("Redis at " + s.where() + " did not answer PING in 1 s");
        }
        append(context.get(), {"PING"}, s);
        int done = 0;
        while (done == 0) {
          if (redisBufferWrite(context.get(), &done) != REDIS_OK) unavailable(context.get(), s);
        }
        awaiting_pong = true;
        continue;
      }
      if (redisBufferRead(context.get()) != REDIS_OK) unavailable(context.get(), s);
      for (;;) {
        void* raw = nullptr;
        if (redisGetReplyFromReader(context.get(), &raw) != REDIS_OK) {
          unavailable(context.get(), s);
        }
        if (raw == nullptr) break;
        Reply reply(static_cast<redisReply*>(raw));
        awaiting_pong = false;  // any traffic shows the connection lives
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
            reply->element[0]->type == REDIS_REPLY_STRING &&
            std::string_view(reply->element[0]->str, reply->element[0]->len) == "message" &&
            reply->element[2]->type == REDIS_REPLY_STRING) {
          deliver(std::string_view(reply->element[2]->str, reply->element[2]->len));
        }
      }
    }
  }

  std::shared_ptr<Router> router_;
  const std::string channel_;
  const std::function<Connection()> open_;
  const std::function<void(std::uint64_t, const std::string&)> failed_;
  std::mutex dispatch_;  // held while listeners are called, changed or told the state
  std::list<Listener> listeners_;
  std::atomic<bool> listening_{false};
  std::atomic<bool> stopping_{false};
  int wake_[2] = {-1, -1};
  std::thread thread_;
};

// Waiters for distributed locks, woken when a holder announces a release on the channel
// kReleaseChannel (the release script publishes the lock's name) instead of at their next
// poll. Subscribes on the first wait; while it is not listening, waiters just poll. A
// release of a lock nobody here waits for costs nothing.
constexpr std::string_view kReleaseChannel = "dogpile:lock-released";

class ReleaseWaiters {
 public:
  explicit ReleaseWaiters(std::shared_ptr<Router> router) : router_(std::move(router)) {}

  // A wait on `name` for the duration of a poll_lock.
  class Registration {
   public:
    Registration(ReleaseWaiters& owner, std::string name) : owner_(owner), name_(std::move(name)) {
      owner_.enter(name_);
    }
    ~Registration() { owner_.leave(name_); }
    Registration(const Registration&) = delete;
    Registration& operator=(const Registration&) = delete;
    // Before a try: the releases announced so far.
    std::uint64_t seen() { return owner_.generation(name_); }
    // Between tries: at most `seconds`, less if a release is announced after `seen`.
    void wait(std::uint64_t seen, double seconds) { owner_.wait(name_, seen, seconds); }

   private:
    ReleaseWaiters& owner_;
    const std::string name_;
  };

 private:
  void enter(const std::string& name) {
    {
      std::lock_guard guard(mutex_);
      ++waiting_[name].waiters;
    }
    std::call_once(subscribed_, [this] {
      try {
        broadcast_ = std::make_shared<RedisBroadcast>(router_, std::string(kReleaseChannel));
        subscription_ = broadcast_->subscribe(
            {.on_message = [this](std::string_view message) { released(message); },
             .on_state = [this](bool) { released({}); }});  // a gap: everyone tries again
      } catch (const Error& e) {
        log(LogLevel::warning, "dogpile.cache.redis",
            std::string("lock waiters will poll: ") + e.what());
      }
    });
  }
  void leave(const std::string& name) {
    std::lock_guard guard(mutex_);
    auto it = waiting_.find(name);
    if (--it->second.waiters == 0) waiting_.erase(it);
  }
  std::uint64_t generation(const std::string& name) {
    std::lock_guard guard(mutex_);
    return waiting_[name].generation;
  }
  void wait(const std::string& name, std::uint64_t seen, double seconds) {
    std::unique_lock guard(mutex_);
    changed_.wait_for(guard, std::chrono::duration<double>(seconds),
                      [&] { return waiting_[name].generation != seen; });
  }
  // `name` was released; empty: any may have been.
  void released(std::string_view name) {
    std::lock_guard guard(mutex_);
    if (name.empty()) {
      for (auto& [_, entry] : waiting_) ++entry.generation;
    } else if (auto it = waiting_.find(name); it != waiting_.end()) {
      ++it->second.generation;
    } else {
      return;
    }
    changed_.notify_all();
  }

  struct Entry {
    unsigned waiters = 0;
    std::uint64_t generation = 0;
  };
  std::shared_ptr<Router> router_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, Entry, std::less<>> waiting_;
  std::once_flag subscribed_;
  std::shared_ptr<RedisBroadcast> broadcast_;
  std::unique_ptr<Broadcast::Subscription> subscription_;  // ended before broadcast_ goes
};

// The dogpile lock in Redis, as redis-py's Lock: SET <name> <token> NX [PX timeout]; release
// deletes the key only while it still holds our token.
class RedisMutex final : public CacheMutex {
 public:
  RedisMutex(std::shared_ptr<Router> router, std::shared_ptr<ReleaseWaiters> waiters,
             std::string name)
      : router_(std::move(router)), waiters_(std::move(waiters)), name_(std::move(name)) {}

  bool acquire(bool wait) override { return take(wait, Deadline::max(), nullptr); }

  // Waiters for a value poll fast at first (2 ms, doubling up to lock_sleep) and read the
  // value between polls, so a herd finishes close to the creator's own time.
  bool acquire_until(Deadline deadline, const std::function<bool()>& arrived) override {
    return take(true, deadline, &arrived);
  }

  void release() override {
    std::string token;
    {
      std::lock_guard guard(mutex_);
      if (token_.empty()) throw Error("release of the Redis lock " + name_ + ", which is not held");
      if (router_->settings().thread_local_lock && owner_ != std::this_thread::get_id()) {
        throw Error("the Redis lock " + name_ +
                    " is released by another thread than the one that took it (set "
                    "thread_local_lock to false to allow it)");
      }
      token = std::move(token_);
      token_.clear();
    }
    // Deletes the key only while it holds our token: a lock that expired and was taken by
    // someone else stays theirs. And tells the waiters (ours; Python's poll), in the same
    // round trip.
    static constexpr std::string_view kRelease =
        "if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('del', KEYS[1]); "
        "redis.call('publish', ARGV[2], KEYS[1]); return 1 else return 0 end";
    router_->command(name_, {"EVAL", kRelease, "1", name_, token, kReleaseChannel});
  }

  bool locked() const override {
    auto reply = router_->command(name_, {"EXISTS", name_});
    return reply->type == REDIS_REPLY_INTEGER && reply->integer > 0;
  }

 private:
  bool take(bool wait, Deadline deadline, const std::function<bool()>* arrived) {
    const Settings& s = router_->settings();
    const std::string token = random_hex(32);
    ReleaseWaiters::Registration registration(*waiters_, name_);
    std::uint64_t seen = 0;
    const std::function<void(double)> pause = [&](double seconds) {
      registration.wait(seen, seconds);
    };
    const bool taken = poll_lock(
        [&] {
          seen = registration.seen();
          return try_take(token);
        },
        {.wait = wait && s.lock_blocking,
         .first_pause = arrived != nullptr ? std::min(0.002, s.lock_sleep) : s.lock_sleep,
         .longest_pause = s.lock_sleep,
         .timeout = s.lock_blocking_timeout,
         .deadline = deadline,
         .arrived = arrived,
         .pause = &pause});
    if (taken) {
      std::lock_guard guard(mutex_);
      token_ = token;
      owner_ = std::this_thread::get_id();
    }
    return taken;
  }

  bool try_take(const std::string& token) {
    const Settings& s = router_->settings();
    Reply reply;
    if (s.lock_timeout > 0) {
      const auto ms = std::to_string(static_cast<long long>(std::ceil(s.lock_timeout * 1000.0)));
      reply = router_->command(name_, {"SET", name_, token, "NX", "PX", ms});
    } else {
      reply = router_->command(name_, {"SET", name_, token, "NX"});
    }
    return reply->type == REDIS_REPLY_STATUS;  // OK; NIL when someone else holds it
  }

  std::shared_ptr<Router> router_;
  std::shared_ptr<ReleaseWaiters> waiters_;
  const std::string name_;
  std::mutex mutex_;
  std::string token_;
  std::thread::id owner_;
};

// What the backends share, on their router: the distributed lock, the value limit, pub/sub.
class RedisBase : public BytesBackend {
 public:
  std::unique_ptr<CacheMutex> get_mutex(std::string_view key) override {
    if (!router_->settings().distributed_lock) return nullptr;
    return std::make_unique<RedisMutex>(router_, waiters_, lock_name(key));
  }

  bool has_lock_timeout() const override {
    return router_->settings().distributed_lock && router_->settings().lock_timeout > 0;
  }

  // Redis' own limit on a string (proto-max-bulk-len).
  BackendCapabilities capabilities() const override { return {.max_value_size = kMaxValue}; }

  // One subscriber connection per channel, shared while anyone holds it.
  std::shared_ptr<Broadcast> broadcast(std::string_view channel) override {
    std::lock_guard guard(broadcasts_mutex_);
    auto& weak = broadcasts_[std::string(channel)];
    auto shared = weak.lock();
    if (!shared) {
      shared = std::make_shared<RedisBroadcast>(router_, std::string(channel));
      weak = shared;
    }
    return shared;
  }

 protected:
  static constexpr std::size_t kMaxValue = 512u << 20;

  explicit RedisBase(std::shared_ptr<Router> router)
      : router_(std::move(router)), waiters_(std::make_shared<ReleaseWaiters>(router_)) {}

  virtual std::string lock_name(std::string_view key) const {
    return router_->settings().lock_prefix + std::string(key);
  }

  // The SET of a value, with the server-side expiry when there is one.
  std::vector<std::string_view> set_command(std::string_view key, std::string_view value,
                                            const std::string& ttl) const {
    if (ttl.empty()) return {"SET", key, value};
    return {"SET", key, value, "EX", ttl};
  }
  std::string ttl() const {
    const long long seconds = router_->settings().redis_expiration_time;
    return seconds > 0 ? std::to_string(seconds) : std::string();
  }

  std::shared_ptr<Router> router_;

 private:
  std::shared_ptr<ReleaseWaiters> waiters_;
  std::mutex broadcasts_mutex_;
  std::map<std::string, std::weak_ptr<RedisBroadcast>, std::less<>> broadcasts_;
};

class RedisBackend : public RedisBase {
 public:
  RedisBackend(const Arguments& arguments, const PluginContext& context, bool sentinel = false)
      : RedisBackend(std::make_shared<Pool>(
            read_settings(arguments, context, sentinel ? Mode::sentinel : Mode::plain))) {
    if (sentinel) watch_for_failovers();
  }

  std::optional<std::string> get_serialized(std::string_view key) override {
    // A key holding another type (a list an application pushed there) reads as a miss, as MGET
    // reads it; the next set replaces it.
    try {
      return string_of(*pool_->lease().command({"GET", key}));
    } catch (const WrongType&) {
      return std::nullopt;
    }
  }

  SerializedValues get_serialized_multi(const Keys& keys) override {
    if (keys.empty()) return {};
    std::vector<std::string_view> args{"MGET"};
    args.insert(args.end(), keys.begin(), keys.end());
    auto reply = pool_->lease().command(args);
    SerializedValues values;
    values.reserve(keys.size());
    for (std::size_t i = 0; i < reply->elements; ++i)
      values.push_back(string_of(*reply->element[i]));
    return values;
  }

  void set_serialized(const std::string& key, std::string_view value) override {
    check_value_size(value, kMaxValue, "dogpile.cache.redis");
    pool_->lease().command(set_command(key, value, ttl()));
  }

  void set_serialized_multi(const SerializedMapping& mapping) override {
    if (mapping.empty()) return;
    // All refused before any is sent: a refusal must not cut a pipeline short.
    for (const auto& item : mapping)
      check_value_size(item.second, kMaxValue, "dogpile.cache.redis");
    const std::string seconds = ttl();
    auto lease = pool_->lease();
    for (const auto& [key, value] : mapping) lease.send(set_command(key, value, seconds));
    for (std::size_t i = 0; i < mapping.size(); ++i) lease.reply();  // one round trip
  }

  void remove(std::string_view key) override { pool_->lease().command({"DEL", key}); }

  void remove_multi(const Keys& keys) override {
    if (keys.empty()) return;
    std::vector<std::string_view> args{"DEL"};
    args.insert(args.end(), keys.begin(), keys.end());
    pool_->lease().command(args);
  }

 private:
  explicit RedisBackend(const std::shared_ptr<Pool>& pool) : RedisBase(pool), pool_(pool) {}

  std::shared_ptr<Pool> pool_;
  std::unique_ptr<RedisBroadcast> failovers_;  // Sentinel: +switch-master, heard from a sentinel
  std::unique_ptr<Broadcast::Subscription> failover_subscription_;

  // A failover that leaves the old master running (SENTINEL FAILOVER, a network partition)
  // fails no connection to it until the sentinels demote it, and writes meanwhile would be
  // lost: a sentinel's announcement of the new master moves the connections at once. After a
  // gap in listening, the sentinels are asked again, in case one was missed.
  void watch_for_failovers() {
    Pool* pool = pool_.get();
    failovers_ = std::make_unique<RedisBroadcast>(
        "+switch-master", [pool] { return pool->open_sentinel(); },
        [](std::uint64_t, const std::string&) {}, nullptr);
    failover_subscription_ = failovers_->subscribe(
        {.on_message =
             [pool](std::string_view message) {
               // "<service> <old ip> <old port> <new ip> <new port>"
               std::istringstream fields{std::string(message)};
               std::string service, old_host, old_port, host;
               int port = 0;
               if (fields >> service >> old_host >> old_port >> host >> port &&
                   service == pool->settings().service_name && port > 0 && port <= 65535) {
                 pool->master_is(host, port);
               }
             },
         .on_state =
             [pool](bool listening) {
               if (!listening) return;
               try {
                 const auto [host, port] = discover_master(pool->settings());
                 pool->master_is(host, port);
               } catch (const Error&) {
                 // No master known now: the next call asks again.
               }
             }});
  }
};

// dogpile.cache.redis_cluster: values spread over a Redis Cluster's masters by key slot. The
// multi calls send one pipeline of single-key commands to each node (MGET and DEL of several
// keys work only within one slot), and put the replies back in the keys' order.
class RedisClusterBackend final : public RedisBase {
 public:
  RedisClusterBackend(const Arguments& arguments, const PluginContext& context)
      : RedisClusterBackend(
            std::make_shared<Cluster>(read_settings(arguments, context, Mode::cluster))) {}

  std::optional<std::string> get_serialized(std::string_view key) override {
    try {
      return string_of(*cluster_->command(key, {"GET", key}));
    } catch (const WrongType&) {
      return std::nullopt;
    }
  }

  SerializedValues get_serialized_multi(const Keys& keys) override {
    SerializedValues values(keys.size());
    cluster_->pipelined(
        keys.size(), [&](std::size_t i) -> std::string_view { return keys[i]; },
        [&](std::size_t i) {
          return std::vector<std::string_view>{"GET", keys[i]};
        },
        [&](std::size_t i, Reply reply) {
          if (reply) values[i] = string_of(*reply);
        });
    return values;
  }

  void set_serialized(const std::string& key, std::string_view value) override {
    check_value_size(value, kMaxValue, "dogpile.cache.redis_cluster");
    cluster_->command(key, set_command(key, value, ttl()));
  }

  void set_serialized_multi(const SerializedMapping& mapping) override {
    for (const auto& item : mapping) {
      check_value_size(item.second, kMaxValue, "dogpile.cache.redis_cluster");
    }
    const std::string seconds = ttl();
    cluster_->pipelined(
        mapping.size(), [&](std::size_t i) -> std::string_view { return mapping[i].first; },
        [&](std::size_t i) { return set_command(mapping[i].first, mapping[i].second, seconds); },
        [](std::size_t, Reply) {});
  }

  void remove(std::string_view key) override { cluster_->command(key, {"DEL", key}); }

  void remove_multi(const Keys& keys) override {
    cluster_->pipelined(
        keys.size(), [&](std::size_t i) -> std::string_view { return keys[i]; },
        [&](std::size_t i) {
          return std::vector<std::string_view>{"DEL", keys[i]};
        },
        [](std::size_t, Reply) {});
  }

 private:
  explicit RedisClusterBackend(const std::shared_ptr<Cluster>& cluster)
      : RedisBase(cluster), cluster_(cluster) {}

  // In the key's slot, so that lock and value live on one node.
  std::string lock_name(std::string_view key) const override {
    return cluster_lock_name(router_->settings().lock_prefix, key);
  }

  std::shared_ptr<Cluster> cluster_;
};

// dogpile.cache.redis_sentinel: the same backend on the master the sentinels name.
class RedisSentinelBackend final : public RedisBackend {
 public:
  RedisSentinelBackend(const Arguments& arguments, const PluginContext& context)
      : RedisBackend(arguments, context, true) {}
};

}  // namespace

}  // namespace dogpile::redis

DOGPILE_BACKEND_PLUGIN(redis, "dogpile.cache.redis", "1.0.0",
                       "Redis through hiredis: the wire format, one round trip per multi call, "
                       "and an optional distributed dogpile lock",
                       dogpile::redis::RedisBackend);
DOGPILE_BACKEND_PLUGIN(redis_sentinel, "dogpile.cache.redis_sentinel", "1.0.0",
                       "Redis through hiredis, on the master that Redis Sentinel names, found "
                       "again after a failover; the distributed dogpile lock on by default",
                       dogpile::redis::RedisSentinelBackend);
DOGPILE_BACKEND_PLUGIN(redis_cluster, "dogpile.cache.redis_cluster", "1.0.0",
                       "Redis Cluster through hiredis: keys routed by slot, MOVED and ASK "
                       "followed, the multi calls pipelined per node, the lock in its key's slot",
                       dogpile::redis::RedisClusterBackend);
