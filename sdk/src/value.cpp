#include "dogpile/sdk/value.hpp"

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>

#include "dogpile/sdk/errors.hpp"

namespace dogpile {

double now_seconds() noexcept {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

double coarse_now_seconds() noexcept {
  timespec now{};
  clock_gettime(CLOCK_REALTIME_COARSE, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

CachedValue::CachedValue(std::shared_ptr<const void> object, const std::type_info& type,
                         Encoder encoder, ValueMetadata metadata, Sizer sizer)
    : object_(std::move(object)),
      type_(&type),
      encoder_(encoder),
      sizer_(sizer),
      metadata_(metadata) {}

CachedValue::CachedValue(std::string_view payload_bytes, ValueMetadata metadata)
    : wire_(serialize_metadata(metadata)), metadata_(metadata) {
  wire_ += '|';
  payload_offset_ = wire_.size();
  wire_ += payload_bytes;
}

std::size_t CachedValue::payload_size() const {
  if (!object_) return wire_.size() - payload_offset_;
  if (sizer_ != nullptr) return sizer_(object_.get());
  return encoder_ != nullptr ? encoder_(object_.get()).size() : 0;
}

double CachedValue::age() const noexcept { return now_seconds() - metadata_.ct; }

CachedValuePtr CachedValue::with_metadata(const ValueMetadata& metadata) const {
  if (object_) {
    return std::make_shared<const CachedValue>(object_, *type_, encoder_, metadata, sizer_);
  }
  return std::make_shared<const CachedValue>(bytes(), metadata);
}

const CachedValue* CachedValue::keep_decoded(std::shared_ptr<const CachedValue> value) const {
  const CachedValue* kept = nullptr;
  if (decoded_.compare_exchange_strong(kept, value.get(), std::memory_order_acq_rel)) {
    // The first caller only; `value` holds the object until it is moved in.
    decoded_owner_ = std::move(value);
    return decoded_owner_.get();
  }
  return kept;
}

std::string CachedValue::payload_bytes() const {
  if (!object_) return std::string(bytes());
  if (encoder_ == nullptr) {
    throw CantSerialize(std::string("a value of type ") + type_->name() +
                        " has no codec, so it can only be stored in an object backend such "
                        "as dogpile.cache.memory (specialize dogpile::Codec for it)");
  }
  return encoder_(object_.get());
}

std::string python_float_repr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  // The shortest round-trip digits, then Python's layout (CPython's format_float_short with
  // 'r'): positional when -4 < decimal point <= 16, else exponent with at least two digits.
  char buffer[64];
  auto [end, ec] =
      std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::scientific);
  std::string_view text(buffer, static_cast<std::size_t>(end - buffer));
  std::string out;
  if (text.front() == '-') {
    out += '-';
    text.remove_prefix(1);
  }
  const auto e = text.find('e');
  std::string digits;
  for (char c : text.substr(0, e)) {
    if (c != '.') digits += c;
  }
  const int exponent = std::atoi(std::string(text.substr(e + 1)).c_str());
  const int point = exponent + 1;  // digits before the decimal point
  const int count = static_cast<int>(digits.size());
  if (point > -4 && point <= 16) {
    if (point <= 0) {
      out += "0." + std::string(static_cast<std::size_t>(-point), '0') + digits;
    } else if (point >= count) {
      out += digits + std::string(static_cast<std::size_t>(point - count), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<std::size_t>(point)) + "." +
             digits.substr(static_cast<std::size_t>(point));
    }
  } else {
    out += digits.substr(0, 1);
    if (count > 1) out += "." + digits.substr(1);
    const int magnitude = std::abs(exponent);
    out += exponent < 0 ? "e-" : "e+";
    if (magnitude < 10) out += '0';
    out += std::to_string(magnitude);
  }
  return out;
}

std::string serialize_metadata(const ValueMetadata& metadata) {
  std::string out = "{\"ct\": ";
  out += python_float_repr(metadata.ct);
  out += ", \"v\": ";
  out += std::to_string(metadata.v);
  if (metadata.origin > 0) {
    out += ", \"origin\": ";
    out += python_float_repr(metadata.origin);
  }
  out += '}';
  return out;
}

std::string CachedValue::wire() const {
  if (!object_) return wire_;
  std::string out = serialize_metadata(metadata_);
  out += '|';
  out += payload_bytes();
  return out;
}

std::string serialize_cached_value(const CachedValue& value) { return value.wire(); }

namespace {

// The metadata exactly as json.dumps writes it (`{"ct": 1795570724.65, "v": 2}`), read
// without a JSON parser: the common case on every read from a byte backend.
std::optional<ValueMetadata> parse_python_metadata(std::string_view text) {
  constexpr std::string_view kCt = "{\"ct\": ";
  constexpr std::string_view kV = ", \"v\": ";
  if (!text.starts_with(kCt) || !text.ends_with("}")) return std::nullopt;
  ValueMetadata metadata;
  const char* end = text.data() + text.size() - 1;
  auto [after_ct, ct_error] = std::from_chars(text.data() + kCt.size(), end, metadata.ct);
  if (ct_error != std::errc() ||
      std::string_view(after_ct, end - after_ct).substr(0, kV.size()) != kV) {
    return std::nullopt;
  }
  auto [after_v, v_error] = std::from_chars(after_ct + kV.size(), end, metadata.v);
  if (v_error != std::errc()) return std::nullopt;
  if (after_v == end) return metadata;
  constexpr std::string_view kOrigin = ", \"origin\": ";
  if (std::string_view(after_v, end - after_v).substr(0, kOrigin.size()) != kOrigin) {
    return std::nullopt;
  }
  auto [after_origin, origin_error] =
      std::from_chars(after_v + kOrigin.size(), end, metadata.origin);
  if (origin_error != std::errc() || after_origin != end) return std::nullopt;
  return metadata;
}

// The metadata in any other JSON layout, or why it is not dogpile's.
std::optional<ValueMetadata> parse_json_metadata(std::string_view text, std::string& problem) {
  auto metadata = nlohmann::json::parse(text, nullptr, false);
  if (metadata.is_discarded() || !metadata.is_object()) {
    problem = "the metadata before '|' is not a JSON object";
    return std::nullopt;
  }
  auto ct = metadata.find("ct");
  auto v = metadata.find("v");
  if (ct == metadata.end() || !ct->is_number() || v == metadata.end() || !v->is_number_integer() ||
      !std::in_range<int>(v->get<long long>())) {
    problem = "the metadata lacks a numeric \"ct\" or an integer \"v\"";
    return std::nullopt;
  }
  ValueMetadata read{ct->get<double>(), v->get<int>()};
  if (auto origin = metadata.find("origin"); origin != metadata.end() && origin->is_number()) {
    read.origin = origin->get<double>();
  }
  return read;
}

}  // namespace

CachedValuePtr CachedValue::from_wire(std::string wire) {
  auto value = std::shared_ptr<CachedValue>(new CachedValue());
  const auto bar = wire.find('|');
  std::optional<ValueMetadata> metadata;
  if (bar == std::string::npos) {
    value->problem_ = "no '|' after the metadata";
  } else if (!(metadata = parse_python_metadata(std::string_view(wire).substr(0, bar)))) {
    metadata = parse_json_metadata(std::string_view(wire).substr(0, bar), value->problem_);
  }
  if (metadata && (!std::isfinite(metadata->ct) || !std::isfinite(metadata->origin))) {
    value->problem_ = "the creation time is not a finite number";
  } else if (metadata) {
    value->metadata_ = *metadata;
    value->payload_offset_ = bar + 1;
  }
  if (!value->problem_.empty()) {
    value->problem_ = "is not in dogpile's format: " + value->problem_;
    value->metadata_ = ValueMetadata{0, 0};
  }
  value->wire_ = std::move(wire);
  return value;
}

CachedValuePtr parse_cached_value(std::string_view wire) {
  return CachedValue::from_wire(std::string(wire));
}

}  // namespace dogpile
