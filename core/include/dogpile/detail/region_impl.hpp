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

// `value` (not null) decoded by `decode` (null: only checked to be decodable); errors name
// `key`.
DOGPILE_API CachedValuePtr decode_for_key(CachedValuePtr value, std::string_view key,
                                          CachedValuePtr (*decode)(CachedValuePtr&&));

}  // namespace detail

namespace detail {

// Refuses, at compile time, a value type a region does not cache.
template <class T>
constexpr void check_cacheable() {
  static_assert(!detail::is_character<T>,
                "dogpile: a char, wchar_t, char8_t, char16_t or char32_t value is not cached: it "
                "could mean a character or a small integer, which JSON writes differently; "
                "cache a std::string, or an int");
}

}  // namespace detail

template <class T>
CachedValuePtr CacheRegion::make_value_with(T&& value, ValueMetadata metadata) {
  using V = stored_t<T>;
  detail::check_cacheable<V>();
  CachedValue::Encoder encoder = nullptr;
  if constexpr (HasCodec<V>) {
    encoder = [](const void* object) -> std::string {
      return Codec<V>::encode(*static_cast<const V*>(object));
    };
  }
  std::shared_ptr<const V> object;
  if constexpr (std::is_pointer_v<std::remove_cvref_t<T>>) {
    if (value == nullptr) throw ValidationError("a null C string cannot be cached");
    object = std::make_shared<const V>(value);
  } else {
    object = std::make_shared<const V>(std::forward<T>(value));
  }
  const CachedValue::Sizer sizer = [](const void* object) -> std::size_t {
    return SizeOf<V>::size(*static_cast<const V*>(object));
  };
  return std::make_shared<const CachedValue>(std::move(object), typeid(V), encoder, metadata,
                                             sizer);
}

template <class T>
CachedValuePtr CacheRegion::make_value(T&& value, double created) {
  return make_value_with(std::forward<T>(value), ValueMetadata{created, kValueVersion});
}

template <class T>
CachedValuePtr CacheRegion::decode_as(CachedValuePtr&& value) {
  detail::check_cacheable<T>();
  if (value->holds_object() && value->object_type() == typeid(T)) return std::move(value);
  if (const CachedValue* kept = value->decoded();
      kept != nullptr && kept->object_type() == typeid(T)) {
    return CachedValuePtr(std::move(value), kept);  // decoded before: shares the bytes' life
  }
  if constexpr (!HasCodec<T>) {
    if (value->holds_object()) throw_wrong_type(value->object_type(), typeid(T));
    throw_no_codec(typeid(T));
  } else {
    // An object of another type reads as its bytes would: the same answer on every backend.
    std::string encoded;
    std::string_view bytes;
    if (value->holds_object()) {
      if (!value->has_codec()) throw_wrong_type(value->object_type(), typeid(T));
      encoded = value->payload_bytes();
      bytes = encoded;
    } else {
      bytes = value->bytes();
    }
    try {
      CachedValuePtr made = make_value_with(Codec<T>::decode(bytes), value->metadata());
      if (value->holds_object()) return made;
      const CachedValue* kept = value->keep_decoded(made);
      if (kept->object_type() != typeid(T)) return made;  // kept as another type
      return CachedValuePtr(std::move(value), kept);
    } catch (const ValueTypeError& e) {
      throw_cant_read<ValueTypeError>(typeid(T), e.what());
    } catch (const CantDeserialize& e) {
      throw_cant_read<CantDeserialize>(typeid(T), e.what());
    } catch (const Error&) {
      throw;
    } catch (const nlohmann::json::type_error& e) {
      throw_cant_read<ValueTypeError>(typeid(T), e.what());
    } catch (const nlohmann::json::out_of_range& e) {
      throw_cant_read<ValueTypeError>(typeid(T), e.what());
    } catch (const std::exception&) {
      // Its message may quote the bytes: not repeated.
      throw_cant_read<CantDeserialize>(typeid(T), "its dogpile::Codec could not decode the bytes");
    }
  }
}

template <class T>
std::shared_ptr<const T> CacheRegion::value_as(CachedValuePtr value, std::string_view key) {
  if (!value) return nullptr;
  if (!value->holds_object() || value->object_type() != typeid(T)) {
    value = detail::decode_for_key(std::move(value), key, &decode_as<T>);
  }
  // Aliasing: takes over the ownership of the CachedValue, no copy of the object.
  const T* object = static_cast<const T*>(value->object().get());
  return std::shared_ptr<const T>(std::move(value), object);
}

template <class T>
std::vector<std::shared_ptr<const T>> CacheRegion::values_as(std::vector<CachedValuePtr> values,
                                                             const Keys& keys) {
  std::vector<std::shared_ptr<const T>> out;
  out.reserve(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    out.push_back(value_as<T>(std::move(values[i]), keys[i]));
  }
  return out;
}

template <class T>
std::shared_ptr<const T> CacheRegion::get(std::string_view key, const GetOptions& options) const {
  return value_as<T>(get_decoded(key, options, &decode_as<T>, &typeid(T)), key);
}

template <class T, class Reader>
bool CacheRegion::visit(std::string_view key, Reader&& reader, const GetOptions& options) const {
  auto typed = [&](const CachedValuePtr& value) {
    reader(*static_cast<const T*>(value->object().get()));
  };
  return visit_decoded(key, options, typeid(T), &decode_as<T>, ValueVisitor(typed));
}

template <class T>
std::vector<std::shared_ptr<const T>> CacheRegion::get_multi(const Keys& keys,
                                                             const GetOptions& options) const {
  return values_as<T>(get_decoded_multi(keys, options, &decode_as<T>), keys);
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
  Lookup found = lookup(key, expiration_time, &decode_as<T>, &typeid(T));
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
  return value_as<T>(regenerate(found, key, std::move(make), &decode_as<T>), key);
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
  return values_as<T>(get_or_create_values(keys, make, expiration_time, &decode_as<T>), keys);
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
