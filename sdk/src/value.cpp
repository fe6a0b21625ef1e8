#include "dogpile/sdk/value.hpp"

#include <charconv>
#include <chrono>
#include <ctime>

#include <nlohmann/json.hpp>

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
                         Encoder encoder, ValueMetadata metadata)
    : object_(std::move(object)), type_(&type), encoder_(encoder), metadata_(metadata) {}

CachedValue::CachedValue(std::string payload_bytes, ValueMetadata metadata)
    : bytes_(std::move(payload_bytes)), metadata_(metadata) {}

double CachedValue::age() const noexcept { return now_seconds() - metadata_.ct; }

std::string CachedValue::payload_bytes() const {
  if (!object_) return bytes_;
  if (encoder_ == nullptr) {
    throw CantSerialize(std::string("a value of type ") + type_->name() +
                        " has no codec, so it can only be stored in an object backend such "
                        "as dogpile.cache.memory (specialize dogpile::Codec for it)");
  }
  return encoder_(object_.get());
}

namespace {

// Python's repr(float): the shortest text that reads back as the same double, always with a
// fraction or an exponent ("1795570724.0", not "1795570724").
void append_python_float(std::string& out, double value) {
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  std::string_view text(buffer, static_cast<std::size_t>(end - buffer));
  out += text;
  if (text.find_first_of(".eEn") == std::string_view::npos) out += ".0";
}

}  // namespace

std::string serialize_metadata(const ValueMetadata& metadata) {
  std::string out = "{\"ct\": ";
  append_python_float(out, metadata.ct);
  out += ", \"v\": ";
  out += std::to_string(metadata.v);
  out += '}';
  return out;
}

std::string serialize_cached_value(const CachedValue& value) {
  std::string out = serialize_metadata(value.metadata());
  out += '|';
  out += value.payload_bytes();
  return out;
}

CachedValuePtr parse_cached_value(std::string_view wire) {
  auto bar = wire.find('|');
  if (bar == std::string_view::npos) {
    throw CantDeserialize("cached bytes are not in dogpile's format (no '|' after the metadata)");
  }
  auto metadata = nlohmann::json::parse(wire.substr(0, bar), nullptr, false);
  if (metadata.is_discarded() || !metadata.is_object()) {
    throw CantDeserialize("cached bytes are not in dogpile's format (the metadata before '|' "
                          "is not a JSON object)");
  }
  auto ct = metadata.find("ct");
  auto v = metadata.find("v");
  if (ct == metadata.end() || !ct->is_number() || v == metadata.end() ||
      !v->is_number_integer()) {
    throw CantDeserialize("cached value metadata lacks a numeric \"ct\" or an integer \"v\": " +
                          metadata.dump());
  }
  return std::make_shared<const CachedValue>(std::string(wire.substr(bar + 1)),
                                             ValueMetadata{ct->get<double>(), v->get<int>()});
}

}  // namespace dogpile
