// Declaring a plugin's entry points.
//
// Each entry point is a dotted name (`dogpile.cache.memory`) bound to a factory. The macros
// below emit two things per entry point:
//  - a descriptor symbol (extern "C", default visibility) the loader looks up after dlopen;
//  - a text record in the ELF section "dogpile_manifest" that the loader reads from the file
//    without loading it: name, kind, SDK ABI version, build tag, plugin version, description
//    and the descriptor's symbol. A plugin built for another ABI or toolchain is therefore
//    refused before any of its code runs.
//
// Usage, in one .cpp of the plugin:
//
//   DOGPILE_BACKEND_PLUGIN(memory, "dogpile.cache.memory", "1.0.0",
//                          "In-process store of objects", MemoryBackend)
//
// where MemoryBackend derives from ObjectBackend or BytesBackend and has a constructor taking
// `const dogpile::Arguments&`, or `(const dogpile::Arguments&, const dogpile::PluginContext&)`
// to be told its region's name and clock and to make other backends (context.hpp). The first
// parameter is an identifier unique in the library.
#pragma once

#include <cstdint>
#include <memory>
#include <type_traits>

#include "dogpile/sdk/arguments.hpp"
#include "dogpile/sdk/backend.hpp"
#include "dogpile/sdk/export.hpp"
#include "dogpile/sdk/proxy.hpp"

namespace dogpile {

class PluginContext;  // context.hpp

enum class PluginKind : std::uint32_t { backend = 1, proxy = 2 };

using BackendFactory = std::unique_ptr<CacheBackend> (*)(const Arguments&, const PluginContext&);
using ProxyFactory = std::unique_ptr<ProxyBackend> (*)(const Arguments&, const PluginContext&);

// A plugin class made from its arguments, and its context when its constructor takes one.
template <class T>
std::unique_ptr<T> make_plugin_object(const Arguments& arguments, const PluginContext& context) {
  if constexpr (std::is_constructible_v<T, const Arguments&, const PluginContext&>) {
    return std::make_unique<T>(arguments, context);
  } else {
    return std::make_unique<T>(arguments);
  }
}

// Layout is part of the ABI; abi_version stays the first member in every version so a loader
// can read it from a plugin of any version.
struct PluginDescriptor {
  std::uint32_t abi_version;
  const char* build_tag;
  const char* name;
  PluginKind kind;
  const char* version;
  const char* description;
  BackendFactory make_backend;  // set when kind == backend
  ProxyFactory make_proxy;      // set when kind == proxy
};

}  // namespace dogpile

#define DOGPILE_ENTRY_POINT_SYMBOL_PREFIX "dogpile_entry_point_"

// The manifest must survive a link with --gc-sections, which drops unreferenced sections
// even when their contents are `used`: `retain` (SHF_GNU_RETAIN) keeps it.
#if defined(__has_attribute)
#if __has_attribute(retain)
#define DOGPILE_MANIFEST_ATTRIBUTES_ section("dogpile_manifest"), used, retain
#endif
#endif
#ifndef DOGPILE_MANIFEST_ATTRIBUTES_
#define DOGPILE_MANIFEST_ATTRIBUTES_ section("dogpile_manifest"), used
#endif

// The general form; the ABI version and build tag are parameters only so that tests can build
// a deliberately mismatched plugin. Use the two macros below.
#define DOGPILE_DECLARE_ENTRY_POINT(id, abi, tag, kind_text, kind, name, version, description, \
                                    backend_factory, proxy_factory)                            \
  extern "C" DOGPILE_API const ::dogpile::PluginDescriptor dogpile_entry_point_##id;           \
  extern "C" DOGPILE_API const ::dogpile::PluginDescriptor dogpile_entry_point_##id = {        \
      abi, tag, name, kind, version, description, backend_factory, proxy_factory};             \
  __attribute__((DOGPILE_MANIFEST_ATTRIBUTES_)) static const char dogpile_manifest_##id[] =    \
      "name=" name "\nkind=" kind_text                                                         \
      "\nabi=" DOGPILE_STRINGIFY(abi) "\nbuild=" tag "\nversion=" version                      \
                                      "\ndescription=" description                             \
                                      "\nsymbol=" DOGPILE_ENTRY_POINT_SYMBOL_PREFIX #id

#define DOGPILE_BACKEND_PLUGIN(id, name, version, description, BackendClass)                     \
  DOGPILE_DECLARE_ENTRY_POINT(                                                                   \
      id, DOGPILE_SDK_ABI_VERSION, DOGPILE_BUILD_TAG, "backend", ::dogpile::PluginKind::backend, \
      name, version, description,                                                                \
      [](const ::dogpile::Arguments& arguments,                                                  \
         const ::dogpile::PluginContext& context) -> std::unique_ptr<::dogpile::CacheBackend> {  \
        return ::dogpile::make_plugin_object<BackendClass>(arguments, context);                  \
      },                                                                                         \
      nullptr)

#define DOGPILE_PROXY_PLUGIN(id, name, version, description, ProxyClass)                           \
  DOGPILE_DECLARE_ENTRY_POINT(                                                                     \
      id, DOGPILE_SDK_ABI_VERSION, DOGPILE_BUILD_TAG, "proxy", ::dogpile::PluginKind::proxy, name, \
      version, description, nullptr,                                                               \
      [](const ::dogpile::Arguments& arguments,                                                    \
         const ::dogpile::PluginContext& context) -> std::unique_ptr<::dogpile::ProxyBackend> {    \
        return ::dogpile::make_plugin_object<ProxyClass>(arguments, context);                      \
      })
