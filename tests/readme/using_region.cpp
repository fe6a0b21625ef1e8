#include <dogpile/dogpile.hpp>
#include <iostream>
#include <map>
#include <string>
#include <vector>

std::string load_profile(int id) { return "profile of user " + std::to_string(id); }  // slow

std::vector<std::string> load_many(const dogpile::Keys& keys) {  // one value per key, in order
  std::vector<std::string> values;
  for (const auto& key : keys) values.push_back("value of " + key);
  return values;
}

int main() {
  auto region = dogpile::make_region("local");
  region->configure("dogpile.cache.memory", {.expiration_time = 300});

  region->set("answer", 42);
  if (auto v = region->get<int>("answer")) std::cout << *v << '\n';  // null on a miss

  region->set_multi(std::map<std::string, std::string>{{"a", "1"}, {"b", "2"}});
  auto values = region->get_multi<std::string>({"a", "missing", "b"});  // aligned with the keys
  if (auto meta = region->get_value_metadata("b")) {  // null on a miss
    std::cout << "b was cached " << meta->age() << " s ago\n";
  }
  region->remove("a");
  region->invalidate();       // hard: values created before now are misses
  region->invalidate(false);  // soft: get() misses too; get_or_create serves them while one
                              // caller regenerates

  // The dogpile lock: the creator runs once per key at a time; others get the stale value or
  // wait.
  auto profile = region->get_or_create("user:42", [] { return load_profile(42); });
  std::cout << *profile << '\n';
  auto many = region->get_or_create_multi({"a", "b"}, [](const dogpile::Keys& missing) {
    return load_many(missing);  // called once, with the missing keys sorted; returns their values
  });
  std::cout << *many[0] << ", " << *many[1] << '\n';
}
