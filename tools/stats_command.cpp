// `dogpile stats`: the figures an application exposes with dogpile::metrics_text(), read from
// a file, stdin or a loopback URL, shown per region.
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli.hpp"

namespace tool {

namespace {

constexpr int kTimeoutMs = 5000;
constexpr std::size_t kLargestBody = 64u << 20;

struct Socket {
  int fd = -1;
  ~Socket() {
    if (fd >= 0) ::close(fd);
  }
};

// Waits until `fd` is ready for `events`, at most kTimeoutMs.
void wait_for(int fd, short events, const std::string& url) {
  pollfd entry{fd, events, 0};
  int ready;
  do {
    ready = ::poll(&entry, 1, kTimeoutMs);
  } while (ready < 0 && errno == EINTR);
  if (ready == 0) throw dogpile::Error(url + ": no answer within 5 s");
  if (ready < 0) throw dogpile::Error(url + ": " + std::strerror(errno));
}

// The body of an HTTP/1.0 GET of `url` (http://HOST:PORT/PATH, HOST on loopback).
std::string http_get(const std::string& url) {
  const std::string rest = url.substr(std::strlen("http://"));
  const auto slash = rest.find('/');
  const std::string authority = rest.substr(0, slash);
  const std::string path = slash == std::string::npos ? "/" : rest.substr(slash);
  std::string host, port = "80";
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string::npos) throw UsageError("malformed URL " + url);
    host = authority.substr(1, close - 1);
    if (close + 1 < authority.size() && authority[close + 1] == ':')
      port = authority.substr(close + 2);
  } else {
    const auto colon = authority.rfind(':');
    host = authority.substr(0, colon);
    if (colon != std::string::npos) port = authority.substr(colon + 1);
  }
  if (host != "127.0.0.1" && host != "localhost" && host != "::1") {
    throw UsageError(
        "stats reads URLs on this machine's loopback only (127.0.0.1, ::1, "
        "localhost), not " +
        host);
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    throw UsageError("malformed URL " + url + ": " + ::gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, ::freeaddrinfo);
  Socket socket;
  socket.fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (socket.fd < 0) throw dogpile::Error(url + ": " + std::strerror(errno));
  if (::connect(socket.fd, found->ai_addr, found->ai_addrlen) != 0) {
    if (errno != EINPROGRESS) throw dogpile::Error(url + ": " + std::strerror(errno));
    wait_for(socket.fd, POLLOUT, url);
    int error = 0;
    socklen_t size = sizeof error;
    ::getsockopt(socket.fd, SOL_SOCKET, SO_ERROR, &error, &size);
    if (error != 0) throw dogpile::Error(url + ": " + std::strerror(error));
  }
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: " + authority + "\r\n\r\n";
  for (std::size_t sent = 0; sent < request.size();) {
    wait_for(socket.fd, POLLOUT, url);
    const ssize_t n = ::send(socket.fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      throw dogpile::Error(url + ": " + std::strerror(errno));
    }
    if (n > 0) sent += static_cast<std::size_t>(n);
  }
  std::string response;
  char buffer[65536];
  for (;;) {
    wait_for(socket.fd, POLLIN, url);
    const ssize_t n = ::recv(socket.fd, buffer, sizeof buffer, 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      throw dogpile::Error(url + ": " + std::strerror(errno));
    }
    response.append(buffer, static_cast<std::size_t>(n));
    if (response.size() > kLargestBody) throw dogpile::Error(url + ": the answer exceeds 64 MiB");
  }
  const auto end_of_head = response.find("\r\n\r\n");
  const auto status_end = response.find("\r\n");
  if (end_of_head == std::string::npos || response.compare(0, 5, "HTTP/") != 0) {
    throw dogpile::Error(url + ": the answer is not HTTP");
  }
  const std::string status_line = response.substr(0, status_end);
  if (status_line.find(" 200") == std::string::npos) {
    throw dogpile::Error(url + ": " + status_line);
  }
  return response.substr(end_of_head + 4);
}

std::string read_source(const std::string& source) {
  if (source.rfind("http://", 0) == 0) return http_get(source);
  if (source.find("://") != std::string::npos) {
    throw UsageError("stats reads a file, - (stdin) or an http:// URL, not " + source);
  }
  std::ostringstream text;
  if (source == "-") {
    text << std::cin.rdbuf();
    return text.str();
  }
  std::ifstream file(source, std::ios::binary);
  if (!file) throw dogpile::Error("cannot read " + source + ": " + std::strerror(errno));
  text << file.rdbuf();
  return text.str();
}

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// One sample line of the text format: name{label="value",...} value [timestamp].
std::optional<Sample> parse_sample(const std::string& line) {
  Sample sample;
  std::size_t i = 0;
  while (i < line.size() &&
         (std::isalnum(static_cast<unsigned char>(line[i])) || line[i] == '_' || line[i] == ':')) {
    ++i;
  }
  sample.name = line.substr(0, i);
  if (sample.name.empty()) return std::nullopt;
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      const auto equals = line.find('=', i);
      if (equals == std::string::npos || equals + 1 >= line.size() || line[equals + 1] != '"') {
        return std::nullopt;
      }
      std::string label = line.substr(i, equals - i), value;
      for (i = equals + 2; i < line.size() && line[i] != '"'; ++i) {
        if (line[i] == '\\' && i + 1 < line.size()) {
          ++i;
          value += line[i] == 'n' ? '\n' : line[i];
        } else {
          value += line[i];
        }
      }
      if (i >= line.size()) return std::nullopt;
      sample.labels[label] = value;
      ++i;  // the closing quote
      if (i < line.size() && line[i] == ',') ++i;
    }
    if (i >= line.size()) return std::nullopt;
    ++i;  // '}'
  }
  std::istringstream rest(line.substr(i));
  std::string number;
  if (!(rest >> number)) return std::nullopt;
  try {
    sample.value = number == "+Inf" ? INFINITY : std::stod(number);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return sample;
}

struct OperationFigures {
  std::vector<std::pair<double, double>> buckets;  // (le, cumulative count)
  double sum = 0, count = 0;

  // The upper bound of the bucket holding quantile q, in microseconds; +inf beyond the last.
  double quantile_us(double q) const {
    if (count <= 0) return 0;
    for (const auto& [le, cumulative] : buckets) {
      if (cumulative >= q * count) return le * 1e6;
    }
    return INFINITY;
  }
};

struct RegionFigures {
  std::map<std::string, double> counters;  // "hits" -> n
  std::map<std::string, OperationFigures> operations;
};

constexpr std::string_view kCounterPrefix = "dogpile_cache_";
constexpr std::string_view kHistogram = "dogpile_cache_operation_duration_seconds";

std::map<std::string, RegionFigures> parse(const std::string& text, const std::string& source) {
  std::map<std::string, RegionFigures> regions;
  std::istringstream lines(text);
  std::string line;
  int number = 0;
  while (std::getline(lines, line)) {
    ++number;
    if (line.empty() || line[0] == '#') continue;
    auto sample = parse_sample(line);
    if (!sample) {
      throw dogpile::Error(source + ":" + std::to_string(number) +
                           ": not a line of Prometheus' text format");
    }
    if (sample->name.rfind(kCounterPrefix, 0) != 0 || !sample->labels.count("region")) continue;
    RegionFigures& region = regions[sample->labels["region"]];
    const std::string& name = sample->name;
    if (name.rfind(kHistogram, 0) == 0) {
      OperationFigures& op = region.operations[sample->labels["operation"]];
      const std::string suffix = name.substr(kHistogram.size());
      if (suffix == "_bucket") {
        const std::string& le = sample->labels["le"];
        op.buckets.emplace_back(le == "+Inf" ? INFINITY : std::atof(le.c_str()), sample->value);
      } else if (suffix == "_sum") {
        op.sum = sample->value;
      } else if (suffix == "_count") {
        op.count = sample->value;
      }
    } else if (name.size() > 6 && name.compare(name.size() - 6, 6, "_total") == 0) {
      region.counters[name.substr(kCounterPrefix.size(), name.size() - kCounterPrefix.size() - 6)] =
          sample->value;
    }
  }
  if (regions.empty()) {
    throw dogpile::Error(source + " holds no dogpile metrics (dogpile_cache_*{region=...})");
  }
  return regions;
}

std::string latency_text(double us) {
  if (std::isinf(us)) return "> 1 s";
  char text[32];
  if (us >= 1000) {
    std::snprintf(text, sizeof text, "%.3g ms", us / 1000);
  } else {
    std::snprintf(text, sizeof text, "%.3g us", us);
  }
  return text;
}

}  // namespace

int stats(const Invocation& invocation) {
  const std::string& source = invocation.operands[0];
  const auto regions = parse(read_source(source), source);
  const bool json = invocation.has("--json");
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, figures] : regions) {
    auto counter = [&](const char* key) {
      auto it = figures.counters.find(key);
      return it == figures.counters.end() ? 0.0 : it->second;
    };
    const double gets = counter("gets"), hits = counter("hits");
    const double ratio = gets > 0 ? hits / gets : -1;  // -1: nothing looked up
    if (json) {
      nlohmann::json region = {{"gets", gets},
                               {"hits", hits},
                               {"misses", counter("misses")},
                               {"hit_ratio", ratio >= 0 ? nlohmann::json(ratio) : nlohmann::json()},
                               {"sets", counter("sets")},
                               {"deletes", counter("deletes")},
                               {"errors", counter("errors")},
                               {"operations", nlohmann::json::object()}};
      for (const auto& [op, f] : figures.operations) {
        if (f.count <= 0) continue;
        auto bound = [&](double q) {
          const double us = f.quantile_us(q);
          return std::isinf(us) ? nlohmann::json("+Inf") : nlohmann::json(us);
        };
        region["operations"][op] = {{"calls", f.count},
                                    {"mean_us", f.sum / f.count * 1e6},
                                    {"p50_us", bound(0.5)},
                                    {"p99_us", bound(0.99)},
                                    {"p999_us", bound(0.999)}};
      }
      out[name] = region;
      continue;
    }
    std::printf("region %s\n", name.c_str());
    std::printf(
        "  lookups %.0f, hits %.0f, misses %.0f, hit ratio %s\n", gets, hits, counter("misses"),
        ratio >= 0 ? (dogpile::python_float_repr(std::round(ratio * 1000) / 10) + " %").c_str()
                   : "n/a");
    std::printf("  sets %.0f, deletes %.0f, errors %.0f\n", counter("sets"), counter("deletes"),
                counter("errors"));
    bool header = false;
    for (const auto& [op, f] : figures.operations) {
      if (f.count <= 0) continue;
      if (!header) {
        std::printf("  %-14s %10s %12s %12s %12s %12s\n", "call", "count", "mean",
                    "p50 <=", "p99 <=", "p999 <=");
        header = true;
      }
      std::printf(
          "  %-14s %10.0f %12s %12s %12s %12s\n", op.c_str(), f.count,
          latency_text(f.sum / f.count * 1e6).c_str(), latency_text(f.quantile_us(0.5)).c_str(),
          latency_text(f.quantile_us(0.99)).c_str(), latency_text(f.quantile_us(0.999)).c_str());
    }
  }
  if (json) std::cout << out.dump(2) << "\n";
  return kOk;
}

}  // namespace tool
