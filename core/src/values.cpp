#include "dogpile/values.hpp"

#include <boost/core/demangle.hpp>

namespace dogpile {

CachedValuePtr detail::decode_for_key(CachedValuePtr value, std::string_view key,
                                      CachedValuePtr (*decode)(CachedValuePtr&&)) {
  try {
    if (!value->decodable()) throw CantDeserialize(value->problem());
    if (decode == nullptr) return value;
    return decode(std::move(value));
  } catch (const ValueTypeError& e) {
    throw ValueTypeError("cached value for key '" + std::string(key) + "' " + e.what());
  } catch (const CantDeserialize& e) {
    throw CantDeserialize("cached value for key '" + std::string(key) + "' " + e.what());
  }
}

namespace {

// `type`'s name as code writes it: std::string, std::vector<int>, not libstdc++'s spelling
// (std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >).
std::string readable_name(const std::type_info& type) {
  std::string name = boost::core::demangle(type.name());
  auto replace_all = [&](std::string_view from, std::string_view to) {
    for (auto at = name.find(from); at != std::string::npos; at = name.find(from, at + to.size())) {
      name.replace(at, from.size(), to);
    }
  };
  // The default template arguments: ", std::allocator<...>", ", std::char_traits<char>",
  // ", std::less<...>", each up to its matching '>'.
  for (const std::string_view defaulted : {", std::allocator<", ", std::char_traits<",
                                           ", std::less<", ", std::hash<", ", std::equal_to<"}) {
    for (auto at = name.find(defaulted); at != std::string::npos; at = name.find(defaulted, at)) {
      std::size_t end = at + defaulted.size();
      for (int depth = 1; end < name.size() && depth > 0; ++end) {
        depth += name[end] == '<' ? 1 : name[end] == '>' ? -1 : 0;
      }
      name.erase(at, end - at);
    }
  }
  replace_all(" >", ">");
  replace_all("std::__cxx11::", "std::");
  replace_all("std::basic_string<char>", "std::string");
  replace_all("std::basic_string_view<char>", "std::string_view");
  return name;
}

}  // namespace

template <class E>
void detail::throw_cant_read(const std::type_info& wanted, std::string_view why) {
  throw E("cannot be read as " + readable_name(wanted) + ": " + std::string(why));
}
template void detail::throw_cant_read<ValueTypeError>(const std::type_info&, std::string_view);
template void detail::throw_cant_read<CantDeserialize>(const std::type_info&, std::string_view);

void detail::throw_wrong_type(const std::type_info& stored, const std::type_info& wanted) {
  throw_cant_read<ValueTypeError>(
      wanted, "it holds " + readable_name(stored) + ", which has no dogpile::Codec to convert it");
}

void detail::throw_no_codec(const std::type_info& wanted) {
  throw CantSerialize(readable_name(wanted) +
                      " has no dogpile::Codec, so it can only be stored in and read from an "
                      "object backend such as dogpile.cache.memory");
}

}  // namespace dogpile
