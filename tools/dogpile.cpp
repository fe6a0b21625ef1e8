// The `dogpile` command for operators: shows a cache at work, reads and writes keys of a
// region configured from a file, checks that every backend of a file answers, measures a
// region, reads the figures an application exposes, and lists the plugins it can find.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <thread>

#include "cli.hpp"
#include "demo_config.hpp"

namespace tool {

namespace {

struct OptionSpec {
  const char* name;
  bool takes_value;
};

struct Command {
  const char* name;
  const char* synopsis;  // after "dogpile [--config FILE] [--region NAME] "
  const char* help;
  std::vector<OptionSpec> options;
  std::size_t min_operands, max_operands;
  int (*run)(const Invocation&);
};

int demo(const Invocation&);
int plugins(const Invocation&);
int check(const Invocation&);
int ping(const Invocation&);
int get(const Invocation&);
int set(const Invocation&);
int remove(const Invocation&);
int version(const Invocation&);

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"demo",
       "demo [CONFIG [REGION]]",
       "Shows a cache at work: lookups of a few keys of its own (dogpile-demo:<pid>:...),\n"
       "with every hit, miss and value created, an invalidation and a removal; the keys are\n"
       "removed at the end. Runs on REGION (or --region), else the first region of the file\n"
       "whose backend stores values; with no file, on the embedded configs/demo.json.\n",
       {},
       0,
       2,
       demo},
      {"plugins",
       "plugins [--json]",
       "Lists every backend and proxy plugin on the plugin path: name, kind, version, file,\n"
       "and whether this libdogpile can load it (with why not).\n",
       {{"--json", false}},
       0,
       0,
       plugins},
      {"check",
       "check [CONFIG] [--connect]",
       "Configures every region of the file (CONFIG or --config) and reports the first error,\n"
       "with its file and line. --connect also pings every region's backend (see ping).\n",
       {{"--connect", false}},
       0,
       1,
       check},
      {"ping",
       "ping",
       "Writes, reads back and removes a probe key on the backend of every region of the file\n"
       "(or of --region) and reports each call's latency; fails naming the region and the\n"
       "server that does not answer.\n",
       {},
       0,
       0,
       ping},
      {"get",
       "get KEY [--raw] [--json]",
       "Shows the value of KEY in the region: the value as JSON, when it was created, its age,\n"
       "and whether it is expired under the region's expiration time. --raw adds the bytes as\n"
       "stored (dogpile's wire format). Exit status 3 when the key holds no value.\n",
       {{"--raw", false}, {"--json", false}},
       1,
       1,
       get},
      {"set",
       "set KEY JSON [--ttl SECONDS]",
       "Stores the JSON value under KEY, created now. --ttl makes it expire after SECONDS for\n"
       "the region's readers (it is stored as created earlier), at most the region's\n"
       "expiration time.\n",
       {{"--ttl", true}},
       2,
       2,
       set},
      {"delete",
       "delete KEY...",
       "Removes the keys from the region (absent keys are no error).\n",
       {},
       1,
       SIZE_MAX,
       remove},
      {"bench",
       "bench [--threads N] [--seconds S] [--keys N] [--value-size BYTES] [--json]",
       "Measures the region: get (hits), set and get_or_create, each for S seconds (default 3)\n"
       "on N threads (default 4) over N keys of its own (default 1000), removed after.\n"
       "Prints operations per second and p50/p99/p999 latency; a progress line on a terminal.\n",
       {{"--threads", true},
        {"--seconds", true},
        {"--keys", true},
        {"--value-size", true},
        {"--json", false}},
       0,
       0,
       bench},
      {"stats",
       "stats SOURCE [--json]",
       "Reads the figures an application exposes with dogpile::metrics_text() (Prometheus\n"
       "text) from SOURCE, a file, - for stdin, or http://127.0.0.1:PORT/PATH (loopback only),\n"
       "and shows per region: lookups, hit ratio, sets, deletes, errors and each call's\n"
       "latency (p50/p99/p999, as the histogram's bucket bounds).\n",
       {{"--json", false}},
       1,
       1,
       stats},
      {"version",
       "version",
       "Shows the tool's version, SDK ABI and build tag.\n",
       {},
       0,
       0,
       version},
  };
  return table;
}

const OptionSpec kGlobalOptions[] = {{"--config", true}, {"--region", true}};

const char* const kExitStatus =
    "exit status: 0 done, 1 failed (the reason on stderr), 2 bad usage, 3 get: no value\n";

std::string usage_text() {
  std::string text =
      "usage: dogpile [--config FILE] [--region NAME] COMMAND [ARGS]\n"
      "       dogpile COMMAND --help\n\n"
      "FILE is a JSON or INI config (regions under cache.); without it, the embedded\n"
      "configs/demo.json (memory backend). NAME picks a region (default: the first one whose\n"
      "backend stores values).\n\ncommands:\n";
  for (const auto& command : commands()) {
    text += "  " + std::string(command.synopsis) + "\n";
  }
  return text + kExitStatus;
}

std::string command_help(const Command& command) {
  return "usage: dogpile [--config FILE] [--region NAME] " + std::string(command.synopsis) +
         "\n\n" + command.help + kExitStatus;
}

const Command* find_command(const std::string& name) {
  for (const auto& command : commands()) {
    if (name == command.name) return &command;
  }
  return nullptr;
}

// Options may come before or after the command; a command's own only after it.
Invocation parse(const std::vector<std::string>& args, const Command*& command, bool& help) {
  Invocation invocation;
  command = nullptr;
  help = false;
  bool operands_only = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (operands_only || arg.size() < 2 || arg[0] != '-' || arg == "-") {
      if (command == nullptr) {
        if (arg == "help") {
          help = true;
          continue;
        }
        command = find_command(arg);
        if (command == nullptr) throw UsageError("unknown command '" + arg + "'");
        invocation.command = arg;
      } else {
        invocation.operands.push_back(arg);
      }
      continue;
    }
    if (arg == "--") {
      operands_only = true;
      continue;
    }
    if (arg == "--help" || arg == "-h") {
      help = true;
      continue;
    }
    const auto equals = arg.find('=');
    const std::string name = arg.substr(0, equals);
    const OptionSpec* spec = nullptr;
    for (const auto& global : kGlobalOptions) {
      if (name == global.name) spec = &global;
    }
    if (spec == nullptr && command != nullptr) {
      for (const auto& own : command->options) {
        if (name == own.name) spec = &own;
      }
    }
    if (spec == nullptr) {
      throw UsageError("unknown option " + name +
                       (command != nullptr ? " for " + invocation.command : std::string()));
    }
    if (!spec->takes_value) {
      if (equals != std::string::npos) throw UsageError(name + " takes no value");
      invocation.options[name] = "";
    } else if (equals != std::string::npos) {
      invocation.options[name] = arg.substr(equals + 1);
    } else if (i + 1 < args.size()) {
      invocation.options[name] = args[++i];
    } else {
      throw UsageError(name + " needs a value");
    }
  }
  if (command != nullptr && !help) {
    if (invocation.operands.size() < command->min_operands) {
      throw UsageError(invocation.command + " needs more arguments");
    }
    if (invocation.operands.size() > command->max_operands) {
      throw UsageError("too many arguments for " + invocation.command + ": '" +
                       invocation.operands[command->max_operands] + "'");
    }
  }
  return invocation;
}

std::string expiration_text(const dogpile::CacheRegion& region) {
  auto seconds = region.expiration_time();
  return seconds ? dogpile::python_float_repr(*seconds) + " s" : "never";
}

std::optional<std::string> operand(const Invocation& invocation, std::size_t i) {
  if (i < invocation.operands.size()) return invocation.operands[i];
  return std::nullopt;
}

// demo ---------------------------------------------------------------------------------

struct Profile {
  std::string name;
  int score = 0;
  NLOHMANN_DEFINE_TYPE_INTRUSIVE(Profile, name, score)
};

// The "expensive" computation the cache saves.
Profile load_profile(const std::string& user) {
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return Profile{user, static_cast<int>(user.size()) * 10};
}

// The longest the demo waits for values to expire.
constexpr double kLongestWait = 5.0;

int demo(const Invocation& invocation) {
  const auto config =
      operand(invocation, 0) ? operand(invocation, 0) : invocation.value("--config");
  const auto region_name =
      operand(invocation, 1) ? operand(invocation, 1) : invocation.value("--region");
  const Regions regions = load(config);
  auto& region = regions.pick(region_name);
  // Keys of its own, removed at the end: the demo may run against a production cache.
  const std::string prefix = scratch_key("dogpile-demo", "");
  RemoveOnExit cleanup{region, "the demo's keys", {}};
  std::printf("region %s on %s, values expire after %s (%zu region(s) in the config)\n",
              region.name().c_str(), region.backend_name().c_str(), expiration_text(region).c_str(),
              regions.order.size());
  std::printf("keys start with %s and are removed at the end\n\n", prefix.c_str());
  int hits = 0, misses = 0, created = 0;
  auto lookup = [&](const std::string& user) {
    const std::string key = prefix + user;
    if (std::find(cleanup.keys.begin(), cleanup.keys.end(), key) == cleanup.keys.end()) {
      cleanup.keys.push_back(key);
    }
    const auto start = std::chrono::steady_clock::now();
    auto profile = region.get<Profile>(key);
    const bool hit = profile != nullptr;
    if (hit) {
      ++hits;
    } else {
      ++misses;
      ++created;
      profile = std::make_shared<const Profile>(load_profile(user));
      region.set(key, *profile);
    }
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    auto meta = region.get_value_metadata(key);
    std::printf("  %-5s %-6s -> {name: %s, score: %d}  %6.1f ms  (value age %.2f s)\n",
                hit ? "hit" : "miss", user.c_str(), profile->name.c_str(), profile->score, ms,
                meta ? meta->age() : 0.0);
  };

  std::printf("first lookups (a miss creates the value, a hit is served from the cache):\n");
  for (const char* user : {"alice", "bob", "alice", "carol", "bob", "alice"}) lookup(user);

  if (const auto expiration = region.expiration_time(); !expiration) {
    std::printf("\nvalues never expire: not waiting for them\n");
  } else if (*expiration > kLongestWait) {
    std::printf("\nvalues expire after %s: longer than the demo waits (%.0f s)\n",
                expiration_text(region).c_str(), kLongestWait);
  } else {
    std::printf("\nwaiting %.1f s for the values to expire...\n", *expiration + 0.2);
    std::this_thread::sleep_for(std::chrono::duration<double>(*expiration + 0.2));
    lookup("alice");
  }

  std::printf("\nregion.invalidate(): every value created before now is stale\n");
  region.invalidate();
  lookup("alice");
  lookup("alice");

  std::printf("\nregion.remove(\"bob\")\n");
  region.remove(prefix + "bob");
  lookup("bob");

  std::printf("\n%d lookups: %d hits, %d misses, %d values created\n", hits + misses, hits, misses,
              created);
  return kOk;
}

// plugins ------------------------------------------------------------------------------

int plugins(const Invocation& invocation) {
  auto& loader = dogpile::PluginLoader::instance();
  const auto entries = loader.list();
  if (invocation.has("--json")) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& entry : entries) {
      nlohmann::json shadowed = nlohmann::json::array();
      for (const auto& other : entry.shadowed) shadowed.push_back(other.string());
      list.push_back({{"name", entry.name},
                      {"kind", entry.kind == dogpile::PluginKind::proxy ? "proxy" : "backend"},
                      {"version", entry.version},
                      {"description", entry.description},
                      {"file", entry.file.string()},
                      {"compatible", entry.incompatible.empty()},
                      {"why_not", entry.incompatible.empty() ? nlohmann::json(nullptr)
                                                             : nlohmann::json(entry.incompatible)},
                      {"shadowed", shadowed}});
    }
    std::cout << list.dump(2) << "\n";
    return entries.empty() ? kFailed : kOk;
  }
  if (entries.empty()) {
    std::cerr << "dogpile: no plugins found; searched:\n";
    for (const auto& p : loader.search_path()) std::cerr << "  " << p.string() << "\n";
    return kFailed;
  }
  for (const auto& entry : entries) {
    std::cout << entry.name << "  ("
              << (entry.kind == dogpile::PluginKind::proxy ? "proxy" : "backend")
              << (entry.version.empty() ? "" : " " + entry.version) << ")\n"
              << "    " << entry.description << "\n"
              << "    " << (entry.in_process ? "(no library)" : entry.file.string()) << "\n";
    if (!entry.incompatible.empty()) {
      std::cout << "    NOT USABLE: " << entry.incompatible << "\n";
    }
    for (const auto& other : entry.shadowed) {
      std::cout << "    also in " << other.string() << " (ignored: first on the path wins)\n";
    }
  }
  return kOk;
}

// check, ping --------------------------------------------------------------------------

// How long `call` took, in milliseconds.
template <class Call>
double timed_ms(Call&& call) {
  const auto start = std::chrono::steady_clock::now();
  call();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

// Writes, reads back and removes a probe key; prints one line; false when it failed.
bool probe(dogpile::CacheRegion& region) {
  std::printf("%-24s %-28s ", region.name().c_str(), region.backend_name().c_str());
  std::fflush(stdout);
  const std::string key = scratch_key("dogpile-ping", region.name());
  const std::string token =
      std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  try {
    if (!region.backend()->capabilities().stores_values) {
      const double get_ms = timed_ms([&] { region.get<std::string>(key); });
      std::printf("ok, stores no values (get %.2f ms)\n", get_ms);
      return true;
    }
    std::shared_ptr<const std::string> read;
    const double set_ms = timed_ms([&] { region.set(key, token); });
    const double get_ms = timed_ms([&] { read = region.get<std::string>(key); });
    const double delete_ms = timed_ms([&] { region.remove(key); });
    if (read == nullptr || *read != token) {
      std::printf("FAILED: the probe key read back %s\n",
                  read == nullptr ? "nothing" : "another value");
      return false;
    }
    std::printf("ok  set %.2f ms, get %.2f ms, delete %.2f ms\n", set_ms, get_ms, delete_ms);
    return true;
  } catch (const std::exception& e) {
    std::printf("FAILED: %s\n", e.what());
    return false;
  }
}

int probe_all(const Regions& regions, const std::optional<std::string>& region_name) {
  int failed = 0;
  for (auto* region : regions.selected(region_name)) failed += probe(*region) ? 0 : 1;
  if (failed > 0) {
    std::cerr << "dogpile: " << failed << " region(s) of " << regions.source << " did not answer\n";
    return kFailed;
  }
  return kOk;
}

int check(const Invocation& invocation) {
  const auto config =
      operand(invocation, 0) ? operand(invocation, 0) : invocation.value("--config");
  if (!config) throw UsageError("check needs a config file (CONFIG or --config)");
  const Regions regions = load(config);
  for (const auto& name : regions.order) {
    const auto& region = *regions.by_name.at(name);
    std::cout << name << ": " << region.backend_name() << ", expiration " << expiration_text(region)
              << "\n";
  }
  std::cout << regions.source << ": " << regions.order.size() << " region(s) OK\n";
  if (!invocation.has("--connect")) return kOk;
  std::cout << "\n";
  return probe_all(regions, invocation.value("--region"));
}

int ping(const Invocation& invocation) {
  return probe_all(load(invocation.value("--config")), invocation.value("--region"));
}

// get, set, delete ---------------------------------------------------------------------

// Bytes as Python writes a bytes literal: b'...' with \x escapes.
std::string bytes_repr(std::string_view bytes) {
  std::string out = "b'";
  for (unsigned char c : bytes) {
    if (c == '\\' || c == '\'') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c >= 0x7f) {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "'";
}

std::string utc_text(double epoch_seconds) {
  const auto whole = static_cast<std::time_t>(std::floor(epoch_seconds));
  std::tm tm{};
  gmtime_r(&whole, &tm);
  char text[64];
  const int millis = static_cast<int>((epoch_seconds - std::floor(epoch_seconds)) * 1000);
  std::snprintf(text, sizeof text, "%04d-%02d-%02d %02d:%02d:%02d.%03d UTC", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return text;
}

int get(const Invocation& invocation) {
  const Regions regions = load(invocation.value("--config"));
  auto& region = regions.pick(invocation.value("--region"));
  const std::string& key = invocation.operands[0];
  // The backend's own answer, whatever it holds: an expired or unreadable value is shown too.
  auto value = region.backend()->get(region.mangle(key));
  if (value == nullptr) {
    std::cerr << "dogpile: " << key << ": no value in region " << region.name() << "\n";
    return kNotFound;
  }
  const bool raw = invocation.has("--raw");
  if (!value->decodable()) {
    std::cerr << "dogpile: " << key << ": the backend holds bytes that are no dogpile value ("
              << value->problem() << ")\n";
    if (raw) std::cout << bytes_repr(value->bytes()) << "\n";
    return kFailed;
  }
  const std::string payload = value->payload_bytes();
  std::optional<nlohmann::json> json;
  try {
    json = dogpile::python_json::loads(payload);
  } catch (const dogpile::Error&) {
    // Bytes stored as they are (dogpile::Bytes, a string that is not UTF-8).
  }
  const double age = value->age();
  const auto expiration = region.expiration_time();
  const bool expired = expiration && age > *expiration;
  if (invocation.has("--json")) {
    nlohmann::json out = {
        {"region", region.name()},
        {"key", key},
        {"created", value->cached_time()},
        {"age", age},
        {"expired", expired},
        {"expires_in", expiration ? nlohmann::json(*expiration - age) : nlohmann::json(nullptr)}};
    if (json) {
      out["value"] = *json;
    } else {
      out["bytes"] = bytes_repr(payload);
    }
    if (raw) out["raw"] = bytes_repr(value->wire());
    std::cout << out.dump() << "\n";
    return kOk;
  }
  std::cout << (json ? dogpile::python_json::dumps(*json) : bytes_repr(payload) + " (bytes)")
            << "\n";
  std::printf("  region   %s (%s)\n", region.name().c_str(), region.backend_name().c_str());
  std::printf("  created  %s, %.3f s ago\n", utc_text(value->cached_time()).c_str(), age);
  if (!expiration) {
    std::printf("  expires  never\n");
  } else if (expired) {
    std::printf("  expires  expired %.3f s ago (expiration time %s)\n", age - *expiration,
                expiration_text(region).c_str());
  } else {
    std::printf("  expires  in %.3f s (expiration time %s)\n", *expiration - age,
                expiration_text(region).c_str());
  }
  if (raw) std::cout << "  raw      " << bytes_repr(value->wire()) << "\n";
  return kOk;
}

int set(const Invocation& invocation) {
  const std::string& key = invocation.operands[0];
  nlohmann::json json;
  try {
    json = dogpile::python_json::loads(invocation.operands[1]);
  } catch (const dogpile::Error& e) {
    throw UsageError("the value to set is not JSON: " + std::string(e.what()));
  }
  const Regions regions = load(invocation.value("--config"));
  auto& region = regions.pick(invocation.value("--region"));
  double created = dogpile::now_seconds();
  if (invocation.has("--ttl")) {
    const auto expiration = region.expiration_time();
    if (!expiration) {
      throw UsageError("--ttl: values of region " + region.name() +
                       " never expire (no expiration_time)");
    }
    const double ttl = invocation.number("--ttl", 0, 0, *expiration);
    created -= *expiration - ttl;
  }
  region.set_value(key, dogpile::make_value(std::move(json), created));
  return kOk;
}

int remove(const Invocation& invocation) {
  const Regions regions = load(invocation.value("--config"));
  auto& region = regions.pick(invocation.value("--region"));
  region.remove_multi(invocation.operands);
  return kOk;
}

int version(const Invocation&) {
  std::cout << "dogpile " << DOGPILE_TOOL_VERSION << " (SDK ABI " << DOGPILE_SDK_ABI_VERSION
            << ", build " << DOGPILE_BUILD_TAG << ")\n";
  return kOk;
}

}  // namespace

// Shared by the commands --------------------------------------------------------------

std::optional<std::string> Invocation::value(const std::string& option) const {
  auto it = options.find(option);
  if (it == options.end()) return std::nullopt;
  return it->second;
}

double Invocation::number(const std::string& option, double fallback, double low,
                          double high) const {
  const auto text = value(option);
  if (!text) return fallback;
  std::size_t used = 0;
  double number = 0;
  try {
    number = std::stod(*text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text->size() || !std::isfinite(number)) {
    throw UsageError(option + " takes a number, not '" + *text + "'");
  }
  if (number < low || number > high) {
    throw UsageError(option + " must be between " + dogpile::python_float_repr(low) + " and " +
                     dogpile::python_float_repr(high) + ", not " + *text);
  }
  return number;
}

Regions load(const std::optional<std::string>& config_path) {
  Regions regions;
  const dogpile::ConfigFile file =
      config_path ? dogpile::load_config_file(*config_path)
                  : dogpile::parse_json_config(kEmbeddedDemoConfig, "<embedded configs/demo.json>");
  regions.source = file.path.string();
  for (const auto& spec : dogpile::find_regions(file)) regions.order.push_back(spec.name);
  regions.by_name = dogpile::configure_regions(file);
  return regions;
}

dogpile::CacheRegion& Regions::pick(const std::optional<std::string>& name) const {
  if (name) return *selected(name).front();
  for (const auto& region_name : order) {
    auto& region = *by_name.at(region_name);
    if (region.backend()->capabilities().stores_values) return region;
  }
  throw dogpile::ConfigError(source + " has no region whose backend stores values");
}

std::vector<dogpile::CacheRegion*> Regions::selected(const std::optional<std::string>& name) const {
  std::vector<dogpile::CacheRegion*> regions;
  if (name) {
    auto it = by_name.find(*name);
    if (it == by_name.end()) {
      std::string names;
      for (const auto& known : order) names += " " + known;
      throw dogpile::ConfigError(source + " has no region " + *name + "; its regions:" + names);
    }
    regions.push_back(it->second.get());
  } else {
    for (const auto& region_name : order) regions.push_back(by_name.at(region_name).get());
  }
  return regions;
}

std::string scratch_key(const std::string& what, const std::string& suffix) {
  return what + ":" + std::to_string(::getpid()) + ":" + suffix;
}

RemoveOnExit::~RemoveOnExit() {
  constexpr std::size_t kBatch = 1000;
  try {
    for (std::size_t i = 0; i < keys.size(); i += kBatch) {
      const auto first = keys.begin() + static_cast<std::ptrdiff_t>(i);
      region.remove_multi(dogpile::Keys(
          first, first + static_cast<std::ptrdiff_t>(std::min(kBatch, keys.size() - i))));
    }
  } catch (const std::exception& e) {
    std::cerr << "dogpile: could not remove " << what << ": " << e.what() << "\n";
  }
}

}  // namespace tool

int main(int argc, char** argv) {
  using namespace tool;
  const std::vector<std::string> args(argv + 1, argv + argc);
  const Command* command = nullptr;
  try {
    bool help = false;
    Invocation invocation = parse(args, command, help);
    if (help) {
      std::cout << (command != nullptr ? command_help(*command) : usage_text());
      return kOk;
    }
    if (command == nullptr) {
      command = find_command("demo");
      invocation.command = "demo";
    }
    return command->run(invocation);
  } catch (const UsageError& e) {
    std::cerr << "dogpile: " << e.what() << "\n"
              << (command != nullptr ? command_help(*command) : usage_text());
    return kUsage;
  } catch (const std::exception& e) {
    std::cerr << "dogpile: " << e.what() << "\n";
  } catch (...) {
    std::cerr << "dogpile: failed with an exception that is not a std::exception\n";
  }
  return kFailed;
}
