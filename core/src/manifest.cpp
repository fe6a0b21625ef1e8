#include "manifest.hpp"

#include <elf.h>

#include <charconv>
#include <cstring>
#include <fstream>
#include <map>

#include "dogpile/sdk/errors.hpp"

namespace dogpile::detail {

namespace {

constexpr const char* kSectionName = "dogpile_manifest";
constexpr std::uint64_t kMaxSectionSize = 1 << 20;

bool read_at(std::ifstream& in, std::uint64_t offset, void* out, std::size_t size) {
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(static_cast<char*>(out), static_cast<std::streamsize>(size));
  return static_cast<std::size_t>(in.gcount()) == size;
}

// The bytes of the named section, or empty when the file has none or is not ELF64.
std::string read_section(const std::filesystem::path& file, const char* wanted) {
  std::ifstream in(file, std::ios::binary);
  Elf64_Ehdr header{};
  if (!in || !read_at(in, 0, &header, sizeof header)) return {};
  if (std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 || header.e_ident[EI_CLASS] != ELFCLASS64 ||
      header.e_type != ET_DYN || header.e_shentsize != sizeof(Elf64_Shdr) ||
      header.e_shstrndx >= header.e_shnum) {
    return {};
  }
  std::vector<Elf64_Shdr> sections(header.e_shnum);
  if (!read_at(in, header.e_shoff, sections.data(), sections.size() * sizeof(Elf64_Shdr))) {
    return {};
  }
  const Elf64_Shdr& names = sections[header.e_shstrndx];
  if (names.sh_size > kMaxSectionSize) return {};
  std::string name_table(names.sh_size, '\0');
  if (!read_at(in, names.sh_offset, name_table.data(), name_table.size())) return {};
  for (const auto& section : sections) {
    if (section.sh_name >= name_table.size() ||
        std::strcmp(name_table.c_str() + section.sh_name, wanted) != 0) {
      continue;
    }
    if (section.sh_type == SHT_NOBITS || section.sh_size > kMaxSectionSize) return {};
    std::string content(section.sh_size, '\0');
    if (!read_at(in, section.sh_offset, content.data(), content.size())) return {};
    return content;
  }
  return {};
}

EntryPointInfo parse_record(std::string_view record, const std::filesystem::path& file) {
  std::map<std::string, std::string, std::less<>> fields;
  while (!record.empty()) {
    auto end = record.find('\n');
    std::string_view line = record.substr(0, end);
    auto eq = line.find('=');
    if (eq != std::string_view::npos) fields[std::string(line.substr(0, eq))] = line.substr(eq + 1);
    record = end == std::string_view::npos ? std::string_view() : record.substr(end + 1);
  }
  auto field = [&](const char* name) -> const std::string& {
    auto it = fields.find(name);
    if (it == fields.end()) {
      throw PluginLoadError("plugin manifest in " + file.string() + " lacks the field '" + name +
                            "'");
    }
    return it->second;
  };
  EntryPointInfo info;
  info.name = field("name");
  const std::string& kind = field("kind");
  if (kind == "backend") {
    info.kind = PluginKind::backend;
  } else if (kind == "proxy") {
    info.kind = PluginKind::proxy;
  } else {
    throw PluginLoadError("plugin manifest in " + file.string() + " has unknown kind '" + kind +
                          "' for " + info.name);
  }
  const std::string& abi = field("abi");
  auto [ptr, ec] = std::from_chars(abi.data(), abi.data() + abi.size(), info.abi_version);
  if (ec != std::errc() || ptr != abi.data() + abi.size()) {
    throw PluginLoadError("plugin manifest in " + file.string() + " has a malformed ABI version '" +
                          abi + "' for " + info.name);
  }
  info.build_tag = field("build");
  info.version = field("version");
  info.description = field("description");
  info.symbol = field("symbol");
  info.file = file;
  return info;
}

}  // namespace

std::vector<EntryPointInfo> read_manifest(const std::filesystem::path& file) {
  std::vector<EntryPointInfo> entries;
  const std::string section = read_section(file, kSectionName);
  std::size_t pos = 0;
  while (pos < section.size()) {
    auto end = section.find('\0', pos);
    if (end == std::string::npos) end = section.size();
    if (end > pos)
      entries.push_back(parse_record(std::string_view(section).substr(pos, end - pos), file));
    pos = end + 1;
  }
  return entries;
}

}  // namespace dogpile::detail
