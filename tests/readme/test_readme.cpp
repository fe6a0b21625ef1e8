// The README's C++ excerpts, each compiled and run in a test case of its own. The lines between
// a region's opening and closing `readme:` comments are the README block marked `<!-- example:
// tests/readme/test_readme.cpp#NAME -->`, character for character (tests/readme/check_readme.py
// checks it, and copies them into the README with --update); what surrounds them gives the
// excerpt what it assumes and checks what it claims.
#define BOOST_TEST_MODULE readme
#include <boost/test/unit_test.hpp>
#include <dogpile/dogpile.hpp>
#include <map>
#include <mutex>

#include "../integration/servers.hpp"

// The cached functions' (outside the anonymous namespace: the excerpt declares fetch_user).
struct User {
  std::string name;
};

int fetch_user_calls = 0;
User fetch_user(int id) {
  ++fetch_user_calls;
  return User{"user " + std::to_string(id)};
}

std::vector<User> fetch_users(const std::vector<int>& ids) {
  std::vector<User> users;
  for (int id : ids) users.push_back(fetch_user(id));
  return users;
}

namespace {

struct Repository {
  std::string find(int id) { return "row " + std::to_string(id); }
};

// The in-process backend and proxy the "register_backend" excerpt registers.
class MyBackend final : public dogpile::ObjectBackend {
 public:
  explicit MyBackend(const dogpile::Arguments&) {}
  dogpile::CachedValuePtr get(std::string_view key) override {
    std::lock_guard guard(mutex_);
    auto it = values_.find(key);
    return it == values_.end() ? nullptr : it->second;
  }
  void set(const std::string& key, dogpile::CachedValuePtr value) override {
    std::lock_guard guard(mutex_);
    values_.insert_or_assign(key, std::move(value));
  }
  void remove(std::string_view key) override {
    std::lock_guard guard(mutex_);
    if (auto it = values_.find(key); it != values_.end()) values_.erase(it);
  }

 private:
  std::mutex mutex_;
  std::map<std::string, dogpile::CachedValuePtr, std::less<>> values_;
};

int audited_calls = 0;
class AuditProxy final : public dogpile::InterceptingProxy {
 protected:
  void intercept(dogpile::ProxiedCall& call) override {
    ++audited_calls;
    call.proceed();
  }
};

struct Image {
  std::vector<std::uint32_t> pixels;  // RGBA
};

}  // namespace

// [readme:size-of]
template <> struct dogpile::SizeOf<Image> {
  static std::size_t size(const Image& image) { return image.pixels.size() * 4; }
};
// [/readme:size-of]

BOOST_AUTO_TEST_CASE(regions_from_a_file) {
  // [readme:load-regions]
  auto regions = dogpile::load_regions("configs/example.json");  // name -> region
  auto& local = *regions.at("cache.local");
  // [/readme:load-regions]
  local.set("k", 1);
  BOOST_TEST(*local.get<int>("k") == 1);
  BOOST_TEST(local.backend_name() == "dogpile.cache.memory");
}

BOOST_AUTO_TEST_CASE(a_manual_clock) {
  // [readme:manual-clock]
  auto clock = std::make_shared<dogpile::ManualClock>();
  auto region = dogpile::make_region({.name = "t", .clock = clock});
  region->configure("dogpile.cache.memory", {.expiration_time = 60});
  region->set("k", 1);
  clock->advance(61);  // region->get<int>("k") is now a miss
  // [/readme:manual-clock]
  BOOST_TEST(region->get<int>("k") == nullptr);
}

BOOST_AUTO_TEST_CASE(cached_functions) {
  auto region = dogpile::make_region("functions");
  region->configure("dogpile.cache.memory");
  Repository repository;
  // [readme:cached-functions]
  User fetch_user(int id);  // the expensive function

  auto load_user = region->cache_on_arguments("myapp.users:fetch_user", &fetch_user,
                                              {.namespace_name = "v2", .expiration_time = 600});
  User u = load_user(42);  // key "myapp.users:fetch_user|v2|42": fetch_user(42) once, then cached
  load_user.get(42);       // shared_ptr to the cached value, null on a miss (no call)
  load_user.set(User{"Ann"}, 42);  // store a value for these arguments
  load_user.refresh(42);           // call fetch_user(42), store and return the result
  load_user.invalidate(42);        // remove it
  load_user.original();            // fetch_user itself

  // Member functions: the object comes first and is not part of the key.
  auto find = region->cache_on_arguments("myapp:Repository.find", &Repository::find);
  find(repository, 42);

  // Several keys in one call: only the missing ones reach the function, in sorted key order.
  auto load_users = region->cache_multi_on_arguments(
      "myapp.users:fetch_users", [](const std::vector<int>& ids) { return fetch_users(ids); });
  std::vector<User> users = load_users({1, 2, 3});  // fetch_users returns a vector aligned with
                                                    // ids, or a std::map<int, User> that may
                                                    // leave ids out
  // [/readme:cached-functions]
  BOOST_TEST(u.name == "user 42");
  BOOST_TEST(load_user.key(42) == "myapp.users:fetch_user|v2|42");
  BOOST_TEST(load_user.get(42) == nullptr);  // invalidated
  BOOST_TEST(fetch_user_calls == 2 + 3);     // load_user(42), refresh(42), then 1, 2, 3
  BOOST_TEST(*region->get<std::string>("myapp:Repository.find|42") == "row 42");
  BOOST_TEST(users.size() == 3);
  BOOST_TEST(load_users({3, 2}).at(0).name == "user 3");
  BOOST_TEST(fetch_user_calls == 5);
}

BOOST_AUTO_TEST_CASE(resilience_options) {
  test::RedisServer server;
  const std::string redis_url = server.url();
  auto region = dogpile::make_region("resilient");
  // [readme:resilience]
  region->configure("dogpile.cache.redis",
                    {.expiration_time = 300,
                     .arguments = {{"url", redis_url}},  // "redis://127.0.0.1:6379/0"
                     .resilience = {.backend_errors = dogpile::BackendErrors::miss,
                                    .fail_safe = true,
                                    .hard_timeout = std::chrono::seconds(2),
                                    .expiration_jitter = 0.1}});
  // [/readme:resilience]
  BOOST_TEST(*region->get_or_create("k", [] { return 7; }) == 7);
  server.stop();
  // Without its server, a miss computes the value without the cache instead of throwing.
  BOOST_TEST(*region->get_or_create("other", [] { return 8; }) == 8);
}

BOOST_AUTO_TEST_CASE(reading_in_place) {
  auto region = dogpile::make_region("visit");
  region->configure("dogpile.cache.memory");
  region->set("user:1", std::string("Ann"));
  // [readme:visit]
  std::size_t length = 0;
  bool found = region->visit<std::string>("user:1", [&](const std::string& name) {
    length = name.size();  // no copy, no reference count; keep no pointer to `name`
  });
  // [/readme:visit]
  BOOST_TEST(found);
  BOOST_TEST(length == 3U);
}

BOOST_AUTO_TEST_CASE(a_size_of_specialization_bounds_bytes) {
  auto region = dogpile::make_region("images");
  region->configure("dogpile.cache.memory", {.arguments = {{"max_bytes", 4000}}});
  for (int i = 0; i < 10; ++i) {
    region->set("image:" + std::to_string(i), Image{std::vector<std::uint32_t>(500)});
  }
  int held = 0;
  for (int i = 0; i < 10; ++i) held += region->get<Image>("image:" + std::to_string(i)) != nullptr;
  BOOST_TEST(held <= 2);  // 2000 bytes each, as SizeOf<Image> counts them, within 4000
  BOOST_TEST(held >= 1);
}

BOOST_AUTO_TEST_CASE(in_process_backends_and_proxies) {
  auto region = dogpile::make_region("in-process");
  // [readme:register]
  dogpile::register_backend("myapp.backend", [](const dogpile::Arguments& arguments) {
    return std::make_unique<MyBackend>(arguments);  // arguments it does not read are errors
  });
  dogpile::register_proxy("myapp.audit", [](const dogpile::Arguments&) {
    return std::make_unique<AuditProxy>();
  });
  region->configure("myapp.backend", {.wrap = {"myapp.audit"}});
  // [/readme:register]
  region->set("k", 1);
  BOOST_TEST(*region->get<int>("k") == 1);
  BOOST_TEST(audited_calls == 2);
}
