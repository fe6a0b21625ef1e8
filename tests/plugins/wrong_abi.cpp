// Test-only plugins declared for another SDK ABI version and for another toolchain: the
// loader must refuse both from their manifest, before loading the library.
#include <dogpile/sdk/sdk.hpp>

namespace {

class NeverMade final : public dogpile::ObjectBackend {
 public:
  explicit NeverMade(const dogpile::Arguments&) {}
  dogpile::CachedValuePtr get(std::string_view) override { return nullptr; }
  void set(const std::string&, dogpile::CachedValuePtr) override {}
  void remove(std::string_view) override {}
};

std::unique_ptr<dogpile::CacheBackend> make(const dogpile::Arguments& arguments,
                                            const dogpile::PluginContext&) {
  return std::make_unique<NeverMade>(arguments);
}

}  // namespace

DOGPILE_DECLARE_ENTRY_POINT(wrong_abi, 999, DOGPILE_BUILD_TAG, "backend",
                            ::dogpile::PluginKind::backend, "dogpile.test.wrong_abi", "0.0.1",
                            "test: built for SDK ABI 999", make, nullptr);
DOGPILE_DECLARE_ENTRY_POINT(wrong_build, DOGPILE_SDK_ABI_VERSION,
                            "libstdc++12-cxx11abi0-json3.11-diag0-ldvc0", "backend",
                            ::dogpile::PluginKind::backend, "dogpile.test.wrong_build", "0.0.1",
                            "test: built with the old string ABI", make, nullptr);
