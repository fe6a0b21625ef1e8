// Test-only proxy plugin: counts the object-family reads and writes that pass through it in
// process-wide counters, which the test reads through exported functions.
#include <atomic>

#include <dogpile/sdk/sdk.hpp>

namespace {

std::atomic<int> g_gets{0};
std::atomic<int> g_sets{0};

class CountingProxy final : public dogpile::ProxyBackend {
 public:
  explicit CountingProxy(const dogpile::Arguments&) {}
  dogpile::CachedValuePtr get(std::string_view key) override {
    ++g_gets;
    return ProxyBackend::get(key);
  }
  void set(const std::string& key, dogpile::CachedValuePtr value) override {
    ++g_sets;
    ProxyBackend::set(key, std::move(value));
  }
};

}  // namespace

extern "C" DOGPILE_API int dogpile_test_counting_proxy_gets() { return g_gets.load(); }
extern "C" DOGPILE_API int dogpile_test_counting_proxy_sets() { return g_sets.load(); }

DOGPILE_PROXY_PLUGIN(counting_proxy, "dogpile.test.counting_proxy", "0.0.1",
                     "test: counts gets and sets", CountingProxy);
