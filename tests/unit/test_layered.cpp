// dogpile.cache.layered's logic (plugins/backends/layered/layered.hpp compiled in): several
// "processes" (LayeredBackend instances, each with an L1 of its own) share an L2 and an
// in-process broadcast the test drives, with a manual clock. The plugin itself, made from
// config, is checked at the end; tests/integration/test_redis.cpp runs it on a real Redis
// in several processes.
#define BOOST_TEST_MODULE layered
#include <boost/test/unit_test.hpp>
#include <dogpile/dogpile.hpp>
#include <list>
#include <mutex>

#include "../../plugins/backends/layered/layered.hpp"
#include "helpers.hpp"

using dogpile::CachedValuePtr;
using dogpile::CacheRegion;
using dogpile::layered::LayeredBackend;

namespace {

// Pub/sub in one process: publish() delivers at once, on the caller's thread, unless the
// broadcast is "disconnected" (then messages are lost).
class LocalBroadcast final : public dogpile::Broadcast {
 public:
  void publish(std::string_view message) override {
    std::lock_guard guard(mutex_);
    ++published;
    if (!listening_) return;
    for (auto& listener : listeners_) listener.on_message(message);
  }
  std::unique_ptr<Subscription> subscribe(Listener listener) override {
    std::lock_guard guard(mutex_);
    auto it = listeners_.insert(listeners_.end(), std::move(listener));
    if (listening_) it->on_state(true);
    return std::make_unique<Handle>(*this, it);
  }
  bool listening() const override { return listening_; }

  void set_listening(bool listening) {
    std::lock_guard guard(mutex_);
    listening_ = listening;
    for (auto& listener : listeners_) listener.on_state(listening);
  }
  // A message from a process that is not in the test.
  void inject(std::string_view message) {
    std::lock_guard guard(mutex_);
    for (auto& listener : listeners_) listener.on_message(message);
  }
  int published = 0;

 private:
  class Handle final : public Subscription {
   public:
    Handle(LocalBroadcast& owner, std::list<Listener>::iterator it) : owner_(owner), it_(it) {}
    ~Handle() override {
      std::lock_guard guard(owner_.mutex_);
      owner_.listeners_.erase(it_);
    }

   private:
    LocalBroadcast& owner_;
    std::list<Listener>::iterator it_;
  };
  std::recursive_mutex mutex_;  // a listener may publish (a set inside a message)
  std::list<Listener> listeners_;
  std::atomic<bool> listening_{true};
};

// An L2 that calls `during_get` in the middle of each get: what another process does while
// this one waits for the server's answer.
class SlowL2 final : public dogpile::ObjectBackend {
 public:
  explicit SlowL2(std::shared_ptr<dogpile::CacheBackend> inner) : inner_(std::move(inner)) {}
  CachedValuePtr get(std::string_view key) override {
    CachedValuePtr value = inner_->get(key);
    if (during_get) std::exchange(during_get, nullptr)();
    return value;
  }
  void set(const std::string& key, CachedValuePtr value) override { inner_->set(key, value); }
  void remove(std::string_view key) override { inner_->remove(key); }
  std::function<void()> during_get;

 private:
  std::shared_ptr<dogpile::CacheBackend> inner_;
};

std::shared_ptr<dogpile::CacheBackend> memory() {
  return dogpile::PluginLoader::instance().make_backend("dogpile.cache.memory", {});
}

struct World {
  std::shared_ptr<dogpile::CacheBackend> l2 = memory();
  std::shared_ptr<LocalBroadcast> broadcast = std::make_shared<LocalBroadcast>();
  double now = 1000;

  std::shared_ptr<LayeredBackend> process(std::shared_ptr<dogpile::CacheBackend> l2 = nullptr) {
    return std::make_shared<LayeredBackend>(
        dogpile::layered::LayeredParts{.l1 = memory(),
                                       .l2 = l2 ? l2 : this->l2,
                                       .broadcast = broadcast,
                                       .l1_expiration_time = 30,
                                       .now = [this] { return now; }});
  }
};

int as_int(const CachedValuePtr& value) {
  BOOST_TEST_REQUIRE(value != nullptr);
  return *dogpile::value_as<int>(value, "k");
}

CachedValuePtr value(int n) { return dogpile::make_value(n); }

}  // namespace

BOOST_AUTO_TEST_CASE(reads_fill_l1_which_serves_until_its_expiration_time) {
  World world;
  auto a = world.process();
  world.l2->set("k", value(1));
  BOOST_TEST(as_int(a->get("k")) == 1);
  world.l2->set("k", value(2));  // behind a's back: no message
  BOOST_TEST(as_int(a->get("k")) == 1);
  world.now += 30;
  BOOST_TEST(as_int(a->get("k")) == 1);  // at its expiration time: still served
  world.now += 0.5;
  BOOST_TEST(as_int(a->get("k")) == 2);  // past it: read from L2 again
  BOOST_TEST(a->get("missing") == nullptr);
}

BOOST_AUTO_TEST_CASE(a_write_in_one_process_drops_the_key_from_the_others_l1) {
  World world;
  auto a = world.process();
  auto b = world.process();
  auto c = world.process();
  a->set("k", value(1));
  BOOST_TEST(as_int(b->get("k")) == 1);
  BOOST_TEST(as_int(c->get("k")) == 1);
  a->set("k", value(2));
  BOOST_TEST(as_int(b->get("k")) == 2);
  BOOST_TEST(as_int(c->get("k")) == 2);
  b->remove("k");
  BOOST_TEST(a->get("k") == nullptr);
  BOOST_TEST(c->get("k") == nullptr);
  c->set_multi({{"x", value(3)}, {"y", value(4)}});
  BOOST_TEST(as_int(a->get_multi({"y", "x"}).at(0)) == 4);
  c->set_multi({{"x", value(5)}, {"y", value(6)}});
  auto both = a->get_multi({"x", "nope", "y"});
  BOOST_TEST(as_int(both.at(0)) == 5);
  BOOST_TEST(both.at(1) == nullptr);
  BOOST_TEST(as_int(both.at(2)) == 6);
  a->remove_multi({"x", "y"});
  BOOST_TEST(c->get("x") == nullptr);
  BOOST_TEST(c->get("y") == nullptr);
}

BOOST_AUTO_TEST_CASE(a_process_keeps_its_own_write_in_l1) {
  World world;
  auto a = world.process();
  a->set("k", value(1));
  BOOST_TEST(world.broadcast->published == 1);
  BOOST_TEST(a->l1()->get("k") != nullptr);  // its own message did not drop it
  world.l2->set("k", value(9));
  BOOST_TEST(as_int(a->get("k")) == 1);  // served from L1
}

BOOST_AUTO_TEST_CASE(visit_reads_l1_in_place) {
  World world;
  auto a = world.process();
  a->set("k", value(7));
  long uses = 0;
  int read = 0;
  auto reader = [&](const CachedValuePtr& found) {
    uses = found.use_count();
    read = as_int(found);
  };
  BOOST_TEST(a->visit("k", dogpile::ValueVisitor(reader)));
  BOOST_TEST(read == 7);
  BOOST_TEST(uses == 2);  // the pointer L1 holds (and L2, here the same object), not a copy
  BOOST_TEST(!a->visit("missing", dogpile::ValueVisitor(reader)));
}

BOOST_AUTO_TEST_CASE(a_fill_racing_a_write_does_not_keep_the_old_value) {
  World world;
  auto slow = std::make_shared<SlowL2>(world.l2);
  auto a = world.process(slow);
  auto b = world.process();
  world.l2->set("k", value(1));
  // a reads the old value from L2; before it fills L1, b writes a new one.
  slow->during_get = [&] { b->set("k", value(2)); };
  BOOST_TEST(as_int(a->get("k")) == 1);  // what the read returned
  BOOST_TEST(as_int(a->get("k")) == 2);  // but L1 did not keep it
}

BOOST_AUTO_TEST_CASE(without_the_subscription_l1_is_bypassed_and_dropped_when_it_returns) {
  World world;
  auto a = world.process();
  world.l2->set("k", value(1));
  BOOST_TEST(as_int(a->get("k")) == 1);
  world.broadcast->set_listening(false);
  world.l2->set("k", value(2));          // a write whose message a would have missed
  BOOST_TEST(as_int(a->get("k")) == 2);  // read from L2
  world.l2->set("k", value(3));
  BOOST_TEST(as_int(a->get("k")) == 3);  // and nothing was filled meanwhile
  world.broadcast->set_listening(true);
  BOOST_TEST(as_int(a->get("k")) == 3);  // the entry from before the loss is not served
  a->set("k", value(4));
  BOOST_TEST(a->l1()->get("k") != nullptr);  // L1 in use again
}

BOOST_AUTO_TEST_CASE(foreign_and_damaged_messages_are_ignored) {
  using dogpile::layered::parse_key_message;
  BOOST_TEST(!parse_key_message("", "me"));
  BOOST_TEST(!parse_key_message("me|k|1:a", "me"));  // ours
  BOOST_TEST((*parse_key_message("you|k|1:a3:b|c0:", "me") == dogpile::Keys{"a", "b|c", ""}));
  for (const char* bad : {"you", "you|x|1:a", "you|k|2:a", "you|k|:a", "you|k|1a",
                          "you|k|99999999999:a", "you|k|18446744073709551615:a", "you|k|1"}) {
    BOOST_TEST(!parse_key_message(bad, "me"), bad);
  }
  const std::string binary("k\0|:\xff", 5);
  BOOST_TEST((*parse_key_message(dogpile::layered::key_message("o", {binary, "x"}), "me") ==
              dogpile::Keys{binary, "x"}));
  World world;
  auto a = world.process();
  a->set("k", value(1));
  world.broadcast->inject("garbage|k|5:k");
  world.broadcast->inject(std::string("\0\xff", 2));
  BOOST_TEST(a->l1()->get("k") != nullptr);
  world.broadcast->inject(dogpile::layered::key_message("other", {"k"}));
  BOOST_TEST(a->l1()->get("k") == nullptr);
}

BOOST_AUTO_TEST_CASE(the_lock_and_the_limits_are_the_l2s) {
  World world;
  auto a = world.process();
  BOOST_TEST(a->get_mutex("k") == nullptr);  // memory's: the region's in-process lock
  BOOST_TEST(a->has_lock_timeout() == world.l2->has_lock_timeout());
  BOOST_TEST(a->capabilities().max_value_size == world.l2->capabilities().max_value_size);
}

// An in-process backend over `store` that publishes on `broadcast`, whatever the channel.
class SharedStore final : public dogpile::ProxyBackend {
 public:
  SharedStore(std::shared_ptr<dogpile::CacheBackend> store,
              std::shared_ptr<LocalBroadcast> broadcast)
      : broadcast_(std::move(broadcast)) {
    wrap(std::move(store));
  }
  std::shared_ptr<dogpile::Broadcast> broadcast(std::string_view channel) override {
    channel_asked = std::string(channel);
    return broadcast_;
  }
  std::string channel_asked;

 private:
  std::shared_ptr<LocalBroadcast> broadcast_;
};

BOOST_AUTO_TEST_CASE(bad_configuration_is_named) {
  using dogpile::ValidationError;
  // A Redis that is not there (no network involved): the L2 is made, it never answers.
  const nlohmann::json nowhere = {{"url", "unix:///nonexistent/redis.sock"}};
  auto refused = [](nlohmann::json arguments, const std::string& text) {
    auto region = dogpile::make_region("cache.layered");
    try {
      region->configure("dogpile.cache.layered",
                        {.arguments = std::move(arguments), .config_prefix = "cache.layered."});
    } catch (const dogpile::Error& e) {
      return test::message_contains(e, text);
    }
    BOOST_TEST_MESSAGE("not refused: " << text);
    return false;
  };
  BOOST_TEST(refused(nlohmann::json::object(), "cache.layered.arguments.l2_backend"));
  BOOST_TEST(refused({{"l2_backend", "dogpile.cache.memory"}},
                     "cache.layered.arguments.l2_backend is dogpile.cache.memory, which cannot "
                     "publish"));
  BOOST_TEST(refused({{"l2_backend", "dogpile.cache.layered"}}, "cannot be dogpile.cache.layered"));
  BOOST_TEST(refused({{"l2_backend", "dogpile.cache.redis"}, {"l1_expiration_time", 0}},
                     "cache.layered.arguments.l1_expiration_time must be positive"));
  BOOST_TEST(refused({{"l2_backend", "dogpile.cache.redis"}, {"l2_arguments", 5}},
                     "cache.layered.arguments.l2_arguments must be an object"));
  BOOST_TEST(refused({{"l2_backend", "dogpile.cache.redis"}, {"l2_arguments.prot", 1}},
                     "cache.layered.arguments.l2_arguments.prot"));
  BOOST_TEST(refused({{"l2_backend", "dogpile.cache.redis"}, {"l1_arguments", {{"max_size", 0}}}},
                     "cache.layered.arguments.l1_arguments.max_size"));
  BOOST_TEST(
      refused({{"l2_backend", "dogpile.cache.redis"}, {"l2_arguments", nowhere}, {"l1_size", 1}},
              "cache.layered.arguments.l1_size"));
  // A missing l2_backend is the one thing said: the arguments given are known ones.
  try {
    dogpile::make_region("cache.layered")
        ->configure("dogpile.cache.layered",
                    {.arguments = {{"channel", "c"}, {"l1_expiration_time", 5}},
                     .config_prefix = "cache.layered."});
    BOOST_FAIL("no l2_backend accepted");
  } catch (const ValidationError& e) {
    BOOST_TEST(std::string(e.what()) ==
               "missing required argument cache.layered.arguments.l2_backend");
  }
}

BOOST_AUTO_TEST_CASE(the_channel_is_named_after_the_region_its_context_names) {
  SharedStore* made = nullptr;
  dogpile::register_backend("test.recording", [&made](const dogpile::Arguments&) {
    auto store = std::make_unique<SharedStore>(memory(), std::make_shared<LocalBroadcast>());
    made = store.get();
    return store;
  });
  auto region = dogpile::make_region("in-code");
  region->configure("dogpile.cache.layered", {.arguments = {{"l2_backend", "test.recording"}}});
  BOOST_TEST_REQUIRE(made != nullptr);
  BOOST_TEST(made->channel_asked == "dogpile:in-code");
  try {
    dogpile::make_region()->configure("dogpile.cache.layered",
                                      {.arguments = {{"l2_backend", "test.recording"}}});
    BOOST_FAIL("an unnamed layered region without a channel was accepted");
  } catch (const dogpile::ValidationError& e) {
    BOOST_TEST(test::message_contains(e, "channel is required for an unnamed region"));
  }
}

// ConfigureOptions::shared_invalidation: regions standing for processes share a store and a
// broadcast, through an in-process backend.
BOOST_AUTO_TEST_SUITE(shared_invalidation)

namespace {

struct Processes {
  std::shared_ptr<dogpile::CacheBackend> store = memory();
  std::shared_ptr<LocalBroadcast> broadcast = std::make_shared<LocalBroadcast>();
  std::shared_ptr<dogpile::ManualClock> clock = std::make_shared<dogpile::ManualClock>();
  Processes() {
    dogpile::register_backend("test.shared", [this](const dogpile::Arguments&) {
      return std::make_unique<SharedStore>(store, broadcast);
    });
  }
  std::shared_ptr<CacheRegion> process() {
    auto region = dogpile::make_region({.name = "shared", .clock = clock});
    region->configure("test.shared", {.expiration_time = 600, .shared_invalidation = true});
    return region;
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(an_invalidation_in_one_process_reaches_the_others) {
  Processes world;
  auto a = world.process();
  auto b = world.process();
  a->set("k", 1);
  BOOST_TEST(*b->get<int>("k") == 1);
  world.clock->advance(1);
  a->invalidate();  // hard
  BOOST_TEST(b->get<int>("k") == nullptr);
  BOOST_TEST(b->region_invalidator().was_hard_invalidated());
  BOOST_TEST(*b->get_or_create("k", [] { return 2; }) == 2);
  world.clock->advance(1);
  b->invalidate(false);  // soft
  BOOST_TEST(a->region_invalidator().was_soft_invalidated());
  BOOST_TEST(a->get<int>("k") == nullptr);
  // A process that starts later reads the time stored.
  auto c = world.process();
  BOOST_TEST(c->region_invalidator().was_soft_invalidated());
  BOOST_TEST(c->get<int>("k") == nullptr);
}

BOOST_AUTO_TEST_CASE(a_process_that_missed_the_message_reads_it_when_it_listens_again) {
  Processes world;
  auto a = world.process();
  auto b = world.process();
  a->set("k", 1);
  world.clock->advance(1);
  world.broadcast->set_listening(false);
  a->invalidate();  // its message is lost
  BOOST_TEST(*b->get<int>("k") == 1);
  world.broadcast->set_listening(true);
  BOOST_TEST(b->get<int>("k") == nullptr);
}

BOOST_AUTO_TEST_CASE(the_latest_invalidation_wins_and_damaged_messages_are_ignored) {
  Processes world;
  auto a = world.process();
  world.clock->advance(10);
  a->invalidate();
  const double hard_at = world.clock->now();
  world.broadcast->inject("other|i|1.0");  // older: ignored
  world.broadcast->inject("other|i|nan");
  world.broadcast->inject("other|i|12abc");
  world.broadcast->inject("other|i|");
  BOOST_TEST(a->region_invalidator().is_hard_invalidated(hard_at - 0.5));
  world.broadcast->inject("other|i|-" + dogpile::python_float_repr(hard_at + 5));
  BOOST_TEST(a->region_invalidator().was_soft_invalidated());
  BOOST_TEST(a->region_invalidator().is_soft_invalidated(hard_at + 4));
}

BOOST_AUTO_TEST_CASE(shared_invalidation_needs_a_backend_that_publishes) {
  auto refused = [](const std::string& name, dogpile::ConfigureOptions options,
                    const std::string& backend, const std::string& text) {
    auto region = dogpile::make_region(name);
    try {
      region->configure(backend, std::move(options));
    } catch (const dogpile::ValidationError& e) {
      return test::message_contains(e, text);
    }
    return false;
  };
  BOOST_TEST(refused("r", {.config_prefix = "cache.r.", .shared_invalidation = true},
                     "dogpile.cache.memory", "cache.r.shared_invalidation needs a backend"));
  Processes world;
  BOOST_TEST(refused("", {.shared_invalidation = true}, "test.shared", "a region with a name"));
  BOOST_TEST(
      refused("r",
              {.region_invalidator = std::make_shared<dogpile::DefaultInvalidationStrategy>(),
               .shared_invalidation = true},
              "test.shared", "exclude each other"));
  test::TempFile ini("shared.ini",
                     "[cache.s]\nbackend = test.shared\nshared_invalidation = yes please\n");
  try {
    dogpile::load_regions(ini.path);
    BOOST_FAIL("a shared_invalidation that is no boolean was accepted");
  } catch (const dogpile::ValidationError& e) {
    BOOST_TEST(test::message_contains(
        e, "shared_invalidation must be true or false, not \"yes please\" (region cache.s in"));
  }
  test::TempFile good("good.ini", "[cache.s]\nbackend = test.shared\nshared_invalidation = true\n");
  auto regions = dogpile::load_regions(good.path);
  regions.at("cache.s")->set("k", 1);
  world.clock->advance(1);
  regions.at("cache.s")->invalidate();
  BOOST_TEST(world.broadcast->published == 1);
}

BOOST_AUTO_TEST_SUITE_END()
