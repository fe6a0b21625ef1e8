#include "dogpile/codec.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace dogpile {

namespace python_json {

namespace {

constexpr std::size_t kMaxDepth = 512;

// Whether arrays and objects nest deeper than kMaxDepth (strings skipped).
bool too_deep(std::string_view text) {
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxDepth) return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

[[noreturn]] void not_json() { throw CantDeserialize("the payload is not JSON"); }

// JSON with Python's NaN, Infinity and -Infinity, which nlohmann::json does not read. Only
// used when nlohmann::json failed on a text that mentions them. Strings and numbers are handed
// to nlohmann::json, so they follow exactly its (the standard's) rules.
class NonFiniteParser {
 public:
  explicit NonFiniteParser(std::string_view text) : text_(text) {}

  nlohmann::json document() {
    nlohmann::json value = parse_value();
    skip_space();
    if (pos_ != text_.size()) not_json();
    return value;
  }

 private:
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  bool take(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  // A literal nlohmann::json reads on its own: a string or a number.
  nlohmann::json scalar(std::size_t end) {
    auto value = nlohmann::json::parse(text_.substr(pos_, end - pos_), nullptr, false);
    if (value.is_discarded()) not_json();
    pos_ = end;
    return value;
  }

  nlohmann::json parse_string() {
    std::size_t end = pos_ + 1;
    while (end < text_.size() && text_[end] != '"') end += text_[end] == '\\' ? 2 : 1;
    if (end >= text_.size()) not_json();
    return scalar(end + 1);
  }

  nlohmann::json parse_value() {
    skip_space();
    if (pos_ >= text_.size()) not_json();
    const char c = text_[pos_];
    if (c == '{' || c == '[') return parse_container(c == '{');
    if (c == '"') return parse_string();
    if (take("NaN")) return std::numeric_limits<double>::quiet_NaN();
    if (take("Infinity")) return std::numeric_limits<double>::infinity();
    if (take("-Infinity")) return -std::numeric_limits<double>::infinity();
    if (take("true")) return true;
    if (take("false")) return false;
    if (take("null")) return nullptr;
    std::size_t end = pos_;
    while (end < text_.size() &&
           std::string_view("+-0123456789.eE").find(text_[end]) != std::string_view::npos) {
      ++end;
    }
    if (end == pos_) not_json();
    nlohmann::json number = scalar(end);
    if (!number.is_number()) not_json();
    return number;
  }

  nlohmann::json parse_container(bool object) {
    const char close = object ? '}' : ']';
    nlohmann::json out = object ? nlohmann::json::object() : nlohmann::json::array();
    ++pos_;
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == close) {
      ++pos_;
      return out;
    }
    while (true) {
      if (object) {
        skip_space();
        if (pos_ >= text_.size() || text_[pos_] != '"') not_json();
        const std::string name = parse_string().get<std::string>();
        skip_space();
        if (!take(":")) not_json();
        out[name] = parse_value();
      } else {
        out.push_back(parse_value());
      }
      skip_space();
      if (take(",")) continue;
      if (take(std::string_view(&close, 1))) return out;
      not_json();
    }
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

bool has_non_finite(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::number_float:
      return !std::isfinite(value.get<double>());
    case nlohmann::json::value_t::array:
    case nlohmann::json::value_t::object:
      for (const auto& item : value) {
        if (has_non_finite(item)) return true;
      }
      return false;
    default:
      return false;
  }
}

std::string dump_ascii(const nlohmann::json& value) { return value.dump(-1, ' ', true); }

// nlohmann::json's compact dump, but with Python's tokens for non-finite floats.
void write(const nlohmann::json& value, std::string& out) {
  switch (value.type()) {
    case nlohmann::json::value_t::object: {
      out += '{';
      bool first = true;
      for (const auto& item : value.items()) {
        if (!first) out += ',';
        first = false;
        out += dump_ascii(item.key());
        out += ':';
        write(item.value(), out);
      }
      out += '}';
      break;
    }
    case nlohmann::json::value_t::array: {
      out += '[';
      for (std::size_t i = 0; i < value.size(); ++i) {
        if (i > 0) out += ',';
        write(value[i], out);
      }
      out += ']';
      break;
    }
    case nlohmann::json::value_t::number_float: {
      const double d = value.get<double>();
      if (std::isnan(d)) {
        out += "NaN";
      } else if (std::isinf(d)) {
        out += d > 0 ? "Infinity" : "-Infinity";
      } else {
        out += dump_ascii(value);
      }
      break;
    }
    default:
      out += dump_ascii(value);
  }
}

}  // namespace

nlohmann::json loads(std::string_view text) {
  if (text.size() > kMaxDepth && too_deep(text)) {
    throw CantDeserialize("the payload nests deeper than 512 levels");
  }
  auto value = nlohmann::json::parse(text, nullptr, false);
  if (!value.is_discarded()) return value;
  if (text.find("NaN") != std::string_view::npos ||
      text.find("Infinity") != std::string_view::npos) {
    return NonFiniteParser(text).document();
  }
  not_json();
}

std::string dumps(const nlohmann::json& value) {
  try {
    if (!has_non_finite(value)) return dump_ascii(value);
    std::string out;
    write(value, out);
    return out;
  } catch (const nlohmann::json::type_error&) {
    throw CantSerialize("a string in the value is not valid UTF-8, which JSON cannot hold");
  }
}

bool is_valid_utf8(std::string_view text) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    std::size_t length;
    unsigned char low = 0x80, high = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      length = 3;
      if (c == 0xE0) low = 0xA0;   // no overlong forms
      if (c == 0xED) high = 0x9F;  // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      length = 4;
      if (c == 0xF0) low = 0x90;
      if (c == 0xF4) high = 0x8F;  // nothing above U+10FFFF
    } else {
      return false;
    }
    if (static_cast<std::size_t>(end - p) < length || p[1] < low || p[1] > high) return false;
    for (std::size_t i = 2; i < length; ++i) {
      if (p[i] < 0x80 || p[i] > 0xBF) return false;
    }
    p += length;
  }
  return true;
}

const char* describe(const nlohmann::json& value) noexcept {
  switch (value.type()) {
    case nlohmann::json::value_t::null:
      return "null";
    case nlohmann::json::value_t::boolean:
      return "a boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
      return "an integer";
    case nlohmann::json::value_t::number_float:
      return "a float";
    case nlohmann::json::value_t::string:
      return "a string";
    case nlohmann::json::value_t::array:
      return "an array";
    case nlohmann::json::value_t::object:
      return "an object";
    default:
      return "binary data";
  }
}

}  // namespace python_json

namespace {

// Printable ASCII other than '"' and '\\': what a JSON string holds without escapes.
bool plain(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\'; });
}

}  // namespace

std::string Codec<std::string>::encode(const std::string& value) {
  if (plain(value)) return '"' + value + '"';  // the common case, without a JSON value
  return python_json::is_valid_utf8(value) ? nlohmann::json(value).dump(-1, ' ', true) : value;
}

std::string Codec<std::string>::decode(std::string_view bytes) {
  if (bytes.size() >= 2 && bytes.front() == '"' && bytes.back() == '"' &&
      plain(bytes.substr(1, bytes.size() - 2))) {
    return std::string(bytes.substr(1, bytes.size() - 2));
  }
  if (!python_json::is_valid_utf8(bytes)) return std::string(bytes);
  nlohmann::json value = python_json::loads(bytes);
  if (!value.is_string()) {
    throw ValueTypeError(std::string("holds ") + python_json::describe(value) + ", not a string");
  }
  return value.get<std::string>();
}

}  // namespace dogpile
