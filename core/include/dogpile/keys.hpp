// Cache keys for cached functions, and key manglers, compatible with Python dogpile.cache.
//
// A cached function's key is `name|arg1 arg2 …`, or `name|namespace|arg1 arg2 …`, where each
// argument is converted as Python's str() converts it (PythonStr), so the same function name
// and arguments give byte-identical keys in C++ and Python (where `name` is dogpile's
// "module:function"). A multi-key function has one key per argument: `name|arg`.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "dogpile/sdk/backend.hpp"
#include "dogpile/sdk/export.hpp"

namespace dogpile {

// Makes the key of one call from the function's name, its namespace (if any) and its
// arguments, each already converted to text.
using FunctionKeyGenerator = std::function<std::string(
    std::string_view name, const std::optional<std::string>& namespace_name,
    const std::vector<std::string>& arguments)>;
// Makes one key per argument.
using FunctionMultiKeyGenerator = std::function<std::vector<std::string>(
    std::string_view name, const std::optional<std::string>& namespace_name,
    const std::vector<std::string>& arguments)>;

// dogpile's function_key_generator: `name[|namespace]|` + arguments joined by a space.
DOGPILE_API std::string function_key_generator(std::string_view name,
                                               const std::optional<std::string>& namespace_name,
                                               const std::vector<std::string>& arguments);
// dogpile's function_multi_key_generator: `name[|namespace]|argument` for each argument.
DOGPILE_API std::vector<std::string> function_multi_key_generator(
    std::string_view name, const std::optional<std::string>& namespace_name,
    const std::vector<std::string>& arguments);

// sha1_mangle_key is declared in dogpile/sdk/backend.hpp, for plugins too.

// Applies `mangler` to keys of at least `length` characters (UTF-8 code points, as Python's
// len(str)); shorter keys are kept.
DOGPILE_API KeyMangler length_conditional_mangler(std::size_t length, KeyMangler mangler);
// A mangler named in config: "sha1", or "sha1:LENGTH" for the length-conditional form.
// Throws ValidationError naming `config_key` otherwise.
DOGPILE_API KeyMangler key_mangler_from_config(std::string_view spec, std::string_view config_key);

// Converts a function argument to its key text as Python's str() would.
struct PythonStr {
  template <class T>
  std::string operator()(const T& value) const {
    using V = std::remove_cvref_t<T>;
    if constexpr (std::is_same_v<V, bool>) {
      return value ? "True" : "False";
    } else if constexpr (std::is_same_v<V, char>) {
      return std::string(1, value);
    } else if constexpr (std::is_integral_v<V>) {
      return std::to_string(value);
    } else if constexpr (std::is_floating_point_v<V>) {
      return python_float_repr(static_cast<double>(value));
    } else if constexpr (std::is_same_v<V, std::nullptr_t> || std::is_same_v<V, std::nullopt_t>) {
      return "None";
    } else if constexpr (std::is_pointer_v<V> && std::is_convertible_v<V, std::string_view>) {
      return value != nullptr ? std::string(value) : "None";
    } else if constexpr (std::is_convertible_v<const V&, std::string_view>) {
      return std::string(std::string_view(value));
    } else if constexpr (requires {
                           value.has_value();
                           *value;
                         }) {
      return value.has_value() ? (*this)(*value) : "None";
    } else if constexpr (requires { to_string(value); }) {
      return std::string(to_string(value));  // the type's own, found by ADL
    } else {
      static_assert(sizeof(V) == 0,
                    "no key text for this argument type: give the cached function a to_str "
                    "or a key_generator, or declare to_string(const T&) beside the type");
    }
  }
};

}  // namespace dogpile
