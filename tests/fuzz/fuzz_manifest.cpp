// A file in a plugin directory: the manifest reader parses ELF headers and the dogpile_manifest
// section of any *.so it finds, without loading it. It may only refuse with PluginLoadError.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <dogpile/dogpile.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "manifest.hpp"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
  static const std::filesystem::path file = [] {
    std::atexit([] {
      std::filesystem::remove(std::filesystem::temp_directory_path() /
                              ("dogpile-fuzz-" + std::to_string(::getpid()) + ".so"));
    });
    return std::filesystem::temp_directory_path() /
           ("dogpile-fuzz-" + std::to_string(::getpid()) + ".so");
  }();
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    for (const auto& entry : dogpile::detail::read_manifest(file)) (void)entry.name;
  } catch (const dogpile::PluginLoadError&) {
  }
  return 0;
}
