// Test-only backend linked with -Wl,--gc-sections (and built with -ffunction-sections
// -fdata-sections), as size-conscious builds link: its manifest section must survive, or the
// loader never finds it.
#include <dogpile/sdk/sdk.hpp>

namespace {

class NothingBackend final : public dogpile::ObjectBackend {
 public:
  explicit NothingBackend(const dogpile::Arguments&) {}
  dogpile::CachedValuePtr get(std::string_view) override { return nullptr; }
  void set(const std::string&, dogpile::CachedValuePtr) override {}
  void remove(std::string_view) override {}
};

}  // namespace

DOGPILE_BACKEND_PLUGIN(gc_sections, "test.cache.gc_sections", "1.0.0",
                       "Test only: a plugin linked with --gc-sections", NothingBackend);
