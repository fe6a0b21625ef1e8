// An application exposing its cache figures, as the README shows it: a region wrapped in
// dogpile.proxy.stats, a known workload (3 sets, then 6 lookups: 3 hits, 3 misses), and
// dogpile::metrics_text() served at http://127.0.0.1:PORT/metrics. Says so on stdout once it
// listens. Usage: metrics_app PORT
// Boost 1.74's Asio uses std::exchange without including <utility>.
// clang-format off
#include <utility>
#include <boost/asio.hpp>
// clang-format on
#include <boost/beast.hpp>
#include <cstdio>
#include <dogpile/dogpile.hpp>
#include <iostream>
#include <string>

// [readme:serve-metrics]
void serve_metrics(unsigned short port) {  // #include <utility> first, for Boost 1.74's Asio
  namespace http = boost::beast::http;
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor acceptor(io, {boost::asio::ip::make_address("127.0.0.1"), port});
  std::cout << "metrics on http://127.0.0.1:" << port << "/metrics" << std::endl;
  for (;;) {
    boost::asio::ip::tcp::socket socket = acceptor.accept();
    boost::beast::flat_buffer buffer;
    http::request<http::string_body> request;
    boost::system::error_code error;
    http::read(socket, buffer, request, error);
    if (error) continue;
    http::response<http::string_body> response(http::status::ok, request.version());
    response.set(http::field::content_type, "text/plain; version=0.0.4");
    response.body() = dogpile::metrics_text();
    response.prepare_payload();
    http::write(socket, response, error);
  }
}
// [/readme:serve-metrics]

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fputs("usage: metrics_app PORT\n", stderr);
    return 2;
  }
  auto region = dogpile::make_region("cache.app");
  region->configure("dogpile.cache.memory", {.wrap = {"dogpile.proxy.stats"}});
  for (const char* key : {"a", "b", "c"}) region->set(key, std::string("value of ") + key);
  for (const char* key : {"a", "b", "c", "x", "y", "z"}) region->get<std::string>(key);
  serve_metrics(static_cast<unsigned short>(std::stoi(argv[1])));
}
