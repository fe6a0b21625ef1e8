// dogpile.cache.null: stores nothing, so every get is a miss; its mutex never blocks. For
// turning caching off by configuration.
#include <dogpile/sdk/sdk.hpp>

namespace dogpile::null_backend {

namespace {

class NullMutex final : public CacheMutex {
 public:
  bool acquire(bool) override { return true; }
  void release() override {}
  bool locked() const override { return false; }
};

class NullBackend final : public ObjectBackend {
 public:
  explicit NullBackend(const Arguments&) {}

  CachedValuePtr get(std::string_view) override { return nullptr; }
  void set(const std::string&, CachedValuePtr) override {}
  void remove(std::string_view) override {}
  std::unique_ptr<CacheMutex> get_mutex(std::string_view) override {
    return std::make_unique<NullMutex>();
  }
  BackendCapabilities capabilities() const override {
    return {.stores_values = false, .mutexes_exclude = false};
  }
};

}  // namespace

}  // namespace dogpile::null_backend

DOGPILE_BACKEND_PLUGIN(null, "dogpile.cache.null", "1.0.0",
                       "Stores nothing: every get is a miss, locks never block",
                       dogpile::null_backend::NullBackend);
