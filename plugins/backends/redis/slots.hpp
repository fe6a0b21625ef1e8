// Redis Cluster's key slots (cluster specification, "Keys distribution model"): a key's slot
// is CRC16 (XMODEM: polynomial 0x1021, initial value 0) of the key, or of its hash tag when it
// has one, modulo 16384. The hash tag is what lies between the first '{' and the first '}'
// after it, when that is not empty.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace dogpile::redis {

inline constexpr unsigned kClusterSlots = 16384;

constexpr std::array<std::uint16_t, 256> crc16_table() {
  std::array<std::uint16_t, 256> table{};
  for (unsigned byte = 0; byte < 256; ++byte) {
    std::uint16_t crc = static_cast<std::uint16_t>(byte << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = static_cast<std::uint16_t>((crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    table[byte] = crc;
  }
  return table;
}

inline std::uint16_t crc16(std::string_view data) {
  static constexpr auto kTable = crc16_table();
  std::uint16_t crc = 0;
  for (unsigned char c : data) {
    crc = static_cast<std::uint16_t>((crc << 8) ^ kTable[((crc >> 8) ^ c) & 0xff]);
  }
  return crc;
}

// The part of `key` that decides its slot.
inline std::string_view hashed_part(std::string_view key) {
  const auto open = key.find('{');
  if (open == std::string_view::npos) return key;
  const auto close = key.find('}', open + 1);
  if (close == std::string_view::npos || close == open + 1) return key;
  return key.substr(open + 1, close - open - 1);
}

inline unsigned key_slot(std::string_view key) { return crc16(hashed_part(key)) % kClusterSlots; }

// The name of `key`'s distributed lock, in the same slot as the key: `prefix` + key when the
// key has a hash tag (the lock keeps it), else `prefix` + "{" + key + "}" (the whole key as
// the tag). A key with a '}' and no hash tag cannot be a tag: its lock is `prefix` + key, in
// another slot, which the lock works with as well. `prefix` has no braces.
inline std::string cluster_lock_name(std::string_view prefix, std::string_view key) {
  std::string name(prefix);
  if (hashed_part(key).size() != key.size() || key.find('}') != std::string_view::npos ||
      key.empty()) {
    name += key;
  } else {
    name.append("{").append(key).append("}");
  }
  return name;
}

}  // namespace dogpile::redis
