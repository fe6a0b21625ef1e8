// Typed values: a CachedValue holding an object of the application's type, and a stored
// value read as a type by the one rule of codec.hpp (lossless and unambiguous, else
// ValueTypeError; bytes that are no value, CantDeserialize). What the region's typed calls are
// built on, and what a test or tool uses to build a value by hand:
//
//   dogpile::CachedValuePtr value = dogpile::make_value(42, created);
//   std::shared_ptr<const int> n = dogpile::value_as<int>(value, "key");
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "dogpile/codec.hpp"
#include "dogpile/keys.hpp"
#include "dogpile/sdk/errors.hpp"
#include "dogpile/sdk/export.hpp"
#include "dogpile/sdk/value.hpp"

namespace dogpile {

namespace detail {

// Refuses, at compile time, a value type a region does not cache.
template <class T>
constexpr void check_cacheable() {
  static_assert(!detail::is_character<T>,
                "dogpile: a char, wchar_t, char8_t, char16_t or char32_t value is not cached: it "
                "could mean a character or a small integer, which JSON writes differently; "
                "cache a std::string, or an int");
}

// Throws E "cannot be read as <wanted>: why", <wanted> named as code names it (std::string,
// not libstdc++'s spelling).
template <class E>
[[noreturn]] DOGPILE_API void throw_cant_read(const std::type_info& wanted, std::string_view why);
[[noreturn]] DOGPILE_API void throw_wrong_type(const std::type_info& stored,
                                               const std::type_info& wanted);
[[noreturn]] DOGPILE_API void throw_no_codec(const std::type_info& wanted);

// `value` (not null) decoded by `decode` (null: only checked to be decodable); errors name
// `key`.
DOGPILE_API CachedValuePtr decode_for_key(CachedValuePtr value, std::string_view key,
                                          CachedValuePtr (*decode)(CachedValuePtr&&));

// A CachedValue holding `value` as an object (a stored_t<T>) with `metadata`.
template <class T>
CachedValuePtr make_value_with(T&& value, ValueMetadata metadata) {
  using V = stored_t<T>;
  detail::check_cacheable<V>();
  CachedValue::Encoder encoder = nullptr;
  if constexpr (HasCodec<V>) {
    encoder = [](const void* object) -> std::string {
      return Codec<V>::encode(*static_cast<const V*>(object));
    };
  }
  std::shared_ptr<const V> object;
  if constexpr (std::is_pointer_v<std::remove_cvref_t<T>>) {
    if (value == nullptr) throw ValidationError("a null C string cannot be cached");
    object = std::make_shared<const V>(value);
  } else {
    object = std::make_shared<const V>(std::forward<T>(value));
  }
  const CachedValue::Sizer sizer = [](const void* object) -> std::size_t {
    return SizeOf<V>::size(*static_cast<const V*>(object));
  };
  return std::make_shared<const CachedValue>(std::move(object), typeid(V), encoder, metadata,
                                             sizer);
}

// `value` as one whose object is a T: the value itself (moved, not copied) when it already
// is. Throws ValueTypeError / CantDeserialize with "cannot be read as T: why".
template <class T>
CachedValuePtr decode_as(CachedValuePtr&& value) {
  detail::check_cacheable<T>();
  if (value->holds_object() && value->object_type() == typeid(T)) return std::move(value);
  if (const CachedValue* kept = value->decoded();
      kept != nullptr && kept->object_type() == typeid(T)) {
    return CachedValuePtr(std::move(value), kept);  // decoded before: shares the bytes' life
  }
  if constexpr (!HasCodec<T>) {
    if (value->holds_object()) throw_wrong_type(value->object_type(), typeid(T));
    throw_no_codec(typeid(T));
  } else {
    // An object of another type reads as its bytes would: the same answer on every backend.
    std::string encoded;
    std::string_view bytes;
    if (value->holds_object()) {
      if (!value->has_codec()) throw_wrong_type(value->object_type(), typeid(T));
      encoded = value->payload_bytes();
      bytes = encoded;
    } else {
      bytes = value->bytes();
    }
    try {
      CachedValuePtr made = make_value_with(Codec<T>::decode(bytes), value->metadata());
      if (value->holds_object()) return made;
      const CachedValue* kept = value->keep_decoded(made);
      if (kept->object_type() != typeid(T)) return made;  // kept as another type
      return CachedValuePtr(std::move(value), kept);
    } catch (const ValueTypeError& e) {
      throw_cant_read<ValueTypeError>(typeid(T), e.what());
    } catch (const CantDeserialize& e) {
      throw_cant_read<CantDeserialize>(typeid(T), e.what());
    } catch (const Error&) {
      throw;
    } catch (const nlohmann::json::type_error& e) {
      throw_cant_read<ValueTypeError>(typeid(T), e.what());
    } catch (const nlohmann::json::out_of_range& e) {
      throw_cant_read<ValueTypeError>(typeid(T), e.what());
    } catch (const std::exception&) {
      // Its message may quote the bytes: not repeated.
      throw_cant_read<CantDeserialize>(typeid(T), "its dogpile::Codec could not decode the bytes");
    }
  }
}

}  // namespace detail

// A CachedValue holding `value` as an object (a stored_t<T>), created at `created`.
template <class T>
CachedValuePtr make_value(T&& value, double created = now_seconds()) {
  return detail::make_value_with(std::forward<T>(value), ValueMetadata{created, kValueVersion});
}

// The payload of `value` as a T (null when `value` is null), by the rule of codec.hpp; `key`
// is for messages. Throws ValueTypeError, or CantDeserialize for bytes that decode as no value.
template <class T>
std::shared_ptr<const T> value_as(CachedValuePtr value, std::string_view key) {
  if (!value) return nullptr;
  if (!value->holds_object() || value->object_type() != typeid(T)) {
    value = detail::decode_for_key(std::move(value), key, &detail::decode_as<T>);
  }
  // Aliasing: takes over the ownership of the CachedValue, no copy of the object.
  const T* object = static_cast<const T*>(value->object().get());
  return std::shared_ptr<const T>(std::move(value), object);
}

namespace detail {

// value_as for each of `values`, aligned with `keys`.
template <class T>
std::vector<std::shared_ptr<const T>> values_as(std::vector<CachedValuePtr> values,
                                                const Keys& keys) {
  std::vector<std::shared_ptr<const T>> out;
  out.reserve(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    out.push_back(value_as<T>(std::move(values[i]), keys[i]));
  }
  return out;
}

}  // namespace detail

}  // namespace dogpile
