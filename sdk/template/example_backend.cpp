// An example backend plugin, as small as a working backend can be: a bounded in-process map
// of serialized values. Entry point: example.cache.dict; argument: max_entries.
//
// A backend derives from ObjectBackend (stores CachedValue objects) or BytesBackend (stores
// the wire format, as a server does), implements that family plus remove(), reads its
// arguments in its constructor, and is declared with DOGPILE_BACKEND_PLUGIN.
#include <dogpile/sdk/sdk.hpp>
#include <map>
#include <mutex>

namespace {

class DictBackend final : public dogpile::BytesBackend {
 public:
  explicit DictBackend(const dogpile::Arguments& arguments)
      : max_entries_(arguments.get("max_entries", 10000u)) {}  // unknown arguments are refused

  std::optional<std::string> get_serialized(std::string_view key) override {
    std::lock_guard guard(mutex_);
    auto it = data_.find(key);
    if (it == data_.end()) return std::nullopt;
    return it->second;
  }

  void set_serialized(const std::string& key, std::string_view value) override {
    std::lock_guard guard(mutex_);
    if (data_.size() >= max_entries_ && data_.count(key) == 0) {
      dogpile::log(dogpile::LogLevel::debug, "example.cache.dict", "full; dropping one entry");
      data_.erase(data_.begin());
    }
    data_.insert_or_assign(key, std::string(value));
  }

  void remove(std::string_view key) override {
    std::lock_guard guard(mutex_);
    if (auto it = data_.find(key); it != data_.end()) data_.erase(it);
  }

 private:
  const unsigned max_entries_;
  std::mutex mutex_;
  std::map<std::string, std::string, std::less<>> data_;
};

}  // namespace

DOGPILE_BACKEND_PLUGIN(example_dict, "example.cache.dict", "1.0.0",
                       "Example: a bounded in-process map of serialized values", DictBackend);
