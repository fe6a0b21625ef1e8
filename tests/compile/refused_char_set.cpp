// expect: a char, wchar_t, char8_t, char16_t or char32_t value is not cached
#include <dogpile/dogpile.hpp>

int main() { dogpile::make_region("x")->set("k", 'x'); }
