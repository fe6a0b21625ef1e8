// Bytes a cache server returns: dogpile's wire format, then the payload read as the types an
// application asks for. Nothing may crash, hang or throw anything but a dogpile::Error.
#include <dogpile/dogpile.hpp>
#include <map>
#include <string>
#include <vector>

namespace {

template <class T>
void read_as(const dogpile::CachedValuePtr& value) {
  try {
    dogpile::value_as<T>(value, "fuzzed");
  } catch (const dogpile::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
  auto value =
      dogpile::CachedValue::from_wire(std::string(reinterpret_cast<const char*>(data), size));
  if (!value->decodable()) return 0;
  (void)value->age();
  (void)value->wire();
  read_as<int>(value);
  read_as<double>(value);
  read_as<bool>(value);
  read_as<std::string>(value);
  read_as<dogpile::Bytes>(value);
  read_as<std::vector<std::int8_t>>(value);
  read_as<std::map<std::string, std::vector<double>>>(value);
  read_as<nlohmann::json>(value);
  try {
    dogpile::python_json::dumps(dogpile::python_json::loads(value->payload_bytes()));
  } catch (const dogpile::Error&) {
  }
  return 0;
}
