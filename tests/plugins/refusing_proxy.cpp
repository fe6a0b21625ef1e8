// Test-only proxy plugin: refuses to store one key, given by its required argument `key`;
// every other call passes through. Exercises per-proxy arguments from config.
#include <dogpile/sdk/sdk.hpp>

namespace {

class RefusingProxy final : public dogpile::ProxyBackend {
 public:
  explicit RefusingProxy(const dogpile::Arguments& arguments)
      : refused_(arguments.require<std::string>("key")) {}

  void set(const std::string& key, dogpile::CachedValuePtr value) override {
    if (key != refused_) ProxyBackend::set(key, std::move(value));
  }
  void set_serialized(const std::string& key, std::string_view value) override {
    if (key != refused_) ProxyBackend::set_serialized(key, value);
  }
  void set_multi(const dogpile::ValueMapping& mapping) override {
    dogpile::ValueMapping kept;
    for (const auto& item : mapping) {
      if (item.first != refused_) kept.push_back(item);
    }
    ProxyBackend::set_multi(kept);
  }
  void set_serialized_multi(const dogpile::SerializedMapping& mapping) override {
    dogpile::SerializedMapping kept;
    for (const auto& item : mapping) {
      if (item.first != refused_) kept.push_back(item);
    }
    ProxyBackend::set_serialized_multi(kept);
  }

 private:
  const std::string refused_;
};

}  // namespace

DOGPILE_PROXY_PLUGIN(refusing_proxy, "dogpile.test.refusing_proxy", "0.0.1",
                     "test: refuses to store one key", RefusingProxy);
