// Reading a plugin's entry-point manifest (the "dogpile_manifest" ELF section, see
// dogpile/sdk/plugin.hpp) from the file, without loading it.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "dogpile/loader.hpp"

namespace dogpile::detail {

// The entry points a file declares. Empty when the file is not a 64-bit ELF shared object or
// has no manifest. Throws PluginLoadError for a manifest record that is malformed.
std::vector<EntryPointInfo> read_manifest(const std::filesystem::path& file);

}  // namespace dogpile::detail
