// Codecs turn a C++ value into the payload bytes a byte backend stores, and back.
//
// The region's typed API (set<T>, get<T>) picks Codec<T>:
//  - std::string: the bytes as they are;
//  - arithmetic types and bool: their JSON text (42, 1.5, true), as Python's json.dumps;
//  - anything nlohmann::json converts (its own types, containers, types with to_json and
//    from_json): that JSON text.
// A full specialization adds a codec for a user type and wins over the above:
//
//   template <> struct dogpile::Codec<Point> {
//     static std::string encode(const Point& p);
//     static Point decode(std::string_view bytes);  // throws on bad input
//   };
//
// A type without a codec can still be cached in an object backend (dogpile.cache.memory),
// which stores the object itself; storing it in a byte backend throws CantSerialize.
#pragma once

#include <concepts>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <type_traits>

namespace dogpile {

template <class T>
struct Codec;  // no codec unless one of the specializations below, or the user's, applies

template <>
struct Codec<std::string> {
  static std::string encode(const std::string& value) { return value; }
  static std::string decode(std::string_view bytes) { return std::string(bytes); }
};

template <class T>
concept JsonConvertible = requires(const T& value, const nlohmann::json& json) {
  {nlohmann::json(value)};
  { json.template get<T>() } -> std::same_as<T>;
};

template <class T>
requires(!std::is_same_v<T, std::string> &&
         (std::is_arithmetic_v<T> || JsonConvertible<T>)) struct Codec<T> {
  static std::string encode(const T& value) { return nlohmann::json(value).dump(); }
  static T decode(std::string_view bytes) { return nlohmann::json::parse(bytes).get<T>(); }
};

template <class T>
concept HasCodec = requires(const T& value, std::string_view bytes) {
  { Codec<T>::encode(value) } -> std::convertible_to<std::string>;
  { Codec<T>::decode(bytes) } -> std::convertible_to<T>;
};

}  // namespace dogpile
