// Test-only backend that breaks the contract the way careless backends do: it keeps values as
// C strings (cut at the first NUL), returns multi gets in its own order, and claims a size limit
// it does not enforce. The conformance kit must fail it on exactly those points. With the
// argument fail_to_start = "int" or "runtime_error" its constructor throws that instead; with
// fail_calls = true every get and set throws a std::runtime_error.
#include <algorithm>
#include <dogpile/sdk/sdk.hpp>
#include <map>
#include <mutex>
#include <stdexcept>

namespace {

class CarelessBackend final : public dogpile::BytesBackend {
 public:
  explicit CarelessBackend(const dogpile::Arguments& arguments) {
    const auto fail = arguments.get("fail_to_start", std::string());
    if (fail == "int") throw 42;
    if (fail == "runtime_error") throw std::runtime_error("careless backend refused to start");
    fail_calls_ = arguments.get("fail_calls", false);
  }

  std::optional<std::string> get_serialized(std::string_view key) override {
    if (fail_calls_) throw std::runtime_error("careless get");
    std::lock_guard guard(mutex_);
    auto it = data_.find(key);
    if (it == data_.end()) return std::nullopt;
    return it->second;
  }
  dogpile::SerializedValues get_serialized_multi(const dogpile::Keys& keys) override {
    auto values = BytesBackend::get_serialized_multi(keys);
    std::reverse(values.begin(), values.end());
    return values;
  }
  void set_serialized(const std::string& key, std::string_view value) override {
    if (fail_calls_) throw std::runtime_error("careless set");
    std::lock_guard guard(mutex_);
    data_.insert_or_assign(key, std::string(value).c_str());
  }
  void remove(std::string_view key) override {
    std::lock_guard guard(mutex_);
    if (auto it = data_.find(key); it != data_.end()) data_.erase(it);
  }
  dogpile::BackendCapabilities capabilities() const override { return {.max_value_size = 4096}; }

 private:
  bool fail_calls_ = false;
  std::mutex mutex_;
  std::map<std::string, std::string, std::less<>> data_;
};

}  // namespace

DOGPILE_BACKEND_PLUGIN(careless, "test.cache.careless", "1.0.0",
                       "Test only: breaks the backend contract", CarelessBackend);
