// The SDK contract, called on the backend object itself: both value families, multi
// operations, removal, bytes and sizes.
#include <random>

#include "conformance.hpp"

namespace dogpile::conformance {

namespace {

std::string all_byte_values() {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
  return bytes + "|\r\n\0|" + std::string(1, '\0');
}

std::string random_bytes(std::size_t size) {
  std::mt19937_64 random(size);
  std::string bytes(size, '\0');
  for (auto& c : bytes) c = static_cast<char>(random());
  return bytes;
}

void bytes_family_round_trips(Fixture& f) {
  f.require_storage();
  auto& backend = f.backend();
  const std::string k = f.backend_key("value"), missing = f.backend_key("missing");
  const std::string stored = wire(R"({"a": 1})");
  backend.set_serialized(k, stored);
  expect(backend.get_serialized(k) == stored, "get_serialized returns what set_serialized stored");
  expect(!backend.get_serialized(missing), "get_serialized of a missing key is nullopt");
  const std::string replacement = wire("2");
  backend.set_serialized(k, replacement);
  expect(backend.get_serialized(k) == replacement, "set_serialized overwrites");
}

void bytes_are_binary_safe(Fixture& f) {
  f.require_storage();
  auto& backend = f.backend();
  const std::string k = f.backend_key("binary"), empty = f.backend_key("empty");
  const std::string raw = all_byte_values();
  backend.set_serialized(k, raw);
  expect(backend.get_serialized(k) == raw,
         "all 256 byte values, NUL and '|' included, read back exactly (bytes not in the wire "
         "format are stored as given)");
  backend.set_serialized(empty, "");
  const auto read = backend.get_serialized(empty);
  expect(read.has_value() && read->empty(), "an empty value is stored, not a miss");
  auto value = backend.get(k);
  expect(value && !value->decodable(),
         "the object family reads bytes not in the wire format as an undecodable value "
         "(not a miss, not an exception)");
}

void object_family_round_trips(Fixture& f) {
  f.require_storage();
  auto& backend = f.backend();
  const std::string k = f.backend_key("object"), from_bytes = f.backend_key("from-bytes");
  const double ct = 1795570724.65;
  backend.set(k, dogpile::make_value(nlohmann::json{{"a", 1}}, ct));
  auto value = backend.get(k);
  expect(value != nullptr, "get returns what set stored");
  expect(value->metadata().ct == ct && value->metadata().v == kValueVersion,
         "the creation time and version are kept exactly");
  expect(backend.get_serialized(k) == serialize_cached_value(*value),
         "the bytes family reads the wire format of a value the object family stored");
  const std::string python = R"({"ct": 1795570724.65, "v": 2}|{"a": 1})";
  backend.set_serialized(from_bytes, python);
  auto parsed = backend.get(from_bytes);
  expect(parsed && parsed->decodable() && parsed->metadata().ct == ct,
         "the object family reads what the bytes family stored");
  expect(dogpile::value_as<nlohmann::json>(parsed, from_bytes)->at("a") == 1,
         "its payload decodes");
  expect(backend.get(f.backend_key("missing")) == nullptr, "get of a missing key is null");
}

void visit_passes_what_get_returns(Fixture& f) {
  auto& backend = f.backend();
  const std::string k = f.backend_key("visit"), missing = f.backend_key("visit-missing");
  backend.set(k, dogpile::make_value(std::string("seen"), 1795570724.65));
  int calls = 0;
  std::string seen;
  double ct = 0;
  auto read = [&](const CachedValuePtr& value) {
    ++calls;
    if (value == nullptr) return;
    ct = value->metadata().ct;
    seen = *dogpile::value_as<std::string>(value, k);
  };
  const bool found = backend.visit(k, ValueVisitor(read));
  if (f.capabilities().stores_values) {
    expect(found && calls == 1, "visit of a stored key calls its visitor once and returns true");
    expect(seen == "seen" && ct == 1795570724.65, "visit passes the value get returns");
  } else {
    expect(!found && calls == 0, "visit misses on a backend that stores nothing");
  }
  calls = 0;
  expect(!backend.visit(missing, ValueVisitor(read)) && calls == 0,
         "visit of a missing key returns false without calling its visitor");
  std::string through_region;
  const bool region_found = f.region().visit<std::string>(
      f.key("visit-region"), [&](const std::string& value) { through_region = value; });
  expect(!region_found && through_region.empty(), "region.visit of a missing key is false");
  f.region().set(f.key("visit-region"), std::string("r"));
  const bool now_found = f.region().visit<std::string>(
      f.key("visit-region"), [&](const std::string& value) { through_region = value; });
  expect(now_found == f.capabilities().stores_values && through_region == (now_found ? "r" : ""),
         "region.visit reads what region.get reads");
}

void multi_operations_are_aligned(Fixture& f) {
  f.require_storage();
  auto& backend = f.backend();
  const std::string a = f.backend_key("a"), b = f.backend_key("b"), c = f.backend_key("c");
  const std::string missing = f.backend_key("missing");
  backend.set_serialized_multi({{a, wire("1")}, {b, wire("2")}});
  backend.set_multi({{c, dogpile::make_value(3)}});
  const auto bytes = backend.get_serialized_multi({c, missing, a, a, b});
  expect(bytes.size() == 5, "get_serialized_multi returns one entry per key");
  expect(bytes[0] && bytes[0]->ends_with("|3") && !bytes[1] && bytes[2] &&
             bytes[2]->ends_with("|1") && bytes[3] == bytes[2] && bytes[4] &&
             bytes[4]->ends_with("|2"),
         "get_serialized_multi is aligned with its keys (a missing key empty, duplicates "
         "repeated)");
  const auto values = backend.get_multi({b, missing, c, b});
  expect(values.size() == 4 && values[0] && !values[1] && values[2] && values[3] &&
             values[0]->bytes() == values[3]->bytes(),
         "get_multi is aligned with its keys");
  expect(backend.get_multi({}).empty() && backend.get_serialized_multi({}).empty(),
         "multi gets of no keys return nothing");
  backend.set_multi({});
  backend.set_serialized_multi({});
  backend.remove_multi({});
}

void remove_is_idempotent(Fixture& f) {
  f.require_storage();
  auto& backend = f.backend();
  const std::string a = f.backend_key("a"), b = f.backend_key("b");
  backend.set_serialized_multi({{a, wire("1")}, {b, wire("2")}});
  backend.remove(a);
  expect(!backend.get_serialized(a), "a removed key is a miss");
  backend.remove(a);
  backend.remove(f.backend_key("never-set"));
  backend.remove_multi({a, b, f.backend_key("never-set-either")});
  backend.remove_multi({a, b});
  expect(!backend.get_serialized(b), "remove_multi removes");
}

void a_large_value_round_trips(Fixture& f) {
  f.require_storage();
  constexpr std::size_t kMiB = 1 << 20;
  const auto limit = f.capabilities().max_value_size;
  const std::string payload = random_bytes(kMiB);
  const std::string stored = wire("") + payload;
  if (limit != 0 && stored.size() > limit) {
    throw Skipped{"the backend declares a limit of " + std::to_string(limit) +
                  " bytes, below 1 MiB and its metadata"};
  }
  const std::string k = f.backend_key("large");
  f.backend().set_serialized(k, stored);
  expect(f.backend().get_serialized(k) == stored, "a 1 MiB value reads back exactly");
  const std::string region_key = f.key("large-region");
  f.region().set(region_key, Bytes(payload));
  auto read = f.region().get<Bytes>(region_key);
  expect(read && read->data == payload, "a 1 MiB Bytes value reads back exactly through a region");
}

void the_size_limit_is_enforced(Fixture& f) {
  f.require_storage();
  const auto limit = f.capabilities().max_value_size;
  if (limit == 0) throw Skipped{"the backend declares no size limit of its own"};
  if (limit > (64u << 20)) {
    throw Skipped{"the declared limit, " + std::to_string(limit) + " bytes, is too large to try"};
  }
  const std::string fits = f.backend_key("at-limit"), over = f.backend_key("over-limit");
  const std::string metadata = wire("");  // its length varies with the time's digits
  const std::string at_limit = metadata + std::string(limit - metadata.size(), 'x');
  f.backend().set_serialized(fits, at_limit);
  expect(f.backend().get_serialized(fits) == at_limit,
         "a value of exactly the declared limit is stored");
  try {
    f.backend().set_serialized(over, at_limit + "x");
    throw Failed{"a value one byte over the declared limit is refused with CantSerialize"};
  } catch (const CantSerialize& e) {
    expect(std::string(e.what()).find(std::to_string(limit)) != std::string::npos,
           "the error names the limit (it said: " + std::string(e.what()) + ")");
  }
  expect(!f.backend().get_serialized(over), "a refused value is not stored");
  try {
    f.region().set(f.key("over-region"), Bytes(std::string(limit, 'x')));
    throw Failed{"a region's set of a value over the limit is refused with CantSerialize"};
  } catch (const CantSerialize&) {
  }
}

void a_backend_that_stores_nothing_misses(Fixture& f) {
  if (f.capabilities().stores_values) {
    throw Skipped{"the backend stores values (checked by the checks above)"};
  }
  auto& backend = f.backend();
  const std::string k = f.backend_key("k");
  backend.set_serialized(k, wire("1"));
  backend.set(k, dogpile::make_value(1));
  expect(!backend.get_serialized(k) && !backend.get(k), "every get misses");
  const auto values = backend.get_multi({k, k});
  expect(values.size() == 2 && !values[0] && !values[1], "get_multi is aligned and misses");
  backend.remove(k);
  backend.remove_multi({k});
  const std::string region_key = f.key("region");
  f.region().set(region_key, 1);
  expect(f.region().get<int>(region_key) == nullptr, "a region on it misses");
}

}  // namespace

std::vector<Check> backend_checks() {
  return {
      {"bytes family: set, get, overwrite, miss", bytes_family_round_trips},
      {"bytes family: binary-safe, empty values", bytes_are_binary_safe},
      {"object family: round trip, both families agree", object_family_round_trips},
      {"visit: the value get returns, in place or copied", visit_passes_what_get_returns},
      {"multi operations: aligned, missing, duplicates, empty", multi_operations_are_aligned},
      {"remove: idempotent", remove_is_idempotent},
      {"values: 1 MiB", a_large_value_round_trips},
      {"values: the declared size limit", the_size_limit_is_enforced},
      {"stores nothing: every get misses", a_backend_that_stores_nothing_misses},
  };
}

}  // namespace dogpile::conformance
