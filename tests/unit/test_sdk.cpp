// The SDK on its own: the wire format, codecs, Arguments, and the default implementations
// of the two backend families and of ProxyBackend.
#define BOOST_TEST_MODULE sdk
#include <atomic>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <dogpile/dogpile.hpp>
#include <dogpile/sdk/sdk.hpp>
#include <map>
#include <optional>
#include <thread>

#include "helpers.hpp"
#include "log_capture.hpp"

using dogpile::Arguments;
using dogpile::CachedValue;
using dogpile::CachedValuePtr;
using nlohmann::json;
using test::message_contains;

namespace {

CachedValuePtr bytes_value(std::string payload, double ct) {
  return std::make_shared<const CachedValue>(std::move(payload), dogpile::ValueMetadata{ct, 2});
}

}  // namespace

BOOST_AUTO_TEST_SUITE(wire_format)

BOOST_AUTO_TEST_CASE(metadata_is_written_as_pythons_json_dumps_writes_it) {
  BOOST_TEST(dogpile::serialize_metadata({1795570724.65, 2}) == R"({"ct": 1795570724.65, "v": 2})");
  BOOST_TEST(dogpile::serialize_metadata({1795577433.490896, 2}) ==
             R"({"ct": 1795577433.490896, "v": 2})");
  // repr(1795570724.0) keeps the fraction.
  BOOST_TEST(dogpile::serialize_metadata({1795570724.0, 2}) == R"({"ct": 1795570724.0, "v": 2})");
  BOOST_TEST(dogpile::serialize_metadata({0.1, 1}) == R"({"ct": 0.1, "v": 1})");
}

BOOST_AUTO_TEST_CASE(a_cached_value_is_metadata_bar_payload) {
  auto value = bytes_value(R"({"a": 1})", 1795570724.65);
  BOOST_TEST(dogpile::serialize_cached_value(*value) ==
             R"({"ct": 1795570724.65, "v": 2}|{"a": 1})");
}

BOOST_AUTO_TEST_CASE(an_object_payload_is_encoded_by_its_codec) {
  auto value = dogpile::make_value(json{{"a", 1}}, 1795570724.5);
  BOOST_TEST(value->holds_object());
  BOOST_TEST(dogpile::serialize_cached_value(*value) == R"({"ct": 1795570724.5, "v": 2}|{"a":1})");
  auto text = dogpile::make_value(std::string("a|b"), 2.5);
  BOOST_TEST(dogpile::serialize_cached_value(*text) == R"({"ct": 2.5, "v": 2}|"a|b")");
}

BOOST_AUTO_TEST_CASE(parsing_reads_what_python_dogpile_writes) {
  auto value = dogpile::parse_cached_value(R"({"ct": 1795570724.65, "v": 2}|{"a": 1}|x)");
  BOOST_TEST(!value->holds_object());
  BOOST_TEST(value->metadata().ct == 1795570724.65);
  BOOST_TEST(value->metadata().v == 2);
  BOOST_TEST(value->bytes() == R"({"a": 1}|x)");
  BOOST_TEST(value->cached_time() == 1795570724.65);
}

BOOST_AUTO_TEST_CASE(metadata_in_another_json_layout_is_read_too) {
  auto compact = dogpile::parse_cached_value(R"({"ct":1.5,"v":2}|x)");
  BOOST_TEST(compact->metadata().ct == 1.5);
  auto reordered = dogpile::parse_cached_value(R"({"v": 1, "ct": 2e9}|y)");
  BOOST_TEST(reordered->metadata().ct == 2e9);
  BOOST_TEST(reordered->metadata().v == 1);
  BOOST_TEST(reordered->bytes() == "y");
}

BOOST_AUTO_TEST_CASE(round_trip_keeps_the_creation_time_exactly) {
  const double ct = dogpile::now_seconds();
  auto parsed = dogpile::parse_cached_value(dogpile::serialize_cached_value(*bytes_value("x", ct)));
  BOOST_TEST(parsed->metadata().ct == ct);
}

BOOST_AUTO_TEST_CASE(bytes_not_in_the_format_are_undecodable_values_that_keep_them) {
  const std::string cases[] = {"no separator",
                               "{not json|x",
                               R"({"v": 2}|x)",
                               R"({"ct": 1.0, "v": "2"}|x)",
                               R"([1]|x)",
                               R"({"ct": NaN, "v": 2}|x)",
                               R"({"ct": nan, "v": 2}|x)",
                               std::string("\x80\x04\x95\0\0|", 7)};
  for (const auto& wire : cases) {
    auto value = dogpile::parse_cached_value(wire);
    BOOST_TEST(!value->decodable(), wire);
    BOOST_TEST(value->problem().starts_with("is not in dogpile's format: "));
    BOOST_TEST(value->metadata().v == 0);
    BOOST_TEST(dogpile::serialize_cached_value(*value) == wire);
  }
  BOOST_TEST(dogpile::parse_cached_value(R"({"ct": 1.0, "v": 2}|x)")->decodable());
}

BOOST_AUTO_TEST_CASE(an_object_without_codec_cannot_be_serialized) {
  struct Opaque {
    int x;
  };
  auto value = dogpile::make_value(Opaque{1});
  BOOST_CHECK_THROW(dogpile::serialize_cached_value(*value), dogpile::CantSerialize);
}

BOOST_AUTO_TEST_SUITE_END()

// Codecs ---------------------------------------------------------------------------------

// Has a JSON conversion too, which its codec must win over.
struct Point {
  int x = 0;
  int y = 0;
  NLOHMANN_DEFINE_TYPE_INTRUSIVE(Point, x, y)
};

template <>
struct dogpile::Codec<Point> {
  static std::string encode(const Point& p) {
    return std::to_string(p.x) + "," + std::to_string(p.y);
  }
  static Point decode(std::string_view bytes) {
    auto comma = bytes.find(',');
    return Point{std::stoi(std::string(bytes.substr(0, comma))),
                 std::stoi(std::string(bytes.substr(comma + 1)))};
  }
};

struct Jsonable {
  std::string name;
  std::vector<int> values;
  NLOHMANN_DEFINE_TYPE_INTRUSIVE(Jsonable, name, values)
  bool operator==(const Jsonable&) const = default;
};

struct NoCodec {
  int x;
};

BOOST_AUTO_TEST_SUITE(codecs)

BOOST_AUTO_TEST_CASE(strings_are_json_strings_as_python_writes_them) {
  using Codec = dogpile::Codec<std::string>;
  BOOST_TEST(Codec::encode("hello world") == R"("hello world")");
  BOOST_TEST(Codec::encode("a\"b\\c\n\x01\x7f") == R"("a\"b\\c\n\u0001\u007f")");
  // json.dumps("h\u00e9 \u20ac \U0001F600") with its default ensure_ascii.
  BOOST_TEST(Codec::encode("h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") ==
             R"("h\u00e9 \u20ac \ud83d\ude00")");
  BOOST_TEST(Codec::encode("") == R"("")");
  BOOST_TEST(Codec::decode(R"("hello world")") == "hello world");
  BOOST_TEST(Codec::decode(R"("h\u00e9")") == "h\xc3\xa9");
  BOOST_TEST(Codec::decode("\"h\xc3\xa9\"") == "h\xc3\xa9");
}

BOOST_AUTO_TEST_CASE(a_string_that_is_not_utf8_is_stored_as_its_raw_bytes) {
  using Codec = dogpile::Codec<std::string>;
  const std::string binary("\xff\0\"x\"\xc3", 6);
  BOOST_TEST(Codec::encode(binary) == binary);
  BOOST_TEST(Codec::decode(binary) == binary);
  // Overlong forms and surrogates are not UTF-8 either.
  for (std::string bad : {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82"}) {
    BOOST_TEST(!dogpile::python_json::is_valid_utf8(bad));
    BOOST_TEST(Codec::decode(Codec::encode(bad)) == bad);
  }
}

BOOST_AUTO_TEST_CASE(a_string_payload_that_is_no_json_string_is_a_type_error_or_undecodable) {
  using Codec = dogpile::Codec<std::string>;
  BOOST_CHECK_THROW(Codec::decode("42"), dogpile::ValueTypeError);
  BOOST_CHECK_THROW(Codec::decode("[\"a\"]"), dogpile::ValueTypeError);
  BOOST_CHECK_THROW(Codec::decode("hello world"), dogpile::CantDeserialize);
  BOOST_CHECK_THROW(Codec::decode(""), dogpile::CantDeserialize);
}

BOOST_AUTO_TEST_CASE(bytes_are_stored_exactly) {
  const dogpile::Bytes raw(std::string("\0\xff\"x", 4));
  BOOST_TEST(dogpile::Codec<dogpile::Bytes>::encode(raw) == raw.data);
  BOOST_TEST((dogpile::Codec<dogpile::Bytes>::decode(raw.data) == raw));
}

BOOST_AUTO_TEST_CASE(non_finite_floats_are_written_and_read_as_python_does) {
  const double inf = std::numeric_limits<double>::infinity();
  BOOST_TEST(dogpile::Codec<double>::encode(std::nan("")) == "NaN");
  BOOST_TEST(dogpile::Codec<double>::encode(inf) == "Infinity");
  BOOST_TEST(dogpile::Codec<double>::encode(-inf) == "-Infinity");
  BOOST_TEST(std::isnan(dogpile::Codec<double>::decode("NaN")));
  BOOST_TEST(dogpile::Codec<double>::decode("Infinity") == inf);
  BOOST_TEST(dogpile::Codec<double>::decode(" -Infinity ") == -inf);
  using Mixed = std::map<std::string, std::vector<double>>;
  const Mixed mixed{{"a", {1.5, inf, -inf}}, {"b\xc3\xa9", {}}};
  const std::string text = dogpile::Codec<Mixed>::encode(mixed);
  BOOST_TEST(text == R"({"a":[1.5,Infinity,-Infinity],"b\u00e9":[]})");
  BOOST_TEST((dogpile::Codec<Mixed>::decode(
                  R"({"a": [1.5, Infinity, -Infinity], "b\u00e9": []})") == mixed));
  BOOST_TEST(std::isnan(dogpile::Codec<std::vector<double>>::decode("[NaN]").at(0)));
  BOOST_CHECK_THROW(dogpile::Codec<double>::decode("nan"), dogpile::CantDeserialize);
  BOOST_CHECK_THROW(dogpile::Codec<double>::decode("[NaN"), dogpile::CantDeserialize);
  BOOST_CHECK_THROW(dogpile::Codec<double>::decode("NaNx"), dogpile::CantDeserialize);
}

BOOST_AUTO_TEST_CASE(reads_are_lossless_or_a_value_type_error) {
  BOOST_CHECK_THROW(dogpile::Codec<int>::decode("1.5"), dogpile::ValueTypeError);
  BOOST_CHECK_THROW(dogpile::Codec<int>::decode("2.0"), dogpile::ValueTypeError);
  BOOST_CHECK_THROW(dogpile::Codec<int>::decode("true"), dogpile::ValueTypeError);
  BOOST_CHECK_THROW(dogpile::Codec<bool>::decode("1"), dogpile::ValueTypeError);
  BOOST_CHECK_THROW(dogpile::Codec<std::int8_t>::decode("300"), dogpile::ValueTypeError);
  BOOST_CHECK_THROW(dogpile::Codec<unsigned>::decode("-1"), dogpile::ValueTypeError);
  BOOST_CHECK_THROW(dogpile::Codec<std::int64_t>::decode("9223372036854775808"),
                    dogpile::ValueTypeError);
  BOOST_CHECK_THROW(dogpile::Codec<double>::decode("9007199254740993"), dogpile::ValueTypeError);
  BOOST_CHECK_THROW(dogpile::Codec<float>::decode("0.1"), dogpile::ValueTypeError);
  BOOST_CHECK_THROW(dogpile::Codec<int>::decode("\"1\""), dogpile::ValueTypeError);
  BOOST_CHECK_THROW(dogpile::Codec<std::vector<int>>::decode("[1, 2.5]"), dogpile::ValueTypeError);
  BOOST_CHECK_THROW((dogpile::Codec<std::pair<int, int>>::decode("[1, 2, 3]")),
                    dogpile::ValueTypeError);
  BOOST_CHECK_THROW((dogpile::Codec<std::map<std::string, bool>>::decode(R"({"a": 0})")),
                    dogpile::ValueTypeError);
  BOOST_TEST(dogpile::Codec<long>::decode("42") == 42);
  BOOST_TEST(dogpile::Codec<double>::decode("42") == 42.0);
  BOOST_TEST(dogpile::Codec<double>::decode("9007199254740992") == 9007199254740992.0);
  BOOST_TEST(dogpile::Codec<float>::decode(dogpile::Codec<float>::encode(0.1f)) == 0.1f);
  BOOST_TEST(dogpile::Codec<std::uint64_t>::decode("18446744073709551615") == UINT64_MAX);
  try {
    dogpile::Codec<std::map<std::string, std::vector<int>>>::decode(R"({"a": [1, "x"]})");
    BOOST_FAIL("expected ValueTypeError");
  } catch (const dogpile::ValueTypeError& e) {
    BOOST_TEST(std::string(e.what()) == R"(["a"] [1] holds a string, not an integer)");
  }
}

BOOST_AUTO_TEST_CASE(payloads_that_are_not_json_or_too_deep_are_undecodable) {
  BOOST_CHECK_THROW(dogpile::Codec<int>::decode("forty-two"), dogpile::CantDeserialize);
  BOOST_CHECK_THROW(dogpile::Codec<int>::decode("\xff"), dogpile::CantDeserialize);
  BOOST_CHECK_THROW(dogpile::Codec<int>::decode(""), dogpile::CantDeserialize);
  const std::string deep = std::string(600, '[') + std::string(600, ']');
  BOOST_CHECK_THROW(dogpile::Codec<json>::decode(deep), dogpile::CantDeserialize);
  const std::string fine = std::string(500, '[') + std::string(500, ']');
  BOOST_TEST(dogpile::Codec<json>::decode(fine).is_array());
}

BOOST_AUTO_TEST_CASE(numbers_and_booleans_are_json_text) {
  BOOST_TEST(dogpile::Codec<int>::encode(42) == "42");
  BOOST_TEST(dogpile::Codec<double>::encode(1.5) == "1.5");
  BOOST_TEST(dogpile::Codec<bool>::encode(true) == "true");
  BOOST_TEST(dogpile::Codec<long>::decode("-7") == -7);
  BOOST_TEST(dogpile::Codec<double>::decode("2.25") == 2.25);
}

BOOST_AUTO_TEST_CASE(json_convertible_types_are_json) {
  Jsonable value{"n", {1, 2}};
  BOOST_TEST(dogpile::Codec<Jsonable>::encode(value) == R"({"name":"n","values":[1,2]})");
  BOOST_TEST((dogpile::Codec<Jsonable>::decode(R"({"name": "n", "values": [1, 2]})") == value));
  BOOST_TEST((dogpile::Codec<std::map<std::string, int>>::decode(R"({"a": 1})").at("a") == 1));
}

static_assert(dogpile::HasCodec<Point> && dogpile::HasCodec<Jsonable> &&
              dogpile::HasCodec<std::string> && !dogpile::HasCodec<NoCodec>);

BOOST_AUTO_TEST_CASE(a_user_codec_wins_over_a_json_conversion) {
  auto region = test::region_on("dogpile.cache.memory_pickle");
  region->set("p", Point{1, 2});
  const auto stored = region->backend()->get_serialized("p");
  BOOST_TEST_REQUIRE(stored.has_value());
  BOOST_TEST(stored->ends_with("|1,2"), *stored);  // the codec's bytes, not {"x":1,"y":2}
  BOOST_TEST(region->get<Point>("p")->y == 2);
}

BOOST_AUTO_TEST_SUITE_END()

// Arguments ------------------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(arguments)

BOOST_AUTO_TEST_CASE(typed_lookups_return_values_or_defaults) {
  Arguments args(json{{"port", 6379},
                      {"host", "localhost"},
                      {"ratio", 0.5},
                      {"on", true},
                      {"nothing", nullptr}},
                 "cache.x.arguments.");
  BOOST_TEST(args.get("port", 1) == 6379);
  BOOST_TEST(args.get<std::string>("host", "") == "localhost");
  BOOST_TEST(args.get("ratio", 1.0) == 0.5);
  BOOST_TEST(args.get("on", false) == true);
  BOOST_TEST(args.get("missing", 7) == 7);
  BOOST_TEST(args.get("nothing", 8) == 8);
  // A string literal default reads as a std::string (it once compiled and failed to link).
  BOOST_TEST(args.get("host", "default") == "localhost");
  BOOST_TEST(args.get("absent", "default") == "default");
  BOOST_TEST(!args.find<int>("missing").has_value());
  BOOST_TEST(args.get("port", 0.0) == 6379.0);
}

BOOST_AUTO_TEST_CASE(a_number_read_as_a_string_gives_its_text) {
  Arguments args(json{{"password", 1234}});
  BOOST_TEST(args.get<std::string>("password", "") == "1234");
}

BOOST_AUTO_TEST_CASE(a_list_is_a_json_array_or_comma_separated_text) {
  using List = std::vector<std::string>;
  Arguments args(
      json{{"array", {"a:1", "b:2"}}, {"text", " a:1 ,b:2,, "}, {"one", "a:1"}, {"bad", {"a", 1}}},
      "cache.x.arguments.");
  BOOST_TEST((args.require<List>("array") == List{"a:1", "b:2"}));
  BOOST_TEST((args.require<List>("text") == List{"a:1", "b:2"}));
  BOOST_TEST((args.require<List>("one") == List{"a:1"}));
  try {
    args.require<List>("bad");
    BOOST_FAIL("expected ValidationError");
  } catch (const dogpile::ValidationError& e) {
    BOOST_TEST(message_contains(e, "cache.x.arguments.bad must be a list of strings"));
  }
}

BOOST_AUTO_TEST_CASE(wrong_types_are_errors_naming_the_full_key) {
  Arguments args(json{{"port", "abc"}, {"count", -1}, {"flag", "yes"}}, "cache.shared.arguments.");
  try {
    args.get("port", 0);
    BOOST_FAIL("expected ValidationError");
  } catch (const dogpile::ValidationError& e) {
    BOOST_TEST(message_contains(e, "cache.shared.arguments.port must be an integer"));
  }
  BOOST_CHECK_THROW(args.get("count", 0u), dogpile::ValidationError);
  BOOST_CHECK_THROW(args.get("flag", false), dogpile::ValidationError);
}

BOOST_AUTO_TEST_CASE(a_missing_required_argument_names_the_key) {
  Arguments args(json::object(), "cache.shared.arguments.");
  try {
    args.require<std::string>("url");
    BOOST_FAIL("expected ValidationError");
  } catch (const dogpile::ValidationError& e) {
    BOOST_TEST(message_contains(e, "missing required argument cache.shared.arguments.url"));
  }
}

BOOST_AUTO_TEST_CASE(arguments_nobody_read_are_rejected_with_the_known_ones) {
  Arguments args(json{{"port", 1}, {"prot", 2}}, "cache.shared.arguments.");
  args.get("port", 0);
  args.get("host", std::string());
  try {
    args.reject_unknown("dogpile.cache.example");
    BOOST_FAIL("expected ValidationError");
  } catch (const dogpile::ValidationError& e) {
    BOOST_TEST(message_contains(e,
                                "unknown argument cache.shared.arguments.prot for "
                                "dogpile.cache.example (did you mean port?) (its arguments are: "
                                "host, port)"));
  }
  Arguments ok(json{{"port", 1}});
  ok.get("port", 0);
  BOOST_CHECK_NO_THROW(ok.reject_unknown("x"));
}

BOOST_AUTO_TEST_CASE(an_argument_read_as_json_counts_as_read) {
  Arguments args(json{{"nodes", {"a:1", {"b", 2}}}, {"none", nullptr}});
  const json* nodes = args.find_json("nodes");
  BOOST_TEST_REQUIRE(nodes != nullptr);
  BOOST_TEST((*nodes)[1][1] == 2);
  BOOST_TEST(args.find_json("none") == nullptr);
  BOOST_TEST(args.find_json("absent") == nullptr);
  BOOST_CHECK_NO_THROW(args.reject_unknown("x"));
}

BOOST_AUTO_TEST_CASE(ignored_python_arguments_are_accepted_with_a_warning) {
  test::LogCapture logs;
  Arguments args(json{{"cache_dict", "{}"}}, "cache.x.arguments.");
  args.ignore("cache_dict", "Python only");
  BOOST_CHECK_NO_THROW(args.reject_unknown("x"));
  BOOST_TEST_REQUIRE(logs.records().size() == 1u);
  BOOST_TEST((logs.records()[0].first == test::Severity::warning));
  BOOST_TEST(logs.records()[0].second.find("cache.x.arguments.cache_dict") != std::string::npos,
             logs.records()[0].second);
  BOOST_TEST(logs.records()[0].second.find("Python only") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(durations_accept_numbers_and_units) {
  Arguments args(json{{"a", 2},
                      {"b", "250ms"},
                      {"c", "5m"},
                      {"d", "2h"},
                      {"e", "1d"},
                      {"f", "90s"},
                      {"bad", "5 minutes"}});
  BOOST_TEST(*args.find_seconds("a") == 2.0);
  BOOST_TEST(*args.find_seconds("b") == 0.25);
  BOOST_TEST(*args.find_seconds("c") == 300.0);
  BOOST_TEST(*args.find_seconds("d") == 7200.0);
  BOOST_TEST(*args.find_seconds("e") == 86400.0);
  BOOST_TEST(*args.find_seconds("f") == 90.0);
  BOOST_CHECK_THROW(args.find_seconds("bad"), dogpile::ValidationError);
}

BOOST_AUTO_TEST_CASE(arguments_must_be_a_mapping) {
  BOOST_CHECK_THROW(Arguments(json::array({1, 2})), dogpile::ValidationError);
}

BOOST_AUTO_TEST_SUITE_END()

// Backend families and proxies -----------------------------------------------------------

namespace {

// Stores bytes; counts calls per operation.
class RecordingBytesBackend final : public dogpile::BytesBackend {
 public:
  std::optional<std::string> get_serialized(std::string_view key) override {
    calls["get_serialized"]++;
    auto it = data.find(std::string(key));
    if (it == data.end()) return std::nullopt;
    return it->second;
  }
  void set_serialized(const std::string& key, std::string_view value) override {
    calls["set_serialized"]++;
    data[key] = std::string(value);
  }
  void remove(std::string_view key) override {
    calls["remove"]++;
    data.erase(std::string(key));
  }
  std::unique_ptr<dogpile::CacheMutex> get_mutex(std::string_view) override {
    calls["get_mutex"]++;
    return nullptr;
  }
  bool has_lock_timeout() const override { return true; }
  std::map<std::string, std::string> data;
  std::map<std::string, int> calls;
};

class RecordingObjectBackend final : public dogpile::ObjectBackend {
 public:
  CachedValuePtr get(std::string_view key) override {
    auto it = data.find(std::string(key));
    return it == data.end() ? nullptr : it->second;
  }
  void set(const std::string& key, CachedValuePtr value) override { data[key] = std::move(value); }
  void remove(std::string_view key) override { data.erase(std::string(key)); }
  std::map<std::string, CachedValuePtr> data;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(backend_families)

BOOST_AUTO_TEST_CASE(a_bytes_backend_serves_the_object_family) {
  RecordingBytesBackend backend;
  backend.set("k", bytes_value("7", 10.5));
  BOOST_TEST(backend.data.at("k") == R"({"ct": 10.5, "v": 2}|7)");
  auto value = backend.get("k");
  BOOST_TEST(value->bytes() == "7");
  BOOST_TEST(backend.get("absent") == nullptr);
  backend.set_multi({{"a", bytes_value("1", 1.0)}, {"b", bytes_value("2", 2.0)}});
  auto values = backend.get_multi({"b", "absent", "a"});
  BOOST_TEST_REQUIRE(values.size() == 3u);
  BOOST_TEST(values[0]->bytes() == "2");
  BOOST_TEST(values[1] == nullptr);
  BOOST_TEST(values[2]->bytes() == "1");
  backend.remove_multi({"a", "b", "absent"});
  BOOST_TEST(backend.data.size() == 1u);
}

BOOST_AUTO_TEST_CASE(an_object_backend_serves_the_bytes_family) {
  RecordingObjectBackend backend;
  backend.set_serialized("k", R"({"ct": 3.5, "v": 2}|"x")");
  BOOST_TEST(backend.data.at("k")->metadata().ct == 3.5);
  BOOST_TEST(*backend.get_serialized("k") == R"({"ct": 3.5, "v": 2}|"x")");
  backend.set("o", dogpile::make_value(5, 4.0));
  auto values = backend.get_serialized_multi({"o", "absent"});
  BOOST_TEST(*values[0] == R"({"ct": 4.0, "v": 2}|5)");
  BOOST_TEST(!values[1].has_value());
  backend.set_serialized_multi({{"p", R"({"ct": 1.0, "v": 2}|1)"}});
  BOOST_TEST(backend.data.count("p") == 1u);
  // Arbitrary bytes round-trip through the bytes family; the object family sees them as
  // undecodable.
  const std::string garbage("gar\0bage\xff", 9);
  backend.set_serialized("bad", garbage);
  BOOST_TEST(*backend.get_serialized("bad") == garbage);
  BOOST_TEST(!backend.get("bad")->decodable());
}

BOOST_AUTO_TEST_CASE(a_proxy_delegates_every_method) {
  auto inner = std::make_shared<RecordingBytesBackend>();
  auto proxy = std::make_shared<dogpile::ProxyBackend>();
  proxy->wrap(inner);
  proxy->set("a", bytes_value("1", 1.0));
  proxy->set_multi({{"b", bytes_value("2", 2.0)}});
  proxy->set_serialized("c", R"({"ct": 3.0, "v": 2}|3)");
  proxy->set_serialized_multi({{"d", R"({"ct": 4.0, "v": 2}|4)"}});
  BOOST_TEST(inner->data.size() == 4u);
  BOOST_TEST(proxy->get("a")->bytes() == "1");
  BOOST_TEST(proxy->get_multi({"b"})[0]->bytes() == "2");
  BOOST_TEST(*proxy->get_serialized("c") == R"({"ct": 3.0, "v": 2}|3)");
  BOOST_TEST(proxy->get_serialized_multi({"d"})[0].has_value());
  proxy->remove("a");
  proxy->remove_multi({"b", "c"});
  BOOST_TEST(inner->data.size() == 1u);
  BOOST_TEST(proxy->get_mutex("k") == nullptr);
  BOOST_TEST(inner->calls["get_mutex"] == 1);
  BOOST_TEST(proxy->has_lock_timeout());
  BOOST_TEST(!proxy->key_mangler());
}

BOOST_AUTO_TEST_CASE(an_unwrapped_proxy_fails_clearly) {
  dogpile::ProxyBackend proxy;
  BOOST_CHECK_THROW(proxy.get("k"), dogpile::Error);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(connection_pool)

namespace {

// Connections are numbered in the order they are opened.
struct Numbered {
  std::atomic<int> opened{0};
  dogpile::ConnectionPool<std::shared_ptr<int>> pool;
  explicit Numbered(std::size_t size, double wait = 10)
      : pool(size, wait, "test server", [this] { return std::make_shared<int>(++opened); }) {}
};

}  // namespace

BOOST_AUTO_TEST_CASE(an_idle_connection_is_reused) {
  Numbered n(4);
  for (int i = 0; i < 3; ++i) BOOST_TEST(**n.pool.lease() == 1);
  BOOST_TEST(n.opened == 1);
  BOOST_TEST(n.pool.open() == 1u);
}

BOOST_AUTO_TEST_CASE(at_most_max_size_are_open_and_a_caller_waits_for_one) {
  Numbered n(2);
  auto first = std::make_optional(n.pool.lease());
  auto second = n.pool.lease();
  int got = 0;
  std::thread waiter([&] { got = **n.pool.lease(); });  // none idle, none to open: it waits
  std::weak_ptr<int> given = **first;
  first.reset();  // gives connection 1 back, to the waiter
  waiter.join();
  BOOST_TEST(got == 1);
  BOOST_TEST(n.opened == 2);
  BOOST_TEST(!given.expired());  // back in the pool, not closed
}

BOOST_AUTO_TEST_CASE(a_wait_is_bounded_and_names_the_server) {
  Numbered n(1, 0.05);
  auto held = n.pool.lease();
  const auto start = std::chrono::steady_clock::now();
  try {
    n.pool.lease();
    BOOST_FAIL("expected BackendUnavailable");
  } catch (const dogpile::BackendUnavailable& e) {
    BOOST_TEST(message_contains(e, "test server: all 1 connections of the pool stayed busy"));
  }
  BOOST_TEST((std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(50)));
}

BOOST_AUTO_TEST_CASE(a_discarded_connection_is_closed_and_replaced) {
  Numbered n(1);
  std::weak_ptr<int> closed;
  {
    auto lease = n.pool.lease();
    closed = *lease;
    lease.discard();
  }
  BOOST_TEST(closed.expired());
  BOOST_TEST(n.pool.open() == 0u);
  BOOST_TEST(**n.pool.lease() == 2);  // a new one, though the pool holds only 1
}

BOOST_AUTO_TEST_CASE(a_failed_connect_frees_its_place) {
  bool refuse = true;
  dogpile::ConnectionPool<std::shared_ptr<int>> pool(1, 10, "test server", [&] {
    if (refuse) throw dogpile::BackendUnavailable("refused");
    return std::make_shared<int>(7);
  });
  BOOST_CHECK_THROW(pool.lease(), dogpile::BackendUnavailable);
  BOOST_TEST(pool.open() == 0u);
  refuse = false;
  BOOST_TEST(**pool.lease() == 7);  // not waiting for the place the failure took
}

BOOST_AUTO_TEST_SUITE_END()
