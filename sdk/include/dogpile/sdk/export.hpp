// Export and ABI macros shared by the core and by every plugin.
//
// DOGPILE_API marks what crosses a library boundary (the core's classes that plugins use,
// exception types thrown across it); everything else is built with hidden visibility.
// DOGPILE_SDK_ABI_VERSION is bumped on any change to the layout of an SDK type; the loader
// refuses a plugin built for another version. DOGPILE_BUILD_TAG names the toolchain facts
// that break the ABI silently when they differ (libstdc++ release, its dual string ABI, and
// nlohmann::json's version and ABI tags), so a mismatched plugin is refused before any of its code
// runs.
#pragma once

#include <nlohmann/json.hpp>

#define DOGPILE_API __attribute__((visibility("default")))

#define DOGPILE_SDK_ABI_VERSION 6

#define DOGPILE_STRINGIFY_(x) #x
#define DOGPILE_STRINGIFY(x) DOGPILE_STRINGIFY_(x)

#if defined(__GLIBCXX__)
#define DOGPILE_STDLIB_TAG_                                                      \
  "libstdc++" DOGPILE_STRINGIFY(_GLIBCXX_RELEASE) "-cxx11abi" DOGPILE_STRINGIFY( \
      _GLIBCXX_USE_CXX11_ABI)
#elif defined(_LIBCPP_VERSION)
#define DOGPILE_STDLIB_TAG_ "libc++" DOGPILE_STRINGIFY(_LIBCPP_ABI_VERSION)
#else
#define DOGPILE_STDLIB_TAG_ "unknown-stdlib"
#endif

// nlohmann::json's ABI: its version and its ABI tags (json_abi, plus _diag and _ldvcmp when
// JSON_DIAGNOSTICS or JSON_USE_LEGACY_DISCARDED_VALUE_COMPARISON change its layout). The tags
// macro, unlike those two, is still defined after <nlohmann/json.hpp>.
#define DOGPILE_BUILD_TAG                                                       \
  DOGPILE_STDLIB_TAG_                                                           \
  "-json" DOGPILE_STRINGIFY(NLOHMANN_JSON_VERSION_MAJOR) "." DOGPILE_STRINGIFY( \
      NLOHMANN_JSON_VERSION_MINOR) "-" DOGPILE_STRINGIFY(NLOHMANN_JSON_ABI_TAGS)
