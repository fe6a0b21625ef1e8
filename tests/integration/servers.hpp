// Real servers for integration tests (redis-server, memcached): each started on a free
// loopback port in a scratch directory, stopped by its PID, its files removed. No skipping: a
// missing program fails the test.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../unit/helpers.hpp"

namespace test {

// A port nothing listens on now, on 127.0.0.1.
inline int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    throw std::runtime_error("no free loopback port");
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

// Starts processes a test forked at one moment, without sleeping until a time: each child
// says it is ready and waits (arrive_and_wait); the parent waits until all are ready, then
// releases them at once (open), by closing a pipe they all read. A child that dies early does
// not hang the parent. The two descriptors survive exec, so a program the child runs can do
// its part with arrive_and_wait(ready_fd(), go_fd()).
class StartGate {
 public:
  StartGate() {
    if (::pipe(ready_) != 0 || ::pipe(go_) != 0) throw std::runtime_error("pipe failed");
    // A program a child runs must not hold the gate's write end, or the gate never opens.
    ::fcntl(go_[1], F_SETFD, FD_CLOEXEC);
  }
  ~StartGate() {
    for (int fd : {ready_[0], ready_[1], go_[0], go_[1]}) ::close(fd);
  }
  StartGate(const StartGate&) = delete;
  StartGate& operator=(const StartGate&) = delete;

  int ready_fd() const { return ready_[1]; }
  int go_fd() const { return go_[0]; }

  // In a child.
  static void arrive_and_wait(int ready_fd, int go_fd, int go_write_fd = -1) {
    if (go_write_fd >= 0) ::close(go_write_fd);
    char c = 1;
    (void)!::write(ready_fd, &c, 1);
    ::close(ready_fd);
    (void)!::read(go_fd, &c, 1);  // end of file once the parent opens the gate
  }
  void arrive_and_wait() { arrive_and_wait(ready_[1], go_[0], go_[1]); }

  // In the parent: waits for `children` to be ready, then releases them; whether all were.
  bool open(int children) {
    ::close(std::exchange(ready_[1], -1));
    int ready = 0;
    char c;
    while (ready < children && ::read(ready_[0], &c, 1) == 1) ++ready;
    ::close(std::exchange(go_[1], -1));
    return ready == children;
  }

 private:
  int ready_[2];
  int go_[2];
};

// A server program run for a test in a scratch directory, stopped by its PID; ready once it
// accepts a connection on its port.
class ServerProcess {
 public:
  ~ServerProcess() { stop(); }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int port() const { return port_; }

  void start() {
    std::vector<char*> argv;
    for (auto& a : args_) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (char** e = environ; *e != nullptr; ++e) envp.push_back(*e);
    for (auto& e : env_) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execvpe(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    for (int i = 0; i < 500; ++i) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error(args_[0] + " exited at start (is it installed?)");
      }
      if (accepts()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    stop();
    throw std::runtime_error(args_[0] + " did not start on port " + std::to_string(port_));
  }

  // A server that accepts connections but never answers, until resume().
  // Return once the server has stopped or runs again: kill() only queues the signal, and a
  // request sent meanwhile could still be answered.
  void pause() {
    ::kill(pid_, SIGSTOP);
    int status = 0;
    ::waitpid(pid_, &status, WUNTRACED);
  }
  void resume() {
    ::kill(pid_, SIGCONT);
    int status = 0;
    ::waitpid(pid_, &status, WCONTINUED);
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 protected:
  explicit ServerProcess(int port = 0) : port_(port != 0 ? port : free_loopback_port()) {}

  std::string scratch(const char* name) const { return (dir_.path / name).string(); }

  std::vector<std::string> args_;  // argv, set by the server's class before start()
  std::vector<std::string> env_;   // NAME=value, added to the test's environment
  // A unix socket the server also listens on, which start() waits for too (Redis listens on
  // its TCP port a moment before): empty for none.
  std::string unix_socket_;

 private:
  bool accepts() const {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<uint16_t>(port_));
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    return ok && (unix_socket_.empty() || unix_accepts());
  }

  bool unix_accepts() const {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    unix_socket_.copy(address.sun_path, sizeof address.sun_path - 1);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    return ok;
  }

  int port_;
  TempDir dir_;
  pid_t pid_ = -1;
};

// redis-server, without persistence, also listening on a unix socket.
class RedisServer : public ServerProcess {
 public:
  explicit RedisServer(std::vector<std::string> extra_args = {}, int fixed_port = 0)
      : ServerProcess(fixed_port) {
    args_ = {"redis-server",     "--port",    std::to_string(port()), "--bind",       "127.0.0.1",
             "--save",           "",          "--appendonly",         "no",           "--dir",
             scratch(""),        "--logfile", scratch("redis.log"),   "--unixsocket", socket_path(),
             "--unixsocketperm", "700"};
    args_.insert(args_.end(), extra_args.begin(), extra_args.end());
    unix_socket_ = socket_path();
    start();
  }

  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port()) + "/0"; }
  std::string socket_path() const { return scratch("redis.sock"); }
};

// A Redis Sentinel (redis-server --sentinel) watching the master at `master_port` as the
// service "mymaster", with a quorum of `quorum`; it takes a master for down after 1 s
// without an answer.
class RedisSentinelServer : public ServerProcess {
 public:
  RedisSentinelServer(int master_port, int quorum) {
    std::ofstream(scratch("sentinel.conf"))
        << "port " << port() << "\nbind 127.0.0.1\ndir " << scratch("") << "\nlogfile "
        << scratch("sentinel.log") << "\nsentinel monitor mymaster 127.0.0.1 " << master_port << " "
        << quorum
        << "\nsentinel down-after-milliseconds mymaster 1000\n"
           "sentinel failover-timeout mymaster 10000\n";
    args_ = {"redis-server", scratch("sentinel.conf"), "--sentinel"};
    start();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port()); }
};

// A Redis Cluster of `masters` masters, each with `replicas_each` replicas, made by
// `redis-cli --cluster create` on fresh nodes. A node takes another for failed after 1 s
// without an answer; the slots of the others stay served while some are not
// (cluster-require-full-coverage no).
class RedisClusterServers {
 public:
  RedisClusterServers(int masters, int replicas_each) {
    std::string command = "redis-cli --cluster create";
    for (int i = 0; i < masters * (1 + replicas_each); ++i) {
      nodes.push_back(std::make_unique<RedisServer>(
          std::vector<std::string>{"--cluster-enabled", "yes", "--cluster-config-file",
                                   "nodes.conf", "--cluster-node-timeout", "1000",
                                   "--cluster-require-full-coverage", "no"},
          node_port()));
      command += " 127.0.0.1:" + std::to_string(nodes.back()->port());
    }
    command +=
        " --cluster-replicas " + std::to_string(replicas_each) + " --cluster-yes > /dev/null 2>&1";
    if (std::system(command.c_str()) != 0) throw std::runtime_error("redis-cli --cluster create");
  }

  nlohmann::json startup_nodes() const {
    auto list = nlohmann::json::array();
    for (const auto& node : nodes) list.push_back("127.0.0.1:" + std::to_string(node->port()));
    return list;
  }

  std::vector<std::unique_ptr<RedisServer>> nodes;

 private:
  // A free port whose cluster bus port (10000 above) is free too, and exists.
  static int node_port() {
    for (;;) {
      const int port = free_loopback_port();
      if (port + 10000 > 65535) continue;
      const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      address.sin_port = htons(static_cast<uint16_t>(port + 10000));
      const bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
      ::close(fd);
      if (free) return port;
    }
  }
};

// memcached, TCP only, 64 MB.
class MemcachedServer : public ServerProcess {
 public:
  explicit MemcachedServer(std::vector<std::string> extra_args = {}) {
    args_ = {"memcached", "-l", "127.0.0.1", "-p", std::to_string(port()), "-U", "0",
             "-m",        "64", "-t",        "2"};
    if (::geteuid() == 0) args_.insert(args_.end(), {"-u", "root"});  // it refuses root otherwise
    args_.insert(args_.end(), extra_args.begin(), extra_args.end());
    start();
  }

  std::string url() const { return "127.0.0.1:" + std::to_string(port()); }

 protected:
  struct NotStarted {};
  explicit MemcachedServer(NotStarted) {}
};

// memcached that asks clients for SASL credentials (PLAIN, from a sasldb of one user that
// saslpasswd2 writes in the scratch directory).
class SaslMemcachedServer : public MemcachedServer {
 public:
  SaslMemcachedServer(const std::string& username, const std::string& password)
      : MemcachedServer(NotStarted{}) {
    const std::string db = scratch("sasldb2");
    const std::string command = "printf %s '" + password +
                                "' | saslpasswd2 -a memcached -c -p -f '" + db + "' '" + username +
                                "'";
    if (std::system(command.c_str()) != 0) throw std::runtime_error("saslpasswd2 failed");
    std::ofstream(scratch("memcached.conf")) << "mech_list: plain\nsasldb_path: " << db << "\n";
    args_ = {"memcached", "-S", "-l", "127.0.0.1", "-p", std::to_string(port()), "-U", "0"};
    if (::geteuid() == 0) args_.insert(args_.end(), {"-u", "root"});
    env_ = {"SASL_CONF_PATH=" + scratch("")};
    start();
  }
};

// The message of the BackendUnavailable `call` throws, checked to name `where` (host:port);
// empty, and a failed check, when it throws nothing.
template <class Call>
std::string unavailable_message(Call&& call, const std::string& where) {
  try {
    call();
  } catch (const dogpile::BackendUnavailable& e) {
    BOOST_TEST(message_contains(e, where));
    return e.what();
  }
  BOOST_ERROR("expected BackendUnavailable naming " << where);
  return {};
}

// Polls `condition` every 20 ms until it holds, at most `seconds`; whether it held. For what
// servers do in their own time (a replica's sync, a failover).
template <class Condition>
bool eventually(Condition&& condition, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

// Calls `call` until it stops throwing BackendUnavailable (a client may leave a failed server
// alone for a while), for at most 5 s; whether it succeeded.
template <class Call>
bool once_available(Call&& call) {
  for (int i = 0; i < 50; ++i) {
    try {
      call();
      return true;
    } catch (const dogpile::BackendUnavailable&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  return false;
}

// A server that stops answering (SIGSTOP) makes a read fail with BackendUnavailable naming it,
// within about its `socket_timeout` (the backends' defaults are 3 s and more: a bound of
// socket_timeout + 1.5 s fails if the argument is ignored); once it answers again the value is
// read. `region` holds 1 under "k".
template <class Server>
void check_a_stalled_server_fails_then_recovers(Server& server, dogpile::CacheRegion& region,
                                                double socket_timeout) {
  server.pause();
  const auto start = std::chrono::steady_clock::now();
  unavailable_message([&] { region.get<int>("k"); }, "127.0.0.1:" + std::to_string(server.port()));
  const std::chrono::duration<double> waited = std::chrono::steady_clock::now() - start;
  BOOST_TEST(waited.count() < socket_timeout + 1.5);
  server.resume();
  BOOST_TEST(once_available([&] { BOOST_TEST(*region.get<int>("k") == 1); }));
}

// Each of `cases` (arguments, text the error must contain) makes configuring `backend` a
// ValidationError.
inline void check_bad_arguments(const std::string& backend, const std::string& config_prefix,
                                const std::vector<std::pair<nlohmann::json, std::string>>& cases) {
  for (const auto& [arguments, expected] : cases) {
    auto region = dogpile::make_region();
    try {
      region->configure(backend, {.arguments = arguments, .config_prefix = config_prefix});
      BOOST_ERROR("expected ValidationError for " << arguments.dump());
    } catch (const dogpile::ValidationError& e) {
      BOOST_TEST(message_contains(e, expected));
    }
  }
}

// The command that runs tests/integration/python_peer.py: Python dogpile.cache 1.1.8 with a
// JSON serializer on `backend` (redis, pylibmc, memcached) at 127.0.0.1:`where` (a port), or
// on dbm in the file `where`.
inline std::string python_peer_command(const std::string& backend, const std::string& where,
                                       const std::string& arguments) {
  // exec: no shell stays between the test and Python holding descriptors the test passed.
  return "exec /usr/bin/python3 '" + std::string(std::getenv("DOGPILE_SOURCE_DIR")) +
         "/tests/integration/python_peer.py' " + backend + " '" + where + "' " + arguments;
}
inline std::string python_peer_command(const std::string& backend, int port,
                                       const std::string& arguments) {
  return python_peer_command(backend, std::to_string(port), arguments);
}

// What the Python peer printed; checks that it succeeded.
inline std::string python_peer(const std::string& backend, const std::string& where,
                               const std::string& arguments) {
  const std::string command = python_peer_command(backend, where, arguments) + " 2>&1";
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  char buffer[4096];
  while (pipe != nullptr && std::fgets(buffer, sizeof buffer, pipe) != nullptr) out += buffer;
  const int status = pipe != nullptr ? ::pclose(pipe) : -1;
  BOOST_TEST_INFO("python said: " << out);
  BOOST_TEST(status == 0);
  return out;
}

// Values shared both ways with a Python dogpile.cache service on the same server (`peer`
// names its backend): JSON objects, strings (unicode included), NaN and the infinities, and
// a miss. Keys have spaces, which both sides' sha1 key mangler handles on memcached.
inline void check_values_shared_with_python(dogpile::CacheRegion& region, const std::string& peer,
                                            const std::string& port) {
  using nlohmann::json;
  python_peer(peer, port, "set 'from python' '{\"a\": [1, 2], \"b\": \"x\"}'");
  auto object = region.get<json>("from python");
  BOOST_TEST_REQUIRE(object != nullptr);
  BOOST_TEST((*object == json{{"a", {1, 2}}, {"b", "x"}}));
  BOOST_TEST(region.get_value_metadata("from python")->age() < 60.0);

  region.set("from cpp", json{{"b", 2}, {"c", {true, nullptr}}});
  BOOST_TEST(python_peer(peer, port, "get 'from cpp'") == "{\"b\": 2, \"c\": [true, null]}\n");
  BOOST_TEST(python_peer(peer, port, "get missing") == "NO_VALUE\n");

  python_peer(peer, port, "set 'python string' '\"h\\u00e9llo world\"'");
  auto text = region.get<std::string>("python string");
  BOOST_TEST_REQUIRE(text != nullptr);
  BOOST_TEST(*text == "h\xc3\xa9llo world");
  region.set("cpp string", std::string("h\xc3\xa9llo \"w\"\n"));
  BOOST_TEST(python_peer(peer, port, "get 'cpp string'") == "\"h\\u00e9llo \\\"w\\\"\\n\"\n");

  const double inf = std::numeric_limits<double>::infinity();
  python_peer(peer, port, "set 'python floats' '[NaN, Infinity, -Infinity, 1.5]'");
  auto floats = region.get<std::vector<double>>("python floats");
  BOOST_TEST_REQUIRE(floats != nullptr);
  BOOST_TEST_REQUIRE(floats->size() == 4u);
  BOOST_TEST(std::isnan((*floats)[0]));
  BOOST_TEST((*floats)[1] == inf);
  BOOST_TEST((*floats)[2] == -inf);
  BOOST_TEST((*floats)[3] == 1.5);
  region.set("cpp floats", std::vector<double>{std::nan(""), inf, -inf});
  region.set("cpp infinity", inf);
  BOOST_TEST(python_peer(peer, port, "get 'cpp floats'") == "[NaN, Infinity, -Infinity]\n");
  BOOST_TEST(python_peer(peer, port, "get 'cpp infinity'") == "Infinity\n");
}

}  // namespace test
