// Cached functions: dogpile.cache's cache_on_arguments and cache_multi_on_arguments
// decorators in a C++ shape, made by CacheRegion::cache_on_arguments and
// CacheRegion::cache_multi_on_arguments (region.hpp includes this header).
//
//   auto load_user = region->cache_on_arguments("myapp.users:load_user", &fetch_user);
//   User u = load_user(42);        // fetch_user(42) once, then from the cache
//   load_user.invalidate(42);      // also set(value, args...), get(args...), refresh(args...)
//
// The key is the region's function key generator applied to `name`, the namespace and the
// arguments converted by `to_str` (PythonStr: Python's str()), so it matches Python's key for
// the same name and arguments. For a member function the object is the first argument of every
// call and is not part of the key (as dogpile skips `self`).
//
// REQUIRES: the region outlives the cached function. With an async creation runner, for a
// member function, the object must stay valid until the background regeneration ends (the
// function object and the arguments are kept by the regeneration itself). A function object
// with state is one object for all calls: if it is called from several threads, it must
// be safe to call concurrently, as it would be without the cache.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "dogpile/codec.hpp"
#include "dogpile/keys.hpp"
#include "dogpile/region.hpp"
#include "dogpile/sdk/errors.hpp"
#include "dogpile/seconds.hpp"

namespace dogpile {

template <class R>
struct FunctionCacheOptions {
  // dogpile's `namespace`: keys become name|namespace|args.
  std::optional<std::string> namespace_name{};
  // Seconds or a std::chrono::duration; overrides the region's; -1: never.
  // expiration_time_fn, when set, is called on every call instead (returning 0 recomputes
  // every time).
  Seconds expiration_time{};
  std::function<Seconds()> expiration_time_fn{};
  // false: the result is returned but not stored.
  std::function<bool(const R&)> should_cache_fn{};
  // Overrides the region's function key generator for this function.
  FunctionKeyGenerator key_generator{};
  // For cache_multi_on_arguments: overrides the region's multi key generator.
  FunctionMultiKeyGenerator multi_key_generator{};
};

namespace detail {

template <class R, class Object, class... Args>
struct FunctionShape {
  using result = R;
  using object = Object;  // void for a free function or a function object
  using first_argument = std::tuple_element_t<0, std::tuple<Args..., void>>;
};

template <class F>
struct FunctionTraits : FunctionTraits<decltype(&F::operator())> {
  using object = void;  // a lambda or function object: its own object is not an argument
};
template <class R, class... A>
struct FunctionTraits<R (*)(A...)> : FunctionShape<R, void, A...> {};
template <class R, class... A>
struct FunctionTraits<R (*)(A...) noexcept> : FunctionShape<R, void, A...> {};
template <class R, class C, class... A>
struct FunctionTraits<R (C::*)(A...)> : FunctionShape<R, C, A...> {};
template <class R, class C, class... A>
struct FunctionTraits<R (C::*)(A...) const> : FunctionShape<R, const C, A...> {};
template <class R, class C, class... A>
struct FunctionTraits<R (C::*)(A...) noexcept> : FunctionShape<R, C, A...> {};
template <class R, class C, class... A>
struct FunctionTraits<R (C::*)(A...) const noexcept> : FunctionShape<R, const C, A...> {};

// The value type of a multi function's result: a sequence's element or a map's value.
template <class T>
struct MultiResult {
  using type = typename T::value_type;
};
template <MapLike T>
struct MultiResult<T> {
  using type = typename T::mapped_type;
};

// What a cached function holds, for both kinds.
template <class Fn, class ToStr, class R>
class CachedFunctionBase {
 public:
  CachedFunctionBase(CacheRegion& region, std::string name, Fn fn, FunctionCacheOptions<R> options,
                     ToStr to_str)
      : region_(&region),
        name_(std::move(name)),
        fn_(std::make_shared<Fn>(std::move(fn))),
        options_(std::move(options)),
        to_str_(std::move(to_str)) {}

  const Fn& original() const noexcept { return *fn_; }

 protected:
  std::optional<double> expiration() const {
    if (options_.expiration_time_fn) return options_.expiration_time_fn();
    return options_.expiration_time;
  }

  CacheRegion* region_;
  std::string name_;
  // Shared with creators an async runner keeps: the one function object every call uses, so
  // a function object with state keeps it from call to call.
  std::shared_ptr<Fn> fn_;
  FunctionCacheOptions<R> options_;
  ToStr to_str_;
};

}  // namespace detail

template <class Fn, class ToStr>
class CachedFunction
    : public detail::CachedFunctionBase<Fn, ToStr,
                                        stored_t<typename detail::FunctionTraits<Fn>::result>> {
 public:
  using traits = detail::FunctionTraits<Fn>;
  using result_type = stored_t<typename traits::result>;
  static constexpr bool is_member = !std::is_void_v<typename traits::object>;
  static_assert(!std::is_void_v<result_type>, "a cached function must return a value");

  using detail::CachedFunctionBase<Fn, ToStr, result_type>::CachedFunctionBase;

  // The function's result for `args`: cached, or computed under the dogpile lock.
  template <class... A>
  result_type operator()(A&&... args) {
    return *shared(std::forward<A>(args)...);
  }

  // The same without copying the cached object.
  template <class... A>
  std::shared_ptr<const result_type> shared(A&&... args) {
    const std::string key = this->key(args...);
    return this->region_->template get_or_create_made<result_type>(
        key, [&] { return creator(std::forward<A>(args)...); }, this->expiration(),
        this->options_.should_cache_fn);
  }

  // The cached value for `args`, or null (a miss) without calling the function.
  template <class... A>
  std::shared_ptr<const result_type> get(const A&... args) const {
    return this->region_->template get<result_type>(key(args...),
                                                    {.expiration_time = this->expiration()});
  }

  // Stores `value` as the result for `args`.
  template <class... A>
  void set(result_type value, const A&... args) {
    this->region_->set(key(args...), std::move(value));
  }

  template <class... A>
  void invalidate(const A&... args) {
    this->region_->remove(key(args...));
  }

  // Calls the function, stores and returns its result, whatever is cached.
  template <class... A>
  result_type refresh(A&&... args) {
    std::string key = this->key(args...);
    result_type value = std::invoke(*this->fn_, std::forward<A>(args)...);
    this->region_->set(key, value);
    return value;
  }

  // The cache key of a call with `args` (for a member function, the object comes first and is
  // not part of the key).
  template <class... A>
  std::string key(const A&... args) const {
    if constexpr (is_member) {
      return key_without_object(args...);
    } else {
      return key_of({this->to_str_(args)...});
    }
  }

 private:
  template <class Object, class... Rest>
  std::string key_without_object(const Object&, const Rest&... rest) const {
    return key_of({this->to_str_(rest)...});
  }

  std::string key_of(const std::vector<std::string>& arguments) const {
    if (this->options_.key_generator)
      return this->options_.key_generator(this->name_, this->options_.namespace_name, arguments);
    return this->region_->function_key_generator()(this->name_, this->options_.namespace_name,
                                                   arguments);
  }

  // A creator owning copies of the arguments (and, for a member, the object's address), so it
  // stays valid if an async runner calls it later. Made only when a value has to be created.
  template <class... A>
  auto creator(A&&... args) const {
    if constexpr (is_member) {
      return member_creator(std::forward<A>(args)...);
    } else {
      return [fn = this->fn_, saved = std::make_tuple(std::decay_t<A>(std::forward<A>(args))...)] {
        return std::apply([&fn](const auto&... a) { return std::invoke(*fn, a...); }, saved);
      };
    }
  }

  template <class Object, class... Rest>
  auto member_creator(Object& object, Rest&&... rest) const {
    return [fn = this->fn_, target = std::addressof(object),
            saved = std::make_tuple(std::decay_t<Rest>(std::forward<Rest>(rest))...)] {
      return std::apply([&](const auto&... a) { return std::invoke(*fn, *target, a...); }, saved);
    };
  }
};

// fn takes a sequence of arguments (const std::vector<A>&) and returns either a sequence of
// results aligned with it, or (the asdict form) a map from argument to result that may leave
// arguments out: those are neither cached nor returned.
template <class Fn, class ToStr>
class CachedMultiFunction
    : public detail::CachedFunctionBase<Fn, ToStr,
                                        typename detail::MultiResult<std::remove_cvref_t<
                                            typename detail::FunctionTraits<Fn>::result>>::type> {
 public:
  using traits = detail::FunctionTraits<Fn>;
  using arguments_type = std::remove_cvref_t<typename traits::first_argument>;
  using argument_type = typename arguments_type::value_type;
  using fn_result = std::remove_cvref_t<typename traits::result>;
  static constexpr bool asdict = detail::MapLike<fn_result>;
  using result_type = typename detail::MultiResult<fn_result>::type;
  // What a call returns: a vector aligned with the arguments, or the map.
  using call_result = std::conditional_t<asdict, fn_result, std::vector<result_type>>;

  using detail::CachedFunctionBase<Fn, ToStr, result_type>::CachedFunctionBase;

  // Only the arguments whose values are missing or expired are passed to the function, in
  // sorted cache-key order, in one call.
  call_result operator()(const std::vector<argument_type>& arguments) {
    const std::vector<std::string> cache_keys = keys(arguments);
    // Owned by the creator, which may run after this call returns (a timeout, an eager
    // refresh).
    auto argument_of = std::make_shared<std::map<std::string, argument_type>>();
    for (std::size_t i = 0; i < arguments.size(); ++i) {
      argument_of->emplace(cache_keys[i], arguments[i]);
    }
    auto creator = [argument_of, fn = this->fn_](const Keys& missing) {
      std::vector<argument_type> wanted;
      wanted.reserve(missing.size());
      for (const auto& key : missing) wanted.push_back(argument_of->at(key));
      fn_result made = std::invoke(*fn, wanted);
      if constexpr (asdict) {
        // Arguments the function left out are neither cached nor returned.
        std::vector<std::optional<result_type>> aligned;
        aligned.reserve(wanted.size());
        for (const auto& argument : wanted) {
          auto it = made.find(argument);
          aligned.push_back(it == made.end() ? std::nullopt
                                             : std::optional<result_type>(std::move(it->second)));
        }
        return aligned;
      } else {
        return made;
      }
    };
    auto values = this->region_->get_or_create_multi(cache_keys, creator, this->expiration(),
                                                     this->options_.should_cache_fn);
    call_result out;
    for (std::size_t i = 0; i < arguments.size(); ++i) {
      if constexpr (asdict) {
        if (values[i]) out.emplace(arguments[i], *values[i]);
      } else {
        out.push_back(*values[i]);
      }
    }
    return out;
  }

  // Cached values for `arguments`, aligned, null where missing; the function is not called.
  std::vector<std::shared_ptr<const result_type>> get(
      const std::vector<argument_type>& arguments) const {
    return this->region_->template get_multi<result_type>(keys(arguments),
                                                          {.expiration_time = this->expiration()});
  }

  void set(const std::map<argument_type, result_type>& mapping) {
    std::vector<argument_type> arguments;
    for (const auto& [argument, value] : mapping) arguments.push_back(argument);
    const auto cache_keys = keys(arguments);
    std::vector<std::pair<std::string, result_type>> values;
    std::size_t i = 0;
    for (const auto& [argument, value] : mapping) values.emplace_back(cache_keys[i++], value);
    this->region_->set_multi(values);
  }

  void invalidate(const std::vector<argument_type>& arguments) {
    this->region_->remove_multi(keys(arguments));
  }

  // Calls the function for all `arguments`, stores and returns its results.
  call_result refresh(const std::vector<argument_type>& arguments) {
    fn_result made = std::invoke(*this->fn_, arguments);
    if constexpr (asdict) {
      std::map<argument_type, result_type> mapping(made.begin(), made.end());
      set(mapping);
      return made;
    } else {
      std::map<argument_type, result_type> mapping;
      for (std::size_t i = 0; i < arguments.size() && i < std::size(made); ++i) {
        mapping.emplace(arguments[i], made[i]);
      }
      set(mapping);
      return call_result(made.begin(), made.end());
    }
  }

  std::vector<std::string> keys(const std::vector<argument_type>& arguments) const {
    std::vector<std::string> texts;
    texts.reserve(arguments.size());
    for (const auto& argument : arguments) texts.push_back(this->to_str_(argument));
    const FunctionMultiKeyGenerator& generator =
        this->options_.multi_key_generator ? this->options_.multi_key_generator
                                           : this->region_->function_multi_key_generator();
    std::vector<std::string> out = generator(this->name_, this->options_.namespace_name, texts);
    if (out.size() != arguments.size()) {
      throw ValidationError("the multi key generator of cached function '" + this->name_ +
                            "' returned " + std::to_string(out.size()) + " keys for " +
                            std::to_string(arguments.size()) + " arguments");
    }
    return out;
  }
};

template <class Fn, class ToStr>
CachedFunction<std::decay_t<Fn>, ToStr> CacheRegion::cache_on_arguments(
    std::string name, Fn&& fn,
    FunctionCacheOptions<typename CachedFunction<std::decay_t<Fn>, ToStr>::result_type> options,
    ToStr to_str) {
  return {*this, std::move(name), std::forward<Fn>(fn), std::move(options), std::move(to_str)};
}

template <class Fn, class ToStr>
CachedMultiFunction<std::decay_t<Fn>, ToStr> CacheRegion::cache_multi_on_arguments(
    std::string name, Fn&& fn,
    FunctionCacheOptions<typename CachedMultiFunction<std::decay_t<Fn>, ToStr>::result_type>
        options,
    ToStr to_str) {
  return {*this, std::move(name), std::forward<Fn>(fn), std::move(options), std::move(to_str)};
}

}  // namespace dogpile
