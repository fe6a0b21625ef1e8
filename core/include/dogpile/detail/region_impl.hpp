// The region's template definitions and the private types they use; included at the end of
// region.hpp. Nothing here is part of the public API.
#pragma once

#include <atomic>
#include <typeinfo>
#include <utility>

#include "dogpile/region.hpp"

namespace dogpile {

namespace detail {

// A call's hold on the region's configuration: while it lives, the configuration it read is
// not freed, even if the region is configured again meanwhile. Move-only.
class DOGPILE_API StatePin {
 public:
  StatePin() noexcept = default;
  StatePin(StatePin&& other) noexcept
      : keeper_(std::exchange(other.keeper_, nullptr)), count_(other.count_) {}
  StatePin& operator=(StatePin&&) = delete;
  ~StatePin() {
    if (keeper_ != nullptr) release();
  }

 private:
  friend class StateKeeper;
  void release() noexcept;

  StateKeeper* keeper_ = nullptr;
  std::atomic<long>* count_ = nullptr;  // the counter this call raised
};

// A value the creator made, and whether should_cache_fn lets it be stored.
struct Created {
  CachedValuePtr value;
  bool cache = true;
};

// The first read of get_or_create, before any lock. Owns everything it refers to except the
// state, which the region keeps while the call runs.
struct Lookup {
  StatePin pin;
  const RegionState* state = nullptr;
  // The backend's key when the region mangles keys; empty optional: the caller's key as is.
  std::optional<std::string> mangled;
  std::optional<double> expiration;  // in effect for this call; nullopt: never
  CachedValuePtr value;              // decoded; null when there is none to serve
  double created = 0;                // its creation time as the lock sees it
  bool fresh = false;                // value is there and neither expired nor invalidated
  bool refresh = false;  // value is fresh but due for an eager refresh (then fresh is false)
};

// What a config file sets for a region beyond ConfigureOptions; empty: the region's own.
struct RegionSettings {
  KeyMangler key_mangler;
  AsyncCreationRunner async_creation_runner;
};

}  // namespace detail

template <class T>
std::shared_ptr<const T> CacheRegion::get(std::string_view key, const GetOptions& options) const {
  return value_as<T>(get_decoded(key, options, &detail::decode_as<T>, &typeid(T)), key);
}

template <class T, class Reader>
bool CacheRegion::visit(std::string_view key, Reader&& reader, const GetOptions& options) const {
  auto typed = [&](const CachedValuePtr& value) {
    reader(*static_cast<const T*>(value->object().get()));
  };
  return visit_decoded(key, options, typeid(T), &detail::decode_as<T>, ValueVisitor(typed));
}

template <class T>
std::vector<std::shared_ptr<const T>> CacheRegion::get_multi(const Keys& keys,
                                                             const GetOptions& options) const {
  return detail::values_as<T>(get_decoded_multi(keys, options, &detail::decode_as<T>), keys);
}

template <class T>
void CacheRegion::set(std::string_view key, T&& value) {
  set_value(key, make_value(std::forward<T>(value), clock_->now()));
}

template <class Creator, class T>
std::shared_ptr<const T> CacheRegion::get_or_create(
    std::string_view key, Creator&& creator, Seconds expiration_time,
    std::type_identity_t<std::function<bool(const T&)>> should_cache_fn) {
  return get_or_create_made<T>(
      key, [&creator] { return std::decay_t<Creator>(std::forward<Creator>(creator)); },
      expiration_time, should_cache_fn);
}

template <class T, class MakeCreator>
std::shared_ptr<const T> CacheRegion::get_or_create_made(
    std::string_view key, MakeCreator&& make_creator, std::optional<double> expiration_time,
    const std::function<bool(const T&)>& should_cache_fn) {
  Lookup found = lookup(key, expiration_time, &detail::decode_as<T>, &typeid(T));
  if (found.fresh) return value_as<T>(std::move(found.value), key);
  // Slow path: the creator is shared so a background runner can keep it past this call.
  auto shared = std::make_shared<std::invoke_result_t<MakeCreator&>>(make_creator());
  ValueMaker make = [shared, should = should_cache_fn, clock = clock_]() -> Created {
    // Created when the creator returns, as dogpile.cache: a slow creator's value is not born
    // old.
    decltype(auto) made = std::invoke(*shared);
    CachedValuePtr value = make_value(std::forward<decltype(made)>(made), clock->now());
    const bool cache = !should || should(*static_cast<const T*>(value->object().get()));
    return {std::move(value), cache};
  };
  return value_as<T>(regenerate(found, key, std::move(make), &detail::decode_as<T>), key);
}

template <class Creator, class T>
std::vector<std::shared_ptr<const T>> CacheRegion::get_or_create_multi(
    const Keys& keys, Creator&& creator, Seconds expiration_time,
    std::type_identity_t<std::function<bool(const T&)>> should_cache_fn) {
  // Owns the creator: with a timeout or an eager refresh it may run after this call returns.
  auto shared = std::make_shared<std::decay_t<Creator>>(std::forward<Creator>(creator));
  MultiValueMaker make = [shared, should_cache_fn, clock = clock_](const Keys& to_create) {
    auto made = std::invoke(*shared, to_create);
    if (std::size(made) > to_create.size()) {
      throw ValidationError("get_or_create_multi: the creator returned " +
                            std::to_string(std::size(made)) + " values for " +
                            std::to_string(to_create.size()) + " keys");
    }
    const double created = clock->now();
    std::vector<Created> out;
    out.reserve(to_create.size());
    for (auto& item : made) {
      CachedValuePtr value;
      if constexpr (detail::is_optional<std::remove_cvref_t<decltype(item)>>) {
        if (!item) {
          out.push_back({nullptr, false});
          continue;
        }
        value = make_value(std::move(*item), created);
      } else {
        value = make_value(std::move(item), created);
      }
      const bool cache =
          !should_cache_fn || should_cache_fn(*static_cast<const T*>(value->object().get()));
      out.push_back({std::move(value), cache});
    }
    return out;
  };
  return detail::values_as<T>(
      get_or_create_values(keys, make, expiration_time, &detail::decode_as<T>), keys);
}

template <class Mapping>
void CacheRegion::set_multi(const Mapping& mapping) {
  ValueMapping values;
  // One creation time for the whole batch, as dogpile.cache.
  const double created = clock_->now();
  for (const auto& [key, value] : mapping) {
    values.emplace_back(std::string(key), make_value(value, created));
  }
  set_value_multi(values);
}

}  // namespace dogpile
