#include "dogpile/sdk/backend.hpp"

#include <openssl/evp.h>

#include <random>

#include "dogpile/sdk/errors.hpp"

namespace dogpile {

std::string random_hex(std::size_t digits) {
  thread_local std::mt19937_64 random(std::random_device{}());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(digits, '0');
  for (char& c : out) c = kHex[random() & 0xf];
  return out;
}

std::string sha1_mangle_key(std::string_view key) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(key.data(), key.size(), digest, &length, EVP_sha1(), nullptr) != 1) {
    throw Error("SHA-1 is not available from OpenSSL");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 0xf];
  }
  return hex;
}

void check_value_size(std::string_view value, std::size_t limit, std::string_view backend) {
  if (value.size() <= limit) return;
  throw CantSerialize(std::string(backend) + " stores values of at most " + std::to_string(limit) +
                      " bytes; this one is " + std::to_string(value.size()) + " bytes");
}

CacheBackend::~CacheBackend() = default;
bool CacheBackend::visit(std::string_view key, ValueVisitor visitor) {
  const CachedValuePtr value = get(key);
  if (!value) return false;
  visitor(value);
  return true;
}
std::unique_ptr<CacheMutex> CacheBackend::get_mutex(std::string_view) { return nullptr; }
KeyMangler CacheBackend::key_mangler() const { return {}; }
bool CacheBackend::has_lock_timeout() const { return false; }
BackendCapabilities CacheBackend::capabilities() const { return {}; }
std::shared_ptr<Broadcast> CacheBackend::broadcast(std::string_view) { return nullptr; }
Broadcast::~Broadcast() = default;
Broadcast::Subscription::~Subscription() = default;

// ObjectBackend: the bytes family in terms of objects.

std::vector<CachedValuePtr> ObjectBackend::get_multi(const Keys& keys) {
  std::vector<CachedValuePtr> values;
  values.reserve(keys.size());
  for (const auto& key : keys) values.push_back(get(key));
  return values;
}

void ObjectBackend::set_multi(const ValueMapping& mapping) {
  for (const auto& [key, value] : mapping) set(key, value);
}

void ObjectBackend::remove_multi(const Keys& keys) {
  for (const auto& key : keys) remove(key);
}

std::optional<std::string> ObjectBackend::get_serialized(std::string_view key) {
  auto value = get(key);
  if (!value) return std::nullopt;
  return serialize_cached_value(*value);
}

SerializedValues ObjectBackend::get_serialized_multi(const Keys& keys) {
  SerializedValues out;
  out.reserve(keys.size());
  for (const auto& value : get_multi(keys)) {
    if (value) {
      out.emplace_back(serialize_cached_value(*value));
    } else {
      out.emplace_back();
    }
  }
  return out;
}

void ObjectBackend::set_serialized(const std::string& key, std::string_view value) {
  set(key, parse_cached_value(value));
}

void ObjectBackend::set_serialized_multi(const SerializedMapping& mapping) {
  ValueMapping values;
  values.reserve(mapping.size());
  for (const auto& [key, bytes] : mapping) values.emplace_back(key, parse_cached_value(bytes));
  set_multi(values);
}

// BytesBackend: the object family in terms of bytes.

SerializedValues BytesBackend::get_serialized_multi(const Keys& keys) {
  SerializedValues values;
  values.reserve(keys.size());
  for (const auto& key : keys) values.push_back(get_serialized(key));
  return values;
}

void BytesBackend::set_serialized_multi(const SerializedMapping& mapping) {
  for (const auto& [key, value] : mapping) set_serialized(key, value);
}

void BytesBackend::remove_multi(const Keys& keys) {
  for (const auto& key : keys) remove(key);
}

CachedValuePtr BytesBackend::get(std::string_view key) {
  auto bytes = get_serialized(key);
  if (!bytes) return nullptr;
  return parse_cached_value(*bytes);
}

std::vector<CachedValuePtr> BytesBackend::get_multi(const Keys& keys) {
  std::vector<CachedValuePtr> out;
  out.reserve(keys.size());
  for (const auto& bytes : get_serialized_multi(keys)) {
    out.push_back(bytes ? parse_cached_value(*bytes) : nullptr);
  }
  return out;
}

void BytesBackend::set(const std::string& key, CachedValuePtr value) {
  set_serialized(key, serialize_cached_value(*value));
}

void BytesBackend::set_multi(const ValueMapping& mapping) {
  SerializedMapping serialized;
  serialized.reserve(mapping.size());
  for (const auto& [key, value] : mapping) {
    serialized.emplace_back(key, serialize_cached_value(*value));
  }
  set_serialized_multi(serialized);
}

}  // namespace dogpile
