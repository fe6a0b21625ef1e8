#include <chrono>
#include <dogpile/sdk/sdk.hpp>

class SlowCalls final : public dogpile::InterceptingProxy {
 public:
  explicit SlowCalls(const dogpile::Arguments& arguments)
      : threshold_ms_(arguments.get("threshold_ms", 10.0)) {}

 protected:
  void intercept(dogpile::ProxiedCall& call) override {
    const auto start = std::chrono::steady_clock::now();
    call.proceed();
    const std::chrono::duration<double, std::milli> took =
        std::chrono::steady_clock::now() - start;
    if (took.count() > threshold_ms_) {
      dogpile::log(dogpile::LogLevel::warning, "myapp.slow_calls",
                   std::string(dogpile::operation_name(call.operation())) + " of " +
                       std::to_string(call.size()) + " keys took " +
                       std::to_string(took.count()) + " ms");
    }
  }

 private:
  const double threshold_ms_;
};

DOGPILE_PROXY_PLUGIN(slow_calls, "myapp.slow_calls", "1.0.0", "Logs slow calls", SlowCalls);
