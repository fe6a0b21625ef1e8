#include "shared_invalidation.hpp"

#include <atomic>
#include <charconv>
#include <cmath>

#include "dogpile/region.hpp"
#include "dogpile/sdk/errors.hpp"
#include "dogpile/sdk/log.hpp"

namespace dogpile::detail {

namespace {

// The last invalidation as one signed time (+t hard, -t soft, 0 none), as
// DefaultInvalidationStrategy keeps it; here the latest of every process's wins. It is
// stored in the backend (for processes that start or reconnect later) and published as
// "<origin>|i|<stamp>" on the region's channel, which dogpile.cache.layered shares.
class SharedInvalidation final : public RegionInvalidationStrategy {
 public:
  SharedInvalidation(std::shared_ptr<CacheBackend> backend, std::shared_ptr<Broadcast> broadcast,
                     std::string region, std::shared_ptr<const Clock> clock)
      : backend_(std::move(backend)),
        broadcast_(std::move(broadcast)),
        key_("dogpile:" + region + ":invalidated"),
        region_(std::move(region)),
        clock_(std::move(clock)),
        origin_(random_hex(16)) {
    subscription_ = broadcast_->subscribe(
        {.on_message = [this](std::string_view message) { on_message(message); },
         .on_state =
             [this](bool listening) {
               if (listening) read_stored();  // what was decided while this process did not hear
             }});
    read_stored();
  }
  ~SharedInvalidation() override { subscription_.reset(); }

  void invalidate(bool hard) override {
    const double now = clock_->now();
    const double stamp = hard ? now : -now;
    apply(stamp);
    backend_->set(key_, dogpile::make_value(stamp, now));
    broadcast_->publish(origin_ + "|i|" + python_float_repr(stamp));
  }
  bool is_hard_invalidated(double timestamp) const override {
    const double stamp = stamp_.load(std::memory_order_acquire);
    return stamp > 0.0 && timestamp < stamp;
  }
  bool is_soft_invalidated(double timestamp) const override {
    const double stamp = stamp_.load(std::memory_order_acquire);
    return stamp < 0.0 && timestamp < -stamp;
  }
  bool is_invalidated(double timestamp) const override {
    const double stamp = stamp_.load(std::memory_order_acquire);
    return stamp != 0.0 && timestamp < std::fabs(stamp);
  }
  bool was_soft_invalidated() const override { return stamp_.load() < 0.0; }
  bool was_hard_invalidated() const override { return stamp_.load() > 0.0; }

 private:
  // Keeps `stamp` if it is later than the one kept.
  void apply(double stamp) {
    if (!std::isfinite(stamp)) return;
    double kept = stamp_.load();
    while (std::fabs(stamp) > std::fabs(kept) && !stamp_.compare_exchange_weak(kept, stamp)) {
    }
  }

  void on_message(std::string_view message) {
    const auto bar = message.find('|');
    if (bar == std::string_view::npos || message.substr(0, bar) == origin_) return;
    std::string_view rest = message.substr(bar);
    if (!rest.starts_with("|i|")) return;  // another kind (a layered backend's keys)
    rest.remove_prefix(3);
    double stamp = 0;
    auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), stamp);
    if (ec == std::errc() && end == rest.data() + rest.size()) apply(stamp);
  }

  void read_stored() {
    try {
      if (auto stored = dogpile::value_as<double>(backend_->get(key_), key_)) apply(*stored);
    } catch (const Error& e) {
      log(LogLevel::warning, "region",
          "region '" + region_ + "': the shared invalidation time could not be read: " + e.what());
    }
  }

  std::shared_ptr<CacheBackend> backend_;
  std::shared_ptr<Broadcast> broadcast_;
  const std::string key_;
  const std::string region_;
  std::shared_ptr<const Clock> clock_;
  const std::string origin_;
  std::atomic<double> stamp_{0.0};
  std::unique_ptr<Broadcast::Subscription> subscription_;
};

}  // namespace

std::shared_ptr<RegionInvalidationStrategy> make_shared_invalidation(
    std::shared_ptr<CacheBackend> backend, const std::string& region,
    std::shared_ptr<const Clock> clock, const std::string& config_key) {
  if (region.empty()) {
    throw ValidationError(config_key + " needs a region with a name, which names its channel");
  }
  auto broadcast = backend->broadcast("dogpile:" + region);
  if (!broadcast) {
    throw ValidationError(config_key +
                          " needs a backend that can publish to the region's other processes "
                          "(dogpile.cache.redis, dogpile.cache.layered)");
  }
  return std::make_shared<SharedInvalidation>(std::move(backend), std::move(broadcast), region,
                                              std::move(clock));
}

}  // namespace dogpile::detail
