// Codecs turn a C++ value into the payload bytes a byte backend stores, and back, so that a
// value reads the same on every backend and a Python dogpile.cache service using a JSON
// serializer reads what C++ wrote (and the other way round).
//
// The region's typed API (set<T>, get<T>) picks Codec<T>:
//  - std::string: a JSON string, byte for byte what Python's json.dumps writes ("h\u00e9"),
//    when it is valid UTF-8; any other string is stored as its raw bytes (which JSON, being
//    valid UTF-8, never is). String literals, `const char*` and std::string_view are stored
//    as std::string.
//  - dogpile::Bytes: its raw bytes, for binary payloads; C++ only (a Python JSON
//    deserializer cannot read them).
//  - everything nlohmann::json converts (numbers, bool, containers, nlohmann::json itself,
//    types with to_json/from_json): JSON, with NaN, Infinity and -Infinity written and read
//    as Python does.
// A full specialization adds a codec for a user type and wins over the above:
//
//   template <> struct dogpile::Codec<Point> {
//     static std::string encode(const Point& p);
//     static Point decode(std::string_view bytes);  // throws on bad input
//   };
//
// Reading is strict: a value reads as T only when that is lossless (see the README's table).
// A payload that is a value of another type (1.5 read as int, true read as int, 300 read as
// int8_t, "1" read as int) throws ValueTypeError; a payload that is no value at all (not
// JSON, or not UTF-8 where a string is not asked for) throws CantDeserialize, which a region
// treats as a miss. A user codec's decode signals the same with those exceptions; any other
// exception it throws counts as CantDeserialize.
//
// A type without a codec can still be cached in an object backend (dogpile.cache.memory),
// which stores the object itself; storing it in a byte backend throws CantSerialize.
#pragma once

#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <ranges>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "dogpile/sdk/errors.hpp"
#include "dogpile/sdk/export.hpp"

namespace dogpile {

// A binary payload, stored as its bytes exactly. Reading a payload as Bytes always gives the
// bytes the backend holds after the metadata, whatever wrote them.
struct Bytes {
  std::string data;
  Bytes() = default;
  explicit Bytes(std::string bytes) : data(std::move(bytes)) {}
  friend bool operator==(const Bytes&, const Bytes&) = default;
};

// JSON as Python's json module reads and writes it.
namespace python_json {
// json.loads: also NaN, Infinity and -Infinity. Throws CantDeserialize for text that is not
// JSON or nests deeper than 512 levels.
DOGPILE_API nlohmann::json loads(std::string_view text);
// json.dumps with compact separators: non-ASCII characters escaped as \uXXXX, non-finite
// floats as NaN, Infinity, -Infinity. Throws CantSerialize for a string that is not UTF-8.
DOGPILE_API std::string dumps(const nlohmann::json& value);
DOGPILE_API bool is_valid_utf8(std::string_view text) noexcept;
// "an integer", "a float", "a string", ...: what a JSON value is, for messages.
DOGPILE_API const char* describe(const nlohmann::json& value) noexcept;
}  // namespace python_json

// What a region stores for a value of type T: string literals, C strings and string views
// become std::string (a pointer or view would dangle).
template <class T>
using stored_t = std::conditional_t<std::is_same_v<std::decay_t<T>, const char*> ||
                                        std::is_same_v<std::decay_t<T>, char*> ||
                                        std::is_same_v<std::remove_cvref_t<T>, std::string_view>,
                                    std::string, std::remove_cvref_t<T>>;

template <class T>
struct Codec;  // no codec unless one of the specializations below, or the user's, applies

template <>
struct DOGPILE_API Codec<std::string> {
  static std::string encode(const std::string& value);
  // A JSON string's text; a payload that is not UTF-8 as it is.
  static std::string decode(std::string_view bytes);
};

template <>
struct Codec<Bytes> {
  static std::string encode(const Bytes& value) { return value.data; }
  static Bytes decode(std::string_view bytes) { return Bytes(std::string(bytes)); }
};

template <class T>
concept JsonConvertible = requires(const T& value, const nlohmann::json& json) {
  {nlohmann::json(value)};
  { json.template get<T>() } -> std::same_as<T>;
};

namespace detail {

// Character types: a char may mean a character or a small integer, which JSON writes
// differently ("x" or 120), so a region stores neither (see region_impl.hpp).
template <class T>
inline constexpr bool is_character =
    std::is_same_v<std::remove_cv_t<T>, char> || std::is_same_v<std::remove_cv_t<T>, wchar_t> ||
    std::is_same_v<std::remove_cv_t<T>, char8_t> || std::is_same_v<std::remove_cv_t<T>, char16_t> ||
    std::is_same_v<std::remove_cv_t<T>, char32_t>;

template <class T>
inline constexpr bool is_optional = false;
template <class T>
inline constexpr bool is_optional<std::optional<T>> = true;

template <class T>
struct unwrap_optional {
  using type = T;
};
template <class T>
struct unwrap_optional<std::optional<T>> {
  using type = T;
};

template <class T>
concept TupleLike = requires {
  std::tuple_size<T>::value;
};

template <class T>
concept MapLike = requires {
  typename T::key_type;
  typename T::mapped_type;
};

// Whether `integer` converts to the floating type F and back unchanged.
template <class F, class I>
bool exactly_representable(I integer) {
  const F converted = static_cast<F>(integer);
  // 2^63 (or 2^64) itself is representable but out of I's range.
  if (converted >= std::ldexp(F(1), std::numeric_limits<I>::digits) ||
      converted < F(std::numeric_limits<I>::min())) {
    return false;
  }
  return static_cast<I>(converted) == integer;
}

// Whether `json` reads losslessly as a T; when not, `why` says what it holds instead, with
// the path to the offending element. Types this does not know (the user's, with their own
// from_json) are left to their from_json.
template <class T>
bool json_fits(const nlohmann::json& json, std::string& why) {
  using U = std::remove_cv_t<T>;
  auto mismatch = [&](const char* wanted) {
    why = std::string("holds ") + python_json::describe(json) + ", not " + wanted;
    return false;
  };
  if constexpr (std::is_same_v<U, nlohmann::json>) {
    return true;
  } else if constexpr (std::is_same_v<U, bool>) {
    return json.is_boolean() || mismatch("a boolean");
  } else if constexpr (std::is_integral_v<U>) {
    if (!json.is_number_integer()) return mismatch("an integer");
    const bool in_range = json.is_number_unsigned() ? std::in_range<U>(json.get<std::uint64_t>())
                                                    : std::in_range<U>(json.get<std::int64_t>());
    if (!in_range) why = "holds an integer out of the range of the integer type asked for";
    return in_range;
  } else if constexpr (std::is_floating_point_v<U>) {
    bool exact = true;
    if (json.is_number_float()) {
      const double d = json.get<double>();
      if constexpr (sizeof(U) < sizeof(double)) {
        exact = !std::isfinite(d) || (std::fabs(d) <= std::numeric_limits<U>::max() &&
                                      static_cast<double>(static_cast<U>(d)) == d);
      }
    } else if (json.is_number_unsigned()) {
      exact = exactly_representable<U>(json.get<std::uint64_t>());
    } else if (json.is_number_integer()) {
      exact = exactly_representable<U>(json.get<std::int64_t>());
    } else {
      return mismatch("a number");
    }
    if (!exact) why = "holds a number the floating-point type asked for cannot represent exactly";
    return exact;
  } else if constexpr (std::is_same_v<U, std::string>) {
    return json.is_string() || mismatch("a string");
  } else if constexpr (is_optional<U>) {
    return json.is_null() || json_fits<typename U::value_type>(json, why);
  } else if constexpr (TupleLike<U>) {
    if (!json.is_array() || json.size() != std::tuple_size_v<U>) {
      return mismatch(("an array of " + std::to_string(std::tuple_size_v<U>)).c_str());
    }
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      std::size_t failed = 0;
      const bool fits =
          ((json_fits<std::tuple_element_t<I, U>>(json[I], why) || ((failed = I), false)) && ...);
      if (!fits) why = "[" + std::to_string(failed) + "] " + why;
      return fits;
    }
    (std::make_index_sequence<std::tuple_size_v<U>>{});
  } else if constexpr (MapLike<U>) {
    if (json.is_object()) {
      for (const auto& item : json.items()) {
        if (!json_fits<typename U::mapped_type>(item.value(), why)) {
          why = "[\"" + item.key() + "\"] " + why;
          return false;
        }
      }
      return true;
    }
    if (!json.is_array()) return mismatch("an object");
    for (std::size_t i = 0; i < json.size(); ++i) {
      if (!json_fits<std::pair<typename U::key_type, typename U::mapped_type>>(json[i], why)) {
        why = "[" + std::to_string(i) + "] " + why;
        return false;
      }
    }
    return true;
  } else if constexpr (std::ranges::range<U>) {
    if (!json.is_array()) return mismatch("an array");
    for (std::size_t i = 0; i < json.size(); ++i) {
      if (!json_fits<std::remove_cvref_t<std::ranges::range_value_t<U>>>(json[i], why)) {
        why = "[" + std::to_string(i) + "] " + why;
        return false;
      }
    }
    return true;
  } else {
    return true;
  }
}

}  // namespace detail

template <class T>
requires(!std::is_same_v<T, std::string> && !std::is_same_v<T, Bytes> && !detail::is_character<T> &&
         (std::is_arithmetic_v<T> || JsonConvertible<T>)) struct Codec<T> {
  static std::string encode(const T& value) { return python_json::dumps(nlohmann::json(value)); }
  static T decode(std::string_view bytes) {
    nlohmann::json json = python_json::loads(bytes);
    if constexpr (std::is_same_v<T, nlohmann::json>) {
      return json;  // moved, not copied by get<>
    } else {
      std::string why;
      if (!detail::json_fits<T>(json, why)) throw ValueTypeError(why);
      try {
        return json.template get<T>();
      } catch (const nlohmann::json::exception& e) {
        throw ValueTypeError(std::string("does not convert: ") + e.what());
      }
    }
  }
};

template <class T>
concept HasCodec = requires(const T& value, std::string_view bytes) {
  { Codec<T>::encode(value) } -> std::convertible_to<std::string>;
  { Codec<T>::decode(bytes) } -> std::convertible_to<T>;
};

// The bytes a value holds, which a memory backend bounded by max_bytes counts: a string's or
// Bytes' length; a contiguous container of trivially copyable elements, its elements' bytes;
// another type with a codec, its encoded length (computed on each set: specialize SizeOf for
// a faster answer); anything else, sizeof(T). A specialization sets it for a type:
//
//   template <> struct dogpile::SizeOf<Image> {
//     static std::size_t size(const Image& image) { return image.pixels.size() * 4; }
//   };
template <class T>
concept ContiguousOfTrivial = std::ranges::contiguous_range<T> && std::ranges::sized_range<T> &&
    std::is_trivially_copyable_v<std::ranges::range_value_t<T>>;

template <class T>
struct SizeOf {
  static std::size_t size(const T& value) {
    if constexpr (std::is_same_v<T, std::string>) {
      return value.size();
    } else if constexpr (std::is_same_v<T, Bytes>) {
      return value.data.size();
    } else if constexpr (ContiguousOfTrivial<const T>) {
      return std::ranges::size(value) * sizeof(std::ranges::range_value_t<T>);
    } else if constexpr (HasCodec<T> && !std::is_arithmetic_v<T>) {
      return Codec<T>::encode(value).size();
    } else {
      return sizeof(T);
    }
  }
};

}  // namespace dogpile
