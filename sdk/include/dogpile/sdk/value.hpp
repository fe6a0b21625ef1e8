// A CachedValue is what a backend stores for one key: the application's payload and the
// metadata dogpile.cache keeps beside it (`ct`, the creation time in epoch seconds, and `v`,
// the format version, 2).
//
// The payload is held in one of two forms. An object payload is the application's own object,
// shared and immutable, so an in-process backend returns it on a hit with neither a copy nor
// a serialization. A bytes payload is the serialized form read from a byte backend; the
// region decodes it when the application asks for a type. Byte backends store the wire format
// of Python dogpile.cache >= 1.1: json(metadata) "|" payload-bytes, e.g.
// `{"ct": 1795570724.65, "v": 2}|{"a": 1}`. Bytes a backend read that are not in that format
// (another serializer's, garbage) become an undecodable CachedValue that keeps them exactly,
// so the bytes family is binary-safe and a region can treat them as a miss.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <typeinfo>

#include "dogpile/sdk/export.hpp"

namespace dogpile {

// dogpile.cache's value_version: a stored value of another version is regenerated.
inline constexpr int kValueVersion = 2;

struct ValueMetadata {
  double ct = 0;          // creation time, seconds since the epoch, sub-second precision
  int v = kValueVersion;  // format version
  // When the payload was made, if fail-safe kept it past its expiry by moving `ct` (0: at
  // `ct`). Written as `"origin"` after `v` only when set; Python dogpile.cache ignores it.
  double origin = 0;
  // When the payload was made.
  double made() const noexcept { return origin > 0 ? origin : ct; }
};

// Current time as dogpile.cache's time.time(): epoch seconds as a double.
DOGPILE_API double now_seconds() noexcept;

// The same clock read cheaply (about 5 ns instead of 30 here) with the kernel's tick as
// resolution (1-4 ms); never ahead of now_seconds(). Used for expiration checks on every hit,
// where a value may so live up to one tick longer than its expiration time.
DOGPILE_API double coarse_now_seconds() noexcept;

class CachedValue;
using CachedValuePtr = std::shared_ptr<const CachedValue>;

class DOGPILE_API CachedValue {
 public:
  // Turns an object payload into its bytes; null when the type has no codec.
  using Encoder = std::string (*)(const void* object);
  // The bytes an object payload holds (dogpile::SizeOf), for a backend bounded in bytes.
  using Sizer = std::size_t (*)(const void* object);

  // An object payload of dynamic type `type`.
  CachedValue(std::shared_ptr<const void> object, const std::type_info& type, Encoder encoder,
              ValueMetadata metadata, Sizer sizer = nullptr);
  // A bytes payload.
  CachedValue(std::string_view payload_bytes, ValueMetadata metadata);

  // The value a byte backend read: `wire` parsed as the wire format. Bytes that are not in it
  // give an undecodable value (see decodable()) that keeps them as they are, so the bytes
  // family stores arbitrary bytes and a region can treat them as a miss. Never throws.
  static CachedValuePtr from_wire(std::string wire);

  const ValueMetadata& metadata() const noexcept { return metadata_; }
  double cached_time() const noexcept { return metadata_.ct; }
  // Seconds since creation, by the system clock (dogpile's CachedValue.age); age(now) by
  // another clock's reading, e.g. age(region.clock().now()).
  double age() const noexcept;
  double age(double now) const noexcept { return now - metadata_.ct; }

  // False for bytes that are not in the wire format; problem() says why, and metadata() is
  // then meaningless (version 0).
  bool decodable() const noexcept { return problem_.empty(); }
  const std::string& problem() const noexcept { return problem_; }

  bool holds_object() const noexcept { return object_ != nullptr; }
  const std::shared_ptr<const void>& object() const noexcept { return object_; }
  // REQUIRES: holds_object().
  const std::type_info& object_type() const noexcept { return *type_; }
  // Whether an object payload can be encoded (its type has a codec).
  bool has_codec() const noexcept { return !object_ || encoder_ != nullptr; }
  // The serialized payload; REQUIRES: !holds_object() && decodable().
  std::string_view bytes() const noexcept {
    return std::string_view(wire_).substr(payload_offset_);
  }

  // The payload's size in bytes, what a backend bounded in bytes (max_bytes) counts: the
  // byte length of a bytes payload (of the whole bytes, when not decodable); for an object,
  // its sizer's answer, else its encoded length, else 0. Throws CantSerialize only when
  // encoding the object does.
  std::size_t payload_size() const;

  // The payload as bytes, encoding an object payload with its codec.
  // Throws CantSerialize when the object's type has no codec.
  std::string payload_bytes() const;

  // The same payload (shared, not copied) with other metadata. REQUIRES: decodable().
  std::shared_ptr<const CachedValue> with_metadata(const ValueMetadata& metadata) const;

  // A bytes value keeps the object the region decoded it into, so that a value a backend
  // holds as bytes (dogpile.cache.layered's L1 filled from Redis, memory_pickle) is decoded
  // once, not on every hit. decoded(): the one kept, or null. keep_decoded(): keeps `value`
  // unless one is kept already, and returns the one kept. Both live as long as this value.
  const CachedValue* decoded() const noexcept { return decoded_.load(std::memory_order_acquire); }
  const CachedValue* keep_decoded(std::shared_ptr<const CachedValue> value) const;

  // The whole wire format; for a value read from bytes, exactly those bytes.
  // Throws CantSerialize when an object payload's type has no codec.
  std::string wire() const;

 private:
  CachedValue() = default;

  std::shared_ptr<const void> object_;
  const std::type_info* type_ = nullptr;
  Encoder encoder_ = nullptr;
  Sizer sizer_ = nullptr;
  std::string wire_;  // a bytes payload: the whole wire format, payload from payload_offset_
  std::size_t payload_offset_ = 0;
  std::string problem_;  // why wire_ is not in the wire format; empty when it is
  ValueMetadata metadata_;
  mutable std::atomic<const CachedValue*> decoded_{nullptr};
  mutable std::shared_ptr<const CachedValue> decoded_owner_;  // written once, by keep_decoded
};

// Python's repr() of a float, which str() and json.dumps also give: the shortest text that
// reads back as the same double, laid out as CPython does ("1.0", "0.1", "1e-05", "1e+16").
DOGPILE_API std::string python_float_repr(double value);

// The wire format: `{"ct": <ct>, "v": <v>}|<payload>`, byte for byte what Python's
// json.dumps writes for the metadata (`{"ct": <ct>, "v": <v>, "origin": <origin>}` when
// fail-safe set an origin).
DOGPILE_API std::string serialize_cached_value(const CachedValue& value);
DOGPILE_API std::string serialize_metadata(const ValueMetadata& metadata);

// The wire format read back: CachedValue::from_wire. Never throws; bytes that are not in
// the format give a value whose decodable() is false.
DOGPILE_API CachedValuePtr parse_cached_value(std::string_view wire);

}  // namespace dogpile
