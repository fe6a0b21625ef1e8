// Test-only plugin whose library references a function nobody defines: its manifest is
// fine, but dlopen(RTLD_NOW) fails. Built without --no-undefined on purpose.
#include <dogpile/sdk/sdk.hpp>

extern "C" int dogpile_test_function_nobody_defines();

namespace {

class BrokenBackend final : public dogpile::ObjectBackend {
 public:
  explicit BrokenBackend(const dogpile::Arguments&) { dogpile_test_function_nobody_defines(); }
  dogpile::CachedValuePtr get(std::string_view) override { return nullptr; }
  void set(const std::string&, dogpile::CachedValuePtr) override {}
  void remove(std::string_view) override {}
};

}  // namespace

DOGPILE_BACKEND_PLUGIN(undefined_symbol, "dogpile.test.undefined_symbol", "0.0.1",
                       "test: references an undefined symbol", BrokenBackend);
