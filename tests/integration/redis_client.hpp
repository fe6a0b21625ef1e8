// Commands sent to a Redis (or a sentinel) outside the library, to look at or steer the
// server in a test.
#pragma once

#include <hiredis/hiredis.h>

#include <algorithm>
#include <string>
#include <vector>

namespace test {

// The reply to `args`: a string or status, an integer in decimal, the elements of an array
// that are strings or integers joined by spaces; empty for anything else or no answer.
inline std::string redis_raw(int port, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (const auto& arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  redisContext* context = redisConnect("127.0.0.1", port);
  auto* reply = context != nullptr && context->err == 0
                    ? static_cast<redisReply*>(redisCommandArgv(
                          context, static_cast<int>(argv.size()), argv.data(), lengths.data()))
                    : nullptr;
  const auto text = [](const redisReply& r) -> std::string {
    if (r.type == REDIS_REPLY_STRING || r.type == REDIS_REPLY_STATUS) return {r.str, r.len};
    if (r.type == REDIS_REPLY_INTEGER) return std::to_string(r.integer);
    return {};
  };
  std::string out;
  if (reply != nullptr) {
    if (reply->type == REDIS_REPLY_ARRAY) {
      for (std::size_t i = 0; i < reply->elements; ++i) {
        out += (i == 0 ? "" : " ") + text(*reply->element[i]);
      }
    } else {
      out = text(*reply);
    }
    freeReplyObject(reply);
  }
  if (context != nullptr) redisFree(context);
  return out;
}

// The same for a command of words separated by spaces.
inline std::string redis_raw(int port, const std::string& command) {
  std::vector<std::string> words;
  std::size_t at = 0;
  while (at < command.size()) {
    const auto end = std::min(command.find(' ', at), command.size());
    if (end > at) words.push_back(command.substr(at, end - at));
    at = end + 1;
  }
  return redis_raw(port, words);
}

}  // namespace test
