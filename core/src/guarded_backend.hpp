// What a region calls: its backend chain behind a proxy that turns any exception that is not
// dogpile's into a dogpile::Error naming the backend, so a plugin cannot take an application
// down with a type it cannot know. The mutexes it gives are guarded the same way.
#pragma once

#include <string>

#include "dogpile/sdk/proxy.hpp"

namespace dogpile::detail {

class GuardedBackend final : public ProxyBackend {
 public:
  explicit GuardedBackend(std::string backend) : backend_(std::move(backend)) {}

  CachedValuePtr get(std::string_view key) override;
  std::vector<CachedValuePtr> get_multi(const Keys& keys) override;
  void set(const std::string& key, CachedValuePtr value) override;
  void set_multi(const ValueMapping& mapping) override;
  void remove(std::string_view key) override;
  void remove_multi(const Keys& keys) override;
  std::unique_ptr<CacheMutex> get_mutex(std::string_view key) override;

 private:
  const std::string backend_;
};

}  // namespace dogpile::detail
